package sync

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/akvsync/akvsync/pkg/events"
	"github.com/akvsync/akvsync/pkg/jobs"
)

// Progress counts a job's vaults by status, as an inventory derives them
// from the jobs bucket's stream. A worker's own inventory implements it;
// the tracker and the janitor ask it whether every vault of a job is
// terminal, so no shared counter is rewritten on every vault event.
type Progress interface {
	// JobProgress returns the job's progress once the inventory has
	// applied the jobs bucket's stream up to seq (0: as it is).
	JobProgress(ctx context.Context, jobID string, seq uint64) (events.JobProgress, error)
	// WaitKeys blocks until the inventory has applied the KEYS stream up
	// to seq, or ctx ends.
	WaitKeys(ctx context.Context, seq uint64) error
}

// Tracker folds vault events into the vaults' status records, one record
// per vault and event, so the work per event does not depend on the job's
// size. After each batch it asks the inventory (Progress) whether every
// vault of the job is terminal; if so it finishes the job: it releases the
// job's vault locks, then sets the header's overall status (completed,
// failed, or completed with abort) and publishes the job's finished event.
// A job seen finished holds no vault, and its keys are in the inventory of
// the worker that finished it. Any number of workers run it on the same
// durable consumer: every write is a compare-and-set.
//
// Ack semantics: an event is acked once its vault's record reflects it
// (or already did: events are idempotent) and the job's finish check ran;
// it is nacked when a record cannot be read or written, and terminated
// when it does not decode or names an unknown job.
type Tracker struct {
	cfg      Config
	js       jetstream.JetStream
	store    *jobs.Store
	progress Progress
	log      zerolog.Logger
	now      func() time.Time
}

// NewTracker returns a tracker writing job records through store and
// counting vaults through progress.
func NewTracker(cfg Config, js jetstream.JetStream, store *jobs.Store, progress Progress) (*Tracker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if store == nil || progress == nil {
		return nil, fmt.Errorf("%w: tracker needs a job store and a progress source", ErrInvalidConfig)
	}
	cfg = cfg.WithDefaults()
	return &Tracker{cfg: cfg, js: js, store: store, progress: progress, now: time.Now,
		log: cfg.Logger.With().Str("component", "tracker").Logger()}, nil
}

// Tracker batching: events are fetched in batches; each job's events of a
// batch are written concurrently (one record per vault) and checked for
// the job's end once.
const (
	trackerBatch       = 256
	trackerBatchWait   = 100 * time.Millisecond
	trackerParallelism = 16
	// trackerBeat is how often events held while a job finishes are
	// marked in progress (their ack wait is events.DefaultTrackerAckWait).
	trackerBeat = 3 * time.Second
)

// Run consumes vault events from cons until ctx ends.
func (t *Tracker) Run(ctx context.Context, cons jetstream.Consumer) error {
	for ctx.Err() == nil {
		batch, err := cons.Fetch(trackerBatch, jetstream.FetchMaxWait(trackerBatchWait))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			select {
			case <-ctx.Done():
			case <-time.After(fetchWait / 4):
			}
			continue
		}
		var msgs []jetstream.Msg
		for m := range batch.Messages() {
			msgs = append(msgs, m)
		}
		if len(msgs) > 0 {
			t.handleBatch(ctx, msgs)
		}
	}
	return nil
}

// trackedEvent is one decoded vault event and its message.
type trackedEvent struct {
	msg  jetstream.Msg
	kind events.EventKind
	res  events.VaultResult
}

// handleBatch folds a batch of vault events into their vaults' records
// and acks (or naks) each job's messages together.
func (t *Tracker) handleBatch(ctx context.Context, msgs []jetstream.Msg) {
	byJob := map[string][]trackedEvent{}
	var order []string
	for _, msg := range msgs {
		_, _, kind, err := events.ParseVaultEventSubject(msg.Subject())
		var res events.VaultResult
		if err == nil {
			_, err = events.DecodeEvent(msg.Data(), &res)
		}
		if err != nil {
			t.log.Error().Err(err).Str("subject", msg.Subject()).Msg("dropping undecodable vault event")
			_ = msg.Term()
			continue
		}
		if _, ok := byJob[res.JobID]; !ok {
			order = append(order, res.JobID)
		}
		byJob[res.JobID] = append(byJob[res.JobID], trackedEvent{msg: msg, kind: kind, res: res})
	}
	for _, jobID := range order {
		t.handleJob(ctx, jobID, byJob[jobID])
	}
}

func (t *Tracker) handleJob(ctx context.Context, jobID string, evs []trackedEvent) {
	log := t.log.With().Str("job_id", jobID).Int("events", len(evs)).Logger()
	settle := func(f func(jetstream.Msg)) {
		for _, e := range evs {
			f(e.msg)
		}
	}
	var job events.Job
	err := Retry(ctx, log, RetryPolicy{}, "read job", func(ctx context.Context) (err error) {
		job, _, err = t.store.Get(ctx, jobID)
		return err
	})
	if errors.Is(err, jobs.ErrNotFound) {
		log.Warn().Msg("events of an unknown job; dropping")
		settle(func(m jetstream.Msg) { _ = m.Term() })
		return
	}
	if err != nil {
		log.Warn().Err(err).Msg("cannot read job; will retry")
		settle(func(m jetstream.Msg) { _ = m.NakWithDelay(time.Second) })
		return
	}
	if job.Finished() {
		settle(func(m jetstream.Msg) { _ = m.Ack() })
		return
	}
	seq, err := t.apply(ctx, log, evs)
	if err == nil {
		// Finishing may wait for the inventory: keep the events ours.
		stop := keepInProgress(func() { settle(func(m jetstream.Msg) { _ = m.InProgress() }) }, trackerBeat)
		var finished bool
		finished, err = finishJob(ctx, t.cfg, t.js, t.store, t.progress, job, seq, t.now, log)
		stop()
		if err == nil && !finished && hasTerminal(evs) {
			t.publishProgress(ctx, log, job, seq)
		}
	}
	if err != nil {
		log.Warn().Err(err).Msg("cannot update job; will retry")
		settle(func(m jetstream.Msg) { _ = m.NakWithDelay(time.Second) })
		return
	}
	settle(func(m jetstream.Msg) { _ = m.Ack() })
}

// hasTerminal reports whether a batch holds a vault's terminal event:
// only those change a job's counts.
func hasTerminal(evs []trackedEvent) bool {
	for _, e := range evs {
		if e.kind != events.KindVaultStarted {
			return true
		}
	}
	return false
}

// publishProgress publishes a running job's progress event, with its
// stats, after a batch of its vault events was applied (revision seq of
// the jobs bucket). It is display only: a failure is logged, not retried.
func (t *Tracker) publishProgress(ctx context.Context, log zerolog.Logger, job events.Job, seq uint64) {
	p, err := t.progress.JobProgress(ctx, job.ID, seq)
	if err != nil {
		log.Debug().Err(err).Msg("no progress event: cannot read the job's progress")
		return
	}
	if p.Terminal() >= job.VaultTotal {
		return // the finished event follows
	}
	data := events.JobProgressed{Job: job, Progress: p, Stats: events.NewJobStats(job, p, t.cfg.Prices, t.now().UTC())}
	if _, err := publishEvent(ctx, t.js, t.cfg.Source, events.JobEventSubject(job.ID, events.KindJobProgress),
		events.KindJobProgress.Type("job"), job.ID, fmt.Sprintf("%s/progress/%d", job.ID, seq), data); err != nil {
		log.Debug().Err(err).Msg("cannot publish the job's progress event")
	}
}

// keepInProgress calls beat now and every interval until stop is called.
func keepInProgress(beat func(), every time.Duration) (stop func()) {
	beat()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				beat()
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// apply writes each event into its vault's record (concurrently: the
// records are independent) and returns the largest revision written or
// found, the jobs-stream sequence the inventory must reach to reflect
// them.
func (t *Tracker) apply(ctx context.Context, log zerolog.Logger, evs []trackedEvent) (uint64, error) {
	var (
		mu     sync.Mutex
		maxRev uint64
		errs   []error
		wg     sync.WaitGroup
		sem    = make(chan struct{}, trackerParallelism)
	)
	for _, e := range evs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			var rev uint64
			err := Retry(ctx, log, RetryPolicy{}, "write vault status", func(ctx context.Context) (err error) {
				_, _, rev, err = t.store.UpdateVault(ctx, e.res.JobID, e.res.VaultID, func(v *events.JobVault, exists bool) error {
					return foldVaultEvent(v, exists, e.kind, e.res)
				})
				return err
			})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			}
			maxRev = max(maxRev, rev)
		}()
	}
	wg.Wait()
	return maxRev, errors.Join(errs...)
}

// foldVaultEvent applies one vault event to its vault's record. Events
// are idempotent: a terminal vault never changes again, and a started
// event only moves a pending vault. It returns jobs.ErrNoChange when the
// record stays as it is.
func foldVaultEvent(v *events.JobVault, exists bool, kind events.EventKind, res events.VaultResult) error {
	if !exists {
		name, sub, _ := strings.Cut(res.Vault, "::")
		*v = events.JobVault{JobID: res.JobID, VaultID: res.VaultID, Name: name, SubscriptionID: sub, Status: events.VaultPending}
	}
	if v.Status.Terminal() {
		return jobs.ErrNoChange
	}
	v.Attempt = max(v.Attempt, res.Attempt)
	switch kind {
	case events.KindVaultStarted:
		if v.Status != events.VaultPending {
			return jobs.ErrNoChange
		}
		v.Status = events.VaultRunning
		st := res.StartedAt
		v.StartedAt = &st
	case events.KindVaultCompleted, events.KindVaultFailed, events.KindVaultAborted:
		if !res.Status.Terminal() {
			return jobs.ErrNoChange
		}
		v.Status, v.Error = res.Status, res.Error
		v.Listed, v.Fetched, v.Unchanged, v.Gone = res.Listed, res.Fetched, res.Unchanged, res.Gone
		v.New, v.Changed, v.Azure = res.New, res.Changed, res.Azure
		v.KeysSeq = res.KeysSeq
		if v.StartedAt == nil {
			st := res.StartedAt
			v.StartedAt = &st
		}
		fin := res.FinishedAt
		v.FinishedAt = &fin
	default:
		return jobs.ErrNoChange
	}
	return nil
}

// jobFinished is the data of a job's finished event, with its statistics.
func jobFinished(cfg Config, j events.Job, p events.JobProgress, now time.Time) events.JobFinished {
	st := events.NewJobStats(j, p, cfg.Prices, now.UTC())
	return events.JobFinished{Job: j, Progress: p, Stats: &st}
}

// finishJob finishes an in-progress job whose vaults are all terminal,
// as the inventory counts them once it has applied the jobs stream up to
// seq: it waits (bounded) until the inventory holds the job's keys,
// releases the job's vault locks, sets the header's final status with a
// compare-and-set whose callback does no I/O, and publishes the job's
// finished event. Every step is idempotent, so the tracker and the
// janitor may both run it, and a retry after a crash completes it. It
// reports whether this call set the final status.
func finishJob(ctx context.Context, cfg Config, js jetstream.JetStream, store *jobs.Store, progress Progress,
	job events.Job, seq uint64, now func() time.Time, log zerolog.Logger) (bool, error) {
	p, err := progress.JobProgress(ctx, job.ID, seq)
	if err != nil {
		return false, fmt.Errorf("job progress: %w", err)
	}
	if p.Terminal() < job.VaultTotal {
		return false, nil
	}
	if p.KeysSeq > 0 {
		// A job seen completed has its keys queryable: wait as long as
		// the inventory advances; a stuck one fails this attempt (the
		// events are redelivered, and the janitor retries too).
		if err := progress.WaitKeys(ctx, p.KeysSeq); err != nil {
			return false, fmt.Errorf("wait for the job's keys in the inventory: %w", err)
		}
	}
	if err := Retry(ctx, log, RetryPolicy{}, "release vault locks", func(ctx context.Context) error {
		return store.ReleaseJobLocks(ctx, job)
	}); err != nil {
		return false, fmt.Errorf("release vault locks: %w", err)
	}
	var final events.Job
	var changed bool
	// A retry after a lost reply finds the job finished: no change.
	if err := Retry(ctx, log, RetryPolicy{}, "finish job", func(ctx context.Context) error {
		f, c, err := store.Update(ctx, job.ID, func(j *events.Job) error {
			if j.Finished() {
				return jobs.ErrNoChange
			}
			t := now().UTC()
			j.OverallStatus, j.CompletedAt, j.UpdatedAt = p.FinalStatus(), &t, t
			return nil
		})
		final, changed = f, changed || c
		return err
	}); err != nil {
		return false, err
	}
	if err := Retry(ctx, log, RetryPolicy{}, "publish job finished", func(ctx context.Context) error {
		_, err := publishEvent(ctx, js, cfg.Source, events.JobEventSubject(job.ID, events.KindJobFinished),
			events.KindJobFinished.Type("job"), job.ID, job.ID+"/finished", jobFinished(cfg, final, p, now()))
		return err
	}); err != nil {
		return changed, err
	}
	if changed {
		log.Info().Str("overall_status", string(final.OverallStatus)).Bool("abort", final.Abort).
			Int("vaults", final.VaultTotal).Int("failed", p.Failed).Int64("fetched", p.Fetched).Msg("job finished")
	}
	return changed, nil
}
