package auth

import (
	"fmt"

	"github.com/akvsync/akvsync/internal/keyring"
)

// keyRules are what a JWT key ring accepts: key ids of 1..64 characters of
// [A-Za-z0-9_.-], keys of at least MinKeyBytes.
var keyRules = keyring.Rules{MaxKIDLen: 64, KIDPunct: "-_.", MinKeyLen: MinKeyBytes}

// GenerateKey returns a new random 32-byte signing key.
func GenerateKey() ([]byte, error) { return keyring.Generate(MinKeyBytes) }

// ParseKeyRing parses a JWT key ring in the keyring format
// ("kid1:base64,kid2:base64,…"). The first entry is the signing key; all
// entries verify. It returns values for [Config.SigningKeyID] and
// [Config.Keys]. Errors wrap ErrInvalidConfig.
func ParseKeyRing(s string) (signingKID string, keys map[string][]byte, err error) {
	r, err := keyring.Parse(s, keyRules)
	if err != nil {
		return "", nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return r.Current, r.Keys, nil
}

// LoadKeyRingFile reads a key ring in the [ParseKeyRing] format from a file.
func LoadKeyRingFile(path string) (signingKID string, keys map[string][]byte, err error) {
	r, err := keyring.LoadFile(path, keyRules)
	if err != nil {
		return "", nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return r.Current, r.Keys, nil
}

// validateKeyRing checks the JWT key ring.
func validateKeyRing(signingKID string, keys map[string][]byte) error {
	if err := keyRules.Check(keyring.Ring{Current: signingKID, Keys: keys}); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return nil
}
