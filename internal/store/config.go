package store

import (
	"fmt"
	"time"

	"github.com/rs/zerolog"
)

// Defaults applied by Open to zero Config fields.
const (
	// DefaultOpenTimeout is how long Open waits for the file lock held by
	// another process before giving up.
	DefaultOpenTimeout = 10 * time.Second
	// DefaultResidentRelease is how often, at most, the store checks whether
	// to hand the pages of the memory-mapped file back to the page cache
	// (see Config.ResidentRelease).
	DefaultResidentRelease = 2 * time.Millisecond
	// DefaultResidentLimit is the process's file-backed resident memory
	// above which the store releases the map's pages (see
	// Config.ResidentLimit).
	DefaultResidentLimit = 256 << 20
)

// Config configures a Store. Zero values take the Default* constants.
type Config struct {
	// Path is the bbolt file; its directory is created if missing. Required.
	Path string
	// OpenTimeout bounds the wait for the file lock. Default
	// DefaultOpenTimeout.
	OpenTimeout time.Duration
	// NoSync skips fsync on commit. Only for tests and benchmarks: a crash
	// can lose or corrupt committed data.
	NoSync bool
	// ResidentRelease is how often, at most, the store releases the pages of
	// the bbolt file's memory map that the process touched (Linux:
	// madvise MADV_DONTNEED). Reads and writes touch the map all over a
	// large file, and the kernel counts each touched page in the
	// process's RSS until it is released: without this, a worker's RSS
	// grows to the file's size (about 1.1 GB at 1,000,000 keys) although
	// the pages are only cache. Released pages stay in the page cache, so
	// reading them again costs a minor fault, not disk I/O. Default
	// DefaultResidentRelease; negative never releases.
	ResidentRelease time.Duration
	// ResidentLimit is the process's file-backed resident memory (Linux:
	// the shared pages of /proc/self/statm, the executable's included)
	// above which a check releases the map's pages. Writes (Apply) and
	// reads (every query, and every ctxCheckEvery records of a stream)
	// check. Random reads grow the map's share fast: the kernel maps a
	// whole fault-around window (64 KiB) around each page faulted in, so
	// a batch of 1,000 scattered records can map tens of megabytes. A release is not
	// free: every thread's TLB is flushed and the next reads fault the
	// pages back in. Releasing at every check cost a quarter of the sync
	// throughput, and a 64 MiB limit (which the executable's own pages
	// nearly fill in the embedded process) 15 %; 256 MiB leaves a
	// 100,000-key inventory alone and releases a 1,000,000-key one only
	// once that much of it is resident. Default DefaultResidentLimit;
	// negative releases at every check.
	ResidentLimit int64
	// Logger receives the store's logs. The zero Logger discards them.
	Logger zerolog.Logger
}

// Validate reports whether the configuration is usable: Path is set and
// no limit or duration is negative. Zero values are valid (defaults).
func (c Config) Validate() error {
	switch {
	case c.Path == "":
		return fmt.Errorf("%w: Path is required", ErrBadConfig)
	case c.OpenTimeout < 0:
		return fmt.Errorf("%w: OpenTimeout %s is negative", ErrBadConfig, c.OpenTimeout)
	}
	return nil
}

// withDefaults returns c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.OpenTimeout == 0 {
		c.OpenTimeout = DefaultOpenTimeout
	}
	if c.ResidentRelease == 0 {
		c.ResidentRelease = DefaultResidentRelease
	}
	if c.ResidentLimit == 0 {
		c.ResidentLimit = DefaultResidentLimit
	}
	return c
}
