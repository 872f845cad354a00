package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Argon2Params are the argon2id cost parameters of a password hash.
type Argon2Params struct {
	// Memory in KiB.
	Memory uint32
	// Time is the number of passes.
	Time uint32
	// Threads is the degree of parallelism.
	Threads uint8
	// SaltLen is the salt length in bytes.
	SaltLen uint32
	// KeyLen is the derived key length in bytes.
	KeyLen uint32
}

// DefaultArgon2Params are used by [HashPassword]: 64 MiB, 3 passes, 2 lanes,
// 16-byte salt, 32-byte hash (RFC 9106's second recommended option with
// parallelism sized for small servers).
var DefaultArgon2Params = Argon2Params{Memory: 64 * 1024, Time: 3, Threads: 2, SaltLen: 16, KeyLen: 32}

// Limits accepted when parsing a stored hash, so that a bad users file cannot
// make one login cost gigabytes or minutes.
const (
	maxArgon2Memory  = 1024 * 1024 // KiB (1 GiB)
	maxArgon2Time    = 32
	maxArgon2KeyLen  = 128
	minArgon2KeyLen  = 16
	minArgon2SaltLen = 8
	maxArgon2SaltLen = 64
	// MaxPasswordLen is the longest password accepted, in bytes.
	MaxPasswordLen = 1024
	// GeneratedPasswordBytes is the entropy of [GeneratePassword], in bytes.
	GeneratedPasswordBytes = 18
)

// HashPassword hashes pw with argon2id and [DefaultArgon2Params], returning a
// PHC string "$argon2id$v=19$m=65536,t=3,p=2$<salt>$<hash>" (unpadded
// standard base64) suitable for the password_hash field of a users file.
func HashPassword(pw string) (string, error) {
	return HashPasswordWith(pw, DefaultArgon2Params)
}

// HashPasswordWith is [HashPassword] with explicit parameters.
func HashPasswordWith(pw string, p Argon2Params) (string, error) {
	if pw == "" {
		return "", errors.New("hash password: empty password")
	}
	if len(pw) > MaxPasswordLen {
		return "", fmt.Errorf("hash password: longer than %d bytes", MaxPasswordLen)
	}
	if err := p.validate(); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	key := argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// GeneratePassword returns a random password (18 random bytes, base64url:
// 24 characters, 144 bits) for demo mode or a first bootstrap admin.
func GeneratePassword() (string, error) {
	b := make([]byte, GeneratedPasswordBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate password: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func (p Argon2Params) validate() error {
	switch {
	case p.Threads == 0:
		return errors.New("argon2id parallelism must be at least 1")
	case p.Time == 0 || p.Time > maxArgon2Time:
		return fmt.Errorf("argon2id time must be 1..%d", maxArgon2Time)
	case p.Memory < 8*uint32(p.Threads) || p.Memory > maxArgon2Memory:
		return fmt.Errorf("argon2id memory must be %d..%d KiB", 8*uint32(p.Threads), maxArgon2Memory)
	case p.SaltLen < minArgon2SaltLen || p.SaltLen > maxArgon2SaltLen:
		return fmt.Errorf("argon2id salt must be %d..%d bytes", minArgon2SaltLen, maxArgon2SaltLen)
	case p.KeyLen < minArgon2KeyLen || p.KeyLen > maxArgon2KeyLen:
		return fmt.Errorf("argon2id hash must be %d..%d bytes", minArgon2KeyLen, maxArgon2KeyLen)
	}
	return nil
}

// passwordHash is a parsed stored hash.
type passwordHash struct {
	raw    string
	bcrypt bool
	argon  Argon2Params
	salt   []byte
	key    []byte
}

// parsePasswordHash accepts bcrypt ($2a$, $2b$, $2y$) and argon2id PHC
// strings with version 19.
func parsePasswordHash(s string) (passwordHash, error) {
	switch {
	case strings.HasPrefix(s, "$2a$"), strings.HasPrefix(s, "$2b$"), strings.HasPrefix(s, "$2y$"):
		cost, err := bcrypt.Cost([]byte(s))
		if err != nil {
			return passwordHash{}, fmt.Errorf("bcrypt hash: %w", err)
		}
		if cost > 16 {
			return passwordHash{}, fmt.Errorf("bcrypt cost %d is above 16", cost)
		}
		return passwordHash{raw: s, bcrypt: true}, nil
	case strings.HasPrefix(s, "$argon2id$"):
		return parseArgon2id(s)
	case strings.HasPrefix(s, "$argon2i$"), strings.HasPrefix(s, "$argon2d$"):
		return passwordHash{}, errors.New("only argon2id hashes are accepted, not argon2i/argon2d")
	default:
		return passwordHash{}, errors.New("unrecognized password hash (want bcrypt $2a$/$2b$ or $argon2id$)")
	}
}

func parseArgon2id(s string) (passwordHash, error) {
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, hash
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return passwordHash{}, errors.New("argon2id hash: want $argon2id$v=19$m=…,t=…,p=…$salt$hash")
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return passwordHash{}, fmt.Errorf("argon2id hash: unsupported version %q", parts[2])
	}
	var p Argon2Params
	seen := map[string]bool{}
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || seen[k] {
			return passwordHash{}, fmt.Errorf("argon2id hash: bad parameter %q", kv)
		}
		seen[k] = true
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return passwordHash{}, fmt.Errorf("argon2id hash: bad parameter %q", kv)
		}
		switch k {
		case "m":
			p.Memory = uint32(n)
		case "t":
			p.Time = uint32(n)
		case "p":
			if n > 255 {
				return passwordHash{}, fmt.Errorf("argon2id hash: parallelism %d above 255", n)
			}
			p.Threads = uint8(n)
		default:
			return passwordHash{}, fmt.Errorf("argon2id hash: unknown parameter %q", k)
		}
	}
	if !seen["m"] || !seen["t"] || !seen["p"] {
		return passwordHash{}, errors.New("argon2id hash: m, t and p are required")
	}
	salt, err := decodePHCBase64(parts[4])
	if err != nil {
		return passwordHash{}, fmt.Errorf("argon2id hash: salt: %w", err)
	}
	key, err := decodePHCBase64(parts[5])
	if err != nil {
		return passwordHash{}, fmt.Errorf("argon2id hash: hash: %w", err)
	}
	saltLen, keyLen := len(salt), len(key)
	if saltLen < minArgon2SaltLen || saltLen > maxArgon2SaltLen {
		return passwordHash{}, fmt.Errorf("argon2id hash: argon2id salt must be %d..%d bytes", minArgon2SaltLen, maxArgon2SaltLen)
	}
	if keyLen < minArgon2KeyLen || keyLen > maxArgon2KeyLen {
		return passwordHash{}, fmt.Errorf("argon2id hash: argon2id hash must be %d..%d bytes", minArgon2KeyLen, maxArgon2KeyLen)
	}
	p.SaltLen, p.KeyLen = uint32(saltLen), uint32(keyLen)
	if err := p.validate(); err != nil {
		return passwordHash{}, fmt.Errorf("argon2id hash: %w", err)
	}
	return passwordHash{raw: s, argon: p, salt: salt, key: key}, nil
}

// decodePHCBase64 decodes the unpadded standard base64 of PHC strings, and
// tolerates padding.
func decodePHCBase64(s string) ([]byte, error) {
	return base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
}

// verify reports whether pw matches h. It runs in time independent of where
// a mismatch occurs.
func (h passwordHash) verify(pw string) bool {
	if len(pw) > MaxPasswordLen {
		pw = pw[:MaxPasswordLen]
	}
	if h.bcrypt {
		// bcrypt only looks at the first 72 bytes; CompareHashAndPassword
		// does a constant-time comparison of the result.
		return bcrypt.CompareHashAndPassword([]byte(h.raw), []byte(pw)) == nil
	}
	got := argon2.IDKey([]byte(pw), h.salt, h.argon.Time, h.argon.Memory, h.argon.Threads, h.argon.KeyLen)
	return subtle.ConstantTimeCompare(got, h.key) == 1
}

// dummyLike returns a hash of a random password with the same algorithm and
// cost as h, used to spend the same time on unknown users.
func dummyLike(h passwordHash) (passwordHash, error) {
	pw, err := GeneratePassword()
	if err != nil {
		return passwordHash{}, err
	}
	if h.bcrypt {
		cost, err := bcrypt.Cost([]byte(h.raw))
		if err != nil {
			return passwordHash{}, err
		}
		b, err := bcrypt.GenerateFromPassword([]byte(pw), cost)
		if err != nil {
			return passwordHash{}, err
		}
		return parsePasswordHash(string(b))
	}
	s, err := HashPasswordWith(pw, h.argon)
	if err != nil {
		return passwordHash{}, err
	}
	return parsePasswordHash(s)
}
