package connections

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/akvsync/akvsync/internal/azure"
)

// Limits of connection fields.
const (
	// MaxDescriptionLen bounds the description.
	MaxDescriptionLen = 1024
	// MaxLabels bounds the labels of a connection.
	MaxLabels = 50
	// MaxLabelKeyLen and MaxLabelValueLen bound one label.
	MaxLabelKeyLen   = 128
	MaxLabelValueLen = 256
	// MaxProducts bounds the products list.
	MaxProducts = 16
	// MaxIDLen bounds tenant_id and client_id.
	MaxIDLen = 256
	// MaxURLLen bounds each endpoint URL.
	MaxURLLen = 2048
	// MaxSecretLen bounds client_secret.
	MaxSecretLen = 4096
	// MaxPEMLen bounds certificate and azure_stack_server_cert.
	MaxPEMLen = 64 << 10
	// MaxMetaBytes bounds meta, compacted.
	MaxMetaBytes = 16 << 10
)

var (
	nameRE    = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
	idRE      = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
	productRE = regexp.MustCompile(`^[a-z0-9_-]{1,32}$`)
	dnsRE     = regexp.MustCompile(`^\.?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)
)

// validName reports whether name is an acceptable connection name:
// ^[A-Za-z0-9._-]{1,64}$ without "..", and not only dots (a name may end
// up in a path or a subject).
func validName(name string) bool {
	return nameRE.MatchString(name) && !strings.Contains(name, "..") && strings.Trim(name, ".") != ""
}

// validate checks a connection's settings and secrets as they would be
// stored; pending says the client certificate is still to be generated
// (so it is not there yet). It has no side effect and its messages never
// contain a secret.
func validate(s Settings, p plainSecrets, pending bool) error {
	if s.Name == "" {
		return invalidf("name is required")
	}
	if !validName(s.Name) {
		return invalidf("name %q must be 1 to 64 letters, digits, '.', '_' or '-', without '..'", s.Name)
	}
	if len(s.Description) > MaxDescriptionLen || !utf8.ValidString(s.Description) {
		return invalidf("description must be valid UTF-8 of at most %d bytes", MaxDescriptionLen)
	}
	if err := validateLabels(s.Labels); err != nil {
		return err
	}
	if err := validateProducts(s.Products); err != nil {
		return err
	}
	switch s.CredentialType {
	case azure.CredentialClientSecret, azure.CredentialClientCertificate, azure.CredentialManagedIdentity:
	default:
		return invalidf("credential_type %q must be %s, %s or %s", s.CredentialType,
			azure.CredentialClientSecret, azure.CredentialClientCertificate, azure.CredentialManagedIdentity)
	}
	switch s.CloudName {
	case azure.CloudPublic, azure.CloudChina, azure.CloudGovernment, azure.CloudStack:
	default:
		return invalidf("cloud_name %q must be %s, %s, %s or %s", s.CloudName,
			azure.CloudPublic, azure.CloudChina, azure.CloudGovernment, azure.CloudStack)
	}
	needIDs := s.CredentialType != azure.CredentialManagedIdentity
	for _, f := range []struct{ name, v string }{{"tenant_id", s.TenantID}, {"client_id", s.ClientID}} {
		if f.v == "" {
			if needIDs {
				return invalidf("%s is required for credential_type %s", f.name, s.CredentialType)
			}
			continue
		}
		if len(f.v) > MaxIDLen || !idRE.MatchString(f.v) {
			return invalidf("%s must be at most %d letters, digits, '.', '_' or '-'", f.name, MaxIDLen)
		}
	}
	if s.IsCertificateUsed && s.CredentialType != azure.CredentialClientCertificate {
		return invalidf("is_certificate_used needs credential_type %s, not %s", azure.CredentialClientCertificate, s.CredentialType)
	}
	if pending {
		if p.ClientSecret != "" {
			return invalidf("is_certificate_used and client_secret are mutually exclusive")
		}
	} else if err := validateSecrets(s.CredentialType, p); err != nil {
		return err
	}
	if s.CertDuration < 1 || s.CertDuration > MaxCertDuration {
		return invalidf("cert_duration must be from 1 to %d days, not %d", MaxCertDuration, s.CertDuration)
	}
	if len(s.Meta) > MaxMetaBytes {
		return invalidf("meta is longer than %d bytes", MaxMetaBytes)
	}
	if len(s.Meta) > 0 && !json.Valid(s.Meta) {
		return invalidf("meta must be JSON")
	}
	for _, f := range []struct{ name, v string }{
		{"active_directory_endpoint", s.ActiveDirectoryEndpoint},
		{"vault_resource_url", s.VaultResourceURL},
		{"management_url", s.ManagementURL},
		{"resource_manager_url", s.ResourceManagerURL},
	} {
		if err := validateURL(f.name, f.v); err != nil {
			return err
		}
	}
	if s.KeyVaultDNSSuffix != "" && (len(s.KeyVaultDNSSuffix) > 253 || !dnsRE.MatchString(s.KeyVaultDNSSuffix)) {
		return invalidf("key_vault_dns_suffix %q must be a DNS name such as vault.azure.net", s.KeyVaultDNSSuffix)
	}
	if s.CloudName == azure.CloudStack && (s.ActiveDirectoryEndpoint == "" || s.KeyVaultDNSSuffix == "" || s.ResourceManagerURL == "") {
		return invalidf("cloud_name %s needs active_directory_endpoint, key_vault_dns_suffix and resource_manager_url", azure.CloudStack)
	}
	switch s.AzureStackConnectionType {
	case "":
	case azure.AzureStackAAD, azure.AzureStackADFS:
		if s.CloudName != azure.CloudStack {
			return invalidf("azure_stack_connection_type is only used with cloud_name %s", azure.CloudStack)
		}
	default:
		return invalidf("azure_stack_connection_type %q must be %s or %s", s.AzureStackConnectionType, azure.AzureStackAAD, azure.AzureStackADFS)
	}
	if err := validateCA(s.AzureStackServerCert); err != nil {
		return err
	}
	if pending {
		return nil // the adapter's check needs the certificate
	}
	// The adapter's own check, on the decrypted form, as a safety net.
	if err := azureConnection(s, p).Validate(); err != nil {
		return invalidf("%s", strings.TrimPrefix(err.Error(), azure.ErrInvalidConnection.Error()+" "))
	}
	return nil
}

func validateLabels(labels map[string]string) error {
	if len(labels) > MaxLabels {
		return invalidf("labels has %d entries; at most %d are allowed", len(labels), MaxLabels)
	}
	for k, v := range labels {
		if k == "" || len(k) > MaxLabelKeyLen || len(v) > MaxLabelValueLen || !utf8.ValidString(k) || !utf8.ValidString(v) {
			return invalidf("labels: label %q: keys must be 1 to %d bytes and values at most %d bytes of UTF-8", k, MaxLabelKeyLen, MaxLabelValueLen)
		}
	}
	return nil
}

func validateProducts(products []string) error {
	if len(products) == 0 {
		return invalidf("products must not be empty")
	}
	if len(products) > MaxProducts {
		return invalidf("products has %d entries; at most %d are allowed", len(products), MaxProducts)
	}
	seen := make(map[string]bool, len(products))
	for _, p := range products {
		if !productRE.MatchString(p) {
			return invalidf("products: %q must be 1 to 32 lower-case letters, digits, '_' or '-'", p)
		}
		if seen[p] {
			return invalidf("products: %q is listed twice", p)
		}
		seen[p] = true
	}
	return nil
}

// validateSecrets checks that exactly the secret the credential type needs
// is given, and that a certificate parses and holds its private key.
func validateSecrets(credType string, p plainSecrets) error {
	switch credType {
	case azure.CredentialClientSecret:
		if p.ClientSecret == "" {
			return invalidf("client_secret is required for credential_type %s", credType)
		}
		if len(p.Certificate) > 0 {
			return invalidf("certificate is only used with credential_type %s", azure.CredentialClientCertificate)
		}
	case azure.CredentialClientCertificate:
		if len(p.Certificate) == 0 {
			return invalidf("certificate (PEM certificate and private key) is required for credential_type %s", credType)
		}
		if p.ClientSecret != "" {
			return invalidf("client_secret is only used with credential_type %s", azure.CredentialClientSecret)
		}
		if err := checkClientCertificate(p.Certificate); err != nil {
			return err
		}
	case azure.CredentialManagedIdentity:
		if p.ClientSecret != "" || len(p.Certificate) > 0 {
			return invalidf("credential_type %s takes neither client_secret nor certificate", credType)
		}
	}
	if len(p.ClientSecret) > MaxSecretLen {
		return invalidf("client_secret is longer than %d bytes", MaxSecretLen)
	}
	return nil
}

// checkClientCertificate checks a PEM client certificate with its RSA
// private key (what Entra ID client assertions are signed with). Parse
// errors are described without echoing the input.
func checkClientCertificate(b []byte) error {
	if len(b) > MaxPEMLen {
		return invalidf("certificate is longer than %d bytes", MaxPEMLen)
	}
	if blk, _ := pem.Decode(b); blk == nil {
		return invalidf("certificate must be PEM: a CERTIFICATE block and a PRIVATE KEY block")
	}
	certs, key, err := azidentity.ParseCertificates(b, nil)
	if err != nil {
		return invalidf("certificate: %s", pemProblem(err))
	}
	rk, ok := key.(*rsa.PrivateKey)
	if !ok {
		return invalidf("certificate: the private key must be an RSA key")
	}
	for _, c := range certs {
		if pub, ok := c.PublicKey.(*rsa.PublicKey); ok && rk.PublicKey.Equal(pub) {
			return nil
		}
	}
	return invalidf("certificate: the private key does not match any certificate")
}

// pemProblem describes a certificate parse error without its details
// (which could quote key material).
func pemProblem(err error) string {
	msg := err.Error()
	for _, known := range []string{"found no certificate", "found no private key", "multiple private keys"} {
		if strings.Contains(msg, known) {
			return strings.TrimPrefix(msg, "certData contains ")
		}
	}
	return "a PEM block is not a valid certificate or private key"
}

// validateCA checks azure_stack_server_cert: PEM CA certificates and
// nothing else (it is stored in clear, so a private key is refused).
func validateCA(s string) error {
	if s == "" {
		return nil
	}
	if len(s) > MaxPEMLen {
		return invalidf("azure_stack_server_cert is longer than %d bytes", MaxPEMLen)
	}
	rest := []byte(s)
	n := 0
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			return invalidf("azure_stack_server_cert must hold only CERTIFICATE blocks, not %s (it is not a secret field)", blk.Type)
		}
		if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
			return invalidf("azure_stack_server_cert: certificate #%d does not parse", n+1)
		}
		n++
	}
	if n == 0 || len(bytes.TrimSpace(rest)) > 0 {
		return invalidf("azure_stack_server_cert must be one or more PEM certificates")
	}
	return nil
}

// validateURL checks an optional endpoint: an absolute https URL of a
// host, without credentials, query or fragment.
func validateURL(field, s string) error {
	if s == "" {
		return nil
	}
	if len(s) > MaxURLLen {
		return invalidf("%s is longer than %d bytes", field, MaxURLLen)
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.Hostname() == "" || u.User != nil ||
		u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		// The value is not echoed: it could carry credentials.
		return invalidf("%s must be an absolute https URL without credentials, query or fragment", field)
	}
	return nil
}

// checkEndpoints checks the hosts of a connection's endpoints against the
// registry's endpoint policy: its cloud's hosts, and private addresses
// only when the operator allows them.
func (r *Registry) checkEndpoints(s Settings) error {
	pol := r.cfg.Endpoints
	if err := pol.CheckVaultSuffix("key_vault_dns_suffix", s.KeyVaultDNSSuffix, s.CloudName); err != nil {
		return invalidf("%s", endpointProblem(err))
	}
	for _, f := range []struct{ name, kind, v string }{
		{"active_directory_endpoint", azure.EndpointAuthority, s.ActiveDirectoryEndpoint},
		{"resource_manager_url", azure.EndpointManagement, s.ResourceManagerURL},
		{"management_url", azure.EndpointAudience, s.ManagementURL},
		{"vault_resource_url", azure.EndpointVaultResource, s.VaultResourceURL},
	} {
		if err := pol.CheckURL(f.name, f.kind, f.v, s.CloudName, s.KeyVaultDNSSuffix, s.AzureStackConnectionType); err != nil {
			return invalidf("%s", endpointProblem(err))
		}
	}
	return nil
}

// endpointProblem is an endpoint policy error without its sentinel prefix.
func endpointProblem(err error) string {
	return strings.TrimPrefix(err.Error(), azure.ErrEndpointRefused.Error()+": ")
}

// boundFields are the settings that decide where a connection's secret,
// and the tokens issued for it, are sent (endpoints, the CA trusted for
// them, the challenge check): changing one needs the secret again, so a
// stored secret never follows an edit to a host the editor controls.
func boundFields(s Settings) []struct{ name, v string } {
	return []struct{ name, v string }{
		{"cloud_name", s.CloudName},
		{"active_directory_endpoint", s.ActiveDirectoryEndpoint},
		{"key_vault_dns_suffix", s.KeyVaultDNSSuffix},
		{"vault_resource_url", s.VaultResourceURL},
		{"management_url", s.ManagementURL},
		{"resource_manager_url", s.ResourceManagerURL},
		{"azure_stack_server_cert", s.AzureStackServerCert},
		{"azure_stack_connection_type", s.AzureStackConnectionType},
		{"disable_challenge_resource_verification", fmt.Sprint(s.DisableChallengeResourceVerification)},
	}
}

// needsCredentialAgain refuses a patch that changes a bound field (see
// [boundFields]) of a connection with a stored secret (cur) unless the
// patch gives the credential anew (next differs from cur because the
// request set it, or the server generated a new certificate).
func needsCredentialAgain(req PatchRequest, old, next Settings, cur, sec plainSecrets) error {
	if cur.ClientSecret == "" && len(cur.Certificate) == 0 {
		return nil // nothing stored to exfiltrate
	}
	if sec.ClientSecret == "" && len(sec.Certificate) == 0 {
		return nil // the patched connection keeps no secret (managed identity)
	}
	fresh := req.ClientSecret != nil || req.Certificate != nil ||
		(len(sec.Certificate) > 0 && !bytes.Equal(sec.Certificate, cur.Certificate))
	if fresh {
		return nil
	}
	a, b := boundFields(old), boundFields(next)
	var changed []string
	for i := range a {
		if a[i].v != b[i].v {
			changed = append(changed, a[i].name)
		}
	}
	if len(changed) == 0 {
		return nil
	}
	what := "client_secret"
	if len(sec.Certificate) > 0 {
		what = "certificate"
	}
	return invalidf("changing %s requires the connection's credential again: give %s in the same request (the stored one is never sent to changed endpoints)",
		strings.Join(changed, ", "), what)
}
