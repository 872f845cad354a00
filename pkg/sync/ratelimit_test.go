package sync

import (
	"context"
	"net/http"
	"testing"
)

func TestAdaptiveLimiter(t *testing.T) {
	t.Run("HalvesOnThrottleDownToAFloor", func(t *testing.T) {
		l := NewAdaptiveLimiter(100)
		l.Observe(http.StatusOK)
		if got := l.Rate(); got != 100 {
			t.Fatalf("rate after 200 = %v, want 100", got)
		}
		l.Observe(http.StatusTooManyRequests)
		if got := l.Rate(); got != 50 {
			t.Fatalf("rate after one 429 = %v, want 50", got)
		}
		for range 20 {
			l.Observe(http.StatusTooManyRequests)
		}
		if got := l.Rate(); got != 100*throttleFloor {
			t.Fatalf("rate after many 429s = %v, want the floor %v", got, 100*throttleFloor)
		}
	})
	t.Run("NilMeansUnlimited", func(t *testing.T) {
		l := NewAdaptiveLimiter(0)
		if l != nil {
			t.Fatal("a zero rate must give no limiter")
		}
		if err := l.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		l.Observe(http.StatusTooManyRequests)
	})
	t.Run("WaitHonoursCancellation", func(t *testing.T) {
		l := NewAdaptiveLimiter(1)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := l.Wait(ctx); err == nil {
			t.Fatal("Wait on a cancelled context returned nil")
		}
	})
}

func TestAbortRegistry(t *testing.T) {
	r := newAbortRegistry()
	ctx1, c1 := context.WithCancelCause(context.Background())
	ctx2, c2 := context.WithCancelCause(context.Background())
	ctx3, c3 := context.WithCancelCause(context.Background())
	defer c3(nil)
	r.add("job-a", c1)
	remove := r.add("job-a", c2)
	r.add("job-b", c3)
	remove()
	if n := r.abort("job-a"); n != 1 {
		t.Fatalf("aborted %d syncs, want 1", n)
	}
	if context.Cause(ctx1) != ErrAborted {
		t.Fatalf("cause = %v, want ErrAborted", context.Cause(ctx1))
	}
	if ctx2.Err() != nil || ctx3.Err() != nil {
		t.Fatal("a removed or other job's sync was cancelled")
	}
}
