package azure

import (
	"context"
	"errors"
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	akvsync "github.com/akvsync/akvsync/pkg/sync"
)

// Connections resolves a connection name to its settings. An error
// wrapping akvsync.ErrUnknownConnection or akvsync.ErrPermanent fails the
// vault that named it; any other is retried (see akvsync.KeySource).
type Connections interface {
	Connection(ctx context.Context, name string) (Connection, error)
}

// KeySource implements akvsync.KeySource: it resolves a vault's connection
// with Connections and builds the vault's client with Factory, so the
// worker's syncer reaches Key Vault through this package.
type KeySource struct {
	Connections Connections
	Factory     *Factory
}

// KeysClient implements akvsync.KeySource with the factory's shared client
// of the vault (Factory.SharedKeysClient): a vault's syncs and key
// refreshes pay its authentication challenge once per process and
// connection settings. The client is paced by the throttle its callers put
// in each request's context (akvsync.WithThrottle), not by throttle. A connection whose settings are invalid, and a
// client that cannot be built for it, fail the vault (akvsync.ErrPermanent).
func (k KeySource) KeysClient(ctx context.Context, connection, vaultURI string, _ akvsync.Throttle) (*azkeys.Client, error) {
	conn, err := k.Connections.Connection(ctx, connection)
	if errors.Is(err, ErrInvalidConnection) {
		return nil, fmt.Errorf("%w: %w", akvsync.ErrPermanent, err)
	}
	if err != nil {
		return nil, err
	}
	c, err := k.Factory.SharedKeysClient(conn, vaultURI)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", akvsync.ErrPermanent, err)
	}
	return c, nil
}
