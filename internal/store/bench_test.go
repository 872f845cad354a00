package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/akvsync/akvsync/pkg/events"
	bolt "go.etcd.io/bbolt"
)

// The 100,000-key fixture is built once per test binary, only when a
// benchmark asks for it, and removed by TestMain.
var (
	bigOnce  sync.Once
	bigStore *Store
	bigDir   string
	bigErr   error
	bigVault testVault
	bigIDs   []string
)

const (
	bigKeysPerVault  = 1000
	benchApplyBatch  = 500
	benchFilterLimit = 10
)

// bigVaults is the fixture's number of vaults of 1,000 keys: 100 (100,000
// keys), or AKVSYNC_BENCH_VAULTS (1000 for the 1,000,000-key figures).
var bigVaults = benchVaults()

func benchVaults() int {
	if n, err := strconv.Atoi(os.Getenv("AKVSYNC_BENCH_VAULTS")); err == nil && n > 0 {
		return n
	}
	return 100
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bigStore != nil {
		_ = bigStore.Close()
	}
	if bigDir != "" {
		_ = os.RemoveAll(bigDir)
	}
	os.Exit(code)
}

// big returns the store with bigVaults × bigKeysPerVault keys.
func big(b *testing.B) *Store {
	b.Helper()
	bigOnce.Do(func() {
		bigDir, bigErr = os.MkdirTemp("", "akvsync-store-bench-")
		if bigErr != nil {
			return
		}
		bigStore, bigErr = Open(Config{Path: filepath.Join(bigDir, "big.db"), NoSync: true})
		if bigErr != nil {
			return
		}
		start := time.Now()
		rng := rand.New(rand.NewPCG(3, 4))
		vs := testVaults(bigVaults)
		bigVault = vs[bigVaults/2]
		// As the KEYS stream delivers them: one vault's sync at a time,
		// in batches of 5,000, seen at increasing times.
		var batch Batch
		seen := baseTime
		for _, v := range vs {
			for i := range bigKeysPerVault {
				r := makeKey(rng, v, fmt.Sprintf("key-%d", i))
				seen = seen.Add(time.Millisecond)
				r.FirstSeenAt, r.ChangedAt, r.SyncedAt = seen, seen, seen
				bigIDs = append(bigIDs, r.ID)
				batch.Keys = append(batch.Keys, r)
				if len(batch.Keys) == 5000 {
					if bigErr = bigStore.Apply(context.Background(), batch); bigErr != nil {
						return
					}
					batch.Keys = batch.Keys[:0]
				}
			}
		}
		st := bigStore.Stats()
		fmt.Fprintf(os.Stderr, "fixture: %d keys, %.1f MiB, built in %s\n", st.Keys, float64(st.FileSize)/(1<<20), time.Since(start).Round(time.Millisecond))
	})
	if bigErr != nil {
		b.Fatal(bigErr)
	}
	return bigStore
}

// BenchmarkApply measures committing batches of 500 key records (fsync
// off) into a store that grows as the benchmark runs. "vault-batches" is
// the stream's shape: each batch is 500 keys of one vault, seen now;
// later rounds re-sync them (only syncedAt changes). "random" is the worst
// case: every key of a batch from a random vault, with random times.
func BenchmarkApply(b *testing.B) {
	for _, mode := range []string{"vault-batches", "random"} {
		b.Run(mode, func(b *testing.B) {
			s := setup(b)
			rng := rand.New(rand.NewPCG(5, 6))
			vs := testVaults(200)
			ctx := context.Background()
			batches := make([]Batch, 100)
			seen := baseTime
			for i := range batches {
				for j := range benchApplyBatch {
					var r events.KeyRecord
					if mode == "random" {
						r = makeKey(rng, vs[rng.IntN(len(vs))], fmt.Sprintf("k-%d-%d", i, j))
					} else {
						r = makeKey(rng, vs[i], fmt.Sprintf("k-%d", j))
						seen = seen.Add(time.Millisecond)
						r.FirstSeenAt, r.ChangedAt, r.SyncedAt = seen, seen, seen
					}
					batches[i].Keys = append(batches[i].Keys, r)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				bt := batches[i%len(batches)]
				if i >= len(batches) { // later rounds re-sync existing keys
					for j := range bt.Keys {
						bt.Keys[j].SyncedAt = bt.Keys[j].SyncedAt.Add(time.Hour)
					}
				}
				bt.Positions = map[string]uint64{"keys": uint64(i)}
				if err := s.Apply(ctx, bt); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchApplyBatch, "ns/key")
		})
	}
}

// fullScanList is the baseline: a ListKeys by vault id that decodes and
// checks every record, then sorts and pages.
func fullScanList(s *Store, vaultID string, limit int) (events.KeyPage, error) {
	var ms []events.KeyRecord
	err := s.view(func(tx *bolt.Tx) error {
		dict := newVaultDict(tx)
		return tx.Bucket(bucketKeys).ForEach(func(k, v []byte) error {
			r, err := decodeRecord(uuidString(k), v, dict.tuple)
			if err != nil {
				return err
			}
			if r.VaultID == vaultID {
				ms = append(ms, r)
			}
			return nil
		})
	})
	slices.SortFunc(ms, func(a, b events.KeyRecord) int {
		if c := b.FirstSeenAt.Compare(a.FirstSeenAt); c != 0 {
			return c
		}
		return -strings.Compare(a.ID, b.ID)
	})
	return events.KeyPage{Limit: limit, Total: len(ms), Resources: ms[:min(limit, len(ms))]}, err
}

// BenchmarkListKeysFiltered lists a page of 10 of one vault's 1,000 keys
// among 100,000, through the indexes and with the full-scan baseline.
// The indexed sub-benchmark reports the baseline's time over its own as
// "x-faster", measured in the same run.
func BenchmarkListKeysFiltered(b *testing.B) {
	s := big(b)
	ctx := context.Background()
	q := events.KeyQuery{VaultID: bigVault.id, Limit: benchFilterLimit}
	b.Run("indexed", func(b *testing.B) {
		// Time the baseline a few times first, then check both agree.
		const scans = 3
		start := time.Now()
		var base events.KeyPage
		for range scans {
			var err error
			if base, err = fullScanList(s, bigVault.id, benchFilterLimit); err != nil {
				b.Fatal(err)
			}
		}
		scanNs := float64(time.Since(start).Nanoseconds()) / scans
		p, err := s.ListKeys(ctx, q)
		if err != nil {
			b.Fatal(err)
		}
		if p.Total != bigKeysPerVault || p.Total != base.Total || len(p.Resources) != benchFilterLimit || p.Resources[0].ID != base.Resources[0].ID {
			b.Fatalf("indexed page (total %d) differs from baseline (total %d)", p.Total, base.Total)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			if _, err := s.ListKeys(ctx, q); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(scanNs/(float64(b.Elapsed().Nanoseconds())/float64(b.N)), "x-faster")
	})
	b.Run("fullscan", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := fullScanList(s, bigVault.id, benchFilterLimit); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkListKeysUnfiltered is the default first page of 100,000 keys.
func BenchmarkListKeysUnfiltered(b *testing.B) {
	s := big(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		p, err := s.ListKeys(ctx, events.KeyQuery{})
		if err != nil || p.Total != bigVaults*bigKeysPerVault {
			b.Fatal(p.Total, err)
		}
	}
}

// BenchmarkListKeysBoolFilter is the worst planned case: enabled=true
// matches about three quarters of 100,000 keys.
func BenchmarkListKeysBoolFilter(b *testing.B) {
	s := big(b)
	ctx := context.Background()
	tr := true
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.ListKeys(ctx, events.KeyQuery{Enabled: &tr}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetKey reads random keys of the 100,000.
func BenchmarkGetKey(b *testing.B) {
	s := big(b)
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := s.GetKey(ctx, bigIDs[(i*7919)%len(bigIDs)]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkKeyQueries times the key lists of the 1,000,000-key figure
// (P5) on the fixture and reports each one's median as "p50-ms" (and the
// stored records it read as "visits/op"). Run at 1M keys with
//
//	AKVSYNC_BENCH_VAULTS=1000 go test ./internal/store -run '^$' -bench KeyQueries -benchtime 200x
func BenchmarkKeyQueries(b *testing.B) {
	s := big(b)
	ctx := context.Background()
	n := bigVaults * bigKeysPerVault
	fa := false
	for _, c := range []struct {
		name string
		q    events.KeyQuery
	}{
		{"default-page", events.KeyQuery{}},
		{"by-vault", events.KeyQuery{VaultID: bigVault.id}},
		{"by-vault-name", events.KeyQuery{KeyVault: bigVault.name + "::" + bigVault.sub}},
		{"by-key-name", events.KeyQuery{KeyName: "key-500"}},
		{"enabled=false", events.KeyQuery{Enabled: &fa}},
		{"key_size=4096", events.KeyQuery{KeySize: 4096}},
		{"deep-skip", events.KeyQuery{Skip: n / 2}},
		{"deep-skip-enabled=false", events.KeyQuery{Enabled: &fa, Skip: n / 8}},
		{"sort=key_name", events.KeyQuery{Sort: "key_name", Skip: 1000}},
		{"sort=-syncedAt", events.KeyQuery{Sort: "-syncedAt"}},
		{"enabled=false,sort=key_name", events.KeyQuery{Enabled: &fa, Sort: "key_name"}},
		{"vault-all-1000", events.KeyQuery{VaultID: bigVault.id, Limit: events.LimitAll}},
	} {
		b.Run(c.name, func(b *testing.B) {
			var took []time.Duration
			v0 := s.visits.Load()
			for b.Loop() {
				start := time.Now()
				p, err := s.ListKeys(ctx, c.q)
				took = append(took, time.Since(start))
				if err != nil || len(p.Resources) == 0 {
					b.Fatalf("%+v: %d resources, %v", c.q, len(p.Resources), err)
				}
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(s.visits.Load()-v0)/float64(b.N), "visits/op")
		})
	}
}
