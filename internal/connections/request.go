package connections

import (
	"fmt"
	"slices"

	"github.com/akvsync/akvsync/internal/azure"
)

// CreateRequest is the body of POST /connectionmgmt/services/azure/connections.
// Its String method redacts the secrets; do not log it any other way.
type CreateRequest struct {
	Settings
	// ClientSecret is the app registration's secret (credential type
	// client_secret).
	ClientSecret string `json:"client_secret"`
	// Certificate is the PEM client certificate followed by its private
	// key (credential type client_certificate).
	Certificate string `json:"certificate"`
}

// String describes the request without its secrets.
func (r CreateRequest) String() string {
	return fmt.Sprintf("create connection %q (%s, tenant %q, client %q, cloud %q, client_secret set: %t, certificate set: %t)",
		r.Name, r.CredentialType, r.TenantID, r.ClientID, r.CloudName, r.ClientSecret != "", r.Certificate != "")
}

// normalized fills the defaults of a create request: the credential type
// inferred from the secret given, the public cloud, the default products.
func (r CreateRequest) normalized() CreateRequest {
	if r.CredentialType == "" {
		switch {
		case r.Certificate != "" && r.ClientSecret == "":
			r.CredentialType = azure.CredentialClientCertificate
		case r.ClientSecret == "" && r.TenantID == "" && r.Certificate == "":
			r.CredentialType = azure.CredentialManagedIdentity
		default:
			r.CredentialType = azure.CredentialClientSecret
		}
	}
	if r.CloudName == "" {
		r.CloudName = azure.CloudPublic
	}
	if len(r.Products) == 0 {
		r.Products = slices.Clone(DefaultProducts)
	}
	return r
}

// secrets returns the plain secrets of the request.
func (r CreateRequest) secrets() plainSecrets {
	p := plainSecrets{ClientSecret: r.ClientSecret}
	if r.Certificate != "" {
		p.Certificate = []byte(r.Certificate)
	}
	return p
}

// PatchRequest is the body of PATCH …/connections/{id}: a partial update.
// An absent (or null) field is left unchanged; an empty string clears an
// optional field. A new client_secret or certificate is sealed afresh;
// changing credential_type drops the secret the new type does not use.
// The name cannot be changed (vaults refer to connections by name); it may
// be repeated unchanged. Its String method redacts the secrets.
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
	ClientSecret                         *string            `json:"client_secret"`
	Certificate                          *string            `json:"certificate"`
}

// String describes the patch without its secrets.
func (p PatchRequest) String() string {
	return fmt.Sprintf("patch connection (fields: %v)", p.fields())
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
	add(p.ClientSecret != nil, "client_secret")
	add(p.Certificate != nil, "certificate")
	return out
}

// checkShape checks what can be checked of a patch without the record it
// applies to.
func (p PatchRequest) checkShape() error {
	if len(p.fields()) == 0 {
		return invalidf("the patch changes nothing: give at least one field")
	}
	if p.Name != nil && !validName(*p.Name) {
		return invalidf("name %q is not a valid connection name", *p.Name)
	}
	if p.ClientSecret != nil && *p.ClientSecret == "" {
		return invalidf("client_secret must not be empty; change credential_type to drop it")
	}
	if p.Certificate != nil && *p.Certificate == "" {
		return invalidf("certificate must not be empty; change credential_type to drop it")
	}
	return nil
}

// apply returns the settings and secrets of cur with the patch applied.
// The caller validates the result.
func (p PatchRequest) apply(cur Settings, sec plainSecrets) (Settings, plainSecrets, error) {
	if p.Name != nil && *p.Name != cur.Name {
		return Settings{}, plainSecrets{}, invalidf("name cannot be changed (vaults refer to the connection by name); create a new connection")
	}
	next := cur
	next.Labels = cloneMap(cur.Labels)
	next.Products = slices.Clone(cur.Products)
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
	if p.Labels != nil {
		next.Labels = cloneMap(*p.Labels)
	}
	if p.Products != nil {
		next.Products = slices.Clone(*p.Products)
		if len(next.Products) == 0 {
			next.Products = slices.Clone(DefaultProducts)
		}
	}
	if p.DisableChallengeResourceVerification != nil {
		next.DisableChallengeResourceVerification = *p.DisableChallengeResourceVerification
	}
	if next.CloudName == "" {
		next.CloudName = azure.CloudPublic
	}
	ns := plainSecrets{ClientSecret: sec.ClientSecret, Certificate: sec.Certificate}
	if p.ClientSecret != nil {
		ns.ClientSecret = *p.ClientSecret
	}
	if p.Certificate != nil {
		ns.Certificate = []byte(*p.Certificate)
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
	return next, ns, nil
}

// TestRequest is the optional body of POST …/connections/{id}/test.
type TestRequest struct {
	// VaultURI is the vault whose keys are listed; empty means the first
	// registered vault of the connection.
	VaultURI string `json:"vault_uri"`
}
