package sync

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/akvsync/akvsync/pkg/events"
)

// Tracker folds vault events into job records. Every update is a
// compare-and-set on the job's revision, so any number of workers can run
// it on the same durable consumer. When the last vault of a job is
// terminal it finishes the job (completed, failed, or completed with abort),
// releases the job's vault locks and publishes the job's finished event.
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

// Run consumes vault events from cons until ctx ends.
func (t *Tracker) Run(ctx context.Context, cons jetstream.Consumer) error {
	return consume(ctx, cons, 4, t.handle)
}

func (t *Tracker) handle(ctx context.Context, msg jetstream.Msg) {
	_, _, kind, err := events.ParseVaultEventSubject(msg.Subject())
	var res events.VaultResult
	if err == nil {
		_, err = events.DecodeEvent(msg.Data(), &res)
	}
	if err != nil {
		t.log.Error().Err(err).Str("subject", msg.Subject()).Msg("dropping undecodable vault event")
		_ = msg.Term()
		return
	}
	log := t.log.With().Str("job_id", res.JobID).Str("vault", res.Vault).Int("attempt", res.Attempt).Logger()
	job, changed, err := t.Apply(ctx, kind, res)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		log.Warn().Msg("event of an unknown job; dropping")
		_ = msg.Term()
		return
	}
	if err != nil {
		log.Warn().Err(err).Msg("cannot update job; will retry")
		_ = msg.NakWithDelay(time.Second)
		return
	}
	if job.OverallStatus != events.JobInProgress {
		// Finished now, or a redelivery after a crash between the finish
		// and the lock release: both steps are idempotent.
		if err := t.release(ctx, job); err != nil {
			log.Warn().Err(err).Msg("cannot release vault locks; will retry")
			_ = msg.NakWithDelay(time.Second)
			return
		}
		if _, err := publishEvent(ctx, t.js, t.cfg.Source, events.JobEventSubject(job.ID, events.KindJobFinished),
			events.KindJobFinished.Type("job"), job.ID, job.ID+"/finished", job); err != nil {
			log.Warn().Err(err).Msg("cannot publish job finished; will retry")
			_ = msg.NakWithDelay(time.Second)
			return
		}
		if changed {
			log.Info().Str("overall_status", string(job.OverallStatus)).Bool("abort", job.Abort).Msg("job finished")
		}
	}
	_ = msg.Ack()
}

// Apply folds one vault event into its job with compare-and-set and
// reports the job as stored and whether this call changed it.
func (t *Tracker) Apply(ctx context.Context, kind events.EventKind, res events.VaultResult) (events.Job, bool, error) {
	return updateJob(ctx, t.jobs, res.JobID, t.cfg.CASRetries(), func(j *events.Job) error {
		jv := j.Vault(res.VaultID)
		if jv == nil || jv.Status.Terminal() || j.OverallStatus != events.JobInProgress {
			return errNoChange
		}
		now := t.now().UTC()
		switch kind {
		case events.KindVaultStarted:
			if jv.Status != events.VaultPending {
				return errNoChange
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
			return errNoChange
		}
		j.UpdatedAt = now
		j.Finish(now)
		return nil
	})
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
			var apiErr *jetstream.APIError
			if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
				continue // taken over meanwhile: not ours any more
			}
			return err
		}
	}
	return nil
}
