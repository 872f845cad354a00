package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/akvsync/akvsync/pkg/events"
	bolt "go.etcd.io/bbolt"
)

// dump returns every bucket's contents, for comparing whole states.
func dump(t *testing.T, s *Store) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := s.db.View(func(tx *bolt.Tx) error { // not s.view: it may release the pages a test wants to count
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				out[string(name)+"/"+string(k)] = string(v)
				return nil
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func testBatch(n int) Batch {
	vs := testVaults(3)
	var b Batch
	for i := range n {
		b.Keys = append(b.Keys, makeKey(nil, vs[i%3], fmt.Sprintf("key-%d", i)))
	}
	b.Jobs = testJob("job-1", baseTime, events.JobInProgress, vs[0])
	b.Positions = map[string]uint64{"keys": uint64(n), "jobs": 1}
	return b
}

func TestApplyAtomicity(t *testing.T) {
	ctx := context.Background()
	t.Run("positions and data survive reopen together", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "inv.db")
		s, err := Open(Config{Path: path, NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		b := testBatch(10)
		if err := s.Apply(ctx, b); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s, err = Open(Config{Path: path, NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if seq, err := s.Position("keys"); err != nil || seq != 10 {
			t.Fatalf("Position(keys) = %d, %v; want 10", seq, err)
		}
		if _, err := s.GetKey(ctx, b.Keys[9].ID); err != nil {
			t.Fatalf("key of the batch missing after reopen: %v", err)
		}
		if _, err := s.GetJob(ctx, "job-1", 10); err != nil {
			t.Fatalf("job of the batch missing after reopen: %v", err)
		}
		if st := s.Stats(); st.Keys != 10 || st.Jobs != 1 {
			t.Fatalf("Stats after reopen = %+v", st)
		}
	})
	t.Run("a failing batch applies nothing, position included", func(t *testing.T) {
		s := setup(t)
		b := testBatch(10)
		b.Keys[5].ID = "" // invalid record in the middle
		before := dump(t, s)
		if err := s.Apply(ctx, b); !errors.Is(err, ErrBadRecord) {
			t.Fatalf("Apply = %v, want ErrBadRecord", err)
		}
		if after := dump(t, s); !reflect.DeepEqual(before, after) {
			t.Fatal("failed batch changed the store")
		}
		if seq, _ := s.Position("keys"); seq != 0 {
			t.Fatalf("position moved to %d by a failed batch", seq)
		}
	})
	t.Run("a cancelled context applies nothing", func(t *testing.T) {
		s := setup(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := s.Apply(cctx, testBatch(10)); !errors.Is(err, context.Canceled) {
			t.Fatalf("Apply = %v, want context.Canceled", err)
		}
		if st := s.Stats(); st.Keys != 0 {
			t.Fatalf("cancelled batch stored %d keys", st.Keys)
		}
	})
	t.Run("positions never move backwards", func(t *testing.T) {
		s := setup(t)
		for _, seq := range []uint64{5, 3, 9} {
			if err := s.Apply(ctx, Batch{Positions: map[string]uint64{"keys": seq}}); err != nil {
				t.Fatal(err)
			}
		}
		if seq, _ := s.Position("keys"); seq != 9 {
			t.Fatalf("Position = %d, want 9", seq)
		}
		all, err := s.Positions()
		if err != nil || !reflect.DeepEqual(all, map[string]uint64{"keys": 9}) {
			t.Fatalf("Positions = %v, %v", all, err)
		}
	})
}

// vs0 is the first planned vault of a test batch's first job.
func vs0(b Batch) events.PlannedVault { return b.Jobs.Plans[0].Vaults[0] }

func TestApplyIdempotent(t *testing.T) {
	ctx := context.Background()
	s := setup(t)
	b := testBatch(50)
	// The batch also updates a key it inserts, and deletes a job.
	upd := b.Keys[3]
	upd.Enabled = !upd.Enabled
	b.Keys = append(b.Keys, upd)
	b.Jobs = merge(b.Jobs, testJob("job-2", baseTime, events.JobCompleted, testVaults(1)[0]))
	b.Jobs.Vaults = []events.JobVault{{JobID: "job-1", VaultID: vs0(b).ID, Name: "x", SubscriptionID: "s", Status: events.VaultCompleted, Fetched: 3}}
	b.Jobs.Deleted = []string{"job-2"}
	if err := s.Apply(ctx, b); err != nil {
		t.Fatal(err)
	}
	once := dump(t, s)
	if err := s.Apply(ctx, b); err != nil {
		t.Fatal(err)
	}
	if twice := dump(t, s); !reflect.DeepEqual(once, twice) {
		for k, v := range twice {
			if once[k] != v {
				t.Errorf("%q differs after re-apply", k)
			}
		}
		t.Fatal("re-applying the batch changed the state")
	}
	if st := s.Stats(); st.Keys != 50 || st.Jobs != 1 {
		t.Fatalf("Stats = %+v, want 50 keys, 1 job", st)
	}
}

func TestFirstSeenAtPreserved(t *testing.T) {
	ctx := context.Background()
	s := setup(t)
	k := makeKey(nil, testVaults(1)[0], "k")
	t1 := baseTime
	for _, c := range []struct {
		name     string
		incoming time.Time
		want     time.Time
	}{
		{"first sighting is stored", t1, t1},
		{"a later sighting keeps the first", t1.Add(time.Hour), t1},
		{"a zero time keeps the first", time.Time{}, t1},
		{"an earlier sighting wins", t1.Add(-time.Hour), t1.Add(-time.Hour)},
	} {
		t.Run(c.name, func(t *testing.T) {
			k.FirstSeenAt = c.incoming
			if err := s.Apply(ctx, Batch{Keys: []events.KeyRecord{k}}); err != nil {
				t.Fatal(err)
			}
			got, err := s.GetKey(ctx, k.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !got.FirstSeenAt.Equal(c.want) {
				t.Fatalf("FirstSeenAt = %v, want %v", got.FirstSeenAt, c.want)
			}
			// The createdAt sort index follows the stored value.
			p, err := s.ListKeys(ctx, events.KeyQuery{})
			if err != nil || p.Total != 1 || !p.Resources[0].FirstSeenAt.Equal(c.want) {
				t.Fatalf("ListKeys = %+v, %v", p, err)
			}
		})
	}
}

func TestReopen(t *testing.T) {
	ctx := context.Background()
	t.Run("a copy of the file taken while open opens with the committed state", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "inv.db")
		s, err := Open(Config{Path: path, NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		b := testBatch(100)
		if err := s.Apply(ctx, b); err != nil {
			t.Fatal(err)
		}
		// Copy the live file as a crash would leave it, then keep writing.
		copyPath := filepath.Join(dir, "copy.db")
		copyFile(t, path, copyPath)
		if err := s.Apply(ctx, Batch{Keys: testBatch(200).Keys[100:], Positions: map[string]uint64{"keys": 200}}); err != nil {
			t.Fatal(err)
		}
		c, err := Open(Config{Path: copyPath, NoSync: true})
		if err != nil {
			t.Fatalf("open copy: %v", err)
		}
		defer c.Close()
		if seq, _ := c.Position("keys"); seq != 100 {
			t.Fatalf("copy Position = %d, want 100", seq)
		}
		p, err := c.ListKeys(ctx, events.KeyQuery{Limit: events.LimitAll})
		if err != nil || p.Total != 100 || len(p.Resources) != 100 {
			t.Fatalf("copy ListKeys total %d, %v", p.Total, err)
		}
		if err := c.db.View(func(tx *bolt.Tx) error {
			for err := range tx.Check() {
				return err
			}
			return nil
		}); err != nil {
			t.Fatalf("copy fails bbolt's consistency check: %v", err)
		}
	})
	t.Run("reopening after Close keeps everything", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "inv.db")
		s, err := Open(Config{Path: path, NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Apply(ctx, testBatch(30)); err != nil {
			t.Fatal(err)
		}
		before := dump(t, s)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s, err = Open(Config{Path: path, NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if after := dump(t, s); !reflect.DeepEqual(before, after) {
			t.Fatal("state differs after reopen")
		}
	})
	t.Run("a second Open of a locked file times out", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "inv.db")
		s, err := Open(Config{Path: path, NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, err := Open(Config{Path: path, OpenTimeout: 50 * time.Millisecond}); err == nil {
			t.Fatal("second Open of a locked file succeeded")
		}
	})
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, src); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestVaultKeys(t *testing.T) {
	ctx := context.Background()
	s := setup(t)
	vs := testVaults(2)
	var keys []events.KeyRecord
	for i := range 700 { // more than one read chunk
		keys = append(keys, makeKey(nil, vs[i%2], fmt.Sprintf("k%d", i)))
	}
	if err := s.Apply(ctx, Batch{Keys: keys}); err != nil {
		t.Fatal(err)
	}
	t.Run("visits every key of the vault once", func(t *testing.T) {
		seen := map[string]int{}
		err := s.VaultKeys(ctx, vs[1].id, func(r events.KeyRecord) error {
			if r.VaultID != vs[1].id {
				t.Errorf("key of vault %s", r.VaultID)
			}
			seen[r.ID]++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(seen) != 350 {
			t.Fatalf("saw %d keys, want 350", len(seen))
		}
		for id, n := range seen {
			if n != 1 {
				t.Fatalf("key %s seen %d times", id, n)
			}
		}
	})
	t.Run("fn may call Apply and its error stops the walk", func(t *testing.T) {
		stop := errors.New("stop")
		n := 0
		err := s.VaultKeys(ctx, vs[0].id, func(r events.KeyRecord) error {
			r.Gone = true
			if err := s.Apply(ctx, Batch{Keys: []events.KeyRecord{r}}); err != nil {
				return err
			}
			if n++; n == 300 {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) || n != 300 {
			t.Fatalf("VaultKeys = %v after %d keys", err, n)
		}
		tr := true
		if p, _ := s.ListKeys(ctx, events.KeyQuery{VaultID: vs[0].id, Gone: &tr}); p.Total != 300 {
			t.Fatalf("%d keys marked gone, want 300", p.Total)
		}
	})
}
