package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestPasswordGrant(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, nil)
	tests := []struct {
		name      string
		req       TokenRequest
		wantErr   error
		wantRole  Role
		wantIssue bool
	}{
		{name: "argon2id user with password grant", req: TokenRequest{GrantType: "password", Username: "alice", Password: "alice-password-1"}, wantRole: RoleAdmin},
		{name: "missing grant_type means password grant", req: TokenRequest{Username: "oscar", Password: "oscar-password-1"}, wantRole: RoleOperator},
		{name: "bcrypt user", req: TokenRequest{Username: "bob", Password: "bob-bcrypt-password"}, wantRole: RoleViewer},
		{name: "wrong password", req: TokenRequest{Username: "alice", Password: "nope"}, wantErr: ErrInvalidCredentials},
		{name: "unknown user gets the same error", req: TokenRequest{Username: "mallory", Password: "alice-password-1"}, wantErr: ErrInvalidCredentials},
		{name: "username is case sensitive", req: TokenRequest{Username: "Alice", Password: "alice-password-1"}, wantErr: ErrInvalidCredentials},
		{name: "missing password is a bad request", req: TokenRequest{Username: "alice"}, wantErr: ErrBadRequest},
		{name: "unknown grant type", req: TokenRequest{GrantType: "client_credentials", Username: "alice", Password: "x"}, wantErr: ErrBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := env.svc.IssueToken(context.Background(), tt.req, "192.0.2.7:1234")
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if resp.TokenType != "Bearer" || resp.Duration != 300 || resp.RefreshToken == "" || resp.JWT == "" {
				t.Fatalf("unexpected response %+v", resp)
			}
			p, err := env.svc.Verify(context.Background(), resp.JWT)
			if err != nil {
				t.Fatal(err)
			}
			if p.Username != tt.req.Username || p.Role != tt.wantRole {
				t.Fatalf("principal = %+v", p)
			}
		})
	}
}

func TestTokenResponseJSONShape(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, nil)
	resp := env.login(t, "alice", "alice-password-1")
	b, err := json.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"jwt", "duration", "token_type", "refresh_token"} {
		if _, ok := m[k]; !ok {
			t.Errorf("response lacks %q: %s", k, b)
		}
	}
	if len(m) != 4 {
		t.Errorf("response has extra fields: %s", b)
	}
}

func TestJWTClaims(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, nil)
	resp := env.login(t, "oscar", "oscar-password-1")
	h, c := decodeParts(t, resp.JWT)
	if h["alg"] != "HS256" || h["kid"] != "k1" || h["typ"] != "JWT" {
		t.Errorf("header = %v", h)
	}
	now := env.clock.Now().Unix()
	want := map[string]any{"sub": "oscar", "role": "operator", "iss": "akvsync-test",
		"iat": float64(now), "nbf": float64(now), "exp": float64(now + 300)}
	for k, v := range want {
		if c[k] != v {
			t.Errorf("claim %s = %v, want %v", k, c[k], v)
		}
	}
	if s, _ := c["jti"].(string); len(s) != 36 {
		t.Errorf("jti = %v", c["jti"])
	}
}

func TestVerifyRejects(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, nil)
	good := env.login(t, "victor", "victor-password-1").JWT
	h, c := decodeParts(t, good)
	sig := strings.Split(good, ".")[2]

	// A token signed by us, but issued in the future (nbf/iat = now+1h).
	env.clock.Advance(time.Hour)
	future := env.login(t, "victor", "victor-password-1").JWT
	env.clock.Advance(-time.Hour)

	tests := []struct {
		name    string
		token   string
		advance time.Duration
		want    error
	}{
		{name: "valid token is accepted", token: good, want: nil},
		{name: "valid within clock skew after exp", token: good, advance: 5*time.Minute + 20*time.Second, want: nil},
		{name: "expired", token: good, advance: 5*time.Minute + 31*time.Second, want: ErrTokenExpired},
		{name: "not yet valid", token: future, want: ErrTokenNotYetValid},
		{name: "alg none without signature", token: encodeParts(t, with(h, "alg", "none"), c, ""), want: ErrTokenAlgorithm},
		{name: "alg none with original signature", token: encodeParts(t, with(h, "alg", "none"), c, sig), want: ErrTokenAlgorithm},
		{name: "alg RS256", token: encodeParts(t, with(h, "alg", "RS256"), c, sig), want: ErrTokenAlgorithm},
		{name: "alg lower-case hs256", token: encodeParts(t, with(h, "alg", "hs256"), c, sig), want: ErrTokenAlgorithm},
		{name: "unknown kid", token: encodeParts(t, with(h, "kid", "k9"), c, sig), want: ErrTokenUnknownKey},
		{name: "missing kid", token: encodeParts(t, without(h, "kid"), c, sig), want: ErrTokenUnknownKey},
		{name: "tampered role", token: encodeParts(t, h, with(c, "role", "admin"), sig), want: ErrTokenSignature},
		{name: "tampered exp", token: encodeParts(t, h, with(c, "exp", c["exp"].(float64)+3600), sig), want: ErrTokenSignature},
		{name: "signature of another key", token: resign(t, h, c, testKey(2)), want: ErrTokenSignature},
		{name: "wrong issuer even when signed by us", token: resign(t, h, with(c, "iss", "someone-else"), testKey(1)), want: ErrTokenIssuer},
		{name: "extra header member", token: resign(t, with(h, "jku", "http://evil"), c, testKey(1)), want: ErrTokenMalformed},
		{name: "missing sub", token: resign(t, h, without(c, "sub"), testKey(1)), want: ErrTokenMalformed},
		{name: "unknown role", token: resign(t, h, with(c, "role", "root"), testKey(1)), want: ErrTokenMalformed},
		{name: "two parts", token: strings.Join(strings.Split(good, ".")[:2], "."), want: ErrTokenMalformed},
		{name: "four parts", token: good + ".x", want: ErrTokenMalformed},
		{name: "empty", token: "", want: ErrTokenMalformed},
		{name: "padded base64", token: good + "=", want: ErrTokenMalformed},
		{name: "newline inside the signature", token: good[:len(good)-5] + "\n" + good[len(good)-5:], want: ErrTokenMalformed},
		{name: "carriage return inside the payload", token: strings.Replace(good, ".", ".\r", 1), want: ErrTokenMalformed},
		{name: "truncated signature", token: good[:len(good)-2], want: ErrTokenMalformed},
		{name: "header not json", token: b64.EncodeToString([]byte("nope")) + "." + strings.SplitN(good, ".", 2)[1], want: ErrTokenMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env.clock.Advance(tt.advance)
			defer env.clock.Advance(-tt.advance)
			p, err := env.svc.Verify(context.Background(), tt.token)
			if tt.want == nil {
				if err != nil || p.Username != "victor" {
					t.Fatalf("Verify = %+v, %v", p, err)
				}
				return
			}
			if !errors.Is(err, tt.want) || !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if p != (Principal{}) {
				t.Fatalf("principal %+v returned with error", p)
			}
		})
	}
}

func TestUnauthorizedMessageSaysWhy(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, nil)
	tok := env.login(t, "victor", "victor-password-1").JWT
	env.clock.Advance(time.Hour)
	_, err := env.svc.Verify(context.Background(), tok)
	if got, want := UnauthorizedMessage(err), "Unauthorized: Bearer token malformed: Token is expired"; got != want {
		t.Fatalf("message = %q, want %q", got, want)
	}
	if !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("err = %v, want ErrInvalidToken", err)
	}
}

func TestSigningKeyRotation(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, nil)
	old := env.login(t, "alice", "alice-password-1").JWT

	// Step 1: the new key is added and becomes the signing key; the old key
	// still verifies.
	if err := env.svc.RotateKeys("k2", map[string][]byte{"k1": testKey(1), "k2": testKey(2)}); err != nil {
		t.Fatal(err)
	}
	fresh := env.login(t, "alice", "alice-password-1").JWT
	if h, _ := decodeParts(t, fresh); h["kid"] != "k2" {
		t.Fatalf("new token kid = %v, want k2", h["kid"])
	}
	for name, tok := range map[string]string{"old": old, "new": fresh} {
		if _, err := env.svc.Verify(context.Background(), tok); err != nil {
			t.Fatalf("%s token rejected during rotation: %v", name, err)
		}
	}

	// Step 2: the old key is retired; its tokens are refused.
	if err := env.svc.RotateKeys("k2", map[string][]byte{"k2": testKey(2)}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.svc.Verify(context.Background(), old); !errors.Is(err, ErrTokenUnknownKey) {
		t.Fatalf("old token after retirement: %v", err)
	}
	if _, err := env.svc.Verify(context.Background(), fresh); err != nil {
		t.Fatal(err)
	}

	if err := env.svc.RotateKeys("k3", map[string][]byte{"k2": testKey(2)}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("signing kid outside the ring accepted: %v", err)
	}
	if err := env.svc.RotateKeys("k3", map[string][]byte{"k3": []byte("short")}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("short key accepted: %v", err)
	}
}

func TestRefreshGrant(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	refresh := func(env *testEnv, rt string) (TokenResponse, error) {
		return env.svc.IssueToken(ctx, TokenRequest{GrantType: GrantRefreshToken, RefreshToken: rt}, "192.0.2.1:1")
	}

	t.Run("rotates the refresh token on use", func(t *testing.T) {
		env := newTestEnv(t, nil)
		first := env.login(t, "oscar", "oscar-password-1")
		second, err := refresh(env, first.RefreshToken)
		if err != nil {
			t.Fatal(err)
		}
		if second.RefreshToken == first.RefreshToken || second.JWT == first.JWT {
			t.Fatal("refresh did not rotate the tokens")
		}
		p, err := env.svc.Verify(ctx, second.JWT)
		if err != nil || p != (Principal{Username: "oscar", Role: RoleOperator}) {
			t.Fatalf("Verify = %+v, %v", p, err)
		}
		third, err := refresh(env, second.RefreshToken)
		if err != nil {
			t.Fatalf("rotated refresh token refused: %v", err)
		}
		// Issue 12, finding 3: a replay revokes the whole family, and
		// the access tokens issued with it.
		if _, err := refresh(env, first.RefreshToken); !errors.Is(err, ErrTokenRevoked) {
			t.Fatalf("reuse of a rotated refresh token: %v", err)
		}
		if _, err := refresh(env, third.RefreshToken); !errors.Is(err, ErrTokenRevoked) {
			t.Fatalf("the family's live refresh token after a replay: %v", err)
		}
		if _, err := env.svc.Verify(ctx, third.JWT); !errors.Is(err, ErrTokenRevoked) {
			t.Fatalf("the family's access token after a replay: %v", err)
		}
		if !strings.Contains(env.logs.String(), "refresh_replayed") {
			t.Error("a replay is not logged")
		}
	})

	t.Run("logout revokes the whole family and its access tokens", func(t *testing.T) {
		env := newTestEnv(t, nil)
		first := env.login(t, "oscar", "oscar-password-1")
		other := env.login(t, "oscar", "oscar-password-1") // another session
		second, err := refresh(env, first.RefreshToken)
		if err != nil {
			t.Fatal(err)
		}
		if err := env.svc.Revoke(ctx, second.RefreshToken); err != nil {
			t.Fatal(err)
		}
		for _, jwt := range []string{first.JWT, second.JWT} {
			if _, err := env.svc.Verify(ctx, jwt); !errors.Is(err, ErrTokenRevoked) {
				t.Fatalf("access token of the logged-out session: %v", err)
			}
		}
		if _, err := refresh(env, second.RefreshToken); !errors.Is(err, ErrTokenRevoked) {
			t.Fatalf("refresh after logout: %v", err)
		}
		if _, err := env.svc.Verify(ctx, other.JWT); err != nil {
			t.Fatalf("another session of the user ended: %v", err)
		}
		if _, err := refresh(env, other.RefreshToken); err != nil {
			t.Fatalf("another session of the user ended: %v", err)
		}
	})

	t.Run("revoked refresh token is refused", func(t *testing.T) {
		env := newTestEnv(t, nil)
		rt := env.login(t, "oscar", "oscar-password-1").RefreshToken
		if err := env.svc.Revoke(ctx, rt); err != nil {
			t.Fatal(err)
		}
		if err := env.svc.Revoke(ctx, rt); err != nil {
			t.Fatalf("second revoke: %v", err)
		}
		if _, err := refresh(env, rt); !errors.Is(err, ErrTokenRevoked) {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("revoke all sessions of a user", func(t *testing.T) {
		env := newTestEnv(t, nil)
		a := env.login(t, "oscar", "oscar-password-1").RefreshToken
		b := env.login(t, "oscar", "oscar-password-1").RefreshToken
		other := env.login(t, "alice", "alice-password-1").RefreshToken
		if err := env.svc.RevokeUser(ctx, "oscar"); err != nil {
			t.Fatal(err)
		}
		for _, rt := range []string{a, b} {
			if _, err := refresh(env, rt); !errors.Is(err, ErrTokenRevoked) {
				t.Fatalf("err = %v", err)
			}
		}
		if _, err := refresh(env, other); err != nil {
			t.Fatalf("other user's session was revoked: %v", err)
		}
	})

	t.Run("expired refresh token is refused", func(t *testing.T) {
		env := newTestEnv(t, nil)
		rt := env.login(t, "oscar", "oscar-password-1").RefreshToken
		env.clock.Advance(DefaultRefreshLifetime + time.Second)
		if _, err := refresh(env, rt); !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("unknown refresh token is refused", func(t *testing.T) {
		env := newTestEnv(t, nil)
		if _, err := refresh(env, "bm90LWEtdG9rZW4"); !errors.Is(err, ErrTokenRevoked) {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("concurrent use of one refresh token: exactly one wins", func(t *testing.T) {
		env := newTestEnv(t, nil)
		rt := env.login(t, "oscar", "oscar-password-1").RefreshToken
		const n = 8
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for range n {
			wg.Go(func() {
				_, err := refresh(env, rt)
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		ok := 0
		for err := range errs {
			if err == nil {
				ok++
			} else if !errors.Is(err, ErrTokenRevoked) {
				t.Errorf("unexpected error %v", err)
			}
		}
		if ok != 1 {
			t.Fatalf("%d refreshes succeeded, want 1", ok)
		}
	})
}

func TestUserChanges(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	changed := func(users []testUser, name string, f func(*testUser) bool) []testUser {
		var out []testUser
		for _, u := range users {
			if u.name == name && !f(&u) {
				continue
			}
			out = append(out, u)
		}
		return out
	}
	tests := []struct {
		name     string
		users    []testUser
		newRole  Role // expected role after logging in again; "" = cannot
		password string
	}{
		{
			name:     "role change ends refresh and access tokens",
			users:    changed(defaultTestUsers, "oscar", func(u *testUser) bool { u.role = RoleViewer; return true }),
			newRole:  RoleViewer,
			password: "oscar-password-1",
		},
		{
			name:  "removed user can neither refresh nor use access tokens",
			users: changed(defaultTestUsers, "oscar", func(*testUser) bool { return false }),
		},
		{
			name:     "password change ends refresh and access tokens",
			users:    changed(defaultTestUsers, "oscar", func(u *testUser) bool { u.password = "new-password-2"; return true }),
			newRole:  RoleOperator,
			password: "new-password-2",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t, nil)
			resp := env.login(t, "oscar", "oscar-password-1")
			writeUsersFile(t, env.users, tt.users)
			if err := env.svc.ReloadUsers(ctx); err != nil {
				t.Fatal(err)
			}
			_, err := env.svc.IssueToken(ctx, TokenRequest{GrantType: GrantRefreshToken, RefreshToken: resp.RefreshToken}, "192.0.2.1:1")
			if !errors.Is(err, ErrTokenRevoked) {
				t.Fatalf("refresh after change: %v", err)
			}
			// Issue 12, finding 3: every change ends the access tokens too.
			if _, verr := env.svc.Verify(ctx, resp.JWT); !errors.Is(verr, ErrTokenRevoked) {
				t.Fatalf("access token after change: %v", verr)
			}
			if tt.newRole == "" {
				if _, err := env.svc.IssueToken(ctx, TokenRequest{Username: "oscar", Password: "oscar-password-1"}, "192.0.2.1:1"); !errors.Is(err, ErrInvalidCredentials) {
					t.Fatalf("removed user logged in: %v", err)
				}
				return
			}
			again := env.login(t, "oscar", tt.password)
			p, err := env.svc.Verify(ctx, again.JWT)
			if err != nil || p.Role != tt.newRole {
				t.Fatalf("after new login: %+v, %v", p, err)
			}
		})
	}
}

func TestReloadKeepsUsersOnError(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, nil)
	if err := writeFile(env.users, "users: [{username: x, password_hash: nope, role: admin}]"); err != nil {
		t.Fatal(err)
	}
	if err := env.svc.ReloadUsers(context.Background()); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("err = %v", err)
	}
	env.login(t, "alice", "alice-password-1")
}

func TestRateLimiting(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := newTestEnv(t, nil, withRate(1, 3))
	try := func(addr, pw string) error {
		_, err := env.svc.IssueToken(ctx, TokenRequest{Username: "alice", Password: pw}, addr)
		return err
	}
	for i := range 3 {
		if err := try("198.51.100.9:1000", "wrong"); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	// Fourth attempt from the same IP (another port) in the same instant.
	err := try("198.51.100.9:2000", "alice-password-1")
	if !errors.Is(err, ErrRateLimited) {
		t.Fatalf("err = %v, want ErrRateLimited", err)
	}
	if s, ok := RetryAfter(err); !ok || s != 1 {
		t.Fatalf("RetryAfter = %d, %v", s, ok)
	}
	if !errors.Is(err, ErrRateLimited) {
		t.Fatalf("err = %v, want ErrRateLimited", err)
	}
	// Other clients are not affected.
	if err := try("203.0.113.5:1", "alice-password-1"); err != nil {
		t.Fatalf("other client limited: %v", err)
	}
	// IPv6 clients in the same /64 share a bucket.
	for i := range 3 {
		if err := try("[2001:db8::1]:1", "wrong"); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("ipv6 attempt %d: %v", i, err)
		}
	}
	if err := try("[2001:db8::ffff]:1", "wrong"); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("same /64: %v", err)
	}
	// After a second one token is back.
	env.clock.Advance(time.Second)
	if err := try("198.51.100.9:3000", "alice-password-1"); err != nil {
		t.Fatalf("after waiting: %v", err)
	}
	if err := try("198.51.100.9:3000", "alice-password-1"); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("err = %v", err)
	}
}

func TestDummyHashMatchesUsersCost(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, nil)
	// Three of four users use cheapArgon2: an unknown user must cost the same.
	if got, want := costKey(env.svc.users.dummyHash()), costKey(mustAccount(t, env, "alice").hash); got != want {
		t.Fatalf("dummy cost %q, users cost %q", got, want)
	}
}

func TestLogsNeverContainSecrets(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, nil)
	ctx := context.Background()
	resp := env.login(t, "alice", "alice-password-1")
	if _, err := env.svc.IssueToken(ctx, TokenRequest{Username: "alice", Password: "wrong-secret-pw"}, "192.0.2.1:1"); err == nil {
		t.Fatal("wrong password accepted")
	}
	if _, err := env.svc.IssueToken(ctx, TokenRequest{GrantType: GrantRefreshToken, RefreshToken: resp.RefreshToken}, "192.0.2.1:1"); err != nil {
		t.Fatal(err)
	}
	logs := env.logs.String()
	for _, secret := range []string{"alice-password-1", "wrong-secret-pw", resp.JWT, resp.RefreshToken, strings.Split(resp.JWT, ".")[2]} {
		if strings.Contains(logs, secret) {
			t.Fatalf("logs contain a secret: %s", logs)
		}
	}
	if !strings.Contains(logs, `"username":"alice"`) || !strings.Contains(logs, "invalid_credentials") {
		t.Fatalf("logs lack username/outcome: %s", logs)
	}
}

func TestBootstrapAdmin(t *testing.T) {
	t.Parallel()
	pw, err := GeneratePassword()
	if err != nil {
		t.Fatal(err)
	}
	if len(pw) < 20 {
		t.Fatalf("generated password %d chars", len(pw))
	}
	clock := newFakeClock()
	svc, err := NewService(Config{
		SigningKeyID:           "k1",
		Keys:                   map[string][]byte{"k1": testKey(1)},
		BootstrapAdminPassword: pw,
		Now:                    clock.Now,
	}, NewMemoryRefreshStore(clock.Now), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	resp, err := svc.IssueToken(context.Background(), TokenRequest{Username: "admin", Password: pw}, "127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	p, err := svc.Verify(context.Background(), resp.JWT)
	if err != nil || p.Role != RoleAdmin || p.Username != "admin" {
		t.Fatalf("Verify = %+v, %v", p, err)
	}
}

func TestNewServiceRejectsBadConfig(t *testing.T) {
	t.Parallel()
	path := writeUsersFile(t, filepath.Join(t.TempDir(), "u.yaml"), defaultTestUsers[:1])
	good := Config{SigningKeyID: "k1", Keys: map[string][]byte{"k1": testKey(1)}, UsersFile: path}
	tests := []struct {
		name string
		mod  func(*Config)
	}{
		{"no keys", func(c *Config) { c.Keys = nil }},
		{"short key", func(c *Config) { c.Keys = map[string][]byte{"k1": make([]byte, 31)} }},
		{"signing kid not in ring", func(c *Config) { c.SigningKeyID = "k2" }},
		{"bad kid characters", func(c *Config) { c.Keys = map[string][]byte{"k/1": testKey(1)}; c.SigningKeyID = "k/1" }},
		{"no users at all", func(c *Config) { c.UsersFile = "" }},
		{"refresh shorter than token", func(c *Config) { c.RefreshLifetime = time.Minute }},
		{"huge clock skew", func(c *Config) { c.ClockSkew = time.Hour }},
		{"missing users file", func(c *Config) { c.UsersFile = filepath.Join(t.TempDir(), "absent.yaml") }},
	}
	if _, err := NewService(good, NewMemoryRefreshStore(nil), zerolog.Nop()); err != nil {
		t.Fatalf("good config: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.mod(&c)
			if _, err := NewService(c, NewMemoryRefreshStore(nil), zerolog.Nop()); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// --- helpers to take tokens apart and forge them ---

func decodeParts(t testing.TB, tok string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	for i, dst := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatal(err)
		}
	}
	return header, claims
}

func encodeParts(t testing.TB, header, claims map[string]any, sig string) string {
	t.Helper()
	hb, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return b64.EncodeToString(hb) + "." + b64.EncodeToString(cb) + "." + sig
}

func resign(t testing.TB, header, claims map[string]any, key []byte) string {
	t.Helper()
	unsigned := encodeParts(t, header, claims, "")
	input := strings.TrimSuffix(unsigned, ".")
	return input + "." + b64.EncodeToString(hmacSHA256(key, input))
}

func with(m map[string]any, k string, v any) map[string]any {
	out := map[string]any{}
	for kk, vv := range m {
		out[kk] = vv
	}
	out[k] = v
	return out
}

func without(m map[string]any, k string) map[string]any {
	out := with(m, k, nil)
	delete(out, k)
	return out
}

func mustAccount(t testing.TB, env *testEnv, name string) account {
	t.Helper()
	a, ok := env.svc.users.lookup(name)
	if !ok {
		t.Fatalf("no user %s", name)
	}
	return a
}

func TestRefusedUnknownUsernameIsNotLogged(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	_, err := e.svc.IssueToken(context.Background(), TokenRequest{Username: "Tr0ub4dor&3-typed-as-username", Password: "x"}, "192.0.2.1")
	if !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("err = %v", err)
	}
	logs := e.logs.String()
	if strings.Contains(logs, "Tr0ub4dor") {
		t.Fatalf("the refused username was logged: %s", logs)
	}
	if !strings.Contains(logs, "(unknown user)") {
		t.Fatalf("the refusal was not logged: %s", logs)
	}
}
