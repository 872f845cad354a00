package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/akvsync/akvsync/pkg/events"
	"github.com/rs/zerolog"
	bolt "go.etcd.io/bbolt"
)

// Store is one worker's materialized inventory in a bbolt file. It is safe
// for concurrent use: queries run in parallel read transactions, Apply
// calls are serialized by bbolt's single writer.
type Store struct {
	db  *bolt.DB
	cfg Config
	log zerolog.Logger

	mu     sync.RWMutex // guards closed; held shared by every operation
	closed bool

	// visits counts the stored key records queries have read (to match,
	// sort or return them): the cost measure the tests assert.
	visits atomic.Uint64
	// released is when Apply last checked whether to release the map's
	// resident pages (unix nanoseconds).
	released atomic.Int64
}

// Batch is a set of changes Apply commits in one transaction: the keys of
// removed vaults deleted (first), key records upserted by id, job records
// (see JobChanges), and the new stream positions (source name -> last
// applied sequence) that this batch brings the store to.
type Batch struct {
	// RemovedVaults are vault ids whose keys are deleted before Keys are
	// applied. A removed vault id is tombstoned: no key record of it is
	// applied afterwards, in this batch or a later one (a vault added
	// again gets a new id; see removeVaults).
	RemovedVaults []string
	Keys          []events.KeyRecord
	Jobs          JobChanges
	Positions     map[string]uint64
}

// Len returns the number of records in the batch (vault removals, keys,
// job records).
func (b *Batch) Len() int { return len(b.RemovedVaults) + len(b.Keys) + b.Jobs.Len() }

// Stats is a snapshot of the store's size.
type Stats struct {
	// Keys and Jobs count the records.
	Keys int `json:"keys"`
	Jobs int `json:"jobs"`
	// JobsByStatus counts the jobs by overall status.
	JobsByStatus map[events.JobStatus]int `json:"jobs_by_status,omitempty"`
	// FileSize is the size of the bbolt file in bytes.
	FileSize int64 `json:"file_size"`
}

// Open opens (creating if needed) the bbolt file at cfg.Path and its
// buckets. bbolt's copy-on-write pages and double meta page make reopening
// after a crash safe: the store is the last committed transaction.
func Open(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o700); err != nil {
		return nil, fmt.Errorf("store: create directory: %w", err)
	}
	db, err := bolt.Open(cfg.Path, 0o600, &bolt.Options{
		Timeout:        cfg.OpenTimeout,
		NoSync:         cfg.NoSync,
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", cfg.Path, err)
	}
	log := cfg.Logger.With().Str("component", "store").Logger()
	err = db.Update(func(tx *bolt.Tx) error {
		if meta := tx.Bucket(bucketMeta); meta != nil {
			if v := meta.Get(metaSchema); v != nil && !(len(v) == 8 && binary.BigEndian.Uint64(v) == schemaVersion) {
				// Another layout: everything here is derived from the
				// streams, so drop it all, positions included, and the
				// projector replays the streams into the new layout.
				log.Warn().Hex("schema", v).Int("want", schemaVersion).Str("path", cfg.Path).
					Msg("store written with another schema version: rebuilding it from the streams")
				if err := dropAll(tx); err != nil {
					return err
				}
			}
		}
		for _, name := range allBuckets() {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("store: create bucket %s: %w", name, err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		if meta.Get(metaSchema) != nil {
			return nil
		}
		return meta.Put(metaSchema, binary.BigEndian.AppendUint64(nil, schemaVersion))
	})
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	s := &Store{db: db, cfg: cfg, log: log}
	st := s.Stats()
	s.log.Info().Str("path", cfg.Path).Int("keys", st.Keys).Int("jobs", st.Jobs).Int64("file_size", st.FileSize).Msg("store opened")
	return s, nil
}

// dropAll deletes every top-level bucket of the file.
func dropAll(tx *bolt.Tx) error {
	var names [][]byte
	if err := tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
		names = append(names, bytes.Clone(name))
		return nil
	}); err != nil {
		return err
	}
	for _, name := range names {
		if err := tx.DeleteBucket(name); err != nil {
			return fmt.Errorf("store: drop bucket %s: %w", name, err)
		}
	}
	return nil
}

// Close closes the file, waiting for running transactions. Later calls
// return ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.closed = true
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}

// Config returns the store's configuration with defaults applied.
func (s *Store) Config() Config { return s.cfg }

// view runs fn in a read transaction unless the store is closed. Reads
// touch the map as writes do, so a read may release its resident pages
// afterwards (see Config.ResidentLimit).
func (s *Store) view(fn func(tx *bolt.Tx) error) error {
	err := func() error {
		s.mu.RLock()
		defer s.mu.RUnlock()
		if s.closed {
			return ErrClosed
		}
		return s.db.View(fn)
	}()
	s.maybeReleaseResident()
	return err
}

// update runs fn in a write transaction unless the store is closed.
func (s *Store) update(fn func(tx *bolt.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	return s.db.Update(fn)
}

// ctxCheckEvery is how many records a long loop handles between checks
// of its context.
const ctxCheckEvery = 256

// Apply commits the batch in one bbolt transaction: key records (upsert
// by id, moving their index entries), jobs (upsert by id), job deletions,
// and the stream positions. Either all of it is applied or nothing is.
// Applying the same batch twice leaves the same state.
//
// A position never moves backwards: the store keeps the larger of the
// stored and the given sequence. Callers skip messages whose sequence is
// at or below Position(source) before adding them to a batch; that and the
// shared transaction make application exactly-once across restarts.
//
// A key's FirstSeenAt is the earliest non-zero one seen for its id.
func (s *Store) Apply(ctx context.Context, b Batch) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	start := time.Now()
	err := s.update(func(tx *bolt.Tx) error {
		if err := removeVaults(ctx, tx, b.RemovedVaults); err != nil {
			return err
		}
		if err := applyKeys(ctx, tx, b.Keys, s.maybeReleaseResidentTx); err != nil {
			return err
		}
		if err := applyJobs(ctx, tx, b.Jobs); err != nil {
			return err
		}
		return applyPositions(tx, b.Positions)
	})
	if err != nil {
		return fmt.Errorf("store: apply: %w", err)
	}
	s.log.Debug().Int("removed_vaults", len(b.RemovedVaults)).Int("keys", len(b.Keys)).Int("job_records", b.Jobs.Len()).
		Interface("positions", b.Positions).Dur("took", time.Since(start)).Msg("batch applied")
	s.maybeReleaseResident()
	return nil
}

// maybeReleaseResident releases the map's resident pages if the last
// check is at least cfg.ResidentRelease ago and the process's file-backed
// resident memory is above cfg.ResidentLimit (see releaseDue). A failure is logged: it
// costs memory, not data.
func (s *Store) maybeReleaseResident() {
	if !s.releaseDue() {
		return
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return
	}
	if err := s.db.View(func(tx *bolt.Tx) error { return releaseResident(s.db, tx) }); err != nil {
		s.log.Warn().Err(err).Msg("cannot release the resident pages of the store's map")
	}
}

// maybeReleaseResidentTx is maybeReleaseResident inside a transaction
// that is still open (a long stream, a big batch): it must not open
// another one, since a commit waiting to remap the growing file would
// block it behind the open one. Within a write transaction it is as safe:
// the map only moves when a commit remaps it, and what the transaction
// changed lives in its own memory, not in the read-only map.
func (s *Store) maybeReleaseResidentTx(tx *bolt.Tx) {
	if !s.releaseDue() {
		return
	}
	if err := releaseResident(s.db, tx); err != nil {
		s.log.Warn().Err(err).Msg("cannot release the resident pages of the store's map")
	}
}

// releaseDue reports whether a check is due (the last one is at least
// cfg.ResidentRelease ago; this caller won the race for it) and the
// process's file-backed resident memory is above cfg.ResidentLimit.
func (s *Store) releaseDue() bool {
	every := s.cfg.ResidentRelease
	if every < 0 {
		return false
	}
	now, last := time.Now().UnixNano(), s.released.Load()
	if now-last < int64(every) || !s.released.CompareAndSwap(last, now) {
		return false
	}
	if limit := s.cfg.ResidentLimit; limit > 0 {
		if n, err := residentFileBytes(); err == nil && n <= limit {
			return false
		}
	}
	return true
}

// applyPositions advances the stored positions to those given.
func applyPositions(tx *bolt.Tx, pos map[string]uint64) error {
	bk := tx.Bucket(bucketPositions)
	for src, seq := range pos {
		if src == "" {
			return fmt.Errorf("%w: empty position source", ErrBadRecord)
		}
		if v := bk.Get([]byte(src)); len(v) == 8 && binary.BigEndian.Uint64(v) >= seq {
			continue
		}
		if err := bk.Put([]byte(src), binary.BigEndian.AppendUint64(nil, seq)); err != nil {
			return fmt.Errorf("position %s: %w", src, err)
		}
	}
	return nil
}

// Position returns the last applied sequence of a source (0 if none).
func (s *Store) Position(source string) (uint64, error) {
	var seq uint64
	err := s.view(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketPositions).Get([]byte(source)); len(v) == 8 {
			seq = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	return seq, err
}

// Positions returns every source's last applied sequence.
func (s *Store) Positions() (map[string]uint64, error) {
	out := make(map[string]uint64)
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPositions).ForEach(func(k, v []byte) error {
			if len(v) == 8 {
				out[string(k)] = binary.BigEndian.Uint64(v)
			}
			return nil
		})
	})
	return out, err
}

// Stats returns the record counts and file size; zero on a closed store.
// It reads a few counters, whatever the store's size.
func (s *Store) Stats() Stats {
	var st Stats
	_ = s.view(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		st.Keys = getCount(meta, metaKeys)
		st.Jobs = getCount(meta, metaJobs)
		st.JobsByStatus = map[events.JobStatus]int{}
		for _, js := range []events.JobStatus{events.JobInProgress, events.JobCompleted, events.JobFailed} {
			st.JobsByStatus[js] = getCount(meta, metaJobStatus(js))
		}
		st.FileSize = tx.Size()
		return nil
	})
	return st
}

// getCounter reads a uint64 counter (0 if absent).
func getCounter(b *bolt.Bucket, k []byte) uint64 {
	if v := b.Get(k); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// counterInt converts a stored uint64 count to int, saturating at
// math.MaxInt so that a damaged file cannot turn a count negative.
func counterInt(u uint64) int {
	if u > math.MaxInt {
		return math.MaxInt
	}
	return int(u)
}

// getCount reads a counter as an int (see counterInt).
func getCount(b *bolt.Bucket, k []byte) int { return counterInt(getCounter(b, k)) }

// addCounter adds delta to a uint64 counter, not going below zero.
func addCounter(b *bolt.Bucket, k []byte, delta int) error {
	n := int64(getCount(b, k)) + int64(delta)
	if n < 0 {
		n = 0
	}
	return b.Put(k, binary.BigEndian.AppendUint64(nil, uint64(n)))
}
