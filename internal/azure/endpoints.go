package azure

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"
)

// ErrEndpointRefused is wrapped by the errors of [EndpointPolicy]: an
// endpoint or vault host that is not one of the connection's cloud, or a
// loopback, link-local or metadata address the operator did not allow.
var ErrEndpointRefused = errors.New("endpoint refused")

// cloudHosts are the hosts a cloud's connections may talk to.
type cloudHosts struct {
	// authorities are the Entra ID hosts (active_directory_endpoint).
	authorities []string
	// management are the Resource Manager and classic management hosts
	// (resource_manager_url, management_url).
	management []string
	// vaultSuffixes are the DNS suffixes of vaults and Managed HSM pools
	// (vault hosts are under them; key_vault_dns_suffix and
	// vault_resource_url's host are one of them).
	vaultSuffixes []string
}

var knownClouds = map[string]cloudHosts{
	CloudPublic: {
		authorities:   []string{"login.microsoftonline.com"},
		management:    []string{"management.azure.com", "management.core.windows.net"},
		vaultSuffixes: []string{"vault.azure.net", ManagedHSMSuffixPublic},
	},
	CloudChina: {
		authorities:   []string{"login.chinacloudapi.cn"},
		management:    []string{"management.chinacloudapi.cn", "management.core.chinacloudapi.cn"},
		vaultSuffixes: []string{"vault.azure.cn", ManagedHSMSuffixChina},
	},
	CloudGovernment: {
		authorities:   []string{"login.microsoftonline.us"},
		management:    []string{"management.usgovcloudapi.net", "management.core.usgovcloudapi.net"},
		vaultSuffixes: []string{"vault.usgovcloudapi.net", ManagedHSMSuffixGovernment},
	},
}

// Endpoint kinds checked by [EndpointPolicy.CheckURL].
const (
	// EndpointAuthority is active_directory_endpoint.
	EndpointAuthority = "authority"
	// EndpointManagement is resource_manager_url or management_url.
	EndpointManagement = "management"
	// EndpointAudience is management_url: the audience of Resource Manager
	// tokens, not a host called (an AzureStack AAD audience is an app id
	// URI such as https://management.<tenant>.onmicrosoft.com/).
	EndpointAudience = "management audience"
	// EndpointVaultResource is vault_resource_url (an audience too).
	EndpointVaultResource = "vault resource"
	// EndpointVault is a vault's or Managed HSM pool's URI.
	EndpointVault = "vault"
)

// EndpointPolicy decides which hosts a connection stored through the API
// may send its secret, or the tokens issued for it, to: the hosts of the
// connection's cloud (for AzureStack, hosts under the domain of its
// key_vault_dns_suffix; an AAD stack may also use the public clouds'
// authorities). Loopback, link-local, private and unspecified addresses,
// localhost names and the cloud metadata address are refused unless
// AllowPrivate is set (emulators and tests); allowed, they are accepted
// for any cloud.
type EndpointPolicy struct {
	// AllowPrivate accepts loopback, link-local and private addresses and
	// localhost names. Set only by an operator's explicit choice.
	AllowPrivate bool
}

// CheckURL checks the host of the endpoint URL raw (field names it in the
// error) of the given kind for a connection of the cloud; stackSuffix is
// the connection's key_vault_dns_suffix (needed for AzureStack) and
// stackType its azure_stack_connection_type. An empty raw is accepted.
func (p EndpointPolicy) CheckURL(field, kind, raw, cloud, stackSuffix, stackType string) error {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || u.Hostname() == "" {
		return fmt.Errorf("%w: %s is not a URL with a host", ErrEndpointRefused, field)
	}
	return p.CheckHost(field, kind, u.Hostname(), cloud, stackSuffix, stackType)
}

// CheckHost is [EndpointPolicy.CheckURL] for a host name (no port).
func (p EndpointPolicy) CheckHost(field, kind, host, cloud, stackSuffix, stackType string) error {
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if IsPrivateHost(host) {
		if p.AllowPrivate {
			return nil
		}
		return fmt.Errorf("%w: %s: %s is a loopback, link-local, private or metadata address; the operator has not allowed private endpoints", ErrEndpointRefused, field, host)
	}
	if cloud == "" {
		cloud = CloudPublic
	}
	if cloud == CloudStack {
		return checkStackHost(field, kind, host, stackSuffix, stackType)
	}
	hosts, ok := knownClouds[cloud]
	if !ok {
		return fmt.Errorf("%w: %s: unknown cloud %q", ErrEndpointRefused, field, cloud)
	}
	var allowed []string
	switch kind {
	case EndpointAuthority:
		allowed = hosts.authorities
	case EndpointManagement, EndpointAudience:
		allowed = hosts.management
	case EndpointVaultResource:
		allowed = hosts.vaultSuffixes
	case EndpointVault:
		for _, s := range hosts.vaultSuffixes {
			if under(host, s) {
				return nil
			}
		}
		return fmt.Errorf("%w: %s: %s is not a vault or Managed HSM pool of %s (hosts under %s)", ErrEndpointRefused, field, host, cloud, strings.Join(hosts.vaultSuffixes, ", "))
	}
	if slices.Contains(allowed, host) {
		return nil
	}
	return fmt.Errorf("%w: %s: host %s is not %s's %s host (%s)", ErrEndpointRefused, field, host, cloud, kind, strings.Join(allowed, ", "))
}

// CheckVaultSuffix checks key_vault_dns_suffix: for the public clouds it is
// one of the cloud's; AzureStack defines its own (only a private name is
// refused, unless allowed).
func (p EndpointPolicy) CheckVaultSuffix(field, suffix, cloud string) error {
	if suffix == "" {
		return nil
	}
	s := strings.TrimSuffix(strings.TrimPrefix(strings.ToLower(suffix), "."), ".")
	if IsPrivateHost(s) {
		if p.AllowPrivate {
			return nil
		}
		return fmt.Errorf("%w: %s: %s is a loopback or private name; the operator has not allowed private endpoints", ErrEndpointRefused, field, s)
	}
	if cloud == "" {
		cloud = CloudPublic
	}
	if cloud == CloudStack {
		return nil
	}
	hosts, ok := knownClouds[cloud]
	if !ok {
		return fmt.Errorf("%w: %s: unknown cloud %q", ErrEndpointRefused, field, cloud)
	}
	if slices.Contains(hosts.vaultSuffixes, s) {
		return nil
	}
	return fmt.Errorf("%w: %s %s is not one of %s's (%s)", ErrEndpointRefused, field, s, cloud, strings.Join(hosts.vaultSuffixes, ", "))
}

// checkStackHost checks a host of an AzureStack connection: under the
// domain of the stack's vault suffix (the suffix without its first label,
// e.g. local.azurestack.external for vault.local.azurestack.external);
// vaults are under the suffix itself; an AAD stack's authority may also be
// a public cloud's.
func checkStackHost(field, kind, host, suffix, stackType string) error {
	suffix = strings.TrimSuffix(strings.TrimPrefix(strings.ToLower(suffix), "."), ".")
	if suffix == "" {
		return fmt.Errorf("%w: %s: an AzureStack connection needs key_vault_dns_suffix", ErrEndpointRefused, field)
	}
	if kind == EndpointVault {
		if under(host, suffix) {
			return nil
		}
		return fmt.Errorf("%w: %s: %s is not a vault under the stack's suffix %s", ErrEndpointRefused, field, host, suffix)
	}
	if kind == EndpointAudience || kind == EndpointVaultResource {
		return nil // an audience names no host to call; only private ones are refused
	}
	if kind == EndpointAuthority && stackType != AzureStackADFS {
		for _, c := range knownClouds {
			if slices.Contains(c.authorities, host) {
				return nil
			}
		}
	}
	domain := suffix
	if i := strings.IndexByte(suffix, '.'); i >= 0 {
		domain = suffix[i+1:]
	}
	if host == domain || under(host, domain) {
		return nil
	}
	return fmt.Errorf("%w: %s: host %s is not under the stack's domain %s (from key_vault_dns_suffix %s)", ErrEndpointRefused, field, host, domain, suffix)
}

// under reports whether host is a subdomain of suffix.
func under(host, suffix string) bool {
	return strings.HasSuffix(host, "."+suffix)
}

// IsPrivateHost reports a host (name or IP literal, no port) that is
// loopback, link-local (which holds the 169.254.169.254 metadata
// address), private, unspecified or a localhost name.
func IsPrivateHost(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	if i := strings.IndexByte(host, '%'); i >= 0 { // IPv6 zone
		host = host[:i]
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		// Not an IP literal; net.ParseIP also takes forms netip refuses.
		ip := net.ParseIP(host)
		if ip == nil {
			return false
		}
		a, _ = netip.AddrFromSlice(ip)
	}
	a = a.Unmap()
	return a.IsLoopback() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() || a.IsPrivate() ||
		a.IsUnspecified() || a.IsMulticast() || a.IsInterfaceLocalMulticast()
}
