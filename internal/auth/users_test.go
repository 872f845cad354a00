package auth

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestParseUsers(t *testing.T) {
	t.Parallel()
	argon, err := HashPasswordWith("pw", cheapArgon2)
	if err != nil {
		t.Fatal(err)
	}
	bc, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	bcrypt2b := string(bc)
	tests := []struct {
		name    string
		doc     string
		wantN   int
		wantErr string
	}{
		{name: "yaml", doc: "users:\n  - {username: a, password_hash: '" + argon + "', role: admin}\n  - {username: b, password_hash: '" + bcrypt2b + "', role: viewer}\n", wantN: 2},
		{name: "json", doc: `{"users":[{"username":"a","password_hash":"` + argon + `","role":"operator"}]}`, wantN: 1},
		{name: "empty document", doc: "", wantN: 0},
		{name: "unknown field", doc: "users:\n  - {username: a, password: x, role: admin}\n", wantErr: "password"},
		{name: "unknown top-level field", doc: "admins: []\n", wantErr: "admins"},
		{name: "unknown role", doc: "users:\n  - {username: a, password_hash: '" + argon + "', role: root}\n", wantErr: "unknown role"},
		{name: "duplicate user", doc: "users:\n  - {username: a, password_hash: '" + argon + "', role: admin}\n  - {username: a, password_hash: '" + argon + "', role: admin}\n", wantErr: "duplicate"},
		{name: "plain-text password", doc: "users:\n  - {username: a, password_hash: secret, role: admin}\n", wantErr: "unrecognized password hash"},
		{name: "argon2i", doc: "users:\n  - {username: a, password_hash: '$argon2i$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA', role: admin}\n", wantErr: "only argon2id"},
		{name: "argon2id with absurd memory", doc: "users:\n  - {username: a, password_hash: '$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA', role: admin}\n", wantErr: "memory"},
		{name: "argon2id wrong version", doc: "users:\n  - {username: a, password_hash: '$argon2id$v=16$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA', role: admin}\n", wantErr: "version"},
		{name: "empty username", doc: "users:\n  - {username: '', password_hash: '" + argon + "', role: admin}\n", wantErr: "empty"},
		{name: "username with space", doc: "users:\n  - {username: 'a b', password_hash: '" + argon + "', role: admin}\n", wantErr: "space"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			users, err := ParseUsers(strings.NewReader(tt.doc))
			if tt.wantErr != "" {
				if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || len(users) != tt.wantN {
				t.Fatalf("got %d users, %v", len(users), err)
			}
		})
	}
}

func TestPasswordHashes(t *testing.T) {
	t.Parallel()
	argonDefault, err := HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(argonDefault, "$argon2id$v=19$m=65536,t=3,p=2$") {
		t.Fatalf("hash = %s", argonDefault)
	}
	b2a, _ := bcrypt.GenerateFromPassword([]byte("correct horse"), bcrypt.MinCost)
	b2b := strings.Replace(string(b2a), "$2a$", "$2b$", 1)
	for _, h := range []string{argonDefault, string(b2a), b2b} {
		ph, err := parsePasswordHash(h)
		if err != nil {
			t.Fatalf("%s: %v", h[:7], err)
		}
		if !ph.verify("correct horse") {
			t.Errorf("%s: right password refused", h[:7])
		}
		if ph.verify("correct horsf") || ph.verify("") {
			t.Errorf("%s: wrong password accepted", h[:7])
		}
	}
	if _, err := HashPassword(""); err == nil {
		t.Error("empty password hashed")
	}
	if _, err := HashPassword(strings.Repeat("x", MaxPasswordLen+1)); err == nil {
		t.Error("overlong password hashed")
	}
}

func TestBootstrapAdminOverridesFileEntry(t *testing.T) {
	t.Parallel()
	s, err := NewUserStore([]User{{Username: "admin", PasswordHash: mustHash(t, "file-pw"), Role: RoleViewer}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetBootstrapAdmin("admin", "env-pw"); err != nil {
		t.Fatal(err)
	}
	a, _ := s.lookup("admin")
	if a.user.Role != RoleAdmin || !a.hash.verify("env-pw") || a.hash.verify("file-pw") {
		t.Fatalf("bootstrap admin did not take precedence: %+v", a.user)
	}
	if s.Len() != 1 {
		t.Fatalf("Len = %d", s.Len())
	}
	if err := s.SetBootstrapAdmin("admin", ""); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("empty password: %v", err)
	}
}

func mustHash(t testing.TB, pw string) string {
	t.Helper()
	h, err := HashPasswordWith(pw, cheapArgon2)
	if err != nil {
		t.Fatal(err)
	}
	return h
}
