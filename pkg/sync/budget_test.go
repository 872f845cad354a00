package sync

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/akvsync/akvsync/internal/natstest"
	"github.com/akvsync/akvsync/pkg/events"
)

// TestBudgetSharesFollowMembership: workers (each a Budget on its own NATS
// connection, as separate processes) joining a subscription lower the
// others' shares; leaving, dying or being cut off from NATS raises them.
// The shares never add up to more than the budget once every worker has
// seen the others.
func TestBudgetSharesFollowMembership(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv := natstest.RunServer(t, natstest.Options{})
	_, js := natstest.Connect(t, srv)
	const ttl = time.Second
	if err := (events.Topology{BudgetLeaseTTL: ttl}).EnsureStreams(ctx, js); err != nil {
		t.Fatal(err)
	}
	const rate = 300.0
	type member struct {
		b    *Budget
		nc   *nats.Conn
		stop context.CancelFunc
		done chan struct{}
	}
	start := func(name string) *member {
		nc, js := natstest.Connect(t, srv)
		kv, err := events.Bucket(ctx, js, events.BucketBudget)
		if err != nil {
			t.Fatal(err)
		}
		b, err := NewBudget(ctx, kv, BudgetConfig{Rate: rate, Linger: -1, WorkerID: name, Source: "test/" + name})
		if err != nil {
			t.Fatal(err)
		}
		rctx, stop := context.WithCancel(ctx)
		m := &member{b: b, nc: nc, stop: stop, done: make(chan struct{})}
		go func() { defer close(m.done); _ = b.Run(rctx) }()
		t.Cleanup(func() { stop(); <-m.done })
		return m
	}
	acquire := func(m *member, sub string) (*AdaptiveLimiter, func()) {
		lim, release, err := m.b.Acquire(ctx, sub)
		if err != nil {
			t.Fatal(err)
		}
		return lim, release
	}
	wantShares := func(sub string, want float64, ms ...*member) {
		t.Helper()
		natstest.CheckFor(t, 10*time.Second, 5*time.Millisecond, func() error {
			for _, m := range ms {
				if got, _ := m.b.Share(sub); got != want {
					return fmt.Errorf("worker %s: share of %s = %v, want %v", m.b.WorkerID(), sub, got, want)
				}
			}
			return nil
		})
	}

	a, b, c := start("a"), start("b"), start("c")
	limA, _ := acquire(a, "sub-1")
	if got := limA.Ceiling(); got != rate {
		t.Fatalf("a alone: ceiling %v, want the whole budget %v", got, rate)
	}
	// A joiner starts at its share at once; the others follow its lease.
	_, releaseB := acquire(b, "sub-1")
	if got, n := b.b.Share("sub-1"); got != rate/2 || n != 2 {
		t.Fatalf("b joining: share %v of %d workers, want %v of 2", got, n, rate/2)
	}
	wantShares("sub-1", rate/2, a)
	_, releaseC := acquire(c, "sub-1")
	wantShares("sub-1", rate/3, a, b, c)

	// Another subscription's budget is its own.
	limB2, releaseB2 := acquire(b, "sub-2")
	defer releaseB2()
	if got := limB2.Ceiling(); got != rate {
		t.Fatalf("b alone in sub-2: ceiling %v, want %v", got, rate)
	}
	wantShares("sub-1", rate/3, a, b, c)

	// Several syncs of one worker share its one limiter and its one lease.
	limC, releaseC2 := acquire(c, "sub-1")
	if got, _ := c.b.Share("sub-1"); got != rate/3 || limC.Ceiling() != rate/3 {
		t.Fatalf("c's second sync: share %v, want %v", got, rate/3)
	}
	releaseC2()

	// b's last sync in sub-1 ends (no linger): it deletes its lease and
	// the others take its share.
	releaseB()
	wantShares("sub-1", rate/2, a, c)
	if got, _ := b.b.Share("sub-1"); got != 0 {
		t.Fatalf("b left sub-1 but still has a share %v", got)
	}

	// c is cut off from NATS: it cannot renew its lease and drops to the
	// floor; a stops counting it once its lease lapses.
	c.nc.Close()
	wantShares("sub-1", rate/2*ThrottleFloor, c)
	wantShares("sub-1", rate, a)
	_ = releaseC
	// Unable to join a new subscription, c goes on at the floor.
	lim3, release3, err := c.b.Acquire(ctx, "sub-3")
	if err != nil || lim3.Ceiling() != rate*ThrottleFloor {
		t.Fatalf("joining without NATS: limiter at %v, %v; want the floor %v and no error", lim3.Ceiling(), err, rate*ThrottleFloor)
	}
	release3()

	// A stopping worker deletes its leases.
	a.stop()
	<-a.done
	kv, err := events.Bucket(ctx, js, events.BucketBudget)
	if err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		keys, err := kv.ListKeysFiltered(ctx, "sub-1.*")
		if err != nil {
			return err
		}
		var left []string
		for k := range keys.Keys() {
			left = append(left, k)
		}
		if len(left) != 0 {
			return fmt.Errorf("leases left in sub-1: %v", left)
		}
		return nil
	})
}

// TestBudgetSumStaysWithinRate: many workers joining one subscription at
// the same time end with shares that add up to the budget.
func TestBudgetSumStaysWithinRate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv := natstest.RunServer(t, natstest.Options{})
	_, js := natstest.Connect(t, srv)
	if err := (events.Topology{}).EnsureStreams(ctx, js); err != nil {
		t.Fatal(err)
	}
	const workers, rate = 8, 2000.0
	budgets := make([]*Budget, workers)
	errs := make(chan error, workers)
	for i := range budgets {
		_, js := natstest.Connect(t, srv)
		kv, err := events.Bucket(ctx, js, events.BucketBudget)
		if err != nil {
			t.Fatal(err)
		}
		if budgets[i], err = NewBudget(ctx, kv, BudgetConfig{Rate: rate}); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range budgets {
		go func() {
			_, _, err := b.Acquire(ctx, "00000000-0000-0000-0000-000000000001")
			errs <- err
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	natstest.CheckFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		sum := 0.0
		for _, b := range budgets {
			share, n := b.Share("00000000-0000-0000-0000-000000000001")
			if n != workers {
				return fmt.Errorf("worker %s sees %d workers, want %d", b.WorkerID(), n, workers)
			}
			sum += share
		}
		if sum > rate*1.000001 {
			return fmt.Errorf("shares add up to %v, over the budget %v", sum, rate)
		}
		return nil
	})
}

func TestLeaseToken(t *testing.T) {
	for in, want := range map[string]string{
		"":                                     "none",
		"0b1f6471-1bf0-4dda-aec3-cb9272f09590": "0b1f6471-1bf0-4dda-aec3-cb9272f09590",
	} {
		if got := leaseToken(in); got != want {
			t.Errorf("leaseToken(%q) = %q, want %q", in, got, want)
		}
	}
	if got := leaseToken("a.b*c"); !isToken(got) || got == leaseToken("a.b*d") {
		t.Errorf("leaseToken of an id with dots gives %q, want a distinct token", got)
	}
	if err := (BudgetConfig{WorkerID: "a.b"}).Validate(); err == nil {
		t.Error("a worker id with a dot was accepted")
	}
}
