package connections

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/akvsync/akvsync/internal/azure"
)

// ReadOnlyFields are the connection fields the server sets. Clients that
// send back what they read may include them — Terraform's provider sends
// every one of them, empty, with each create and update — so a request
// accepts them, of any JSON type, and ignores them.
type ReadOnlyFields struct {
	ID                    any `json:"id,omitempty"`
	URI                   any `json:"uri,omitempty"`
	Account               any `json:"account,omitempty"`
	Application           any `json:"application,omitempty"`
	DevAccount            any `json:"devAccount,omitempty"`
	CreatedAt             any `json:"createdAt,omitempty"`
	UpdatedAt             any `json:"updatedAt,omitempty"`
	Service               any `json:"service,omitempty"`
	Category              any `json:"category,omitempty"`
	ResourceURL           any `json:"resource_url,omitempty"`
	LastConnectionOK      any `json:"last_connection_ok,omitempty"`
	LastConnectionError   any `json:"last_connection_error,omitempty"`
	LastConnectionAt      any `json:"last_connection_at,omitempty"`
	CertificateThumbprint any `json:"certificate_thumbprint,omitempty"`
	ClientSecretSet       any `json:"client_secret_set,omitempty"`
	CertificateSet        any `json:"certificate_set,omitempty"`
}

// CreateRequest is the body of POST /connectionmgmt/services/azure/connections.
// Null and empty values are absent. Its String method redacts the
// secrets; do not log it any other way.
type CreateRequest struct {
	Settings
	// ClientSecret is the app registration's secret (credential type
	// client_secret).
	ClientSecret string `json:"client_secret"`
	// Certificate is the PEM client certificate followed by its private
	// key (credential type client_certificate): CCKM's external
	// certificate. akvsync has no CSR endpoint, so the key comes with it.
	Certificate string `json:"certificate"`
	// ExternalCertificateUsed may be sent back as read; true requires
	// Certificate.
	ExternalCertificateUsed bool `json:"external_certificate_used"`
	ReadOnlyFields
}

// String describes the request without its secrets.
func (r CreateRequest) String() string {
	return fmt.Sprintf("create connection %q (%s, tenant %q, client %q, cloud %q, client_secret set: %t, certificate set: %t, is_certificate_used: %t)",
		r.Name, r.CredentialType, r.TenantID, r.ClientID, r.CloudName, r.ClientSecret != "", r.Certificate != "", r.IsCertificateUsed)
}

// normalized fills the defaults of a create request: the credential type
// inferred from the secret given (or is_certificate_used), the public
// cloud, the default products and certificate duration; is_certificate_used
// is set for a certificate credential with a certificate; it
// canonicalizes azure_stack_connection_type and meta.
func (r CreateRequest) normalized() CreateRequest {
	if r.CredentialType == "" {
		switch {
		case r.IsCertificateUsed:
			r.CredentialType = azure.CredentialClientCertificate
		case r.Certificate != "" && r.ClientSecret == "":
			r.CredentialType = azure.CredentialClientCertificate
		case r.ClientSecret == "" && r.TenantID == "" && r.Certificate == "":
			r.CredentialType = azure.CredentialManagedIdentity
		default:
			r.CredentialType = azure.CredentialClientSecret
		}
	}
	if r.CredentialType == azure.CredentialClientCertificate && r.Certificate != "" {
		r.IsCertificateUsed = true
	}
	if r.CloudName == "" {
		r.CloudName = azure.CloudPublic
	}
	if len(r.Products) == 0 {
		r.Products = slices.Clone(DefaultProducts)
	}
	if r.CertDuration == 0 {
		r.CertDuration = DefaultCertDuration
	}
	if len(r.Labels) == 0 {
		r.Labels = nil
	}
	r.AzureStackConnectionType = canonicalStackType(r.AzureStackConnectionType)
	r.Meta = normalizeMeta(r.Meta)
	r.ReadOnlyFields = ReadOnlyFields{}
	return r
}

// generates reports whether the (normalized) request asks the server to
// generate the client certificate: is_certificate_used without one.
func (r CreateRequest) generates() bool {
	return r.IsCertificateUsed && r.CredentialType == azure.CredentialClientCertificate && r.Certificate == ""
}

// check refuses combinations a normalized create request cannot have:
// is_certificate_used with a client secret or another credential type, and
// external_certificate_used without a certificate.
func (r CreateRequest) check() error {
	if r.IsCertificateUsed {
		switch {
		case r.ClientSecret != "":
			return invalidf("is_certificate_used and client_secret are mutually exclusive")
		case r.CredentialType != azure.CredentialClientCertificate:
			return invalidf("is_certificate_used needs credential_type %s, not %s", azure.CredentialClientCertificate, r.CredentialType)
		}
	}
	if r.ExternalCertificateUsed && r.Certificate == "" {
		return invalidf("external_certificate_used is true only with a certificate")
	}
	return nil
}

// secrets returns the plain secrets of the request.
func (r CreateRequest) secrets() plainSecrets {
	p := plainSecrets{ClientSecret: r.ClientSecret}
	if r.Certificate != "" {
		p.Certificate = []byte(r.Certificate)
	}
	return p
}

// canonicalStackType spells an Azure Stack connection type as CCKM does
// (AAD, ADFS), whatever its case; other values are kept for validation to
// refuse.
func canonicalStackType(s string) string {
	switch u := strings.ToUpper(s); u {
	case azure.AzureStackAAD, azure.AzureStackADFS:
		return u
	}
	return s
}

// emptyJSON reports a JSON value that is absent in CCKM's sense: null,
// {}, [] or "".
func emptyJSON(b []byte) bool {
	switch string(bytes.TrimSpace(b)) {
	case "", "null", "{}", "[]", `""`:
		return true
	}
	return false
}

// normalizeMeta returns meta compacted, or nil when it is empty.
func normalizeMeta(m json.RawMessage) json.RawMessage {
	if emptyJSON(m) {
		return nil
	}
	var b bytes.Buffer
	if err := json.Compact(&b, m); err != nil {
		return m // validation refuses it
	}
	return b.Bytes()
}

// PatchRequest is the body of PATCH …/connections/{id}: a partial update.
//
// An absent or null field is left unchanged, and so is an empty value of
// a field that cannot be cleared: name, cloud_name, credential_type,
// client_secret, certificate, cert_duration 0, is_certificate_used and
// external_certificate_used false (Terraform's provider sends every field
// with each update). An empty string, {} or [] clears the other optional
// fields (description, labels, meta, endpoints, …).
//
// A new client_secret or certificate is sealed afresh and, unless
// credential_type is given, switches the credential type to the one it
// belongs to. is_certificate_used true switches to certificate
// authentication: with the certificate given, or the one in use, else a
// certificate the server generates. The name cannot be changed (vaults
// refer to connections by name); it may be repeated unchanged. Read-only
// fields are ignored. Its String method redacts the secrets.
type PatchRequest struct {
	Name                                 *string            `json:"name"`
	Description                          *string            `json:"description"`
	Labels                               *map[string]string `json:"labels"`
	Products                             *[]string          `json:"products"`
	ClientID                             *string            `json:"client_id"`
	TenantID                             *string            `json:"tenant_id"`
	CloudName                            *string            `json:"cloud_name"`
	ActiveDirectoryEndpoint              *string            `json:"active_directory_endpoint"`
	KeyVaultDNSSuffix                    *string            `json:"key_vault_dns_suffix"`
	VaultResourceURL                     *string            `json:"vault_resource_url"`
	ManagementURL                        *string            `json:"management_url"`
	ResourceManagerURL                   *string            `json:"resource_manager_url"`
	CredentialType                       *string            `json:"credential_type"`
	DisableChallengeResourceVerification *bool              `json:"disable_challenge_resource_verification"`
	AzureStackServerCert                 *string            `json:"azure_stack_server_cert"`
	AzureStackConnectionType             *string            `json:"azure_stack_connection_type"`
	CertDuration                         *int               `json:"cert_duration"`
	IsCertificateUsed                    *bool              `json:"is_certificate_used"`
	ExternalCertificateUsed              *bool              `json:"external_certificate_used"`
	Meta                                 *json.RawMessage   `json:"meta"`
	ClientSecret                         *string            `json:"client_secret"`
	Certificate                          *string            `json:"certificate"`
	ReadOnlyFields
}

// String describes the patch without its secrets.
func (p PatchRequest) String() string {
	return fmt.Sprintf("patch connection (fields: %v)", p.fields())
}

// normalized drops the empty values that mean "unchanged" (see
// [PatchRequest]) and the read-only fields, and canonicalizes the rest.
func (p PatchRequest) normalized() PatchRequest {
	for _, f := range []**string{&p.Name, &p.CloudName, &p.CredentialType, &p.ClientSecret, &p.Certificate} {
		if *f != nil && **f == "" {
			*f = nil
		}
	}
	if p.CertDuration != nil && *p.CertDuration == 0 {
		p.CertDuration = nil
	}
	if p.IsCertificateUsed != nil && !*p.IsCertificateUsed {
		p.IsCertificateUsed = nil
	}
	if p.ExternalCertificateUsed != nil && !*p.ExternalCertificateUsed {
		p.ExternalCertificateUsed = nil
	}
	if p.AzureStackConnectionType != nil {
		t := canonicalStackType(*p.AzureStackConnectionType)
		p.AzureStackConnectionType = &t
	}
	if p.Meta != nil {
		m := normalizeMeta(*p.Meta)
		if m == nil {
			m = json.RawMessage("{}") // clears
		}
		p.Meta = &m
	}
	p.ReadOnlyFields = ReadOnlyFields{}
	return p
}

// fields names the fields the patch sets.
func (p PatchRequest) fields() []string {
	var out []string
	add := func(set bool, name string) {
		if set {
			out = append(out, name)
		}
	}
	add(p.Name != nil, "name")
	add(p.Description != nil, "description")
	add(p.Labels != nil, "labels")
	add(p.Products != nil, "products")
	add(p.ClientID != nil, "client_id")
	add(p.TenantID != nil, "tenant_id")
	add(p.CloudName != nil, "cloud_name")
	add(p.ActiveDirectoryEndpoint != nil, "active_directory_endpoint")
	add(p.KeyVaultDNSSuffix != nil, "key_vault_dns_suffix")
	add(p.VaultResourceURL != nil, "vault_resource_url")
	add(p.ManagementURL != nil, "management_url")
	add(p.ResourceManagerURL != nil, "resource_manager_url")
	add(p.CredentialType != nil, "credential_type")
	add(p.DisableChallengeResourceVerification != nil, "disable_challenge_resource_verification")
	add(p.AzureStackServerCert != nil, "azure_stack_server_cert")
	add(p.AzureStackConnectionType != nil, "azure_stack_connection_type")
	add(p.CertDuration != nil, "cert_duration")
	add(p.IsCertificateUsed != nil, "is_certificate_used")
	add(p.ExternalCertificateUsed != nil, "external_certificate_used")
	add(p.Meta != nil, "meta")
	add(p.ClientSecret != nil, "client_secret")
	add(p.Certificate != nil, "certificate")
	return out
}

// checkShape checks what can be checked of a normalized patch without the
// record it applies to.
func (p PatchRequest) checkShape() error {
	if len(p.fields()) == 0 {
		return invalidf("the patch changes nothing: give at least one field")
	}
	if p.Name != nil && !validName(*p.Name) {
		return invalidf("name %q is not a valid connection name", *p.Name)
	}
	if p.IsCertificateUsed != nil {
		switch {
		case p.ClientSecret != nil:
			return invalidf("is_certificate_used and client_secret are mutually exclusive")
		case p.CredentialType != nil && *p.CredentialType != azure.CredentialClientCertificate:
			return invalidf("is_certificate_used needs credential_type %s, not %s", azure.CredentialClientCertificate, *p.CredentialType)
		}
	}
	return nil
}

// needsGeneratedCertificate reports whether applying the patch to a
// connection with settings cur and secrets sec generates a client
// certificate: is_certificate_used, no certificate given, and none in use.
func (p PatchRequest) needsGeneratedCertificate(cur Settings, sec plainSecrets) bool {
	return p.IsCertificateUsed != nil && p.Certificate == nil &&
		!(cur.CredentialType == azure.CredentialClientCertificate && len(sec.Certificate) > 0)
}

// apply returns the settings and secrets of cur with the patch applied,
// and whether the resulting certificate is one the server generated
// (curGenerated: the current one is); generated is the certificate to use
// when needsGeneratedCertificate. The caller validates the result.
func (p PatchRequest) apply(cur Settings, curGenerated bool, sec plainSecrets, generated []byte) (Settings, plainSecrets, bool, error) {
	if p.Name != nil && *p.Name != cur.Name {
		return Settings{}, plainSecrets{}, false, invalidf("name cannot be changed (vaults refer to the connection by name); create a new connection")
	}
	next := cur
	next.Labels = cloneMap(cur.Labels)
	next.Products = slices.Clone(cur.Products)
	next.Meta = slices.Clone(cur.Meta)
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	set(&next.Description, p.Description)
	set(&next.ClientID, p.ClientID)
	set(&next.TenantID, p.TenantID)
	set(&next.CloudName, p.CloudName)
	set(&next.ActiveDirectoryEndpoint, p.ActiveDirectoryEndpoint)
	set(&next.KeyVaultDNSSuffix, p.KeyVaultDNSSuffix)
	set(&next.VaultResourceURL, p.VaultResourceURL)
	set(&next.ManagementURL, p.ManagementURL)
	set(&next.ResourceManagerURL, p.ResourceManagerURL)
	set(&next.CredentialType, p.CredentialType)
	set(&next.AzureStackServerCert, p.AzureStackServerCert)
	set(&next.AzureStackConnectionType, p.AzureStackConnectionType)
	if p.Labels != nil {
		next.Labels = cloneMap(*p.Labels)
		if len(next.Labels) == 0 {
			next.Labels = nil
		}
	}
	if p.Products != nil {
		next.Products = slices.Clone(*p.Products)
		if len(next.Products) == 0 {
			next.Products = slices.Clone(DefaultProducts)
		}
	}
	if p.Meta != nil {
		next.Meta = normalizeMeta(*p.Meta)
	}
	if p.CertDuration != nil {
		next.CertDuration = *p.CertDuration
	}
	if next.CertDuration == 0 {
		next.CertDuration = DefaultCertDuration
	}
	if p.DisableChallengeResourceVerification != nil {
		next.DisableChallengeResourceVerification = *p.DisableChallengeResourceVerification
	}
	if next.CloudName == "" {
		next.CloudName = azure.CloudPublic
	}
	ns := plainSecrets{ClientSecret: sec.ClientSecret, Certificate: sec.Certificate}
	gen := curGenerated
	// The credential a new secret belongs to, unless credential_type says.
	switch {
	case p.Certificate != nil:
		if p.CredentialType == nil {
			next.CredentialType = azure.CredentialClientCertificate
		}
		ns.Certificate, gen = []byte(*p.Certificate), false
	case p.IsCertificateUsed != nil:
		next.CredentialType = azure.CredentialClientCertificate
		if p.needsGeneratedCertificate(cur, sec) {
			ns.Certificate, gen = generated, true
		}
	case p.ClientSecret != nil && p.CredentialType == nil:
		next.CredentialType = azure.CredentialClientSecret
	}
	if p.ClientSecret != nil {
		ns.ClientSecret = *p.ClientSecret
	}
	// A secret the credential type does not use is dropped, unless the
	// patch gives it explicitly (which validation then refuses).
	switch next.CredentialType {
	case azure.CredentialClientSecret:
		if p.Certificate == nil {
			ns.Certificate = nil
		}
	case azure.CredentialClientCertificate:
		if p.ClientSecret == nil {
			ns.ClientSecret = ""
		}
	case azure.CredentialManagedIdentity:
		if p.ClientSecret == nil {
			ns.ClientSecret = ""
		}
		if p.Certificate == nil {
			ns.Certificate = nil
		}
	}
	next.IsCertificateUsed = next.CredentialType == azure.CredentialClientCertificate
	if len(ns.Certificate) == 0 {
		gen = false
	}
	if p.ExternalCertificateUsed != nil && (next.CredentialType != azure.CredentialClientCertificate || gen) {
		return Settings{}, plainSecrets{}, false, invalidf("external_certificate_used is true only for a connection with a certificate given by the client")
	}
	return next, ns, gen, nil
}

// TestRequest is the optional body of POST …/connections/{id}/test.
type TestRequest struct {
	// VaultURI is the vault whose keys are listed; empty means the first
	// registered vault of the connection.
	VaultURI string `json:"vault_uri"`
}
