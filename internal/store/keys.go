package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/akvsync/akvsync/pkg/events"
	bolt "go.etcd.io/bbolt"
)

// keyID returns the stored form (16 bytes) of a key record id (a UUID in
// any case; it reads back in lower case).
func keyID(id string) ([]byte, bool) {
	b, ok := uuidBytes(strings.ToLower(id))
	if !ok {
		return nil, false
	}
	return b[:], true
}

// bucketRemovedVaults holds a tombstone per removed vault id (the id, in
// lower case → the removal's apply time, Unix nanoseconds). A vault id is
// never registered again after its removal, so a key record of a
// tombstoned vault can only come from a sync that was running when the
// vault was removed: it is not applied. One small entry per removal ever
// made.
var bucketRemovedVaults = []byte("removed_vaults")

// removedVault reports a tombstoned vault id.
func removedVault(tomb *bolt.Bucket, vaultID string) bool {
	return tomb.Get([]byte(strings.ToLower(vaultID))) != nil
}

// applyKeys upserts key records and their index entries, skipping those of
// removed vaults (see bucketRemovedVaults). It calls checkResident before
// every record but the first: each record's lookups and index entries
// fault a dozen or more pages, and the kernel maps a 64 KiB fault-around
// window with each, so a worker checking every 256 records of a batch
// mapped about 90 MB between two checks, and every 64 records still 70 MB.
// The check itself is a clock read; the process's resident pages are
// read at most every Config.ResidentRelease.
func applyKeys(ctx context.Context, tx *bolt.Tx, recs []events.KeyRecord, checkResident func(*bolt.Tx)) error {
	if len(recs) == 0 {
		return nil
	}
	tomb := tx.Bucket(bucketRemovedVaults)
	keys := tx.Bucket(bucketKeys)
	w := newIndexWriter(tx)
	dict := newVaultDict(tx)
	added := 0
	var obuf []byte
	for i := range recs {
		if i%ctxCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if i > 0 {
			checkResident(tx) // cheap: a clock read unless a check is due
		}
		r := recs[i] // a copy: FirstSeenAt may change
		if removedVault(tomb, r.VaultID) {
			continue
		}
		id, ok := keyID(r.ID)
		if !ok {
			return fmt.Errorf("%w: key record %d of batch has id %q, not a key id", ErrBadRecord, i, r.ID)
		}
		var old *keyHead
		if ov := keys.Get(id); ov != nil {
			obuf = append(obuf[:0], ov...)
			h, err := decodeHead(obuf)
			if err != nil {
				return fmt.Errorf("key %s: %w", r.ID, err)
			}
			old = &h
			if first := time12(h.first); !first.IsZero() && (r.FirstSeenAt.IsZero() || r.FirstSeenAt.After(first)) {
				r.FirstSeenAt = first
			}
		} else {
			added++
		}
		t := tupleOf(&r)
		ord, err := dict.ordinal(&t)
		if err != nil {
			return err
		}
		// bbolt keeps the value slice until commit: a fresh one per key.
		v := appendRecord(make([]byte, 0, 512), &r, &t, ord)
		h, err := decodeHead(v)
		if err != nil {
			return err
		}
		if err := w.update(id, old, &h); err != nil {
			return err
		}
		if err := keys.Put(id, v); err != nil {
			return fmt.Errorf("put key %s: %w", r.ID, err)
		}
	}
	if added > 0 {
		return addCounter(tx.Bucket(bucketMeta), metaKeys, added)
	}
	return nil
}

// removeVaults deletes every key of the given vault ids, their index
// entries and the vaults' dictionary entries, and tombstones the ids so
// that no later key record of them is applied.
func removeVaults(ctx context.Context, tx *bolt.Tx, vaultIDs []string) error {
	if len(vaultIDs) == 0 {
		return nil
	}
	tomb := tx.Bucket(bucketRemovedVaults)
	stamp := binary.BigEndian.AppendUint64(nil, uint64(time.Now().UnixNano()))
	for _, vid := range vaultIDs {
		if err := tomb.Put([]byte(strings.ToLower(vid)), stamp); err != nil {
			return fmt.Errorf("store: tombstone vault %s: %w", vid, err)
		}
	}
	keys := tx.Bucket(bucketKeys)
	w := newIndexWriter(tx)
	removed := 0
	for _, vid := range vaultIDs {
		for _, ord := range ordsOf(tx, bucketVaultIDs, vid) {
			p := binary.BigEndian.AppendUint32(nil, ord)
			// Collect first: deleting while walking a cursor skips entries.
			var ids [][]byte
			c := tx.Bucket(keyIndexes[ixVault].bucket).Cursor()
			for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
				ids = append(ids, bytes.Clone(idOf(k)))
			}
			for n, id := range ids {
				if n%ctxCheckEvery == 0 {
					if err := ctx.Err(); err != nil {
						return err
					}
				}
				v := keys.Get(id)
				if v == nil {
					return fmt.Errorf("%w: index entry without key %x", ErrCorrupt, id)
				}
				h, err := decodeHead(bytes.Clone(v))
				if err != nil {
					return err
				}
				if err := w.update(id, &h, nil); err != nil {
					return err
				}
				if err := keys.Delete(id); err != nil {
					return fmt.Errorf("store: delete key: %w", err)
				}
				removed++
			}
			if err := deleteTuple(tx, ord); err != nil {
				return err
			}
		}
	}
	if removed > 0 {
		return addCounter(tx.Bucket(bucketMeta), metaKeys, -removed)
	}
	return nil
}

// deleteTuple removes vault ordinal ord from the vault dictionary.
func deleteTuple(tx *bolt.Tx, ord uint32) error {
	ob := binary.BigEndian.AppendUint32(nil, ord)
	enc := tx.Bucket(bucketVaults).Get(ob)
	if enc == nil {
		return nil
	}
	t, err := decodeTuple(enc)
	if err != nil {
		return err
	}
	for _, del := range []struct{ b, k []byte }{
		{bucketVaultTuples, bytes.Clone(enc)},
		{bucketVaultIDs, append(appendString(nil, t.vaultID), ob...)},
		{bucketVaultNames, append(appendString(nil, t.vaultName), ob...)},
		{bucketVaults, ob},
	} {
		if err := tx.Bucket(del.b).Delete(del.k); err != nil {
			return fmt.Errorf("store: vault dictionary: %w", err)
		}
	}
	return nil
}

// GetKey returns the key record with the given id, or ErrNotFound.
func (s *Store) GetKey(ctx context.Context, id string) (events.KeyRecord, error) {
	var r events.KeyRecord
	if err := ctx.Err(); err != nil {
		return r, err
	}
	kid, ok := keyID(id)
	err := s.view(func(tx *bolt.Tx) error {
		var v []byte
		if ok {
			v = tx.Bucket(bucketKeys).Get(kid)
		}
		if v == nil {
			return fmt.Errorf("key %q: %w", id, ErrNotFound)
		}
		var err error
		r, err = decodeRecord(id, v, newVaultDict(tx).tuple)
		return err
	})
	return r, err
}

// vaultKeysChunk is how many records VaultKeys reads per read transaction.
const vaultKeysChunk = 256

// VaultKeys calls fn with every key record of one vault (by vault id),
// found through the vault index. It reads in chunks of short read
// transactions and calls fn outside them, so fn may call Apply; the walk
// is not one snapshot, but every key present throughout it is seen once.
// An error from fn stops the walk and is returned.
func (s *Store) VaultKeys(ctx context.Context, vaultID string, fn func(events.KeyRecord) error) error {
	var after []byte // last index entry handed to fn
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		chunk := make([]events.KeyRecord, 0, vaultKeysChunk)
		var last []byte
		err := s.view(func(tx *bolt.Tx) error {
			keys := tx.Bucket(bucketKeys)
			dict := newVaultDict(tx)
			c := tx.Bucket(keyIndexes[ixVault].bucket).Cursor()
			// Entries of every ordinal of the vault, in entry order.
			for _, ord := range ordsOf(tx, bucketVaultIDs, vaultID) {
				p := binary.BigEndian.AppendUint32(nil, ord)
				if after != nil && bytes.Compare(after, p) >= 0 && !bytes.HasPrefix(after, p) {
					continue // an ordinal done in an earlier chunk
				}
				k, _ := c.Seek(p)
				if after != nil && bytes.HasPrefix(after, p) {
					k, _ = c.Seek(after)
					if k != nil && bytes.Equal(k, after) {
						k, _ = c.Next()
					}
				}
				for ; k != nil && bytes.HasPrefix(k, p) && len(chunk) < vaultKeysChunk; k, _ = c.Next() {
					id := idOf(k)
					v := keys.Get(id)
					if v == nil {
						return fmt.Errorf("%w: index entry without key %x", ErrCorrupt, id)
					}
					r, err := decodeRecord(uuidString(id), v, dict.tuple)
					if err != nil {
						return err
					}
					chunk = append(chunk, r)
					last = bytes.Clone(k)
				}
				if len(chunk) == vaultKeysChunk {
					return nil
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, r := range chunk {
			if err := fn(r); err != nil {
				return err
			}
		}
		if len(chunk) < vaultKeysChunk {
			return nil
		}
		after = last
	}
}
