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
	return c
}
