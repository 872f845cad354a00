package store

// Layout (schema version 2). Every bucket is top level in the bbolt file.
// A key id is an events.KeyID (a UUID): in bucket keys it is stored as its
// 16 bytes ("id16"); every key index entry ends with it.
//
//	meta            "schema"    -> uint64 BE schema version
//	                "keys"      -> uint64 BE number of key records
//	                "jobs"      -> uint64 BE number of job records
//	                "vault_seq" -> uint64 BE last vault ordinal given out
//	positions       source name -> uint64 BE last applied stream sequence
//
//	keys            id16 -> compact binary record (see record.go)
//	vaults, vault_tuples, vault_ids, vault_names: the vault dictionary
//	                (see record.go); per vault, not per key.
//
//	key indexes, value empty; each entry is prefix || order || id16:
//	sort_created    time12(FirstSeenAt)               || id16
//	sort_updated    time12(ChangedAt)                 || id16
//	sort_synced     time12(SyncedAt)                  || id16
//	sort_name       lname (NUL mapped to 0x01) 0x00   || id16
//	ix_vault        ord (uint32 BE) || time12(FirstSeenAt) || id16
//	ix_enabled      0x00|0x01       || time12(FirstSeenAt) || id16
//	ix_gone         0x00|0x01       || time12(FirstSeenAt) || id16
//	ix_size         uint32 BE size  || time12(FirstSeenAt) || id16
//
//	The sort indexes answer unfiltered lists in any order; sort_name also
//	answers the key name filter (and the kid filter, through the key name
//	in the kid). A filter index's entries for one value are in createdAt
//	order, so a single-filter page in the default order is a walk of one
//	prefix. The vault filters (id, "name::subscription", bare name) map
//	to vault ordinals through the small vault dictionary.
//
//	ix_counts       index id byte || prefix -> uint64 BE number of entries
//	                of a filter index with that prefix (absent = 0)
//	                0xf0 || enabled || gone || uint32 BE key size -> number
//	                of keys of that class, so a combination of the flag
//	                and size filters is counted without reading keys
//	rank            chunk counts of every index but ix_vault (rank.go), for
//	                deep skips
//
//	jobs            id -> job record (JSON of events.Job)
//	job_created     ^time12(CreatedAt) || id, value empty: a forward walk
//	                lists jobs newest first, ties by id ascending.
//
// time12 is a time as 8 bytes of Unix seconds with the sign bit flipped
// followed by 4 bytes of nanoseconds, all big endian, so byte order is time
// order for every time.Time including the zero time.
//
// Per key that is 9 bbolt entries (the record and 8 index entries of 29
// to 45 bytes), where schema 1 had 13 with string ids and a JSON record.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// schemaVersion is the layout version written to the meta bucket. Open
// rebuilds a file of any other version (see Open).
const schemaVersion = 3

var (
	bucketMeta      = []byte("meta")
	bucketPositions = []byte("positions")
	bucketKeys      = []byte("keys")
	bucketCounts    = []byte("ix_counts")

	metaSchema = []byte("schema")
	metaKeys   = []byte("keys")
	metaJobs   = []byte("jobs")
)

// idLen is the length of a stored key id.
const idLen = 16

// The key indexes, by position in keyIndexes. The first four are the sort
// indexes in the order of events.KeySortFields.
const (
	ixCreated = iota
	ixUpdated
	ixSynced
	ixName
	ixVault
	ixEnabled
	ixGone
	ixSize
	numKeyIndexes
	numSortIndexes = ixName + 1
)

// keyIndex is one key index.
type keyIndex struct {
	bucket []byte
	// field is the sort field a sort index orders by.
	field string
	// prefixLen is the length of the filter value before the order part
	// (0 for sort indexes); counted per prefix in ix_counts.
	prefixLen int
	// ranked indexes keep rank chunks.
	ranked bool
}

var keyIndexes = [numKeyIndexes]keyIndex{
	ixCreated: {bucket: []byte("sort_created"), field: "createdAt", ranked: true},
	ixUpdated: {bucket: []byte("sort_updated"), field: "updatedAt", ranked: true},
	ixSynced:  {bucket: []byte("sort_synced"), field: "syncedAt", ranked: true},
	ixName:    {bucket: []byte("sort_name"), field: "key_name", ranked: true},
	ixVault:   {bucket: []byte("ix_vault"), prefixLen: 4},
	ixEnabled: {bucket: []byte("ix_enabled"), prefixLen: 1, ranked: true},
	ixGone:    {bucket: []byte("ix_gone"), prefixLen: 1, ranked: true},
	ixSize:    {bucket: []byte("ix_size"), prefixLen: 4, ranked: true},
}

// indexPrefixOf appends the filter value of filter index i for h to dst.
func indexPrefixOf(dst []byte, i int, h *keyHead) []byte {
	switch i {
	case ixVault:
		return binary.BigEndian.AppendUint32(dst, h.ord)
	case ixEnabled:
		return append(dst, boolByte(h.enabled()))
	case ixGone:
		return append(dst, boolByte(h.gone()))
	case ixSize:
		return binary.BigEndian.AppendUint32(dst, uint32(min(max(h.keySize, 0), 1<<32-1)))
	}
	return dst
}

// appendLname appends the sort_name order part of a key name: lowercased,
// NUL mapped to 0x01, then 0x00.
func appendLname(dst, name []byte) []byte {
	for _, c := range name {
		switch {
		case c == 0:
			c = 1
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return append(dst, 0)
}

// indexKey appends the entry of index i for the key (h, id16) to dst.
func indexKey(dst []byte, i int, h *keyHead, id []byte) []byte {
	switch i {
	case ixCreated:
		dst = append(dst, h.first...)
	case ixUpdated:
		dst = append(dst, h.changed...)
	case ixSynced:
		dst = append(dst, h.synced...)
	case ixName:
		dst = appendLname(dst, h.name)
	default:
		dst = append(indexPrefixOf(dst, i, h), h.first...)
	}
	return append(dst, id...)
}

// sortPart returns the part of an entry of index i that orders it (the
// entry without the filter prefix and id).
func sortPart(i int, k []byte) []byte {
	return k[keyIndexes[i].prefixLen : len(k)-idLen]
}

// idOf returns the id16 of an index entry.
func idOf(k []byte) []byte { return k[len(k)-idLen:] }

// classCounts is the first byte of the class count keys in ix_counts.
const classCounts = 0xf0

// classKey appends the class count key of h to dst.
func classKey(dst []byte, h *keyHead) []byte {
	dst = append(dst, classCounts, boolByte(h.enabled()), boolByte(h.gone()))
	return binary.BigEndian.AppendUint32(dst, uint32(min(max(h.keySize, 0), 1<<32-1)))
}

// countKey appends the ix_counts key of index i and prefix p to dst.
func countKey(dst []byte, i int, prefix []byte) []byte {
	return append(append(dst, byte(i)), prefix...) // #nosec G115 -- i indexes the fixed keyIndexes table (a handful of entries), never input
}

// allBuckets lists every bucket Open creates.
func allBuckets() [][]byte {
	bs := [][]byte{bucketMeta, bucketPositions, bucketKeys, bucketCounts, bucketRank,
		bucketVaults, bucketVaultTuples, bucketVaultIDs, bucketVaultNames, bucketRemovedVaults}
	bs = append(bs, jobBuckets...)
	for _, ix := range keyIndexes {
		bs = append(bs, ix.bucket)
	}
	return bs
}

// appendTime12 appends the order-preserving 12-byte encoding of t.
func appendTime12(dst []byte, t time.Time) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(t.Unix())^(1<<63)) // #nosec G115 -- two's-complement reinterpretation with the sign bit flipped is the order-preserving encoding; time12 reverses it exactly
	return binary.BigEndian.AppendUint32(dst, uint32(t.Nanosecond()))  // #nosec G115 -- Nanosecond is in [0, 1e9), which fits uint32
}

// time12 decodes appendTime12's encoding (UTC).
func time12(b []byte) time.Time {
	if len(b) < 12 {
		return time.Time{}
	}
	return time.Unix(int64(binary.BigEndian.Uint64(b)^(1<<63)), int64(binary.BigEndian.Uint32(b[8:]))).UTC() // #nosec G115 -- exact inverse of appendTime12's bit reinterpretation; every uint64 maps to a valid int64
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

// indexWriter adds and removes key index entries within one write
// transaction, with their counts and rank chunks.
type indexWriter struct {
	buckets [numKeyIndexes]*bolt.Bucket
	rankers [numKeyIndexes]ranker
	counts  *bolt.Bucket
	nbuf    []byte
	obuf    []byte
	cbuf    []byte
}

func newIndexWriter(tx *bolt.Tx) *indexWriter {
	w := &indexWriter{counts: tx.Bucket(bucketCounts)}
	rk := tx.Bucket(bucketRank)
	for i, ix := range keyIndexes {
		w.buckets[i] = tx.Bucket(ix.bucket)
		if ix.ranked {
			w.rankers[i] = ranker{id: byte(i), ix: w.buckets[i], rk: rk}
		}
	}
	return w
}

// update moves the index entries of id from old (nil: none) to h (nil:
// none), leaving unchanged entries alone.
func (w *indexWriter) update(id []byte, old, h *keyHead) error {
	for i := range keyIndexes {
		var ok, nk []byte
		if old != nil {
			w.obuf = indexKey(w.obuf[:0], i, old, id)
			ok = w.obuf
		}
		if h != nil {
			w.nbuf = indexKey(w.nbuf[:0], i, h, id)
			nk = w.nbuf
		}
		if ok != nil && nk != nil && bytes.Equal(ok, nk) {
			continue
		}
		if ok != nil {
			if err := w.entry(i, ok, false); err != nil {
				return err
			}
		}
		if nk != nil {
			if err := w.entry(i, nk, true); err != nil {
				return err
			}
		}
	}
	var oc, nc []byte
	if old != nil {
		oc = classKey(nil, old)
	}
	if h != nil {
		nc = classKey(nil, h)
	}
	if bytes.Equal(oc, nc) {
		return nil
	}
	if oc != nil {
		if err := w.count(oc, -1); err != nil {
			return err
		}
	}
	if nc != nil {
		return w.count(nc, 1)
	}
	return nil
}

// count adds delta to the ix_counts entry k.
func (w *indexWriter) count(k []byte, delta int) error {
	var err error
	if n := int64(getCount(w.counts, k)) + int64(delta); n <= 0 {
		err = w.counts.Delete(k)
	} else {
		err = w.counts.Put(bytes.Clone(k), binary.BigEndian.AppendUint64(nil, uint64(n)))
	}
	if err != nil {
		return fmt.Errorf("store: index count: %w", err)
	}
	return nil
}

// entry adds or removes entry k of index i.
func (w *indexWriter) entry(i int, k []byte, add bool) error {
	ix := &keyIndexes[i]
	var err error
	if add {
		err = w.buckets[i].Put(bytes.Clone(k), nil)
	} else {
		err = w.buckets[i].Delete(k)
	}
	if err != nil {
		return fmt.Errorf("store: index %s: %w", ix.bucket, err)
	}
	if ix.ranked {
		if add {
			err = w.rankers[i].add(k)
		} else {
			err = w.rankers[i].remove(k)
		}
		if err != nil {
			return err
		}
	}
	if ix.prefixLen == 0 {
		return nil
	}
	delta := -1
	if add {
		delta = 1
	}
	w.cbuf = countKey(w.cbuf[:0], i, k[:ix.prefixLen])
	return w.count(w.cbuf, delta)
}

// prefixCount returns the number of entries of filter index i with
// prefix p.
func prefixCount(tx *bolt.Tx, i int, p []byte) int {
	return getCount(tx.Bucket(bucketCounts), countKey(nil, i, p))
}
