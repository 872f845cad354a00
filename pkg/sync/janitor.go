package sync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/akvsync/akvsync/pkg/events"
)

// Defaults of the janitor.
const (
	// DefaultJanitorInterval is how often the janitor looks for orphaned
	// jobs.
	DefaultJanitorInterval = time.Minute
	// DefaultJanitorGrace is how old an in-progress job must be before
	// the janitor checks that its sync-requested event exists.
	DefaultJanitorGrace = time.Minute
	// janitorQueue is the queue group in which one worker handles each
	// max-deliveries advisory.
	janitorQueue = "akvsync-janitor"
)

// InProgressJobs lists the jobs that are in progress (from a worker's
// inventory).
type InProgressJobs func(ctx context.Context) ([]events.Job, error)

// Janitor makes sure every accepted job reaches a terminal state when a
// process dies at the wrong moment:
//
//   - a job whose record exists but whose sync-requested event was never
//     published (the API died in between) is published again, so it runs;
//   - a vault task that ran out of deliveries without an ack (its worker
//     died on the last delivery) fails its vault, so its job can finish;
//   - a vault lock whose holder is gone (the API died while creating a job
//     or removing a vault) or finished is released, so the vault can be
//     synced again.
//
// Every worker runs one; both repairs are idempotent.
type Janitor struct {
	cfg        Config
	nc         *nats.Conn
	js         jetstream.JetStream
	jobs       jetstream.KeyValue
	locks      jetstream.KeyValue
	inProgress InProgressJobs
	interval   time.Duration
	grace      time.Duration
	log        zerolog.Logger
	sub        *nats.Subscription
}

// NewJanitor returns a janitor. interval and grace <= 0 take the defaults.
func NewJanitor(cfg Config, nc *nats.Conn, js jetstream.JetStream, jobs, locks jetstream.KeyValue, inProgress InProgressJobs, interval, grace time.Duration) (*Janitor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if interval <= 0 {
		interval = DefaultJanitorInterval
	}
	if grace <= 0 {
		grace = DefaultJanitorGrace
	}
	cfg = cfg.WithDefaults()
	return &Janitor{cfg: cfg, nc: nc, js: js, jobs: jobs, locks: locks, inProgress: inProgress, interval: interval, grace: grace,
		log: cfg.Logger.With().Str("component", "janitor").Logger()}, nil
}

// Subscribe starts handling max-deliveries advisories (core NATS: one
// sent while no janitor listens is lost). Run calls it if it was not
// called before; call it first to be listening as soon as it returns.
func (j *Janitor) Subscribe(ctx context.Context) error {
	if j.sub != nil {
		return nil
	}
	sub, err := j.nc.QueueSubscribe(events.MaxDeliveriesAdvisorySubject, janitorQueue, func(m *nats.Msg) {
		if err := j.exhausted(ctx, m.Data); err != nil {
			j.log.Warn().Err(err).Msg("cannot fail a vault whose task ran out of deliveries")
		}
	})
	if err != nil {
		return fmt.Errorf("janitor: subscribe: %w", err)
	}
	if err := j.nc.Flush(); err != nil {
		_ = sub.Unsubscribe()
		return fmt.Errorf("janitor: subscribe: %w", err)
	}
	j.sub = sub
	return nil
}

// Run handles max-deliveries advisories and sweeps for orphaned jobs until
// ctx ends.
func (j *Janitor) Run(ctx context.Context) error {
	if err := j.Subscribe(ctx); err != nil {
		return err
	}
	defer func() { _ = j.sub.Unsubscribe() }()
	t := time.NewTicker(j.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := j.Sweep(ctx); err != nil && ctx.Err() == nil {
				j.log.Warn().Err(err).Msg("janitor sweep failed")
			}
		}
	}
}

// Sweep republishes the sync-requested event of every in-progress job
// older than the grace period that has none, and releases stale locks.
func (j *Janitor) Sweep(ctx context.Context) error {
	return errors.Join(j.sweepJobs(ctx), j.sweepLocks(ctx))
}

func (j *Janitor) sweepJobs(ctx context.Context) error {
	jobs, err := j.inProgress(ctx)
	if err != nil {
		return err
	}
	st, err := j.js.Stream(ctx, events.StreamRequests)
	if err != nil {
		return err
	}
	for _, job := range jobs {
		if time.Since(job.CreatedAt) < j.grace {
			continue
		}
		_, err := st.GetLastMsgForSubject(ctx, events.SyncRequestedSubject(job.ID))
		if err == nil {
			continue
		}
		if !errors.Is(err, jetstream.ErrMsgNotFound) {
			return err
		}
		current, _, err := getJob(ctx, j.jobs, job.ID)
		if err != nil || current.OverallStatus != events.JobInProgress {
			continue
		}
		if _, err := publishEvent(ctx, j.js, j.cfg.Source, events.SyncRequestedSubject(job.ID),
			events.KindSyncRequested.Type("sync"), job.ID, job.ID, events.SyncRequested{Job: current}); err != nil {
			return err
		}
		j.log.Warn().Str("job_id", job.ID).Msg("job had no sync-requested event (its API process died?); published it")
	}
	return nil
}

// advisory is the part of JetStream's max-deliveries advisory we use.
type advisory struct {
	Stream     string `json:"stream"`
	Consumer   string `json:"consumer"`
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries uint64 `json:"deliveries"`
}

// exhausted fails the vault of a task that ran out of deliveries and
// removes the task from the work queue.
func (j *Janitor) exhausted(ctx context.Context, data []byte) error {
	var a advisory
	if err := json.Unmarshal(data, &a); err != nil {
		return err
	}
	if a.Stream != events.StreamTasks {
		return nil
	}
	st, err := j.js.Stream(ctx, events.StreamTasks)
	if err != nil {
		return err
	}
	raw, err := st.GetMsg(ctx, a.StreamSeq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil // acked or handled meanwhile
	}
	if err != nil {
		return err
	}
	var task events.VaultTask
	if err := json.Unmarshal(raw.Data, &task); err != nil {
		return err
	}
	now := time.Now().UTC()
	res := events.VaultResult{
		JobID: task.JobID, VaultID: task.Vault.ID, Vault: task.Vault.QualifiedName(), Status: events.VaultFailed,
		Error:   fmt.Sprintf("gave up after %d deliveries: the workers syncing it stopped before finishing", a.Deliveries),
		Attempt: int(a.Deliveries), StartedAt: now, FinishedAt: now,
	}
	if _, err := publishEvent(ctx, j.js, j.cfg.Source, events.VaultEventSubject(task.JobID, task.Vault.ID, events.KindVaultFailed),
		events.KindVaultFailed.Type("vault"), task.Vault.ID, fmt.Sprintf("%s/%s/failed/exhausted", task.JobID, task.Vault.ID), res); err != nil {
		return err
	}
	j.log.Warn().Str("job_id", task.JobID).Str("vault", res.Vault).Int("attempt", res.Attempt).Msg("vault task ran out of deliveries; vault failed")
	if err := st.DeleteMsg(ctx, a.StreamSeq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return err
	}
	return nil
}

// sweepLocks releases every lock older than the grace period whose holder
// is not an in-progress job: the API died between taking it and creating
// the job (or while removing the vault), or the job finished and its
// release was lost. The delete is revision-checked, so a lock taken again
// meanwhile is kept.
func (j *Janitor) sweepLocks(ctx context.Context) error {
	keys, err := j.locks.Keys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, vaultID := range keys {
		e, err := j.locks.Get(ctx, vaultID)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if time.Since(e.Created()) < j.grace {
			continue
		}
		holder := string(e.Value())
		job, _, err := getJob(ctx, j.jobs, holder)
		switch {
		case err == nil && job.OverallStatus == events.JobInProgress:
			continue
		case err != nil && !errors.Is(err, jetstream.ErrKeyNotFound):
			continue // unreadable now: try again at the next sweep
		}
		// The holder is no job (a vault removal's marker, or a job never
		// created) or a finished job.
		if err := j.locks.Delete(ctx, vaultID, jetstream.LastRevision(e.Revision())); err != nil {
			if revisionMismatch(err) {
				continue
			}
			return err
		}
		j.log.Warn().Str("vault_id", vaultID).Str("holder", holder).Msg("released a stale vault lock")
	}
	return nil
}
