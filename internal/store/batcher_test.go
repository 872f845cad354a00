package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/akvsync/akvsync/pkg/events"
)

func TestBatcher(t *testing.T) {
	ctx := context.Background()
	v := testVaults(1)[0]
	t.Run("commits at the batch limit and acks after commit", func(t *testing.T) {
		s, err := Open(Config{Path: filepath.Join(t.TempDir(), "b.db"), NoSync: true, BatchLimit: 10, BatchInterval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		b, err := s.NewBatcher()
		if err != nil {
			t.Fatal(err)
		}
		var acked atomic.Int32
		for i := range 25 {
			k := makeKey(nil, v, fmt.Sprintf("k%d", i))
			if err := b.AddKey(ctx, "keys", uint64(i+1), k, func(err error) {
				if err == nil {
					acked.Add(1)
				}
			}); err != nil {
				t.Fatal(err)
			}
		}
		if n := acked.Load(); n != 20 {
			t.Fatalf("%d acked before Flush, want 20 (two full batches)", n)
		}
		if seq, _ := s.Position("keys"); seq != 20 {
			t.Fatalf("Position = %d, want 20", seq)
		}
		if err := b.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if n, st := acked.Load(), s.Stats(); n != 25 || st.Keys != 25 {
			t.Fatalf("after Flush: %d acked, %d keys", n, st.Keys)
		}
	})
	t.Run("drops redelivered messages at or below the position", func(t *testing.T) {
		s := setup(t)
		k := makeKey(nil, v, "k")
		if err := s.Apply(ctx, Batch{Keys: []events.KeyRecord{k}, Positions: map[string]uint64{"keys": 5}}); err != nil {
			t.Fatal(err)
		}
		b, err := s.NewBatcher()
		if err != nil {
			t.Fatal(err)
		}
		stale := k
		stale.Enabled = !k.Enabled
		acked := false
		if err := b.AddKey(ctx, "keys", 5, stale, func(err error) { acked = err == nil }); err != nil {
			t.Fatal(err)
		}
		if err := b.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		got, _ := s.GetKey(ctx, k.ID)
		if !acked || got.Enabled != k.Enabled {
			t.Fatalf("stale message: acked %v, applied %v", acked, got.Enabled != k.Enabled)
		}
	})
	t.Run("Run flushes on the interval and on exit", func(t *testing.T) {
		s, err := Open(Config{Path: filepath.Join(t.TempDir(), "b.db"), NoSync: true, BatchInterval: 10 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		b, err := s.NewBatcher()
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() { errc <- b.Run(rctx) }()
		done := make(chan error, 1)
		if err := b.AddJob(ctx, "jobs", 1, testJob("j1", baseTime, events.JobInProgress, v), func(err error) { done <- err }); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("pending job not committed by the interval")
		}
		if err := b.DeleteJob(ctx, "jobs", 2, "j1", nil); err != nil {
			t.Fatal(err)
		}
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Fatalf("Run = %v", err)
		}
		if _, err := s.GetJob(ctx, "j1"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("deletion not flushed on exit: %v", err)
		}
		if seq, _ := s.Position("jobs"); seq != 2 {
			t.Fatalf("Position(jobs) = %d", seq)
		}
	})
}
