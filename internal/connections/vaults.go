package connections

import (
	"context"
	"strings"

	"github.com/akvsync/akvsync/pkg/events"
)

// vaultsOf returns the registered vaults that refer to the connection
// name (case-insensitively), read from the vaults bucket.
func (r *Registry) vaultsOf(ctx context.Context, name string) ([]events.Vault, error) {
	all, err := events.ListVaults(ctx, r.vaults)
	if err != nil {
		return nil, unavailable("read vaults", err)
	}
	var out []events.Vault
	for _, v := range all {
		if strings.EqualFold(v.Connection, name) {
			out = append(out, v)
		}
	}
	return out, nil
}
