package store

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/akvsync/akvsync/pkg/events"
)

// Batcher groups stream messages into Apply batches, etcd-backend style:
// it commits when Config.BatchLimit records are pending, and Run commits
// whatever is pending every Config.BatchInterval. Each added message
// carries its source and stream sequence; a message at or below the
// source's applied position is dropped (already applied before a
// restart), which makes redelivery harmless. A message's done callback
// runs after the commit that holds it (or with the commit's error), which
// is where a consumer acks it. Safe for concurrent use.
type Batcher struct {
	s *Store

	mu      sync.Mutex
	pending Batch
	dones   []func(error)
	applied map[string]uint64 // positions known committed
}

// NewBatcher returns a Batcher for the store, starting from its stored
// positions.
func (s *Store) NewBatcher() (*Batcher, error) {
	pos, err := s.Positions()
	if err != nil {
		return nil, err
	}
	return &Batcher{s: s, applied: pos}, nil
}

// AddKey queues a key record read at seq of source.
func (b *Batcher) AddKey(ctx context.Context, source string, seq uint64, r events.KeyRecord, done func(error)) error {
	return b.add(ctx, source, seq, done, func(p *Batch) { p.Keys = append(p.Keys, r) })
}

// AddJob queues a job record read at seq of source.
func (b *Batcher) AddJob(ctx context.Context, source string, seq uint64, j events.Job, done func(error)) error {
	return b.add(ctx, source, seq, done, func(p *Batch) { p.Jobs = append(p.Jobs, j) })
}

// DeleteJob queues a job deletion read at seq of source.
func (b *Batcher) DeleteJob(ctx context.Context, source string, seq uint64, id string, done func(error)) error {
	return b.add(ctx, source, seq, done, func(p *Batch) { p.DeletedJobs = append(p.DeletedJobs, id) })
}

func (b *Batcher) add(ctx context.Context, source string, seq uint64, done func(error), put func(*Batch)) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	cur := b.applied[source]
	if p, ok := b.pending.Positions[source]; ok && p > cur {
		cur = p
	}
	if seq <= cur {
		if done != nil {
			done(nil) // applied already: ack again
		}
		return nil
	}
	put(&b.pending)
	if b.pending.Positions == nil {
		b.pending.Positions = make(map[string]uint64)
	}
	b.pending.Positions[source] = seq
	if done != nil {
		b.dones = append(b.dones, done)
	}
	if b.pending.Len() >= b.s.cfg.BatchLimit {
		return b.flushLocked(ctx)
	}
	return nil
}

// Flush commits the pending records now.
func (b *Batcher) Flush(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.flushLocked(ctx)
}

func (b *Batcher) flushLocked(ctx context.Context) error {
	if b.pending.Len() == 0 && len(b.pending.Positions) == 0 {
		return nil
	}
	batch, dones := b.pending, b.dones
	b.pending, b.dones = Batch{}, nil
	err := b.s.Apply(ctx, batch)
	if err == nil {
		for src, seq := range batch.Positions {
			if seq > b.applied[src] {
				b.applied[src] = seq
			}
		}
	}
	for _, d := range dones {
		d(err)
	}
	if err != nil {
		return fmt.Errorf("store: flush batch: %w", err)
	}
	return nil
}

// Run flushes every Config.BatchInterval until ctx ends, then flushes
// once more with a fresh context and returns ctx's error. A failed flush
// is logged; its messages' done callbacks got the error (the consumer
// does not ack them, so they are redelivered).
func (b *Batcher) Run(ctx context.Context) error {
	t := time.NewTicker(b.s.cfg.BatchInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := b.Flush(fctx); err != nil {
				b.s.log.Error().Err(err).Msg("final batch flush failed")
			}
			return ctx.Err()
		case <-t.C:
			if err := b.Flush(ctx); err != nil {
				b.s.log.Error().Err(err).Msg("batch flush failed")
			}
		}
	}
}
