package store

import (
	"bufio"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/akvsync/akvsync/pkg/events"
)

// mappedRSS returns the resident bytes of the process's mappings of path
// (the "Rss:" lines of /proc/self/smaps under each mapping of the file).
func mappedRSS(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no smaps: %v", err)
	}
	defer f.Close()
	var total int64
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) >= 5 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			in = len(fields) >= 6 && fields[len(fields)-1] == path
			continue
		}
		if in && fields[0] == "Rss:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			total += kb << 10
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return total
}

// TestApplyReleasesMappedPages: reading the whole inventory touches every
// page of the file's map, and the kernel counts them in the process's RSS;
// the next Apply hands them back (they stay in the page cache) when the
// process's file-backed resident memory is above the limit, and not when
// it is under it or the release is disabled.
func TestApplyReleasesMappedPages(t *testing.T) {
	for _, tc := range []struct {
		name    string
		every   time.Duration
		limit   int64
		release bool
	}{
		{"released after apply above the limit", 1, 1, true},
		{"kept below the limit", 1, 1 << 40, false},
		{"kept when disabled", -1, -1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "inv.db")
			s, err := Open(Config{Path: path, NoSync: true, ResidentRelease: tc.every, ResidentLimit: tc.limit})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			rng := rand.New(rand.NewPCG(1, 2))
			loadRandom(t, s, rng, 5000)
			// Touch every page: read every record and index entry.
			_ = dump(t, s)
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			touched := mappedRSS(t, path)
			if touched < fi.Size()/4 {
				t.Fatalf("after reading everything %d of the file's %d bytes are resident; the test touches too little to judge", touched, fi.Size())
			}
			if err := s.Apply(ctx, Batch{Positions: map[string]uint64{"keys": 1}}); err != nil {
				t.Fatal(err)
			}
			after := mappedRSS(t, path)
			t.Logf("file %d bytes: %d resident after reading all, %d after Apply", fi.Size(), touched, after)
			if tc.release && after > touched/10 {
				t.Errorf("%d bytes of the map resident after Apply, want under a tenth of %d", after, touched)
			}
			if !tc.release && after < touched/2 {
				t.Errorf("%d bytes of the map resident after Apply with release disabled, want about %d", after, touched)
			}
			// The data is all there after the release.
			if st := s.Stats(); st.Keys == 0 {
				t.Errorf("stats after release: %+v", st)
			}
			var n int
			if err := s.VaultKeys(ctx, testVaults(40)[0].id, func(events.KeyRecord) error { n++; return nil }); err != nil || n == 0 {
				t.Errorf("VaultKeys after release: %d keys, %v", n, err)
			}
		})
	}
}

// TestReadsReleaseMappedPages: a read touches the map as much as a write,
// and an export (StreamKeys over everything) touches all of it, so a
// worker that only serves queries must hand the pages back too: during
// the stream and after it, not at the next Apply.
func TestReadsReleaseMappedPages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "inv.db")
	s, err := Open(Config{Path: path, NoSync: true, ResidentRelease: 1, ResidentLimit: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	loadRandom(t, s, rand.New(rand.NewPCG(3, 4)), 5000)
	_ = dump(t, s)
	touched := mappedRSS(t, path)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if touched < fi.Size()/4 {
		t.Fatalf("after reading everything %d of the file's %d bytes are resident; the test touches too little to judge", touched, fi.Size())
	}
	if err := s.view(func(*bolt.Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if after := mappedRSS(t, path); after > touched/10 {
		t.Errorf("%d bytes of the map resident after a read, want under a tenth of %d", after, touched)
	}

	// During an export: the pages read so far are released as it goes.
	_ = dump(t, s)
	var n int
	maxRSS := int64(0)
	err = s.StreamKeys(ctx, events.KeyQuery{Limit: events.LimitAll}, func(int, int) error { return nil }, func(events.KeyRecord) error {
		// Just after a check (every ctxCheckEvery records): random
		// reads map whole fault-around windows, so between two checks
		// most of a small file comes back; right after one, little has.
		if n++; n > ctxCheckEvery && n%ctxCheckEvery == 1 {
			maxRSS = max(maxRSS, mappedRSS(t, path))
		}
		return nil
	})
	if want := s.Stats().Keys; err != nil || n != int(want) || n < 2000 {
		t.Fatalf("export: %d keys of %d, %v", n, want, err)
	}
	t.Logf("file %d bytes: %d resident after reading all; at most %d sampled during the export", fi.Size(), touched, maxRSS)
	if maxRSS > touched/4 {
		t.Errorf("%d bytes of the map resident during the export, want under a quarter of %d (the pages read before it)", maxRSS, touched)
	}
}
