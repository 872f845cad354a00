package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
)

// version is the prefix of sealed values produced by this package.
const version = "v1"

// aadPrefix domain-separates our associated data; the version and key id are
// bound into it so that the header of a sealed value cannot be edited.
const aadPrefix = "akvsync/secrets/v1\x00"

// nonceSize is the AES-GCM standard nonce size. Nonces are random: keep well
// under 2^32 seals per key (rotate long before).
const nonceSize = 12

// Sealer seals and opens secrets. It is safe for concurrent use.
type Sealer struct {
	mu      sync.RWMutex
	current string
	keys    map[string][]byte
	aeads   map[string]cipher.AEAD
	closed  bool
}

// NewSealer returns a Sealer for ring. The key bytes are copied; the caller
// may clear its copy.
func NewSealer(ring KeyRing) (*Sealer, error) {
	if err := ring.Validate(); err != nil {
		return nil, err
	}
	s := &Sealer{current: ring.Current, keys: map[string][]byte{}, aeads: map[string]cipher.AEAD{}}
	for kid, k := range ring.Keys {
		key := append([]byte(nil), k...)
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("%w: key %q: %w", ErrInvalidKeyRing, kid, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("%w: key %q: %w", ErrInvalidKeyRing, kid, err)
		}
		s.keys[kid], s.aeads[kid] = key, aead
	}
	return s, nil
}

// CurrentKeyID returns the id of the key that seals new values.
func (s *Sealer) CurrentKeyID() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.current
}

// Seal encrypts plaintext under the current key, authenticating aad too, and
// returns "v1:<kid>:<base64url(nonce || ciphertext || tag)>".
func (s *Sealer) Seal(plaintext, aad []byte) (string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return "", ErrClosed
	}
	kid := s.current
	nonce := make([]byte, nonceSize, nonceSize+len(plaintext)+16)
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("secrets: nonce: %w", err)
	}
	out := s.aeads[kid].Seal(nonce, nonce, plaintext, fullAAD(kid, aad))
	return version + ":" + kid + ":" + base64.RawURLEncoding.EncodeToString(out), nil
}

// Open decrypts a value produced by Seal with the same aad. Errors:
// [ErrMalformed], [ErrUnknownKey], [ErrTampered], [ErrClosed].
func (s *Sealer) Open(sealed string, aad []byte) ([]byte, error) {
	kid, blob, err := parse(sealed)
	if err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	aead, ok := s.aeads[kid]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownKey, kid)
	}
	if len(blob) < nonceSize+aead.Overhead() {
		return nil, fmt.Errorf("%w: too short", ErrMalformed)
	}
	pt, err := aead.Open(nil, blob[:nonceSize], blob[nonceSize:], fullAAD(kid, aad))
	if err != nil {
		return nil, ErrTampered
	}
	return pt, nil
}

// KeyID returns the master key id recorded in a sealed value.
func KeyID(sealed string) (string, error) {
	kid, _, err := parse(sealed)
	return kid, err
}

// NeedsReseal reports whether sealed was produced under a key other than the
// current one (or is not a v1 value at all).
func (s *Sealer) NeedsReseal(sealed string) bool {
	kid, err := KeyID(sealed)
	return err != nil || kid != s.CurrentKeyID()
}

// Reseal opens sealed (with aad) and seals the plaintext again under the
// current key. A value already under the current key is returned unchanged.
func (s *Sealer) Reseal(sealed string, aad []byte) (string, error) {
	pt, err := s.Open(sealed, aad)
	if err != nil {
		return "", err
	}
	defer clear(pt)
	if kid, _ := KeyID(sealed); kid == s.CurrentKeyID() {
		return sealed, nil
	}
	return s.Seal(pt, aad)
}

// Close zeroes the key bytes held by the Sealer; later calls fail with
// [ErrClosed]. (The expanded AES key schedule inside crypto/cipher cannot be
// wiped; it is dropped for the garbage collector.)
func (s *Sealer) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range s.keys {
		clear(k)
	}
	s.keys, s.aeads, s.closed = nil, nil, true
	return nil
}

// parse splits "v1:<kid>:<b64>".
func parse(sealed string) (kid string, blob []byte, err error) {
	v, rest, ok := strings.Cut(sealed, ":")
	if !ok || v != version {
		return "", nil, fmt.Errorf("%w: want %s:<kid>:<data>", ErrMalformed, version)
	}
	kid, data, ok := strings.Cut(rest, ":")
	if !ok || validateKID(kid) != nil {
		return "", nil, fmt.Errorf("%w: bad key id", ErrMalformed)
	}
	// base64 decoders skip '\r' and '\n'; only the base64url alphabet is
	// accepted so a sealed value has a single valid spelling.
	for i := 0; i < len(data); i++ {
		c := data[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return "", nil, fmt.Errorf("%w: data is not base64url", ErrMalformed)
		}
	}
	blob, err = base64.RawURLEncoding.Strict().DecodeString(data)
	if err != nil {
		return "", nil, fmt.Errorf("%w: data is not base64url", ErrMalformed)
	}
	return kid, blob, nil
}

func fullAAD(kid string, aad []byte) []byte {
	b := make([]byte, 0, len(aadPrefix)+len(kid)+1+len(aad))
	b = append(b, aadPrefix...)
	b = append(b, kid...)
	b = append(b, 0)
	return append(b, aad...)
}
