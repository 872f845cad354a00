package sync

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/akvsync/akvsync/pkg/events"
	"github.com/akvsync/akvsync/pkg/jobs"
)

// Planner consumes sync-requested events and publishes one vault task per
// vault of the job, reading the job's plan a chunk at a time and
// publishing each chunk's tasks asynchronously (pipelined), so a job of
// 100,000 vaults is planned in seconds with one chunk in memory.
// Any number of workers run it on the same durable consumer.
//
// Ack semantics: a request is acked once every task is stored in the tasks
// stream (tasks carry Nats-Msg-Id "<job>/<vault>", so a redelivered request
// publishes no duplicate within the duplicate window, and a task published
// again later finds its vault terminal and does nothing); it is nacked
// when reading the plan or publishing fails, and terminated when it does
// not decode or its job is gone.
type Planner struct {
	cfg   Config
	js    jetstream.JetStream
	store *jobs.Store
	log   zerolog.Logger
}

// NewPlanner returns a planner publishing through js and reading job plans
// through store.
func NewPlanner(cfg Config, js jetstream.JetStream, store *jobs.Store) (*Planner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	return &Planner{cfg: cfg, js: js, store: store, log: cfg.Logger.With().Str("component", "planner").Logger()}, nil
}

// Run consumes requests from cons until ctx ends.
func (p *Planner) Run(ctx context.Context, cons jetstream.Consumer) error {
	return consume(ctx, cons, 1, func(ctx context.Context, msg jetstream.Msg, _ func()) { p.handle(ctx, msg) })
}

func (p *Planner) handle(ctx context.Context, msg jetstream.Msg) {
	var req events.SyncRequested
	if _, err := events.DecodeEvent(msg.Data(), &req); err != nil {
		p.log.Error().Err(err).Str("subject", msg.Subject()).Msg("dropping undecodable sync request")
		_ = msg.Term()
		return
	}
	job := req.Job
	log := p.log.With().Str("job_id", job.ID).Logger()
	// Dashboards watch the events stream: the job's "requested" event goes
	// there first (deduplicated by message id across redeliveries). It is
	// only for display, so a failure is logged and planning goes on.
	if err := Retry(ctx, log, RetryPolicy{Attempts: 3}, "publish job requested", func(ctx context.Context) error {
		_, err := publishEvent(ctx, p.js, p.cfg.Source, events.JobEventSubject(job.ID, events.KindSyncRequested),
			events.KindSyncRequested.Type("job"), job.ID, job.ID+"/"+string(events.KindSyncRequested), req)
		return err
	}); err != nil {
		log.Warn().Err(err).Msg("cannot publish the job's requested event")
	}
	tasks := 0
	var err error
	for n := 0; n < job.PlanChunks && err == nil; n++ {
		// Each chunk is read and published with retries: a redelivered
		// request would plan the whole job again (deduplicated, but long
		// for 100,000 vaults).
		err = Retry(ctx, log, RetryPolicy{}, "plan chunk", func(ctx context.Context) error {
			c, err := p.store.Plan(ctx, job.ID, n)
			if err != nil {
				return err
			}
			done, err := p.publishChunk(ctx, job.ID, c)
			if err == nil {
				tasks += done
			}
			return err
		})
		_ = msg.InProgress() // a job of many chunks may outlast AckWait
	}
	if err != nil {
		log.Warn().Err(err).Int("published", tasks).Msg("cannot plan the job; will retry")
		_ = msg.NakWithDelay(p.cfg.RetryDelay)
		return
	}
	log.Info().Int("vaults", tasks).Int("chunks", job.PlanChunks).Msg("job planned")
	_ = Retry(ctx, log, RetryPolicy{Attempts: 5}, "ack sync request", func(ctx context.Context) error { return msg.DoubleAck(ctx) })
}

// publishChunk publishes the tasks of one plan chunk, pipelined, and
// waits for every ack.
func (p *Planner) publishChunk(ctx context.Context, jobID string, c events.JobPlanChunk) (int, error) {
	futs := make([]jetstream.PubAckFuture, 0, len(c.Vaults))
	var pubErr error
	for _, pv := range c.Vaults {
		raw, err := json.Marshal(events.VaultTask{JobID: jobID, Vault: pv.Vault})
		if err != nil {
			pubErr = err
			break
		}
		f, err := p.js.PublishAsync(events.VaultTaskSubject(jobID, pv.ID), raw, jetstream.WithMsgID(jobID+"/"+pv.ID))
		if err != nil {
			pubErr = fmt.Errorf("publish task of vault %s: %w", pv.ID, err)
			break
		}
		futs = append(futs, f)
	}
	done := 0
	for _, f := range futs {
		select {
		case <-f.Ok():
			done++
		case err := <-f.Err():
			if pubErr == nil {
				pubErr = fmt.Errorf("publish task: %w", err)
			}
		case <-ctx.Done():
			return done, ctx.Err()
		}
	}
	return done, pubErr
}
