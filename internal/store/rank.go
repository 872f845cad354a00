package store

import (
	"bytes"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Rank (order statistics) over an index, so a deep skip does not walk the
// skipped entries. bbolt keeps no counts in its branch pages, so the
// store keeps its own one level of them:
//
//	rank   rank id byte || boundary -> uint64 BE number of entries of the
//	       index in [boundary, next boundary of the same index)
//
// Each ranked index is cut into chunks of rankChunk to 2*rankChunk
// entries (the first chunk has the empty boundary and may be smaller).
// An insert or delete adjusts its chunk's count (one Get and one Put); a
// chunk above 2*rankChunk is split by walking rankChunk entries from its
// boundary; an empty chunk is dropped and a small one merged into its
// successor. Finding the n-th entry sums the counts of the chunks before
// it (N/rankChunk small values, in a few pages) and walks at most
// 2*rankChunk entries of the index.

var bucketRank = []byte("rank")

// rankChunk is the target number of index entries per chunk (a
// variable so tests can exercise splits and merges on few keys).
var rankChunk uint64 = 256

// ranker maintains and reads the rank chunks of one index.
type ranker struct {
	id byte
	ix *bolt.Bucket // the index
	rk *bolt.Bucket // the rank bucket
}

// floor returns the rank key (a copy) and count of the chunk that holds
// key. With no chunk yet it returns the index's first chunk with count 0.
func (r ranker) floor(key []byte) ([]byte, uint64) {
	target := append([]byte{r.id}, key...)
	c := r.rk.Cursor()
	k, v := c.Seek(target)
	if k == nil || !bytes.Equal(k, target) {
		k, v = c.Prev()
	}
	if k == nil || k[0] != r.id || len(v) != 8 {
		return []byte{r.id}, 0
	}
	return bytes.Clone(k), binary.BigEndian.Uint64(v)
}

func (r ranker) put(k []byte, n uint64) error {
	if err := r.rk.Put(k, binary.BigEndian.AppendUint64(nil, n)); err != nil {
		return fmt.Errorf("store: rank: %w", err)
	}
	return nil
}

// add counts key, just put into the index.
func (r ranker) add(key []byte) error {
	bk, n := r.floor(key)
	n++
	if n <= 2*rankChunk {
		return r.put(bk, n)
	}
	// Split: the entry rankChunk places after the boundary starts a new chunk.
	c := r.ix.Cursor()
	var k []byte
	if len(bk) == 1 {
		k, _ = c.First()
	} else {
		k, _ = c.Seek(bk[1:])
	}
	for range rankChunk {
		k, _ = c.Next()
	}
	if k == nil {
		return fmt.Errorf("%w: rank chunk of index %d counts more entries than it holds", ErrCorrupt, r.id)
	}
	if err := r.put(bk, rankChunk); err != nil {
		return err
	}
	return r.put(append([]byte{r.id}, k...), n-rankChunk)
}

// remove uncounts key, just deleted from the index.
func (r ranker) remove(key []byte) error {
	bk, n := r.floor(key)
	if n > 0 {
		n--
	}
	if n == 0 && len(bk) > 1 {
		if err := r.rk.Delete(bk); err != nil {
			return fmt.Errorf("store: rank: %w", err)
		}
		return nil
	}
	if n < rankChunk/4 {
		// Merge the successor chunk into this one if it stays in bounds.
		c := r.rk.Cursor()
		if k, _ := c.Seek(bk); k != nil {
			if nk, nv := c.Next(); nk != nil && nk[0] == r.id && len(nv) == 8 {
				if m := binary.BigEndian.Uint64(nv); n+m <= 2*rankChunk {
					if err := r.rk.Delete(bytes.Clone(nk)); err != nil {
						return fmt.Errorf("store: rank: %w", err)
					}
					n += m
				}
			}
		}
	}
	return r.put(bk, n)
}

// rankOf returns the number of index entries before key (in byte order).
func (r ranker) rankOf(key []byte) int {
	bk, _ := r.floor(key)
	n := 0
	c := r.rk.Cursor()
	for k, v := c.Seek([]byte{r.id}); k != nil && k[0] == r.id && bytes.Compare(k, bk) < 0; k, v = c.Next() {
		n += counterInt(binary.BigEndian.Uint64(v))
	}
	ic := r.ix.Cursor()
	var k []byte
	if len(bk) == 1 {
		k, _ = ic.First()
	} else {
		k, _ = ic.Seek(bk[1:])
	}
	for ; k != nil && bytes.Compare(k, key) < 0; k, _ = ic.Next() {
		n++
	}
	return n
}

// seekNth positions c (a cursor of the index) at the n-th entry (from 0)
// and returns its key; nil when the index has at most n entries.
func (r ranker) seekNth(c *bolt.Cursor, n int) []byte {
	if n < 0 {
		return nil
	}
	var boundary []byte
	first := true
	rc := r.rk.Cursor()
	for k, v := rc.Seek([]byte{r.id}); k != nil && k[0] == r.id; k, v = rc.Next() {
		cnt := counterInt(binary.BigEndian.Uint64(v))
		if n < cnt {
			boundary, first = k[1:], len(k) == 1
			break
		}
		n -= cnt
		boundary, first = nil, false
	}
	if boundary == nil && !first {
		return nil
	}
	var k []byte
	if first {
		k, _ = c.First()
	} else {
		k, _ = c.Seek(boundary)
	}
	for ; k != nil && n > 0; n-- {
		k, _ = c.Next()
	}
	return k
}
