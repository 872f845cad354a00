package akvemu

import (
	"encoding/base64"
	"sort"
	"strconv"
	"strings"
)

// cursor is the position a $skiptoken encodes: the last (lower-case) name or version
// returned, so a listing behaves as a sorted cursor while the vault changes.
type cursor struct {
	after   string
	page    int
	empties int // consecutive empty pages so far (irregular paging)
}

const skipTokenVersion = "1"

// maxConsecutiveEmptyPages bounds runs of empty pages in irregular mode.
const maxConsecutiveEmptyPages = 2

func encodeSkipToken(c cursor) string {
	raw := skipTokenVersion + "!" + strconv.Itoa(c.page) + "!" + strconv.Itoa(c.empties) + "!" + c.after
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

func decodeSkipToken(tok string) (cursor, bool) {
	raw, err := decodeB64(tok)
	if err != nil {
		return cursor{}, false
	}
	parts := strings.SplitN(string(raw), "!", 4)
	if len(parts) != 4 || parts[0] != skipTokenVersion {
		return cursor{}, false
	}
	page, err1 := strconv.Atoi(parts[1])
	empties, err2 := strconv.Atoi(parts[2])
	if err1 != nil || err2 != nil || page < 0 || empties < 0 {
		return cursor{}, false
	}
	return cursor{after: parts[3], page: page, empties: empties}, true
}

// pageSize decides how many items the page at c holds: maxresults (default 25), or in
// irregular mode a deterministic size in [0, maxresults], at most two empty in a row.
func pageSize(seed uint64, irregular bool, c cursor, maxResults int) int {
	if !irregular {
		return maxResults
	}
	h := mix(seed^saltPage, uint64(c.page)) // #nosec G115 -- hash input only; decodeSkipToken refuses negative pages anyway
	if c.empties < maxConsecutiveEmptyPages && h%6 == 0 {
		return 0
	}
	return 1 + int((h>>8)%uint64(maxResults)) // #nosec G115 -- maxResults is 1..MaxPageSize (checked by the handler) and the remainder is below it, so it fits int
}

// pageKeys returns the latest versions of up to size keys after c.after.
func (v *Vault) pageKeys(after string, size int, buf []*keyVersion) (items []*keyVersion, last string, more bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	i := 0
	if after != "" {
		i = sort.Search(len(v.order), func(i int) bool { return v.order[i].lname > after })
	}
	end := min(i+size, len(v.order))
	items = buf[:0]
	for _, e := range v.order[i:end] {
		items = append(items, e.latest)
	}
	last = after
	if end > i {
		last = v.order[end-1].lname
	}
	return items, last, end < len(v.order)
}

// pageVersions returns up to size versions of a key after the version c.after.
func (v *Vault) pageVersions(name, after string, size int, buf []*keyVersion) (items []*keyVersion, last string, more bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	items = buf[:0]
	e := v.keys[lower(name)]
	if e == nil {
		return items, after, false
	}
	i := 0
	if after != "" {
		i = sort.Search(len(e.versions), func(i int) bool { return e.versions[i].version > after })
	}
	end := min(i+size, len(e.versions))
	items = append(items, e.versions[i:end]...)
	last = after
	if end > i {
		last = e.versions[end-1].version
	}
	return items, last, end < len(e.versions)
}

// deletedItem is a snapshot of a deleted key for rendering outside the lock.
type deletedItem struct {
	kv          *keyVersion
	name        string
	deletedDate int64
	purgeDate   int64
}

func (v *Vault) pageDeleted(after string, size int) (items []deletedItem, last string, more bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	i := 0
	if after != "" {
		i = sort.Search(len(v.deletedOrder), func(i int) bool { return v.deletedOrder[i].entry.lname > after })
	}
	end := min(i+size, len(v.deletedOrder))
	for _, d := range v.deletedOrder[i:end] {
		items = append(items, deletedItem{kv: d.entry.latest, name: d.entry.name, deletedDate: d.deletedDate, purgeDate: d.purgeDate})
	}
	last = after
	if end > i {
		last = v.deletedOrder[end-1].entry.lname
	}
	return items, last, end < len(v.deletedOrder)
}

// appendNextLink appends the "nextLink" member: null, or an absolute URL on the
// vault's own host and port carrying the cursor.
func appendNextLink(dst []byte, more bool, base, path, apiVersion string, next cursor, maxResults string) []byte {
	dst = append(dst, `],"nextLink":`...)
	if !more {
		return append(dst, "null}"...)
	}
	dst = append(dst, '"')
	dst = append(dst, base...)
	dst = append(dst, path...)
	dst = append(dst, "?api-version="...)
	dst = append(dst, apiVersion...)
	dst = append(dst, "&$skiptoken="...)
	dst = append(dst, encodeSkipToken(next)...)
	if maxResults != "" {
		dst = append(dst, "&maxresults="...)
		dst = append(dst, maxResults...)
	}
	return append(dst, `"}`...)
}
