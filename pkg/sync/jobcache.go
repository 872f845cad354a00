package sync

import (
	"context"
	gosync "sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// jobCacheTTL is how long a worker reuses a job's state for the first
// delivery of its vault tasks. A job of thousands of vaults has a record
// of megabytes; reading it for every task would cost more than the sync.
const jobCacheTTL = 2 * time.Second

// jobCache keeps recently read job states. An abort request marks the
// cached state at once, so the cache never hides an abort it was told of.
type jobCache struct {
	kv jetstream.KeyValue

	mu gosync.Mutex
	m  map[string]cachedJob
}

type cachedJob struct {
	state jobState
	at    time.Time
}

func newJobCache(kv jetstream.KeyValue) *jobCache {
	return &jobCache{kv: kv, m: map[string]cachedJob{}}
}

// get returns the job's state, from the cache unless fresh is set or the
// entry is older than jobCacheTTL.
func (c *jobCache) get(ctx context.Context, id string, fresh bool) (jobState, error) {
	now := time.Now()
	if !fresh {
		c.mu.Lock()
		e, ok := c.m[id]
		c.mu.Unlock()
		if ok && now.Sub(e.at) < jobCacheTTL {
			return e.state, nil
		}
	}
	st, err := getJobState(ctx, c.kv, id)
	if err != nil {
		return jobState{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[id]; ok && e.state.Abort {
		st.Abort = true // an abort event arrived while reading (or before)
	}
	c.m[id] = cachedJob{state: st, at: now}
	if len(c.m) > 256 {
		for k, e := range c.m {
			if now.Sub(e.at) >= jobCacheTTL {
				delete(c.m, k)
			}
		}
	}
	return st, nil
}

// markAborted records an abort request for a cached job. An uncached job
// needs nothing: the API writes abort to the record before it announces
// it, so the next read sees it.
func (c *jobCache) markAborted(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[id]; ok {
		e.state.Abort = true
		c.m[id] = e
	}
}
