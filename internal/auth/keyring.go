package auth

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
)

// maxKIDLen is the longest key id.
const maxKIDLen = 64

// validateKID accepts 1..64 characters of [A-Za-z0-9_.-].
func validateKID(kid string) error {
	if kid == "" || len(kid) > maxKIDLen {
		return fmt.Errorf("key id %q must have 1..%d characters", kid, maxKIDLen)
	}
	for i := 0; i < len(kid); i++ {
		c := kid[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("key id %q may only contain A-Z a-z 0-9 - _ .", kid)
		}
	}
	return nil
}

// GenerateKey returns a new random 32-byte signing key.
func GenerateKey() ([]byte, error) {
	k := make([]byte, MinKeyBytes)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return k, nil
}

// ParseKeyRing parses "kid1:base64,kid2:base64,…" (commas, whitespace or
// newlines separate entries; lines starting with # are comments). The first
// entry is the signing key; all entries verify. The base64 may be standard or
// URL-safe, padded or not. It returns values for [Config.SigningKeyID] and
// [Config.Keys].
func ParseKeyRing(s string) (signingKID string, keys map[string][]byte, err error) {
	keys = map[string][]byte{}
	var lines []string
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		lines = append(lines, line)
	}
	fields := strings.FieldsFunc(strings.Join(lines, "\n"), func(r rune) bool {
		return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r'
	})
	for i, f := range fields {
		kid, b64, ok := strings.Cut(f, ":")
		if !ok {
			return "", nil, fmt.Errorf("%w: key ring entry #%d: want kid:base64", ErrInvalidConfig, i+1)
		}
		if err := validateKID(kid); err != nil {
			return "", nil, fmt.Errorf("%w: key ring entry #%d: %w", ErrInvalidConfig, i+1, err)
		}
		if _, dup := keys[kid]; dup {
			return "", nil, fmt.Errorf("%w: key ring: duplicate key id %q", ErrInvalidConfig, kid)
		}
		k, err := decodeAnyBase64(b64)
		if err != nil {
			return "", nil, fmt.Errorf("%w: key ring key %q: %w", ErrInvalidConfig, kid, err)
		}
		if len(k) < MinKeyBytes {
			return "", nil, fmt.Errorf("%w: key ring key %q has %d bytes, want at least %d", ErrInvalidConfig, kid, len(k), MinKeyBytes)
		}
		if i == 0 {
			signingKID = kid
		}
		keys[kid] = k
	}
	if len(keys) == 0 {
		return "", nil, fmt.Errorf("%w: key ring is empty", ErrInvalidConfig)
	}
	return signingKID, keys, nil
}

// LoadKeyRingFile reads a key ring in the [ParseKeyRing] format from a file.
func LoadKeyRingFile(path string) (signingKID string, keys map[string][]byte, err error) {
	b, err := os.ReadFile(path) // #nosec G304 -- path from the operator's own --jwt-keys flag or under its --data-dir
	if err != nil {
		return "", nil, fmt.Errorf("read key ring: %w", err)
	}
	return ParseKeyRing(string(b))
}

// FormatKeyRingEntry renders one "kid:base64" entry for [ParseKeyRing].
func FormatKeyRingEntry(kid string, key []byte) string {
	return kid + ":" + base64.StdEncoding.EncodeToString(key)
}

// decodeAnyBase64 accepts standard or URL-safe base64, padded or not.
func decodeAnyBase64(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if b, err := base64.RawStdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, errors.New("not valid base64")
	}
	return b, nil
}
