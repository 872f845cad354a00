package secrets

import "errors"

// ErrUnknownKey is returned by [Sealer.Open] when the sealed value names a
// master key id that is not in the ring (for example a retired key).
var ErrUnknownKey = errors.New("secrets: unknown master key id")

// ErrTampered is returned by [Sealer.Open] when authentication fails: the
// ciphertext, nonce or key id was modified, or the associated data differs.
var ErrTampered = errors.New("secrets: sealed value failed authentication (tampered or wrong associated data)")

// ErrMalformed is returned when a sealed string does not have the
// "v1:<kid>:<base64url>" form.
var ErrMalformed = errors.New("secrets: malformed sealed value")

// ErrInvalidKeyRing is returned (wrapped with the detail) for a key ring
// that cannot be used: empty, bad key ids, keys that are not 32 bytes,
// duplicates.
var ErrInvalidKeyRing = errors.New("secrets: invalid master key ring")

// ErrClosed is returned by a [Sealer] after Close.
var ErrClosed = errors.New("secrets: sealer is closed")
