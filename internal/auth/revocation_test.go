package auth

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// Issue 12, finding 3: disabling a user in the users file, picked up by
// the file watcher without a restart, ends the user's sessions.
func TestUsersFileChangeEndsSessions(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); env.svc.WatchUsersFile(ctx, 10*time.Millisecond) }()
	defer func() { cancel(); <-done }()

	oscar := env.login(t, "oscar", "oscar-password-1")
	alice := env.login(t, "alice", "alice-password-1")
	data, err := os.ReadFile(env.users)
	if err != nil {
		t.Fatal(err)
	}
	disabled := strings.Replace(string(data), "role: operator\n", "role: operator\n    disabled: true\n", 1)
	if disabled == string(data) {
		t.Fatal("could not disable oscar in the users file")
	}
	if err := os.WriteFile(env.users, []byte(disabled), 0o600); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		_, err := env.svc.Verify(context.Background(), oscar.JWT)
		if errors.Is(err, ErrTokenRevoked) {
			break
		}
		select {
		case <-deadline:
			t.Fatalf("the disabled user's access token still verifies: %v", err)
		case <-tick.C:
		}
	}
	if _, err := env.svc.IssueToken(context.Background(), TokenRequest{GrantType: GrantRefreshToken, RefreshToken: oscar.RefreshToken}, "192.0.2.1:1"); !errors.Is(err, ErrTokenRevoked) {
		t.Fatalf("refresh of a disabled user: %v", err)
	}
	if _, err := env.svc.IssueToken(context.Background(), TokenRequest{Username: "oscar", Password: "oscar-password-1"}, "192.0.2.1:1"); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("login of a disabled user: %v", err)
	}
	if _, err := env.svc.Verify(context.Background(), alice.JWT); err != nil {
		t.Fatalf("another user's session ended: %v", err)
	}
	cancel()
	<-done // the watcher no longer logs
	for _, line := range strings.Split(env.logs.String(), "\n") {
		if strings.Contains(line, "user_sessions_revoked") && strings.Contains(line, "oscar") {
			t.Errorf("the revocation log names the user: %s", line)
		}
	}
}

// The denylist on NATS: a replica started after a revocation loads it, and
// one running receives it.
func TestKVRevocations(t *testing.T) {
	t.Parallel()
	kv := startKV(t)
	ctx := context.Background()
	a, err := NewKVRevocations(ctx, kv, nil, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	until := time.Now().Add(time.Hour)
	if err := a.RevokeAccess(ctx, "jti-1", until); err != nil {
		t.Fatal(err)
	}
	if err := a.RevokeSubject(ctx, "oscar", time.Unix(1000, 0), until); err != nil {
		t.Fatal(err)
	}
	if !a.Revoked("jti-1", "x", 1) || !a.Revoked("other", "oscar", 1000) || a.Revoked("other", "oscar", 1001) {
		t.Fatal("the revoking replica does not honour its own revocations")
	}
	b, err := NewKVRevocations(ctx, kv, nil, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if !b.Revoked("jti-1", "x", 1) || !b.Revoked("other", "oscar", 999) {
		t.Fatal("a replica started later did not load the denylist")
	}
	if err := a.RevokeAccess(ctx, "jti-2", until); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(5 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !b.Revoked("jti-2", "x", 1) {
		select {
		case <-deadline:
			t.Fatal("a running replica did not receive a revocation")
		case <-tick.C:
		}
	}
	if keys, _ := kv.Keys(ctx); strings.Contains(strings.Join(keys, ","), "oscar") {
		t.Errorf("a username is in the bucket: %v", keys)
	}
}

func TestRefreshStoreUseAndFamilies(t *testing.T) {
	t.Parallel()
	for name, s := range map[string]RefreshStore{"memory": NewMemoryRefreshStore(nil), "nats kv": NewKVRefreshStore(startKV(t))} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			exp := time.Now().Add(time.Hour)
			for id, fam := range map[string]string{"a1": "fa", "a2": "fa", "b1": "fb"} {
				if err := s.Put(ctx, id, RefreshRecord{Username: "u", Family: fam, AccessJTI: "j-" + id, ExpiresAt: exp}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := s.Use(ctx, "a1"); err != nil {
				t.Fatal(err)
			}
			if r, err := s.Use(ctx, "a1"); !errors.Is(err, ErrRefreshReused) || r.Family != "fa" {
				t.Fatalf("second use: %+v %v", r, err)
			}
			if _, err := s.Use(ctx, "nope"); !errors.Is(err, ErrRefreshNotFound) {
				t.Fatalf("unknown: %v", err)
			}
			recs, err := s.RevokeFamily(ctx, "fa")
			if err != nil || len(recs) != 2 {
				t.Fatalf("RevokeFamily = %d records, %v", len(recs), err)
			}
			if _, err := s.Get(ctx, "a2"); !errors.Is(err, ErrRefreshNotFound) {
				t.Fatalf("a2 after its family was revoked: %v", err)
			}
			if _, err := s.Get(ctx, "b1"); err != nil {
				t.Fatalf("another family: %v", err)
			}
		})
	}
}
