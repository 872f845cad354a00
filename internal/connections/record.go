package connections

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/akvsync/akvsync/internal/azure"
	"github.com/akvsync/akvsync/internal/secrets"
)

// URIPrefix prefixes the CCKM uri of a connection, which ends with
// "<name>-<id>".
const URIPrefix = "kylo:kylo:connectionmgmt:connections:"

// DefaultProducts are the products of a connection created without any.
var DefaultProducts = []string{"cckm"}

// Names of the sealed fields; with the connection id they form the
// associated data of the sealed value.
const (
	fieldClientSecret = "client_secret"
	fieldCertificate  = "certificate"
)

// Settings are the non-secret fields of a connection that a client sets.
// They are stored as given (after normalization: defaults filled, empty
// values absent) and echoed; the cloud defaults of the endpoints are
// applied when they are used (see [azure.Connection.ResourceManagerURL]).
type Settings struct {
	Name                                 string            `json:"name"`
	Description                          string            `json:"description"`
	Labels                               map[string]string `json:"labels"`
	Products                             []string          `json:"products"`
	ClientID                             string            `json:"client_id"`
	TenantID                             string            `json:"tenant_id"`
	CloudName                            string            `json:"cloud_name"`
	ActiveDirectoryEndpoint              string            `json:"active_directory_endpoint"`
	KeyVaultDNSSuffix                    string            `json:"key_vault_dns_suffix"`
	VaultResourceURL                     string            `json:"vault_resource_url"`
	ManagementURL                        string            `json:"management_url"`
	ResourceManagerURL                   string            `json:"resource_manager_url"`
	CredentialType                       string            `json:"credential_type"`
	DisableChallengeResourceVerification bool              `json:"disable_challenge_resource_verification"`
	// AzureStackServerCert is a CA certificate (PEM) trusted in addition
	// to the system roots: not a secret.
	AzureStackServerCert string `json:"azure_stack_server_cert"`
	// AzureStackConnectionType is AAD or ADFS (AzureStack only).
	AzureStackConnectionType string `json:"azure_stack_connection_type"`
	// CertDuration is the validity, in days, of a certificate the server
	// generates (is_certificate_used); default [DefaultCertDuration].
	CertDuration int `json:"cert_duration"`
	// IsCertificateUsed reports certificate authentication (credential
	// type client_certificate). Set in a request without a certificate, it
	// asks the server to generate one; only its public part is ever
	// returned (Connection.Certificate).
	IsCertificateUsed bool `json:"is_certificate_used"`
	// Meta is any JSON the client stores with the connection (bounded by
	// [MaxMetaBytes]); nil when absent.
	Meta json.RawMessage `json:"meta,omitempty"`
}

// Connection is the API view of a connection, in CCKM's shape. It has no
// secret: only whether one is set, and the public part of a client
// certificate.
type Connection struct {
	ID  string `json:"id"`
	URI string `json:"uri"`
	Settings
	// ClientSecretSet reports that a client secret is stored.
	ClientSecretSet bool `json:"client_secret_set"`
	// CertificateSet reports that a client certificate and key are stored.
	CertificateSet bool `json:"certificate_set"`
	// Certificate is the client certificate (PEM CERTIFICATE blocks, never
	// the private key): the one generated for is_certificate_used, to
	// upload to the app registration, or the one given.
	Certificate string `json:"certificate"`
	// CertificateThumbprint is the SHA-1 thumbprint of the client
	// certificate, in upper-case hex as Entra ID shows it.
	CertificateThumbprint string `json:"certificate_thumbprint"`
	// ExternalCertificateUsed reports a client certificate given by the
	// client rather than generated.
	ExternalCertificateUsed bool   `json:"external_certificate_used"`
	Service                 string `json:"service"`
	Category                string `json:"category"`
	// LastConnectionOK, LastConnectionError and LastConnectionAt are the
	// outcome of the last connection test (nil time: never tested).
	LastConnectionOK    bool       `json:"last_connection_ok"`
	LastConnectionError string     `json:"last_connection_error"`
	LastConnectionAt    *time.Time `json:"last_connection_at,omitempty"`
	CreatedAt           time.Time  `json:"createdAt"`
	UpdatedAt           time.Time  `json:"updatedAt"`
}

// record is what the bucket stores under the connection id. The secret
// fields hold [secrets.Sealer] output only.
type record struct {
	ID  string `json:"id"`
	URI string `json:"uri"`
	Settings
	ClientSecret string `json:"client_secret,omitempty"`
	Certificate  string `json:"certificate,omitempty"`
	// PublicCertificate and Thumbprint describe the client certificate
	// (its CERTIFICATE blocks, and the first one's SHA-1): not secret.
	PublicCertificate string `json:"public_certificate,omitempty"`
	Thumbprint        string `json:"certificate_thumbprint,omitempty"`
	// Generated reports a client certificate the server generated
	// (is_certificate_used without a certificate).
	Generated bool `json:"certificate_generated,omitempty"`
	// The outcome of the last connection test.
	LastConnectionOK    bool       `json:"last_connection_ok,omitempty"`
	LastConnectionError string     `json:"last_connection_error,omitempty"`
	LastConnectionAt    *time.Time `json:"last_connection_at,omitempty"`
	CreatedAt           time.Time  `json:"createdAt"`
	UpdatedAt           time.Time  `json:"updatedAt"`
	// Deleting is set while a delete checks that no vault uses the
	// connection: lookups then treat it as gone, so a vault added
	// meanwhile sees that and undoes itself.
	Deleting bool `json:"deleting,omitempty"`
}

// plainSecrets are the opened secrets of a record, only ever held in
// memory.
type plainSecrets struct {
	ClientSecret string
	Certificate  []byte
}

// aad is the associated data of a sealed field: it binds the sealed value
// to its connection and field.
func aad(id, field string) []byte { return []byte("akvsync/connection/" + id + "/" + field) }

// view returns the API view of r.
func (r record) view() Connection {
	s := r.Settings
	s.Labels = cloneMap(s.Labels)
	s.Products = slices.Clone(s.Products)
	s.Meta = slices.Clone(s.Meta)
	s.IsCertificateUsed = s.CredentialType == azure.CredentialClientCertificate
	c := Connection{
		ID: r.ID, URI: r.URI, Settings: s,
		ClientSecretSet: r.ClientSecret != "", CertificateSet: r.Certificate != "",
		Certificate: r.PublicCertificate, CertificateThumbprint: r.Thumbprint,
		ExternalCertificateUsed: r.Certificate != "" && !r.Generated,
		Service:                 "azure", Category: "cloud",
		LastConnectionOK: r.LastConnectionOK, LastConnectionError: r.LastConnectionError,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
	}
	if r.LastConnectionAt != nil {
		at := *r.LastConnectionAt
		c.LastConnectionAt = &at
	}
	return c
}

// decodeRecord parses a stored record.
func decodeRecord(key string, b []byte) (record, error) {
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return record{}, corrupt(key, "decode", err)
	}
	return r, nil
}

// seal seals the secrets p into r under the sealer's current key.
func (r *record) seal(s *secrets.Sealer, p plainSecrets) error {
	r.ClientSecret, r.Certificate = "", ""
	r.PublicCertificate, r.Thumbprint = describeCertificate(p.Certificate)
	if p.ClientSecret != "" {
		v, err := s.Seal([]byte(p.ClientSecret), aad(r.ID, fieldClientSecret))
		if err != nil {
			return fmt.Errorf("connections: seal %s: %w", fieldClientSecret, err)
		}
		r.ClientSecret = v
	}
	if len(p.Certificate) > 0 {
		v, err := s.Seal(p.Certificate, aad(r.ID, fieldCertificate))
		if err != nil {
			return fmt.Errorf("connections: seal %s: %w", fieldCertificate, err)
		}
		r.Certificate = v
	}
	return nil
}

// open opens the secrets of r.
func (r record) open(s *secrets.Sealer) (plainSecrets, error) {
	var p plainSecrets
	if r.ClientSecret != "" {
		b, err := s.Open(r.ClientSecret, aad(r.ID, fieldClientSecret))
		if err != nil {
			return plainSecrets{}, corrupt(r.ID, "open "+fieldClientSecret, err)
		}
		p.ClientSecret = string(b)
		clear(b)
	}
	if r.Certificate != "" {
		b, err := s.Open(r.Certificate, aad(r.ID, fieldCertificate))
		if err != nil {
			return plainSecrets{}, corrupt(r.ID, "open "+fieldCertificate, err)
		}
		p.Certificate = b
	}
	return p, nil
}

// azureConnection is the connection the Azure adapter uses.
func azureConnection(s Settings, p plainSecrets) azure.Connection {
	c := azure.Connection{
		Name:                                 s.Name,
		CredentialType:                       s.CredentialType,
		TenantID:                             s.TenantID,
		ClientID:                             s.ClientID,
		ClientSecret:                         p.ClientSecret,
		CertificatePEM:                       p.Certificate,
		Cloud:                                s.CloudName,
		ActiveDirectoryEndpoint:              s.ActiveDirectoryEndpoint,
		KeyVaultDNSSuffix:                    s.KeyVaultDNSSuffix,
		ResourceManagerEndpoint:              s.ResourceManagerURL,
		ManagementEndpoint:                   s.ManagementURL,
		AzureStackConnectionType:             s.AzureStackConnectionType,
		DisableChallengeResourceVerification: s.DisableChallengeResourceVerification,
	}
	if s.AzureStackServerCert != "" {
		c.ExtraCAPEM = []byte(s.AzureStackServerCert)
	}
	return c
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
