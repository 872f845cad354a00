package auth

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// startKV runs an in-process NATS server with JetStream in t.TempDir() and
// returns a fresh KV bucket.
func startKV(t *testing.T) jetstream.KeyValue {
	t.Helper()
	ns, err := server.NewServer(&server.Options{
		Host:      "127.0.0.1",
		Port:      server.RANDOM_PORT,
		JetStream: true,
		StoreDir:  t.TempDir(),
		NoLog:     true,
		NoSigs:    true,
	})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "akvsync-test-refresh", History: 1})
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

// TestRefreshStoreContract runs the same behaviours against every
// RefreshStore implementation.
func TestRefreshStoreContract(t *testing.T) {
	t.Parallel()
	stores := map[string]func(t *testing.T) RefreshStore{
		"memory": func(*testing.T) RefreshStore { return NewMemoryRefreshStore(nil) },
		"nats kv": func(t *testing.T) RefreshStore {
			return NewKVRefreshStore(startKV(t))
		},
	}
	for name, mk := range stores {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s := mk(t)
			exp := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
			recA := RefreshRecord{Username: "alice", Role: RoleAdmin, CredID: "c1", IssuedAt: exp.Add(-time.Hour), ExpiresAt: exp}
			recB := RefreshRecord{Username: "bob", Role: RoleViewer, CredID: "c2", IssuedAt: exp.Add(-time.Hour), ExpiresAt: exp}
			ids := map[string]RefreshRecord{
				RefreshTokenID("a1"): recA, RefreshTokenID("a2"): recA, RefreshTokenID("b1"): recB,
			}
			for id, rec := range ids {
				if err := s.Put(ctx, id, rec); err != nil {
					t.Fatal(err)
				}
			}
			t.Run("get returns what was put", func(t *testing.T) {
				got, err := s.Get(ctx, RefreshTokenID("b1"))
				if err != nil || !got.ExpiresAt.Equal(recB.ExpiresAt) || got.Username != "bob" || got.CredID != "c2" {
					t.Fatalf("got %+v %v", got, err)
				}
			})
			t.Run("unknown id is not found", func(t *testing.T) {
				if _, err := s.Get(ctx, RefreshTokenID("zz")); !errors.Is(err, ErrRefreshNotFound) {
					t.Fatalf("err = %v", err)
				}
				if err := s.Revoke(ctx, RefreshTokenID("zz")); !errors.Is(err, ErrRefreshNotFound) {
					t.Fatalf("err = %v", err)
				}
			})
			t.Run("revoke once", func(t *testing.T) {
				id := RefreshTokenID("a2")
				if err := s.Revoke(ctx, id); err != nil {
					t.Fatal(err)
				}
				if err := s.Revoke(ctx, id); !errors.Is(err, ErrRefreshNotFound) {
					t.Fatalf("second revoke: %v", err)
				}
				if _, err := s.Get(ctx, id); !errors.Is(err, ErrRefreshNotFound) {
					t.Fatalf("get after revoke: %v", err)
				}
			})
			t.Run("concurrent revokes: one winner", func(t *testing.T) {
				id := RefreshTokenID("race")
				if err := s.Put(ctx, id, recA); err != nil {
					t.Fatal(err)
				}
				var wg sync.WaitGroup
				var mu sync.Mutex
				wins := 0
				for range 6 {
					wg.Go(func() {
						err := s.Revoke(ctx, id)
						if err != nil && !errors.Is(err, ErrRefreshNotFound) {
							t.Error(err)
						}
						if err == nil {
							mu.Lock()
							wins++
							mu.Unlock()
						}
					})
				}
				wg.Wait()
				if wins != 1 {
					t.Fatalf("%d winners", wins)
				}
			})
			t.Run("revoke all for user", func(t *testing.T) {
				if err := s.RevokeAllForUser(ctx, "alice"); err != nil {
					t.Fatal(err)
				}
				if _, err := s.Get(ctx, RefreshTokenID("a1")); !errors.Is(err, ErrRefreshNotFound) {
					t.Fatalf("alice's token survived: %v", err)
				}
				if _, err := s.Get(ctx, RefreshTokenID("b1")); err != nil {
					t.Fatalf("bob's token revoked: %v", err)
				}
				if err := s.RevokeAllForUser(ctx, "nobody"); err != nil {
					t.Fatal(err)
				}
			})
		})
	}
}

func TestServiceWithKVRefreshStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	kv := startKV(t)
	// Two API processes sharing one bucket: a token refreshed on one can't
	// be replayed on the other.
	api1 := newTestEnv(t, NewKVRefreshStore(kv))
	api2 := newTestEnv(t, NewKVRefreshStore(kv), withUsersFile(api1.users))
	first := api1.login(t, "oscar", "oscar-password-1")
	second, err := api2.svc.IssueToken(ctx, TokenRequest{GrantType: GrantRefreshToken, RefreshToken: first.RefreshToken}, "192.0.2.1:1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api1.svc.IssueToken(ctx, TokenRequest{GrantType: GrantRefreshToken, RefreshToken: first.RefreshToken}, "192.0.2.1:1"); !errors.Is(err, ErrTokenRevoked) {
		t.Fatalf("replay on the other process: %v", err)
	}
	if err := api1.svc.Revoke(ctx, second.RefreshToken); err != nil {
		t.Fatal(err)
	}
	if _, err := api2.svc.IssueToken(ctx, TokenRequest{GrantType: GrantRefreshToken, RefreshToken: second.RefreshToken}, "192.0.2.1:1"); !errors.Is(err, ErrTokenRevoked) {
		t.Fatalf("revoked token refreshed: %v", err)
	}
	// The bucket holds a hash of the token, never the token itself.
	third := api2.login(t, "alice", "alice-password-1")
	e, err := kv.Get(ctx, "rt."+RefreshTokenID(third.RefreshToken))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(e.Value()), third.RefreshToken) || strings.Contains(e.Key(), third.RefreshToken) {
		t.Fatalf("refresh token stored in clear: %s", e.Value())
	}
}
