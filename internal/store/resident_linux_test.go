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
