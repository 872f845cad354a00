package sync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/akvsync/akvsync/pkg/events"
)

// plannerBeat is how many vault tasks the planner publishes between two
// InProgress heartbeats on the request.
const plannerBeat = 100

// Planner consumes sync-requested events and publishes one vault task per
// vault of the job. Any number of workers run it on the same durable
// consumer.
//
// Ack semantics: a request is acked once every task is stored in the tasks
// stream (tasks carry Nats-Msg-Id "<job>/<vault>", so a redelivered request
// publishes no duplicate); it is nacked when publishing fails, and
// terminated when it does not decode.
type Planner struct {
	cfg    Config
	js     jetstream.JetStream
	vaults jetstream.KeyValue
	log    zerolog.Logger
}

// NewPlanner returns a planner publishing through js and reading vault
// records from the vaults bucket.
func NewPlanner(cfg Config, js jetstream.JetStream, vaults jetstream.KeyValue) (*Planner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	return &Planner{cfg: cfg, js: js, vaults: vaults, log: cfg.Logger.With().Str("component", "planner").Logger()}, nil
}

// Run consumes requests from cons until ctx ends.
func (p *Planner) Run(ctx context.Context, cons jetstream.Consumer) error {
	return consume(ctx, cons, 1, p.handle)
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
	for i, jv := range job.Vaults {
		if i > 0 && i%plannerBeat == 0 {
			_ = msg.InProgress() // a job of thousands of vaults outlasts AckWait
		}
		task := events.VaultTask{JobID: job.ID}
		v, err := p.vault(ctx, jv.VaultID)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			// Removed since the job was accepted: the syncer fails it.
			task.Vault = events.Vault{ID: jv.VaultID, Name: jv.Name, SubscriptionID: jv.SubscriptionID}
		case err != nil:
			log.Warn().Err(err).Str("vault", jv.QualifiedName()).Msg("cannot read vault; will retry")
			_ = msg.NakWithDelay(p.cfg.RetryDelay)
			return
		default:
			task.Vault = v
		}
		raw, err := json.Marshal(task)
		if err != nil {
			_ = msg.Term()
			return
		}
		if _, err := p.js.Publish(ctx, events.VaultTaskSubject(job.ID, jv.VaultID), raw,
			jetstream.WithMsgID(job.ID+"/"+jv.VaultID)); err != nil {
			log.Warn().Err(err).Str("vault", jv.QualifiedName()).Msg("cannot publish vault task; will retry")
			_ = msg.NakWithDelay(p.cfg.RetryDelay)
			return
		}
	}
	log.Info().Int("vaults", len(job.Vaults)).Msg("job planned")
	_ = msg.DoubleAck(ctx)
}

func (p *Planner) vault(ctx context.Context, id string) (events.Vault, error) {
	e, err := p.vaults.Get(ctx, id)
	if err != nil {
		return events.Vault{}, err
	}
	var v events.Vault
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		return events.Vault{}, fmt.Errorf("vault %s: decode: %w", id, err)
	}
	return v, nil
}
