package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/akvsync/akvsync/pkg/events"
	bolt "go.etcd.io/bbolt"
)

// jobIndexKey returns the job_created entry of a job: the inverted
// creation time, so a forward walk is newest first, then the id.
func jobIndexKey(created time.Time, id string) []byte {
	k := appendTime12(make([]byte, 0, 12+len(id)), created)
	for i := range k {
		k[i] = ^k[i]
	}
	return append(k, id...)
}

// applyJobs upserts jobs and then deletes the listed ids.
func applyJobs(tx *bolt.Tx, jobs []events.Job, deleted []string) error {
	if len(jobs) == 0 && len(deleted) == 0 {
		return nil
	}
	bk, ix := tx.Bucket(bucketJobs), tx.Bucket(bucketJobIdx)
	delta := 0
	for i := range jobs {
		j := &jobs[i]
		if j.ID == "" {
			return fmt.Errorf("%w: job %d of batch has no id", ErrBadRecord, i)
		}
		if old := bk.Get([]byte(j.ID)); old != nil {
			var o struct {
				CreatedAt time.Time `json:"createdAt"`
			}
			if err := json.Unmarshal(old, &o); err != nil {
				return fmt.Errorf("%w: job %s: %v", ErrCorrupt, j.ID, err)
			}
			if err := ix.Delete(jobIndexKey(o.CreatedAt, j.ID)); err != nil {
				return fmt.Errorf("job index %s: %w", j.ID, err)
			}
		} else {
			delta++
		}
		enc, err := json.Marshal(j)
		if err != nil {
			return fmt.Errorf("encode job %s: %w", j.ID, err)
		}
		if err := bk.Put([]byte(j.ID), enc); err != nil {
			return fmt.Errorf("put job %s: %w", j.ID, err)
		}
		if err := ix.Put(jobIndexKey(j.CreatedAt, j.ID), nil); err != nil {
			return fmt.Errorf("job index %s: %w", j.ID, err)
		}
	}
	for _, id := range deleted {
		old := bk.Get([]byte(id))
		if old == nil {
			continue
		}
		o, err := decodeJob(old)
		if err != nil {
			return err
		}
		if err := ix.Delete(jobIndexKey(o.CreatedAt, id)); err != nil {
			return fmt.Errorf("job index %s: %w", id, err)
		}
		if err := bk.Delete([]byte(id)); err != nil {
			return fmt.Errorf("delete job %s: %w", id, err)
		}
		delta--
	}
	if delta != 0 {
		return addCounter(tx.Bucket(bucketMeta), metaJobs, delta)
	}
	return nil
}

func decodeJob(b []byte) (events.Job, error) {
	var j events.Job
	if err := json.Unmarshal(b, &j); err != nil {
		return j, fmt.Errorf("%w: job record: %v", ErrCorrupt, err)
	}
	return j, nil
}

// GetJob returns the job with the given id, or ErrNotFound.
func (s *Store) GetJob(ctx context.Context, id string) (events.Job, error) {
	var j events.Job
	if err := ctx.Err(); err != nil {
		return j, err
	}
	err := s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketJobs).Get([]byte(id))
		if v == nil {
			return fmt.Errorf("job %q: %w", id, ErrNotFound)
		}
		var err error
		j, err = decodeJob(v)
		return err
	})
	return j, err
}

// jobMatches reports whether a job passes the query's filters.
func jobMatches(q *events.JobQuery, j *events.Job) bool {
	if q.ID != "" && j.ID != q.ID {
		return false
	}
	if q.OverallStatus != "" && j.OverallStatus != q.OverallStatus {
		return false
	}
	if len(q.KeyVaults) == 0 {
		return true
	}
	for _, v := range j.Vaults {
		for _, want := range q.KeyVaults {
			if want == v.VaultID || want == v.Name || want == v.QualifiedName() {
				return true
			}
		}
	}
	return false
}

// ListJobs returns one page of the jobs matching q, newest first
// (CreatedAt descending, then id ascending), with Total the number of all
// matches. With no filter it decodes only the page's jobs; filters are
// checked on each job in index order (jobs are few next to keys).
func (s *Store) ListJobs(ctx context.Context, q events.JobQuery) (events.JobPage, error) {
	page := events.JobPage{Skip: q.Skip, Resources: []events.Job{}}
	var take int
	var err error
	if page.Limit, take, err = pageBounds(q.Skip, q.Limit); err != nil {
		return page, err
	}
	if err := ctx.Err(); err != nil {
		return page, err
	}
	filtered := q.ID != "" || q.OverallStatus != "" || len(q.KeyVaults) > 0
	err = s.view(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketJobs)
		if q.ID != "" {
			// One candidate at most.
			if v := bk.Get([]byte(q.ID)); v != nil {
				j, err := decodeJob(v)
				if err != nil {
					return err
				}
				if jobMatches(&q, &j) {
					page.Total = 1
					if q.Skip == 0 && take != 0 {
						page.Resources = append(page.Resources, j)
					}
				}
			}
			return nil
		}
		if !filtered {
			page.Total = int(getCounter(tx.Bucket(bucketMeta), metaJobs))
		}
		c := tx.Bucket(bucketJobIdx).Cursor()
		n := 0
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if n%ctxCheckEvery == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			inPage := n >= q.Skip && (take < 0 || n < q.Skip+take)
			if !filtered && !inPage {
				if n >= q.Skip {
					break // past the page; Total is the counter
				}
				n++
				continue
			}
			id := k[12:]
			v := bk.Get(id)
			if v == nil {
				return fmt.Errorf("%w: job index entry without job %q", ErrCorrupt, id)
			}
			j, err := decodeJob(v)
			if err != nil {
				return err
			}
			if filtered && !jobMatches(&q, &j) {
				continue
			}
			if inPage {
				page.Resources = append(page.Resources, j)
			}
			n++
		}
		if filtered {
			page.Total = n
		}
		return nil
	})
	if err != nil {
		return page, fmt.Errorf("store: list jobs: %w", err)
	}
	return page, nil
}
