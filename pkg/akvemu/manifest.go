package akvemu

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
)

// Manifest tells another process how to reach the emulator. It is written as JSON by
// WriteManifest (and the binary's --manifest flag) and read back with LoadManifest.
type Manifest struct {
	TenantID      string `json:"tenant_id"`      // emulated tenant
	ClientID      string `json:"client_id"`      // default principal
	ClientSecret  string `json:"client_secret"`  // its client secret
	AuthorityHost string `json:"authority_host"` // for cloud.Configuration.ActiveDirectoryAuthorityHost
	// ResourceManagerURL is the emulated Azure Resource Manager endpoint
	// (https://IP:PORT/), for cloud.Configuration.Services[cloud.ResourceManager] and
	// akvsync's resource_manager_url.
	ResourceManagerURL string          `json:"resource_manager_url"`
	CACertFile         string          `json:"ca_cert_file"`           // PEM of the emulator CA
	AdminURL           string          `json:"admin_url,omitempty"`    // admin API base URL
	HostRouting        *HostRouting    `json:"host_routing,omitempty"` // set in host-routing mode
	Vaults             []ManifestVault `json:"vaults"`                 // every vault, in creation order
	// CACertPEM is the CA certificate (filled by Manifest and LoadManifest, not serialized).
	CACertPEM []byte `json:"-"`
}

// HostRouting describes the host-routing listener.
type HostRouting struct {
	// Address is the listener's ip:port; vault hosts <name>.vault.localhost:PORT must be
	// dialled there.
	Address string `json:"address"`
	// Resource is the challenge resource (and token audience) of host-routed vaults.
	Resource string `json:"resource"`
	// HSMResource is the challenge resource (and token audience) of host-routed
	// managed HSM pools (<pool>.managedhsm.localhost:PORT).
	HSMResource string `json:"hsm_resource"`
}

// ManifestVault is one vault or managed HSM pool in the manifest.
type ManifestVault struct {
	Name           string `json:"name"`               // vault name
	Kind           Kind   `json:"kind"`               // vault or managedhsm
	URL            string `json:"url"`                // https://127.0.0.1:PORT
	SubscriptionID string `json:"subscription_id"`    // subscription (throttle group)
	SKU            SKU    `json:"sku"`                // standard or premium; Standard_B1 for pools
	HostURL        string `json:"host_url,omitempty"` // https://<name>.vault.localhost:PORT (pools: .managedhsm.localhost) in host-routing mode
	ResourceGroup  string `json:"resource_group"`     // ARM resource group
	Location       string `json:"location"`           // ARM location
	ResourceID     string `json:"resource_id"`        // ARM id: /subscriptions/…/providers/Microsoft.KeyVault/vaults/<name>
	ResourceType   string `json:"type"`               // Microsoft.KeyVault/vaults or Microsoft.KeyVault/managedHSMs
}

func (v *Vault) manifestEntry() ManifestVault {
	return ManifestVault{Name: v.name, Kind: v.kind, URL: v.url, SubscriptionID: v.subID, SKU: v.sku, HostURL: v.hostURL,
		ResourceGroup: v.rg, Location: v.location, ResourceID: v.ResourceID(), ResourceType: v.kind.ARMType()}
}

// Manifest returns the current manifest (vaults in creation order).
func (e *Emulator) Manifest() Manifest {
	m := Manifest{
		TenantID: e.tokens.tenant, ClientID: e.clientID, ClientSecret: e.clientSecret,
		AuthorityHost: e.AuthorityHost(), ResourceManagerURL: e.ResourceManagerURL(), CACertFile: e.caFile, AdminURL: e.adminURL,
		CACertPEM: e.CACertPEM(),
	}
	if e.cfg.HostRouting {
		m.HostRouting = &HostRouting{Address: net.JoinHostPort(e.cfg.ListenHost, fmt.Sprint(e.hostPort)), Resource: e.hostResource, HSMResource: e.hsmHostResource}
	}
	vaults := e.Vaults()
	m.Vaults = make([]ManifestVault, len(vaults))
	for i, v := range vaults {
		m.Vaults[i] = v.manifestEntry()
	}
	return m
}

// WriteManifest writes the manifest as indented JSON (mode 0600: it holds the client
// secret), atomically via a temporary file.
func (e *Emulator) WriteManifest(path string) error {
	b, err := json.MarshalIndent(e.Manifest(), "", "  ") // #nosec G117 -- the emulator's manifest hands its test client secret to test clients on purpose; an emulator credential, not a real one
	if err != nil {
		return fmt.Errorf("encode manifest: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return fmt.Errorf("create manifest directory: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	return nil
}

// LoadManifest reads a manifest and the CA certificate it points to.
func LoadManifest(path string) (Manifest, error) {
	b, err := os.ReadFile(path) // #nosec G304 -- path from the caller (the emulator's or the bench's own manifest flag)
	if err != nil {
		return Manifest{}, fmt.Errorf("read manifest: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return Manifest{}, fmt.Errorf("decode manifest %s: %w", path, err)
	}
	if m.CACertPEM, err = os.ReadFile(m.CACertFile); err != nil {
		return Manifest{}, fmt.Errorf("read CA file: %w", err)
	}
	return m, nil
}

// Transport builds a client transport from the manifest: it trusts the CA and maps
// *.localhost hosts to the authority's IP.
func (m Manifest) Transport() (*http.Transport, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(m.CACertPEM) {
		return nil, fmt.Errorf("%w: manifest CA certificate is not PEM", ErrInvalidConfig)
	}
	u, err := url.Parse(m.AuthorityHost)
	if err != nil {
		return nil, fmt.Errorf("%w: authority host: %w", ErrInvalidConfig, err)
	}
	return newClientTransport(pool, u.Hostname()), nil
}

// Cloud returns the cloud configuration pointing azidentity at the emulated
// authority and azcore's ARM clients at the emulated Resource Manager.
func (m Manifest) Cloud() cloud.Configuration {
	return emulatorCloud(m.AuthorityHost, m.ResourceManagerURL)
}

func emulatorCloud(authority, armURL string) cloud.Configuration {
	c := cloud.Configuration{ActiveDirectoryAuthorityHost: authority}
	if armURL != "" {
		c.Services = map[cloud.ServiceName]cloud.ServiceConfiguration{
			cloud.ResourceManager: {Audience: ResourceManagerAudience, Endpoint: armURL},
		}
	}
	return c
}

// Credential returns a client-secret credential for the manifest's principal.
func (m Manifest) Credential() (azcore.TokenCredential, error) {
	t, err := m.Transport()
	if err != nil {
		return nil, err
	}
	cred, err := azidentity.NewClientSecretCredential(m.TenantID, m.ClientID, m.ClientSecret, &azidentity.ClientSecretCredentialOptions{
		ClientOptions: azcore.ClientOptions{
			Cloud:     m.Cloud(),
			Transport: &http.Client{Transport: t},
		},
		DisableInstanceDiscovery: true,
	})
	if err != nil {
		return nil, fmt.Errorf("client secret credential: %w", err)
	}
	return cred, nil
}

// ClientOptions returns azkeys options for the manifest's vault URLs.
func (m Manifest) ClientOptions() (*azkeys.ClientOptions, error) {
	t, err := m.Transport()
	if err != nil {
		return nil, err
	}
	return &azkeys.ClientOptions{
		ClientOptions:                        azcore.ClientOptions{Transport: &http.Client{Transport: t}},
		DisableChallengeResourceVerification: true,
	}, nil
}
