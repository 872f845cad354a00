package discovery

import (
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/akvsync/akvsync/internal/arm"
	"github.com/akvsync/akvsync/internal/azure"
)

// Defaults of [Config].
const (
	// DefaultRequestTimeout bounds one discovery call, Azure's retries
	// and Retry-After waits included (the HTTP server's write timeout is
	// 60 s).
	DefaultRequestTimeout = 40 * time.Second
	// DefaultLimit is the page size of get-vaults without a limit (CCKM's).
	DefaultLimit = 10
	// MaxLimit is the largest page size of get-vaults (CCKM's).
	MaxLimit = arm.MaxTop
	// DefaultStoreConcurrency bounds the concurrent bucket writes of one
	// get-subscriptions.
	DefaultStoreConcurrency = 16
	// DefaultCASRetries bounds compare-and-set attempts of one upsert.
	DefaultCASRetries = 5
	// MaxListLimit bounds a page of the stored subscriptions.
	MaxListLimit = 1000
	// MaxFieldLen bounds a string field of a request (connection,
	// subscription_id).
	MaxFieldLen = 1024
)

// Config configures a [Service]. Zero fields take the defaults above.
type Config struct {
	// RequestTimeout bounds one discovery call.
	RequestTimeout time.Duration
	// ARM tunes the Resource Manager client (retries, subscriptions cap).
	ARM arm.Config
	// Azure tunes the connections' transports (connection pool, dial and
	// TLS timeouts); its retry settings are replaced by ARM's per call.
	Azure azure.Config
	// StoreConcurrency bounds concurrent bucket writes.
	StoreConcurrency int
	// CASRetries bounds compare-and-set attempts.
	CASRetries int
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger receives one line per discovery (connection and counts,
	// never a secret).
	Logger zerolog.Logger
}

// WithDefaults returns c with zero fields replaced by their defaults.
func (c Config) WithDefaults() Config {
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	c.ARM = c.ARM.WithDefaults()
	if c.StoreConcurrency == 0 {
		c.StoreConcurrency = DefaultStoreConcurrency
	}
	if c.CASRetries == 0 {
		c.CASRetries = DefaultCASRetries
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
	case c.RequestTimeout < time.Second:
		return fmt.Errorf("discovery: config: request timeout %s must be at least 1s", c.RequestTimeout)
	case c.StoreConcurrency < 1:
		return fmt.Errorf("discovery: config: store concurrency %d must be at least 1", c.StoreConcurrency)
	case c.CASRetries < 1:
		return fmt.Errorf("discovery: config: CAS retries %d must be at least 1", c.CASRetries)
	}
	if err := c.ARM.Validate(); err != nil {
		return fmt.Errorf("discovery: config: %w", err)
	}
	if err := c.Azure.Validate(); err != nil {
		return fmt.Errorf("discovery: config: %w", err)
	}
	return nil
}
