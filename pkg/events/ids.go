package events

import (
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"strings"
)

// NewID returns a random RFC 4122 version 4 UUID, the form of job and vault ids.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return FormatUUID(b)
}

// keyIDNamespace is the namespace of key record ids (a fixed random UUID).
var keyIDNamespace = [16]byte{0x6b, 0x5d, 0x1e, 0x0c, 0x93, 0x41, 0x4e, 0x8a, 0xb1, 0x2f, 0x6e, 0x77, 0x0a, 0xc4, 0x58, 0x19}

// KeyID returns the inventory id of a key: a version 5 UUID of the vault id
// and the key name (case-insensitive, as Key Vault names are), so every
// worker derives the same id for the same key.
func KeyID(vaultID, keyName string) string {
	h := sha1.New()
	h.Write(keyIDNamespace[:])
	h.Write([]byte(vaultID + "/" + strings.ToLower(keyName)))
	var b [16]byte
	copy(b[:], h.Sum(nil))
	b[6] = b[6]&0x0f | 0x50
	b[8] = b[8]&0x3f | 0x80
	return FormatUUID(b)
}

// FormatUUID formats 16 bytes as a canonical lower-case UUID.
func FormatUUID(b [16]byte) string {
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}

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
