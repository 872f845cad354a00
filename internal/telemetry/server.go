package telemetry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/akvsync/akvsync/internal/tlsconfig"
)

// Defaults of [Config].
const (
	// DefaultReadyTimeout bounds the readiness check behind /readyz.
	DefaultReadyTimeout = 2 * time.Second
	// DefaultReadHeaderTimeout bounds reading a request's headers.
	DefaultReadHeaderTimeout = 5 * time.Second
	// DefaultWriteTimeout bounds answering one request.
	DefaultWriteTimeout = 30 * time.Second
)

// ErrNotLoopback is returned for a metrics address that is not loopback
// when remote scrapes were not allowed.
var ErrNotLoopback = errors.New("the metrics listener serves plain HTTP without authentication: a non-loopback address needs --metrics-public")

// Config configures the telemetry HTTP server.
type Config struct {
	// Listen is the host:port to serve on.
	Listen string
	// Public allows a non-loopback Listen address.
	Public bool
	// ReadyTimeout bounds the readiness check (DefaultReadyTimeout).
	ReadyTimeout time.Duration
}

// WithDefaults returns c with zero fields replaced by their defaults.
func (c Config) WithDefaults() Config {
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = DefaultReadyTimeout
	}
	return c
}

// Validate reports an unusable configuration.
func (c Config) Validate() error {
	c = c.WithDefaults()
	if c.ReadyTimeout < 0 {
		return errors.New("telemetry: negative ready timeout")
	}
	if err := tlsconfig.CheckListen(c.Listen, false, c.Public); err != nil {
		if errors.Is(err, tlsconfig.ErrPlainHTTPNotLoopback) {
			return fmt.Errorf("telemetry: listen %q: %w", c.Listen, ErrNotLoopback)
		}
		return fmt.Errorf("telemetry: %w", err)
	}
	return nil
}

// Handler serves GET /metrics (what reg gathers), /healthz (200 while the
// process runs) and /readyz (200 when ready reports nil, else 503 with
// the reason). None of them needs authentication: keep the listener on
// loopback or a private network.
func Handler(reg *prometheus.Registry, ready func(ctx context.Context) error, readyTimeout time.Duration) http.Handler {
	if readyTimeout <= 0 {
		readyTimeout = DefaultReadyTimeout
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeStatus(w, http.StatusOK, "ok", "")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		if err := ready(ctx); err != nil {
			writeStatus(w, http.StatusServiceUnavailable, "unavailable", err.Error())
			return
		}
		writeStatus(w, http.StatusOK, "ready", "")
	})
	return mux
}

func writeStatus(w http.ResponseWriter, code int, status, reason string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(struct {
		Status string `json:"status"`
		Reason string `json:"reason,omitempty"`
	}{status, reason})
}

// Server is a running telemetry server.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	done chan error
}

// Listen binds cfg.Listen and serves h on it until Close.
func Listen(cfg Config, h http.Handler, log zerolog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	s := &Server{ln: ln, done: make(chan error, 1), srv: &http.Server{Handler: h,
		ReadHeaderTimeout: DefaultReadHeaderTimeout, WriteTimeout: DefaultWriteTimeout}}
	go func() { s.done <- s.srv.Serve(ln) }()
	log.Info().Str("addr", ln.Addr().String()).Msg("serving /metrics, /healthz and /readyz")
	return s, nil
}

// Close stops the server, letting requests in flight finish for a while.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if serr := <-s.done; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}
