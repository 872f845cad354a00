package azure

import (
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
)

// Cloud names, as CCKM spells them.
const (
	CloudPublic     = "AzureCloud"
	CloudChina      = "AzureChinaCloud"
	CloudGovernment = "AzureUSGovernment"
	CloudStack      = "AzureStack"
)

// Azure Stack connection types (CCKM's azure_stack_connection_type).
const (
	AzureStackAAD  = "AAD"
	AzureStackADFS = "ADFS"
)

// Credential types of a connection.
const (
	// CredentialClientSecret authenticates an app registration with a secret.
	CredentialClientSecret = "client_secret"
	// CredentialClientCertificate authenticates with a certificate and its
	// private key (PEM).
	CredentialClientCertificate = "client_certificate"
	// CredentialManagedIdentity uses the ambient identity of the host:
	// workload identity (AKS) first, then the managed identity endpoint.
	CredentialManagedIdentity = "managed_identity"
)

// Connection is everything needed to reach a tenant's vaults. Secrets are
// plain here: sealing them at rest is the registry's job.
type Connection struct {
	Name           string `json:"name"`
	CredentialType string `json:"credential_type"`
	TenantID       string `json:"tenant_id"`
	ClientID       string `json:"client_id"`
	ClientSecret   string `json:"-"`
	// CertificatePEM holds the client certificate and its private key.
	CertificatePEM []byte `json:"-"`
	// Cloud is one of the Cloud* names; empty means CloudPublic.
	Cloud string `json:"cloud_name"`
	// ActiveDirectoryEndpoint overrides the cloud's Entra ID authority
	// host (required for AzureStack).
	ActiveDirectoryEndpoint string `json:"active_directory_endpoint,omitempty"`
	// KeyVaultDNSSuffix overrides the cloud's vault DNS suffix, e.g.
	// "vault.azure.net".
	KeyVaultDNSSuffix string `json:"key_vault_dns_suffix,omitempty"`
	// ResourceManagerEndpoint overrides the cloud's Azure Resource Manager
	// URL (CCKM: resource_manager_url; required for AzureStack). Read it
	// with [Connection.ResourceManagerURL], which applies the default.
	ResourceManagerEndpoint string `json:"resource_manager_url,omitempty"`
	// ManagementEndpoint overrides the audience of Resource Manager tokens
	// (CCKM: management_url). Read it with
	// [Connection.ResourceManagerAudience].
	ManagementEndpoint string `json:"management_url,omitempty"`
	// AzureStackConnectionType is AAD or ADFS for an AzureStack
	// connection (CCKM: azure_stack_connection_type); informational: the
	// authority is active_directory_endpoint either way.
	AzureStackConnectionType string `json:"azure_stack_connection_type,omitempty"`
	// ExtraCAPEM is a CA (PEM) trusted in addition to the system roots,
	// for Azure Stack or emulators (CCKM: azure_stack_server_cert).
	ExtraCAPEM []byte `json:"-"`
	// DisableChallengeResourceVerification lets a vault's 401 challenge
	// name a resource its host does not end with: needed for private
	// endpoints and vaults addressed by IP. Off by default.
	DisableChallengeResourceVerification bool `json:"disable_challenge_resource_verification"`
	// LocalhostIP is where vault hosts under .localhost are dialled (an
	// emulator in host-routing mode serves every vault as
	// <vault>.vault.localhost:PORT on one listener). Empty: 127.0.0.1, as
	// RFC 6761 has *.localhost resolve to loopback. Names outside
	// .localhost resolve as usual. Configuration only, never stored.
	LocalhostIP string `json:"-"`
}

// Validate reports a connection that cannot work.
func (c Connection) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w %q: %s", ErrInvalidConnection, c.Name, fmt.Sprintf(format, a...))
	}
	if c.LocalhostIP != "" && net.ParseIP(c.LocalhostIP) == nil {
		return bad("localhost IP %q is not an IP address", c.LocalhostIP)
	}
	switch c.CredentialType {
	case CredentialClientSecret:
		if c.ClientSecret == "" {
			return bad("client_secret is required")
		}
	case CredentialClientCertificate:
		if len(c.CertificatePEM) == 0 {
			return bad("a certificate with its private key is required")
		}
	case CredentialManagedIdentity:
	default:
		return bad("credential type must be %s, %s or %s", CredentialClientSecret, CredentialClientCertificate, CredentialManagedIdentity)
	}
	if c.CredentialType != CredentialManagedIdentity && (c.TenantID == "" || c.ClientID == "") {
		return bad("tenant_id and client_id are required")
	}
	switch c.Cloud {
	case "", CloudPublic, CloudChina, CloudGovernment:
	case CloudStack:
		if c.ActiveDirectoryEndpoint == "" || c.KeyVaultDNSSuffix == "" {
			return bad("AzureStack needs active_directory_endpoint and key_vault_dns_suffix")
		}
	default:
		return bad("unknown cloud %q", c.Cloud)
	}
	if c.ActiveDirectoryEndpoint != "" {
		if u, err := url.Parse(c.ActiveDirectoryEndpoint); err != nil || u.Scheme != "https" || u.Host == "" {
			return bad("active_directory_endpoint must be an https URL")
		}
	}
	for _, ep := range []struct{ name, v string }{{"resource_manager_url", c.ResourceManagerEndpoint}, {"management_url", c.ManagementEndpoint}} {
		if ep.v == "" {
			continue
		}
		if u, err := url.Parse(ep.v); err != nil || u.Scheme != "https" || u.Host == "" {
			return bad("%s must be an https URL", ep.name)
		}
	}
	switch c.AzureStackConnectionType {
	case "", AzureStackAAD, AzureStackADFS:
	default:
		return bad("azure_stack_connection_type must be %s or %s", AzureStackAAD, AzureStackADFS)
	}
	if len(c.ExtraCAPEM) > 0 && !x509.NewCertPool().AppendCertsFromPEM(c.ExtraCAPEM) {
		return bad("the extra CA is not a PEM certificate")
	}
	return nil
}

// CloudConfig is the azcore cloud configuration of the connection: its
// Entra ID authority and, under cloud.ResourceManager, the Resource
// Manager endpoint and audience ([Connection.ResourceManagerURL],
// [Connection.ResourceManagerAudience]) that arm clients use. The
// Services map is the connection's own (azcore's shared cloud maps are
// never written).
func (c Connection) CloudConfig() cloud.Configuration {
	var cfg cloud.Configuration
	switch c.Cloud {
	case CloudChina:
		cfg = cloud.AzureChina
	case CloudGovernment:
		cfg = cloud.AzureGovernment
	default:
		cfg = cloud.AzurePublic
	}
	if c.ActiveDirectoryEndpoint != "" {
		cfg.ActiveDirectoryAuthorityHost = strings.TrimSuffix(c.ActiveDirectoryEndpoint, "/") + "/"
	}
	services := make(map[cloud.ServiceName]cloud.ServiceConfiguration, len(cfg.Services)+1)
	for k, v := range cfg.Services {
		services[k] = v
	}
	if ep := c.ResourceManagerURL(); ep != "" {
		services[cloud.ResourceManager] = cloud.ServiceConfiguration{Endpoint: ep, Audience: c.ResourceManagerAudience()}
	}
	cfg.Services = services
	return cfg
}

// Cloud defaults of the endpoints a connection may override.
const (
	// ResourceManagerPublic, ResourceManagerChina and
	// ResourceManagerGovernment are the clouds' Azure Resource Manager URLs.
	ResourceManagerPublic     = "https://management.azure.com/"
	ResourceManagerChina      = "https://management.chinacloudapi.cn/"
	ResourceManagerGovernment = "https://management.usgovcloudapi.net/"
	// ManagementAudiencePublic, ManagementAudienceChina and
	// ManagementAudienceGovernment are the audiences of the clouds'
	// Resource Manager tokens.
	ManagementAudiencePublic     = "https://management.core.windows.net/"
	ManagementAudienceChina      = "https://management.core.chinacloudapi.cn/"
	ManagementAudienceGovernment = "https://management.core.usgovcloudapi.net/"
	// ManagedHSMSuffixPublic, ManagedHSMSuffixChina and
	// ManagedHSMSuffixGovernment are the clouds' Managed HSM DNS suffixes.
	ManagedHSMSuffixPublic     = "managedhsm.azure.net"
	ManagedHSMSuffixChina      = "managedhsm.azure.cn"
	ManagedHSMSuffixGovernment = "managedhsm.usgovcloudapi.net"
)

// DefaultResourceManagerURL is the Azure Resource Manager URL of a cloud
// (with a trailing slash): "" for AzureStack, which has no default.
func DefaultResourceManagerURL(cloudName string) string {
	switch cloudName {
	case "", CloudPublic:
		return ResourceManagerPublic
	case CloudChina:
		return ResourceManagerChina
	case CloudGovernment:
		return ResourceManagerGovernment
	}
	return ""
}

// DefaultManagedHSMDNSSuffix is the Managed HSM DNS suffix of a cloud: ""
// for AzureStack, which has no Managed HSM.
func DefaultManagedHSMDNSSuffix(cloudName string) string {
	switch cloudName {
	case "", CloudPublic:
		return ManagedHSMSuffixPublic
	case CloudChina:
		return ManagedHSMSuffixChina
	case CloudGovernment:
		return ManagedHSMSuffixGovernment
	}
	return ""
}

// ResourceManagerURL is the Azure Resource Manager URL the connection's
// discovery calls go to, with a trailing slash: resource_manager_url when
// set, else the cloud's ([DefaultResourceManagerURL]); "" for an AzureStack
// connection without one.
func (c Connection) ResourceManagerURL() string {
	if c.ResourceManagerEndpoint != "" {
		return strings.TrimSuffix(c.ResourceManagerEndpoint, "/") + "/"
	}
	return DefaultResourceManagerURL(c.Cloud)
}

// ResourceManagerAudience is the audience of the connection's Resource
// Manager tokens (the scope is it + "/.default"): management_url when set,
// else the cloud's; for AzureStack without management_url, the Resource
// Manager URL.
func (c Connection) ResourceManagerAudience() string {
	if c.ManagementEndpoint != "" {
		return strings.TrimSuffix(c.ManagementEndpoint, "/") + "/"
	}
	switch c.Cloud {
	case "", CloudPublic:
		return ManagementAudiencePublic
	case CloudChina:
		return ManagementAudienceChina
	case CloudGovernment:
		return ManagementAudienceGovernment
	}
	return c.ResourceManagerURL()
}

// ManagedHSMDNSSuffix is the DNS suffix of the connection cloud's Managed
// HSM pools (managedhsm.azure.net, …; see [DefaultManagedHSMDNSSuffix]);
// "" for AzureStack.
func (c Connection) ManagedHSMDNSSuffix() string { return DefaultManagedHSMDNSSuffix(c.Cloud) }

// ManagedHSMURI is the URI of a Managed HSM pool of this connection's
// cloud: https://<name>.<suffix>/ ("" for AzureStack).
func (c Connection) ManagedHSMURI(name string) string {
	suffix := c.ManagedHSMDNSSuffix()
	if suffix == "" {
		return ""
	}
	return "https://" + name + "." + suffix + "/"
}

// VaultDNSSuffix is the DNS suffix of the connection's vaults.
func (c Connection) VaultDNSSuffix() string {
	if c.KeyVaultDNSSuffix != "" {
		return strings.TrimPrefix(c.KeyVaultDNSSuffix, ".")
	}
	switch c.Cloud {
	case CloudChina:
		return "vault.azure.cn"
	case CloudGovernment:
		return "vault.usgovcloudapi.net"
	default:
		return "vault.azure.net"
	}
}

// VaultURI is the URI of a vault of this connection when the registry
// gives none: https://<name>.<suffix>.
func (c Connection) VaultURI(name string) string {
	return "https://" + name + "." + c.VaultDNSSuffix()
}

// CheckVaultURI reports a vault URI the SDK cannot use: it must be an
// absolute https URL with no path (the SDK reads key names from the first
// path segments of a kid).
func CheckVaultURI(uri string) error {
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "https" || u.Host == "" || strings.Trim(u.Path, "/") != "" || u.RawQuery != "" {
		return fmt.Errorf("%w: %q must be an https URL with no path", ErrInvalidVaultURI, uri)
	}
	return nil
}
