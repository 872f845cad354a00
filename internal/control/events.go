package control

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/akvsync/akvsync/pkg/events"
)

// EventFilter selects the events a follower receives.
type EventFilter struct {
	// JobID, when set, keeps only the events of that job and its vaults.
	JobID string
	// AfterSeq, when non-zero, starts after this stream sequence (the last
	// event a client saw, e.g. SSE's Last-Event-ID); else only new events.
	AfterSeq uint64
}

// Event is one stored CloudEvent with its stream sequence.
type Event struct {
	Seq     uint64
	Subject string
	Data    []byte
}

// Events follows the events stream for dashboards.
type Events struct {
	js jetstream.JetStream
}

// Follow calls fn with every event matching f, in order, until ctx ends
// or fn returns an error. It uses an ordered (ephemeral) consumer, removed
// when it returns.
func (e *Events) Follow(ctx context.Context, f EventFilter, fn func(Event) error) error {
	if f.JobID != "" {
		id, ok := normalizeID(f.JobID)
		if !ok {
			return invalidf("job_id must be a job id")
		}
		f.JobID = id
	}
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy}
	if f.AfterSeq > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, f.AfterSeq+1
	}
	if f.JobID != "" {
		cfg.FilterSubjects = events.JobEventsFilters(f.JobID)
	}
	cons, err := e.js.OrderedConsumer(ctx, events.StreamEvents, cfg)
	if err != nil {
		return unavailable("follow events", err)
	}
	it, err := cons.Messages()
	if err != nil {
		return unavailable("follow events", err)
	}
	defer it.Stop()
	go func() { <-ctx.Done(); it.Stop() }()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			return unavailable("follow events", err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("control: event metadata: %w", err)
		}
		if err := fn(Event{Seq: md.Sequence.Stream, Subject: msg.Subject(), Data: msg.Data()}); err != nil {
			return err
		}
	}
}
