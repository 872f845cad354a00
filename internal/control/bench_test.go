package control_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/akvsync/akvsync/internal/control"
	"github.com/akvsync/akvsync/internal/natstest"
	"github.com/akvsync/akvsync/pkg/events"
	"github.com/akvsync/akvsync/pkg/jobs"
)

// BenchmarkCreateSyncAll measures accepting a synchronize_all job over
// AKVSYNC_BENCH_VAULTS registered vaults (default 10,000) on a file-backed
// JetStream server: resolve, lock, plan, header, sync request. Between
// rounds the job's locks are released, as a finished job's are.
//
//	AKVSYNC_BENCH_VAULTS=100000 go test -run '^$' -bench CreateSyncAll -benchtime 3x ./internal/control
func BenchmarkCreateSyncAll(b *testing.B) {
	n := 10000
	if v, err := strconv.Atoi(os.Getenv("AKVSYNC_BENCH_VAULTS")); err == nil && v > 0 {
		n = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	srv := natstest.RunServer(b, natstest.Options{})
	nc, js := natstest.Connect(b, srv)
	if err := (events.Topology{}).EnsureStreams(ctx, js); err != nil {
		b.Fatal(err)
	}
	// Register the vaults as the registry stores them, pipelined.
	now := time.Now().UTC()
	var futs []jetstream.PubAckFuture
	for i := range n {
		v := events.Vault{ID: events.NewID(), Name: fmt.Sprintf("kv-%06d", i), SubscriptionID: testSub,
			VaultURI: fmt.Sprintf("https://kv-%06d.vault.azure.net", i), Connection: testConn, Cloud: "AzureCloud", CreatedAt: now, UpdatedAt: now}
		raw, _ := json.Marshal(v)
		f, err := js.PublishAsync("$KV."+events.BucketVaults+"."+v.ID, raw)
		if err != nil {
			b.Fatal(err)
		}
		futs = append(futs, f)
		if len(futs) == 1000 || i == n-1 {
			for _, f := range futs {
				select {
				case <-f.Ok():
				case err := <-f.Err():
					b.Fatal(err)
				}
			}
			futs = futs[:0]
		}
	}
	plane, err := control.New(ctx, nc, js, control.Config{Connections: []string{testConn}})
	if err != nil {
		b.Fatal(err)
	}
	jobsKV, _ := events.Bucket(ctx, js, events.BucketJobs)
	locks, _ := events.Bucket(ctx, js, events.BucketLocks)
	store, err := jobs.New(js, jobsKV, locks, jobs.Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		job, err := plane.Jobs.Create(ctx, control.CreateJobRequest{SynchronizeAll: true}, "bench")
		if err != nil {
			b.Fatal(err)
		}
		if job.VaultTotal != n {
			b.Fatalf("job of %d vaults, want %d", job.VaultTotal, n)
		}
		b.StopTimer()
		if err := store.ReleaseJobLocks(ctx, job.Job); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "vaults/s")
}
