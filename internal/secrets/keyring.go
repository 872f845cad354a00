package secrets

import (
	"fmt"

	"github.com/akvsync/akvsync/internal/keyring"
)

// KeySize is the size of a master key: AES-256.
const KeySize = 32

// keyRules are what a master key ring accepts: key ids of 1..32
// characters of [A-Za-z0-9_-] (no colon or dot: they appear in sealed
// values), keys of exactly KeySize bytes.
var keyRules = keyring.Rules{MaxKIDLen: 32, KIDPunct: "-_", MinKeyLen: KeySize, MaxKeyLen: KeySize}

// KeyRing is a set of master keys with one current key.
type KeyRing struct {
	// Current is the id of the key that seals new values.
	Current string
	// Keys maps key id → 32-byte key. Every key opens.
	Keys map[string][]byte
}

// GenerateKey returns a new random 32-byte master key.
func GenerateKey() ([]byte, error) { return keyring.Generate(KeySize) }

// ParseKeyRing parses a master key ring in the keyring format
//
//	kid1:base64key1,kid2:base64key2
//
// The FIRST entry is the current key; later entries only open older
// values. This is the format of the master key environment variable and
// file. Errors wrap ErrInvalidKeyRing.
func ParseKeyRing(s string) (KeyRing, error) {
	r, err := keyring.Parse(s, keyRules)
	if err != nil {
		return KeyRing{}, fmt.Errorf("%w: %w", ErrInvalidKeyRing, err)
	}
	return KeyRing(r), nil
}

// LoadKeyRingFile reads a key ring in the [ParseKeyRing] format from path.
// The file should be readable by the service user only (mode 0600 or a
// mounted secret).
func LoadKeyRingFile(path string) (KeyRing, error) {
	r, err := keyring.LoadFile(path, keyRules)
	if err != nil {
		return KeyRing{}, fmt.Errorf("%w: %w", ErrInvalidKeyRing, err)
	}
	return KeyRing(r), nil
}

// Validate checks that r is usable.
func (r KeyRing) Validate() error {
	if err := keyRules.Check(keyring.Ring(r)); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidKeyRing, err)
	}
	return nil
}

func validateKID(kid string) error { return keyRules.CheckKID(kid) }
