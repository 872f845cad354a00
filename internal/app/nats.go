package app

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// EmbeddedMaxPayload is the embedded server's message size limit.
const EmbeddedMaxPayload = 8 << 20

// EmbeddedNATSConfig configures the in-process NATS server.
type EmbeddedNATSConfig struct {
	// DataDir holds the JetStream store (in DataDir/nats).
	DataDir string
	// Listen is "host:port" for NATS clients; empty listens nowhere
	// (in-process connections only).
	Listen string
	// User and Password, when set, are required of network clients.
	User, Password string
}

// StartEmbeddedNATS starts an in-process NATS server with JetStream.
func StartEmbeddedNATS(cfg EmbeddedNATSConfig) (*server.Server, error) {
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
