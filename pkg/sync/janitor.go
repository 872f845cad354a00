package sync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/akvsync/akvsync/pkg/events"
	"github.com/akvsync/akvsync/pkg/jobs"
)

// Defaults of [JanitorConfig].
const (
	// DefaultJanitorInterval is how often the janitor sweeps.
	DefaultJanitorInterval = time.Minute
	// DefaultJanitorGrace is how old an in-progress job or a vault lock
	// must be before the janitor repairs it.
	DefaultJanitorGrace = time.Minute
	// DefaultJobRetention is how long a finished job is kept.
	DefaultJobRetention = 30 * 24 * time.Hour
	// DefaultJobsKept is how many finished jobs are kept at most; the
	// oldest beyond it are deleted.
	DefaultJobsKept = 10000
	// DefaultRetentionBatch bounds the jobs one sweep deletes, so a sweep
	// after a long outage stays short; the next sweep goes on.
	DefaultRetentionBatch = 100
	// janitorQueue is the queue group in which one worker handles each
	// max-deliveries advisory.
	janitorQueue = "akvsync-janitor"
)

// JanitorConfig configures a [Janitor]. Zero fields take the defaults.
type JanitorConfig struct {
	// Interval between sweeps (DefaultJanitorInterval).
	Interval time.Duration
	// Grace before an in-progress job or a lock is repaired
	// (DefaultJanitorGrace).
	Grace time.Duration
	// JobRetention is how long a finished job is kept after it finished
	// (DefaultJobRetention).
	JobRetention time.Duration
	// JobsKept bounds the finished jobs kept (DefaultJobsKept).
	JobsKept int
	// RetentionBatch bounds the deletions of one sweep
	// (DefaultRetentionBatch).
	RetentionBatch int
}

// WithDefaults returns c with zero fields replaced by the defaults.
func (c JanitorConfig) WithDefaults() JanitorConfig {
	if c.Interval == 0 {
		c.Interval = DefaultJanitorInterval
	}
	if c.Grace == 0 {
		c.Grace = DefaultJanitorGrace
	}
	if c.JobRetention == 0 {
		c.JobRetention = DefaultJobRetention
	}
	if c.JobsKept == 0 {
		c.JobsKept = DefaultJobsKept
	}
	if c.RetentionBatch == 0 {
		c.RetentionBatch = DefaultRetentionBatch
	}
	return c
}

// Validate reports settings that cannot work.
func (c JanitorConfig) Validate() error {
	c = c.WithDefaults()
	switch {
	case c.Interval < 0 || c.Grace < 0 || c.JobRetention < 0:
		return fmt.Errorf("%w: janitor durations must not be negative", ErrInvalidConfig)
	case c.JobsKept < 0:
		return fmt.Errorf("%w: jobs kept must not be negative", ErrInvalidConfig)
	case c.RetentionBatch < 1:
		return fmt.Errorf("%w: retention batch must be at least 1", ErrInvalidConfig)
	}
	return nil
}

// JobIndex is what the janitor needs from a worker's inventory: the jobs
// in progress and the finished jobs past retention, each in O(result)
// rather than O(jobs kept), and the vault counts of a job.
type JobIndex interface {
	Progress
	// InProgressJobs lists the jobs in progress.
	InProgressJobs(ctx context.Context) ([]events.Job, error)
	// ExpiredJobs lists up to limit finished jobs that finished before
	// olderThan, or that are beyond the newest keep finished jobs, oldest
	// first.
	ExpiredJobs(ctx context.Context, olderThan time.Time, keep, limit int) ([]string, error)
}

// Janitor makes sure every accepted job reaches a terminal state when a
// process dies at the wrong moment, and keeps the job records bounded:
//
//   - a job whose header exists but whose sync-requested event was never
//     published (the API died in between) is published again, so it runs;
//   - a job whose vaults are all terminal but that is still in progress
//     (its tracker died while finishing it) is finished;
//   - a vault task that ran out of deliveries without an ack (its worker
//     died on the last delivery) fails its vault, so its job can finish;
//   - a vault lock whose holder is gone (the API died while creating a job
//     or removing a vault) or finished is released;
//   - finished jobs past their retention (age or count) are deleted with
//     their plan and vault records.
//
// Every worker runs one; every repair is idempotent. A sweep costs
// O(jobs in progress + locks held + jobs expiring): the live work.
type Janitor struct {
	cfg   Config
	jcfg  JanitorConfig
	nc    *nats.Conn
	js    jetstream.JetStream
	store *jobs.Store
	index JobIndex
	log   zerolog.Logger
	now   func() time.Time
	sub   *nats.Subscription
}

// NewJanitor returns a janitor.
func NewJanitor(cfg Config, jcfg JanitorConfig, nc *nats.Conn, js jetstream.JetStream, store *jobs.Store, index JobIndex) (*Janitor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := jcfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	return &Janitor{cfg: cfg, jcfg: jcfg.WithDefaults(), nc: nc, js: js, store: store, index: index, now: time.Now,
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

// Run handles max-deliveries advisories and sweeps until ctx ends.
func (j *Janitor) Run(ctx context.Context) error {
	if err := j.Subscribe(ctx); err != nil {
		return err
	}
	defer func() { _ = j.sub.Unsubscribe() }()
	t := time.NewTicker(j.jcfg.Interval)
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

// Sweep runs every repair once: orphaned and unfinished jobs, stale locks,
// and retention.
func (j *Janitor) Sweep(ctx context.Context) error {
	return errors.Join(j.sweepJobs(ctx), j.sweepLocks(ctx), j.sweepRetention(ctx))
}

func (j *Janitor) sweepJobs(ctx context.Context) error {
	inProgress, err := j.index.InProgressJobs(ctx)
	if err != nil {
		return err
	}
	st, err := j.js.Stream(ctx, events.StreamRequests)
	if err != nil {
		return err
	}
	var errs []error
	for _, job := range inProgress {
		if j.now().Sub(job.CreatedAt) < j.jcfg.Grace {
			continue
		}
		log := j.log.With().Str("job_id", job.ID).Logger()
		current, _, err := j.store.Get(ctx, job.ID)
		if err != nil || current.Finished() {
			continue
		}
		if _, err := finishJob(ctx, j.cfg, j.js, j.store, j.index, current, 0, j.now, log); err != nil {
			errs = append(errs, err)
			continue
		}
		_, err = st.GetLastMsgForSubject(ctx, events.SyncRequestedSubject(job.ID))
		if err == nil {
			continue
		}
		if !errors.Is(err, jetstream.ErrMsgNotFound) {
			errs = append(errs, err)
			continue
		}
		if _, err := publishEvent(ctx, j.js, j.cfg.Source, events.SyncRequestedSubject(job.ID),
			events.KindSyncRequested.Type("sync"), job.ID, job.ID, events.SyncRequested{Job: current}); err != nil {
			errs = append(errs, err)
			continue
		}
		log.Warn().Msg("job had no sync-requested event (its API process died?); published it")
	}
	return errors.Join(errs...)
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
	// The advisory is core NATS, sent once: retry what follows, or the
	// vault would stay pending.
	var st jetstream.Stream
	var raw *jetstream.RawStreamMsg
	err := Retry(ctx, j.log, RetryPolicy{}, "read exhausted task", func(ctx context.Context) (err error) {
		if st, err = j.js.Stream(ctx, events.StreamTasks); err != nil {
			return err
		}
		raw, err = st.GetMsg(ctx, a.StreamSeq)
		return err
	})
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
	now := j.now().UTC()
	res := events.VaultResult{
		JobID: task.JobID, VaultID: task.Vault.ID, Vault: task.Vault.QualifiedName(), Status: events.VaultFailed,
		Error:   fmt.Sprintf("gave up after %d deliveries: the workers syncing it stopped before finishing", a.Deliveries),
		Attempt: deliveryCount(a.Deliveries), StartedAt: now, FinishedAt: now,
	}
	if err := Retry(ctx, j.log, RetryPolicy{}, "publish vault failed", func(ctx context.Context) error {
		_, err := publishEvent(ctx, j.js, j.cfg.Source, events.VaultEventSubject(task.JobID, task.Vault.ID, events.KindVaultFailed),
			events.KindVaultFailed.Type("vault"), task.Vault.ID, fmt.Sprintf("%s/%s/failed/exhausted", task.JobID, task.Vault.ID), res)
		return err
	}); err != nil {
		return err
	}
	j.log.Warn().Str("job_id", task.JobID).Str("vault", res.Vault).Int("attempt", res.Attempt).Msg("vault task ran out of deliveries; vault failed")
	return Retry(ctx, j.log, RetryPolicy{}, "delete exhausted task", func(ctx context.Context) error {
		if err := st.DeleteMsg(ctx, a.StreamSeq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return err
		}
		return nil
	})
}

// sweepLocks releases every lock older than the grace period whose holder
// is not an in-progress job: the API died between taking it and creating
// the job (or while removing the vault), or the job finished and its
// release was lost. One streamed pass over the locks held, one header read
// per distinct holder; deletes are revision-checked, so a lock taken again
// meanwhile is kept.
func (j *Janitor) sweepLocks(ctx context.Context) error {
	released, err := j.store.SweepLocks(ctx, j.jcfg.Grace, func(ctx context.Context, holder string) (bool, error) {
		job, _, err := j.store.Get(ctx, holder)
		switch {
		case errors.Is(err, jobs.ErrNotFound):
			return false, nil // a vault removal's marker, or a job never created
		case err != nil:
			return false, err
		}
		return !job.Finished(), nil
	})
	for _, l := range released {
		j.log.Warn().Str("vault_id", l.VaultID).Str("holder", l.Holder).Msg("released a stale vault lock")
	}
	return err
}

// sweepRetention deletes finished jobs past their retention: older than
// JobRetention, or beyond the newest JobsKept. Each deletion removes the
// job's plan and vault records with one purge, then its header.
func (j *Janitor) sweepRetention(ctx context.Context) error {
	ids, err := j.index.ExpiredJobs(ctx, j.now().Add(-j.jcfg.JobRetention), j.jcfg.JobsKept, j.jcfg.RetentionBatch)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := j.store.Delete(ctx, id); err != nil {
			return err
		}
		j.log.Info().Str("job_id", id).Msg("deleted a finished job past its retention")
	}
	return nil
}

// deliveryCount converts a JetStream delivery count to int, saturating at
// math.MaxInt (the server sends it as a uint64).
func deliveryCount(n uint64) int {
	if n > math.MaxInt {
		return math.MaxInt
	}
	return int(n)
}
