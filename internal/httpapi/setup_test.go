package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/akvsync/akvsync/internal/auth"
	"github.com/akvsync/akvsync/internal/azure"
	"github.com/akvsync/akvsync/internal/connections"
	"github.com/akvsync/akvsync/internal/control"
	"github.com/akvsync/akvsync/internal/discovery"
	"github.com/akvsync/akvsync/internal/httpapi"
	"github.com/akvsync/akvsync/internal/natstest"
	"github.com/akvsync/akvsync/internal/schedule"
	"github.com/akvsync/akvsync/internal/secrets"
	"github.com/akvsync/akvsync/internal/tlsconfig"
	"github.com/akvsync/akvsync/pkg/akvemu"
	"github.com/akvsync/akvsync/pkg/events"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

const (
	testConn = "azure-conn"
	testSub  = "11111111-2222-3333-4444-555555555555"
	otherSub = "99999999-8888-7777-6666-555555555555"

	jobsPath   = "/api/v1/cckm/azure/synchronization-jobs"
	vaultsPath = "/api/v1/cckm/azure/vaults"
	addPath    = "/api/v1/cckm/azure/add-vaults"
	keysPath   = "/api/v1/cckm/azure/keys"
	tokensPath = "/api/v1/auth/tokens"
)

// Test users: one per role.
var testUsers = []struct {
	name, password string
	role           auth.Role
}{
	{"alice", "alice-password-1", auth.RoleAdmin},
	{"oscar", "oscar-password-1", auth.RoleOperator},
	{"victor", "victor-password-1", auth.RoleViewer},
}

// env is one test's NATS server, control plane, auth service and API.
type env struct {
	ns    *server.Server
	js    jetstream.JetStream
	plane *control.Plane
	conns *connections.Registry
	// emu is the emulator discovery talks to (options.discovery only).
	emu    *akvemu.Emulator
	srv    *httptest.Server
	clock  *fakeClock
	logs   *syncBuffer
	tokens map[string]string // username → access token
	// auth and authCfg are the API's auth service and its configuration
	// (replica builds another API process on the same NATS server).
	auth    *auth.Service
	authCfg auth.Config
	nc      *nats.Conn
}

// options tune setup.
type options struct {
	http httpapi.Config
	// auth tweaks the auth configuration (e.g. a strict rate limit).
	auth func(*auth.Config)
	// noLogin skips logging in the test users.
	noLogin bool
	// realConnections makes the vault registry resolve connections in the
	// connection registry, as the app does, instead of the fixed testConn.
	realConnections bool
	// discovery starts an emulator (its config modified by emu), registers
	// the connection emuConn to it in the connection registry, which the
	// vault registry then resolves connections against, and serves the
	// discovery routes (configured by disco).
	discovery bool
	emu       func(*akvemu.Config)
	disco     func(*discovery.Config)
	// sharedAuth keeps refresh tokens and the access-token denylist in
	// NATS, as API replicas do.
	sharedAuth bool
}

// setup starts everything a test needs, all real: a JetStream server with
// akvsync's topology, the control plane, the auth service with one user per
// role, and the API on an httptest server.
func setup(t *testing.T, mods ...func(*options)) *env {
	t.Helper()
	var o options
	for _, m := range mods {
		m(&o)
	}
	ns := natstest.RunServer(t, natstest.Options{})
	nc, js := natstest.Connect(t, ns)
	ctx := testCtx(t)
	if err := (events.Topology{Storage: jetstream.MemoryStorage}).EnsureStreams(ctx, js); err != nil {
		t.Fatalf("topology: %v", err)
	}
	connReg := newConnectionRegistry(t, ctx, js)
	ccfg := control.Config{Connections: []string{testConn}, Endpoints: azure.EndpointPolicy{AllowPrivate: true}}
	if o.realConnections || o.discovery {
		ccfg = control.Config{LookupConnection: control.RegistryLookup(connReg), Endpoints: azure.EndpointPolicy{AllowPrivate: true}}
	}
	var emu *akvemu.Emulator
	if o.discovery {
		emu = startEmulator(t, o.emu)
		createEmuConnection(t, ctx, connReg, emu, emuConn, emu.ClientSecret())
	}
	plane, err := control.New(ctx, nc, js, ccfg)
	if err != nil {
		t.Fatalf("control: %v", err)
	}
	clock := &fakeClock{t: time.Now()}
	acfg := auth.Config{
		SigningKeyID: "k1",
		Keys:         map[string][]byte{"k1": bytes.Repeat([]byte{7}, 32)},
		UsersFile:    usersFile(t),
		RateLimit:    1e6, // effectively unlimited
		RateBurst:    1e6,
		Now:          clock.Now,
	}
	if o.auth != nil {
		o.auth(&acfg)
	}
	var store auth.RefreshStore = auth.NewMemoryRefreshStore(clock.Now)
	if o.sharedAuth {
		store, acfg.Revocations = sharedAuthStores(t, ctx, js, clock.Now)
	}
	authSvc, err := auth.NewService(acfg, store, zerolog.Nop())
	if err != nil {
		t.Fatalf("auth: %v", err)
	}
	logs := &syncBuffer{}
	deps := httpapi.DepsFromPlane(plane, authSvc, zerolog.New(logs), prometheus.NewRegistry())
	deps.Connections = connReg
	if deps.Scheduler, err = schedule.New(ctx, js, plane.Jobs, schedule.Config{}); err != nil {
		t.Fatalf("schedule: %v", err)
	}
	ticketKV, err := events.Bucket(ctx, js, events.BucketTickets)
	if err != nil {
		t.Fatal(err)
	}
	if deps.Tickets, err = auth.NewTicketStore(ticketKV, auth.DefaultTicketTTL, clock.Now); err != nil {
		t.Fatal(err)
	}
	if o.discovery {
		dcfg := discovery.Config{Logger: zerolog.New(logs)}
		if o.disco != nil {
			o.disco(&dcfg)
		}
		svc, err := discovery.New(ctx, js, connReg, dcfg)
		if err != nil {
			t.Fatalf("discovery: %v", err)
		}
		deps.Discovery = svc
	}
	handler, err := httpapi.New(o.http, deps)
	if err != nil {
		t.Fatalf("httpapi.New: %v", err)
	}
	// Over HTTPS with the server's real TLS settings, as in production.
	srv := httptest.NewUnstartedServer(handler)
	tlsCfg, _, err := tlsconfig.SelfSigned(nil)
	if err != nil {
		t.Fatal(err)
	}
	srv.TLS = tlsCfg
	srv.StartTLS()
	t.Cleanup(srv.Close)
	e := &env{ns: ns, js: js, plane: plane, conns: connReg, emu: emu, srv: srv, clock: clock, logs: logs, tokens: map[string]string{},
		auth: authSvc, authCfg: acfg, nc: nc}
	if !o.noLogin {
		for _, u := range testUsers {
			e.tokens[u.name] = e.login(t, u.name, u.password)
		}
	}
	return e
}

// newConnectionRegistry opens a connection registry sealing with a fresh
// master key.
func newConnectionRegistry(t *testing.T, ctx context.Context, js jetstream.JetStream) *connections.Registry {
	t.Helper()
	key, err := secrets.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := secrets.NewSealer(secrets.KeyRing{Current: "t1", Keys: map[string][]byte{"t1": key}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sealer.Close() })
	reg, err := connections.New(ctx, js, sealer, connections.Config{Endpoints: azure.EndpointPolicy{AllowPrivate: true}})
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// usersFile writes the test users with cheap argon2id hashes.
func usersFile(t *testing.T) string {
	t.Helper()
	cheap := auth.Argon2Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
	var b strings.Builder
	b.WriteString("users:\n")
	for _, u := range testUsers {
		h, err := auth.HashPasswordWith(u.password, cheap)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "  - username: %s\n    password_hash: %q\n    role: %s\n", u.name, h, u.role)
	}
	path := filepath.Join(t.TempDir(), "users.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// login gets an access token through the token endpoint.
func (e *env) login(t *testing.T, user, password string) string {
	t.Helper()
	r := e.do(t, "POST", tokensPath, "", fmt.Sprintf(`{"username":%q,"password":%q}`, user, password))
	r.wantStatus(t, http.StatusOK)
	var tok auth.TokenResponse
	r.decode(t, &tok)
	if tok.JWT == "" || tok.TokenType != "Bearer" {
		t.Fatalf("token response %s", r.body)
	}
	return tok.JWT
}

// response is a finished HTTP exchange.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request with an optional bearer token and body ("" for none).
func (e *env) do(t *testing.T, method, path, token, body string) response {
	t.Helper()
	status, header, b := httpapi.SendTestRequest(testCtx(t), t, e.srv.Client(), method, e.srv.URL+path, token, body)
	return response{status: status, header: header, body: b}
}

// as sends a request as a test user.
func (e *env) as(t *testing.T, user, method, path, body string) response {
	t.Helper()
	tok, ok := e.tokens[user]
	if !ok {
		t.Fatalf("no token for %s", user)
	}
	return e.do(t, method, path, tok, body)
}

func (r response) wantStatus(t *testing.T, want int) {
	t.Helper()
	if r.status != want {
		t.Fatalf("status %d, want %d; body %s", r.status, want, r.body)
	}
}

func (r response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// wantError checks a CCKM error answer: status, codeDesc prefix and a
// message containing msg.
func (r response) wantError(t *testing.T, status int, codeDesc, msg string) httpapi.APIError {
	t.Helper()
	r.wantStatus(t, status)
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var e httpapi.APIError
	r.decode(t, &e)
	if e.Code == 0 || !strings.HasPrefix(e.CodeDesc, codeDesc) {
		t.Errorf("code %d codeDesc %q, want prefix %q", e.Code, e.CodeDesc, codeDesc)
	}
	if !strings.Contains(e.Message, msg) {
		t.Errorf("message %q does not contain %q", e.Message, msg)
	}
	return e
}

// addVaults registers vaults through the API as the admin.
func (e *env) addVaults(t *testing.T, sub string, names ...string) []httpapi.VaultJSON {
	t.Helper()
	r := e.as(t, "alice", "POST", addPath, addBody(sub, names...))
	r.wantStatus(t, http.StatusCreated)
	var page httpapi.Page[httpapi.VaultJSON]
	r.decode(t, &page)
	return page.Resources
}

// addBody is an add-vaults body.
func addBody(sub string, names ...string) string {
	vs := make([]string, len(names))
	for i, n := range names {
		vs[i] = fmt.Sprintf(`{"name":%q,"azure_vault_id":"/subscriptions/%s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/%s","location":"westeurope","properties":{"vaultUri":"https://%s.vault.azure.net/","sku":{"name":"standard"}},"tags":{"env":"test"}}`, n, sub, n, n)
	}
	return fmt.Sprintf(`{"connection":%q,"subscription_id":%q,"vaults":[%s]}`, testConn, sub, strings.Join(vs, ","))
}

// state counts job records, vault locks and sync requests.
type state struct {
	jobs, locks int
	requests    uint64
}

func (e *env) state(t *testing.T) state {
	t.Helper()
	count := func(bucket string) int {
		kv, err := e.js.KeyValue(testCtx(t), bucket)
		if err != nil {
			t.Fatal(err)
		}
		keys, err := kv.Keys(testCtx(t))
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return 0
		}
		if err != nil {
			t.Fatal(err)
		}
		return httpapi.CountRecords(bucket, keys)
	}
	s, err := e.js.Stream(testCtx(t), events.StreamRequests)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	return state{jobs: count(events.BucketJobs), locks: count(events.BucketLocks), requests: info.State.Msgs}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// fakeClock is the auth service's clock, advanced to expire tokens.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
