package connections

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/akvsync/akvsync/pkg/events"
)

// vaultsOf returns the registered vaults that refer to the connection
// name (case-insensitively), read from the vaults bucket. Only vault
// records are read: index entries (keys with dots, such as "byname.…")
// are skipped, and so is a value that is not a vault record.
func (r *Registry) vaultsOf(ctx context.Context, name string) ([]events.Vault, error) {
	w, err := r.vaults.WatchFiltered(ctx, []string{"*"}, jetstream.IgnoreDeletes())
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return nil, nil
		}
		return nil, unavailable("read vaults", err)
	}
	defer func() { _ = w.Stop() }()
	var out []events.Vault
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil, unavailable("read vaults", errors.New("watcher closed"))
			}
			if e == nil {
				return out, nil
			}
			if strings.HasPrefix(e.Key(), "byname.") {
				continue
			}
			var v events.Vault
			if err := json.Unmarshal(e.Value(), &v); err != nil || v.ID == "" {
				r.cfg.Logger.Warn().Str("key", e.Key()).Msg("vaults bucket: skipping an entry that is not a vault record")
				continue
			}
			if strings.EqualFold(v.Connection, name) {
				out = append(out, v)
			}
		case <-ctx.Done():
			return nil, unavailable("read vaults", ctx.Err())
		}
	}
}
