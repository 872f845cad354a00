package control

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/akvsync/akvsync/internal/azure"
)

// Defaults of [Config].
const (
	// DefaultCloud is the cloud name given to vaults and jobs (CCKM's
	// cloud_name) until connections carry their own.
	DefaultCloud = "AzureCloud"
	// DefaultSource is the CloudEvents source of the events the API
	// publishes.
	DefaultSource = "akvsync/api"
	// DefaultQueryTimeout bounds one request to the workers' query service.
	DefaultQueryTimeout = 5 * time.Second
	// DefaultCleanupTimeout bounds the undo of a failed request (releasing
	// locks, deleting a half-created record), which runs even when the
	// request's context is cancelled.
	DefaultCleanupTimeout = 10 * time.Second
	// DefaultMaxJobVaults bounds the vaults of one job. No record or
	// message grows with a job (see pkg/jobs), so this is a guard against
	// mistakes, set above the 100,000 vaults akvsync is built for.
	DefaultMaxJobVaults = 250000
	// DefaultMaxAddVaults bounds the vaults of one add-vaults request.
	DefaultMaxAddVaults = 1000
	// DefaultCASRetries bounds the compare-and-set attempts of a job
	// update that races with the workers.
	DefaultCASRetries = 20
)

// Config configures the control plane. Zero fields take the defaults
// above; [Config.Validate] reports what is wrong.
type Config struct {
	// Connections names the Azure connections vaults may refer to, when
	// they are given by configuration; a vault whose connection is not
	// listed is refused. Ignored when LookupConnection is set.
	Connections []string
	// LookupConnection, when set, resolves a vault's connection against the
	// connection registry instead (see [RegistryLookup]); the vault records
	// the connection's canonical name and its cloud name.
	LookupConnection ConnectionLookup
	// Cloud is the cloud name of new vaults and jobs. Default [DefaultCloud].
	Cloud string
	// Endpoints decides which vault URIs a vault of a connection may have:
	// hosts of the connection's cloud; private addresses only when the
	// operator allows them.
	Endpoints azure.EndpointPolicy
	// Source is the CloudEvents source of published events, e.g.
	// "akvsync/api/<hostname>". Default [DefaultSource].
	Source string
	// QueryTimeout bounds one query to the workers. Default
	// [DefaultQueryTimeout].
	QueryTimeout time.Duration
	// CleanupTimeout bounds the undo of a failed request. Default
	// [DefaultCleanupTimeout].
	CleanupTimeout time.Duration
	// MaxJobVaults bounds the vaults of one job. Default [DefaultMaxJobVaults].
	MaxJobVaults int
	// MaxAddVaults bounds the vaults of one add-vaults request. Default
	// [DefaultMaxAddVaults].
	MaxAddVaults int
	// CASRetries bounds compare-and-set attempts. Default [DefaultCASRetries].
	CASRetries int
	// Now is the clock; default time.Now. Tests may inject one.
	Now func() time.Time
}

// WithDefaults returns c with zero fields replaced by their defaults.
func (c Config) WithDefaults() Config {
	if c.Cloud == "" {
		c.Cloud = DefaultCloud
	}
	if c.Source == "" {
		c.Source = DefaultSource
	}
	if c.QueryTimeout == 0 {
		c.QueryTimeout = DefaultQueryTimeout
	}
	if c.CleanupTimeout == 0 {
		c.CleanupTimeout = DefaultCleanupTimeout
	}
	if c.MaxJobVaults == 0 {
		c.MaxJobVaults = DefaultMaxJobVaults
	}
	if c.MaxAddVaults == 0 {
		c.MaxAddVaults = DefaultMaxAddVaults
	}
	if c.CASRetries == 0 {
		c.CASRetries = DefaultCASRetries
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports the first problem of c after defaults are applied.
func (c Config) Validate() error {
	c = c.WithDefaults()
	seen := make(map[string]bool, len(c.Connections))
	for _, name := range c.Connections {
		if name == "" {
			return fmt.Errorf("control: config: empty connection name")
		}
		if seen[name] {
			return fmt.Errorf("control: config: connection %q listed twice", name)
		}
		seen[name] = true
	}
	switch {
	case c.QueryTimeout < 0:
		return fmt.Errorf("control: config: query timeout %s is negative", c.QueryTimeout)
	case c.CleanupTimeout < 0:
		return fmt.Errorf("control: config: cleanup timeout %s is negative", c.CleanupTimeout)
	case c.MaxJobVaults < 1:
		return fmt.Errorf("control: config: max job vaults %d must be at least 1", c.MaxJobVaults)
	case c.MaxAddVaults < 1:
		return fmt.Errorf("control: config: max add vaults %d must be at least 1", c.MaxAddVaults)
	case c.CASRetries < 1:
		return fmt.Errorf("control: config: CAS retries %d must be at least 1", c.CASRetries)
	}
	return nil
}

// ConnectionInfo is what the vault registry needs of a connection.
type ConnectionInfo struct {
	// Name is the connection's canonical name.
	Name string
	// Cloud is its cloud name (AzureCloud, AzureChinaCloud, …); "" means
	// [Config.Cloud].
	Cloud string
	// KeyVaultDNSSuffix and StackType are its key_vault_dns_suffix and
	// azure_stack_connection_type (AzureStack vault hosts are under the
	// suffix).
	KeyVaultDNSSuffix, StackType string
}

// checkVaultURI checks a vault URI against the endpoint policy for the
// connection c.
func (c Config) checkVaultURI(field, uri string, conn ConnectionInfo) error {
	if err := c.Endpoints.CheckURL(field, azure.EndpointVault, uri, conn.Cloud, conn.KeyVaultDNSSuffix, conn.StackType); err != nil {
		return invalidf("%s", strings.TrimPrefix(err.Error(), azure.ErrEndpointRefused.Error()+": "))
	}
	return nil
}

// ConnectionLookup resolves a connection name (or id); found is false for
// an unknown connection, err is for a failed lookup.
type ConnectionLookup func(ctx context.Context, name string) (info ConnectionInfo, found bool, err error)

// connection resolves a connection name with LookupConnection, or against
// Connections.
func (c Config) connection(ctx context.Context, name string) (ConnectionInfo, bool, error) {
	if c.LookupConnection != nil {
		return c.LookupConnection(ctx, name)
	}
	for _, n := range c.Connections {
		if n == name {
			return ConnectionInfo{Name: n, Cloud: c.Cloud}, true, nil
		}
	}
	return ConnectionInfo{}, false, nil
}
