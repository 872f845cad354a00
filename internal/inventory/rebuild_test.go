package inventory_test

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/akvsync/akvsync/internal/inventory"
	"github.com/akvsync/akvsync/pkg/events"
)

// TestStoreOfAnotherSchemaIsRebuiltFromTheStreams: a store file written
// with another layout version opens, and the projector refills it from
// the streams.
func TestStoreOfAnotherSchemaIsRebuiltFromTheStreams(t *testing.T) {
	t.Parallel()
	f := setup(t)
	vault := events.NewID()
	f.publishKeys(t, vault, 0, 400, "one")
	p, _, stop := f.run(t)
	if ok, err := p.CatchUp(f.ctx, inventory.SourceKeys, 10*time.Second); err != nil || !ok {
		t.Fatalf("catch up: %v %v", ok, err)
	}
	stop()

	// Mark the file as written by the previous schema version (the next
	// one if this is the first).
	db, err := bolt.Open(f.path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket([]byte("meta"))
		v := binary.BigEndian.Uint64(meta.Get([]byte("schema")))
		if v > 1 {
			v--
		} else {
			v++
		}
		return meta.Put([]byte("schema"), binary.BigEndian.AppendUint64(nil, v))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	p, st, stop := f.run(t) // fails the test if Open refuses the file
	defer stop()
	if ok, err := p.CatchUp(f.ctx, inventory.SourceKeys, 10*time.Second); err != nil || !ok {
		t.Fatalf("catch up: %v %v", ok, err)
	}
	if n := st.Stats().Keys; n != 400 {
		t.Fatalf("rebuilt store has %d keys, want the stream's 400", n)
	}
	k, err := st.GetKey(f.ctx, events.KeyID(vault, "key-0123"))
	if err != nil || k.Tags["gen"] != "one" {
		t.Fatalf("key 123 after the rebuild: %+v, %v", k, err)
	}
}

// TestVaultRemovedMarkerDeletesTheVaultsKeys: the projector applies a
// vault-removed marker on the KEYS stream by deleting the vault's keys; a
// key of the vault published after the marker (by a sync that was running
// when the vault was removed) is not applied either.
func TestVaultRemovedMarkerDeletesTheVaultsKeys(t *testing.T) {
	t.Parallel()
	f := setup(t)
	gone, kept := events.NewID(), events.NewID()
	f.publishKeys(t, gone, 0, 300, "one")
	f.publishKeys(t, kept, 0, 50, "one")
	raw, _ := json.Marshal(events.VaultRemoved{VaultID: gone, RemovedAt: time.Now().UTC()})
	if _, err := f.js.Publish(f.ctx, events.VaultRemovedSubject(gone), raw); err != nil {
		t.Fatalf("the KEYS stream refuses the marker: %v", err)
	}
	f.publishKeys(t, gone, 1000, 1005, "after") // a sync that outlived the removal
	p, st, stop := f.run(t)
	defer stop()
	if ok, err := p.CatchUp(f.ctx, inventory.SourceKeys, 10*time.Second); err != nil || !ok {
		t.Fatalf("catch up: %v %v", ok, err)
	}
	if n := st.Stats().Keys; n != 50 {
		t.Fatalf("store has %d keys, want the 50 of the other vault", n)
	}
	for i, want := range map[int]bool{0: false, 299: false, 1000: false} {
		_, err := st.GetKey(f.ctx, events.KeyID(gone, fmt.Sprintf("key-%04d", i)))
		if (err == nil) != want {
			t.Errorf("key %d of the removed vault: present %v, want %v", i, err == nil, want)
		}
	}
}
