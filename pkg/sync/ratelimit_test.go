package sync

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"
)

func TestAdaptiveLimiter(t *testing.T) {
	t.Run("CutsOncePerThrottleSignalDownToAFloor", func(t *testing.T) {
		l := NewAdaptiveLimiter(100)
		l.Observe(http.StatusOK)
		if got := l.Rate(); got != 100 {
			t.Fatalf("rate after 200 = %v, want 100", got)
		}
		l.Observe(http.StatusTooManyRequests)
		if got := l.Rate(); got != 100*ThrottleDecrease {
			t.Fatalf("rate after one 429 = %v, want %v", got, 100*ThrottleDecrease)
		}
		// The other requests in flight come back 429 too: one signal.
		for range 10 {
			l.Observe(http.StatusTooManyRequests)
		}
		if got := l.Rate(); got != 100*ThrottleDecrease {
			t.Fatalf("rate after a burst of 429s = %v, want one cut to %v", got, 100*ThrottleDecrease)
		}
		for range 30 {
			l.mu.Lock()
			l.lastCut = time.Time{} // a later, separate signal
			l.mu.Unlock()
			l.Observe(http.StatusTooManyRequests)
		}
		if got := l.Rate(); got != 100*ThrottleFloor {
			t.Fatalf("rate after many 429s = %v, want the floor %v", got, 100*ThrottleFloor)
		}
	})
	t.Run("RecoversFastToTheKneeThenProbes", func(t *testing.T) {
		l := NewAdaptiveLimiter(100)
		l.Observe(http.StatusTooManyRequests) // knee 100, rate 70
		back := func(d time.Duration) {
			l.mu.Lock()
			l.lastTick = l.lastTick.Add(-d)
			l.mu.Unlock()
			l.step()
		}
		back(time.Second)
		if got := l.Rate(); got < 80 || got > 80.5 {
			t.Fatalf("rate one second after the cut = %v, want about 80 (+%v of the ceiling per s)", got, ThrottleRecovery)
		}
		back(time.Hour)
		if got := l.Rate(); got != 100 {
			t.Fatalf("rate long after the cut = %v, want the ceiling 100", got)
		}
		// A 429 below the ceiling: fast up to that knee, slowly above it.
		l.SetCeiling(200) // knee 200, rate 200
		l.Observe(http.StatusTooManyRequests)
		l.mu.Lock()
		l.knee = 150 // as if the last 429 came at 150/s
		l.cur = 140
		l.mu.Unlock()
		back(time.Second)
		if got := l.Rate(); got != 150 {
			t.Fatalf("rate = %v, want the knee 150 (fast recovery stops there)", got)
		}
		back(time.Second)
		if got := l.Rate(); got < 154 || got > 154.5 {
			t.Fatalf("rate = %v, want about 154 (probing at %v of the ceiling per s)", got, ThrottleProbe)
		}
	})
	t.Run("CeilingMovesWithTheShare", func(t *testing.T) {
		l := NewAdaptiveLimiter(400)
		l.SetCeiling(100)
		if got, c := l.Rate(), l.Ceiling(); got != 100 || c != 100 {
			t.Fatalf("rate, ceiling = %v, %v after a new share of 100", got, c)
		}
		l.Observe(http.StatusTooManyRequests)
		l.SetCeiling(200)
		if got := l.Rate(); got != 200*ThrottleDecrease {
			t.Fatalf("rate = %v, want %v: a backed-off limiter keeps its fraction", got, 200*ThrottleDecrease)
		}
		if got := l.lim.Burst(); got != l.burstFor(200*ThrottleDecrease) {
			t.Fatalf("burst = %d, want %d", got, l.burstFor(200*ThrottleDecrease))
		}
	})
	t.Run("SubscriptionCutsOnlyWhenTwoVaultsAreThrottled", func(t *testing.T) {
		sub := NewAdaptiveLimiter(100)
		vaultA, vaultB := NewAdaptiveLimiter(10), NewAdaptiveLimiter(10)
		a := throttles{vaultID: "a", vault: vaultA, subscription: sub}
		b := throttles{vaultID: "b", vault: vaultB, subscription: sub}
		wait := func(th throttles) error {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			defer cancel()
			return th.Wait(ctx)
		}
		a.Observe(http.StatusTooManyRequests)
		a.ObserveRetryAfter(time.Hour)
		if err := wait(b); err != nil {
			t.Fatalf("vault b waits on vault a's own Retry-After: %v", err)
		}
		if sub.Rate() != 100 || vaultA.Rate() != 10*ThrottleDecrease {
			t.Fatalf("one vault throttled: subscription %v, vault %v; want 100 and %v (the vault's own limit)", sub.Rate(), vaultA.Rate(), 10*ThrottleDecrease)
		}
		a.Observe(http.StatusTooManyRequests)
		if sub.Rate() != 100 {
			t.Fatalf("the same vault throttled again: subscription %v, want 100", sub.Rate())
		}
		b.Observe(http.StatusTooManyRequests)
		if sub.Rate() != 100*ThrottleDecrease {
			t.Fatalf("two vaults throttled: subscription %v, want %v", sub.Rate(), 100*ThrottleDecrease)
		}
		// The subscription's limit was hit: its Retry-After holds every vault.
		b.ObserveRetryAfter(time.Hour)
		if err := wait(throttles{vaultID: "c", vault: NewAdaptiveLimiter(10), subscription: sub}); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("vault c during the subscription's Retry-After: %v, want held", err)
		}
	})
	t.Run("WaitersQueuedBeforeACutQueueAgain", func(t *testing.T) {
		l := NewAdaptiveLimiter(10) // a bucket of 1
		ctx := context.Background()
		if err := l.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		gen, _ := l.step()
		l.Observe(http.StatusTooManyRequests)
		if g, _ := l.step(); g == gen {
			t.Fatal("a cut did not start a new generation")
		}
		before := l.Ceiling()
		l.SetCeiling(before / 2)
		if g, _ := l.step(); g == gen+1 {
			t.Fatal("a lower share did not start a new generation")
		}
	})
	t.Run("RetryAfterHoldsEveryRequest", func(t *testing.T) {
		l := NewAdaptiveLimiter(1000)
		l.Pause(time.Hour)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		if err := l.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Wait during a Retry-After pause = %v, want the context's deadline", err)
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
		l.Pause(time.Second)
		l.SetCeiling(5)
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
