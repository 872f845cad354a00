package connections

import (
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/akvsync/akvsync/internal/azure"
)

// Defaults of [Config].
const (
	// DefaultCleanupTimeout bounds the undo of a failed create, which runs
	// even when the request's context is cancelled.
	DefaultCleanupTimeout = 10 * time.Second
	// DefaultCASRetries bounds the compare-and-set attempts of an update
	// that races with another writer.
	DefaultCASRetries = 10
	// DefaultTestTimeout bounds one connection test (token and one page).
	DefaultTestTimeout = 30 * time.Second
)

// staleIndexAfter is how old a name index entry whose record does not
// exist must be before a create may take it over (the creating process
// died between writing the index and the record).
const staleIndexAfter = 30 * time.Second

// Config configures a [Registry]. Zero fields take the defaults above.
type Config struct {
	// CleanupTimeout bounds the undo of a failed create.
	CleanupTimeout time.Duration
	// CASRetries bounds compare-and-set attempts.
	CASRetries int
	// TestTimeout bounds one [Registry.Test].
	TestTimeout time.Duration
	// Azure tunes the clients [Registry.Test] builds; zero fields take
	// one retry with short delays, so a test answers quickly.
	Azure azure.Config
	// Endpoints decides which hosts a connection's endpoints and test
	// vaults may name (its cloud's; private addresses only when allowed).
	Endpoints azure.EndpointPolicy
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger receives one line per change (ids and names, never secrets).
	Logger zerolog.Logger
}

// WithDefaults returns c with zero fields replaced by their defaults.
func (c Config) WithDefaults() Config {
	if c.CleanupTimeout == 0 {
		c.CleanupTimeout = DefaultCleanupTimeout
	}
	if c.CASRetries == 0 {
		c.CASRetries = DefaultCASRetries
	}
	if c.TestTimeout == 0 {
		c.TestTimeout = DefaultTestTimeout
	}
	if c.Azure == (azure.Config{}) {
		c.Azure = azure.Config{Retry: azure.Retry{MaxRetries: 1, RetryDelay: 200 * time.Millisecond, MaxRetryDelay: 2 * time.Second, TryTimeout: 20 * time.Second}}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports the first problem of c after defaults are applied.
func (c Config) Validate() error {
	c = c.WithDefaults()
	switch {
	case c.CleanupTimeout < 0:
		return fmt.Errorf("connections: config: cleanup timeout %s is negative", c.CleanupTimeout)
	case c.CASRetries < 1:
		return fmt.Errorf("connections: config: CAS retries %d must be at least 1", c.CASRetries)
	case c.TestTimeout < 0:
		return fmt.Errorf("connections: config: test timeout %s is negative", c.TestTimeout)
	}
	if err := c.Azure.Validate(); err != nil {
		return fmt.Errorf("connections: config: %w", err)
	}
	return nil
}
