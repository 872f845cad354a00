package worker_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/akvsync/akvsync/internal/control"
	"github.com/akvsync/akvsync/pkg/akvemu"
	"github.com/akvsync/akvsync/pkg/events"
	akvsync "github.com/akvsync/akvsync/pkg/sync"
)

// azureSubscriptionLimit is Azure's documented subscription-wide Key Vault
// limit that P1 divides by: 5 × 4,000 requests per 10 s.
const azureSubscriptionLimit = 2000.0

// BenchmarkP1RealLimits is issue 8's P1 figure: sync-all of
// AKVSYNC_BENCH_VAULTS × AKVSYNC_BENCH_KEYS (default 100 × 1,000) in one
// subscription, the emulator at Azure's default limits (per vault 4,000
// requests / 10 s, 2,000 for premium vaults; per subscription 20,000 / 10 s)
// with AKVSYNC_BENCH_LATENCY_MS (default 20) on every answer, one worker
// with the default rate settings. It reports the wall time from job
// creation until its keys are queryable, the Azure calls answered 200
// (list pages + GetKeys), the 429 answers, and
//
//	ratio = wall time ÷ (calls ÷ 2,000 per s)
//
// whose goal is ≤ 1.05 with at most 0.1% of answers 429.
// AKVSYNC_BENCH_SUB_LIMIT scales the subscription limit (default 2,000/s);
// AKVSYNC_BENCH_WORKERS runs that many workers on it (default 1);
// AKVSYNC_BENCH_VAULT_RATE sets the per-vault rate (default: the default).
// Run it alone:
//
//	go test -run '^$' -bench BenchmarkP1RealLimits -benchtime 1x ./internal/worker
func BenchmarkP1RealLimits(b *testing.B) {
	vaults, keys := envInt("AKVSYNC_BENCH_VAULTS", 100), envInt("AKVSYNC_BENCH_KEYS", 1000)
	latency := time.Duration(envInt("AKVSYNC_BENCH_LATENCY_MS", 20)) * time.Millisecond
	// AKVSYNC_BENCH_SUB_LIMIT scales the subscription limit down (the
	// emulator's and, in proportion, the worker's default budget), so the
	// figure measures the pacing rather than a busy machine's CPU.
	limit := float64(envInt("AKVSYNC_BENCH_SUB_LIMIT", azureSubscriptionLimit))
	e := setup(b, envOptions{vaults: vaults, keys: keys, subscriptions: 1, emulator: func(c *akvemu.Config) {
		if limit != azureSubscriptionLimit {
			c.SubscriptionLimit = int(limit * akvemu.ThrottleWindow.Seconds())
		}
	}})
	for name := range e.vaults {
		if err := e.emu.SetFaults(name, akvemu.Faults{Latency: latency}); err != nil {
			b.Fatal(err)
		}
	}
	// Production rate settings: zero takes the defaults.
	// AKVSYNC_BENCH_WORKERS > 1 adds workers as separate processes would
	// be (own NATS connection, store and limiters), sharing the budget.
	vaultRate, subRate := float64(envInt("AKVSYNC_BENCH_VAULT_RATE", 0)), akvsync.DefaultSubscriptionRate*limit/azureSubscriptionLimit
	e.startWorker(b, "p1", func(c *akvsync.Config) { c.VaultRate, c.SubscriptionRate = vaultRate, subRate })
	workers := envInt("AKVSYNC_BENCH_WORKERS", 1)
	for i := 1; i < workers; i++ {
		e.startProcess(b, fmt.Sprintf("p1-%d", i), akvsync.Config{VaultRate: vaultRate, SubscriptionRate: subRate})
	}
	for b.Loop() {
		b.StopTimer()
		st, err := e.js.Stream(e.ctx, events.StreamKeys)
		if err != nil {
			b.Fatal(err)
		}
		if err := st.Purge(e.ctx); err != nil {
			b.Fatal(err)
		}
		for name := range e.vaults {
			if err := e.emu.ResetCounters(name); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		start := time.Now()
		// Sample the emulator's answers to split the wall time into the
		// time before the first Azure answer, the Azure phase, and after.
		var first, last time.Time
		stopSampling, sampled := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(sampled)
			var prev int64
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stopSampling:
					return
				case now := <-tick.C:
					var n int64
					for name := range e.vaults {
						n += e.emu.Counters(name).Requests
					}
					if n > 0 && first.IsZero() {
						first = now
					}
					if n != prev {
						last, prev = now, n
					}
				}
			}
		}()
		job := e.createJob(b, control.CreateJobRequest{SynchronizeAll: true})
		if done := e.waitJob(b, job.ID); done.OverallStatus != events.JobCompleted {
			b.Fatalf("job ended %s", done.OverallStatus)
		}
		if page, err := e.plane.Queries.Keys(e.ctx, events.KeyQuery{Limit: 1}); err != nil || page.Total != vaults*keys {
			b.Fatalf("inventory after sync: %d keys, %v", page.Total, err)
		}
		wall := time.Since(start)
		close(stopSampling)
		<-sampled
		var calls, throttled, answers int64
		for name := range e.vaults {
			c := e.emu.Counters(name)
			calls += c.Count(akvemu.OpListKeys, 200) + c.Count(akvemu.OpGetKey, 200)
			throttled += c.Count(akvemu.OpListKeys, 429) + c.Count(akvemu.OpGetKey, 429)
			answers += c.Requests
		}
		ratio := wall.Seconds() / (float64(calls) / limit)
		b.Logf("P1: %d worker(s), %d vaults × %d keys, latency %s, subscription limit %.0f/s: wall %.2fs, calls %d, 429s %d of %d answers (%.3f%%), ratio %.3f",
			workers, vaults, keys, latency, limit, wall.Seconds(), calls, throttled, answers, 100*float64(throttled)/float64(answers), ratio)
		b.Logf("P1: first Azure answer after %.2fs, Azure phase %.2fs (%.0f calls/s), done %.2fs after the last answer",
			first.Sub(start).Seconds(), last.Sub(first).Seconds(), float64(calls)/last.Sub(first).Seconds(), wall.Seconds()-last.Sub(start).Seconds())
		b.ReportMetric(ratio, "ratio")
		b.ReportMetric(float64(throttled), "429s")
		b.ReportMetric(float64(calls), "calls")
		b.ReportMetric(wall.Seconds(), "wall-s")
	}
}
