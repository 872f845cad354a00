package auth

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"unicode"

	"go.yaml.in/yaml/v3"
)

// maxUsersFileSize bounds the users file we read.
const maxUsersFileSize = 4 << 20

// maxUsernameLen is the longest accepted username, in bytes.
const maxUsernameLen = 128

// User is one entry of the users file.
type User struct {
	// Username is unique; 1..128 printable characters without spaces.
	Username string `yaml:"username" json:"username"`
	// PasswordHash is a bcrypt ($2a$/$2b$) or argon2id PHC hash; see
	// [HashPassword].
	PasswordHash string `yaml:"password_hash" json:"password_hash"`
	// Role is admin, operator or viewer.
	Role Role `yaml:"role" json:"role"`
	// Disabled users cannot log in, refresh or use access tokens; disabling
	// one (and reloading) ends their sessions.
	Disabled bool `yaml:"disabled,omitempty" json:"disabled,omitempty"`
}

// usersFile is the on-disk format: YAML, or JSON (which YAML parses).
type usersFile struct {
	Users []User `yaml:"users"`
}

// account is a validated user with its parsed hash.
type account struct {
	user User
	hash passwordHash
	// credID fingerprints the password hash and role: refresh tokens issued
	// under another fingerprint stop working after a password change.
	credID string
}

// UserStore holds the users of the token endpoint: those of the users file
// plus an optional bootstrap admin. It is safe for concurrent use; [Reload]
// swaps the file's users atomically.
type UserStore struct {
	path string

	mu        sync.RWMutex
	fromFile  map[string]account
	bootstrap *account
	dummy     passwordHash
	// digest is the SHA-256 of the users file as last loaded.
	digest [32]byte
}

// loadedDigest is the SHA-256 of the users file as last loaded.
func (s *UserStore) loadedDigest() [32]byte {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.digest
}

// ParseUsers reads a users document (YAML or JSON) of the form
//
//	users:
//	  - username: alice
//	    password_hash: "$argon2id$v=19$m=65536,t=3,p=2$…$…"
//	    role: admin
//
// Unknown fields, duplicate usernames, unknown roles and unrecognized hashes
// are errors wrapping [ErrInvalidConfig].
func ParseUsers(r io.Reader) ([]User, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxUsersFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read users: %w", err)
	}
	if len(data) > maxUsersFileSize {
		return nil, fmt.Errorf("%w: users file larger than %d bytes", ErrInvalidConfig, maxUsersFileSize)
	}
	var f usersFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, fmt.Errorf("%w: users file: %w", ErrInvalidConfig, err)
	}
	if _, err := buildAccounts(f.Users); err != nil {
		return nil, err
	}
	return f.Users, nil
}

func buildAccounts(users []User) (map[string]account, error) {
	out := make(map[string]account, len(users))
	for i, u := range users {
		a, err := newAccount(u)
		if err != nil {
			return nil, fmt.Errorf("%w: user #%d: %w", ErrInvalidConfig, i+1, err)
		}
		if _, dup := out[u.Username]; dup {
			return nil, fmt.Errorf("%w: user #%d: duplicate username %q", ErrInvalidConfig, i+1, u.Username)
		}
		out[u.Username] = a
	}
	return out, nil
}

func newAccount(u User) (account, error) {
	if err := validateUsername(u.Username); err != nil {
		return account{}, err
	}
	if !u.Role.Valid() {
		return account{}, fmt.Errorf("user %q: unknown role %q (want admin, operator or viewer)", u.Username, u.Role)
	}
	h, err := parsePasswordHash(u.PasswordHash)
	if err != nil {
		return account{}, fmt.Errorf("user %q: %w", u.Username, err)
	}
	sum := sha256.Sum256([]byte(u.PasswordHash + "\x00" + string(u.Role)))
	return account{user: u, hash: h, credID: fmt.Sprintf("%x", sum[:8])}, nil
}

func validateUsername(name string) error {
	if name == "" {
		return errors.New("username is empty")
	}
	if len(name) > maxUsernameLen {
		return fmt.Errorf("username longer than %d bytes", maxUsernameLen)
	}
	for _, r := range name {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return fmt.Errorf("username %q has a space or non-printable character", name)
		}
	}
	return nil
}

// NewUserStore returns a store holding users (not tied to a file; [Reload]
// then only keeps them).
func NewUserStore(users []User) (*UserStore, error) {
	accts, err := buildAccounts(users)
	if err != nil {
		return nil, err
	}
	s := &UserStore{fromFile: accts}
	if err := s.refreshDummy(); err != nil {
		return nil, err
	}
	return s, nil
}

// LoadUsers reads the users file at path (YAML or JSON). An empty path gives
// an empty store, to be filled by [UserStore.SetBootstrapAdmin].
func LoadUsers(path string) (*UserStore, error) {
	s := &UserStore{path: path, fromFile: map[string]account{}}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload re-reads the users file. On error the previous users stay in force.
// Users removed from the file can no longer log in, refresh, or use access
// tokens; a changed role applies to their next request.
func (s *UserStore) Reload() error {
	_, err := s.reload()
	return err
}

// reload is Reload, returning the usernames whose sessions must end:
// removed, disabled, or with another password or role.
func (s *UserStore) reload() ([]string, error) {
	if s.path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(s.path)
	if err != nil {
		return nil, fmt.Errorf("open users file: %w", err)
	}
	users, err := ParseUsers(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.path, err)
	}
	accts, err := buildAccounts(users)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.path, err)
	}
	s.mu.Lock()
	old := s.fromFile
	s.fromFile = accts
	s.digest = sha256.Sum256(data)
	var changed []string
	for name, a := range old {
		if s.bootstrap != nil && s.bootstrap.user.Username == name {
			continue // the bootstrap admin shadows the file's entry
		}
		n, ok := accts[name]
		if !ok || n.credID != a.credID || (n.user.Disabled && !a.user.Disabled) {
			changed = append(changed, name)
		}
	}
	s.mu.Unlock()
	slices.Sort(changed)
	return changed, s.refreshDummy()
}

// SetBootstrapAdmin adds (or replaces) an admin with the given username and
// password, hashed with argon2id. It survives [Reload] and takes precedence
// over a users-file entry with the same name. The cmd layer maps it from the
// AKVSYNC_ADMIN_PASSWORD environment variable, or from [GeneratePassword] in
// demo mode.
func (s *UserStore) SetBootstrapAdmin(username, password string) error {
	if password == "" {
		return fmt.Errorf("%w: bootstrap admin password is empty", ErrInvalidConfig)
	}
	if len(password) > MaxPasswordLen {
		return fmt.Errorf("%w: bootstrap admin password longer than %d bytes", ErrInvalidConfig, MaxPasswordLen)
	}
	h, err := HashPassword(password)
	if err != nil {
		return fmt.Errorf("bootstrap admin: %w", err)
	}
	a, err := newAccount(User{Username: username, PasswordHash: h, Role: RoleAdmin})
	if err != nil {
		return fmt.Errorf("%w: bootstrap admin: %w", ErrInvalidConfig, err)
	}
	s.mu.Lock()
	s.bootstrap = &a
	s.mu.Unlock()
	return s.refreshDummy()
}

// Lookup returns the current entry for username.
func (s *UserStore) Lookup(username string) (User, bool) {
	a, ok := s.lookup(username)
	return a.user, ok
}

// Len returns the number of users (bootstrap admin included).
func (s *UserStore) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := len(s.fromFile)
	if s.bootstrap != nil {
		if _, dup := s.fromFile[s.bootstrap.user.Username]; !dup {
			n++
		}
	}
	return n
}

func (s *UserStore) lookup(username string) (account, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.bootstrap != nil && s.bootstrap.user.Username == username {
		return *s.bootstrap, true
	}
	a, ok := s.fromFile[username]
	if a.user.Disabled {
		return account{}, false
	}
	return a, ok
}

// dummyHash returns the hash to check against for an unknown user.
func (s *UserStore) dummyHash() passwordHash {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.dummy
}

// refreshDummy makes the dummy hash use the algorithm and cost most users
// use, so that a login for an unknown user costs about as much as one for a
// known user.
func (s *UserStore) refreshDummy() error {
	s.mu.RLock()
	counts := map[string]int{}
	templates := map[string]passwordHash{}
	add := func(a account) {
		k := costKey(a.hash)
		counts[k]++
		templates[k] = a.hash
	}
	for _, a := range s.fromFile {
		add(a)
	}
	if s.bootstrap != nil {
		add(*s.bootstrap)
	}
	current := costKey(s.dummy)
	s.mu.RUnlock()

	best, bestN := "", -1
	for k, n := range counts {
		if n > bestN || n == bestN && k < best {
			best, bestN = k, n
		}
	}
	if best == "" {
		// No users: any login fails; still spend default argon2id time.
		h, err := HashPassword("unused-dummy-password")
		if err != nil {
			return err
		}
		tmpl, err := parsePasswordHash(h)
		if err != nil {
			return err
		}
		s.mu.Lock()
		s.dummy = tmpl
		s.mu.Unlock()
		return nil
	}
	if best == current {
		return nil
	}
	d, err := dummyLike(templates[best])
	if err != nil {
		return fmt.Errorf("dummy password hash: %w", err)
	}
	s.mu.Lock()
	s.dummy = d
	s.mu.Unlock()
	return nil
}

// costKey identifies the algorithm and cost of a hash.
func costKey(h passwordHash) string {
	if h.raw == "" {
		return ""
	}
	if h.bcrypt {
		return h.raw[:7] // "$2a$10$"
	}
	i := strings.LastIndex(h.raw, "$")
	j := strings.LastIndex(h.raw[:i], "$")
	return fmt.Sprintf("%s/%d/%d", h.raw[:j], len(h.salt), len(h.key))
}
