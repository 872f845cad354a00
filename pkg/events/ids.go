package events

import (
	"strings"

	"github.com/google/uuid"
)

// NewID returns a random RFC 4122 version 4 UUID, the form of job and vault ids.
func NewID() string { return uuid.NewString() }

// keyIDNamespace is the namespace of key record ids (a fixed random UUID).
var keyIDNamespace = uuid.UUID{0x6b, 0x5d, 0x1e, 0x0c, 0x93, 0x41, 0x4e, 0x8a, 0xb1, 0x2f, 0x6e, 0x77, 0x0a, 0xc4, 0x58, 0x19}

// KeyID returns the inventory id of a key: a version 5 UUID of the vault id
// and the key name (case-insensitive, as Key Vault names are), so every
// worker derives the same id for the same key.
func KeyID(vaultID, keyName string) string {
	return uuid.NewSHA1(keyIDNamespace, []byte(vaultID+"/"+strings.ToLower(keyName))).String()
}

// FormatUUID formats 16 bytes as a canonical lower-case UUID.
func FormatUUID(b [16]byte) string { return uuid.UUID(b).String() }

// NormalizeID lower-cases s and reports whether it has the shape of a UUID
// (8-4-4-4-12 hex digits), the form of job, vault and connection ids. A
// malformed id names nothing, so callers answer "not found" for it.
func NormalizeID(s string) (string, bool) {
	if len(s) != 36 {
		return "", false
	}
	s = strings.ToLower(s)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return "", false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return "", false
			}
		}
	}
	return s, true
}
