package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	"github.com/akvsync/akvsync/pkg/events"
	bolt "go.etcd.io/bbolt"
)

// pageBounds validates skip and limit and returns the limit to report and
// the number of items to return (-1: all).
func pageBounds(skip, limit int) (reported, take int, err error) {
	switch {
	case skip < 0:
		return 0, 0, fmt.Errorf("%w: skip %d is negative", ErrBadQuery, skip)
	case limit < events.LimitAll:
		return 0, 0, fmt.Errorf("%w: limit %d (use %d for all)", ErrBadQuery, limit, events.LimitAll)
	case limit == 0:
		return events.DefaultLimit, events.DefaultLimit, nil
	}
	return limit, limit, nil
}

// parseKeySort returns the sort index and direction of a KeyQuery.Sort.
func parseKeySort(s string) (int, bool, error) {
	if s == "" {
		return ixCreated, true, nil
	}
	desc := strings.HasPrefix(s, "-")
	field := strings.TrimPrefix(s, "-")
	for i := range numSortIndexes {
		if keyIndexes[i].field == field {
			return i, desc, nil
		}
	}
	return 0, false, fmt.Errorf("%w: unknown sort field %q (allowed: %s, each optionally prefixed by \"-\")",
		ErrBadQuery, field, strings.Join(events.KeySortFields, ", "))
}

// gatherLimit is the largest candidate set a filtered query reads whole,
// checks and sorts. Above it the matches are at least gatherLimit of the
// keys, so walking the requested order and checking each key finds a page
// after few visits. (A variable so tests can exercise both plans.)
var gatherLimit = 4096

// keyFilter is a KeyQuery's filters, resolved against one read
// transaction.
type keyFilter struct {
	q       events.KeyQuery
	n       int             // number of filters set (ID excluded)
	ords    map[uint32]bool // vault ordinals allowed; nil: any
	lname   []byte          // sort_name prefix of the key name filter
	kidName []byte          // sort_name prefix of the kid filter's key name
	kidAny  bool            // the kid has no key name: check every key
	dict    *vaultDict
}

// source is a set of candidates: the entries under some prefixes of one
// index, n of them.
type source struct {
	index    int
	prefixes [][]byte
	n        int
	// exact: the candidates are exactly the matches.
	exact bool
}

func resolveFilter(tx *bolt.Tx, q events.KeyQuery) *keyFilter {
	f := &keyFilter{q: q, dict: newVaultDict(tx)}
	if q.VaultID != "" || q.KeyVault != "" {
		f.n++
		if q.VaultID != "" && q.KeyVault != "" {
			f.n++
		}
		var set map[uint32]bool
		narrow := func(ords []uint32, ok func(uint32) bool) {
			next := map[uint32]bool{}
			for _, o := range ords {
				if (set == nil || set[o]) && ok(o) {
					next[o] = true
				}
			}
			set = next
		}
		all := func(uint32) bool { return true }
		if q.VaultID != "" {
			narrow(ordsOf(tx, bucketVaultIDs, q.VaultID), all)
		}
		if q.KeyVault != "" {
			name, sub, qualified := strings.Cut(q.KeyVault, "::")
			narrow(ordsOf(tx, bucketVaultNames, name), func(o uint32) bool {
				if !qualified {
					return true
				}
				t, err := f.dict.tuple(o)
				return err == nil && t.sub == sub
			})
		}
		f.ords = set
	}
	if q.KeyName != "" {
		f.n++
		f.lname = appendLname(nil, []byte(q.KeyName))
	}
	if q.Kid != "" {
		f.n++
		if i := strings.Index(q.Kid, "/keys/"); i >= 0 {
			name, _, _ := strings.Cut(q.Kid[i+len("/keys/"):], "/")
			f.kidName = appendLname(nil, []byte(name))
		} else {
			f.kidAny = true
		}
	}
	for _, set := range []bool{q.Enabled != nil, q.Gone != nil, q.KeySize != 0} {
		if set {
			f.n++
		}
	}
	return f
}

// sources lists the index lookups the filters allow, with their sizes
// (name lookups counted up to bound).
func (f *keyFilter) sources(tx *bolt.Tx) []source {
	var out []source
	q := f.q
	if f.ords != nil {
		s := source{index: ixVault, exact: f.n == 1}
		for o := range f.ords {
			p := binary.BigEndian.AppendUint32(nil, o)
			s.prefixes = append(s.prefixes, p)
			s.n += prefixCount(tx, ixVault, p)
		}
		slices.SortFunc(s.prefixes, bytes.Compare)
		out = append(out, s)
	}
	flag := func(i int, p []byte) {
		out = append(out, source{index: i, prefixes: [][]byte{p}, n: prefixCount(tx, i, p), exact: f.n == 1})
	}
	if q.Enabled != nil {
		flag(ixEnabled, []byte{boolByte(*q.Enabled)})
	}
	if q.Gone != nil {
		flag(ixGone, []byte{boolByte(*q.Gone)})
	}
	if q.KeySize != 0 {
		if q.KeySize < 0 || q.KeySize > 1<<32-1 {
			out = append(out, source{index: ixSize})
		} else {
			flag(ixSize, binary.BigEndian.AppendUint32(nil, uint32(q.KeySize)))
		}
	}
	bound := getCount(tx.Bucket(bucketMeta), metaKeys)
	for _, s := range out {
		bound = min(bound, s.n)
	}
	if f.lname != nil {
		s := source{index: ixName, prefixes: [][]byte{f.lname}, exact: f.n == 1}
		s.n = countPrefix(tx, ixName, f.lname, bound)
		bound = min(bound, s.n)
		out = append(out, s)
	}
	if f.kidName != nil {
		out = append(out, source{index: ixName, prefixes: [][]byte{f.kidName}, n: countPrefix(tx, ixName, f.kidName, bound)})
	}
	return out
}

// countPrefix counts the entries of index i under p, up to bound+1.
func countPrefix(tx *bolt.Tx, i int, p []byte, bound int) int {
	n := 0
	c := tx.Bucket(keyIndexes[i].bucket).Cursor()
	for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p) && n <= bound; k, _ = c.Next() {
		n++
	}
	return n
}

// match reports whether the key (id16, head h, stored value v) passes
// every filter.
func (f *keyFilter) match(id []byte, h *keyHead, v []byte) (bool, error) {
	q := f.q
	switch {
	case f.ords != nil && !f.ords[h.ord],
		q.Enabled != nil && h.enabled() != *q.Enabled,
		q.Gone != nil && h.gone() != *q.Gone,
		q.KeySize != 0 && h.keySize != int64(q.KeySize):
		return false, nil
	}
	if q.KeyName != "" && !bytes.Equal(appendLname(nil, h.name), f.lname) {
		return false, nil
	}
	if q.Kid != "" {
		r, err := decodeRecord(uuidString(id), v, f.dict.tuple)
		if err != nil {
			return false, err
		}
		if versionlessKid(q.Kid) == q.Kid {
			if versionlessKid(r.Kid) != q.Kid {
				return false, nil
			}
		} else if r.Kid != q.Kid {
			return false, nil
		}
	}
	return true, nil
}

// keyPlan is a planned key query: the number of matches and a walk over
// the ids of the requested page, in order.
type keyPlan struct {
	total int
	// run calls emit with the id16 and stored value of each key of the
	// page until emit returns false; the slices are valid in the
	// transaction only.
	run func(emit func(id, v []byte) bool) error
}

// planKeys plans q (already validated) in tx. visit is called once per
// stored record the plan reads to decide what matches or to emit it.
func planKeys(ctx context.Context, tx *bolt.Tx, q events.KeyQuery, si int, desc bool, skip, take int, visit func()) (keyPlan, error) {
	keys := tx.Bucket(bucketKeys)
	get := func(id []byte) ([]byte, keyHead, bool, error) {
		visit()
		v := keys.Get(id)
		if v == nil {
			return nil, keyHead{}, false, nil
		}
		h, err := decodeHead(v)
		return v, h, err == nil, err
	}
	f := resolveFilter(tx, q)
	if q.ID != "" {
		// One candidate.
		id, ok := keyID(q.ID)
		var v []byte
		if ok {
			var h keyHead
			var err error
			if v, h, ok, err = get(id); err != nil {
				return keyPlan{}, err
			}
			if ok {
				if ok, err = f.match(id, &h, v); err != nil {
					return keyPlan{}, err
				}
			}
		}
		if !ok || skip > 0 || take == 0 {
			return keyPlan{total: boolInt(ok), run: func(func(id, v []byte) bool) error { return nil }}, nil
		}
		return keyPlan{total: 1, run: func(emit func(id, v []byte) bool) error { emit(id, v); return nil }}, nil
	}
	if f.n == 0 {
		return sortedWalk(tx, si, desc, nil, getCount(tx.Bucket(bucketMeta), metaKeys), skip, take, keys, visit), nil
	}
	srcs := f.sources(tx)
	var best *source
	for i := range srcs {
		if best == nil || srcs[i].n < best.n {
			best = &srcs[i]
		}
	}
	if f.kidAny && (best == nil || best.n > gatherLimit) {
		best = nil // check every key in the requested order
	}
	if best != nil && best.n == 0 {
		return keyPlan{run: func(func(id, v []byte) bool) error { return nil }}, nil
	}
	// A single exact prefix in the requested order: walk it.
	if best != nil && best.exact && len(best.prefixes) == 1 && orderOf(best.index) == si {
		return sortedWalk(tx, best.index, desc, best.prefixes[0], best.n, skip, take, keys, visit), nil
	}
	if best != nil && best.n <= gatherLimit {
		return gather(ctx, tx, f, best, si, desc, skip, take, get)
	}
	// Many candidates: walk an index in the requested order, checking
	// every filter on each key, and count the matches apart.
	total := -1
	if best != nil && best.exact {
		total = best.n
	} else if t, ok := f.classTotal(tx); ok {
		total = t
	}
	walkIx, prefix := si, []byte(nil)
	if best != nil && len(best.prefixes) == 1 && orderOf(best.index) == si {
		walkIx, prefix = best.index, best.prefixes[0]
	}
	if total < 0 {
		// A combination no count answers: count the matches of the
		// smallest source (or of every key).
		n := 0
		err := scanMatches(ctx, tx, f, walkSource(best, si), false, get, func(id, v []byte) bool { n++; return true })
		if err != nil {
			return keyPlan{}, err
		}
		total = n
	}
	return keyPlan{total: total, run: func(emit func(id, v []byte) bool) error {
		n := 0
		return scanMatches(ctx, tx, f, source{index: walkIx, prefixes: [][]byte{prefix}}, desc, get, func(id, v []byte) bool {
			n++
			if n <= skip {
				return true
			}
			if !emit(id, v) {
				return false
			}
			return take < 0 || n-skip < take
		})
	}}, nil
}

// walkSource is best, or the whole sort index si when there is none.
func walkSource(best *source, si int) source {
	if best != nil {
		return *best
	}
	return source{index: si, prefixes: [][]byte{nil}}
}

// orderOf returns the sort index whose order the entries of index i
// follow within one prefix.
func orderOf(i int) int {
	if i < numSortIndexes {
		return i
	}
	return ixCreated
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// classTotal answers the total of a query whose filters are only
// enabled, gone and key size from the class counts.
func (f *keyFilter) classTotal(tx *bolt.Tx) (int, bool) {
	q := f.q
	if f.ords != nil || f.lname != nil || q.Kid != "" {
		return 0, false
	}
	total := 0
	c := tx.Bucket(bucketCounts).Cursor()
	p := []byte{classCounts}
	for k, v := c.Seek(p); k != nil && k[0] == classCounts; k, v = c.Next() {
		if len(k) != 7 || len(v) != 8 {
			continue
		}
		if q.Enabled != nil && (k[1] == 1) != *q.Enabled || q.Gone != nil && (k[2] == 1) != *q.Gone ||
			q.KeySize != 0 && int64(binary.BigEndian.Uint32(k[3:])) != int64(q.KeySize) {
			continue
		}
		total += counterInt(binary.BigEndian.Uint64(v))
	}
	return total, true
}

// scanMatches walks the entries of src in entry order (desc: backwards),
// calling fn with every key that passes f until fn returns false.
func scanMatches(ctx context.Context, tx *bolt.Tx, f *keyFilter, src source, desc bool, get func([]byte) ([]byte, keyHead, bool, error), fn func(id, v []byte) bool) error {
	c := tx.Bucket(keyIndexes[src.index].bucket).Cursor()
	prefixes := src.prefixes
	if desc {
		prefixes = slices.Clone(prefixes)
		slices.Reverse(prefixes)
	}
	n := 0
	for _, p := range prefixes {
		k, next := seekPrefix(c, p, desc)
		for ; k != nil && bytes.HasPrefix(k, p); k, _ = next() {
			if n++; n%ctxCheckEvery == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			id := idOf(k)
			v, h, ok, err := get(id)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			if m, err := f.match(id, &h, v); err != nil {
				return err
			} else if m && !fn(id, v) {
				return nil
			}
		}
	}
	return nil
}

// seekPrefix positions c at the first (desc: last) entry under p and
// returns it with the step function of the direction.
func seekPrefix(c *bolt.Cursor, p []byte, desc bool) ([]byte, func() ([]byte, []byte)) {
	if !desc {
		if len(p) == 0 {
			k, _ := c.First()
			return k, c.Next
		}
		k, _ := c.Seek(p)
		return k, c.Next
	}
	if len(p) == 0 {
		k, _ := c.Last()
		return k, c.Prev
	}
	var k []byte
	if succ := prefixEnd(p); succ == nil {
		k, _ = c.Last()
	} else if k, _ = c.Seek(succ); k == nil {
		k, _ = c.Last()
	} else {
		k, _ = c.Prev()
	}
	return k, c.Prev
}

// prefixEnd returns the smallest key greater than every key with prefix
// p, or nil if there is none.
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// sortedWalk plans a page of the total entries of index i under prefix
// (nil: all), whose order is the query's, using the rank chunks to skip.
func sortedWalk(tx *bolt.Tx, i int, desc bool, prefix []byte, total, skip, take int, keys *bolt.Bucket, visit func()) keyPlan {
	return keyPlan{total: total, run: func(emit func(id, v []byte) bool) error {
		if take == 0 || skip >= total {
			return nil
		}
		c := tx.Bucket(keyIndexes[i].bucket).Cursor()
		var k []byte
		next := c.Next
		if desc {
			next = c.Prev
		}
		switch {
		case keyIndexes[i].ranked:
			r := ranker{id: byte(i), ix: tx.Bucket(keyIndexes[i].bucket), rk: tx.Bucket(bucketRank)} // #nosec G115 -- i indexes the fixed keyIndexes table (a handful of entries), never input
			start := 0
			if len(prefix) > 0 {
				start = r.rankOf(prefix)
			}
			pos := start + skip
			if desc {
				pos = start + total - 1 - skip
			}
			k = r.seekNth(c, pos)
		default:
			k, next = seekPrefix(c, prefix, desc)
			for n := 0; n < skip && k != nil; n++ {
				k, _ = next()
			}
		}
		for n := 0; k != nil && bytes.HasPrefix(k, prefix) && (take < 0 || n < take); k, _ = next() {
			visit()
			id := idOf(k)
			v := keys.Get(id)
			if v == nil {
				return fmt.Errorf("%w: index entry without key %x", ErrCorrupt, id)
			}
			if !emit(id, v) {
				return nil
			}
			n++
		}
		return nil
	}}
}

// candidate is a match of a gathered query; its slices alias bbolt memory
// of the read transaction.
type candidate struct {
	id, v, sortv []byte
}

// gather reads every candidate of src, keeps the matches and sorts them.
func gather(ctx context.Context, tx *bolt.Tx, f *keyFilter, src *source, si int, desc bool, skip, take int, get func([]byte) ([]byte, keyHead, bool, error)) (keyPlan, error) {
	matches := make([]candidate, 0, src.n)
	var buf []byte
	err := scanMatches(ctx, tx, f, *src, false, get, func(id, v []byte) bool {
		h, _ := decodeHead(v) // decoded fine in get
		buf = indexKey(buf[:0], si, &h, id)
		matches = append(matches, candidate{id: id, v: v, sortv: bytes.Clone(sortPart(si, buf))})
		return true
	})
	if err != nil {
		return keyPlan{}, err
	}
	slices.SortFunc(matches, func(a, b candidate) int {
		c := bytes.Compare(a.sortv, b.sortv)
		if c == 0 {
			c = bytes.Compare(a.id, b.id)
		}
		if desc {
			return -c
		}
		return c
	})
	total := len(matches)
	page := events.PageOf(matches, skip, take)
	return keyPlan{total: total, run: func(emit func(id, v []byte) bool) error {
		for _, m := range page {
			if !emit(m.id, m.v) {
				return nil
			}
		}
		return nil
	}}, nil
}

// ListKeys returns one page of the keys matching q, sorted as q.Sort asks
// (default -createdAt; ties by id in the sort's direction), with Total the
// number of all matches. It returns ErrBadQuery for a bad sort, skip or
// limit.
//
// Plan: with no filter it walks the sort index from the rank of skip.
// Otherwise it takes the candidates of the most selective filter (an id
// lookup, a vault's ordinals, a flag value or key size, a key name, with
// maintained counts); a single filter in its index's order is a walk
// from the rank of skip; up to gatherLimit candidates are read, checked
// and sorted; more are walked in the requested order, checking each key,
// until the page is full. Only the records of the page are decoded
// whole.
func (s *Store) ListKeys(ctx context.Context, q events.KeyQuery) (events.KeyPage, error) {
	page := events.KeyPage{Skip: q.Skip, Resources: []events.KeyRecord{}}
	err := s.StreamKeys(ctx, q, func(total, limit int) error {
		page.Total, page.Limit = total, limit
		return nil
	}, func(r events.KeyRecord) error {
		page.Resources = append(page.Resources, r)
		return nil
	})
	if err != nil {
		return page, fmt.Errorf("store: list keys: %w", err)
	}
	return page, nil
}

// StreamKeys runs q as ListKeys does, in one read transaction (one
// snapshot), without holding the page: it calls head with the total and
// the limit to report, then rec with each record of the page in order. An
// error from head or rec stops it and is returned. Memory is bounded by
// the plan (at most gatherLimit candidates), not by the page, so a
// LimitAll export of every key is streamed.
//
// The transaction lasts until the last rec returns; while it is open,
// bbolt cannot remap a growing file, so a commit that needs to grow it
// waits for the stream to end.
func (s *Store) StreamKeys(ctx context.Context, q events.KeyQuery, head func(total, limit int) error, rec func(events.KeyRecord) error) error {
	limit, take, err := pageBounds(q.Skip, q.Limit)
	if err != nil {
		return err
	}
	si, desc, err := parseKeySort(q.Sort)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.view(func(tx *bolt.Tx) error {
		plan, err := planKeys(ctx, tx, q, si, desc, q.Skip, take, func() { s.visits.Add(1) })
		if err != nil {
			return err
		}
		if err := head(plan.total, limit); err != nil {
			return err
		}
		dict := newVaultDict(tx)
		var ferr error
		n := 0
		err = plan.run(func(id, v []byte) bool {
			if n++; n%ctxCheckEvery == 0 {
				if ferr = ctx.Err(); ferr != nil {
					return false
				}
				// An export reads the whole file: hand its pages back
				// as it goes, not after the last one.
				s.maybeReleaseResidentTx(tx)
			}
			r, err := decodeRecord(uuidString(id), v, dict.tuple)
			if err != nil {
				ferr = err
				return false
			}
			ferr = rec(r)
			return ferr == nil
		})
		if err != nil {
			return err
		}
		return ferr
	})
}
