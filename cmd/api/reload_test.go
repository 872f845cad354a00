package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/akvsync/akvsync/internal/auth"
)

// Issue 12, finding 3: SIGHUP reloads the users; a removed user's tokens
// stop working without a restart.
func TestSIGHUPReloadsUsers(t *testing.T) {
	t.Parallel()
	cheap := auth.Argon2Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
	hash := func(pw string) string {
		h, err := auth.HashPasswordWith(pw, cheap)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	path := filepath.Join(t.TempDir(), "users.yaml")
	admin := "  - username: alice\n    password_hash: '" + hash("alice-password-1") + "'\n    role: admin\n"
	bob := "  - username: bob\n    password_hash: '" + hash("bob-password-1") + "'\n    role: viewer\n"
	if err := os.WriteFile(path, []byte("users:\n"+admin+bob), 0o600); err != nil {
		t.Fatal(err)
	}
	key, err := auth.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	svc, err := auth.NewService(auth.Config{SigningKeyID: "k1", Keys: map[string][]byte{"k1": key}, UsersFile: path}, auth.NewMemoryRefreshStore(nil), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tok, err := svc.IssueToken(ctx, auth.TokenRequest{Username: "bob", Password: "bob-password-1"}, "127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("users:\n"+admin), 0o600); err != nil {
		t.Fatal(err)
	}
	sig := make(chan os.Signal, 1)
	go reloadUsersOn(ctx, sig, svc)
	if _, err := svc.Verify(ctx, tok.JWT); err != nil {
		t.Fatalf("before SIGHUP: %v", err)
	}
	sig <- syscall.SIGHUP
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := svc.Verify(ctx, tok.JWT); errors.Is(err, auth.ErrTokenRevoked) {
			break
		}
		select {
		case <-deadline:
			t.Fatal("the removed user's token still verifies after SIGHUP")
		case <-tick.C:
		}
	}
	if _, err := svc.IssueToken(ctx, auth.TokenRequest{GrantType: auth.GrantRefreshToken, RefreshToken: tok.RefreshToken}, "127.0.0.1:1"); !errors.Is(err, auth.ErrTokenRevoked) {
		t.Fatalf("refresh after removal: %v", err)
	}
}
