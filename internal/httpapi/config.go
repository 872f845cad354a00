package httpapi

import (
	"fmt"
	"net/http"
	"time"
)

// Defaults of [Config].
const (
	// DefaultMaxBodyBytes bounds a request body (413 beyond).
	DefaultMaxBodyBytes = 1 << 20
	// DefaultReadHeaderTimeout bounds reading a request's headers.
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultReadTimeout bounds reading a whole request.
	DefaultReadTimeout = 30 * time.Second
	// DefaultWriteTimeout bounds handling a request and writing the
	// response.
	DefaultWriteTimeout = 60 * time.Second
	// DefaultIdleTimeout bounds an idle keep-alive connection.
	DefaultIdleTimeout = 120 * time.Second
	// DefaultMaxHeaderBytes bounds the request headers.
	DefaultMaxHeaderBytes = 64 << 10
	// HeaderHardLimitFactor multiplies MaxHeaderBytes into the
	// http.Server's limit, above which the server itself refuses the
	// request (before the API can answer in CCKM's shape).
	HeaderHardLimitFactor = 4
	// DefaultReadyTimeout bounds the readiness check of /readyz.
	DefaultReadyTimeout = 2 * time.Second
	// MaxRequestIDLen bounds an incoming X-Request-Id that is reused.
	MaxRequestIDLen = 128
)

// Config configures the HTTP layer. Zero fields take the defaults above;
// [Config.Validate] reports what is wrong.
type Config struct {
	// MaxBodyBytes bounds request bodies. Default [DefaultMaxBodyBytes].
	MaxBodyBytes int64
	// ReadHeaderTimeout, ReadTimeout, WriteTimeout and IdleTimeout are the
	// http.Server timeouts. Defaults [DefaultReadHeaderTimeout],
	// [DefaultReadTimeout], [DefaultWriteTimeout], [DefaultIdleTimeout].
	ReadHeaderTimeout time.Duration
	// ReadTimeout: see ReadHeaderTimeout.
	ReadTimeout time.Duration
	// WriteTimeout: see ReadHeaderTimeout.
	WriteTimeout time.Duration
	// IdleTimeout: see ReadHeaderTimeout.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds the request line and headers: the API answers
	// a larger request 431 in CCKM's error shape. The http.Server's own
	// limit ([HeaderHardLimitFactor] times it) answers Go's plain 431
	// beyond that. Default [DefaultMaxHeaderBytes].
	MaxHeaderBytes int
	// ReadyTimeout bounds the check behind /readyz. Default
	// [DefaultReadyTimeout].
	ReadyTimeout time.Duration
	// SSEMaxDuration, when positive, ends each event stream after this
	// long; clients reconnect and resume after their last event (to any
	// replica, which spreads the streams again after a scale-out). 0 (the
	// default) keeps a stream open as long as its client.
	SSEMaxDuration time.Duration
}

// WithDefaults returns c with zero fields replaced by their defaults.
func (c Config) WithDefaults() Config {
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.ReadHeaderTimeout == 0 {
		c.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = DefaultReadyTimeout
	}
	return c
}

// Validate reports the first problem of c after defaults are applied.
func (c Config) Validate() error {
	c = c.WithDefaults()
	switch {
	case c.MaxBodyBytes < 1024:
		return fmt.Errorf("httpapi: config: max body bytes %d must be at least 1024", c.MaxBodyBytes)
	case c.SSEMaxDuration < 0 || c.SSEMaxDuration > 0 && c.SSEMaxDuration < time.Second:
		return fmt.Errorf("httpapi: config: event stream max duration %s must be 0 or at least 1s", c.SSEMaxDuration)
	case c.ReadHeaderTimeout < 0 || c.ReadTimeout < 0 || c.WriteTimeout < 0 || c.IdleTimeout < 0 || c.ReadyTimeout < 0:
		return fmt.Errorf("httpapi: config: timeouts must not be negative")
	case c.ReadHeaderTimeout > c.ReadTimeout:
		return fmt.Errorf("httpapi: config: read header timeout %s exceeds read timeout %s", c.ReadHeaderTimeout, c.ReadTimeout)
	case c.MaxHeaderBytes < 4096:
		return fmt.Errorf("httpapi: config: max header bytes %d must be at least 4096", c.MaxHeaderBytes)
	}
	return nil
}

// NewServer returns an http.Server serving handler with cfg's timeouts and
// header limit. The caller sets Addr (and TLSConfig) and starts it.
func NewServer(cfg Config, handler http.Handler) *http.Server {
	cfg = cfg.WithDefaults()
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    HeaderHardLimitFactor * cfg.MaxHeaderBytes,
	}
}
