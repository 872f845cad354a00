package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// Revocations is the access-token denylist: single tokens by jti, and
// every token of a user issued up to a moment. [Service.Verify] refuses a
// denied token. Implementations are safe for concurrent use.
type Revocations interface {
	// RevokeAccess denies the access token jti; until is its expiry, after
	// which the entry may be forgotten.
	RevokeAccess(ctx context.Context, jti string, until time.Time) error
	// RevokeSubject denies every access token of username issued at or
	// before at (whole seconds, as iat); until is when the last of them
	// expires.
	RevokeSubject(ctx context.Context, username string, at, until time.Time) error
	// Revoked reports whether the token jti of username issued at iat
	// (Unix seconds) is denied.
	Revoked(jti, username string, iat int64) bool
	// SubjectRevokedAt returns the moment (Unix seconds) up to which
	// username's tokens are denied, if any.
	SubjectRevokedAt(username string) (int64, bool)
}

// subjectKey is the denylist key of a user: a digest, so that usernames
// do not appear in the bucket.
func subjectKey(username string) string {
	sum := sha256.Sum256([]byte(username))
	return hex.EncodeToString(sum[:16])
}

// UsernameDigest is the digest of a username that logs and the denylist
// carry instead of the username (a refused "username" may be a password
// typed in the wrong field).
func UsernameDigest(username string) string { return subjectKey(username) }

// MemoryRevocations is an in-process [Revocations]: for one API process
// and tests, and the local view of [KVRevocations].
type MemoryRevocations struct {
	now func() time.Time

	mu       sync.RWMutex
	jtis     map[string]time.Time
	subjects map[string]subjectRevocation
	writes   int
}

type subjectRevocation struct {
	At    int64     `json:"at"`
	Until time.Time `json:"until"`
}

// NewMemoryRevocations returns an empty denylist; now may be nil
// (time.Now) and only decides when entries are forgotten.
func NewMemoryRevocations(now func() time.Time) *MemoryRevocations {
	if now == nil {
		now = time.Now
	}
	return &MemoryRevocations{now: now, jtis: map[string]time.Time{}, subjects: map[string]subjectRevocation{}}
}

// RevokeAccess implements [Revocations].
func (m *MemoryRevocations) RevokeAccess(_ context.Context, jti string, until time.Time) error {
	m.addJTI(jti, until)
	return nil
}

// RevokeSubject implements [Revocations].
func (m *MemoryRevocations) RevokeSubject(_ context.Context, username string, at, until time.Time) error {
	m.addSubject(subjectKey(username), subjectRevocation{At: at.Unix(), Until: until})
	return nil
}

func (m *MemoryRevocations) addJTI(jti string, until time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.jtis[jti]; !ok || until.After(old) {
		m.jtis[jti] = until
	}
	m.sweepLocked()
}

func (m *MemoryRevocations) addSubject(key string, r subjectRevocation) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.subjects[key]; ok && old.At >= r.At {
		return
	}
	m.subjects[key] = r
	m.sweepLocked()
}

// sweepLocked forgets expired entries every 256 writes.
func (m *MemoryRevocations) sweepLocked() {
	m.writes++
	if m.writes%256 != 0 {
		return
	}
	now := m.now()
	for k, until := range m.jtis {
		if now.After(until) {
			delete(m.jtis, k)
		}
	}
	for k, r := range m.subjects {
		if now.After(r.Until) {
			delete(m.subjects, k)
		}
	}
}

// Revoked implements [Revocations].
func (m *MemoryRevocations) Revoked(jti, username string, iat int64) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if _, ok := m.jtis[jti]; ok {
		return true
	}
	r, ok := m.subjects[subjectKey(username)]
	return ok && iat <= r.At
}

// SubjectRevokedAt implements [Revocations].
func (m *MemoryRevocations) SubjectRevokedAt(username string) (int64, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	r, ok := m.subjects[subjectKey(username)]
	return r.At, ok
}

// Denylist bucket keys: "jti.<jti>" (value: the token's expiry) and
// "sub.<digest of the username>" (value: a subjectRevocation).
const (
	kvDenyJTIPrefix = "jti."
	kvDenySubPrefix = "sub."
)

// KVRevocations is a [Revocations] carried on a NATS key-value bucket
// (pkg/events BucketRevokedTokens, whose TTL outlives any access token):
// a revocation is written to the bucket, and every API process watches
// the bucket into its in-memory set, so each replica honours a revocation
// made on another within the bucket's propagation delay (milliseconds).
// [NewKVRevocations] reads the existing entries before it returns.
type KVRevocations struct {
	*MemoryRevocations
	kv     jetstream.KeyValue
	log    zerolog.Logger
	cancel context.CancelFunc
	done   chan struct{}
}

// NewKVRevocations watches kv until ctx ends or Close; it returns once the
// bucket's current entries are loaded.
func NewKVRevocations(ctx context.Context, kv jetstream.KeyValue, now func() time.Time, log zerolog.Logger) (*KVRevocations, error) {
	wctx, cancel := context.WithCancel(ctx)
	w, err := kv.WatchAll(wctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("revocations: watch: %w", err)
	}
	r := &KVRevocations{MemoryRevocations: NewMemoryRevocations(now), kv: kv, log: log, cancel: cancel, done: make(chan struct{})}
	// The initial entries, up to the nil marker.
	for loaded := false; !loaded; {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				cancel()
				return nil, errors.New("revocations: watch closed while loading")
			}
			if e == nil {
				loaded = true
				continue
			}
			r.apply(e)
		case <-ctx.Done():
			_ = w.Stop()
			cancel()
			return nil, fmt.Errorf("revocations: load: %w", ctx.Err())
		}
	}
	go func() {
		defer close(r.done)
		defer func() { _ = w.Stop() }()
		for {
			select {
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e != nil {
					r.apply(e)
				}
			case <-wctx.Done():
				return
			}
		}
	}()
	return r, nil
}

// Close stops the watch.
func (r *KVRevocations) Close() {
	r.cancel()
	<-r.done
}

// apply adds a bucket entry to the local set.
func (r *KVRevocations) apply(e jetstream.KeyValueEntry) {
	if e.Operation() != jetstream.KeyValuePut {
		return
	}
	key := e.Key()
	switch {
	case strings.HasPrefix(key, kvDenyJTIPrefix):
		var until time.Time
		if err := json.Unmarshal(e.Value(), &until); err != nil {
			r.log.Warn().Str("key", key).Msg("revocations: undecodable entry ignored")
			return
		}
		r.addJTI(strings.TrimPrefix(key, kvDenyJTIPrefix), until)
	case strings.HasPrefix(key, kvDenySubPrefix):
		var s subjectRevocation
		if err := json.Unmarshal(e.Value(), &s); err != nil {
			r.log.Warn().Str("key", key).Msg("revocations: undecodable entry ignored")
			return
		}
		r.addSubject(strings.TrimPrefix(key, kvDenySubPrefix), s)
	}
}

// RevokeAccess implements [Revocations]: denied here at once, and on
// every replica once the bucket entry reaches it.
func (r *KVRevocations) RevokeAccess(ctx context.Context, jti string, until time.Time) error {
	r.addJTI(jti, until)
	b, err := json.Marshal(until.UTC())
	if err != nil {
		return fmt.Errorf("revocations: encode: %w", err)
	}
	if _, err := r.kv.Put(ctx, kvDenyJTIPrefix+jti, b); err != nil {
		return fmt.Errorf("revocations: put: %w", err)
	}
	return nil
}

// RevokeSubject implements [Revocations], like RevokeAccess.
func (r *KVRevocations) RevokeSubject(ctx context.Context, username string, at, until time.Time) error {
	key := subjectKey(username)
	s := subjectRevocation{At: at.Unix(), Until: until.UTC()}
	r.addSubject(key, s)
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("revocations: encode: %w", err)
	}
	if _, err := r.kv.Put(ctx, kvDenySubPrefix+key, b); err != nil {
		return fmt.Errorf("revocations: put: %w", err)
	}
	return nil
}
