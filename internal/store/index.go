package store

// Index layout. Every bucket is top level in the bbolt file; "id" is a key
// record id (events.KeyID) or a job id, as bytes.
//
//	meta            "schema" -> uint64 BE schema version (1)
//	                "keys"   -> uint64 BE number of key records
//	                "jobs"   -> uint64 BE number of job records
//	positions       source name -> uint64 BE last applied stream sequence
//
//	keys            id -> uvarint(len(meta)) || meta || JSON of events.KeyRecord.
//	                meta is the record's indexed fields in a compact binary
//	                tuple (see encodeMeta): vault id, vault name,
//	                subscription, lowercased key name, kid, flags, key size
//	                and the three sortable times. Queries filter and sort
//	                candidates on meta and decode the JSON only for the
//	                records of the page; upserts read meta to find the old
//	                index entries.
//
//	filter indexes, value empty; p(v) = uvarint(len(v)) || v, so all ids
//	with value v are the keys under the prefix p(v):
//	ix_vault_id     p(vault id) || id
//	ix_vault_qn     p("name::subscription") || id
//	ix_kid          p(versionless kid "https://host/keys/name") || id
//	ix_key_name     p(lowercased key name) || id
//	the low-cardinality indexes are clustered by vault after the value, so
//	that a batch of one vault's keys dirties few pages:
//	ix_vault_name   p(bare vault name) || p(vault id) || id
//	ix_enabled      p(0x00 | 0x01)     || p(vault id) || id
//	ix_gone         p(0x00 | 0x01)     || p(vault id) || id
//	ix_key_size     p(uint64 BE size)  || p(vault id) || id
//
//	ix_counts       index bucket name || 0x00 || p(v) -> uint64 BE number of
//	                ids with value v, for the indexes with few distinct
//	                values (vault id, vault names, enabled, gone, key size;
//	                absent = 0). The planner reads these to pick the most
//	                selective index; for kid and key name (nearly unique
//	                values) it counts entries under the prefix, stopping at
//	                the best count so far.
//
//	sort indexes, value empty, walked forward (ascending) or backward
//	(descending); ties are in id order in the direction of the walk:
//	sort_created    time12(FirstSeenAt) || id
//	sort_updated    time12(ChangedAt)   || id
//	sort_synced     time12(SyncedAt)    || id
//	sort_name       lowercased key name (NUL mapped to 0x01) || 0x00 || id
//
//	jobs            id -> job record (JSON of events.Job)
//	job_created     ^time12(CreatedAt) || id, value empty: a forward walk
//	                lists jobs newest first, ties by id ascending.
//
// time12 is a time as 8 bytes of Unix seconds with the sign bit flipped
// followed by 4 bytes of nanoseconds, all big endian, so byte order is time
// order for every time.Time including the zero time.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/akvsync/akvsync/pkg/events"
	bolt "go.etcd.io/bbolt"
)

// schemaVersion is the layout version written to the meta bucket.
const schemaVersion = 2

var (
	bucketMeta      = []byte("meta")
	bucketPositions = []byte("positions")
	bucketKeys      = []byte("keys")
	bucketCounts    = []byte("ix_counts")

	metaSchema = []byte("schema")
	metaKeys   = []byte("keys")
	metaJobs   = []byte("jobs")
)

// filterIndex is a secondary index from one field value to key ids.
type filterIndex struct {
	bucket []byte
	// counted indexes keep per-value counts in ix_counts; clustered ones
	// have the vault id between value and id.
	counted, clustered bool
	// value appends the indexed value of m to dst.
	value func(dst []byte, m *keyMeta) []byte
}

// The filter indexes, by position in filterIndexes.
const (
	ixVaultID = iota
	ixVaultQN
	ixVaultName
	ixKeyName
	ixKid
	ixEnabled
	ixGone
	ixKeySize
	numFilterIndexes
)

var filterIndexes = [numFilterIndexes]filterIndex{
	ixVaultID:   {[]byte("ix_vault_id"), true, false, func(d []byte, m *keyMeta) []byte { return append(d, m.vaultID...) }},
	ixVaultQN:   {[]byte("ix_vault_qn"), true, false, func(d []byte, m *keyMeta) []byte { return append(append(append(d, m.vaultName...), "::"...), m.sub...) }},
	ixVaultName: {[]byte("ix_vault_name"), true, true, func(d []byte, m *keyMeta) []byte { return append(d, m.vaultName...) }},
	ixKeyName:   {[]byte("ix_key_name"), false, false, func(d []byte, m *keyMeta) []byte { return append(d, m.lname...) }},
	ixKid:       {[]byte("ix_kid"), false, false, func(d []byte, m *keyMeta) []byte { return append(d, versionlessKid(m.kid)...) }},
	ixEnabled:   {[]byte("ix_enabled"), true, true, func(d []byte, m *keyMeta) []byte { return append(d, boolByte(m.enabled)) }},
	ixGone:      {[]byte("ix_gone"), true, true, func(d []byte, m *keyMeta) []byte { return append(d, boolByte(m.gone)) }},
	ixKeySize:   {[]byte("ix_key_size"), true, true, func(d []byte, m *keyMeta) []byte { return binary.BigEndian.AppendUint64(d, uint64(m.keySize)) }},
}

// The sort indexes, by position in sortIndexes; the order of
// events.KeySortFields.
const (
	sortCreated = iota
	sortUpdated
	sortSynced
	sortName
	numSortIndexes
)

// sortIndex is an index ordered by one sort field.
type sortIndex struct {
	field  string
	bucket []byte
}

var sortIndexes = [numSortIndexes]sortIndex{
	sortCreated: {"createdAt", []byte("sort_created")},
	sortUpdated: {"updatedAt", []byte("sort_updated")},
	sortSynced:  {"syncedAt", []byte("sort_synced")},
	sortName:    {"key_name", []byte("sort_name")},
}

// sortValue returns m's value for sort index i, as it orders in the index.
func (m *keyMeta) sortValue(i int) []byte {
	switch i {
	case sortCreated:
		return m.first
	case sortUpdated:
		return m.changed
	case sortSynced:
		return m.synced
	default:
		return m.lname
	}
}

// sortKey appends the sort index i entry of (m, id) to dst.
func sortKey(dst []byte, i int, m *keyMeta, id []byte) []byte {
	if i == sortName {
		for _, c := range m.lname {
			if c == 0 {
				c = 1
			}
			dst = append(dst, c)
		}
		dst = append(dst, 0)
	} else {
		dst = append(dst, m.sortValue(i)...)
	}
	return append(dst, id...)
}

// idFromSortKey returns the id part of a sort index entry.
func idFromSortKey(i int, k []byte) []byte {
	if i == sortName {
		if j := bytes.IndexByte(k, 0); j >= 0 {
			return k[j+1:]
		}
		return nil
	}
	if len(k) < 12 {
		return nil
	}
	return k[12:]
}

// allBuckets lists every bucket Open creates.
func allBuckets() [][]byte {
	bs := [][]byte{bucketMeta, bucketPositions, bucketKeys, bucketCounts}
	bs = append(bs, jobBuckets...)
	for _, ix := range filterIndexes {
		bs = append(bs, ix.bucket)
	}
	for _, ix := range sortIndexes {
		bs = append(bs, ix.bucket)
	}
	return bs
}

// keyMeta is a decoded meta tuple. Its slices alias the buffer it was
// decoded from (bbolt memory: valid only within the transaction).
type keyMeta struct {
	vaultID, vaultName, sub, lname, kid []byte
	enabled, gone                       bool
	keySize                             int64
	first, changed, synced              []byte // time12
}

const metaVersion = 1

// encodeMeta appends the meta tuple of r to dst:
// version byte, five uvarint-length-prefixed strings (vault id, vault name,
// subscription, lowercased name, kid), a flags byte (1 enabled, 2 gone), a
// varint key size and three time12 (first seen, changed, synced).
func encodeMeta(dst []byte, r *events.KeyRecord) []byte {
	dst = append(dst, metaVersion)
	for _, s := range [...]string{r.VaultID, r.VaultName, r.SubscriptionID, strings.ToLower(r.Name), r.Kid} {
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = append(dst, s...)
	}
	var flags byte
	if r.Enabled {
		flags |= 1
	}
	if r.Gone {
		flags |= 2
	}
	dst = append(dst, flags)
	dst = binary.AppendVarint(dst, int64(r.KeySize))
	dst = appendTime12(dst, r.FirstSeenAt)
	dst = appendTime12(dst, r.ChangedAt)
	return appendTime12(dst, r.SyncedAt)
}

// decodeMeta decodes a meta tuple; the result aliases b.
func decodeMeta(b []byte) (keyMeta, error) {
	var m keyMeta
	if len(b) == 0 || b[0] != metaVersion {
		return m, fmt.Errorf("%w: key meta version", ErrCorrupt)
	}
	b = b[1:]
	for _, p := range [...]*[]byte{&m.vaultID, &m.vaultName, &m.sub, &m.lname, &m.kid} {
		n, w := binary.Uvarint(b)
		if w <= 0 || uint64(len(b)-w) < n {
			return m, fmt.Errorf("%w: key meta string", ErrCorrupt)
		}
		*p = b[w : w+int(n)]
		b = b[w+int(n):]
	}
	if len(b) < 1 {
		return m, fmt.Errorf("%w: key meta flags", ErrCorrupt)
	}
	m.enabled, m.gone = b[0]&1 != 0, b[0]&2 != 0
	b = b[1:]
	size, w := binary.Varint(b)
	if w <= 0 || len(b)-w != 36 {
		return m, fmt.Errorf("%w: key meta size/times", ErrCorrupt)
	}
	m.keySize = size
	b = b[w:]
	m.first, m.changed, m.synced = b[0:12], b[12:24], b[24:36]
	return m, nil
}

// appendTime12 appends the order-preserving 12-byte encoding of t.
func appendTime12(dst []byte, t time.Time) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(t.Unix())^(1<<63))
	return binary.BigEndian.AppendUint32(dst, uint32(t.Nanosecond()))
}

// time12 decodes appendTime12's encoding (UTC).
func time12(b []byte) time.Time {
	if len(b) < 12 {
		return time.Time{}
	}
	return time.Unix(int64(binary.BigEndian.Uint64(b)^(1<<63)), int64(binary.BigEndian.Uint32(b[8:]))).UTC()
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// versionlessKid strips the version from a key identifier
// "https://host/keys/name/version" -> "https://host/keys/name". Other
// strings are returned unchanged.
func versionlessKid[S ~string | ~[]byte](kid S) S {
	s := string(kid)
	i := strings.Index(s, "/keys/")
	if i < 0 {
		return kid
	}
	if j := strings.IndexByte(s[i+len("/keys/"):], '/'); j >= 0 {
		return kid[:i+len("/keys/")+j]
	}
	return kid
}

// indexPrefix appends uvarint(len(v)) || v to dst.
func indexPrefix(dst, v []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(v)))
	return append(dst, v...)
}

// countKey appends the ix_counts key of index i and prefix p to dst.
func countKey(dst []byte, i int, prefix []byte) []byte {
	dst = append(dst, filterIndexes[i].bucket...)
	dst = append(dst, 0)
	return append(dst, prefix...)
}

// indexWriter adds and removes index entries within one write
// transaction, reusing its buffers.
type indexWriter struct {
	tx      *bolt.Tx
	filters [numFilterIndexes]*bolt.Bucket
	sorts   [numSortIndexes]*bolt.Bucket
	counts  *bolt.Bucket
	buf     []byte // new filter value
	obuf    []byte // old filter value
	pbuf    []byte // index entry key
	cbuf    []byte // count key
}

func newIndexWriter(tx *bolt.Tx) *indexWriter {
	w := &indexWriter{tx: tx, counts: tx.Bucket(bucketCounts)}
	for i, ix := range filterIndexes {
		w.filters[i] = tx.Bucket(ix.bucket)
	}
	for i, ix := range sortIndexes {
		w.sorts[i] = tx.Bucket(ix.bucket)
	}
	return w
}

// update moves the index entries of id from old (nil: none) to m,
// leaving entries whose value did not change untouched.
func (w *indexWriter) update(id []byte, old, m *keyMeta) error {
	for i := range filterIndexes {
		newv := filterIndexes[i].value(w.buf[:0], m)
		w.buf = newv
		if old != nil {
			oldv := filterIndexes[i].value(w.obuf[:0], old)
			w.obuf = oldv
			if bytes.Equal(oldv, newv) {
				continue
			}
			if err := w.filter(i, oldv, old.vaultID, id, false); err != nil {
				return err
			}
		}
		if err := w.filter(i, newv, m.vaultID, id, true); err != nil {
			return err
		}
	}
	for i := range sortIndexes {
		if old != nil {
			if bytes.Equal(old.sortValue(i), m.sortValue(i)) {
				continue
			}
			w.pbuf = sortKey(w.pbuf[:0], i, old, id)
			if err := w.sorts[i].Delete(w.pbuf); err != nil {
				return fmt.Errorf("store: delete %s: %w", sortIndexes[i].bucket, err)
			}
		}
		w.pbuf = sortKey(w.pbuf[:0], i, m, id)
		if err := w.sorts[i].Put(w.pbuf, nil); err != nil {
			return fmt.Errorf("store: put %s: %w", sortIndexes[i].bucket, err)
		}
	}
	return nil
}

// filter adds (add) or removes the entry of (v, vid, id) in filter index
// i and adjusts its count.
func (w *indexWriter) filter(i int, v, vid, id []byte, add bool) error {
	ix := &filterIndexes[i]
	w.pbuf = indexPrefix(w.pbuf[:0], v)
	plen := len(w.pbuf)
	if ix.clustered {
		w.pbuf = indexPrefix(w.pbuf, vid)
	}
	w.pbuf = append(w.pbuf, id...)
	k := w.pbuf
	b := w.filters[i]
	var err error
	if add {
		err = b.Put(k, nil)
	} else {
		err = b.Delete(k)
	}
	if err != nil {
		return fmt.Errorf("store: index %s: %w", ix.bucket, err)
	}
	if !ix.counted {
		return nil
	}
	w.cbuf = countKey(w.cbuf[:0], i, k[:plen])
	var n uint64
	if c := w.counts.Get(w.cbuf); len(c) == 8 {
		n = binary.BigEndian.Uint64(c)
	}
	switch {
	case add:
		n++
	case n > 0:
		n--
	}
	if n == 0 {
		err = w.counts.Delete(w.cbuf)
	} else {
		err = w.counts.Put(w.cbuf, binary.BigEndian.AppendUint64(nil, n))
	}
	if err != nil {
		return fmt.Errorf("store: index count: %w", err)
	}
	return nil
}

// indexCount returns the number of ids with value v in filter index i,
// or, for an index without counts, that number capped at bound+1.
func indexCount(tx *bolt.Tx, i int, v []byte, bound uint64) uint64 {
	if !filterIndexes[i].counted {
		var n uint64
		scanIndex(tx, i, v, func([]byte) bool {
			n++
			return n <= bound
		})
		return n
	}
	c := tx.Bucket(bucketCounts).Get(countKey(nil, i, indexPrefix(nil, v)))
	if len(c) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(c)
}

// scanIndex calls fn with each id with value v in filter index i, until fn
// returns false.
func scanIndex(tx *bolt.Tx, i int, v []byte, fn func(id []byte) bool) {
	clustered := filterIndexes[i].clustered
	p := indexPrefix(nil, v)
	c := tx.Bucket(filterIndexes[i].bucket).Cursor()
	for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
		id := k[len(p):]
		if clustered {
			n, w := binary.Uvarint(id)
			if w <= 0 || uint64(len(id)-w) < n {
				continue // malformed entry: cannot name a key
			}
			id = id[w+int(n):]
		}
		if !fn(id) {
			return
		}
	}
}

// splitKeyValue splits a keys bucket value into its meta and JSON parts.
func splitKeyValue(v []byte) (meta, body []byte, err error) {
	n, w := binary.Uvarint(v)
	if w <= 0 || uint64(len(v)-w) < n {
		return nil, nil, fmt.Errorf("%w: key value header", ErrCorrupt)
	}
	return v[w : w+int(n)], v[w+int(n):], nil
}
