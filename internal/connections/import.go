package connections

import (
	"context"
	"errors"
	"fmt"

	"github.com/akvsync/akvsync/internal/azure"
	akvsync "github.com/akvsync/akvsync/pkg/sync"
)

// Import puts a configured connection (from a connections file or an
// emulator manifest) into the registry: created when its name is new,
// brought up to date when it exists, so the registry is the one source the
// workers read.
func (r *Registry) Import(ctx context.Context, c azure.Connection) error {
	settings := Settings{
		Name: c.Name, ClientID: c.ClientID, TenantID: c.TenantID, CloudName: c.Cloud,
		ActiveDirectoryEndpoint: c.ActiveDirectoryEndpoint, KeyVaultDNSSuffix: c.KeyVaultDNSSuffix,
		CredentialType: c.CredentialType, DisableChallengeResourceVerification: c.DisableChallengeResourceVerification,
		AzureStackServerCert: string(c.ExtraCAPEM), Description: "imported from configuration",
		ResourceManagerURL: c.ResourceManagerEndpoint, ManagementURL: c.ManagementEndpoint,
		AzureStackConnectionType: c.AzureStackConnectionType,
	}
	if settings.CloudName == "" {
		settings.CloudName = azure.CloudPublic // an empty cloud_name leaves a patched one as it is
	}
	_, err := r.Get(ctx, c.Name)
	if errors.Is(err, ErrNotFound) {
		_, err = r.Create(ctx, CreateRequest{Settings: settings, ClientSecret: c.ClientSecret, Certificate: string(c.CertificatePEM)})
		if err != nil {
			return fmt.Errorf("import connection %q: %w", c.Name, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("import connection %q: %w", c.Name, err)
	}
	p := PatchRequest{
		ClientID: &settings.ClientID, TenantID: &settings.TenantID, CloudName: &settings.CloudName,
		ActiveDirectoryEndpoint: &settings.ActiveDirectoryEndpoint, KeyVaultDNSSuffix: &settings.KeyVaultDNSSuffix,
		CredentialType: &settings.CredentialType, DisableChallengeResourceVerification: &settings.DisableChallengeResourceVerification,
		AzureStackServerCert: &settings.AzureStackServerCert,
		ResourceManagerURL:   &settings.ResourceManagerURL, ManagementURL: &settings.ManagementURL,
		AzureStackConnectionType: &settings.AzureStackConnectionType,
	}
	if c.ClientSecret != "" {
		p.ClientSecret = &c.ClientSecret
	}
	if len(c.CertificatePEM) > 0 {
		cert := string(c.CertificatePEM)
		p.Certificate = &cert
	}
	if _, err := r.Patch(ctx, c.Name, p); err != nil {
		return fmt.Errorf("import connection %q: %w", c.Name, err)
	}
	return nil
}

// Chain resolves a connection from the first source that knows it:
// configured connections first, then the registry (when set). It maps the
// registry's errors to the vault syncer's: ErrNotFound to
// akvsync.ErrUnknownConnection, ErrCorrupt to akvsync.ErrPermanent.
type Chain struct {
	Static   map[string]azure.Connection
	Registry *Registry
}

// Connection implements azure.Connections.
func (c Chain) Connection(ctx context.Context, name string) (azure.Connection, error) {
	if conn, ok := c.Static[name]; ok {
		return conn, nil
	}
	if c.Registry == nil {
		return azure.Connection{}, fmt.Errorf("%w %q", akvsync.ErrUnknownConnection, name)
	}
	conn, err := c.Registry.Connection(ctx, name)
	switch {
	case errors.Is(err, ErrNotFound):
		return azure.Connection{}, fmt.Errorf("%w %q", akvsync.ErrUnknownConnection, name)
	case errors.Is(err, ErrCorrupt):
		// Undecryptable (a retired master key): retrying cannot help.
		return azure.Connection{}, fmt.Errorf("%w: %w", akvsync.ErrPermanent, err)
	}
	return conn, err
}
