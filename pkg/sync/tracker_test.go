package sync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	gosync "sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/akvsync/akvsync/internal/natstest"
	"github.com/akvsync/akvsync/pkg/events"
)

// TestTrackersRacingOnOneJob: several trackers (as on several workers)
// fold the results of one job's vaults at the same time. Compare-and-set
// must lose no update, finish the job exactly once, and free every lock.
func TestTrackersRacingOnOneJob(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := natstest.RunServer(t, natstest.Options{})
	_, js := natstest.Connect(t, s)
	if err := (events.Topology{}).EnsureStreams(ctx, js); err != nil {
		t.Fatal(err)
	}
	jobs, _ := events.Bucket(ctx, js, events.BucketJobs)
	locks, _ := events.Bucket(ctx, js, events.BucketLocks)

	const vaults = 40
	job := events.Job{ID: events.NewID(), CreatedAt: time.Now().UTC(), OverallStatus: events.JobInProgress}
	for i := range vaults {
		v := events.JobVault{VaultID: events.NewID(), Name: fmt.Sprintf("kv-%02d", i), SubscriptionID: "s", Status: events.VaultPending}
		job.Vaults = append(job.Vaults, v)
		if _, err := locks.Create(ctx, v.VaultID, []byte(job.ID)); err != nil {
			t.Fatal(err)
		}
	}
	raw, _ := json.Marshal(job)
	if _, err := jobs.Create(ctx, job.ID, raw); err != nil {
		t.Fatal(err)
	}

	var wg gosync.WaitGroup
	finished := make(chan struct{}, vaults)
	for i, v := range job.Vaults {
		tr, err := NewTracker(Config{}, js, jobs, locks)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			status := events.VaultCompleted
			if i == 7 {
				status = events.VaultFailed
			}
			res := events.VaultResult{JobID: job.ID, VaultID: v.VaultID, Status: status, Listed: i, StartedAt: time.Now().UTC(), FinishedAt: time.Now().UTC()}
			for _, kind := range []events.EventKind{events.KindVaultStarted, map[events.VaultStatus]events.EventKind{
				events.VaultCompleted: events.KindVaultCompleted, events.VaultFailed: events.KindVaultFailed}[status]} {
				got, changed, err := tr.Apply(ctx, kind, res)
				if err != nil {
					t.Errorf("vault %d: %v", i, err)
					return
				}
				if changed && got.OverallStatus != events.JobInProgress {
					finished <- struct{}{}
				}
			}
		}()
	}
	wg.Wait()
	close(finished)

	final, _, err := getJob(ctx, jobs, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if final.OverallStatus != events.JobFailed || final.CompletedAt == nil {
		t.Fatalf("job ended %s", final.OverallStatus)
	}
	if n := len(finished); n != 1 {
		t.Fatalf("the job was finished %d times", n)
	}
	for i, v := range final.Vaults {
		// No update lost: every vault carries its own result.
		if !v.Status.Terminal() || v.StartedAt == nil || v.FinishedAt == nil || v.Listed != i {
			t.Errorf("vault %d: %+v", i, v)
		}
	}
	keys, err := locks.Keys(ctx)
	if !errors.Is(err, jetstream.ErrNoKeysFound) {
		t.Fatalf("locks left: %v (%v)", keys, err)
	}
}
