package worker_test

import (
	"context"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/akvsync/akvsync/internal/azure"
	"github.com/akvsync/akvsync/internal/control"
	"github.com/akvsync/akvsync/internal/worker"
	"github.com/akvsync/akvsync/pkg/akvemu"
	"github.com/akvsync/akvsync/pkg/events"
	akvsync "github.com/akvsync/akvsync/pkg/sync"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkSyncAll measures a full sync-all in one process (JetStream file
// store, bbolt without fsync unless asked, one worker) against the emulator with zero
// latency and throttling off, so the pipeline's own ceiling shows. Sizes:
// AKVSYNC_BENCH_VAULTS × AKVSYNC_BENCH_KEYS (default 100 × 1,000);
// AKVSYNC_BENCH_LATENCY_MS adds a fixed latency to every emulator answer;
// AKVSYNC_BENCH_FSYNC=1 keeps the store's fsync (off by default here).
//
//	script   the baseline: what a user could script with the same SDK —
//	         list + GetKey of every key, 16 vaults and 16 gets per vault at
//	         once, results kept in memory only
//	full     a sync-all whose every key is new (the KEYS stream is purged
//	         before each run), fetched, published, stored by the worker
//	delta    a sync-all of unchanged vaults: listed, nothing fetched
func BenchmarkSyncAll(b *testing.B) {
	vaults, keys := envInt("AKVSYNC_BENCH_VAULTS", 100), envInt("AKVSYNC_BENCH_KEYS", 1000)
	e := setup(b, envOptions{vaults: vaults, keys: keys, noThrottling: true, subscriptions: 10})
	total := float64(vaults * keys)
	if ms := envInt("AKVSYNC_BENCH_LATENCY_MS", 0); ms > 0 {
		// Every emulator answer takes this long, as Azure's do.
		for name := range e.vaults {
			if err := e.emu.SetFaults(name, akvemu.Faults{Latency: time.Duration(ms) * time.Millisecond}); err != nil {
				b.Fatal(err)
			}
		}
	}

	b.Run("script", func(b *testing.B) {
		f, err := azure.NewFactory(azure.Config{})
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			var wg sync.WaitGroup
			sem := make(chan struct{}, akvsync.DefaultVaultParallelism)
			for _, v := range e.vaults {
				wg.Add(1)
				sem <- struct{}{}
				go func() {
					defer wg.Done()
					defer func() { <-sem }()
					if err := scriptVault(e.ctx, f, e.conn, v.VaultURI); err != nil {
						b.Error(err)
					}
				}()
			}
			wg.Wait()
		}
		b.ReportMetric(total*float64(b.N)/b.Elapsed().Seconds(), "keys/s")
	})

	// AKVSYNC_BENCH_FSYNC=1 keeps bbolt's fsync on, as the binaries run.
	e.startWorker(b, "bench", func(c *akvsync.Config) { c.VaultRate, c.SubscriptionRate = -1, -1 },
		func(c *worker.Config) { c.StoreNoSync = os.Getenv("AKVSYNC_BENCH_FSYNC") != "1" })
	b.Run("full", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			st, err := e.js.Stream(e.ctx, events.StreamKeys)
			if err != nil {
				b.Fatal(err)
			}
			if err := st.Purge(e.ctx); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			e.syncAll(b)
		}
		b.ReportMetric(total*float64(b.N)/b.Elapsed().Seconds(), "keys/s")
	})
	b.Run("delta", func(b *testing.B) {
		for b.Loop() {
			e.syncAll(b)
		}
		b.ReportMetric(total*float64(b.N)/b.Elapsed().Seconds(), "keys/s")
	})
}

func (e *env) syncAll(b *testing.B) {
	job := e.createJob(b, control.CreateJobRequest{SynchronizeAll: true})
	if done := e.waitJob(b, job.ID); done.OverallStatus != events.JobCompleted {
		for _, v := range done.Vaults {
			if v.Status != events.VaultCompleted {
				b.Logf("vault %s: %s %s", v.QualifiedName(), v.Status, v.Error)
			}
		}
		b.Fatalf("job ended %s", done.OverallStatus)
	}
	// The job is done when its keys are in the KEYS stream; wait until the
	// worker's store has applied them too, as a query would.
	page, err := e.plane.Queries.Keys(e.ctx, events.KeyQuery{Limit: 1})
	if err != nil || page.Total == 0 {
		b.Fatalf("inventory after sync: %d keys, %v", page.Total, err)
	}
}

// scriptVault is the baseline: list every key, then GetKey each, 16 at once.
func scriptVault(ctx context.Context, f *azure.Factory, conn azure.Connection, uri string) error {
	c, err := f.KeysClient(conn, uri, nil)
	if err != nil {
		return err
	}
	var names []string
	pager := c.NewListKeyPropertiesPager(nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, k := range page.Value {
			names = append(names, k.KID.Name())
		}
	}
	sem := make(chan struct{}, akvsync.DefaultGetConcurrency)
	errc := make(chan error, len(names))
	out := make([]azkeys.GetKeyResponse, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r, err := c.GetKey(ctx, n, "", nil)
			if err != nil {
				errc <- err
				return
			}
			out[i] = r
		}()
	}
	wg.Wait()
	close(errc)
	return <-errc
}
