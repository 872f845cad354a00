package schedule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/robfig/cron/v3"

	"github.com/akvsync/akvsync/internal/control"
	"github.com/akvsync/akvsync/pkg/events"
)

// state is a config's firing state, in the bucket under "state.<id>",
// written only with compare-and-set. LastTick is the last tick handled
// (fired or skipped): a tick at or before it is never handled again. A
// claim names the job a replica is creating for ClaimTick.
type state struct {
	LastTick   time.Time `json:"last_tick"`
	LastJobID  string    `json:"last_job_id,omitempty"`
	ClaimTick  time.Time `json:"claim_tick"`
	ClaimJobID string    `json:"claim_job_id,omitempty"`
	ClaimAt    time.Time `json:"claim_at"`
}

// errClaimed: another replica is creating this tick's job right now.
var errClaimed = errors.New("schedule: tick claimed by another replica")

// Run consumes the schedule fires from cons (the shared durable
// consumer, see [events.Topology.EnsureConsumer] for
// events.StreamSchedules) until ctx ends, and fires the ticks missed
// while no schedule fired: at start and every CatchUpEvery.
func (s *Scheduler) Run(ctx context.Context, cons jetstream.Consumer) error {
	it, err := cons.Messages(jetstream.PullMaxMessages(16))
	if err != nil {
		return fmt.Errorf("schedule: consume: %w", err)
	}
	defer it.Stop()
	go func() { <-ctx.Done(); it.Stop() }()
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go s.catchUpLoop(cctx)
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			return fmt.Errorf("schedule: consume: %w", err)
		}
		s.handle(ctx, msg)
	}
}

// catchUpLoop runs CatchUp at start and then periodically.
func (s *Scheduler) catchUpLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.CatchUpEvery)
	defer t.Stop()
	for {
		if err := s.CatchUp(ctx); err != nil && ctx.Err() == nil {
			s.cfg.Log.Warn().Err(err).Msg("schedule catch-up")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// handle fires the tick of one fire message and acks it, or naks it for a
// retry when NATS failed. It heartbeats the message while it works, so
// the message is redelivered to another replica only when this one stops.
func (s *Scheduler) handle(ctx context.Context, msg jetstream.Msg) {
	id, ok := events.ParseScheduleFireSubject(msg.Subject())
	md, err := msg.Metadata()
	if !ok || err != nil {
		_ = msg.Term()
		return
	}
	hctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		t := time.NewTicker(max(s.cfg.ClaimLease/3, 100*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-hctx.Done():
				return
			case <-t.C:
				_ = msg.InProgress()
			}
		}
	}()
	err = s.fireAt(hctx, id, md.Timestamp, false)
	if ctx.Err() != nil {
		return // stopping: the message comes back to another replica
	}
	switch {
	case errors.Is(err, errClaimed):
		_ = msg.NakWithDelay(s.cfg.ClaimLease)
	case err != nil:
		s.cfg.Log.Warn().Err(err).Str("job_config_id", id).Msg("schedule fire failed; retrying")
		_ = msg.NakWithDelay(time.Second)
	default:
		_ = msg.Ack()
	}
}

// CatchUp fires, for each enabled config, its most recent tick if that
// tick passed after the config was armed and after the last tick handled:
// ticks missed while nothing fired run once, not once per missed tick.
// Every replica may run it at once: the tick's dedupe makes one job.
func (s *Scheduler) CatchUp(ctx context.Context) error {
	rs, err := s.all(ctx)
	if err != nil {
		return err
	}
	st, err := s.js.Stream(ctx, events.StreamSchedules)
	if err != nil {
		return unavailable("read schedules stream", err)
	}
	var errs []error
	for _, r := range rs {
		if err := s.reconcile(ctx, st, &r.JobConfig); err != nil {
			errs = append(errs, err)
		}
		if r.Disabled {
			continue
		}
		sched, err := s.schedule(r.RunAt)
		if err != nil {
			continue
		}
		tick := prevTick(sched, s.cfg.Now().UTC())
		if tick.IsZero() || !tick.After(r.ArmedAt) {
			continue
		}
		if err := s.fire(ctx, r.ID, tick, true); err != nil && !errors.Is(err, errClaimed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// reconcile re-arms (or disarms) a config whose schedule message is not
// what the config says: an update whose arming failed after the config was
// stored, or a schedule lost with a stream.
func (s *Scheduler) reconcile(ctx context.Context, st jetstream.Stream, c *JobConfig) error {
	want := ""
	if !c.Disabled && (c.EndDate == nil || !c.EndDate.Before(s.cfg.Now())) {
		want = s.cfg.Pattern(c.RunAt)
	}
	have := ""
	m, err := st.GetLastMsgForSubject(ctx, events.ScheduleArmSubject(c.ID))
	switch {
	case err == nil:
		have = m.Header.Get(jetstream.ScheduleHeader)
	case errors.Is(err, jetstream.ErrMsgNotFound):
	default:
		return unavailable("read schedule", err)
	}
	if have == want {
		return nil
	}
	s.cfg.Log.Info().Str("job_config_id", c.ID).Str("want", want).Str("have", have).Msg("re-arming a schedule that differs from its config")
	return s.arm(ctx, c)
}

// fireAt fires the tick of a fire message published at ts. A fire that is
// stale (a later tick already passed: it waited while no replica ran)
// fires the latest tick instead, the same one catch-up fires.
func (s *Scheduler) fireAt(ctx context.Context, id string, ts time.Time, catchUp bool) error {
	r, _, err := s.get(ctx, id)
	if errors.Is(err, control.ErrNotFound) {
		return nil // deleted
	}
	if err != nil {
		return err
	}
	sched, err := s.schedule(r.RunAt)
	if err != nil {
		return nil
	}
	tick := prevTick(sched, ts.UTC())
	if latest := prevTick(sched, s.cfg.Now().UTC()); latest.After(tick) {
		tick, catchUp = latest, true
	}
	if tick.IsZero() {
		return nil
	}
	if r.EndDate != nil && tick.After(*r.EndDate) {
		// Past its end: stop the server firing it (best effort).
		_ = s.disarm(ctx, id)
		return nil
	}
	return s.fire(ctx, id, tick, catchUp)
}

// fire handles one tick of a config at most once across replicas: it skips
// (with an event) when the config's previous job still runs, else claims
// the tick with a compare-and-set naming the job id it will create,
// creates the job through the same path as POST synchronization-jobs, and
// records it. A claim older than ClaimLease (its replica died) is taken
// over: if its job exists it is only recorded, else it is created.
func (s *Scheduler) fire(ctx context.Context, id string, tick time.Time, catchUp bool) error {
	for range DefaultCASRetries {
		r, _, err := s.get(ctx, id)
		if errors.Is(err, control.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if !r.active(tick) {
			return nil
		}
		st, rev, err := s.state(ctx, id)
		if err != nil {
			return err
		}
		if !tick.After(st.LastTick) {
			return nil // handled already
		}
		now := s.cfg.Now().UTC()
		if st.ClaimJobID != "" {
			if now.Sub(st.ClaimAt) < s.cfg.ClaimLease {
				return errClaimed
			}
			// Take over a dead replica's claim: its job may exist.
			if _, err := s.jobs.Header(ctx, st.ClaimJobID); err == nil {
				if err := s.record(ctx, &r.JobConfig, st.ClaimTick, st.ClaimJobID, catchUp); err != nil || st.ClaimTick.Equal(tick) {
					return err
				}
				continue // an older tick's job: recorded; now this tick
			} else if !errors.Is(err, control.ErrNotFound) {
				return err
			}
		}
		if st.LastJobID != "" {
			h, err := s.jobs.Header(ctx, st.LastJobID)
			switch {
			case err == nil && !h.Finished():
				return s.skip(ctx, &r.JobConfig, tick, st, rev, h.ID, "the previous job of this config is still running", catchUp)
			case err != nil && !errors.Is(err, control.ErrNotFound):
				return err
			}
		}
		claim := st
		claim.ClaimTick, claim.ClaimJobID, claim.ClaimAt = tick, events.NewID(), now
		if ok, err := s.putState(ctx, id, claim, rev); err != nil {
			return err
		} else if !ok {
			continue
		}
		s.stage("claimed")
		stopRenew := s.renewClaim(ctx, id, claim.ClaimJobID)
		req := control.CreateJobRequest{KeyVaults: r.Params.KeyVaults, SynchronizeAll: r.Params.SynchronizeAll}
		_, err = s.jobs.CreateScheduled(ctx, req, id, claim.ClaimJobID)
		stopRenew()
		switch {
		case err == nil:
			s.stage("created")
			return s.record(ctx, &r.JobConfig, tick, claim.ClaimJobID, catchUp)
		case errors.Is(err, control.ErrInvalid), errors.Is(err, control.ErrConflict), errors.Is(err, control.ErrUnprocessable):
			// A vault is busy, unknown or gone: this tick starts nothing.
			st2, rev2, serr := s.state(ctx, id)
			if serr != nil {
				return serr
			}
			return s.skip(ctx, &r.JobConfig, tick, st2, rev2, "", err.Error(), catchUp)
		default:
			return err // NATS failed: retried; the claim lapses after ClaimLease
		}
	}
	return fmt.Errorf("schedule: config %s: state contended", id)
}

// renewClaim keeps a claim fresh while its job is being created, so no
// replica takes over a live claimant's tick (only a dead one's stops being
// renewed). The returned stop waits for the renewer to end.
func (s *Scheduler) renewClaim(ctx context.Context, id, jobID string) (stop func()) {
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(max(s.cfg.ClaimLease/4, 50*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-rctx.Done():
				return
			case <-t.C:
			}
			// One compare-and-set: a claim that moved is not ours to renew.
			_, _, _, _ = events.UpdateRecord(rctx, s.kv, stateKey(id), events.CAS{Attempts: 1}, func(st *state, _ bool) error {
				if st.ClaimJobID != jobID {
					return events.ErrNoChange
				}
				st.ClaimAt = s.cfg.Now().UTC()
				return nil
			})
		}
	}()
	return func() { cancel(); <-done }
}

// record marks tick handled by jobID and publishes the fired event.
func (s *Scheduler) record(ctx context.Context, c *JobConfig, tick time.Time, jobID string, catchUp bool) error {
	_, _, _, err := events.UpdateRecord(ctx, s.kv, stateKey(c.ID), events.CAS{Attempts: DefaultCASRetries, Create: true}, func(st *state, _ bool) error {
		if !tick.After(st.LastTick) {
			return events.ErrNoChange // another replica recorded it
		}
		st.LastTick, st.LastJobID = tick, jobID
		st.ClaimTick, st.ClaimJobID, st.ClaimAt = time.Time{}, "", time.Time{}
		return nil
	})
	switch {
	case errors.Is(err, events.ErrKV):
		return unavailable("write schedule state", err)
	case err != nil && !errors.Is(err, events.ErrContended):
		return fmt.Errorf("schedule: state of %s: %w", c.ID, err)
	}
	return s.publish(ctx, c, events.KindScheduleFired, events.ScheduleEvent{
		JobConfigID: c.ID, Name: c.Name, Tick: tick, JobID: jobID, CatchUp: catchUp,
	})
}

// skip marks tick handled without a job and publishes the skipped event.
func (s *Scheduler) skip(ctx context.Context, c *JobConfig, tick time.Time, st state, rev uint64, jobID, reason string, catchUp bool) error {
	st.LastTick = tick
	st.ClaimTick, st.ClaimJobID, st.ClaimAt = time.Time{}, "", time.Time{}
	ok, err := s.putState(ctx, c.ID, st, rev)
	if err != nil {
		return err
	}
	if !ok {
		return s.fire(ctx, c.ID, tick, catchUp) // moved: look again
	}
	s.cfg.Log.Info().Str("job_config_id", c.ID).Time("tick", tick).Str("reason", reason).Msg("schedule tick skipped")
	return s.publish(ctx, c, events.KindScheduleSkipped, events.ScheduleEvent{
		JobConfigID: c.ID, Name: c.Name, Tick: tick, JobID: jobID, Reason: reason, CatchUp: catchUp,
	})
}

// publish puts a schedule event on the events stream, deduplicated per
// config, tick and kind.
func (s *Scheduler) publish(ctx context.Context, c *JobConfig, kind events.EventKind, data events.ScheduleEvent) error {
	ev, err := events.MarshalEvent(s.cfg.Source, kind.Type(events.EventScopeSchedule), c.ID, data)
	if err != nil {
		return fmt.Errorf("schedule: %w", err)
	}
	msgID := c.ID + "/" + strconv.FormatInt(data.Tick.Unix(), 10) + "/" + string(kind)
	if _, err := s.js.Publish(ctx, events.ScheduleEventSubject(c.ID, kind), ev, jetstream.WithMsgID(msgID)); err != nil {
		return unavailable("publish schedule event", err)
	}
	return nil
}

// state reads a config's firing state and its revision (0: none yet).
func (s *Scheduler) state(ctx context.Context, id string) (state, uint64, error) {
	e, err := s.kv.Get(ctx, stateKey(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return state{}, 0, nil
	}
	if err != nil {
		return state{}, 0, unavailable("read schedule state", err)
	}
	var st state
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		return state{}, 0, fmt.Errorf("schedule: state of %s: %w", id, err)
	}
	return st, e.Revision(), nil
}

// putState writes st if the state is still at rev; ok is false when it
// moved.
func (s *Scheduler) putState(ctx context.Context, id string, st state, rev uint64) (ok bool, err error) {
	raw, err := json.Marshal(st)
	if err != nil {
		return false, fmt.Errorf("schedule: %w", err)
	}
	if rev == 0 {
		_, err = s.kv.Create(ctx, stateKey(id), raw)
	} else {
		_, err = s.kv.Update(ctx, stateKey(id), raw, rev)
	}
	if events.RevisionMismatch(err) {
		return false, nil
	}
	if err != nil {
		return false, unavailable("write schedule state", err)
	}
	return true, nil
}

func (s *Scheduler) stage(name string) {
	if s.hook != nil {
		s.hook(name)
	}
}

// prevTick returns the latest tick of sched at or before t (zero if none
// within five years).
func prevTick(sched cron.Schedule, t time.Time) time.Time {
	for _, back := range []time.Duration{time.Minute, time.Hour, 24 * time.Hour, 32 * 24 * time.Hour, 366 * 24 * time.Hour, 5 * 366 * 24 * time.Hour} {
		n := sched.Next(t.Add(-back))
		if n.IsZero() || n.After(t) {
			continue
		}
		for {
			next := sched.Next(n)
			if next.IsZero() || next.After(t) {
				return n
			}
			n = next
		}
	}
	return time.Time{}
}
