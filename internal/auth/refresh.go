package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"sync"
	"time"
)

// refreshTokenBytes is the entropy of a refresh token.
const refreshTokenBytes = 32

// RefreshRecord is what a [RefreshStore] keeps about a refresh token. The
// token itself is never stored: records are keyed by [RefreshTokenID].
type RefreshRecord struct {
	// Username the token was issued to.
	Username string `json:"username"`
	// Role at issue time (informational: refresh uses the current role).
	Role Role `json:"role"`
	// CredID fingerprints the user's password hash and role at issue time;
	// a changed password or role makes the token unusable.
	CredID string `json:"cred_id"`
	// IssuedAt and ExpiresAt bound the token's validity.
	IssuedAt time.Time `json:"issued_at"`
	// ExpiresAt: see IssuedAt.
	ExpiresAt time.Time `json:"expires_at"`
	// Family is the id of the login session: every refresh token rotated
	// from one password grant shares it, so logout and a replay revoke
	// the whole session.
	Family string `json:"family,omitempty"`
	// Used is set when the token has been exchanged: the record stays, so
	// that presenting it again is recognized as a replay.
	Used bool `json:"used,omitempty"`
	// AccessJTI and AccessExpiresAt name the access token issued with this
	// refresh token, denied when the family is revoked.
	AccessJTI       string    `json:"access_jti,omitempty"`
	AccessExpiresAt time.Time `json:"access_expires_at,omitzero"`
}

// RefreshStore persists refresh-token records. Implementations must be safe
// for concurrent use, and Revoke must let exactly one of several concurrent
// callers succeed for the same id (that is what makes refresh tokens single
// use).
type RefreshStore interface {
	// Put stores rec under id (a [RefreshTokenID]).
	Put(ctx context.Context, id string, rec RefreshRecord) error
	// Get returns the record of id, or [ErrRefreshNotFound].
	Get(ctx context.Context, id string) (RefreshRecord, error)
	// Revoke deletes id. It returns [ErrRefreshNotFound] when id does not
	// exist (any more), in particular to all but one concurrent caller.
	Revoke(ctx context.Context, id string) error
	// RevokeAllForUser deletes every record of username.
	RevokeAllForUser(ctx context.Context, username string) error
	// Use marks id used and returns its record. It returns
	// [ErrRefreshNotFound] for an unknown id, and the record with
	// [ErrRefreshReused] when id was used before (a replay); of several
	// concurrent callers exactly one succeeds, the others get
	// [ErrRefreshNotFound].
	Use(ctx context.Context, id string) (RefreshRecord, error)
	// RevokeFamily deletes every record of the family and returns them.
	RevokeFamily(ctx context.Context, family string) ([]RefreshRecord, error)
}

// RefreshTokenID is the store key of a refresh token: the hex SHA-256 of the
// token. The token has 256 random bits, so a fast hash is enough.
func RefreshTokenID(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// newRefreshToken returns a random opaque refresh token.
func newRefreshToken() (string, error) {
	b := make([]byte, refreshTokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate refresh token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// MemoryRefreshStore is an in-process [RefreshStore] for a single API process
// (embedded mode) and tests. Expired records are dropped on access.
type MemoryRefreshStore struct {
	now     func() time.Time
	mu      sync.Mutex
	records map[string]RefreshRecord
	puts    int
}

// NewMemoryRefreshStore returns an empty store. now may be nil (time.Now);
// it only decides when expired records are swept.
func NewMemoryRefreshStore(now func() time.Time) *MemoryRefreshStore {
	if now == nil {
		now = time.Now
	}
	return &MemoryRefreshStore{now: now, records: map[string]RefreshRecord{}}
}

// Put implements [RefreshStore].
func (m *MemoryRefreshStore) Put(_ context.Context, id string, rec RefreshRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.records[id] = rec
	m.puts++
	if m.puts%1024 == 0 {
		now := m.now()
		for k, r := range m.records {
			if now.After(r.ExpiresAt) {
				delete(m.records, k)
			}
		}
	}
	return nil
}

// Get implements [RefreshStore].
func (m *MemoryRefreshStore) Get(_ context.Context, id string) (RefreshRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.records[id]
	if !ok {
		return RefreshRecord{}, ErrRefreshNotFound
	}
	if m.now().After(r.ExpiresAt) {
		delete(m.records, id)
		return RefreshRecord{}, ErrRefreshNotFound
	}
	return r, nil
}

// Revoke implements [RefreshStore].
func (m *MemoryRefreshStore) Revoke(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.records[id]; !ok {
		return ErrRefreshNotFound
	}
	delete(m.records, id)
	return nil
}

// RevokeAllForUser implements [RefreshStore].
func (m *MemoryRefreshStore) RevokeAllForUser(_ context.Context, username string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, r := range m.records {
		if r.Username == username {
			delete(m.records, k)
		}
	}
	return nil
}

// Use implements [RefreshStore].
func (m *MemoryRefreshStore) Use(_ context.Context, id string) (RefreshRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.records[id]
	if !ok {
		return RefreshRecord{}, ErrRefreshNotFound
	}
	if r.Used {
		return r, ErrRefreshReused
	}
	r.Used = true
	m.records[id] = r
	return r, nil
}

// RevokeFamily implements [RefreshStore].
func (m *MemoryRefreshStore) RevokeFamily(_ context.Context, family string) ([]RefreshRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []RefreshRecord
	for k, r := range m.records {
		if family != "" && r.Family == family {
			out = append(out, r)
			delete(m.records, k)
		}
	}
	return out, nil
}

// Len returns the number of stored records (expired ones included until
// swept).
func (m *MemoryRefreshStore) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.records)
}
