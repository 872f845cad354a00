package auth

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// twoReplicaTicketStores returns two ticket stores on one bucket of one
// in-process NATS server, each over its own connection, as two API
// replicas have, sharing the clock now.
func twoReplicaTicketStores(t *testing.T, now func() time.Time) (*TicketStore, *TicketStore) {
	t.Helper()
	ns, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true,
		StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var stores []*TicketStore
	for i := 0; i < 2; i++ {
		nc, err := nats.Connect(ns.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "akvsync-test-tickets", History: 1, TTL: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		s, err := NewTicketStore(kv, 0, now)
		if err != nil {
			t.Fatal(err)
		}
		stores = append(stores, s)
	}
	return stores[0], stores[1]
}

func TestTicketStore(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	clock := time.Now()
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	a, b := twoReplicaTicketStores(t, now)
	ctx := context.Background()
	p := Principal{Username: "victor", Role: RoleViewer}

	t.Run("IssuedOnOneReplicaRedeemedOnAnotherOnce", func(t *testing.T) {
		tk, err := a.Issue(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := b.Redeem(ctx, tk.Ticket)
		if err != nil || got != p {
			t.Fatalf("redeem on the other replica: %+v, %v", got, err)
		}
		for _, s := range []*TicketStore{a, b} {
			if _, err := s.Redeem(ctx, tk.Ticket); !errors.Is(err, ErrTicketInvalid) {
				t.Fatalf("second redeem: %v, want ErrTicketInvalid", err)
			}
		}
	})
	t.Run("RacingRedeemsOneWins", func(t *testing.T) {
		tk, err := a.Issue(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		var wins, losses atomic.Int32
		var wg sync.WaitGroup
		for i := 0; i < 8; i++ {
			s := a
			if i%2 == 1 {
				s = b
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := s.Redeem(ctx, tk.Ticket)
				switch {
				case err == nil:
					wins.Add(1)
				case errors.Is(err, ErrTicketInvalid):
					losses.Add(1)
				default:
					t.Errorf("redeem: %v", err)
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 || losses.Load() != 7 {
			t.Fatalf("%d redeems won, %d lost; want 1 and 7", wins.Load(), losses.Load())
		}
	})
	t.Run("Expires", func(t *testing.T) {
		tk, err := a.Issue(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		clock = clock.Add(DefaultTicketTTL)
		mu.Unlock()
		if _, err := b.Redeem(ctx, tk.Ticket); !errors.Is(err, ErrTicketInvalid) {
			t.Fatalf("expired ticket: %v", err)
		}
	})
	t.Run("NeedsAPrincipal", func(t *testing.T) {
		if _, err := a.Issue(ctx, Principal{}); !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("issue for nobody: %v", err)
		}
	})
	t.Run("TheBucketHoldsAHashNotTheTicket", func(t *testing.T) {
		tk, err := a.Issue(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		keys, err := a.kv.Keys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if k == kvTicketPrefix+tk.Ticket || len(k) != len(kvTicketPrefix)+64 {
				t.Fatalf("bucket key %q", k)
			}
		}
	})
	t.Run("BadLifetimes", func(t *testing.T) {
		for _, ttl := range []time.Duration{time.Millisecond, time.Hour} {
			if _, err := NewTicketStore(a.kv, ttl, nil); !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("ttl %s: %v", ttl, err)
			}
		}
	})
}
