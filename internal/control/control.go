package control

import (
	"context"
	"errors"
	"fmt"

	"github.com/akvsync/akvsync/pkg/events"
	"github.com/akvsync/akvsync/pkg/jobs"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Plane bundles the control plane of one API process: the vault registry,
// the jobs and the query client, over one NATS connection.
type Plane struct {
	// Vaults is the vault registry.
	Vaults *Registry
	// Jobs creates, reads and cancels synchronization jobs.
	Jobs *Jobs
	// Queries asks the workers' inventory.
	Queries *Queries
	// Events follows the events stream for dashboards.
	Events *Events
	// Refreshes queues the key refreshes Event Grid deliveries ask for.
	Refreshes *Refreshes

	nc *nats.Conn
	js jetstream.JetStream
}

// New opens the control plane's buckets (which [events.Topology.EnsureStreams]
// must have created) and returns the plane. nc must be the connection js
// was made from.
func New(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, cfg Config) (*Plane, error) {
	if nc == nil || js == nil {
		return nil, errors.New("control: nil NATS connection or JetStream context")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	vaults, err := events.Bucket(ctx, js, events.BucketVaults)
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	locks, err := events.Bucket(ctx, js, events.BucketLocks)
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	jobsKV, err := events.Bucket(ctx, js, events.BucketJobs)
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	store, err := jobs.New(js, jobsKV, locks, jobs.Config{CASRetries: cfg.CASRetries})
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	reg := &Registry{kv: vaults, store: store, js: js, cfg: cfg}
	queries := &Queries{nc: nc, cfg: cfg}
	return &Plane{
		Vaults:    reg,
		Jobs:      &Jobs{store: store, js: js, reg: reg, queries: queries, cfg: cfg},
		Queries:   queries,
		Events:    &Events{js: js},
		Refreshes: &Refreshes{js: js, reg: reg},
		nc:        nc,
		js:        js,
	}, nil
}

// Ready reports whether the plane can serve requests: the NATS connection
// is up and JetStream answers. The error says what is wrong and wraps
// [ErrUnavailable].
func (p *Plane) Ready(ctx context.Context) error {
	if st := p.nc.Status(); st != nats.CONNECTED {
		return unavailable("nats", fmt.Errorf("connection is %s", st))
	}
	if _, err := p.js.AccountInfo(ctx); err != nil {
		return unavailable("jetstream", err)
	}
	return nil
}
