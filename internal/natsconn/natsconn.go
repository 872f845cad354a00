// Package natsconn connects akvsync's processes to NATS: the one set of
// client options every process uses (reconnect forever with a large
// buffer, its role's inbox prefix and credentials), a first connect that
// waits for a cluster still forming, and the in-process server of an
// embedded API.
package natsconn

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/akvsync/akvsync/pkg/events"
	akvsync "github.com/akvsync/akvsync/pkg/sync"
)

// EmbeddedMaxPayload is the embedded server's message size limit.
const EmbeddedMaxPayload = 8 << 20

// EmbeddedConfig configures the in-process NATS server.
type EmbeddedConfig struct {
	// DataDir holds the JetStream store (in DataDir/nats).
	DataDir string
	// Listen is "host:port" for NATS clients; empty listens nowhere
	// (in-process connections only).
	Listen string
	// User and Password, when set, are required of network clients.
	User, Password string
	// TLS, when set, is required of network clients (cmd/ refuses a
	// non-loopback Listen without it).
	TLS *tls.Config
}

// StartEmbedded starts an in-process NATS server with JetStream.
func StartEmbedded(cfg EmbeddedConfig) (*server.Server, error) {
	opts := &server.Options{
		ServerName: "akvsync-embedded",
		JetStream:  true,
		StoreDir:   filepath.Join(cfg.DataDir, "nats"),
		NoSigs:     true,
		NoLog:      true,
		DontListen: cfg.Listen == "",
		// A job record carries every vault's status: 8 MiB messages let
		// one job hold about 16,000 vaults (1 MiB, NATS's default: 2,000).
		MaxPayload: EmbeddedMaxPayload,
		Username:   cfg.User,
		Password:   cfg.Password,
	}
	if cfg.Listen != "" {
		host, port, err := net.SplitHostPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("nats listen %q: %w", cfg.Listen, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("nats listen %q: bad port", cfg.Listen)
		}
		if p == 0 {
			p = server.RANDOM_PORT // as net.Listen does with port 0
		}
		opts.Host, opts.Port = host, p
		if cfg.TLS != nil {
			opts.TLSConfig, opts.TLS, opts.TLSTimeout = cfg.TLS, true, 5
		}
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("embedded nats: not ready after 30s")
	}
	return s, nil
}

// ConnectInProcess connects to an embedded server without a socket. A
// server started with a user and password needs them here too.
func ConnectInProcess(s *server.Server, name string, opts ...nats.Option) (*nats.Conn, error) {
	opts = append([]nats.Option{nats.InProcessServer(s), nats.Name(name), nats.MaxReconnects(-1)}, opts...)
	nc, err := nats.Connect("", opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to embedded nats: %w", err)
	}
	return nc, nil
}

// Client connection defaults of [Connect].
const (
	// ReconnectWait is the pause between two reconnect attempts to the
	// same server (nats.go adds jitter).
	ReconnectWait = time.Second
	// ReconnectBufSize is how many bytes of publishes a client keeps while
	// reconnecting: a vault sync in flight when its server died goes on.
	ReconnectBufSize = 32 << 20
	// ConnectBackoffMax caps the wait between two first-connect attempts.
	ConnectBackoffMax = 5 * time.Second
)

// Auth is how a process authenticates to NATS: a credentials file (user
// JWT and nkey seed), else a user and password, else nothing.
type Auth struct {
	Creds          string
	User, Password string
}

// Options are a process's connection options as role: its inbox prefix
// (each service reads only its own inboxes, docs/security.md) and its
// credentials.
func (a Auth) Options(role events.Role) []nats.Option {
	opts := []nats.Option{nats.CustomInboxPrefix(role.InboxPrefix())}
	switch {
	case a.Creds != "":
		opts = append(opts, nats.UserCredentials(a.Creds))
	case a.User != "":
		opts = append(opts, nats.UserInfo(a.User, a.Password))
	}
	return opts
}

// ClientOptions are the connection options every akvsync process uses
// with an external NATS server or cluster: reconnect forever with a
// large reconnect buffer, and log disconnects and reconnects.
func ClientOptions(name string, log zerolog.Logger) []nats.Option {
	return []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(ReconnectWait),
		nats.ReconnectBufSize(ReconnectBufSize),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn().Err(err).Msg("disconnected from NATS; reconnecting")
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info().Str("server", nc.ConnectedUrlRedacted()).Msg("reconnected to NATS")
		}),
	}
}

// Connect connects to url (comma-separated servers) with opts after
// ClientOptions. While no server answers (a cluster still starting), it
// tries again with a doubling backoff up to ConnectBackoffMax and logs
// each attempt, until ctx ends. A refused credential ends it at once.
func Connect(ctx context.Context, url, name string, log zerolog.Logger, opts ...nats.Option) (*nats.Conn, error) {
	opts = append(ClientOptions(name, log), opts...)
	return connectRetrying(ctx, log, func() (*nats.Conn, error) { return nats.Connect(url, opts...) })
}

func connectRetrying(ctx context.Context, log zerolog.Logger, connect func() (*nats.Conn, error)) (*nats.Conn, error) {
	var nc *nats.Conn
	err := akvsync.Retry(ctx, log, akvsync.RetryPolicy{Initial: 250 * time.Millisecond, Max: ConnectBackoffMax, Budget: -1,
		Retryable: akvsync.WhileForming}, "connect to NATS", func(context.Context) (err error) {
		nc, err = connect()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("connect to NATS: %w", err)
	}
	return nc, nil
}
