package store

import (
	"bytes"
	"context"
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
		return sortCreated, true, nil
	}
	desc := strings.HasPrefix(s, "-")
	field := strings.TrimPrefix(s, "-")
	for i, ix := range sortIndexes {
		if ix.field == field {
			return i, desc, nil
		}
	}
	return 0, false, fmt.Errorf("%w: unknown sort field %q (allowed: %s, each optionally prefixed by \"-\")",
		ErrBadQuery, field, strings.Join(events.KeySortFields, ", "))
}

// keyFilter is a KeyQuery's filters, prepared for matching meta tuples.
type keyFilter struct {
	q        events.KeyQuery
	lname    []byte
	kid      []byte // the query kid
	kidNoVer bool   // the query kid has no version: match versionless kids
	vaultQN  bool   // KeyVault is "name::subscription"
}

// lookup is one filter that a filter index can answer.
type lookup struct {
	index int
	value []byte
}

func newKeyFilter(q events.KeyQuery) *keyFilter {
	f := &keyFilter{q: q, lname: []byte(strings.ToLower(q.KeyName)), kid: []byte(q.Kid)}
	f.kidNoVer = q.Kid != "" && versionlessKid(q.Kid) == q.Kid
	f.vaultQN = strings.Contains(q.KeyVault, "::")
	return f
}

// lookups lists the index lookups the filters allow.
func (f *keyFilter) lookups() []lookup {
	var ls []lookup
	q := f.q
	if q.VaultID != "" {
		ls = append(ls, lookup{ixVaultID, []byte(q.VaultID)})
	}
	if q.KeyVault != "" {
		if f.vaultQN {
			ls = append(ls, lookup{ixVaultQN, []byte(q.KeyVault)})
		} else {
			ls = append(ls, lookup{ixVaultName, []byte(q.KeyVault)})
		}
	}
	if q.KeyName != "" {
		ls = append(ls, lookup{ixKeyName, f.lname})
	}
	if q.Kid != "" {
		ls = append(ls, lookup{ixKid, versionlessKid(f.kid)})
	}
	if q.Enabled != nil {
		ls = append(ls, lookup{ixEnabled, []byte{boolByte(*q.Enabled)}})
	}
	if q.Gone != nil {
		ls = append(ls, lookup{ixGone, []byte{boolByte(*q.Gone)}})
	}
	if q.KeySize != 0 {
		var m keyMeta
		m.keySize = int64(q.KeySize)
		ls = append(ls, lookup{ixKeySize, filterIndexes[ixKeySize].value(nil, &m)})
	}
	return ls
}

// empty reports whether the query has no filter at all.
func (f *keyFilter) empty() bool {
	q := f.q
	return q.ID == "" && q.VaultID == "" && q.KeyVault == "" && q.KeyName == "" && q.Kid == "" &&
		q.Enabled == nil && q.Gone == nil && q.KeySize == 0
}

// match reports whether a key (its id and meta tuple) passes every filter.
func (f *keyFilter) match(id []byte, m *keyMeta) bool {
	q := f.q
	switch {
	case q.ID != "" && string(id) != q.ID,
		q.VaultID != "" && string(m.vaultID) != q.VaultID,
		q.KeyName != "" && !bytes.Equal(m.lname, f.lname),
		q.Enabled != nil && m.enabled != *q.Enabled,
		q.Gone != nil && m.gone != *q.Gone,
		q.KeySize != 0 && m.keySize != int64(q.KeySize):
		return false
	}
	if q.KeyVault != "" {
		if f.vaultQN {
			name, sub, _ := strings.Cut(q.KeyVault, "::")
			if string(m.vaultName) != name || string(m.sub) != sub {
				return false
			}
		} else if string(m.vaultName) != q.KeyVault {
			return false
		}
	}
	if q.Kid != "" {
		if f.kidNoVer {
			if !bytes.Equal(versionlessKid(m.kid), f.kid) {
				return false
			}
		} else if !bytes.Equal(m.kid, f.kid) {
			return false
		}
	}
	return true
}

// candidate is a matching key during planning; its slices alias bbolt
// memory of the read transaction.
type candidate struct {
	id, sortv []byte
}

// ListKeys returns one page of the keys matching q, sorted as q.Sort asks
// (default -createdAt; ties by id in the sort's direction), with Total the
// number of all matches. It returns ErrBadQuery for a bad sort, skip or
// limit.
//
// Plan: with no filter it walks the sort index and decodes only the page
// (Total from the key counter). Otherwise it takes the candidates of the
// most selective filter (an id lookup, or the filter index with the
// smallest maintained count), checks every filter on each candidate's
// compact meta tuple, sorts the matches on the same tuple, and decodes
// only the records of the page.
func (s *Store) ListKeys(ctx context.Context, q events.KeyQuery) (events.KeyPage, error) {
	page := events.KeyPage{Skip: q.Skip, Resources: []events.KeyRecord{}}
	var take int
	var err error
	if page.Limit, take, err = pageBounds(q.Skip, q.Limit); err != nil {
		return page, err
	}
	si, desc, err := parseKeySort(q.Sort)
	if err != nil {
		return page, err
	}
	if err := ctx.Err(); err != nil {
		return page, err
	}
	f := newKeyFilter(q)
	err = s.view(func(tx *bolt.Tx) error {
		var ids [][]byte
		var err error
		if f.empty() {
			page.Total, ids = walkSorted(tx, si, desc, q.Skip, take)
		} else {
			page.Total, ids, err = planFiltered(ctx, tx, f, si, desc, q.Skip, take)
			if err != nil {
				return err
			}
		}
		keys := tx.Bucket(bucketKeys)
		page.Resources = make([]events.KeyRecord, 0, len(ids))
		for _, id := range ids {
			v := keys.Get(id)
			if v == nil {
				return fmt.Errorf("%w: index entry without key %q", ErrCorrupt, id)
			}
			r, err := decodeKey(v)
			if err != nil {
				return err
			}
			page.Resources = append(page.Resources, r)
		}
		return nil
	})
	if err != nil {
		return page, fmt.Errorf("store: list keys: %w", err)
	}
	return page, nil
}

// walkSorted returns the key count and the ids of entries skip..skip+take
// (take -1: all) of sort index si in the given direction.
func walkSorted(tx *bolt.Tx, si int, desc bool, skip, take int) (int, [][]byte) {
	total := int(getCounter(tx.Bucket(bucketMeta), metaKeys))
	if take == 0 || skip >= total {
		return total, nil
	}
	c := tx.Bucket(sortIndexes[si].bucket).Cursor()
	first, next := c.First, c.Next
	if desc {
		first, next = c.Last, c.Prev
	}
	var ids [][]byte
	n := 0
	for k, _ := first(); k != nil; k, _ = next() {
		if n++; n <= skip {
			continue
		}
		ids = append(ids, idFromSortKey(si, k))
		if take >= 0 && len(ids) == take {
			break
		}
	}
	return total, ids
}

// planFiltered runs a filtered query: the candidates of the most
// selective index, filtered and sorted on their meta tuples, paged.
func planFiltered(ctx context.Context, tx *bolt.Tx, f *keyFilter, si int, desc bool, skip, take int) (int, [][]byte, error) {
	keys := tx.Bucket(bucketKeys)
	var matches []candidate
	var ferr error
	n := 0
	consider := func(id []byte) bool {
		if n++; n%ctxCheckEvery == 0 {
			if ferr = ctx.Err(); ferr != nil {
				return false
			}
		}
		v := keys.Get(id)
		if v == nil {
			return true
		}
		mb, _, err := splitKeyValue(v)
		if err != nil {
			ferr = fmt.Errorf("key %q: %w", id, err)
			return false
		}
		m, err := decodeMeta(mb)
		if err != nil {
			ferr = fmt.Errorf("key %q: %w", id, err)
			return false
		}
		if f.match(id, &m) {
			matches = append(matches, candidate{id: id, sortv: m.sortValue(si)})
		}
		return true
	}
	if f.q.ID != "" {
		consider([]byte(f.q.ID))
	} else {
		// Counted indexes first: their O(1) counts bound the prefix
		// counting of the others.
		ls := f.lookups()
		slices.SortStableFunc(ls, func(a, b lookup) int {
			return boolCmp(!filterIndexes[a.index].counted, !filterIndexes[b.index].counted)
		})
		best, bestN := -1, uint64(0)
		for i, l := range ls {
			bound := bestN
			if best < 0 {
				bound = ^uint64(0) - 1
			}
			c := indexCount(tx, l.index, l.value, bound)
			if best < 0 || c < bestN {
				best, bestN = i, c
			}
			if bestN == 0 {
				break
			}
		}
		if bestN > 0 {
			matches = make([]candidate, 0, min(bestN, 1<<16))
			scanIndex(tx, ls[best].index, ls[best].value, consider)
		}
	}
	if ferr != nil {
		return 0, nil, ferr
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
	if skip >= total {
		return total, nil, nil
	}
	matches = matches[skip:]
	if take >= 0 && take < len(matches) {
		matches = matches[:take]
	}
	ids := make([][]byte, len(matches))
	for i, m := range matches {
		ids[i] = m.id
	}
	return total, ids, nil
}

// boolCmp orders false before true.
func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}
