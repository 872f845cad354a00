package events_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/akvsync/akvsync/internal/natstest"
	"github.com/akvsync/akvsync/pkg/events"
)

type counter struct {
	N int `json:"n"`
}

func testBucket(t *testing.T) (context.Context, jetstream.KeyValue) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	_, js := natstest.Connect(t, natstest.RunServer(t, natstest.Options{}))
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "cas-test", Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	return ctx, kv
}

func TestUpdateRecord(t *testing.T) {
	ctx, kv := testBucket(t)
	incr := func(c *counter, _ bool) error { c.N++; return nil }

	t.Run("ConcurrentWritersAllLand", func(t *testing.T) {
		const writers = 8
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for range writers {
			wg.Go(func() {
				_, _, _, err := events.UpdateRecord(ctx, kv, "n", events.CAS{Attempts: 100, Create: true}, incr)
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		got, _, _, err := events.UpdateRecord(ctx, kv, "n", events.CAS{Attempts: 1}, func(*counter, bool) error { return events.ErrNoChange })
		if err != nil || got.N != writers {
			t.Fatalf("counter %d after %d increments, %v", got.N, writers, err)
		}
	})

	t.Run("AConflictRetriesFromTheRead", func(t *testing.T) {
		calls := 0
		race := func(c *counter, exists bool) error {
			calls++
			if calls == 1 { // another writer gets in between this read and write
				if _, _, _, err := events.UpdateRecord(ctx, kv, "n", events.CAS{Attempts: 1}, incr); err != nil {
					return err
				}
			}
			c.N += 10
			return nil
		}
		before, rev, _, _ := events.UpdateRecord(ctx, kv, "n", events.CAS{Attempts: 1}, func(*counter, bool) error { return events.ErrNoChange })
		if _, _, _, err := events.UpdateRecord(ctx, kv, "n", events.CAS{Attempts: 1}, race); !errors.Is(err, events.ErrContended) {
			t.Fatalf("one attempt against a racing writer: %v, want ErrContended", err)
		}
		calls = 0
		got, next, wrote, err := events.UpdateRecord(ctx, kv, "n", events.CAS{Attempts: 2}, race)
		if err != nil || !wrote || calls != 2 || got.N != before.N+1+1+10 || next <= rev {
			t.Fatalf("got %d (from %d) after %d calls, wrote %v, rev %d→%d, %v", got.N, before.N, calls, wrote, rev, next, err)
		}
	})

	t.Run("NoChangeWritesNothing", func(t *testing.T) {
		_, rev, _, _ := events.UpdateRecord(ctx, kv, "n", events.CAS{Attempts: 1}, func(*counter, bool) error { return events.ErrNoChange })
		_, again, wrote, err := events.UpdateRecord(ctx, kv, "n", events.CAS{Attempts: 1}, func(*counter, bool) error { return events.ErrNoChange })
		if err != nil || wrote || again != rev {
			t.Fatalf("wrote %v, revision %d→%d, %v", wrote, rev, again, err)
		}
	})

	t.Run("AMissingRecordIsCreatedOnlyWhenAllowed", func(t *testing.T) {
		if _, _, _, err := events.UpdateRecord(ctx, kv, "absent", events.CAS{Attempts: 3}, incr); !errors.Is(err, jetstream.ErrKeyNotFound) {
			t.Fatalf("err = %v, want ErrKeyNotFound", err)
		}
		got, _, wrote, err := events.UpdateRecord(ctx, kv, "absent", events.CAS{Attempts: 3, Create: true}, func(c *counter, exists bool) error {
			if exists {
				return errors.New("exists")
			}
			return incr(c, exists)
		})
		if err != nil || !wrote || got.N != 1 {
			t.Fatalf("created %+v, wrote %v, %v", got, wrote, err)
		}
	})

	t.Run("MutateErrorsAndBadRecordsEndIt", func(t *testing.T) {
		mine := errors.New("refused")
		if _, _, _, err := events.UpdateRecord(ctx, kv, "n", events.CAS{Attempts: 3}, func(*counter, bool) error { return mine }); err != mine {
			t.Fatalf("err = %v, want the callback's own", err)
		}
		if _, err := kv.Put(ctx, "junk", []byte("{")); err != nil {
			t.Fatal(err)
		}
		if _, _, _, err := events.UpdateRecord(ctx, kv, "junk", events.CAS{Attempts: 3}, incr); !errors.Is(err, events.ErrBadRecord) {
			t.Fatalf("err = %v, want ErrBadRecord", err)
		}
	})
}

func TestClaimKey(t *testing.T) {
	ctx, kv := testBucket(t)
	now := time.Now()
	if _, _, err := events.ClaimKey(ctx, kv, "byname.a", "id-1", time.Minute, now); err != nil {
		t.Fatal(err)
	}
	// id-1's record is missing but the entry is young: a live creation.
	if _, holder, err := events.ClaimKey(ctx, kv, "byname.a", "id-2", time.Minute, now); !errors.Is(err, events.ErrTaken) || holder != "id-1" {
		t.Fatalf("young entry: holder %q, %v", holder, err)
	}
	if _, err := kv.Put(ctx, "id-1", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if _, holder, err := events.ClaimKey(ctx, kv, "byname.a", "id-2", time.Minute, now.Add(time.Hour)); !errors.Is(err, events.ErrTaken) || holder != "id-1" {
		t.Fatalf("entry of a live record: holder %q, %v", holder, err)
	}
	if err := kv.Delete(ctx, "id-1"); err != nil {
		t.Fatal(err)
	}
	// An old entry whose record never came: its creator died; taken over.
	if _, _, err := events.ClaimKey(ctx, kv, "byname.a", "id-2", time.Minute, now.Add(time.Hour)); err != nil {
		t.Fatalf("stale entry not taken over: %v", err)
	}
	if e, err := kv.Get(ctx, "byname.a"); err != nil || string(e.Value()) != "id-2" {
		t.Fatalf("entry %v, %v", e, err)
	}
}
