// Package keyring reads and writes the key ring format that akvsync's
// secret keys share, the JWT signing keys (internal/auth) and the master
// keys that seal connection secrets (internal/secrets):
//
//	kid1:base64key1,kid2:base64key2
//
// Entries are separated by commas, spaces or newlines; lines starting with
// # are comments. The first entry is the current key (it signs or seals);
// every entry verifies or opens. Keys are in standard or URL-safe base64,
// padded or not. What a key id may contain and how long a key must be are
// each caller's [Rules].
package keyring

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
)

// ErrInvalid is wrapped by every error about a key ring's content; the
// callers wrap it in turn with their own sentinel.
var ErrInvalid = errors.New("key ring")

// Rules are what one kind of key ring accepts.
type Rules struct {
	// MaxKIDLen is the longest key id (at least 1 character).
	MaxKIDLen int
	// KIDPunct is the punctuation a key id may contain besides A-Z a-z 0-9.
	KIDPunct string
	// MinKeyLen and MaxKeyLen bound a key's size in bytes; MaxKeyLen 0
	// sets no upper bound.
	MinKeyLen, MaxKeyLen int
}

// Ring is a parsed key ring.
type Ring struct {
	// Current is the id of the first entry.
	Current string
	// Keys maps every key id to its key.
	Keys map[string][]byte
}

// CheckKID reports a key id r does not accept.
func (r Rules) CheckKID(kid string) error {
	if kid == "" || len(kid) > r.MaxKIDLen {
		return fmt.Errorf("key id %q must have 1..%d characters", kid, r.MaxKIDLen)
	}
	for i := 0; i < len(kid); i++ {
		c := kid[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte(r.KIDPunct, c) >= 0) {
			return fmt.Errorf("key id %q may only contain A-Z a-z 0-9 %s", kid, strings.Join(strings.Split(r.KIDPunct, ""), " "))
		}
	}
	return nil
}

// CheckKey reports a key whose size r does not accept.
func (r Rules) CheckKey(kid string, key []byte) error {
	switch {
	case r.MaxKeyLen > 0 && r.MaxKeyLen == r.MinKeyLen && len(key) != r.MinKeyLen:
		return fmt.Errorf("key %q has %d bytes, want %d", kid, len(key), r.MinKeyLen)
	case len(key) < r.MinKeyLen:
		return fmt.Errorf("key %q has %d bytes, want at least %d", kid, len(key), r.MinKeyLen)
	case r.MaxKeyLen > 0 && len(key) > r.MaxKeyLen:
		return fmt.Errorf("key %q has %d bytes, want at most %d", kid, len(key), r.MaxKeyLen)
	}
	return nil
}

// Check reports a ring r does not accept: no keys, a key id or key it
// does not accept, or a current key that is not in the ring. Errors wrap
// ErrInvalid.
func (r Rules) Check(ring Ring) error {
	if len(ring.Keys) == 0 {
		return fmt.Errorf("%w: no keys", ErrInvalid)
	}
	for kid, k := range ring.Keys {
		if err := r.CheckKID(kid); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		if err := r.CheckKey(kid, k); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	if _, ok := ring.Keys[ring.Current]; !ok {
		return fmt.Errorf("%w: current key %q is not in the ring", ErrInvalid, ring.Current)
	}
	return nil
}

// Parse parses a key ring under r. Errors wrap ErrInvalid.
func Parse(s string, r Rules) (Ring, error) {
	ring := Ring{Keys: map[string][]byte{}}
	var kept []string
	for _, line := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			kept = append(kept, line)
		}
	}
	entries := strings.FieldsFunc(strings.Join(kept, "\n"), func(c rune) bool {
		return c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r'
	})
	for i, e := range entries {
		kid, b64, ok := strings.Cut(e, ":")
		if !ok {
			return Ring{}, fmt.Errorf("%w entry #%d: want kid:base64", ErrInvalid, i+1)
		}
		if err := r.CheckKID(kid); err != nil {
			return Ring{}, fmt.Errorf("%w entry #%d: %w", ErrInvalid, i+1, err)
		}
		if _, dup := ring.Keys[kid]; dup {
			return Ring{}, fmt.Errorf("%w: duplicate key id %q", ErrInvalid, kid)
		}
		key, err := decodeBase64(b64)
		if err != nil {
			return Ring{}, fmt.Errorf("%w: key %q: not valid base64", ErrInvalid, kid)
		}
		if err := r.CheckKey(kid, key); err != nil {
			return Ring{}, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		if i == 0 {
			ring.Current = kid
		}
		ring.Keys[kid] = key
	}
	if len(ring.Keys) == 0 {
		return Ring{}, fmt.Errorf("%w: no keys", ErrInvalid)
	}
	return ring, nil
}

// LoadFile reads a key ring from path and parses it under r, clearing
// the bytes it read. The file should be readable by the service user only
// (mode 0600 or a mounted secret).
func LoadFile(path string, r Rules) (Ring, error) {
	b, err := os.ReadFile(path) // #nosec G304 -- path from the operator's own key file flag or under its --data-dir
	if err != nil {
		return Ring{}, fmt.Errorf("read key ring: %w", err)
	}
	defer clear(b)
	return Parse(string(b), r)
}

// Format renders one "kid:base64" entry.
func Format(kid string, key []byte) string {
	return kid + ":" + base64.StdEncoding.EncodeToString(key)
}

// Generate returns size random bytes: a new key.
func Generate(size int) ([]byte, error) {
	k := make([]byte, size)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return k, nil
}

// Ensure makes path hold a key ring: when no file is there, it writes one
// (mode 0600) of a single new key of size bytes named kid. An embedded
// process keeps its keys in its data directory that way.
func Ensure(path, kid string, size int) error {
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		return nil // there, or unreadable: loading it says which
	}
	key, err := Generate(size)
	if err != nil {
		return err
	}
	defer clear(key)
	if err := os.WriteFile(path, []byte(Format(kid, key)+"\n"), 0o600); err != nil {
		return fmt.Errorf("write key ring: %w", err)
	}
	return nil
}

// decodeBase64 accepts standard or URL-safe base64, padded or not.
func decodeBase64(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if b, err := base64.RawStdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawURLEncoding.DecodeString(s)
}
