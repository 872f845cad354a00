package store

import (
	"fmt"
	"time"

	"github.com/rs/zerolog"
)

// Defaults applied by Open to zero Config fields.
const (
	// DefaultBatchLimit is the number of pending records after which a
	// Batcher commits without waiting for BatchInterval.
	DefaultBatchLimit = 1000
	// DefaultBatchInterval is the longest a Batcher holds a pending record
	// before committing it.
	DefaultBatchInterval = 100 * time.Millisecond
	// DefaultOpenTimeout is how long Open waits for the file lock held by
	// another process before giving up.
	DefaultOpenTimeout = 10 * time.Second
)

// Config configures a Store. Zero values take the Default* constants.
type Config struct {
	// Path is the bbolt file; its directory is created if missing. Required.
	Path string
	// BatchLimit is the number of pending records (keys, jobs, deleted
	// jobs) after which a Batcher commits. Default DefaultBatchLimit.
	BatchLimit int
	// BatchInterval is the longest a Batcher waits before committing
	// pending records. Default DefaultBatchInterval.
	BatchInterval time.Duration
	// OpenTimeout bounds the wait for the file lock. Default
	// DefaultOpenTimeout.
	OpenTimeout time.Duration
	// NoSync skips fsync on commit. Only for tests and benchmarks: a crash
	// can lose or corrupt committed data.
	NoSync bool
	// Logger receives the store's logs. The zero Logger discards them.
	Logger zerolog.Logger
}

// Validate reports whether the configuration is usable: Path is set and
// no limit or duration is negative. Zero values are valid (defaults).
func (c Config) Validate() error {
	switch {
	case c.Path == "":
		return fmt.Errorf("%w: Path is required", ErrBadConfig)
	case c.BatchLimit < 0:
		return fmt.Errorf("%w: BatchLimit %d is negative", ErrBadConfig, c.BatchLimit)
	case c.BatchInterval < 0:
		return fmt.Errorf("%w: BatchInterval %s is negative", ErrBadConfig, c.BatchInterval)
	case c.OpenTimeout < 0:
		return fmt.Errorf("%w: OpenTimeout %s is negative", ErrBadConfig, c.OpenTimeout)
	}
	return nil
}

// withDefaults returns c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.BatchLimit == 0 {
		c.BatchLimit = DefaultBatchLimit
	}
	if c.BatchInterval == 0 {
		c.BatchInterval = DefaultBatchInterval
	}
	if c.OpenTimeout == 0 {
		c.OpenTimeout = DefaultOpenTimeout
	}
	return c
}
