package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// DefaultTicketTTL is how long an event-stream ticket can be redeemed.
const DefaultTicketTTL = 30 * time.Second

// ticketBytes is the entropy of a ticket: 256 random bits.
const ticketBytes = 32

// kvTicketPrefix namespaces ticket records in their bucket.
const kvTicketPrefix = "tk."

// Ticket is a short-lived, single-use credential for one purpose: opening
// the Server-Sent Events stream from a browser, whose EventSource cannot
// send an Authorization header. It is bound to the principal that asked
// for it.
type Ticket struct {
	// Ticket is the opaque value for the stream's ?ticket= parameter.
	Ticket string `json:"ticket"`
	// ExpiresAt is when the ticket can no longer be redeemed.
	ExpiresAt time.Time `json:"expires_at"`
	// Duration is the ticket's lifetime in seconds.
	Duration int64 `json:"duration"`
}

// ticketRecord is what the bucket keeps of a ticket (under the hash of
// the ticket, never the ticket itself).
type ticketRecord struct {
	Username  string    `json:"username"`
	Role      Role      `json:"role"`
	ExpiresAt time.Time `json:"expires_at"`
}

// TicketStore issues and redeems [Ticket]s in a NATS JetStream key-value
// bucket, so a ticket issued by one API replica is redeemed by any other.
// The bucket is created elsewhere (pkg/events) with History 1 and a TTL of
// at least the ticket lifetime, so that unused tickets disappear by
// themselves; each record also carries its expiry, checked on redeem.
type TicketStore struct {
	kv  jetstream.KeyValue
	ttl time.Duration
	now func() time.Time
}

// NewTicketStore returns a store on kv whose tickets live ttl (0:
// [DefaultTicketTTL]); now is the clock (nil: time.Now).
func NewTicketStore(kv jetstream.KeyValue, ttl time.Duration, now func() time.Time) (*TicketStore, error) {
	if kv == nil {
		return nil, fmt.Errorf("%w: ticket store needs a bucket", ErrInvalidConfig)
	}
	if ttl == 0 {
		ttl = DefaultTicketTTL
	}
	if ttl < time.Second || ttl > 10*time.Minute {
		return nil, fmt.Errorf("%w: ticket lifetime %s must be between 1s and 10m", ErrInvalidConfig, ttl)
	}
	if now == nil {
		now = time.Now
	}
	return &TicketStore{kv: kv, ttl: ttl, now: now}, nil
}

// ticketKey is the bucket key of a ticket: the hex SHA-256 of its value.
func ticketKey(ticket string) string {
	sum := sha256.Sum256([]byte(ticket))
	return kvTicketPrefix + hex.EncodeToString(sum[:])
}

// Issue creates a ticket for p.
func (s *TicketStore) Issue(ctx context.Context, p Principal) (Ticket, error) {
	if p.Username == "" || p.Role == "" {
		return Ticket{}, fmt.Errorf("%w: a ticket needs an authenticated principal", ErrInvalidToken)
	}
	raw := make([]byte, ticketBytes)
	if _, err := rand.Read(raw); err != nil {
		return Ticket{}, fmt.Errorf("ticket: random: %w", err)
	}
	t := Ticket{
		Ticket:    base64.RawURLEncoding.EncodeToString(raw),
		ExpiresAt: s.now().Add(s.ttl).UTC().Truncate(time.Second),
		Duration:  int64(s.ttl / time.Second),
	}
	b, err := json.Marshal(ticketRecord{Username: p.Username, Role: p.Role, ExpiresAt: t.ExpiresAt})
	if err != nil {
		return Ticket{}, fmt.Errorf("ticket: encode: %w", err)
	}
	if _, err := s.kv.Create(ctx, ticketKey(t.Ticket), b); err != nil {
		return Ticket{}, fmt.Errorf("ticket: store: %w", err)
	}
	return t, nil
}

// Redeem consumes a ticket and returns the principal it was issued to. A
// ticket is redeemed at most once, by whichever replica comes first; an
// unknown, used or expired ticket gives an error wrapping
// [ErrTicketInvalid].
func (s *TicketStore) Redeem(ctx context.Context, ticket string) (Principal, error) {
	if n := base64.RawURLEncoding.DecodedLen(len(ticket)); n != ticketBytes || len(ticket) > 64 {
		return Principal{}, ErrTicketInvalid
	}
	if _, err := base64.RawURLEncoding.DecodeString(ticket); err != nil {
		return Principal{}, ErrTicketInvalid
	}
	key := ticketKey(ticket)
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return Principal{}, ErrTicketInvalid
	}
	if err != nil {
		return Principal{}, fmt.Errorf("ticket: get: %w", err)
	}
	// Used once: only the delete at the revision just read succeeds.
	err = s.kv.Purge(ctx, key, jetstream.LastRevision(e.Revision()))
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyNotFound) {
		return Principal{}, ErrTicketInvalid
	}
	if err != nil {
		return Principal{}, fmt.Errorf("ticket: consume: %w", err)
	}
	var rec ticketRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return Principal{}, fmt.Errorf("ticket: decode: %w", err)
	}
	if !s.now().Before(rec.ExpiresAt) {
		return Principal{}, ErrTicketInvalid
	}
	return Principal{Username: rec.Username, Role: rec.Role}, nil
}
