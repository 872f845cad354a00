package sync

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/akvsync/akvsync/pkg/events"
)

// Tracker folds vault events into job records. Every update is a
// compare-and-set on the job's revision, so any number of workers can run
// it on the same durable consumer. When the last vault of a job is
// terminal it releases the job's vault locks, then finishes the job
// (completed, failed, or completed with abort) and publishes the job's
// finished event: a job seen finished holds no vault.
//
// Ack semantics: an event is acked once the job record reflects it (or
// already did: events are idempotent); it is nacked when the record cannot
// be read or written, and terminated when it does not decode.
type Tracker struct {
	cfg   Config
	js    jetstream.JetStream
	jobs  jetstream.KeyValue
	locks jetstream.KeyValue
	log   zerolog.Logger
	now   func() time.Time
}

// NewTracker returns a tracker updating the jobs bucket and releasing vault
// locks in the locks bucket.
func NewTracker(cfg Config, js jetstream.JetStream, jobs, locks jetstream.KeyValue) (*Tracker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	return &Tracker{cfg: cfg, js: js, jobs: jobs, locks: locks, now: time.Now,
		log: cfg.Logger.With().Str("component", "tracker").Logger()}, nil
}

// Tracker batching: events are fetched in batches and every job's events
// of a batch are folded into its record with one compare-and-set, so a job
// of thousands of vaults is not rewritten thousands of times.
const (
	trackerBatch     = 256
	trackerBatchWait = 100 * time.Millisecond
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

// handleBatch folds a batch of vault events into their jobs, one CAS per
// job, and acks (or naks) each job's messages together.
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
	job, changed, err := t.apply(ctx, jobID, evs)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		log.Warn().Msg("events of an unknown job; dropping")
		settle(func(m jetstream.Msg) { _ = m.Term() })
		return
	}
	if err != nil {
		log.Warn().Err(err).Msg("cannot update job; will retry")
		settle(func(m jetstream.Msg) { _ = m.NakWithDelay(time.Second) })
		return
	}
	if job.OverallStatus != events.JobInProgress {
		// Finished by this call (apply released the locks inside the CAS),
		// or found finished: a redelivery after a crash between the finish
		// and the finished event, when releasing again is the safe thing.
		if err := t.releaseUnlessDone(ctx, job, changed); err != nil {
			log.Warn().Err(err).Msg("cannot release vault locks; will retry")
			settle(func(m jetstream.Msg) { _ = m.NakWithDelay(time.Second) })
			return
		}
		if _, err := publishEvent(ctx, t.js, t.cfg.Source, events.JobEventSubject(job.ID, events.KindJobFinished),
			events.KindJobFinished.Type("job"), job.ID, job.ID+"/finished", job); err != nil {
			log.Warn().Err(err).Msg("cannot publish job finished; will retry")
			settle(func(m jetstream.Msg) { _ = m.NakWithDelay(time.Second) })
			return
		}
		if changed {
			log.Info().Str("overall_status", string(job.OverallStatus)).Bool("abort", job.Abort).Msg("job finished")
		}
	}
	settle(func(m jetstream.Msg) { _ = m.Ack() })
}

// Apply folds one vault event into its job with compare-and-set and
// reports the job as stored and whether this call changed it.
func (t *Tracker) Apply(ctx context.Context, kind events.EventKind, res events.VaultResult) (events.Job, bool, error) {
	return t.apply(ctx, res.JobID, []trackedEvent{{kind: kind, res: res}})
}

// apply folds vault events of one job into its record with one
// compare-and-set. Events are idempotent: a terminal vault never changes
// again, and a started event only moves a pending vault.
func (t *Tracker) apply(ctx context.Context, jobID string, evs []trackedEvent) (events.Job, bool, error) {
	return updateJob(ctx, t.jobs, jobID, t.cfg.CASRetries(), func(j *events.Job) error {
		if j.OverallStatus != events.JobInProgress {
			return errNoChange
		}
		now := t.now().UTC()
		changed := false
		for _, e := range evs {
			if foldVaultEvent(j, e.kind, e.res) {
				changed = true
			}
		}
		if !changed {
			return errNoChange
		}
		j.UpdatedAt = now
		if j.AllTerminal() {
			// Free the vaults before the job shows finished, so a client
			// that sees it finished can start the next sync at once.
			// Idempotent, so a CAS retry may repeat it.
			if err := t.release(ctx, *j); err != nil {
				return fmt.Errorf("release vault locks: %w", err)
			}
		}
		j.Finish(now)
		return nil
	})
}

// foldVaultEvent applies one vault event to the job and reports whether it
// changed anything.
func foldVaultEvent(j *events.Job, kind events.EventKind, res events.VaultResult) bool {
	jv := j.Vault(res.VaultID)
	if jv == nil || jv.Status.Terminal() {
		return false
	}
	switch kind {
	case events.KindVaultStarted:
		if jv.Status != events.VaultPending {
			return false
		}
		jv.Status = events.VaultRunning
		st := res.StartedAt
		jv.StartedAt = &st
	case events.KindVaultCompleted, events.KindVaultFailed, events.KindVaultAborted:
		jv.Status, jv.Error = res.Status, res.Error
		jv.Listed, jv.Fetched, jv.Unchanged, jv.Gone = res.Listed, res.Fetched, res.Unchanged, res.Gone
		if jv.StartedAt == nil {
			st := res.StartedAt
			jv.StartedAt = &st
		}
		fin := res.FinishedAt
		jv.FinishedAt = &fin
	default:
		return false
	}
	return true
}

func (t *Tracker) releaseUnlessDone(ctx context.Context, job events.Job, done bool) error {
	if done {
		return nil
	}
	return t.release(ctx, job)
}

// release deletes the job's vault locks that it still holds.
func (t *Tracker) release(ctx context.Context, job events.Job) error {
	for _, v := range job.Vaults {
		e, err := t.locks.Get(ctx, v.VaultID)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if string(e.Value()) != job.ID {
			continue
		}
		if err := t.locks.Delete(ctx, v.VaultID, jetstream.LastRevision(e.Revision())); err != nil {
			if revisionMismatch(err) {
				continue // taken over meanwhile: not ours any more
			}
			return err
		}
	}
	return nil
}
