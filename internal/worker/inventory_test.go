package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/akvsync/akvsync/internal/control"
	"github.com/akvsync/akvsync/internal/httpapi"
	"github.com/akvsync/akvsync/internal/natstest"
	"github.com/akvsync/akvsync/internal/worker"
	"github.com/akvsync/akvsync/pkg/events"
)

// syncEverything runs a sync of every vault to completion.
func (e *env) syncEverything(t *testing.T) {
	t.Helper()
	job := e.createJob(t, control.CreateJobRequest{SynchronizeAll: true})
	if done := e.waitJob(t, job.ID); done.OverallStatus != events.JobCompleted {
		t.Fatalf("job ended %s: %v", done.OverallStatus, done.DetailedStatus())
	}
}

// waitStoreKeys waits until w's store holds want keys.
func waitStoreKeys(t *testing.T, w *worker.Worker, want int) {
	t.Helper()
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		if n := w.Store().Stats().Keys; n != want {
			return fmt.Errorf("worker store has %d keys, want %d", n, want)
		}
		return nil
	})
}

// vaultKeyCount lists a vault's keys in one worker's own store.
func vaultKeyCount(t *testing.T, w *worker.Worker, vaultID string) int {
	t.Helper()
	p, err := w.Store().ListKeys(context.Background(), events.KeyQuery{VaultID: vaultID, Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	return p.Total
}

func TestRemovingAVaultTakesItsKeysOutOfEveryInventory(t *testing.T) {
	t.Parallel()
	const vaults, keys = 3, 30
	e := setup(t, envOptions{vaults: vaults, keys: keys})
	w1 := e.startWorker(t, "w1", nil)
	w2 := e.startWorker(t, "w2", nil)
	e.syncEverything(t)
	waitStoreKeys(t, w1, vaults*keys)
	waitStoreKeys(t, w2, vaults*keys)

	names := e.vaultNames()
	gone, kept := e.vaults[names[0]], e.vaults[names[1]]
	if _, err := e.plane.Vaults.Remove(e.ctx, gone.ID); err != nil {
		t.Fatal(err)
	}
	// Every running worker deletes the vault's keys...
	for _, w := range []*worker.Worker{w1, w2} {
		waitStoreKeys(t, w, (vaults-1)*keys)
		if n := vaultKeyCount(t, w, gone.ID); n != 0 {
			t.Fatalf("a worker still lists %d keys of the removed vault", n)
		}
		if n := vaultKeyCount(t, w, kept.ID); n != keys {
			t.Fatalf("a worker lists %d keys of a kept vault, want %d", n, keys)
		}
	}
	// ...the query path shows none of them...
	if inv := e.inventory(t, gone.ID); len(inv) != 0 {
		t.Fatalf("the keys list still shows %d keys of the removed vault", len(inv))
	}
	page, err := e.plane.Queries.Keys(e.ctx, events.KeyQuery{KeyVault: gone.QualifiedName()})
	if err != nil || page.Total != 0 {
		t.Fatalf("keys by the removed vault's name: total %d, err %v", page.Total, err)
	}
	// ...and a worker that starts later, replaying the stream, never sees them.
	w3 := e.startWorker(t, "w3", nil)
	waitStoreKeys(t, w3, (vaults-1)*keys)
	if n := vaultKeyCount(t, w3, gone.ID); n != 0 {
		t.Fatalf("a new worker holds %d keys of the removed vault", n)
	}
}

// TestInventoryStorageRatio syncs realistic keys (the emulator's seeded
// mix of RSA and EC keys, sizes, tags and versions) and checks the bytes
// bbolt has in use per key, indexes and everything else included, against
// the size of the key's CCKM JSON as the API renders it.
func TestInventoryStorageRatio(t *testing.T) {
	t.Parallel()
	const vaults, keys = 3, 1000
	const maxRatio = 1.5
	e := setup(t, envOptions{vaults: vaults, keys: keys, noThrottling: true})
	w := e.startWorker(t, "w1", nil)
	e.syncEverything(t)
	waitStoreKeys(t, w, vaults*keys)

	jsonBytes := 0
	for _, v := range e.vaults {
		for _, r := range e.inventory(t, v.ID) {
			raw, err := json.Marshal(httpapi.RenderKey(r))
			if err != nil {
				t.Fatal(err)
			}
			jsonBytes += len(raw)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(filepath.Join(e.dir, "w1.db"), 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	inUse, entries := 0, 0
	err = db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(_ []byte, b *bolt.Bucket) error {
			st := b.Stats()
			inUse += st.BranchInuse + st.LeafInuse + st.InlineBucketInuse
			entries += st.KeyN
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	n := vaults * keys
	perKey, jsonPerKey := float64(inUse)/float64(n), float64(jsonBytes)/float64(n)
	ratio := perKey / jsonPerKey
	t.Logf("%d keys: bbolt in use %.0f B/key (%.1f entries/key), CCKM JSON %.0f B/key, ratio %.2f",
		n, perKey, float64(entries)/float64(n), jsonPerKey, ratio)
	if ratio > maxRatio {
		t.Fatalf("bbolt holds %.0f bytes per key, %.2f × its %.0f-byte CCKM JSON; want ≤ %.1f×", perKey, ratio, jsonPerKey, maxRatio)
	}
}
