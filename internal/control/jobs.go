package control

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/akvsync/akvsync/pkg/events"
	"github.com/akvsync/akvsync/pkg/jobs"
)

// CloudEvents type scopes of the events the API publishes: the types are
// "io.akvsync.sync.requested" and "io.akvsync.job.abort_requested".
const (
	EventScopeSync = "sync"
	EventScopeJob  = "job"
)

// AbortMsgIDSuffix is appended to the job id to form the Nats-Msg-Id of a
// job's abort-requested event, so repeated cancels publish it once per
// duplicate window.
const AbortMsgIDSuffix = "/abort"

// CreateJobRequest is the body of CCKM's POST
// /cckm/azure/synchronization-jobs. KeyVaults is nil when the field is
// absent (or null) and non-nil (maybe empty) when it is given.
type CreateJobRequest struct {
	// KeyVaults names the vaults to sync: ids, "name::subscription", or
	// bare names when unambiguous.
	KeyVaults []string `json:"key_vaults"`
	// SynchronizeAll syncs every vault registered when the job is created.
	SynchronizeAll bool `json:"synchronize_all"`
	// TakeCloudKeyBackup is CCKM's backup option; akvsync does not back up
	// keys, so only false is accepted.
	TakeCloudKeyBackup bool `json:"take_cloud_key_backup"`
}

// Validate checks the request on its own (without the registry): exactly
// one of key_vaults and synchronize_all: true, a non-empty list of
// non-empty, distinct references, and no take_cloud_key_backup. Errors wrap
// [ErrInvalid], or [ErrUnprocessable] for take_cloud_key_backup.
func (req CreateJobRequest) Validate() error {
	switch {
	case req.KeyVaults != nil && req.SynchronizeAll:
		return invalidf("key_vaults and synchronize_all are mutually exclusive")
	case req.KeyVaults == nil && !req.SynchronizeAll:
		return invalidf("one of key_vaults or synchronize_all is required")
	case req.KeyVaults != nil && len(req.KeyVaults) == 0:
		return invalidf("key_vaults must not be empty")
	}
	seen := make(map[string]int, len(req.KeyVaults))
	for i, ref := range req.KeyVaults {
		if strings.TrimSpace(ref) == "" {
			return invalidf("key_vaults[%d] is empty", i)
		}
		if j, dup := seen[strings.ToLower(ref)]; dup {
			return invalidf("key_vaults[%d] %q duplicates key_vaults[%d]", i, ref, j)
		}
		seen[strings.ToLower(ref)] = i
	}
	if req.TakeCloudKeyBackup {
		return unprocessablef("take_cloud_key_backup is not supported")
	}
	return nil
}

// Jobs creates, reads and cancels synchronization jobs through the job
// records of pkg/jobs. The workers update the same records and release the
// vault locks when a job finishes. It is safe for concurrent use, also by
// several processes.
type Jobs struct {
	store   *jobs.Store
	js      jetstream.JetStream
	reg     *Registry
	queries *Queries
	cfg     Config
}

// resolveBatch is how many vaults a job creation resolves, locks and
// plans at a time.
const resolveBatch = 1000

// resolveParallelism bounds the registry lookups of an explicit
// key_vaults list that run at once.
const resolveParallelism = 32

// Create accepts a job: it validates req, resolves its vaults (every
// registered vault for synchronize_all, streamed from the registry a batch
// at a time), locks each vault for the job and writes its plan and header
// (pkg/jobs: pipelined, so 100,000 vaults take seconds), and publishes the
// sync-requested event with Nats-Msg-Id = job id. On any error it undoes
// what it did, so nothing is half-created. A vault held by another job
// yields a [ConflictError] naming that job.
func (j *Jobs) Create(ctx context.Context, req CreateJobRequest, createdBy string) (events.JobDetail, error) {
	return j.create(ctx, req, createdBy, "", "")
}

// SchedulerCreatedBy is the created_by of the jobs the scheduler starts.
const SchedulerCreatedBy = "scheduler"

// CreateScheduled is [Jobs.Create] for a tick of a scheduler job config:
// the job carries the config's id in job_config_id, and its id is jobID
// (a UUID the scheduler chose and recorded before creating it, so another
// replica can tell whether it exists).
func (j *Jobs) CreateScheduled(ctx context.Context, req CreateJobRequest, configID, jobID string) (events.JobDetail, error) {
	if configID == "" || !IsID(jobID) {
		return events.JobDetail{}, invalidf("job_config_id or job id is malformed")
	}
	return j.create(ctx, req, SchedulerCreatedBy, configID, jobID)
}

// Header returns a job's header from the jobs bucket (the authoritative
// state), without asking the inventory.
func (j *Jobs) Header(ctx context.Context, id string) (events.Job, error) {
	if !IsID(id) {
		return events.Job{}, notFoundf("job %q not found", id)
	}
	job, _, err := j.store.Get(ctx, id)
	if errors.Is(err, jobs.ErrNotFound) {
		return events.Job{}, notFoundf("job %q not found", id)
	}
	if err != nil {
		return events.Job{}, unavailable("read job", err)
	}
	return job, nil
}

func (j *Jobs) create(ctx context.Context, req CreateJobRequest, createdBy, configID, id string) (_ events.JobDetail, err error) {
	if err := req.Validate(); err != nil {
		return events.JobDetail{}, err
	}
	if id == "" {
		id = events.NewID()
	}
	now := j.cfg.Now().UTC().Truncate(time.Microsecond)
	job := events.Job{
		ID:             id,
		CreatedAt:      now,
		UpdatedAt:      now,
		OverallStatus:  events.JobInProgress,
		SynchronizeAll: req.SynchronizeAll,
		Cloud:          j.cfg.Cloud,
		CreatedBy:      createdBy,
		JobConfigID:    configID,
	}
	var batches jobs.VaultBatches
	var first []events.Vault // the first vaults, for the reply's detail
	if req.SynchronizeAll {
		job.VaultTotal = j.cfg.MaxJobVaults // an estimate: scan the locks once
		count := 0
		batches = func(ctx context.Context, yield func([]events.Vault) error) error {
			err := j.reg.EachBatch(ctx, resolveBatch, func(vs []events.Vault) error {
				vs = slices.DeleteFunc(vs, func(v events.Vault) bool { return v.Removing })
				if len(vs) == 0 {
					return nil
				}
				count += len(vs)
				if count > j.cfg.MaxJobVaults {
					return unprocessablef("synchronize_all: more than %d vaults are registered; a job may sync at most %d", j.cfg.MaxJobVaults, j.cfg.MaxJobVaults)
				}
				if len(first) < events.GetDetailVaults {
					first = append(first, vs[:min(len(vs), events.GetDetailVaults-len(first))]...)
				}
				return yield(vs)
			})
			if err == nil && count == 0 {
				return unprocessablef("synchronize_all: no vaults are registered")
			}
			return err
		}
	} else {
		vaults, err := j.resolve(ctx, req)
		if err != nil {
			return events.JobDetail{}, err
		}
		job.VaultTotal = len(vaults)
		first = vaults[:min(len(vaults), events.GetDetailVaults)]
		batches = func(ctx context.Context, yield func([]events.Vault) error) error {
			for start := 0; start < len(vaults); start += resolveBatch {
				if err := yield(vaults[start:min(len(vaults), start+resolveBatch)]); err != nil {
					return err
				}
			}
			return nil
		}
	}
	created := false
	defer func() {
		if err == nil || !created {
			return
		}
		cctx, cancel := cleanupContext(ctx, j.cfg.CleanupTimeout)
		defer cancel()
		_ = j.store.ReleaseJobLocks(cctx, job)
		_ = j.store.Delete(cctx, job.ID)
	}()
	job, err = j.store.Create(ctx, job, batches, j.verifyRegistered)
	var conflict *jobs.LockConflictError
	switch {
	case errors.As(err, &conflict):
		holder := conflict.Holder
		if holder == RemoveLockHolder {
			holder = ""
		}
		name := conflict.VaultID
		if v, gerr := j.reg.Get(ctx, conflict.VaultID); gerr == nil {
			name = v.QualifiedName()
		}
		return events.JobDetail{}, &ConflictError{Vault: name, JobID: holder}
	case errors.Is(err, ErrInvalid), errors.Is(err, ErrUnprocessable), errors.Is(err, ErrConflict):
		return events.JobDetail{}, err
	case err != nil:
		return events.JobDetail{}, unavailable("create job", err)
	}
	created = true
	ev, err := events.MarshalEvent(j.cfg.Source, events.KindSyncRequested.Type(EventScopeSync), job.ID, events.SyncRequested{Job: job})
	if err != nil {
		return events.JobDetail{}, fmt.Errorf("control: %w", err)
	}
	if _, err := j.js.Publish(ctx, events.SyncRequestedSubject(job.ID), ev, jetstream.WithMsgID(job.ID)); err != nil {
		return events.JobDetail{}, unavailable("publish sync request", err)
	}
	d := events.JobDetail{Job: job, Progress: events.JobProgress{Pending: job.VaultTotal}, VaultsTruncated: job.VaultTotal > len(first)}
	for _, v := range first {
		d.Vaults = append(d.Vaults, events.JobVault{JobID: job.ID, VaultID: v.ID, Name: v.Name, SubscriptionID: v.SubscriptionID, Status: events.VaultPending})
	}
	events.SortJobVaults(d.Vaults)
	return d, nil
}

// verifyRegistered fails a job creation when one of the vaults whose
// lock moved while the job was being created (see jobs.VerifyVaults) is no
// longer registered: its removal completed in that window.
func (j *Jobs) verifyRegistered(ctx context.Context, ids []string) error {
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	sem := make(chan struct{}, resolveParallelism)
	for i, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if v, err := j.reg.Get(ctx, id); errors.Is(err, ErrNotFound) || err == nil && v.Removing {
				errs[i] = conflictf("vault %s was removed while the job was being created", id)
			} else {
				errs[i] = err
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// resolve returns the distinct vaults of an explicit key_vaults list,
// looked up concurrently.
func (j *Jobs) resolve(ctx context.Context, req CreateJobRequest) ([]events.Vault, error) {
	if len(req.KeyVaults) > j.cfg.MaxJobVaults {
		return nil, invalidf("key_vaults has %d entries; a job may sync at most %d", len(req.KeyVaults), j.cfg.MaxJobVaults)
	}
	out := make([]events.Vault, len(req.KeyVaults))
	errs := make([]error, len(req.KeyVaults))
	var wg sync.WaitGroup
	sem := make(chan struct{}, resolveParallelism)
	for i, ref := range req.KeyVaults {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out[i], errs[i] = j.reg.Resolve(ctx, ref)
		}()
	}
	wg.Wait()
	byID := make(map[string]int, len(req.KeyVaults))
	for i, ref := range req.KeyVaults {
		err := errs[i]
		if errors.Is(err, ErrNotFound) {
			return nil, invalidf("key_vaults[%d]: vault %q is not registered", i, ref)
		}
		if errors.Is(err, ErrInvalid) {
			return nil, invalidf("key_vaults[%d]: %v", i, err)
		}
		if err != nil {
			return nil, err
		}
		if out[i].Removing {
			return nil, &ConflictError{Vault: out[i].QualifiedName()}
		}
		if k, dup := byID[out[i].ID]; dup {
			return nil, invalidf("key_vaults[%d] %q and key_vaults[%d] %q name the same vault %s", k, req.KeyVaults[k], i, ref, out[i].QualifiedName())
		}
		byID[out[i].ID] = i
	}
	return out, nil
}

// RecordDetailVaults is the largest job whose detail Get reads from the
// job's own records when no worker's inventory answers.
const RecordDetailVaults = 100

// Get returns a job: its header (the authoritative state, read from the
// jobs bucket) with its progress and up to events.GetDetailVaults of its
// vaults from the workers' inventory. A finished job's detail must agree
// with its header: if the answering inventory still shows vaults running,
// or no worker answers, a job of at most RecordDetailVaults vaults is
// read from its records, and a bigger one comes as its header alone with
// DetailUnavailable set.
func (j *Jobs) Get(ctx context.Context, id string) (events.JobDetail, error) {
	if !IsID(id) {
		return events.JobDetail{}, notFoundf("job %q not found", id)
	}
	job, _, err := j.store.Get(ctx, id)
	if errors.Is(err, jobs.ErrNotFound) {
		return events.JobDetail{}, notFoundf("job %q not found", id)
	}
	if err != nil {
		return events.JobDetail{}, unavailable("read job", err)
	}
	d, err := j.queries.Job(ctx, id, events.GetDetailVaults)
	switch {
	case err == nil && (!job.Finished() || d.Progress.Terminal() == job.VaultTotal):
		d.Job = job // the header as stored now
		return d, nil
	case err == nil, errors.Is(err, ErrUnavailable), errors.Is(err, ErrNotFound):
		// No worker answers (or none has the job yet), or the one that
		// answered is behind a finished job: its detail would contradict
		// the header (a job finishes only once every vault is terminal).
		// A small job's detail is read from its records; a big one shows
		// its header.
		if job.VaultTotal <= RecordDetailVaults {
			if d, err := j.store.Detail(ctx, job); err == nil {
				return d, nil
			}
		}
		return events.JobDetail{Job: job, DetailUnavailable: true, VaultsTruncated: job.VaultTotal > 0}, nil
	default:
		return events.JobDetail{}, err
	}
}

// Vaults returns one page of a job's vaults from the workers' inventory.
func (j *Jobs) Vaults(ctx context.Context, q events.JobVaultQuery) (events.JobVaultPage, error) {
	if !IsID(q.JobID) {
		return events.JobVaultPage{}, notFoundf("job %q not found", q.JobID)
	}
	if q.Status != "" && !q.Status.Valid() {
		return events.JobVaultPage{}, invalidf("status must be one of pending, in_progress, completed, failed, aborted")
	}
	if _, _, err := j.store.Get(ctx, q.JobID); errors.Is(err, jobs.ErrNotFound) {
		return events.JobVaultPage{}, notFoundf("job %q not found", q.JobID)
	} else if err != nil {
		return events.JobVaultPage{}, unavailable("read job", err)
	}
	return j.queries.JobVaults(ctx, q)
}

// Cancel asks an in_progress job to stop: it sets abort on the header
// (compare-and-set; the header is small and rarely written) and publishes
// an abort-requested job event. Cancelling a job that already has abort
// set publishes the event again (deduplicated by NATS) and succeeds. A job
// that is not in_progress is a conflict. If the event cannot be published
// the abort is still recorded (workers read it from the header) and the
// error wraps [ErrUnavailable] so the caller can retry.
func (j *Jobs) Cancel(ctx context.Context, id string) (events.JobDetail, error) {
	if !IsID(id) {
		return events.JobDetail{}, notFoundf("job %q not found", id)
	}
	var notInProgress bool
	job, _, err := j.store.Update(ctx, id, func(h *events.Job) error {
		notInProgress = h.Finished()
		if notInProgress || h.Abort {
			return jobs.ErrNoChange
		}
		h.Abort = true
		h.UpdatedAt = j.cfg.Now().UTC().Truncate(time.Microsecond)
		return nil
	})
	switch {
	case errors.Is(err, jobs.ErrNotFound):
		return events.JobDetail{}, notFoundf("job %q not found", id)
	case errors.Is(err, jobs.ErrContended):
		return events.JobDetail{}, conflictf("job %s is being updated too often; retry the cancel", id)
	case err != nil:
		return events.JobDetail{}, unavailable("update job", err)
	case notInProgress:
		return events.JobDetail{}, conflictf("job %s is %s; only an in_progress job can be cancelled", job.ID, job.OverallStatus)
	}
	ev, err := events.MarshalEvent(j.cfg.Source, events.KindJobAbortRequested.Type(EventScopeJob), job.ID, job)
	if err != nil {
		return events.JobDetail{}, fmt.Errorf("control: %w", err)
	}
	subject := events.JobEventSubject(job.ID, events.KindJobAbortRequested)
	if _, err := j.js.Publish(ctx, subject, ev, jetstream.WithMsgID(job.ID+AbortMsgIDSuffix)); err != nil {
		return events.JobDetail{Job: job}, unavailable("abort recorded but its event was not published; retry the cancel", err)
	}
	return j.Get(ctx, id)
}
