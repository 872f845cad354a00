package sync

import (
	"context"
	"sync"
	"time"

	"github.com/akvsync/akvsync/pkg/events"
	"github.com/akvsync/akvsync/pkg/jobs"
)

// jobCacheTTL is how long a worker reuses a job's header for the first
// delivery of its vault tasks: a job of 100,000 vaults would otherwise
// have its header read 100,000 times in a few minutes.
const jobCacheTTL = 2 * time.Second

// jobCacheMax bounds the cached headers; expired ones are dropped first.
const jobCacheMax = 256

// jobCache keeps recently read job headers. An abort request marks the
// cached header at once, so the cache never hides an abort it was told of.
type jobCache struct {
	store *jobs.Store

	mu sync.Mutex
	m  map[string]cachedJob
}

type cachedJob struct {
	job events.Job
	at  time.Time
}

func newJobCache(store *jobs.Store) *jobCache {
	return &jobCache{store: store, m: map[string]cachedJob{}}
}

// get returns the job's header, from the cache unless fresh is set or the
// entry is older than jobCacheTTL.
func (c *jobCache) get(ctx context.Context, id string, fresh bool) (events.Job, error) {
	now := time.Now()
	if !fresh {
		c.mu.Lock()
		e, ok := c.m[id]
		c.mu.Unlock()
		if ok && now.Sub(e.at) < jobCacheTTL {
			return e.job, nil
		}
	}
	j, _, err := c.store.Get(ctx, id)
	if err != nil {
		return events.Job{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[id]; ok && e.job.Abort {
		j.Abort = true // an abort event arrived while reading (or before)
	}
	c.m[id] = cachedJob{job: j, at: now}
	if len(c.m) > jobCacheMax {
		for k, e := range c.m {
			if now.Sub(e.at) >= jobCacheTTL {
				delete(c.m, k)
			}
		}
	}
	return j, nil
}

// markAborted records an abort request for a cached job. An uncached job
// needs nothing: the API writes abort to the header before it announces
// it, so the next read sees it.
func (c *jobCache) markAborted(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[id]; ok {
		e.job.Abort = true
		c.m[id] = e
	}
}
