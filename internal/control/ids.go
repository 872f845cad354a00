package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/akvsync/akvsync/pkg/events"
)

// normalizeID is events.NormalizeID: a malformed id names nothing, so
// callers answer "not found" for it.
func normalizeID(s string) (string, bool) { return events.NormalizeID(s) }

// IsID reports whether s has the shape of a job or vault id (a UUID).
func IsID(s string) bool {
	_, ok := normalizeID(s)
	return ok
}

// getRecord reads the JSON record stored under id in kv and its revision.
// A malformed or unknown id is ErrNotFound; what names the record in
// messages ("job", "vault").
func getRecord[T any](ctx context.Context, kv jetstream.KeyValue, what, id string) (T, uint64, error) {
	var rec T
	nid, ok := normalizeID(id)
	if !ok {
		return rec, 0, notFoundf("%s %q not found", what, id)
	}
	e, err := kv.Get(ctx, nid)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return rec, 0, notFoundf("%s %q not found", what, id)
	}
	if err != nil {
		return rec, 0, unavailable("read "+what, err)
	}
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return rec, 0, fmt.Errorf("control: decode %s %s: %w", what, nid, err)
	}
	return rec, e.Revision(), nil
}
