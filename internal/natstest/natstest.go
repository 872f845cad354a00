// Package natstest starts real in-process NATS servers with JetStream for
// tests, in the spirit of net/http/httptest.
package natstest

import (
	"errors"
	"fmt"
	"net"
	"strings"
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

// RunCluster starts an in-process JetStream cluster of n servers (routes
// between all of them, stores in t.TempDir()) and waits until it has a
// JetStream meta leader. Servers are stopped when the test ends; a test
// may stop one earlier (Shutdown) to kill a node.
func RunCluster(t testing.TB, n int) []*server.Server {
	t.Helper()
	ports := make([]int, n)
	routes := make([]string, n)
	for i := range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("natstest: cluster port: %v", err)
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		routes[i] = fmt.Sprintf("nats://127.0.0.1:%d", ports[i])
	}
	servers := make([]*server.Server, n)
	for i := range n {
		s, err := server.NewServer(&server.Options{
			ServerName: fmt.Sprintf("node-%d", i),
			Host:       "127.0.0.1",
			Port:       server.RANDOM_PORT,
			JetStream:  true,
			StoreDir:   t.TempDir(),
			NoLog:      true,
			NoSigs:     true,
			Cluster:    server.ClusterOpts{Name: "natstest", Host: "127.0.0.1", Port: ports[i]},
			Routes:     server.RoutesFromStr(strings.Join(routes, ",")),
		})
		if err != nil {
			t.Fatalf("natstest: new cluster server: %v", err)
		}
		s.Start()
		servers[i] = s
		t.Cleanup(func() {
			s.Shutdown()
			s.WaitForShutdown()
		})
	}
	for _, s := range servers {
		if !s.ReadyForConnections(10 * time.Second) {
			t.Fatal("natstest: cluster server not ready in 10s")
		}
	}
	// Ready when some server leads the meta group and sees every peer
	// current: before that, placing an R3 asset fails ("peer offline").
	CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		for _, s := range servers {
			if !s.JetStreamIsLeader() {
				continue
			}
			jsz, err := s.Jsz(&server.JSzOptions{})
			if err != nil || jsz.Meta == nil {
				return fmt.Errorf("meta info: %v", err)
			}
			if len(jsz.Meta.Replicas) != n-1 {
				return fmt.Errorf("meta leader sees %d of %d peers", len(jsz.Meta.Replicas), n-1)
			}
			for _, p := range jsz.Meta.Replicas {
				if !p.Current || p.Offline {
					return fmt.Errorf("peer %s not current", p.Name)
				}
			}
			return nil
		}
		return errors.New("no JetStream meta leader yet")
	})
	return servers
}

// ClusterURLs is the client URLs of servers, comma-separated, for a
// connection that fails over between them.
func ClusterURLs(servers []*server.Server) string {
	urls := make([]string, len(servers))
	for i, s := range servers {
		urls[i] = s.ClientURL()
	}
	return strings.Join(urls, ",")
}

// ConnectURL connects to url (one or more comma-separated server URLs)
// and closes the connection when the test ends.
func ConnectURL(t testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
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
