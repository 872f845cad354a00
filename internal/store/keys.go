package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"

	"github.com/akvsync/akvsync/pkg/events"
	bolt "go.etcd.io/bbolt"
)

// encodeKey appends the keys bucket value of r, whose meta tuple is
// meta, to dst.
func encodeKey(dst []byte, r *events.KeyRecord, meta []byte) ([]byte, error) {
	body, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode key %s: %w", r.ID, err)
	}
	dst = binary.AppendUvarint(dst, uint64(len(meta)))
	dst = append(dst, meta...)
	return append(dst, body...), nil
}

// decodeKey decodes a keys bucket value.
func decodeKey(v []byte) (events.KeyRecord, error) {
	var r events.KeyRecord
	_, body, err := splitKeyValue(v)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return r, fmt.Errorf("%w: key record: %v", ErrCorrupt, err)
	}
	return r, nil
}

// applyKeys upserts key records and their index entries.
func applyKeys(ctx context.Context, tx *bolt.Tx, recs []events.KeyRecord) error {
	if len(recs) == 0 {
		return nil
	}
	keys := tx.Bucket(bucketKeys)
	w := newIndexWriter(tx)
	added := 0
	var mbuf, obuf []byte
	for i := range recs {
		if i%ctxCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		r := recs[i] // a copy: FirstSeenAt may change
		if r.ID == "" {
			return fmt.Errorf("%w: key record %d of batch has no id", ErrBadRecord, i)
		}
		id := []byte(r.ID)
		var old *keyMeta
		if ov := keys.Get(id); ov != nil {
			om, _, err := splitKeyValue(ov)
			if err != nil {
				return fmt.Errorf("key %s: %w", r.ID, err)
			}
			obuf = append(obuf[:0], om...)
			m, err := decodeMeta(obuf)
			if err != nil {
				return fmt.Errorf("key %s: %w", r.ID, err)
			}
			old = &m
			if first := time12(m.first); !first.IsZero() && (r.FirstSeenAt.IsZero() || r.FirstSeenAt.After(first)) {
				r.FirstSeenAt = first
			}
		} else {
			added++
		}
		mbuf = encodeMeta(mbuf[:0], &r)
		if old == nil || !bytes.Equal(obuf, mbuf) {
			m, err := decodeMeta(mbuf)
			if err != nil {
				return err
			}
			if err := w.update(id, old, &m); err != nil {
				return err
			}
		}
		// bbolt keeps the value slice until commit: a fresh one per key.
		v, err := encodeKey(make([]byte, 0, len(mbuf)+1200), &r, mbuf)
		if err != nil {
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

// GetKey returns the key record with the given id, or ErrNotFound.
func (s *Store) GetKey(ctx context.Context, id string) (events.KeyRecord, error) {
	var r events.KeyRecord
	if err := ctx.Err(); err != nil {
		return r, err
	}
	err := s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketKeys).Get([]byte(id))
		if v == nil {
			return fmt.Errorf("key %q: %w", id, ErrNotFound)
		}
		var err error
		r, err = decodeKey(v)
		return err
	})
	return r, err
}

// vaultKeysChunk is how many records VaultKeys reads per read transaction.
const vaultKeysChunk = 256

// VaultKeys calls fn with every key record of one vault (by vault id), in
// id order, found through the vault index. It reads in chunks of short
// read transactions and calls fn outside them, so fn may call Apply; the
// walk is not one snapshot, but every key present throughout it is seen
// once. An error from fn stops the walk and is returned.
func (s *Store) VaultKeys(ctx context.Context, vaultID string, fn func(events.KeyRecord) error) error {
	var after []byte // last id handed to fn
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		chunk := make([]events.KeyRecord, 0, vaultKeysChunk)
		err := s.view(func(tx *bolt.Tx) error {
			p := indexPrefix(nil, []byte(vaultID)) // ix_vault_id is not clustered
			keys := tx.Bucket(bucketKeys)
			c := tx.Bucket(filterIndexes[ixVaultID].bucket).Cursor()
			k, _ := c.Seek(append(bytes.Clone(p), after...))
			if after != nil && k != nil && bytes.Equal(k[len(p):], after) {
				k, _ = c.Next()
			}
			for ; k != nil && bytes.HasPrefix(k, p) && len(chunk) < vaultKeysChunk; k, _ = c.Next() {
				v := keys.Get(k[len(p):])
				if v == nil {
					return fmt.Errorf("%w: index entry without key %q", ErrCorrupt, k[len(p):])
				}
				r, err := decodeKey(v)
				if err != nil {
					return err
				}
				chunk = append(chunk, r)
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
		after = []byte(chunk[len(chunk)-1].ID)
	}
}
