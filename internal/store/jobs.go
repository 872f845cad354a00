package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/akvsync/akvsync/pkg/events"
	bolt "go.etcd.io/bbolt"
)

// The job buckets. A job's header, progress and vaults are applied from
// the jobs bucket's stream (see pkg/jobs for the records); every read is
// bounded by the page asked for, never by the job's size or the number of
// jobs kept.
var (
	// bucketJobs: job id → header (events.Job JSON).
	bucketJobs = []byte("jobs")
	// bucketJobIdx: ^created(12) + id → nil; a forward walk is newest first.
	bucketJobIdx = []byte("job_created")
	// bucketJobStatus: status rank(1) + ^created(12) + id → nil.
	bucketJobStatus = []byte("job_status")
	// bucketJobDone: completed(12) + id → nil, finished jobs oldest first
	// (retention).
	bucketJobDone = []byte("job_finished")
	// bucketJobProgress: job id → events.JobProgress JSON.
	bucketJobProgress = []byte("job_progress")
	// bucketJobVaults: job id + "/" + vault id → events.JobVault JSON.
	bucketJobVaults = []byte("job_vaults")
	// bucketJobVaultOrder: job id + "/" + status rank(1) + lower(qualified
	// name) + 0 + vault id → nil: a job's vaults, failures first.
	bucketJobVaultOrder = []byte("job_vault_order")
	// bucketVaultJobs: lower(vault id or qualified name) + 0 + job id →
	// nil: the jobs that include a vault.
	bucketVaultJobs = []byte("vault_jobs")
	// bucketConfigJobs: job config id + 0 + job id → nil: the jobs a
	// scheduler job config started.
	bucketConfigJobs = []byte("config_jobs")
)

// jobBuckets lists the job buckets Open creates.
var jobBuckets = [][]byte{bucketJobs, bucketJobIdx, bucketJobStatus, bucketJobDone, bucketJobProgress,
	bucketJobVaults, bucketJobVaultOrder, bucketVaultJobs, bucketConfigJobs}

// jobStatusRank orders overall statuses in bucketJobStatus.
var jobStatusRank = map[events.JobStatus]byte{events.JobInProgress: 0, events.JobCompleted: 1, events.JobFailed: 2}

// vaultStatusRank orders vault statuses in bucketJobVaultOrder.
var vaultStatusRank = func() map[events.VaultStatus]byte {
	m := map[events.VaultStatus]byte{}
	for i, s := range events.VaultStatuses {
		m[s] = byte(i)
	}
	return m
}()

// metaJobStatus is the meta counter of jobs with one overall status.
func metaJobStatus(s events.JobStatus) []byte { return []byte("jobs_" + string(s)) }

// jobIndexKey returns the job_created entry of a job: the inverted
// creation time, so a forward walk is newest first, then the id.
func jobIndexKey(created time.Time, id string) []byte {
	k := appendTime12(make([]byte, 0, 12+len(id)), created)
	for i := range k {
		k[i] = ^k[i]
	}
	return append(k, id...)
}

func jobStatusKey(j *events.Job) []byte {
	return append([]byte{jobStatusRank[j.OverallStatus]}, jobIndexKey(j.CreatedAt, j.ID)...)
}

func jobDoneKey(j *events.Job) []byte {
	if j.CompletedAt == nil || !j.Finished() {
		return nil
	}
	return append(appendTime12(nil, *j.CompletedAt), j.ID...)
}

// configJobsKey is a job's key in bucketConfigJobs.
func configJobsKey(configID, jobID string) []byte {
	return append(append([]byte(strings.ToLower(configID)), 0), jobID...)
}

func jobVaultKey(jobID, vaultID string) []byte { return []byte(jobID + "/" + vaultID) }

func jobVaultOrderKey(v *events.JobVault) []byte {
	k := append([]byte(v.JobID+"/"), vaultStatusRank[v.Status])
	k = append(k, strings.ToLower(v.QualifiedName())...)
	k = append(k, 0)
	return append(k, v.VaultID...)
}

func vaultJobsKey(ref, jobID string) []byte {
	return append(append([]byte(strings.ToLower(ref)), 0), jobID...)
}

// JobChanges are the job records of a Batch, applied in this order:
// headers, plans, vault records, deletions.
type JobChanges struct {
	// Headers are job headers upserted by id.
	Headers []events.Job
	// Plans are plan chunks: each vault not yet known becomes pending.
	Plans []events.JobPlanChunk
	// Vaults are vault status records upserted by job and vault.
	Vaults []events.JobVault
	// Deleted are job ids whose header was deleted: the job and all its
	// records are dropped.
	Deleted []string
}

// Len is the number of records in the changes.
func (c *JobChanges) Len() int { return len(c.Headers) + len(c.Plans) + len(c.Vaults) + len(c.Deleted) }

// jobTx is the job buckets of one write transaction.
type jobTx struct {
	tx                                             *bolt.Tx
	meta, jobs, idx, status, done, prog, jv, order *bolt.Bucket
	vj, cj                                         *bolt.Bucket
}

func newJobTx(tx *bolt.Tx) *jobTx {
	return &jobTx{tx: tx, meta: tx.Bucket(bucketMeta), jobs: tx.Bucket(bucketJobs), idx: tx.Bucket(bucketJobIdx),
		status: tx.Bucket(bucketJobStatus), done: tx.Bucket(bucketJobDone), prog: tx.Bucket(bucketJobProgress),
		jv: tx.Bucket(bucketJobVaults), order: tx.Bucket(bucketJobVaultOrder), vj: tx.Bucket(bucketVaultJobs), cj: tx.Bucket(bucketConfigJobs)}
}

// applyJobs applies job changes in one transaction.
func applyJobs(ctx context.Context, tx *bolt.Tx, c JobChanges) error {
	if c.Len() == 0 {
		return nil
	}
	t := newJobTx(tx)
	for i := range c.Headers {
		if err := t.putHeader(&c.Headers[i]); err != nil {
			return err
		}
	}
	for _, p := range c.Plans {
		if err := t.putPlan(ctx, p); err != nil {
			return err
		}
	}
	for i := range c.Vaults {
		if err := t.putVault(&c.Vaults[i]); err != nil {
			return err
		}
	}
	for _, id := range c.Deleted {
		if err := t.deleteJob(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

func (t *jobTx) putHeader(j *events.Job) error {
	if j.ID == "" {
		return fmt.Errorf("%w: job header without id", ErrBadRecord)
	}
	if _, ok := jobStatusRank[j.OverallStatus]; !ok {
		return fmt.Errorf("%w: job %s: overall status %q", ErrBadRecord, j.ID, j.OverallStatus)
	}
	if old := t.jobs.Get([]byte(j.ID)); old != nil {
		o, err := decodeJob(old)
		if err != nil {
			return err
		}
		if err := t.unindexHeader(&o); err != nil {
			return err
		}
	} else if err := addCounter(t.meta, metaJobs, 1); err != nil {
		return err
	}
	enc, err := json.Marshal(j)
	if err != nil {
		return fmt.Errorf("encode job %s: %w", j.ID, err)
	}
	if err := t.jobs.Put([]byte(j.ID), enc); err != nil {
		return fmt.Errorf("put job %s: %w", j.ID, err)
	}
	if err := t.idx.Put(jobIndexKey(j.CreatedAt, j.ID), nil); err != nil {
		return err
	}
	if err := t.status.Put(jobStatusKey(j), nil); err != nil {
		return err
	}
	if k := jobDoneKey(j); k != nil {
		if err := t.done.Put(k, nil); err != nil {
			return err
		}
	}
	if j.JobConfigID != "" {
		if err := t.cj.Put(configJobsKey(j.JobConfigID, j.ID), nil); err != nil {
			return err
		}
	}
	return addCounter(t.meta, metaJobStatus(j.OverallStatus), 1)
}

// unindexHeader removes a stored header's index entries and status count.
func (t *jobTx) unindexHeader(o *events.Job) error {
	if err := t.idx.Delete(jobIndexKey(o.CreatedAt, o.ID)); err != nil {
		return err
	}
	if err := t.status.Delete(jobStatusKey(o)); err != nil {
		return err
	}
	if k := jobDoneKey(o); k != nil {
		if err := t.done.Delete(k); err != nil {
			return err
		}
	}
	if o.JobConfigID != "" {
		if err := t.cj.Delete(configJobsKey(o.JobConfigID, o.ID)); err != nil {
			return err
		}
	}
	return addCounter(t.meta, metaJobStatus(o.OverallStatus), -1)
}

func (t *jobTx) progress(jobID string) (events.JobProgress, error) {
	var p events.JobProgress
	if v := t.prog.Get([]byte(jobID)); v != nil {
		if err := json.Unmarshal(v, &p); err != nil {
			return p, fmt.Errorf("%w: job %s progress: %v", ErrCorrupt, jobID, err)
		}
	}
	return p, nil
}

func (t *jobTx) putProgress(jobID string, p events.JobProgress) error {
	enc, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return t.prog.Put([]byte(jobID), enc)
}

func (t *jobTx) putPlan(ctx context.Context, c events.JobPlanChunk) error {
	if c.JobID == "" {
		return fmt.Errorf("%w: plan chunk without job id", ErrBadRecord)
	}
	p, err := t.progress(c.JobID)
	if err != nil {
		return err
	}
	for i, pv := range c.Vaults {
		if i%ctxCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if t.jv.Get(jobVaultKey(c.JobID, pv.ID)) != nil {
			continue
		}
		v := events.JobVault{JobID: c.JobID, VaultID: pv.ID, Name: pv.Name, SubscriptionID: pv.SubscriptionID, Status: events.VaultPending}
		if err := t.writeVault(&v); err != nil {
			return err
		}
		for _, ref := range []string{v.VaultID, v.QualifiedName()} {
			if err := t.vj.Put(vaultJobsKey(ref, c.JobID), nil); err != nil {
				return err
			}
		}
		p.Add(events.VaultPending, 1)
	}
	return t.putProgress(c.JobID, p)
}

// writeVault stores a vault record and its order entry.
func (t *jobTx) writeVault(v *events.JobVault) error {
	enc, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := t.jv.Put(jobVaultKey(v.JobID, v.VaultID), enc); err != nil {
		return err
	}
	return t.order.Put(jobVaultOrderKey(v), nil)
}

func (t *jobTx) putVault(v *events.JobVault) error {
	if v.JobID == "" || v.VaultID == "" || !v.Status.Valid() {
		return fmt.Errorf("%w: job vault record %s/%s (%q)", ErrBadRecord, v.JobID, v.VaultID, v.Status)
	}
	p, err := t.progress(v.JobID)
	if err != nil {
		return err
	}
	if old := t.jv.Get(jobVaultKey(v.JobID, v.VaultID)); old != nil {
		var o events.JobVault
		if err := json.Unmarshal(old, &o); err != nil {
			return fmt.Errorf("%w: job vault %s/%s: %v", ErrCorrupt, v.JobID, v.VaultID, err)
		}
		if err := t.order.Delete(jobVaultOrderKey(&o)); err != nil {
			return err
		}
		p.AddVault(o, -1)
	} else {
		for _, ref := range []string{v.VaultID, v.QualifiedName()} {
			if err := t.vj.Put(vaultJobsKey(ref, v.JobID), nil); err != nil {
				return err
			}
		}
	}
	p.AddVault(*v, 1)
	p.KeysSeq = max(p.KeysSeq, v.KeysSeq)
	if err := t.writeVault(v); err != nil {
		return err
	}
	return t.putProgress(v.JobID, p)
}

// deleteJob drops a job and every record of it: O(the job's vaults).
func (t *jobTx) deleteJob(ctx context.Context, id string) error {
	if old := t.jobs.Get([]byte(id)); old != nil {
		o, err := decodeJob(old)
		if err != nil {
			return err
		}
		if err := t.unindexHeader(&o); err != nil {
			return err
		}
		if err := t.jobs.Delete([]byte(id)); err != nil {
			return err
		}
		if err := addCounter(t.meta, metaJobs, -1); err != nil {
			return err
		}
	}
	prefix := []byte(id + "/")
	c := t.jv.Cursor()
	n := 0
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Seek(prefix) {
		if n%ctxCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		n++
		var o events.JobVault
		if err := json.Unmarshal(v, &o); err != nil {
			return fmt.Errorf("%w: job vault %s: %v", ErrCorrupt, k, err)
		}
		for _, ref := range []string{o.VaultID, o.QualifiedName()} {
			if err := t.vj.Delete(vaultJobsKey(ref, id)); err != nil {
				return err
			}
		}
		if err := t.order.Delete(jobVaultOrderKey(&o)); err != nil {
			return err
		}
		if err := t.jv.Delete(k); err != nil {
			return err
		}
	}
	return t.prog.Delete([]byte(id))
}

func decodeJob(b []byte) (events.Job, error) {
	var j events.Job
	if err := json.Unmarshal(b, &j); err != nil {
		return j, fmt.Errorf("%w: job record: %v", ErrCorrupt, err)
	}
	return j, nil
}

// jobDetail reads a job's header, progress and its first n vaults in
// detail order (failures first).
func jobDetail(tx *bolt.Tx, id string, n int) (events.JobDetail, error) {
	var d events.JobDetail
	v := tx.Bucket(bucketJobs).Get([]byte(id))
	if v == nil {
		return d, fmt.Errorf("job %q: %w", id, ErrNotFound)
	}
	var err error
	if d.Job, err = decodeJob(v); err != nil {
		return d, err
	}
	t := &jobTx{prog: tx.Bucket(bucketJobProgress)}
	if d.Progress, err = t.progress(id); err != nil {
		return d, err
	}
	d.Vaults = []events.JobVault{}
	err = eachJobVault(tx, id, nil, 0, n, func(v events.JobVault) { d.Vaults = append(d.Vaults, v) })
	total := max(d.Job.VaultTotal, d.Progress.Pending+d.Progress.Running+d.Progress.Terminal())
	d.VaultsTruncated = total > len(d.Vaults)
	return d, err
}

// eachJobVault calls fn with up to limit (-1: all) vaults of a job in
// detail order, after skipping skip, optionally of one status rank.
func eachJobVault(tx *bolt.Tx, jobID string, rank *byte, skip, limit int, fn func(events.JobVault)) error {
	if limit == 0 {
		return nil
	}
	prefix := []byte(jobID + "/")
	if rank != nil {
		prefix = append(prefix, *rank)
	}
	jv := tx.Bucket(bucketJobVaults)
	c := tx.Bucket(bucketJobVaultOrder).Cursor()
	n := 0
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		if n < skip {
			n++
			continue
		}
		vaultID := k[bytes.LastIndexByte(k, 0)+1:]
		raw := jv.Get(append([]byte(jobID+"/"), vaultID...))
		if raw == nil {
			return fmt.Errorf("%w: job vault order entry without record %q", ErrCorrupt, k)
		}
		var v events.JobVault
		if err := json.Unmarshal(raw, &v); err != nil {
			return fmt.Errorf("%w: job vault %s: %v", ErrCorrupt, k, err)
		}
		fn(v)
		n++
		if limit > 0 && n-skip >= limit {
			break
		}
	}
	return nil
}

// GetJob returns a job with its progress and up to vaults of its vaults
// (failures first), or ErrNotFound.
func (s *Store) GetJob(ctx context.Context, id string, vaults int) (events.JobDetail, error) {
	var d events.JobDetail
	if err := ctx.Err(); err != nil {
		return d, err
	}
	if vaults < 0 || vaults > events.GetDetailVaults {
		vaults = events.GetDetailVaults
	}
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		d, err = jobDetail(tx, id, vaults)
		return err
	})
	return d, err
}

// JobProgress returns a job's vault counts (zero for an unknown job).
func (s *Store) JobProgress(ctx context.Context, id string) (events.JobProgress, error) {
	var p events.JobProgress
	if err := ctx.Err(); err != nil {
		return p, err
	}
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		p, err = (&jobTx{prog: tx.Bucket(bucketJobProgress)}).progress(id)
		return err
	})
	return p, err
}

// ListJobVaults returns one page of a job's vaults in detail order
// (statuses as events.VaultStatuses orders them, then qualified name),
// optionally of one status. The limit is capped at
// events.MaxJobVaultsLimit; limit -1 asks for that many.
func (s *Store) ListJobVaults(ctx context.Context, q events.JobVaultQuery) (events.JobVaultPage, error) {
	page := events.JobVaultPage{Skip: q.Skip, Resources: []events.JobVault{}}
	switch {
	case q.Skip < 0:
		return page, fmt.Errorf("%w: skip %d is negative", ErrBadQuery, q.Skip)
	case q.Limit < events.LimitAll:
		return page, fmt.Errorf("%w: limit %d (use %d for all)", ErrBadQuery, q.Limit, events.LimitAll)
	case q.Status != "" && !q.Status.Valid():
		return page, fmt.Errorf("%w: status %q", ErrBadQuery, q.Status)
	}
	page.Limit = q.Limit
	if page.Limit == 0 {
		page.Limit = events.DefaultLimit
	}
	if page.Limit < 0 || page.Limit > events.MaxJobVaultsLimit {
		page.Limit = events.MaxJobVaultsLimit
	}
	err := s.view(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketJobs).Get([]byte(q.JobID)) == nil {
			return fmt.Errorf("job %q: %w", q.JobID, ErrNotFound)
		}
		p, err := (&jobTx{prog: tx.Bucket(bucketJobProgress)}).progress(q.JobID)
		if err != nil {
			return err
		}
		var rank *byte
		if q.Status != "" {
			r := vaultStatusRank[q.Status]
			rank = &r
			page.Total = p.Count(q.Status)
		} else {
			page.Total = p.Pending + p.Running + p.Terminal()
		}
		return eachJobVault(tx, q.JobID, rank, q.Skip, page.Limit, func(v events.JobVault) { page.Resources = append(page.Resources, v) })
	})
	return page, err
}

// InProgressJobs returns the headers of the jobs in progress, newest
// first: O(jobs in progress).
func (s *Store) InProgressJobs(ctx context.Context) ([]events.Job, error) {
	var out []events.Job
	err := s.view(func(tx *bolt.Tx) error {
		prefix := []byte{jobStatusRank[events.JobInProgress]}
		bk := tx.Bucket(bucketJobs)
		c := tx.Bucket(bucketJobStatus).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			j, err := decodeJob(bk.Get(k[13:]))
			if err != nil {
				return err
			}
			out = append(out, j)
		}
		return nil
	})
	return out, err
}

// ExpiredJobs returns up to limit ids of finished jobs that finished
// before olderThan or are beyond the newest keep finished jobs, oldest
// first: O(result).
func (s *Store) ExpiredJobs(ctx context.Context, olderThan time.Time, keep, limit int) ([]string, error) {
	var out []string
	err := s.view(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		finished := counterInt(getCounter(meta, metaJobStatus(events.JobCompleted)) + getCounter(meta, metaJobStatus(events.JobFailed)))
		excess := finished - keep
		c := tx.Bucket(bucketJobDone).Cursor()
		n := 0
		for k, _ := c.First(); k != nil && len(out) < limit; k, _ = c.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			if n >= excess && !time12(k).Before(olderThan) {
				break
			}
			out = append(out, string(k[12:]))
			n++
		}
		return nil
	})
	return out, err
}

// ListJobs returns one page of the jobs matching q, newest first
// (CreatedAt descending, then id), with Total the number of all matches.
// Each job carries its progress and up to events.ListDetailVaults vaults.
// The page size is capped at events.MaxJobsLimit (limit -1 asks for that
// many). With no filter, or only overall_status, it walks an index from
// the page's start; a key_vaults filter reads the jobs of those vaults, a
// job_config_id filter the jobs of that config.
func (s *Store) ListJobs(ctx context.Context, q events.JobQuery) (events.JobPage, error) {
	page := events.JobPage{Skip: q.Skip, Resources: []events.JobDetail{}}
	var err error
	if page.Limit, _, err = pageBounds(q.Skip, q.Limit); err != nil {
		return page, err
	}
	if page.Limit < 0 || page.Limit > events.MaxJobsLimit {
		page.Limit = events.MaxJobsLimit
	}
	if q.OverallStatus != "" {
		if _, ok := jobStatusRank[q.OverallStatus]; !ok {
			return page, fmt.Errorf("%w: overall_status %q", ErrBadQuery, q.OverallStatus)
		}
	}
	if err := ctx.Err(); err != nil {
		return page, err
	}
	err = s.view(func(tx *bolt.Tx) error {
		var ids []string
		var err error
		switch {
		case q.ID != "" || len(q.KeyVaults) > 0 || q.JobConfigID != "":
			ids, page.Total, err = matchingJobs(ctx, tx, q, q.Skip, page.Limit)
		default:
			ids, page.Total, err = indexedJobs(ctx, tx, q.OverallStatus, q.Skip, page.Limit)
		}
		if err != nil {
			return err
		}
		for _, id := range ids {
			d, err := jobDetail(tx, id, events.ListDetailVaults)
			if err != nil {
				return err
			}
			page.Resources = append(page.Resources, d)
		}
		return nil
	})
	if err != nil {
		return page, fmt.Errorf("store: list jobs: %w", err)
	}
	return page, nil
}

// indexedJobs pages the jobs of one status (or all) through the status or
// creation index: O(skip + limit).
func indexedJobs(ctx context.Context, tx *bolt.Tx, status events.JobStatus, skip, limit int) ([]string, int, error) {
	meta := tx.Bucket(bucketMeta)
	var c *bolt.Cursor
	var prefix []byte
	var total, idOff int
	if status == "" {
		c, total = tx.Bucket(bucketJobIdx).Cursor(), getCount(meta, metaJobs)
		idOff = 12
	} else {
		prefix = []byte{jobStatusRank[status]}
		c, total = tx.Bucket(bucketJobStatus).Cursor(), getCount(meta, metaJobStatus(status))
		idOff = 13
	}
	var ids []string
	n := 0
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(ids) < limit; k, _ = c.Next() {
		if n%ctxCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return nil, 0, err
			}
		}
		if n >= skip {
			ids = append(ids, string(k[idOff:]))
		}
		n++
	}
	return ids, total, nil
}

// matchingJobs pages the jobs named by id or including one of the
// vaults: O(the jobs of those vaults).
func matchingJobs(ctx context.Context, tx *bolt.Tx, q events.JobQuery, skip, limit int) ([]string, int, error) {
	bk := tx.Bucket(bucketJobs)
	type cand struct {
		created time.Time
		id      string
	}
	seen := map[string]bool{}
	var cands []cand
	add := func(id string) error {
		if seen[id] {
			return nil
		}
		seen[id] = true
		raw := bk.Get([]byte(id))
		if raw == nil {
			return nil
		}
		j, err := decodeJob(raw)
		if err != nil {
			return err
		}
		if q.ID != "" && j.ID != q.ID || q.OverallStatus != "" && j.OverallStatus != q.OverallStatus ||
			q.JobConfigID != "" && !strings.EqualFold(j.JobConfigID, q.JobConfigID) {
			return nil
		}
		cands = append(cands, cand{j.CreatedAt, j.ID})
		return nil
	}
	switch {
	case len(q.KeyVaults) == 0 && q.ID != "":
		if err := add(q.ID); err != nil {
			return nil, 0, err
		}
	case len(q.KeyVaults) == 0:
		prefix := append([]byte(strings.ToLower(q.JobConfigID)), 0)
		c := tx.Bucket(bucketConfigJobs).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			if err := ctx.Err(); err != nil {
				return nil, 0, err
			}
			if err := add(string(k[len(prefix):])); err != nil {
				return nil, 0, err
			}
		}
	}
	c := tx.Bucket(bucketVaultJobs).Cursor()
	for _, ref := range q.KeyVaults {
		ref = strings.ToLower(ref)
		prefixes := [][]byte{append([]byte(ref), 0)}
		if !strings.Contains(ref, "::") && len(ref) != 36 {
			prefixes = append(prefixes, []byte(ref+"::")) // a bare name: every subscription
		}
		for _, prefix := range prefixes {
			for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
				if err := ctx.Err(); err != nil {
					return nil, 0, err
				}
				if err := add(string(k[bytes.LastIndexByte(k, 0)+1:])); err != nil {
					return nil, 0, err
				}
			}
		}
	}
	slices.SortFunc(cands, func(a, b cand) int {
		if c := b.created.Compare(a.created); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	var ids []string
	for i := skip; i < len(cands) && len(ids) < limit; i++ {
		ids = append(ids, cands[i].id)
	}
	return ids, len(cands), nil
}
