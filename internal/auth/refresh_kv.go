package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// kvRefreshPrefix namespaces refresh records in the bucket.
const kvRefreshPrefix = "rt."

// KVRefreshStore is a [RefreshStore] on a NATS JetStream key-value bucket,
// shared by every API process. The bucket is created elsewhere (pkg/events);
// it should keep one revision per key (History 1) and may set a TTL of at
// least the refresh lifetime so that expired records disappear by
// themselves. Keys are "rt.<hex sha256 of the token>"; values are JSON
// [RefreshRecord]s.
type KVRefreshStore struct {
	kv jetstream.KeyValue
}

// NewKVRefreshStore wraps a bucket handle.
func NewKVRefreshStore(kv jetstream.KeyValue) *KVRefreshStore {
	return &KVRefreshStore{kv: kv}
}

// Put implements [RefreshStore].
func (s *KVRefreshStore) Put(ctx context.Context, id string, rec RefreshRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("refresh store: encode: %w", err)
	}
	if _, err := s.kv.Put(ctx, kvRefreshPrefix+id, b); err != nil {
		return fmt.Errorf("refresh store: put: %w", err)
	}
	return nil
}

// Get implements [RefreshStore].
func (s *KVRefreshStore) Get(ctx context.Context, id string) (RefreshRecord, error) {
	rec, _, err := s.get(ctx, id)
	return rec, err
}

func (s *KVRefreshStore) get(ctx context.Context, id string) (RefreshRecord, uint64, error) {
	e, err := s.kv.Get(ctx, kvRefreshPrefix+id)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) || errors.Is(err, jetstream.ErrInvalidKey) {
		return RefreshRecord{}, 0, ErrRefreshNotFound
	}
	if err != nil {
		return RefreshRecord{}, 0, fmt.Errorf("refresh store: get: %w", err)
	}
	var rec RefreshRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return RefreshRecord{}, 0, fmt.Errorf("refresh store: decode: %w", err)
	}
	return rec, e.Revision(), nil
}

// Revoke implements [RefreshStore]. It purges the key only if it is still at
// the revision just read, so that of two concurrent refreshes with the same
// token exactly one wins.
func (s *KVRefreshStore) Revoke(ctx context.Context, id string) error {
	_, rev, err := s.get(ctx, id)
	if err != nil {
		return err
	}
	err = s.kv.Purge(ctx, kvRefreshPrefix+id, jetstream.LastRevision(rev))
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return ErrRefreshNotFound
	}
	if err != nil {
		return fmt.Errorf("refresh store: revoke: %w", err)
	}
	return nil
}

// Use implements [RefreshStore]: it marks the record used with a
// compare-and-set on the revision read, so of concurrent callers exactly
// one wins.
func (s *KVRefreshStore) Use(ctx context.Context, id string) (RefreshRecord, error) {
	rec, rev, err := s.get(ctx, id)
	if err != nil {
		return RefreshRecord{}, err
	}
	if rec.Used {
		return rec, ErrRefreshReused
	}
	rec.Used = true
	b, err := json.Marshal(rec)
	if err != nil {
		return RefreshRecord{}, fmt.Errorf("refresh store: encode: %w", err)
	}
	_, err = s.kv.Update(ctx, kvRefreshPrefix+id, b, rev)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
		return RefreshRecord{}, ErrRefreshNotFound
	}
	if err != nil {
		return RefreshRecord{}, fmt.Errorf("refresh store: use: %w", err)
	}
	return rec, nil
}

// RevokeFamily implements [RefreshStore]; it scans the records like
// [KVRefreshStore.RevokeAllForUser].
func (s *KVRefreshStore) RevokeFamily(ctx context.Context, family string) ([]RefreshRecord, error) {
	if family == "" {
		return nil, nil
	}
	return s.revokeWhere(ctx, func(r RefreshRecord) bool { return r.Family == family })
}

// RevokeAllForUser implements [RefreshStore]. It scans the bucket's refresh
// records (one per live session), which is fine for the expected size.
func (s *KVRefreshStore) RevokeAllForUser(ctx context.Context, username string) error {
	_, err := s.revokeWhere(ctx, func(r RefreshRecord) bool { return r.Username == username })
	return err
}

// revokeWhere purges the records match selects and returns them.
func (s *KVRefreshStore) revokeWhere(ctx context.Context, match func(RefreshRecord) bool) ([]RefreshRecord, error) {
	lister, err := s.kv.ListKeysFiltered(ctx, kvRefreshPrefix+">")
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return nil, nil
		}
		return nil, fmt.Errorf("refresh store: list: %w", err)
	}
	var ids []string
	for k := range lister.Keys() {
		ids = append(ids, k[len(kvRefreshPrefix):])
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("refresh store: list: %w", err)
	}
	var errs []error
	var out []RefreshRecord
	for _, id := range ids {
		rec, err := s.Get(ctx, id)
		if errors.Is(err, ErrRefreshNotFound) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !match(rec) {
			continue
		}
		if err := s.kv.Purge(ctx, kvRefreshPrefix+id); err != nil {
			errs = append(errs, fmt.Errorf("refresh store: revoke: %w", err))
			continue
		}
		out = append(out, rec)
	}
	return out, errors.Join(errs...)
}
