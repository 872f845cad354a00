package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/akvsync/akvsync/pkg/events"
)

// setup opens a store in a fresh temporary directory and closes it at
// the end of the test.
func setup(t testing.TB) *Store {
	t.Helper()
	s, err := Open(Config{Path: filepath.Join(t.TempDir(), "inventory.db"), NoSync: true})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// testVault is a vault of the generated data set.
type testVault struct{ id, name, sub string }

// testVaults returns n vaults; names repeat across subscriptions so that
// a bare name matches several vaults.
func testVaults(n int) []testVault {
	vs := make([]testVault, n)
	for i := range vs {
		vs[i] = testVault{
			id:   fmt.Sprintf("vault-%04d", i),
			name: fmt.Sprintf("kv-%d", i/2),
			sub:  fmt.Sprintf("sub-%d", i%2),
		}
	}
	return vs
}

var baseTime = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// makeKey builds a key record of vault v named name, with fields drawn
// from rng (nil: fixed values).
func makeKey(rng *rand.Rand, v testVault, name string) events.KeyRecord {
	pick := func(n int) int {
		if rng == nil {
			return 0
		}
		return rng.IntN(n)
	}
	version := fmt.Sprintf("%032x", pick(1<<30))
	r := events.KeyRecord{
		ID:             events.KeyID(v.id, name),
		VaultID:        v.id,
		VaultName:      v.name,
		SubscriptionID: v.sub,
		Cloud:          "AzureCloud",
		Name:           name,
		Version:        version,
		Kid:            fmt.Sprintf("https://%s.vault.azure.net/keys/%s/%s", v.name, name, version),
		Kty:            "RSA",
		KeySize:        []int{2048, 3072, 4096}[pick(3)],
		KeyOps:         []string{"sign", "verify"},
		N:              "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw",
		E:              "AQAB",
		Enabled:        pick(4) != 3,
		Created:        baseTime.Unix() - int64(pick(1000000)),
		Updated:        baseTime.Unix(),
		RecoveryLevel:  "Recoverable+Purgeable",
		Gone:           pick(10) == 9,
		JobID:          "job-1",
		// Few distinct times, so that sort ties (broken by id) occur.
		FirstSeenAt: baseTime.Add(time.Duration(pick(50)) * time.Minute),
		ChangedAt:   baseTime.Add(time.Duration(pick(50)) * time.Second),
		SyncedAt:    baseTime.Add(time.Duration(pick(1000)) * time.Millisecond),
	}
	if pick(5) == 0 {
		r.Tags = map[string]string{"env": "prod"}
	}
	return r
}

func TestOpen(t *testing.T) {
	t.Run("rejects a config without path", func(t *testing.T) {
		if _, err := Open(Config{}); !errors.Is(err, ErrBadConfig) {
			t.Fatalf("Open(Config{}) = %v, want ErrBadConfig", err)
		}
	})
	t.Run("rejects negative settings", func(t *testing.T) {
		for _, c := range []Config{{Path: "x", OpenTimeout: -1}} {
			if err := c.Validate(); !errors.Is(err, ErrBadConfig) {
				t.Errorf("Validate(%+v) = %v, want ErrBadConfig", c, err)
			}
		}
	})
	t.Run("applies defaults", func(t *testing.T) {
		s := setup(t)
		c := s.Config()
		if c.OpenTimeout != DefaultOpenTimeout {
			t.Fatalf("defaults not applied: %+v", c)
		}
	})
	t.Run("closed store returns ErrClosed", func(t *testing.T) {
		s := setup(t)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		if _, err := s.GetKey(ctx, "x"); !errors.Is(err, ErrClosed) {
			t.Errorf("GetKey after Close = %v", err)
		}
		if err := s.Apply(ctx, Batch{}); !errors.Is(err, ErrClosed) {
			t.Errorf("Apply after Close = %v", err)
		}
		if _, err := s.ListKeys(ctx, events.KeyQuery{}); !errors.Is(err, ErrClosed) {
			t.Errorf("ListKeys after Close = %v", err)
		}
		if err := s.Close(); !errors.Is(err, ErrClosed) {
			t.Errorf("second Close = %v", err)
		}
	})
}

func TestApplyAndGet(t *testing.T) {
	ctx := context.Background()
	vs := testVaults(4)
	t.Run("get returns the applied record", func(t *testing.T) {
		s := setup(t)
		k := makeKey(nil, vs[0], "k1")
		if err := s.Apply(ctx, Batch{Keys: []events.KeyRecord{k}}); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetKey(ctx, k.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != k.ID || got.Kid != k.Kid || !got.FirstSeenAt.Equal(k.FirstSeenAt) {
			t.Fatalf("GetKey = %+v, want %+v", got, k)
		}
		if _, err := s.GetKey(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("GetKey(nope) = %v, want ErrNotFound", err)
		}
	})
	t.Run("list by vault returns only that vault", func(t *testing.T) {
		s := setup(t)
		var keys []events.KeyRecord
		for i, v := range vs {
			for j := range 5 {
				keys = append(keys, makeKey(nil, v, fmt.Sprintf("key-%d-%d", i, j)))
			}
		}
		if err := s.Apply(ctx, Batch{Keys: keys}); err != nil {
			t.Fatal(err)
		}
		page, err := s.ListKeys(ctx, events.KeyQuery{VaultID: vs[2].id, Limit: events.LimitAll})
		if err != nil {
			t.Fatal(err)
		}
		if page.Total != 5 || len(page.Resources) != 5 {
			t.Fatalf("total %d, %d resources; want 5", page.Total, len(page.Resources))
		}
		for _, r := range page.Resources {
			if r.VaultID != vs[2].id {
				t.Errorf("key of vault %s in page of %s", r.VaultID, vs[2].id)
			}
		}
		if st := s.Stats(); st.Keys != 20 || st.FileSize <= 0 {
			t.Errorf("Stats = %+v, want 20 keys", st)
		}
	})
}
