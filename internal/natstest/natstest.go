// Package natstest starts real in-process NATS servers with JetStream for
// tests, in the spirit of net/http/httptest.
package natstest

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/akvsync/akvsync/pkg/events"
)

// Options tune RunServer. The zero value starts a JetStream server on a
// random loopback port with its store in t.TempDir().
type Options struct {
	// StoreDir is the JetStream store directory; empty means t.TempDir().
	StoreDir string
	// Port is the client port; 0 means a random free port.
	Port int
	// MaxPayload is the message size limit; 0 means NATS's default (1 MiB).
	MaxPayload int32
	// Users, when set, are the only accepted clients: each role's user
	// (events.Role.User) with the given password and the role's
	// permissions (events.Role.Permissions), as deploy/nats ships them.
	Users map[events.Role]string
}

// serverUsers turns akvsync's roles into nats-server users.
func serverUsers(users map[events.Role]string) []*server.User {
	var out []*server.User
	for role, password := range users {
		p := role.Permissions()
		perms := &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: p.Publish.Allow, Deny: p.Publish.Deny},
			Subscribe: &server.SubjectPermission{Allow: p.Subscribe.Allow, Deny: p.Subscribe.Deny},
		}
		if p.AllowResponses {
			perms.Response = &server.ResponsePermission{MaxMsgs: server.DEFAULT_ALLOW_RESPONSE_MAX_MSGS, Expires: server.DEFAULT_ALLOW_RESPONSE_EXPIRATION}
		}
		out = append(out, &server.User{Username: role.User(), Password: password, Permissions: perms})
	}
	return out
}

// RunServer starts an in-process NATS server with JetStream and stops it
// when the test ends.
func RunServer(t testing.TB, o Options) *server.Server {
	t.Helper()
	if o.StoreDir == "" {
		o.StoreDir = t.TempDir()
	}
	if o.Port == 0 {
		o.Port = server.RANDOM_PORT
	}
	s, err := server.NewServer(&server.Options{
		Host:       "127.0.0.1",
		Port:       o.Port,
		JetStream:  true,
		StoreDir:   o.StoreDir,
		NoLog:      true,
		NoSigs:     true,
		MaxPayload: o.MaxPayload,
		Users:      serverUsers(o.Users),
	})
	if err != nil {
		t.Fatalf("natstest: new server: %v", err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		t.Fatal("natstest: server not ready in 10s")
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// Connect connects to s and closes the connection when the test ends.
func Connect(t testing.TB, s *server.Server) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatalf("natstest: connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("natstest: jetstream: %v", err)
	}
	return nc, js
}

// ConnectAs connects to s as role's user with its inbox prefix, as the
// services do, and closes the connection when the test ends.
func ConnectAs(t testing.TB, s *server.Server, role events.Role, password string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	opts = append([]nats.Option{nats.MaxReconnects(-1), nats.UserInfo(role.User(), password),
		nats.CustomInboxPrefix(role.InboxPrefix())}, opts...)
	nc, err := nats.Connect(s.ClientURL(), opts...)
	if err != nil {
		t.Fatalf("natstest: connect as %s: %v", role.User(), err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("natstest: jetstream: %v", err)
	}
	return nc, js
}

// CheckFor calls f until it returns nil or timeout passes, then fails the
// test with f's last error. It polls every interval.
func CheckFor(t testing.TB, timeout, interval time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for {
		if err = f(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %s: %v", timeout, err)
		}
		<-time.After(interval)
	}
}
