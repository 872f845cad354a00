package auth

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/time/rate"
)

// cheapArgon2 keeps tests fast; production uses DefaultArgon2Params.
var cheapArgon2 = Argon2Params{Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// fakeClock is an injectable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
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

// testUser is a user of the test users file with its clear-text password.
type testUser struct {
	name, password string
	role           Role
	bcrypt         bool
}

var defaultTestUsers = []testUser{
	{name: "alice", password: "alice-password-1", role: RoleAdmin},
	{name: "oscar", password: "oscar-password-1", role: RoleOperator},
	{name: "victor", password: "victor-password-1", role: RoleViewer},
	{name: "bob", password: "bob-bcrypt-password", role: RoleViewer, bcrypt: true},
}

// writeUsersFile writes users as YAML and returns the path.
func writeUsersFile(t testing.TB, path string, users []testUser) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("users:\n")
	for _, u := range users {
		var h string
		if u.bcrypt {
			hb, err := bcrypt.GenerateFromPassword([]byte(u.password), bcrypt.MinCost)
			if err != nil {
				t.Fatal(err)
			}
			h = string(hb)
		} else {
			var err error
			h, err = HashPasswordWith(u.password, cheapArgon2)
			if err != nil {
				t.Fatal(err)
			}
		}
		b.WriteString("  - username: " + u.name + "\n    password_hash: '" + h + "'\n    role: " + string(u.role) + "\n")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// testKey returns a deterministic 32-byte key.
func testKey(fill byte) []byte { return bytes.Repeat([]byte{fill}, 32) }

type testEnv struct {
	svc   *Service
	clock *fakeClock
	store RefreshStore
	users string
	logs  *bytes.Buffer
}

type envOption func(*Config)

// withUsersFile makes several services share one users file.
func withUsersFile(path string) envOption {
	return func(c *Config) { c.UsersFile = path }
}

func withRate(l rate.Limit, burst int) envOption {
	return func(c *Config) { c.RateLimit, c.RateBurst = l, burst }
}

func newTestEnv(t testing.TB, store RefreshStore, opts ...envOption) *testEnv {
	t.Helper()
	clock := newFakeClock()
	if store == nil {
		store = NewMemoryRefreshStore(clock.Now)
	}
	cfg := Config{
		Issuer:       "akvsync-test",
		SigningKeyID: "k1",
		Keys:         map[string][]byte{"k1": testKey(1)},
		RateLimit:    rate.Inf,
		Now:          clock.Now,
	}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.UsersFile == "" {
		cfg.UsersFile = writeUsersFile(t, filepath.Join(t.TempDir(), "users.yaml"), defaultTestUsers)
	}
	path := cfg.UsersFile
	logs := &bytes.Buffer{}
	svc, err := NewService(cfg, store, zerolog.New(&syncWriter{w: logs}))
	if err != nil {
		t.Fatal(err)
	}
	return &testEnv{svc: svc, clock: clock, store: store, users: path, logs: logs}
}

// login runs a password grant and fails the test on error.
func (e *testEnv) login(t testing.TB, user, pw string) TokenResponse {
	t.Helper()
	resp, err := e.svc.IssueToken(context.Background(), TokenRequest{Username: user, Password: pw}, "192.0.2.1:5555")
	if err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	return resp
}

// syncWriter serializes writes to a buffer shared by goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func hmacSHA256(key []byte, s string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(s))
	return m.Sum(nil)
}

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o600) }
