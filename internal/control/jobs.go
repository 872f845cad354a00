package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/akvsync/akvsync/pkg/events"
	"github.com/nats-io/nats.go/jetstream"
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

// Jobs creates, reads and cancels synchronization jobs. The workers update
// the same records with compare-and-set and release the vault locks when a
// job finishes. It is safe for concurrent use, also by several processes.
type Jobs struct {
	kv    jetstream.KeyValue
	locks jetstream.KeyValue
	js    jetstream.JetStream
	reg   *Registry
	cfg   Config
}

// Create accepts a job: it validates req, resolves its vaults (every
// registered vault for synchronize_all), locks each vault for the job,
// stores the job record (in_progress, every vault pending) and publishes
// the sync-requested event with Nats-Msg-Id = job id. On any error it
// undoes what it did, so nothing is half-created. A vault held by another
// job yields a [ConflictError] naming that job.
func (j *Jobs) Create(ctx context.Context, req CreateJobRequest, createdBy string) (_ events.Job, err error) {
	if err := req.Validate(); err != nil {
		return events.Job{}, err
	}
	vaults, err := j.resolve(ctx, req)
	if err != nil {
		return events.Job{}, err
	}
	now := j.cfg.Now().UTC().Truncate(time.Microsecond)
	jobID := events.NewID()
	job := events.Job{
		ID:             jobID,
		CreatedAt:      now,
		UpdatedAt:      now,
		OverallStatus:  events.JobInProgress,
		SynchronizeAll: req.SynchronizeAll,
		Cloud:          j.cfg.Cloud,
		CreatedBy:      createdBy,
		Vaults:         make([]events.JobVault, len(vaults)),
	}
	for i, v := range vaults {
		job.Vaults[i] = events.JobVault{VaultID: v.ID, Name: v.Name, SubscriptionID: v.SubscriptionID, Status: events.VaultPending}
	}
	job.SortVaults()

	var held []heldLock
	var jobRev uint64
	defer func() {
		if err == nil {
			return
		}
		cctx, cancel := cleanupContext(ctx, j.cfg.CleanupTimeout)
		defer cancel()
		if jobRev != 0 {
			_ = j.kv.Delete(cctx, jobID, jetstream.LastRevision(jobRev))
		}
		releaseLocks(cctx, j.locks, held)
	}()

	// Lock in vault id order, so two racing jobs meet at the same vault first.
	order := slices.Clone(vaults)
	slices.SortFunc(order, func(a, b events.Vault) int { return strings.Compare(a.ID, b.ID) })
	for _, v := range order {
		lock, owner, ok, err := takeLock(ctx, j.locks, v.ID, job.ID)
		if err != nil {
			return events.Job{}, err
		}
		if !ok {
			if owner == RemoveLockHolder {
				owner = ""
			}
			return events.Job{}, &ConflictError{Vault: v.QualifiedName(), JobID: owner}
		}
		held = append(held, lock)
	}
	// A vault removed between resolving and locking is gone for good now.
	for _, v := range order {
		if _, err := j.reg.Get(ctx, v.ID); err != nil {
			if errors.Is(err, ErrNotFound) {
				return events.Job{}, conflictf("vault %s was removed while the job was being created", v.QualifiedName())
			}
			return events.Job{}, err
		}
	}

	data, err := json.Marshal(job)
	if err != nil {
		return events.Job{}, fmt.Errorf("control: encode job: %w", err)
	}
	rev, err := j.kv.Create(ctx, job.ID, data)
	if err != nil {
		return events.Job{}, unavailable("store job", err)
	}
	jobRev = rev

	ev, err := events.MarshalEvent(j.cfg.Source, events.KindSyncRequested.Type(EventScopeSync), job.ID, events.SyncRequested{Job: job})
	if err != nil {
		return events.Job{}, fmt.Errorf("control: %w", err)
	}
	if _, err := j.js.Publish(ctx, events.SyncRequestedSubject(job.ID), ev, jetstream.WithMsgID(job.ID)); err != nil {
		return events.Job{}, unavailable("publish sync request", err)
	}
	return job, nil
}

// resolve returns the distinct vaults a valid request names.
func (j *Jobs) resolve(ctx context.Context, req CreateJobRequest) ([]events.Vault, error) {
	if req.SynchronizeAll {
		all, err := j.reg.All(ctx)
		if err != nil {
			return nil, err
		}
		if len(all) == 0 {
			return nil, unprocessablef("synchronize_all: no vaults are registered")
		}
		if len(all) > j.cfg.MaxJobVaults {
			return nil, unprocessablef("synchronize_all: %d vaults are registered; a job may sync at most %d", len(all), j.cfg.MaxJobVaults)
		}
		return all, nil
	}
	if len(req.KeyVaults) > j.cfg.MaxJobVaults {
		return nil, invalidf("key_vaults has %d entries; a job may sync at most %d", len(req.KeyVaults), j.cfg.MaxJobVaults)
	}
	out := make([]events.Vault, 0, len(req.KeyVaults))
	byID := make(map[string]int, len(req.KeyVaults))
	for i, ref := range req.KeyVaults {
		v, err := j.reg.Resolve(ctx, ref)
		if errors.Is(err, ErrNotFound) {
			return nil, invalidf("key_vaults[%d]: vault %q is not registered", i, ref)
		}
		if errors.Is(err, ErrInvalid) {
			return nil, invalidf("key_vaults[%d]: %v", i, err)
		}
		if err != nil {
			return nil, err
		}
		if k, dup := byID[v.ID]; dup {
			return nil, invalidf("key_vaults[%d] %q and key_vaults[%d] %q name the same vault %s", k, req.KeyVaults[k], i, ref, v.QualifiedName())
		}
		byID[v.ID] = i
		out = append(out, v)
	}
	return out, nil
}

// Get returns the job record with the given id (the authoritative state).
func (j *Jobs) Get(ctx context.Context, id string) (events.Job, error) {
	job, _, err := j.get(ctx, id)
	return job, err
}

// get returns a job and its revision.
func (j *Jobs) get(ctx context.Context, id string) (events.Job, uint64, error) {
	return getRecord[events.Job](ctx, j.kv, "job", id)
}

// Cancel asks an in_progress job to stop: it sets abort (compare-and-set,
// retried when a worker updated the record meanwhile) and publishes an
// abort-requested job event. Cancelling a job that already has abort set
// publishes the event again (deduplicated by NATS) and succeeds. A job
// that is not in_progress is a conflict. If the event cannot be published
// the abort is still recorded (workers read it from the record) and the
// error wraps [ErrUnavailable] so the caller can retry.
func (j *Jobs) Cancel(ctx context.Context, id string) (events.Job, error) {
	var job events.Job
	for attempt := 0; ; attempt++ {
		var rev uint64
		var err error
		job, rev, err = j.get(ctx, id)
		if err != nil {
			return events.Job{}, err
		}
		if job.OverallStatus != events.JobInProgress {
			return events.Job{}, conflictf("job %s is %s; only an in_progress job can be cancelled", job.ID, job.OverallStatus)
		}
		if job.Abort {
			break
		}
		job.Abort = true
		job.UpdatedAt = j.cfg.Now().UTC().Truncate(time.Microsecond)
		data, err := json.Marshal(job)
		if err != nil {
			return events.Job{}, fmt.Errorf("control: encode job: %w", err)
		}
		_, err = j.kv.Update(ctx, job.ID, data, rev)
		if err == nil {
			break
		}
		if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return events.Job{}, unavailable("update job", err)
		}
		if attempt+1 >= j.cfg.CASRetries {
			return events.Job{}, conflictf("job %s is being updated too often; retry the cancel", job.ID)
		}
	}
	ev, err := events.MarshalEvent(j.cfg.Source, events.KindJobAbortRequested.Type(EventScopeJob), job.ID, job)
	if err != nil {
		return events.Job{}, fmt.Errorf("control: %w", err)
	}
	subject := events.JobEventSubject(job.ID, events.KindJobAbortRequested)
	if _, err := j.js.Publish(ctx, subject, ev, jetstream.WithMsgID(job.ID+AbortMsgIDSuffix)); err != nil {
		return job, unavailable("abort recorded but its event was not published; retry the cancel", err)
	}
	return job, nil
}
