package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/akvsync/akvsync/pkg/events"
	bolt "go.etcd.io/bbolt"
)

// checkRandomQueries compares rounds random queries with brute force.
func checkRandomQueries(t *testing.T, s *Store, rng *rand.Rand, want map[string]events.KeyRecord, rounds int) {
	t.Helper()
	recs := refRecords(want)
	for range rounds {
		q := randomQuery(rng, recs)
		got, err := s.ListKeys(context.Background(), q)
		if err != nil {
			t.Fatalf("ListKeys(%+v): %v", q, err)
		}
		comparePage(t, q, got, refListKeys(recs, q))
	}
}

// checkIndexes verifies the derived state: every ranked index's chunk
// counts add up to its entries and stay within bounds, every filter
// count equals its entries, and every index has one entry per key.
func checkIndexes(t *testing.T, s *Store) {
	t.Helper()
	err := s.view(func(tx *bolt.Tx) error {
		nkeys := tx.Bucket(bucketKeys).Stats().KeyN
		if c := int(getCounter(tx.Bucket(bucketMeta), metaKeys)); c != nkeys {
			return fmt.Errorf("key counter %d, keys bucket %d", c, nkeys)
		}
		counts := map[string]int{}
		for i, ix := range keyIndexes {
			b := tx.Bucket(ix.bucket)
			if n := b.Stats().KeyN; n != nkeys {
				return fmt.Errorf("index %s has %d entries for %d keys", ix.bucket, n, nkeys)
			}
			if ix.prefixLen > 0 {
				_ = b.ForEach(func(k, _ []byte) error {
					counts[string(countKey(nil, i, k[:ix.prefixLen]))]++
					return nil
				})
			}
			if !ix.ranked {
				continue
			}
			sum := uint64(0)
			c := tx.Bucket(bucketRank).Cursor()
			for k, v := c.Seek([]byte{byte(i)}); k != nil && k[0] == byte(i); k, v = c.Next() {
				n := binary.BigEndian.Uint64(v)
				if n > 2*rankChunk {
					return fmt.Errorf("index %s: rank chunk of %d entries", ix.bucket, n)
				}
				sum += n
			}
			if int(sum) != nkeys {
				return fmt.Errorf("index %s: rank chunks count %d entries, it has %d", ix.bucket, sum, nkeys)
			}
		}
		return tx.Bucket(bucketCounts).ForEach(func(k, v []byte) error {
			if k[0] == classCounts {
				return nil
			}
			if int(binary.BigEndian.Uint64(v)) != counts[string(k)] {
				return fmt.Errorf("count %x = %d, index has %d", k, binary.BigEndian.Uint64(v), counts[string(k)])
			}
			delete(counts, string(k))
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestPlansMatchReference runs random queries with tiny rank chunks and
// gather limit, so that chunk splits and merges and the walk-and-check
// plan for large candidate sets all happen on a small data set, through
// upserts and vault removals.
func TestPlansMatchReference(t *testing.T) {
	defer func(c uint64, g int) { rankChunk, gatherLimit = c, g }(rankChunk, gatherLimit)
	rankChunk, gatherLimit = 4, 40
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(9, 10))
	s := setup(t)
	want := loadRandom(t, s, rng, 2000)
	checkIndexes(t, s)
	checkRandomQueries(t, s, rng, want, 600)

	// Upserts that move entries, then vault removals.
	var batch []events.KeyRecord
	for _, id := range slices.Sorted(mapsKeys(want)) {
		if rng.IntN(2) == 0 {
			continue
		}
		r := want[id]
		r.Enabled, r.Gone = !r.Enabled, rng.IntN(2) == 0
		r.KeySize = []int{2048, 3072, 4096}[rng.IntN(3)]
		r.SyncedAt = r.SyncedAt.Add(time.Duration(rng.IntN(100)) * time.Second)
		want[id] = r
		batch = append(batch, r)
	}
	if err := s.Apply(ctx, Batch{Keys: batch}); err != nil {
		t.Fatal(err)
	}
	checkIndexes(t, s)
	checkRandomQueries(t, s, rng, want, 300)

	vs := testVaults(40)
	removed := []string{vs[3].id, vs[4].id, vs[17].id}
	// A key of a removed vault, in the same batch or a later one, is not
	// applied: the removal tombstones the vault id.
	late := makeKey(rng, vs[3], "late")
	if err := s.Apply(ctx, Batch{RemovedVaults: removed, Keys: []events.KeyRecord{late}}); err != nil {
		t.Fatal(err)
	}
	later := makeKey(rng, vs[17], "later")
	if err := s.Apply(ctx, Batch{Keys: []events.KeyRecord{later}}); err != nil {
		t.Fatal(err)
	}
	for id, r := range want {
		if slices.Contains(removed, r.VaultID) {
			delete(want, id)
		}
	}
	for _, k := range []events.KeyRecord{late, later} {
		if _, err := s.GetKey(ctx, k.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("key %s of a removed vault: %v, want ErrNotFound", k.Name, err)
		}
	}
	checkIndexes(t, s)
	checkRandomQueries(t, s, rng, want, 300)
	if p, _ := s.ListKeys(ctx, events.KeyQuery{VaultID: vs[4].id}); p.Total != 0 {
		t.Fatalf("removed vault still lists %d keys", p.Total)
	}
	if st := s.Stats(); st.Keys != len(want) {
		t.Fatalf("Stats.Keys = %d, want %d", st.Keys, len(want))
	}
}

// TestFilteredPagesVisitFewKeys asserts how many stored records each
// kind of query reads (the cost that made enabled=false and key_size
// scan every key, and deep skips walk every skipped entry).
func TestFilteredPagesVisitFewKeys(t *testing.T) {
	t.Parallel()
	const vaults, perVault = 20, 1000
	ctx := context.Background()
	s := setup(t)
	rng := rand.New(rand.NewPCG(11, 12))
	vs := testVaults(vaults)
	want := map[string]events.KeyRecord{}
	seen := baseTime
	for _, v := range vs {
		var b Batch
		for i := range perVault {
			r := makeKey(rng, v, fmt.Sprintf("key-%d", i))
			seen = seen.Add(time.Millisecond)
			r.FirstSeenAt, r.ChangedAt = seen, seen
			want[r.ID] = r
			b.Keys = append(b.Keys, r)
		}
		if err := s.Apply(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	v := vs[7]
	ref := refRecords(want)
	tr, fa := true, false
	for _, c := range []struct {
		name      string
		q         events.KeyQuery
		maxVisits uint64
	}{
		{"one vault's page", events.KeyQuery{VaultID: v.id}, 10},
		{"one vault by name::subscription", events.KeyQuery{KeyVault: v.name + "::" + v.sub, Limit: 20}, 20},
		{"all keys of one vault", events.KeyQuery{VaultID: v.id, Limit: events.LimitAll}, perVault},
		{"one vault, deep skip", events.KeyQuery{VaultID: v.id, Skip: 990}, perVault},
		{"enabled=false", events.KeyQuery{Enabled: &fa}, 10},
		{"enabled=false, deep skip", events.KeyQuery{Enabled: &fa, Skip: 4000}, 10},
		{"enabled=false ascending", events.KeyQuery{Enabled: &fa, Sort: "createdAt", Skip: 100}, 10},
		{"key_size=4096", events.KeyQuery{KeySize: 4096}, 10},
		{"gone=true", events.KeyQuery{Gone: &tr}, 10},
		{"unfiltered deep skip", events.KeyQuery{Skip: 15000}, 10},
		{"unfiltered deep skip ascending", events.KeyQuery{Skip: 15000, Sort: "createdAt"}, 10},
		{"sort by key_name", events.KeyQuery{Sort: "key_name", Skip: 7000}, 10},
		{"sort by -syncedAt", events.KeyQuery{Sort: "-syncedAt", Skip: 123}, 10},
		{"by key name (one per vault)", events.KeyQuery{KeyName: "KEY-17"}, vaults},
		{"by key name, sorted by name", events.KeyQuery{KeyName: "key-17", Sort: "-key_name", Skip: 3}, 10},
		{"by kid", events.KeyQuery{Kid: want[events.KeyID(v.id, "key-17")].Kid}, vaults},
		{"enabled=false sorted by name (walk and check)", events.KeyQuery{Enabled: &fa, Sort: "key_name"}, 200},
		{"enabled=false and key_size=4096 (walk and check)", events.KeyQuery{Enabled: &fa, KeySize: 4096}, 300},
		{"one vault and enabled=false", events.KeyQuery{VaultID: v.id, Enabled: &fa}, perVault},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := s.visits.Load()
			got, err := s.ListKeys(ctx, c.q)
			if err != nil {
				t.Fatal(err)
			}
			visits := s.visits.Load() - before
			t.Logf("total %d, page %d: %d stored keys read", got.Total, len(got.Resources), visits)
			comparePage(t, c.q, got, refListKeys(ref, c.q))
			if len(got.Resources) == 0 {
				t.Fatalf("query %+v returned nothing: a test of nothing", c.q)
			}
			if visits > c.maxVisits {
				t.Fatalf("query %+v read %d stored keys (total %d) for a page of %d; want ≤ %d",
					c.q, visits, got.Total, len(got.Resources), c.maxVisits)
			}
		})
	}
}

// TestOpenRebuildsAnotherSchema opens files written with another layout
// version: Open drops what they hold, positions included (so the
// projector replays the streams), instead of refusing them.
func TestOpenRebuildsAnotherSchema(t *testing.T) {
	ctx := context.Background()
	for _, version := range []uint64{1, schemaVersion + 1} {
		t.Run(fmt.Sprint("version ", version), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "old.db")
			// A file as schema 1 left it: its buckets, a key, a position.
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = db.Update(func(tx *bolt.Tx) error {
				for _, b := range []string{"meta", "positions", "keys", "ix_vault_id", "sort_created"} {
					if _, err := tx.CreateBucket([]byte(b)); err != nil {
						return err
					}
				}
				if err := tx.Bucket([]byte("meta")).Put(metaSchema, binary.BigEndian.AppendUint64(nil, version)); err != nil {
					return err
				}
				if err := tx.Bucket([]byte("meta")).Put(metaKeys, binary.BigEndian.AppendUint64(nil, 1)); err != nil {
					return err
				}
				if err := tx.Bucket([]byte("positions")).Put([]byte("AKVSYNC_KEYS"), binary.BigEndian.AppendUint64(nil, 42)); err != nil {
					return err
				}
				return tx.Bucket([]byte("keys")).Put([]byte("k"), []byte(`\x01{"id":"k"}`))
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			s, err := Open(Config{Path: path, NoSync: true})
			if err != nil {
				t.Fatalf("Open of a schema %d file: %v", version, err)
			}
			defer s.Close()
			if pos, _ := s.Positions(); len(pos) != 0 {
				t.Fatalf("positions survived the rebuild: %v", pos)
			}
			if st := s.Stats(); st.Keys != 0 {
				t.Fatalf("Stats.Keys = %d after the rebuild, want 0", st.Keys)
			}
			r := makeKey(nil, testVaults(1)[0], "k1")
			if err := s.Apply(ctx, Batch{Keys: []events.KeyRecord{r}, Positions: map[string]uint64{"AKVSYNC_KEYS": 1}}); err != nil {
				t.Fatal(err)
			}
			if p, _ := s.ListKeys(ctx, events.KeyQuery{}); p.Total != 1 {
				t.Fatalf("rebuilt store lists %d keys, want 1", p.Total)
			}
			var buckets [][]byte
			_ = s.view(func(tx *bolt.Tx) error {
				return tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
					buckets = append(buckets, bytes.Clone(name))
					return nil
				})
			})
			if slices.ContainsFunc(buckets, func(b []byte) bool { return string(b) == "ix_vault_id" }) {
				t.Fatal("a bucket of the old layout survived the rebuild")
			}
		})
	}
}
