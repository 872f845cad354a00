package sync

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

func TestIsTransient(t *testing.T) {
	for _, err := range []error{
		jetstream.ErrNoStreamResponse, nats.ErrTimeout, nats.ErrNoResponders, nats.ErrConnectionReconnecting,
		jetstream.ErrConsumerLeadershipChanged, jetstream.ErrAsyncPublishTimeout, context.DeadlineExceeded,
		fmt.Errorf("publish x: %w", jetstream.ErrNoStreamResponse),
		&jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream system temporarily unavailable"},
	} {
		if !IsTransient(err) {
			t.Errorf("%v is not transient", err)
		}
	}
	for _, err := range []error{
		nil, context.Canceled, jetstream.ErrKeyNotFound, nats.ErrConnectionClosed, ErrPermanent, errors.New("boom"),
		&jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeStreamWrongLastSequence},
		fmt.Errorf("%w", errors.Join(jetstream.ErrNoStreamResponse, context.Canceled)),
	} {
		if IsTransient(err) {
			t.Errorf("%v is transient", err)
		}
	}
}

func TestRetry(t *testing.T) {
	ctx := context.Background()
	fast := RetryPolicy{Initial: 1, Max: 1}
	t.Run("RetriesTransientErrorsUntilSuccess", func(t *testing.T) {
		calls := 0
		err := Retry(ctx, zerolog.Nop(), fast, "op", func(context.Context) error {
			if calls++; calls < 4 {
				return jetstream.ErrNoStreamResponse
			}
			return nil
		})
		if err != nil || calls != 4 {
			t.Fatalf("err %v after %d calls, want nil after 4", err, calls)
		}
	})
	t.Run("StopsAtAPermanentError", func(t *testing.T) {
		calls := 0
		err := Retry(ctx, zerolog.Nop(), fast, "op", func(context.Context) error { calls++; return jetstream.ErrKeyNotFound })
		if !errors.Is(err, jetstream.ErrKeyNotFound) || calls != 1 {
			t.Fatalf("err %v after %d calls", err, calls)
		}
	})
	t.Run("StopsAfterAttempts", func(t *testing.T) {
		calls := 0
		p := fast
		p.Attempts = 3
		err := Retry(ctx, zerolog.Nop(), p, "op", func(context.Context) error { calls++; return nats.ErrTimeout })
		if !errors.Is(err, nats.ErrTimeout) || calls != 3 {
			t.Fatalf("err %v after %d calls", err, calls)
		}
	})
	t.Run("StopsWhenTheContextEnds", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		calls := 0
		err := Retry(cctx, zerolog.Nop(), RetryPolicy{Budget: -1}, "op", func(context.Context) error {
			if calls++; calls == 2 {
				cancel()
			}
			return nats.ErrNoResponders
		})
		if !errors.Is(err, nats.ErrNoResponders) || calls != 2 {
			t.Fatalf("err %v after %d calls", err, calls)
		}
	})
}
