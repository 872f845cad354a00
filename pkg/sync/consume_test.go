package sync

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/akvsync/akvsync/internal/natstest"
)

// TestConsumeRelease: a handler that releases its slot lets the next
// message start while it still runs, up to trailingFactor × parallel
// released handlers; past that, nothing more is pulled until one returns.
// Handlers that do not release hold their slot to the end.
func TestConsumeRelease(t *testing.T) {
	const parallel, msgs = 2, 20
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := natstest.RunServer(t, natstest.Options{})
	_, js := natstest.Connect(t, s)
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	for i := range msgs {
		if _, err := js.Publish(ctx, fmt.Sprintf("t.%d", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	newCons := func(name string) jetstream.Consumer {
		c, err := st.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: name, AckPolicy: jetstream.AckExplicitPolicy})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	// run consumes with handlers that block until unblock is closed,
	// releasing first when release is set, and reports how many handlers
	// were running once no more start.
	run := func(t *testing.T, name string, releaseEarly bool) int {
		cctx, stop := context.WithCancel(ctx)
		unblock := make(chan struct{})
		var mu sync.Mutex
		running := 0
		done := make(chan error, 1)
		go func() {
			done <- consume(cctx, newCons(name), parallel, func(_ context.Context, msg jetstream.Msg, release func()) {
				mu.Lock()
				running++
				mu.Unlock()
				if releaseEarly {
					release()
				}
				<-unblock
				_ = msg.Ack()
			})
		}()
		want := parallel
		if releaseEarly {
			want = parallel * (1 + trailingFactor)
		}
		natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
			mu.Lock()
			defer mu.Unlock()
			if running < want {
				return fmt.Errorf("%d handlers running, want %d", running, want)
			}
			return nil
		})
		// Nothing more starts while every handler is blocked: the pull
		// loop waits for a slot. A pull in flight takes at most fetchWait.
		info, err := st.Consumer(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		ci, err := info.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		got := running
		mu.Unlock()
		if ci.NumAckPending != got {
			t.Errorf("%d messages delivered and unacked, %d handlers running", ci.NumAckPending, got)
		}
		close(unblock)
		natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
			mu.Lock()
			defer mu.Unlock()
			if running < msgs {
				return fmt.Errorf("%d of %d handled", running, msgs)
			}
			return nil
		})
		stop()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		return got
	}

	t.Run("released handlers let the next messages start, bounded", func(t *testing.T) {
		if got := run(t, "released", true); got != parallel*(1+trailingFactor) {
			t.Errorf("%d handlers ran at once, want %d", got, parallel*(1+trailingFactor))
		}
	})
	t.Run("handlers that keep their slot bound the intake to parallel", func(t *testing.T) {
		if got := run(t, "kept", false); got != parallel {
			t.Errorf("%d handlers ran at once, want %d", got, parallel)
		}
	})
}
