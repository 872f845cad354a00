package secrets

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"strings"
)

// KeySize is the size of a master key: AES-256.
const KeySize = 32

// maxKIDLen is the longest key id.
const maxKIDLen = 32

// KeyRing is a set of master keys with one current key.
type KeyRing struct {
	// Current is the id of the key that seals new values.
	Current string
	// Keys maps key id → 32-byte key. Every key opens.
	Keys map[string][]byte
}

// GenerateKey returns a new random 32-byte master key.
func GenerateKey() ([]byte, error) {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("secrets: generate key: %w", err)
	}
	return k, nil
}

// FormatKey renders one "kid:base64" entry of the key ring format.
func FormatKey(kid string, key []byte) string {
	return kid + ":" + base64.StdEncoding.EncodeToString(key)
}

// ParseKeyRing parses the key ring format
//
//	kid1:base64key1,kid2:base64key2
//
// Entries are separated by commas, spaces or newlines; lines starting with #
// are comments. The FIRST entry is the current key; later entries only open
// older values. Key ids are 1..32 characters of [A-Za-z0-9_-] (no colon or
// dot). Keys are 32 bytes in standard or URL-safe base64, padded or not.
// This is the format of the master key environment variable and file.
func ParseKeyRing(s string) (KeyRing, error) {
	ring := KeyRing{Keys: map[string][]byte{}}
	var kept []string
	for _, line := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			kept = append(kept, line)
		}
	}
	entries := strings.FieldsFunc(strings.Join(kept, "\n"), func(r rune) bool {
		return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r'
	})
	for i, e := range entries {
		kid, b64, ok := strings.Cut(e, ":")
		if !ok {
			return KeyRing{}, fmt.Errorf("%w: entry #%d: want kid:base64", ErrInvalidKeyRing, i+1)
		}
		if err := validateKID(kid); err != nil {
			return KeyRing{}, fmt.Errorf("%w: entry #%d: %w", ErrInvalidKeyRing, i+1, err)
		}
		if _, dup := ring.Keys[kid]; dup {
			return KeyRing{}, fmt.Errorf("%w: duplicate key id %q", ErrInvalidKeyRing, kid)
		}
		key, err := decodeBase64(b64)
		if err != nil {
			return KeyRing{}, fmt.Errorf("%w: key %q: not valid base64", ErrInvalidKeyRing, kid)
		}
		if len(key) != KeySize {
			return KeyRing{}, fmt.Errorf("%w: key %q has %d bytes, want %d", ErrInvalidKeyRing, kid, len(key), KeySize)
		}
		if i == 0 {
			ring.Current = kid
		}
		ring.Keys[kid] = key
	}
	if len(ring.Keys) == 0 {
		return KeyRing{}, fmt.Errorf("%w: no keys", ErrInvalidKeyRing)
	}
	return ring, nil
}

// LoadKeyRingFile reads a key ring in the [ParseKeyRing] format from path.
// The file should be readable by the service user only (mode 0600 or a
// mounted secret).
func LoadKeyRingFile(path string) (KeyRing, error) {
	b, err := os.ReadFile(path) // #nosec G304 -- path from the operator's own --master-key-file flag or under its --data-dir
	if err != nil {
		return KeyRing{}, fmt.Errorf("secrets: read key ring: %w", err)
	}
	defer clear(b)
	return ParseKeyRing(string(b))
}

// Validate checks that r is usable.
func (r KeyRing) Validate() error {
	if len(r.Keys) == 0 {
		return fmt.Errorf("%w: no keys", ErrInvalidKeyRing)
	}
	for kid, k := range r.Keys {
		if err := validateKID(kid); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidKeyRing, err)
		}
		if len(k) != KeySize {
			return fmt.Errorf("%w: key %q has %d bytes, want %d", ErrInvalidKeyRing, kid, len(k), KeySize)
		}
	}
	if _, ok := r.Keys[r.Current]; !ok {
		return fmt.Errorf("%w: current key %q is not in the ring", ErrInvalidKeyRing, r.Current)
	}
	return nil
}

func validateKID(kid string) error {
	if kid == "" || len(kid) > maxKIDLen {
		return fmt.Errorf("key id %q must have 1..%d characters", kid, maxKIDLen)
	}
	for i := 0; i < len(kid); i++ {
		c := kid[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("key id %q may only contain A-Z a-z 0-9 - _", kid)
		}
	}
	return nil
}

func decodeBase64(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if b, err := base64.RawStdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawURLEncoding.DecodeString(s)
}
