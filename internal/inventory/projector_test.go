package inventory_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/akvsync/akvsync/internal/inventory"
	"github.com/akvsync/akvsync/internal/natstest"
	"github.com/akvsync/akvsync/internal/store"
	"github.com/akvsync/akvsync/pkg/events"
)

type fixture struct {
	ctx  context.Context
	js   jetstream.JetStream
	path string
}

func setup(t *testing.T) *fixture {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	s := natstest.RunServer(t, natstest.Options{})
	_, js := natstest.Connect(t, s)
	// Memory storage: the projector restarts in these tests, NATS does not.
	if err := (events.Topology{Storage: jetstream.MemoryStorage}).EnsureStreams(ctx, js); err != nil {
		t.Fatal(err)
	}
	return &fixture{ctx: ctx, js: js, path: filepath.Join(t.TempDir(), "inv.db")}
}

func (f *fixture) publishKeys(t *testing.T, vault string, from, to int, tag string) {
	t.Helper()
	for i := from; i < to; i++ {
		name := fmt.Sprintf("key-%04d", i)
		rec := events.KeyRecord{ID: events.KeyID(vault, name), VaultID: vault, VaultName: "v", SubscriptionID: "s",
			Name: name, Enabled: true, Tags: map[string]string{"gen": tag}, FirstSeenAt: time.Now().UTC()}
		raw, _ := json.Marshal(rec)
		if _, err := f.js.Publish(f.ctx, events.KeySubject(vault, name), raw); err != nil {
			t.Fatal(err)
		}
	}
}

// run starts a projector over the store at f.path and returns it with a
// stop function that waits for it to exit and closes the store.
func (f *fixture) run(t *testing.T) (*inventory.Projector, *store.Store, func()) {
	t.Helper()
	st, err := store.Open(store.Config{Path: f.path, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	p, err := inventory.NewProjector(st, f.js, 0, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	return p, st, func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("projector: %v", err)
		}
		if err := st.Close(); err != nil {
			t.Error(err)
		}
	}
}

func TestProjector(t *testing.T) {
	t.Parallel()
	t.Run("AppliesExactlyOnceAcrossRestarts", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		vault := events.NewID()
		f.publishKeys(t, vault, 0, 300, "one")
		p, st, stop := f.run(t)
		if ok, err := p.CatchUp(f.ctx, inventory.SourceKeys, 10*time.Second); err != nil || !ok {
			t.Fatalf("catch up: %v %v", ok, err)
		}
		if n := st.Stats().Keys; n != 300 {
			t.Fatalf("store has %d keys, want 300", n)
		}
		stop()

		// While it is down: 100 keys change, 200 are new.
		f.publishKeys(t, vault, 200, 500, "two")
		p, st, stop = f.run(t)
		defer stop()
		if got := p.Applied(inventory.SourceKeys); got != 300 {
			t.Fatalf("restart resumed at %d, want 300", got)
		}
		if ok, err := p.CatchUp(f.ctx, inventory.SourceKeys, 10*time.Second); err != nil || !ok {
			t.Fatalf("catch up: %v %v", ok, err)
		}
		if n := st.Stats().Keys; n != 500 {
			t.Fatalf("store has %d keys, want 500", n)
		}
		for i, want := range map[int]string{0: "one", 199: "one", 200: "two", 499: "two"} {
			k, err := st.GetKey(f.ctx, events.KeyID(vault, fmt.Sprintf("key-%04d", i)))
			if err != nil || k.Tags["gen"] != want {
				t.Errorf("key %d: gen %q (%v), want %q", i, k.Tags["gen"], err, want)
			}
		}
	})

	t.Run("StopCatchesUpFirst", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		vault := events.NewID()
		_, _, stop := f.run(t)
		f.publishKeys(t, vault, 0, 2000, "one")
		stop() // right after the last publish
		st, err := store.Open(store.Config{Path: f.path})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if n := st.Stats().Keys; n != 2000 {
			t.Fatalf("stopped store has %d keys, want 2000", n)
		}
	})

	t.Run("WaitForTimesOutWhenNothingArrives", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		p, _, stop := f.run(t)
		defer stop()
		if p.WaitFor(f.ctx, inventory.SourceKeys, 1, 50*time.Millisecond) {
			t.Fatal("WaitFor reported a sequence that was never published")
		}
	})

	t.Run("AppliesJobRecordsAndDeletions", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		kv, err := events.Bucket(f.ctx, f.js, events.BucketJobs)
		if err != nil {
			t.Fatal(err)
		}
		p, st, stop := f.run(t)
		defer stop()
		a, b := events.Job{ID: events.NewID(), OverallStatus: events.JobInProgress, CreatedAt: time.Now().UTC()}, events.Job{ID: events.NewID(), OverallStatus: events.JobCompleted, CreatedAt: time.Now().UTC()}
		for _, j := range []events.Job{a, b} {
			raw, _ := json.Marshal(j)
			if _, err := kv.Put(f.ctx, j.ID, raw); err != nil {
				t.Fatal(err)
			}
		}
		if err := kv.Delete(f.ctx, a.ID); err != nil {
			t.Fatal(err)
		}
		if ok, err := p.CatchUp(f.ctx, inventory.SourceJobs, 10*time.Second); err != nil || !ok {
			t.Fatalf("catch up: %v %v", ok, err)
		}
		page, err := st.ListJobs(f.ctx, events.JobQuery{Limit: events.LimitAll})
		if err != nil {
			t.Fatal(err)
		}
		if page.Total != 1 || page.Resources[0].ID != b.ID {
			t.Fatalf("jobs = %+v, want only %s", page.Resources, b.ID)
		}
	})

	t.Run("JobRecordsDoNotWaitBehindKeyRecords", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		vault := events.NewID()
		// A big sync's worth of key records, published faster than a
		// store applies them: the key loop needs many transactions for
		// them, the job loop one.
		const keys = 10000
		var futs []jetstream.PubAckFuture
		for i := range keys {
			name := fmt.Sprintf("key-%06d", i)
			raw, _ := json.Marshal(events.KeyRecord{ID: events.KeyID(vault, name), VaultID: vault, VaultName: "v", SubscriptionID: "s", Name: name})
			fut, err := f.js.PublishAsync(events.KeySubject(vault, name), raw)
			if err != nil {
				t.Fatal(err)
			}
			futs = append(futs, fut)
			if len(futs) == 1000 {
				for _, fu := range futs {
					<-fu.Ok()
				}
				futs = futs[:0]
			}
		}
		for _, fu := range futs {
			<-fu.Ok()
		}
		kv, err := events.Bucket(f.ctx, f.js, events.BucketJobs)
		if err != nil {
			t.Fatal(err)
		}
		p, st, stop := f.run(t)
		defer stop()
		job := events.Job{ID: events.NewID(), OverallStatus: events.JobInProgress, CreatedAt: time.Now().UTC()}
		raw, _ := json.Marshal(job)
		if _, err := kv.Put(f.ctx, job.ID, raw); err != nil {
			t.Fatal(err)
		}
		if ok, err := p.CatchUp(f.ctx, inventory.SourceJobs, 30*time.Second); err != nil || !ok {
			t.Fatalf("catch up with the jobs: %v %v", ok, err)
		}
		// The job is there while the keys are still being applied: one
		// loop per source.
		t.Logf("keys applied when the job was: %d of %d", p.Applied(inventory.SourceKeys), keys)
		if applied := p.Applied(inventory.SourceKeys); applied >= keys {
			t.Fatalf("the keys were all applied (%d) before the job: nothing was shown", applied)
		}
		if _, err := st.GetJob(f.ctx, job.ID, 0); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("VaultKeysWaitsForThatVaultsLastRecord", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		vault, other := events.NewID(), events.NewID()
		f.publishKeys(t, vault, 0, 2000, "one")
		p, _, stop := f.run(t)
		defer stop()
		// Right after the start the store has not applied them all yet:
		// VaultKeys waits for this vault's last record.
		got, err := p.VaultKeys(f.ctx, vault)
		if err != nil || len(got) != 2000 {
			t.Fatalf("%d keys (%v), want 2000", len(got), err)
		}
		// A vault that has no record waits for nothing.
		if got, err := p.VaultKeys(f.ctx, other); err != nil || len(got) != 0 {
			t.Fatalf("a vault never synced: %d keys (%v)", len(got), err)
		}
	})
}

func TestWaitAdvancing(t *testing.T) {
	t.Parallel()
	t.Run("waits past the stall period while the store advances", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		p, _, stop := f.run(t)
		defer stop()
		st, err := f.js.Stream(f.ctx, events.StreamKeys)
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		const n, stall = 20, 200 * time.Millisecond
		target := info.State.LastSeq + n
		// A slow producer: the whole wait lasts several stall periods, but
		// the store applies something in each of them.
		vault := events.NewID()
		done := make(chan struct{})
		go func() {
			defer close(done)
			tick := time.NewTicker(stall / 4)
			defer tick.Stop()
			for i := range n {
				<-tick.C
				f.publishKeys(t, vault, i, i+1, "slow")
			}
		}()
		start := time.Now()
		if err := p.WaitAdvancing(f.ctx, inventory.SourceKeys, target, stall); err != nil {
			t.Fatalf("WaitAdvancing: %v", err)
		}
		<-done
		if took := time.Since(start); took < 2*stall {
			t.Fatalf("the wait took %s, under two stall periods: the producer was too fast to prove anything", took)
		}
		if got := p.Applied(inventory.SourceKeys); got < target {
			t.Errorf("applied %d, want %d", got, target)
		}
	})
	t.Run("gives up when the store applies nothing", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		st, err := store.Open(store.Config{Path: f.path, NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		// A projector that never runs: nothing is ever applied.
		p, err := inventory.NewProjector(st, f.js, 0, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		err = p.WaitAdvancing(f.ctx, inventory.SourceKeys, 1, 100*time.Millisecond)
		if !errors.Is(err, inventory.ErrStalled) {
			t.Fatalf("err = %v, want ErrStalled", err)
		}
	})
}
