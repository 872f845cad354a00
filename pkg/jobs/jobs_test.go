package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/akvsync/akvsync/internal/natstest"
	"github.com/akvsync/akvsync/pkg/events"
	"github.com/akvsync/akvsync/pkg/jobs"
)

// env is a test's JetStream server with akvsync's buckets and a job store.
type env struct {
	js    jetstream.JetStream
	jobs  jetstream.KeyValue
	locks jetstream.KeyValue
	store *jobs.Store
}

func setup(t *testing.T, cfg jobs.Config) (*env, context.Context) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	s := natstest.RunServer(t, natstest.Options{})
	_, js := natstest.Connect(t, s)
	if err := (events.Topology{Storage: jetstream.MemoryStorage}).EnsureStreams(ctx, js); err != nil {
		t.Fatal(err)
	}
	e := &env{js: js}
	e.jobs, _ = events.Bucket(ctx, js, events.BucketJobs)
	e.locks, _ = events.Bucket(ctx, js, events.BucketLocks)
	var err error
	if e.store, err = jobs.New(js, e.jobs, e.locks, cfg); err != nil {
		t.Fatal(err)
	}
	return e, ctx
}

// vaults returns n registry records in one subscription.
func vaults(n int) []events.Vault {
	out := make([]events.Vault, n)
	for i := range out {
		out[i] = events.Vault{ID: events.NewID(), Name: fmt.Sprintf("kv-%06d", i), SubscriptionID: "11111111-2222-3333-4444-555555555555",
			VaultURI: fmt.Sprintf("https://kv-%06d.vault.azure.net", i), Connection: "c", Cloud: "AzureCloud"}
	}
	return out
}

func batches(vs []events.Vault, size int) jobs.VaultBatches {
	return func(ctx context.Context, yield func([]events.Vault) error) error {
		for start := 0; start < len(vs); start += size {
			if err := yield(vs[start:min(len(vs), start+size)]); err != nil {
				return err
			}
		}
		return nil
	}
}

func newJob(estimate int) events.Job {
	now := time.Now().UTC()
	return events.Job{ID: events.NewID(), CreatedAt: now, UpdatedAt: now, OverallStatus: events.JobInProgress, VaultTotal: estimate}
}

// record is one stored message of the jobs bucket.
type record struct {
	key  string
	size int
}

// records lists the live keys of the jobs bucket and their sizes.
func (e *env) records(t *testing.T, ctx context.Context, kv jetstream.KeyValue) []record {
	t.Helper()
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w.Stop() }()
	var out []record
	for e := range w.Updates() {
		if e == nil {
			return out
		}
		out = append(out, record{e.Key(), len(e.Value())})
	}
	return out
}

func TestCreate(t *testing.T) {
	t.Run("records stay the same size whatever the job's size", func(t *testing.T) {
		e, ctx := setup(t, jobs.Config{})
		sizes := map[int]int{}
		for _, n := range []int{10, 5000} {
			job, err := e.store.Create(ctx, newJob(n), batches(vaults(n), 1000), nil)
			if err != nil {
				t.Fatal(err)
			}
			minChunks := (n + jobs.DefaultPlanChunkVaults - 1) / jobs.DefaultPlanChunkVaults
			if job.VaultTotal != n || job.PlanChunks < minChunks || job.PlanChunks > 2*minChunks {
				t.Fatalf("%d vaults: total %d, %d chunks", n, job.VaultTotal, job.PlanChunks)
			}
			for _, r := range e.records(t, ctx, e.jobs) {
				if r.size > jobs.DefaultPlanChunkBytes+1024 {
					t.Errorf("%s is %d bytes, over the chunk bound", r.key, r.size)
				}
				if r.key == jobs.HeaderKey(job.ID) {
					sizes[n] = r.size
				}
			}
		}
		// The header of a 5,000-vault job is the header of a 10-vault
		// job, give or take the digits of its counts.
		if sizes[10] == 0 || sizes[5000]-sizes[10] > 8 || sizes[5000] > 512 {
			t.Fatalf("header sizes: %v", sizes)
		}
	})

	t.Run("a conflict names the holder and leaves nothing behind", func(t *testing.T) {
		for _, n := range []int{3, 2 * jobs.DefaultScanThreshold} { // per-lock and scanned paths
			t.Run(fmt.Sprint(n), func(t *testing.T) {
				e, ctx := setup(t, jobs.Config{PublishWindow: 50})
				vs := vaults(n)
				first, err := e.store.Create(ctx, newJob(1), batches(vs[n-1:], 10), nil)
				if err != nil {
					t.Fatal(err)
				}
				_, err = e.store.Create(ctx, newJob(n), batches(vs, 10), nil)
				var conflict *jobs.LockConflictError
				if !errors.As(err, &conflict) || conflict.Holder != first.ID || conflict.VaultID != vs[n-1].ID {
					t.Fatalf("got %v, want a conflict with job %s on %s", err, first.ID, vs[n-1].ID)
				}
				if recs := e.records(t, ctx, e.jobs); len(recs) != 2 { // the first job's header and plan
					t.Fatalf("jobs bucket holds %v", recs)
				}
				if recs := e.records(t, ctx, e.locks); len(recs) != 1 {
					t.Fatalf("%d locks held, want only the first job's", len(recs))
				}
			})
		}
	})

	t.Run("vaults released by a finished job can be locked again", func(t *testing.T) {
		for _, n := range []int{3, 2 * jobs.DefaultScanThreshold} {
			t.Run(fmt.Sprint(n), func(t *testing.T) {
				e, ctx := setup(t, jobs.Config{})
				vs := vaults(n)
				for range 3 {
					job, err := e.store.Create(ctx, newJob(n), batches(vs, 100), nil)
					if err != nil {
						t.Fatal(err)
					}
					if err := e.store.ReleaseJobLocks(ctx, job); err != nil {
						t.Fatal(err)
					}
					if recs := e.records(t, ctx, e.locks); len(recs) != 0 {
						t.Fatalf("%d locks left after release", len(recs))
					}
				}
			})
		}
	})

	t.Run("a job without vaults is refused", func(t *testing.T) {
		e, ctx := setup(t, jobs.Config{})
		if _, err := e.store.Create(ctx, newJob(0), batches(nil, 10), nil); !errors.Is(err, jobs.ErrInvalid) {
			t.Fatalf("got %v", err)
		}
	})
}

func TestReleaseJobLocks(t *testing.T) {
	t.Run("keeps a lock another holder took since", func(t *testing.T) {
		e, ctx := setup(t, jobs.Config{})
		vs := vaults(4)
		job, err := e.store.Create(ctx, newJob(4), batches(vs, 10), nil)
		if err != nil {
			t.Fatal(err)
		}
		// Someone deleted and retook one lock meanwhile (e.g. the janitor
		// and a new job after a lost release).
		if err := e.locks.Delete(ctx, vs[0].ID); err != nil {
			t.Fatal(err)
		}
		if _, err := e.locks.Create(ctx, vs[0].ID, []byte("other")); err != nil {
			t.Fatal(err)
		}
		if err := e.store.ReleaseJobLocks(ctx, job); err != nil {
			t.Fatal(err)
		}
		recs := e.records(t, ctx, e.locks)
		if len(recs) != 1 || recs[0].key != vs[0].ID {
			t.Fatalf("locks left: %v", recs)
		}
	})
}

func TestSweepLocks(t *testing.T) {
	t.Run("reads each holder once and releases only dead holders' locks", func(t *testing.T) {
		e, ctx := setup(t, jobs.Config{})
		live, err := e.store.Create(ctx, newJob(500), batches(vaults(500), 100), nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vaults(20) {
			if _, err := e.store.TakeLock(ctx, v.ID, "dead-job"); err != nil {
				t.Fatal(err)
			}
		}
		calls := map[string]int{}
		released, err := e.store.SweepLocks(ctx, 0, func(_ context.Context, holder string) (bool, error) {
			calls[holder]++
			return holder == live.ID, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(calls) != 2 || calls[live.ID] != 1 || calls["dead-job"] != 1 {
			t.Fatalf("holder checks: %v, want one per distinct holder", calls)
		}
		if len(released) != 20 {
			t.Fatalf("released %d locks, want 20", len(released))
		}
		if recs := e.records(t, ctx, e.locks); len(recs) != 500 {
			t.Fatalf("%d locks left, want the live job's 500", len(recs))
		}
	})
	t.Run("keeps locks younger than the grace period", func(t *testing.T) {
		e, ctx := setup(t, jobs.Config{})
		if _, err := e.store.TakeLock(ctx, events.NewID(), "dead-job"); err != nil {
			t.Fatal(err)
		}
		released, err := e.store.SweepLocks(ctx, time.Hour, func(context.Context, string) (bool, error) { return false, nil })
		if err != nil || len(released) != 0 {
			t.Fatalf("released %v (%v)", released, err)
		}
	})
}

func TestUpdateVault(t *testing.T) {
	t.Run("racing writers lose no update", func(t *testing.T) {
		e, ctx := setup(t, jobs.Config{})
		job, err := e.store.Create(ctx, newJob(1), batches(vaults(1), 1), nil)
		if err != nil {
			t.Fatal(err)
		}
		const writers = 20
		var wg sync.WaitGroup
		for range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _, _, err := e.store.UpdateVault(ctx, job.ID, "v", func(v *events.JobVault, exists bool) error {
					if !exists {
						*v = events.JobVault{JobID: job.ID, VaultID: "v", Status: events.VaultRunning}
					}
					v.Listed++
					return nil
				})
				if err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		v, _, err := e.store.Vault(ctx, job.ID, "v")
		if err != nil || v.Listed != writers {
			t.Fatalf("listed %d (%v), want %d", v.Listed, err, writers)
		}
	})
	t.Run("no change writes nothing", func(t *testing.T) {
		e, ctx := setup(t, jobs.Config{})
		_, changed, rev, err := e.store.UpdateVault(ctx, "j", "v", func(*events.JobVault, bool) error { return jobs.ErrNoChange })
		if err != nil || changed || rev != 0 {
			t.Fatalf("changed %v rev %d err %v", changed, rev, err)
		}
	})
}

func TestDelete(t *testing.T) {
	t.Run("removes the header, plan and vault records in one purge", func(t *testing.T) {
		e, ctx := setup(t, jobs.Config{PlanChunkVaults: 10})
		keep, err := e.store.Create(ctx, newJob(5), batches(vaults(5), 10), nil)
		if err != nil {
			t.Fatal(err)
		}
		job, err := e.store.Create(ctx, newJob(50), batches(vaults(50), 10), nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"a", "b"} {
			if _, _, _, err := e.store.UpdateVault(ctx, job.ID, id, func(v *events.JobVault, _ bool) error {
				*v = events.JobVault{JobID: job.ID, VaultID: id, Status: events.VaultCompleted}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		if err := e.store.Delete(ctx, job.ID); err != nil {
			t.Fatal(err)
		}
		recs := e.records(t, ctx, e.jobs)
		if len(recs) != 2 || (recs[0].key != jobs.HeaderKey(keep.ID) && recs[1].key != jobs.HeaderKey(keep.ID)) {
			t.Fatalf("left: %v, want only the other job's header and plan", recs)
		}
		if _, _, err := e.store.Get(ctx, job.ID); !errors.Is(err, jobs.ErrNotFound) {
			t.Fatalf("get after delete: %v", err)
		}
	})
}

func TestParseKey(t *testing.T) {
	for key, want := range map[string]jobs.KeyKind{
		jobs.HeaderKey("j"): jobs.KindHeader, jobs.PlanKey("j", 3): jobs.KindPlan, jobs.VaultKey("j", "v"): jobs.KindVault,
		"j.other.x": jobs.KindUnknown, "": jobs.KindUnknown,
	} {
		if id, kind, _ := jobs.ParseKey(key); kind != want || (want != jobs.KindUnknown && id != "j") {
			t.Errorf("%q: %q %v", key, id, kind)
		}
	}
}

func TestCreateVerify(t *testing.T) {
	t.Run("checks only vaults whose lock moved, and its refusal undoes", func(t *testing.T) {
		e, ctx := setup(t, jobs.Config{})
		n := 2 * jobs.DefaultScanThreshold
		vs := vaults(n)
		// A removal of vs[3] took and released its lock while the job was
		// being created: simulated by a lock cycle before the job's own.
		moved := vs[3].ID
		var checked []string
		_, err := e.store.Create(ctx, newJob(n), func(ctx context.Context, yield func([]events.Vault) error) error {
			rev, err := e.store.TakeLock(ctx, moved, "remove-vault")
			if err != nil {
				return err
			}
			if err := e.store.ReleaseLock(ctx, moved, rev); err != nil {
				return err
			}
			return yield(vs)
		}, func(_ context.Context, ids []string) error {
			checked = append(checked, ids...)
			return errors.New("vault was removed")
		})
		if err == nil || len(checked) != 1 || checked[0] != moved {
			t.Fatalf("err %v, checked %v; want only %s checked and the creation refused", err, checked, moved)
		}
		if recs := e.records(t, ctx, e.locks); len(recs) != 0 {
			t.Fatalf("%d locks left after a refused creation", len(recs))
		}
		if recs := e.records(t, ctx, e.jobs); len(recs) != 0 {
			t.Fatalf("records left after a refused creation: %v", recs)
		}
	})
}
