package worker_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/akvsync/akvsync/internal/azure"
	"github.com/akvsync/akvsync/internal/connections"
	"github.com/akvsync/akvsync/internal/control"
	"github.com/akvsync/akvsync/internal/worker"
	"github.com/akvsync/akvsync/pkg/akvemu"
	"github.com/akvsync/akvsync/pkg/events"
	akvsync "github.com/akvsync/akvsync/pkg/sync"
)

// startProcess starts a worker as a separate process would be: its own
// NATS connection, store, syncer and limiters; production Azure client
// settings.
func (e *env) startProcess(t testing.TB, name string, cfg akvsync.Config) *worker.Worker {
	t.Helper()
	nc, err := nats.Connect(e.nc.ConnectedUrl(), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	cfg.Source, cfg.RetryDelay, cfg.Heartbeat = "test/"+name, 50*time.Millisecond, 300*time.Millisecond
	w, err := worker.Start(e.ctx, nc, worker.Config{
		Topology:    e.topo,
		StorePath:   filepath.Join(e.dir, name+".db"),
		StoreNoSync: true,
		Sync:        cfg,
		Azure:       azure.Config{},
		Connections: connections.Chain{Static: map[string]azure.Connection{"emulator": e.conn}},
		// Warnings show with a failure: why a vault was synced twice.
		Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	return w
}

// TestSubscriptionBudgetAcrossWorkers: four worker processes (each with
// its own NATS connection, syncer and limiters) sync the vaults of one
// subscription whose Azure limit is 200 requests/s, each configured with
// that budget as an operator would (the same --subscription-rate on every
// worker). Together they must stay within it: (nearly) no 429 answers,
// and no more requests than the limit let through. When each process paced
// the whole budget alone, four of them sent 4 × 200/s.
func TestSubscriptionBudgetAcrossWorkers(t *testing.T) {
	t.Parallel()
	const (
		rate    = 200 // requests/s, the subscription's limit and budget
		burst   = 100 // the emulator's subscription bucket: half a second
		vaults  = 16
		keys    = 75 // three list pages
		workers = 4
	)
	e := setup(t, envOptions{vaults: vaults, keys: keys, subscriptions: 1, emulator: func(c *akvemu.Config) {
		c.SubscriptionLimit = rate * int(akvemu.ThrottleWindow/time.Second)
		c.SubscriptionBurst = burst
	}})
	for i := range workers {
		// Two vaults at a time each: every worker gets its part.
		e.startProcess(t, fmt.Sprintf("w%d", i+1), akvsync.Config{VaultRate: -1, SubscriptionRate: rate, VaultParallelism: 2})
	}

	start := time.Now()
	job := e.createJob(t, control.CreateJobRequest{SynchronizeAll: true})
	if done := e.waitJob(t, job.ID); done.OverallStatus != events.JobCompleted {
		t.Fatalf("job ended %s: %v", done.OverallStatus, done.DetailedStatus())
	}
	elapsed := time.Since(start)

	var calls, throttled, requests int64
	for name := range e.vaults {
		c := e.emu.Counters(name)
		calls += c.Count(akvemu.OpListKeys, 200) + c.Count(akvemu.OpGetKey, 200)
		throttled += c.Count(akvemu.OpListKeys, 429) + c.Count(akvemu.OpGetKey, 429)
		requests += c.Total(akvemu.OpListKeys) + c.Total(akvemu.OpGetKey)
	}
	if want := int64(vaults*(keys/akvemu.MaxPageSize+keys)) + e.symmetricKeys(); calls != want {
		t.Errorf("Azure calls answered 200: %d, want list pages + keys + AES keys' sizes = %d", calls, want)
	}
	// What the subscription's bucket let through in that time, and 5%
	// for the pacing's own bucket and the moment workers join.
	allowed := float64(burst) + rate*elapsed.Seconds()*1.05
	t.Logf("%d workers: %d calls, %d answered 429, %d requests in %.2fs (%.0f/s against a budget of %d/s)",
		workers, calls, throttled, requests, elapsed.Seconds(), float64(requests)/elapsed.Seconds(), rate)
	if throttled > calls/200 {
		t.Errorf("%d answers were 429 (%.2f%% of %d calls), want (nearly) none: the workers overran the subscription's budget",
			throttled, 100*float64(throttled)/float64(calls), calls)
	}
	if float64(requests) > allowed {
		t.Errorf("%d requests in %.2fs, more than the subscription's %d/s (+ its bucket of %d) allows: %.0f",
			requests, elapsed.Seconds(), rate, burst, allowed)
	}
}

// TestBudgetAdaptsToALowerCeiling: the subscription allows a third of the
// configured budget (other clients use the rest). The worker backs off on
// the first 429s and finishes with few of them (15 to 30 of 624 calls on
// a quiet machine, 65 to 84 on a loaded one; the limiter's first version, which
// did not re-pace queued requests after a cut, got 292); no vault fails.
func TestBudgetAdaptsToALowerCeiling(t *testing.T) {
	t.Parallel()
	const (
		limit  = 100 // requests/s the subscription really allows
		budget = 300 // what the worker was told
		vaults = 8
		keys   = 75
	)
	e := setup(t, envOptions{vaults: vaults, keys: keys, subscriptions: 1, emulator: func(c *akvemu.Config) {
		c.SubscriptionLimit = limit * int(akvemu.ThrottleWindow/time.Second)
		c.SubscriptionBurst = limit / 2
	}})
	e.startWorker(t, "w", func(c *akvsync.Config) { c.SubscriptionRate = budget; c.VaultRate = -1 },
		func(c *worker.Config) { c.Azure = azure.Config{} })
	job := e.createJob(t, control.CreateJobRequest{SynchronizeAll: true})
	if done := e.waitJob(t, job.ID); done.OverallStatus != events.JobCompleted {
		t.Fatalf("job ended %s: %v", done.OverallStatus, done.DetailedStatus())
	}
	var calls, throttled int64
	for name := range e.vaults {
		c := e.emu.Counters(name)
		calls += c.Count(akvemu.OpListKeys, 200) + c.Count(akvemu.OpGetKey, 200)
		throttled += c.Count(akvemu.OpListKeys, 429) + c.Count(akvemu.OpGetKey, 429)
	}
	t.Logf("budget %d/s against a ceiling of %d/s: %d calls, %d answered 429", budget, limit, calls, throttled)
	if want := int64(vaults*(keys/akvemu.MaxPageSize+keys)) + e.symmetricKeys(); calls != want {
		t.Errorf("Azure calls answered 200: %d, want %d", calls, want)
	}
	if throttled > calls/4 {
		t.Errorf("%d of %d calls answered 429: the worker did not back off", throttled, calls)
	}
}
