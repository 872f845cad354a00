package control

import (
	"context"
	"errors"

	"github.com/akvsync/akvsync/internal/connections"
)

// RegistryLookup resolves vault connections against the connection
// registry: a vault may name a connection by name or id, and records the
// connection's name and cloud name. A name the registry finds malformed
// counts as unknown.
func RegistryLookup(reg *connections.Registry) ConnectionLookup {
	return func(ctx context.Context, name string) (ConnectionInfo, bool, error) {
		c, err := reg.Get(ctx, name)
		switch {
		case errors.Is(err, connections.ErrNotFound), errors.Is(err, connections.ErrInvalid):
			return ConnectionInfo{}, false, nil
		case err != nil:
			return ConnectionInfo{}, false, err
		}
		return ConnectionInfo{Name: c.Name, Cloud: c.CloudName, KeyVaultDNSSuffix: c.KeyVaultDNSSuffix, StackType: c.AzureStackConnectionType}, true, nil
	}
}
