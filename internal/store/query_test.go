package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/akvsync/akvsync/pkg/events"
)

// refKeyMatch is the brute-force reference of the KeyQuery filters.
func refKeyMatch(q events.KeyQuery, r *events.KeyRecord) bool {
	if q.ID != "" && r.ID != q.ID || q.VaultID != "" && r.VaultID != q.VaultID {
		return false
	}
	if q.KeyVault != "" {
		if strings.Contains(q.KeyVault, "::") {
			if r.KeyVault() != q.KeyVault {
				return false
			}
		} else if r.VaultName != q.KeyVault {
			return false
		}
	}
	if q.KeyName != "" && !strings.EqualFold(r.Name, q.KeyName) {
		return false
	}
	if q.Kid != "" {
		// A versionless query kid ("…/keys/name") matches every version.
		rest := q.Kid[strings.Index(q.Kid, "/keys/")+len("/keys/"):]
		if strings.Contains(rest, "/") {
			if r.Kid != q.Kid {
				return false
			}
		} else if r.Kid != q.Kid && !strings.HasPrefix(r.Kid, q.Kid+"/") {
			return false
		}
	}
	if q.Enabled != nil && r.Enabled != *q.Enabled || q.Gone != nil && r.Gone != *q.Gone {
		return false
	}
	return q.KeySize == 0 || r.KeySize == q.KeySize
}

// refRecords is the data set as the reference reads it: pointers to
// copies of the records, by id. The reference filters and sorts pointers:
// under the race detector every copy of a whole record is an instrumented
// memory range access, and copying records in and out of the reference
// took most of these tests' time.
func refRecords(all map[string]events.KeyRecord) []*events.KeyRecord {
	out := make([]*events.KeyRecord, 0, len(all))
	for _, r := range all {
		out = append(out, &r)
	}
	slices.SortFunc(out, func(a, b *events.KeyRecord) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// refListKeys is the brute-force reference of ListKeys over refRecords.
func refListKeys(all []*events.KeyRecord, q events.KeyQuery) events.KeyPage {
	var ms []*events.KeyRecord
	for _, r := range all {
		if refKeyMatch(q, r) {
			ms = append(ms, r)
		}
	}
	field, desc := strings.TrimPrefix(q.Sort, "-"), strings.HasPrefix(q.Sort, "-")
	if q.Sort == "" {
		field, desc = "createdAt", true
	}
	slices.SortFunc(ms, func(a, b *events.KeyRecord) int {
		var c int
		switch field {
		case "createdAt":
			c = a.FirstSeenAt.Compare(b.FirstSeenAt)
		case "updatedAt":
			c = a.ChangedAt.Compare(b.ChangedAt)
		case "syncedAt":
			c = a.SyncedAt.Compare(b.SyncedAt)
		case "key_name":
			c = strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name))
		}
		c = cmp.Or(c, strings.Compare(a.ID, b.ID))
		if desc {
			c = -c
		}
		return c
	})
	limit := cmp.Or(q.Limit, events.DefaultLimit)
	p := events.KeyPage{Skip: q.Skip, Limit: limit, Total: len(ms), Resources: []events.KeyRecord{}}
	if q.Skip < len(ms) {
		ms = ms[q.Skip:]
		if limit >= 0 && limit < len(ms) {
			ms = ms[:limit]
		}
		for _, r := range ms {
			p.Resources = append(p.Resources, *r)
		}
	}
	return p
}

// randomQuery draws a query whose filter values mostly come from stored
// records, so that combinations match something.
func randomQuery(rng *rand.Rand, recs []*events.KeyRecord) events.KeyQuery {
	var q events.KeyQuery
	r := recs[rng.IntN(len(recs))]
	p := func(n int) bool { return rng.IntN(n) == 0 }
	if p(25) {
		q.ID = r.ID
	}
	if p(4) {
		q.VaultID = r.VaultID
	}
	if p(4) {
		if p(2) {
			q.KeyVault = r.KeyVault()
		} else {
			q.KeyVault = r.VaultName
		}
	}
	if p(5) {
		q.KeyName = strings.ToUpper(r.Name[:1]) + r.Name[1:]
	}
	if p(8) {
		switch rng.IntN(3) {
		case 0:
			q.Kid = r.Kid
		case 1:
			q.Kid = versionlessKid(r.Kid)
		default:
			q.Kid = versionlessKid(r.Kid) + "/00000000000000000000000000000000"
		}
	}
	if p(3) {
		b := p(2)
		q.Enabled = &b
	}
	if p(3) {
		b := p(2)
		q.Gone = &b
	}
	if p(4) {
		q.KeySize = []int{2048, 3072, 4096, 1024}[rng.IntN(4)]
	}
	if p(8) {
		q.VaultID = "no-such-vault"
	}
	q.Sort = []string{"", "createdAt", "-createdAt", "updatedAt", "-updatedAt", "syncedAt", "-syncedAt", "key_name", "-key_name"}[rng.IntN(9)]
	q.Limit = []int{0, 0, 1, 5, 5, 10, 20, 50, 50, events.LimitAll}[rng.IntN(10)]
	q.Skip = []int{0, 0, 1, 3, 20, 5000}[rng.IntN(6)]
	return q
}

// comparePage fails the test if got differs from want.
func comparePage(t *testing.T, q events.KeyQuery, got, want events.KeyPage) {
	t.Helper()
	if got.Total != want.Total || got.Skip != want.Skip || got.Limit != want.Limit || len(got.Resources) != len(want.Resources) {
		t.Fatalf("query %+v: got skip %d limit %d total %d len %d, want skip %d limit %d total %d len %d",
			q, got.Skip, got.Limit, got.Total, len(got.Resources), want.Skip, want.Limit, want.Total, len(want.Resources))
	}
	for i := range got.Resources {
		if !reflect.DeepEqual(got.Resources[i], want.Resources[i]) {
			t.Fatalf("query %+v: resource %d:\n got %+v\nwant %+v", q, i, got.Resources[i], want.Resources[i])
		}
	}
}

// loadRandom applies n random records (names repeat across vaults) in
// batches and returns the expected state by id.
func loadRandom(t *testing.T, s *Store, rng *rand.Rand, n int) map[string]events.KeyRecord {
	t.Helper()
	vs := testVaults(40)
	want := make(map[string]events.KeyRecord, n)
	var batch []events.KeyRecord
	for i := range n {
		r := makeKey(rng, vs[rng.IntN(len(vs))], fmt.Sprintf("key-%d", i%300))
		if rng.IntN(3) == 0 {
			r.Name = strings.ToUpper(r.Name) // case differs; same lowercased name
		}
		// A repeated id keeps the earliest FirstSeenAt, as the store does.
		if prev, ok := want[r.ID]; ok && (r.FirstSeenAt.IsZero() || r.FirstSeenAt.After(prev.FirstSeenAt)) {
			r.FirstSeenAt = prev.FirstSeenAt
		}
		want[r.ID] = r
		batch = append(batch, r)
		if len(batch) == 250 {
			if err := s.Apply(context.Background(), Batch{Keys: batch}); err != nil {
				t.Fatal(err)
			}
			batch = nil
		}
	}
	if err := s.Apply(context.Background(), Batch{Keys: batch}); err != nil {
		t.Fatal(err)
	}
	return want
}

func TestListKeysMatchesReference(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	s := setup(t)
	want := loadRandom(t, s, rng, 2000)
	check := func(t *testing.T, rounds int) {
		recs := refRecords(want)
		nonEmpty := 0
		for range rounds {
			q := randomQuery(rng, recs)
			got, err := s.ListKeys(ctx, q)
			if err != nil {
				t.Fatalf("ListKeys(%+v): %v", q, err)
			}
			ref := refListKeys(recs, q)
			comparePage(t, q, got, ref)
			if ref.Total > 0 {
				nonEmpty++
			}
		}
		if nonEmpty < rounds/4 {
			t.Fatalf("only %d of %d queries matched anything: the generator is too strict", nonEmpty, rounds)
		}
	}
	t.Run("random filters, sorts and pages equal brute force", func(t *testing.T) { check(t, 500) })

	t.Run("each filter alone equals brute force", func(t *testing.T) {
		r := want[slices.Sorted(mapsKeys(want))[7]]
		tr, fa := true, false
		for _, q := range []events.KeyQuery{
			{ID: r.ID}, {VaultID: r.VaultID}, {KeyVault: r.KeyVault()}, {KeyVault: r.VaultName},
			{KeyName: strings.ToUpper(r.Name)}, {Kid: r.Kid}, {Kid: versionlessKid(r.Kid)},
			{Enabled: &tr}, {Enabled: &fa}, {Gone: &tr}, {Gone: &fa}, {KeySize: 3072}, {},
		} {
			q.Limit = events.LimitAll
			got, err := s.ListKeys(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			ref := refListKeys(refRecords(want), q)
			if ref.Total == 0 {
				t.Fatalf("query %+v matches nothing in the data set", q)
			}
			comparePage(t, q, got, ref)
		}
	})

	t.Run("after upserts that move index entries, still equal brute force", func(t *testing.T) {
		var batch []events.KeyRecord
		for _, id := range slices.Sorted(mapsKeys(want)) {
			if rng.IntN(3) != 0 {
				continue
			}
			r := want[id]
			r.Enabled = !r.Enabled
			r.Gone = !r.Gone
			r.KeySize = []int{2048, 3072, 4096}[rng.IntN(3)]
			r.SyncedAt = r.SyncedAt.Add(-5 * 60 * 1e9)
			r.ChangedAt = r.ChangedAt.Add(17 * 1e9)
			r.Version = fmt.Sprintf("%032x", rng.Uint64())
			r.Kid = versionlessKid(r.Kid) + "/" + r.Version
			want[id] = r
			batch = append(batch, r)
		}
		if err := s.Apply(ctx, Batch{Keys: batch}); err != nil {
			t.Fatal(err)
		}
		check(t, 300)
	})
}

func mapsKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func TestUpsertMovesIndexEntries(t *testing.T) {
	ctx := context.Background()
	s := setup(t)
	v := testVaults(1)[0]
	k := makeKey(nil, v, "k1")
	k.Enabled, k.Gone, k.KeySize = true, false, 2048
	if err := s.Apply(ctx, Batch{Keys: []events.KeyRecord{k}}); err != nil {
		t.Fatal(err)
	}
	count := func(q events.KeyQuery) int {
		t.Helper()
		p, err := s.ListKeys(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Resources) != p.Total {
			t.Fatalf("total %d but %d resources", p.Total, len(p.Resources))
		}
		return p.Total
	}
	tr, fa := true, false
	if count(events.KeyQuery{Enabled: &tr}) != 1 || count(events.KeyQuery{Gone: &fa}) != 1 || count(events.KeyQuery{KeySize: 2048}) != 1 {
		t.Fatal("fresh key not found by its flags")
	}
	k.Enabled, k.Gone, k.KeySize = false, true, 4096
	if err := s.Apply(ctx, Batch{Keys: []events.KeyRecord{k}}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		q    events.KeyQuery
		want int
	}{
		{"disabled key leaves enabled=true", events.KeyQuery{Enabled: &tr}, 0},
		{"disabled key found by enabled=false", events.KeyQuery{Enabled: &fa}, 1},
		{"gone key leaves gone=false", events.KeyQuery{Gone: &fa}, 0},
		{"gone key found by gone=true", events.KeyQuery{Gone: &tr}, 1},
		{"resized key leaves its old size", events.KeyQuery{KeySize: 2048}, 0},
		{"resized key found by new size", events.KeyQuery{KeySize: 4096}, 1},
		{"unfiltered list counts the key once", events.KeyQuery{}, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := count(c.q); got != c.want {
				t.Fatalf("count = %d, want %d", got, c.want)
			}
		})
	}
	if st := s.Stats(); st.Keys != 1 {
		t.Fatalf("Stats.Keys = %d, want 1", st.Keys)
	}
}

func TestPaging(t *testing.T) {
	ctx := context.Background()
	s := setup(t)
	v := testVaults(1)[0]
	var keys []events.KeyRecord
	for i := range 25 {
		keys = append(keys, makeKey(nil, v, fmt.Sprintf("k%02d", i)))
	}
	if err := s.Apply(ctx, Batch{Keys: keys}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name        string
		skip, limit int
		wantLen     int
		wantLimit   int
	}{
		{"zero limit gives the default page", 0, 0, events.DefaultLimit, events.DefaultLimit},
		{"limit -1 gives all", 0, events.LimitAll, 25, events.LimitAll},
		{"skip and limit", 20, 10, 5, 10},
		{"skip past the end gives an empty page", 30, 10, 0, 10},
		{"skip with limit -1", 5, events.LimitAll, 20, events.LimitAll},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, q := range []events.KeyQuery{{Skip: c.skip, Limit: c.limit}, {VaultID: v.id, Skip: c.skip, Limit: c.limit}} {
				p, err := s.ListKeys(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				if p.Total != 25 || len(p.Resources) != c.wantLen || p.Limit != c.wantLimit || p.Resources == nil {
					t.Fatalf("%+v: total %d len %d limit %d", q, p.Total, len(p.Resources), p.Limit)
				}
			}
		})
	}
	t.Run("bad queries are rejected", func(t *testing.T) {
		for _, q := range []events.KeyQuery{{Skip: -1}, {Limit: -2}, {Sort: "name"}, {Sort: "--createdAt"}} {
			_, err := s.ListKeys(ctx, q)
			if !errors.Is(err, ErrBadQuery) {
				t.Errorf("ListKeys(%+v) = %v, want ErrBadQuery", q, err)
			}
		}
		_, err := s.ListKeys(ctx, events.KeyQuery{Sort: "bogus"})
		if err == nil || !strings.Contains(err.Error(), "createdAt, updatedAt, syncedAt, key_name") {
			t.Errorf("unknown sort error %v does not name the allowed fields", err)
		}
		for _, q := range []events.JobQuery{{Skip: -1}, {Limit: -5}} {
			if _, err := s.ListJobs(ctx, q); !errors.Is(err, ErrBadQuery) {
				t.Errorf("ListJobs(%+v) = %v, want ErrBadQuery", q, err)
			}
		}
	})
}
