package worker_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/akvsync/akvsync/internal/control"
	"github.com/akvsync/akvsync/internal/natstest"
	"github.com/akvsync/akvsync/pkg/akvemu"
	"github.com/akvsync/akvsync/pkg/events"
	akvsync "github.com/akvsync/akvsync/pkg/sync"
)

// removedText is the detailed_status of a vault removed while its job ran.
var removedText = string(events.VaultAborted) + ": " + akvsync.ErrVaultRemoved.Error()

func TestRemovingAVaultDuringAJob(t *testing.T) {
	t.Parallel()
	t.Run("MidSyncTheVaultStopsAbortedAndKeepsNoKey", func(t *testing.T) {
		t.Parallel()
		const keys, getConc = 400, 4
		e := setup(t, envOptions{vaults: 1, keys: keys})
		name := e.vaultNames()[0]
		v := e.vaults[name]
		if err := e.emu.SetFaults(name, akvemu.Faults{Latency: 20 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
		w := e.startWorker(t, "w1", func(c *akvsync.Config) { c.GetConcurrency = getConc })
		job := e.createJob(t, control.CreateJobRequest{KeyVaults: []string{name}})
		natstest.CheckFor(t, 30*time.Second, 5*time.Millisecond, func() error {
			if n := e.emu.Counters(name).Total(akvemu.OpGetKey); n < 30 {
				return fmt.Errorf("%d gets so far", n)
			}
			return nil
		})
		// The job holds the vault: the removal goes ahead anyway.
		if _, err := e.plane.Vaults.Remove(e.ctx, v.ID); err != nil {
			t.Fatalf("remove during the job: %v", err)
		}
		atRemoval := e.emu.Counters(name)
		done := e.waitJob(t, job.ID)
		final := e.emu.Counters(name)
		if done.OverallStatus != events.JobCompleted || done.Abort {
			t.Fatalf("job ended %s abort=%v, want completed without abort", done.OverallStatus, done.Abort)
		}
		if got := done.DetailedStatus()[v.QualifiedName()]; got != removedText {
			t.Fatalf("detailed_status %q, want %q", got, removedText)
		}
		calls := func(c akvemu.Counters) int64 { return c.Total(akvemu.OpListKeys) + c.Total(akvemu.OpGetKey) }
		if extra := calls(final) - calls(atRemoval); extra > akvemu.MaxPageSize+getConc+1 {
			t.Fatalf("%d Azure calls after the removal, want at most one page's worth", extra)
		}
		// Keys the sync published before or after the removal are not in
		// the inventory.
		if n := vaultKeyCount(t, w, v.ID); n != 0 {
			t.Fatalf("the worker holds %d keys of the removed vault", n)
		}
		if locks := e.lockCount(t); locks != 0 {
			t.Fatalf("%d vault locks left after the job", locks)
		}

		t.Run("adding it again syncs it normally", func(t *testing.T) {
			if err := e.emu.SetFaults(name, akvemu.Faults{}); err != nil {
				t.Fatal(err)
			}
			m := e.emu.Manifest()
			added, err := e.plane.Vaults.AddVaults(e.ctx, control.AddVaultsRequest{Connection: "emulator", SubscriptionID: v.SubscriptionID,
				Vaults: []control.AddVault{{Name: name, Properties: control.VaultProperties{VaultURI: m.Vaults[0].URL}}}})
			if err != nil {
				t.Fatal(err)
			}
			again := added[0]
			if again.ID == v.ID {
				t.Fatal("the vault added again has its old id")
			}
			e.vaults[name] = again
			job := e.createJob(t, control.CreateJobRequest{KeyVaults: []string{name}})
			if done := e.waitJob(t, job.ID); done.OverallStatus != events.JobCompleted || done.DetailedStatus()[again.QualifiedName()] != string(events.VaultCompleted) {
				t.Fatalf("job ended %s: %v", done.OverallStatus, done.DetailedStatus())
			}
			waitStoreKeys(t, w, keys)
			e.assertMatchesEmulator(t, name)
		})
	})

	t.Run("AQueuedVaultIsSkippedWithoutAzureCalls", func(t *testing.T) {
		t.Parallel()
		e := setup(t, envOptions{vaults: 3, keys: 5})
		names := e.vaultNames()
		gone := e.vaults[names[1]]
		job := e.createJob(t, control.CreateJobRequest{SynchronizeAll: true})
		if _, err := e.plane.Vaults.Remove(e.ctx, gone.ID); err != nil {
			t.Fatal(err)
		}
		e.startWorker(t, "w1", nil)
		done := e.waitJob(t, job.ID)
		if done.OverallStatus != events.JobCompleted || done.Abort {
			t.Fatalf("job ended %s abort=%v: %v", done.OverallStatus, done.Abort, done.DetailedStatus())
		}
		for _, n := range names {
			want := string(events.VaultCompleted)
			if n == gone.Name {
				want = removedText
			}
			if got := done.DetailedStatus()[e.vaults[n].QualifiedName()]; got != want {
				t.Errorf("vault %s = %q, want %q", n, got, want)
			}
		}
		if c := e.emu.Counters(gone.Name); c.Total(akvemu.OpListKeys)+c.Total(akvemu.OpGetKey) != 0 {
			t.Errorf("the removed vault got Azure calls: %+v", c)
		}
		if done.Progress.Aborted != 1 || done.Progress.Completed != 2 {
			t.Errorf("progress %+v", done.Progress)
		}
	})
}

// lockCount counts the vault locks held.
func (e *env) lockCount(t *testing.T) int {
	t.Helper()
	kv, err := events.Bucket(e.ctx, e.js, events.BucketLocks)
	if err != nil {
		t.Fatal(err)
	}
	lister, err := kv.ListKeys(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for range lister.Keys() {
		n++
	}
	return n
}
