package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/akvsync/akvsync/internal/azure"
	"github.com/akvsync/akvsync/internal/connections"
	"github.com/akvsync/akvsync/internal/secrets"
	akvsync "github.com/akvsync/akvsync/pkg/sync"
)

// MasterKeyFile is the name of the master key ring an embedded process
// generates in its data directory when none is configured.
const MasterKeyFile = "master-keys"

// ErrNoMasterKey is returned when a process needs the master key (to seal or
// open connection secrets) and none is configured.
var ErrNoMasterKey = errors.New("no master key: set AKVSYNC_MASTER_KEYS or --master-key-file")

// MasterKeyRing loads the master key ring that seals connection secrets:
// from value ("kid:base64,…", first current) or file; else, when dataDir is
// set (embedded), from dataDir/master-keys, generating it (0600) on first
// start; else ErrNoMasterKey.
func MasterKeyRing(value, file, dataDir string) (secrets.KeyRing, error) {
	switch {
	case value != "":
		return secrets.ParseKeyRing(value)
	case file != "":
		return secrets.LoadKeyRingFile(file)
	case dataDir == "":
		return secrets.KeyRing{}, ErrNoMasterKey
	}
	path := filepath.Join(dataDir, MasterKeyFile)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		key, err := secrets.GenerateKey()
		if err != nil {
			return secrets.KeyRing{}, err
		}
		if err := os.WriteFile(path, []byte(secrets.FormatKey("m1", key)+"\n"), 0o600); err != nil {
			return secrets.KeyRing{}, err
		}
	}
	return secrets.LoadKeyRingFile(path)
}

// ImportConnection puts a configured connection (from a connections file or
// an emulator manifest) into the registry: created when its name is new,
// brought up to date when it exists, so the registry is the one source the
// workers read.
func ImportConnection(ctx context.Context, reg *connections.Registry, c azure.Connection) error {
	settings := connections.Settings{
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
	_, err := reg.Get(ctx, c.Name)
	if errors.Is(err, connections.ErrNotFound) {
		_, err = reg.Create(ctx, connections.CreateRequest{Settings: settings, ClientSecret: c.ClientSecret, Certificate: string(c.CertificatePEM)})
		if err != nil {
			return fmt.Errorf("import connection %q: %w", c.Name, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("import connection %q: %w", c.Name, err)
	}
	p := connections.PatchRequest{
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
	if _, err := reg.Patch(ctx, c.Name, p); err != nil {
		return fmt.Errorf("import connection %q: %w", c.Name, err)
	}
	return nil
}

// ChainConnections resolves a connection from the first source that knows
// it: configured connections first, then the registry.
type ChainConnections struct {
	Static   map[string]azure.Connection
	Registry *connections.Registry
}

// Connection implements azure.Connections.
func (c ChainConnections) Connection(ctx context.Context, name string) (azure.Connection, error) {
	if conn, ok := c.Static[name]; ok {
		return conn, nil
	}
	if c.Registry == nil {
		return azure.Connection{}, fmt.Errorf("%w %q", akvsync.ErrUnknownConnection, name)
	}
	conn, err := c.Registry.Connection(ctx, name)
	switch {
	case errors.Is(err, connections.ErrNotFound):
		return azure.Connection{}, fmt.Errorf("%w %q", akvsync.ErrUnknownConnection, name)
	case errors.Is(err, connections.ErrCorrupt):
		// Undecryptable (a retired master key): retrying cannot help.
		return azure.Connection{}, fmt.Errorf("%w: %w", akvsync.ErrPermanent, err)
	}
	return conn, err
}
