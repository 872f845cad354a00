package sync

import (
	"context"
	"sync"
)

// abortRegistry maps a job to the cancel functions of its running vault
// syncs on this worker, so an abort cancels them (in-flight Azure requests
// included) the moment the job record says abort.
type abortRegistry struct {
	mu   sync.Mutex
	next uint64
	jobs map[string]map[uint64]context.CancelCauseFunc
}

func newAbortRegistry() *abortRegistry {
	return &abortRegistry{jobs: map[string]map[uint64]context.CancelCauseFunc{}}
}

// add registers cancel under jobID and returns the function that removes it.
func (r *abortRegistry) add(jobID string, cancel context.CancelCauseFunc) (remove func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.next++
	id := r.next
	if r.jobs[jobID] == nil {
		r.jobs[jobID] = map[uint64]context.CancelCauseFunc{}
	}
	r.jobs[jobID][id] = cancel
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		delete(r.jobs[jobID], id)
		if len(r.jobs[jobID]) == 0 {
			delete(r.jobs, jobID)
		}
	}
}

// abort cancels every running sync of jobID with ErrAborted.
func (r *abortRegistry) abort(jobID string) int { return r.cancel(jobID, ErrAborted) }

// cancel cancels every sync registered under key with cause. The syncer
// keeps one registry keyed by job id (aborts) and one keyed by vault id
// (removals).
func (r *abortRegistry) cancel(key string, cause error) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, cancel := range r.jobs[key] {
		cancel(cause)
	}
	return len(r.jobs[key])
}
