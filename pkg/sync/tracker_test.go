package sync

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/akvsync/akvsync/internal/inventory"
	"github.com/akvsync/akvsync/internal/natstest"
	"github.com/akvsync/akvsync/internal/store"
	"github.com/akvsync/akvsync/pkg/events"
	"github.com/akvsync/akvsync/pkg/jobs"
)

// trackerEnv is a JetStream server with akvsync's topology, a job store
// and a real inventory (bbolt store and projector) for job progress.
type trackerEnv struct {
	js    jetstream.JetStream
	store *jobs.Store
	locks jetstream.KeyValue
	proj  *inventory.Projector
}

func setupTracker(t *testing.T) (*trackerEnv, context.Context) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	s := natstest.RunServer(t, natstest.Options{})
	_, js := natstest.Connect(t, s)
	if err := (events.Topology{Storage: jetstream.MemoryStorage}).EnsureStreams(ctx, js); err != nil {
		t.Fatal(err)
	}
	jobsKV, _ := events.Bucket(ctx, js, events.BucketJobs)
	locks, _ := events.Bucket(ctx, js, events.BucketLocks)
	js2, err := jobs.New(js, jobsKV, locks, jobs.Config{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(store.Config{Path: filepath.Join(t.TempDir(), "inv.db"), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	proj, err := inventory.NewProjector(st, js, 0, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	pctx, pcancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = proj.Run(pctx); close(done) }()
	t.Cleanup(func() { pcancel(); <-done })
	return &trackerEnv{js: js, store: js2, locks: locks, proj: proj}, ctx
}

func (e *trackerEnv) createJob(t *testing.T, ctx context.Context, n int) (events.Job, []events.Vault) {
	t.Helper()
	vs := make([]events.Vault, n)
	for i := range vs {
		vs[i] = events.Vault{ID: events.NewID(), Name: fmt.Sprintf("kv-%02d", i), SubscriptionID: "s"}
	}
	now := time.Now().UTC()
	job, err := e.store.Create(ctx, events.Job{ID: events.NewID(), CreatedAt: now, UpdatedAt: now, OverallStatus: events.JobInProgress},
		func(_ context.Context, yield func([]events.Vault) error) error { return yield(vs) }, nil)
	if err != nil {
		t.Fatal(err)
	}
	return job, vs
}

// TestTrackersRacingOnOneJob: several trackers (as on several workers)
// fold the results of one job's vaults at the same time, each writing
// only its vault's record. No update is lost, the job is finished
// exactly once, and every lock is freed.
func TestTrackersRacingOnOneJob(t *testing.T) {
	e, ctx := setupTracker(t)
	const vaults = 40
	job, vs := e.createJob(t, ctx, vaults)

	var wg sync.WaitGroup
	var mu sync.Mutex
	finished := 0
	for i, v := range vs {
		tr, err := NewTracker(Config{}, e.js, e.store, e.proj)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, kind := events.VaultCompleted, events.KindVaultCompleted
			if i == 7 {
				status, kind = events.VaultFailed, events.KindVaultFailed
			}
			res := events.VaultResult{JobID: job.ID, VaultID: v.ID, Vault: v.QualifiedName(), Status: status, Listed: i,
				StartedAt: time.Now().UTC(), FinishedAt: time.Now().UTC()}
			for _, k := range []events.EventKind{events.KindVaultStarted, kind} {
				seq, err := tr.apply(ctx, tr.log, []trackedEvent{{kind: k, res: res}})
				if err != nil {
					t.Errorf("vault %d: %v", i, err)
					return
				}
				done, err := finishJob(ctx, tr.cfg, e.js, e.store, e.proj, job, seq, time.Now, tr.log)
				if err != nil {
					t.Errorf("vault %d: finish: %v", i, err)
					return
				}
				if done {
					mu.Lock()
					finished++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()

	final, _, err := e.store.Get(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if final.OverallStatus != events.JobFailed || final.CompletedAt == nil {
		t.Fatalf("job ended %s", final.OverallStatus)
	}
	if finished != 1 {
		t.Fatalf("the job was finished %d times", finished)
	}
	for i, v := range vs {
		// No update lost: every vault carries its own result.
		jv, _, err := e.store.Vault(ctx, job.ID, v.ID)
		if err != nil || !jv.Status.Terminal() || jv.StartedAt == nil || jv.FinishedAt == nil || jv.Listed != i {
			t.Errorf("vault %d: %+v (%v)", i, jv, err)
		}
	}
	p, err := e.proj.JobProgress(ctx, job.ID, 0)
	if err != nil || p.Completed != vaults-1 || p.Failed != 1 || p.Pending+p.Running != 0 {
		t.Fatalf("progress %+v (%v)", p, err)
	}
	keys, err := e.locks.Keys(ctx)
	if !errors.Is(err, jetstream.ErrNoKeysFound) {
		t.Fatalf("locks left: %v (%v)", keys, err)
	}
}

// TestTrackerEventsAreIdempotent: a redelivered or late event changes
// nothing once the vault is terminal, and a started event after the end
// does not move the vault back.
func TestTrackerEventsAreIdempotent(t *testing.T) {
	e, ctx := setupTracker(t)
	job, vs := e.createJob(t, ctx, 2)
	tr, err := NewTracker(Config{}, e.js, e.store, e.proj)
	if err != nil {
		t.Fatal(err)
	}
	res := events.VaultResult{JobID: job.ID, VaultID: vs[0].ID, Vault: vs[0].QualifiedName(), Status: events.VaultCompleted, Fetched: 5,
		StartedAt: time.Now().UTC(), FinishedAt: time.Now().UTC()}
	for _, k := range []events.EventKind{events.KindVaultCompleted, events.KindVaultCompleted, events.KindVaultStarted} {
		if _, err := tr.apply(ctx, tr.log, []trackedEvent{{kind: k, res: res}}); err != nil {
			t.Fatal(err)
		}
	}
	failed := res
	failed.Status, failed.Error = events.VaultFailed, "late"
	if _, err := tr.apply(ctx, tr.log, []trackedEvent{{kind: events.KindVaultFailed, res: failed}}); err != nil {
		t.Fatal(err)
	}
	jv, rev, err := e.store.Vault(ctx, job.ID, vs[0].ID)
	if err != nil || jv.Status != events.VaultCompleted || jv.Fetched != 5 {
		t.Fatalf("vault record %+v (%v)", jv, err)
	}
	p, err := e.proj.JobProgress(ctx, job.ID, rev)
	if err != nil || p.Completed != 1 || p.Pending != 1 || p.Fetched != 5 {
		t.Fatalf("progress %+v (%v)", p, err)
	}
	if done, err := finishJob(ctx, tr.cfg, e.js, e.store, e.proj, job, rev, time.Now, tr.log); err != nil || done {
		t.Fatalf("a job with a pending vault finished: %v %v", done, err)
	}
}

// TestProgressEventCarriesStats: after a vault of a running job finished,
// the tracker publishes the job's progress event with its stats, summed
// from the vault records (the vault's own Azure accounting included).
func TestProgressEventCarriesStats(t *testing.T) {
	e, ctx := setupTracker(t)
	job, vs := e.createJob(t, ctx, 3)
	tr, err := NewTracker(Config{}, e.js, e.store, e.proj)
	if err != nil {
		t.Fatal(err)
	}
	res := events.VaultResult{JobID: job.ID, VaultID: vs[0].ID, Vault: vs[0].QualifiedName(), Status: events.VaultCompleted,
		Listed: 5, Fetched: 5, New: 4, Changed: 1, StartedAt: time.Now().UTC(), FinishedAt: time.Now().UTC(),
		Azure: events.AzureUsage{ListKeys: 2, GetKey: 5, Unauthenticated: 1, StandardOps: 6}}
	evs := []trackedEvent{{kind: events.KindVaultCompleted, res: res}}
	seq, err := tr.apply(ctx, tr.log, evs)
	if err != nil {
		t.Fatal(err)
	}
	if !hasTerminal(evs) {
		t.Fatal("a completed event is terminal")
	}
	tr.publishProgress(ctx, tr.log, job, seq)
	stream, err := e.js.Stream(ctx, events.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := stream.GetLastMsgForSubject(ctx, events.JobEventSubject(job.ID, events.KindJobProgress))
	if err != nil {
		t.Fatalf("no progress event: %v", err)
	}
	var got events.JobProgressed
	if _, err := events.DecodeEvent(msg.Data, &got); err != nil {
		t.Fatal(err)
	}
	st := got.Stats
	if st.Vaults.Completed != 1 || st.Vaults.Pending != 2 || st.Keys.New != 4 || st.Keys.Changed != 1 ||
		st.Azure.Calls["get_key"] != 5 || st.Azure.Requests != 7 || st.Cost.Operations.Standard != 6 || st.ETASeconds == nil {
		t.Errorf("progress stats %+v", st)
	}
}
