package connections

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/akvsync/akvsync/internal/azure"
)

// EmulatorConnection is the name of the connection derived from an
// emulator manifest.
const EmulatorConnection = "emulator"

// ErrConnectionsFile is returned for an unreadable or invalid connections
// file or manifest.
var ErrConnectionsFile = errors.New("connections file")

// connectionFileEntry is one connection in a connections file. Paths are
// relative to the file.
type connectionFileEntry struct {
	Name                                 string `json:"name"`
	CredentialType                       string `json:"credential_type"`
	TenantID                             string `json:"tenant_id"`
	ClientID                             string `json:"client_id"`
	ClientSecret                         string `json:"client_secret"`
	ClientCertificateFile                string `json:"client_certificate_file"`
	Cloud                                string `json:"cloud_name"`
	ActiveDirectoryEndpoint              string `json:"active_directory_endpoint"`
	KeyVaultDNSSuffix                    string `json:"key_vault_dns_suffix"`
	ResourceManagerURL                   string `json:"resource_manager_url"`
	ManagementURL                        string `json:"management_url"`
	CACertFile                           string `json:"ca_cert_file"`
	DisableChallengeResourceVerification bool   `json:"disable_challenge_resource_verification"`
}

// LoadConnections reads a JSON connections file:
//
//	{"connections": [{"name": "prod", "credential_type": "client_secret",
//	  "tenant_id": "…", "client_id": "…", "client_secret": "…",
//	  "cloud_name": "AzureCloud"}]}
//
// client_certificate_file and ca_cert_file name PEM files, relative to the
// connections file.
func LoadConnections(path string) (map[string]azure.Connection, error) {
	raw, err := os.ReadFile(path) // #nosec G304 -- path from the operator's own --connections flag
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConnectionsFile, err)
	}
	var f struct {
		Connections []connectionFileEntry `json:"connections"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrConnectionsFile, path, err)
	}
	dir := filepath.Dir(path)
	rel := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	out := map[string]azure.Connection{}
	for _, e := range f.Connections {
		c := azure.Connection{
			Name: e.Name, CredentialType: e.CredentialType, TenantID: e.TenantID, ClientID: e.ClientID,
			ClientSecret: e.ClientSecret, Cloud: e.Cloud, ActiveDirectoryEndpoint: e.ActiveDirectoryEndpoint,
			KeyVaultDNSSuffix: e.KeyVaultDNSSuffix, DisableChallengeResourceVerification: e.DisableChallengeResourceVerification,
			ResourceManagerEndpoint: e.ResourceManagerURL, ManagementEndpoint: e.ManagementURL,
		}
		if c.CredentialType == "" {
			c.CredentialType = azure.CredentialClientSecret
		}
		if e.ClientCertificateFile != "" {
			if c.CertificatePEM, err = os.ReadFile(rel(e.ClientCertificateFile)); err != nil {
				return nil, fmt.Errorf("%w: connection %q: %w", ErrConnectionsFile, e.Name, err)
			}
		}
		if e.CACertFile != "" {
			if c.ExtraCAPEM, err = os.ReadFile(rel(e.CACertFile)); err != nil {
				return nil, fmt.Errorf("%w: connection %q: %w", ErrConnectionsFile, e.Name, err)
			}
		}
		if e.Name == "" {
			return nil, fmt.Errorf("%w %s: a connection has no name", ErrConnectionsFile, path)
		}
		if _, dup := out[e.Name]; dup {
			return nil, fmt.Errorf("%w %s: connection %q is defined twice", ErrConnectionsFile, path, e.Name)
		}
		if err := c.Validate(); err != nil {
			return nil, fmt.Errorf("%w %s: %w", ErrConnectionsFile, path, err)
		}
		out[e.Name] = c
	}
	return out, nil
}

// EmulatorManifest is the part of an akv-emulator manifest a connection
// needs.
type EmulatorManifest struct {
	TenantID      string `json:"tenant_id"`
	ClientID      string `json:"client_id"`
	ClientSecret  string `json:"client_secret"`
	AuthorityHost string `json:"authority_host"`
	// ResourceManagerURL is the emulator's Azure Resource Manager endpoint,
	// the emulator connection's resource_manager_url.
	ResourceManagerURL string `json:"resource_manager_url"`
	CACertFile         string `json:"ca_cert_file"`
	AdminURL           string `json:"admin_url"`
	// HostRouting is set when the emulator serves every vault on one
	// listener as <vault>.vault.localhost:PORT.
	HostRouting *struct {
		Address  string `json:"address"`
		Resource string `json:"resource"`
	} `json:"host_routing"`
	Vaults []struct {
		Name           string `json:"name"`
		URL            string `json:"url"`
		SubscriptionID string `json:"subscription_id"`
		// Kind is "vault" or "managedhsm"; Type the ARM resource type.
		Kind string `json:"kind"`
		Type string `json:"type"`
	} `json:"vaults"`
}

// ReadEmulatorManifest reads an emulator manifest file.
func ReadEmulatorManifest(path string) (EmulatorManifest, error) {
	var m EmulatorManifest
	raw, err := os.ReadFile(path) // #nosec G304 -- path from the operator's own emulator-manifest flag or the demo's data directory
	if err != nil {
		return m, fmt.Errorf("%w: %w", ErrConnectionsFile, err)
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return m, fmt.Errorf("%w %s: %w", ErrConnectionsFile, path, err)
	}
	return m, nil
}

// EmulatorConnectionFrom builds the connection to an emulator: its token
// authority and CA. In host-routing mode vault hosts *.localhost are
// dialled at the routing listener's IP and challenge-resource verification
// stays on; otherwise it is off (vaults are addressed by IP).
func EmulatorConnectionFrom(m EmulatorManifest) (azure.Connection, error) {
	ca, err := os.ReadFile(m.CACertFile)
	if err != nil {
		return azure.Connection{}, fmt.Errorf("%w: emulator CA: %w", ErrConnectionsFile, err)
	}
	c := azure.Connection{
		Name: EmulatorConnection, CredentialType: azure.CredentialClientSecret,
		TenantID: m.TenantID, ClientID: m.ClientID, ClientSecret: m.ClientSecret,
		ActiveDirectoryEndpoint: m.AuthorityHost, ExtraCAPEM: ca, DisableChallengeResourceVerification: true,
		ResourceManagerEndpoint: m.ResourceManagerURL,
	}
	if m.HostRouting != nil {
		host, _, err := net.SplitHostPort(m.HostRouting.Address)
		if err != nil {
			return azure.Connection{}, fmt.Errorf("%w: emulator host routing address %q: %w", ErrConnectionsFile, m.HostRouting.Address, err)
		}
		if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
			host = azure.DefaultLocalhostIP // listening on every address: loopback is one
		}
		c.LocalhostIP, c.DisableChallengeResourceVerification = host, false
	}
	return c, c.Validate()
}

// ConfiguredConnections loads the connections given by configuration: a
// connections file and an emulator manifest (either may be empty).
func ConfiguredConnections(file, manifest string) (map[string]azure.Connection, error) {
	conns := map[string]azure.Connection{}
	if file != "" {
		m, err := LoadConnections(file)
		if err != nil {
			return nil, err
		}
		for k, v := range m {
			conns[k] = v
		}
	}
	if manifest != "" {
		m, err := ReadEmulatorManifest(manifest)
		if err != nil {
			return nil, err
		}
		c, err := EmulatorConnectionFrom(m)
		if err != nil {
			return nil, err
		}
		conns[c.Name] = c
	}
	return conns, nil
}
