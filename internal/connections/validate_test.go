package connections_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/akvsync/akvsync/internal/azure"
	"github.com/akvsync/akvsync/internal/connections"
)

func TestValidation(t *testing.T) {
	e := setup(t)
	cert, key := testCert(t)
	good := secretReq("valid")
	certReq := func(pemStr string) connections.CreateRequest {
		r := secretReq("c")
		r.CredentialType, r.ClientSecret, r.Certificate = azure.CredentialClientCertificate, "", pemStr
		return r
	}
	with := func(f func(*connections.CreateRequest)) connections.CreateRequest {
		r := good
		r.Labels = map[string]string{"env": "test"}
		f(&r)
		return r
	}
	stack := with(func(r *connections.CreateRequest) {
		r.CloudName, r.ActiveDirectoryEndpoint, r.KeyVaultDNSSuffix = azure.CloudStack, "https://adfs.local.azurestack.external/adfs", "vault.local.azurestack.external"
		r.AzureStackServerCert = string(cert)
		r.VaultResourceURL, r.ManagementURL, r.ResourceManagerURL = "https://vault.local.azurestack.external", "https://management.local.azurestack.external", "https://management.local.azurestack.external/"
	})
	cases := []struct {
		name string
		req  connections.CreateRequest
		want string // "" = valid; else a part of the message
	}{
		{"client secret", good, ""},
		{"client certificate", certReq(string(cert) + string(key)), ""},
		{"key before certificate", certReq(string(key) + string(cert)), ""},
		{"managed identity", connections.CreateRequest{Settings: connections.Settings{Name: "mi", CredentialType: azure.CredentialManagedIdentity, ClientID: testClient}}, ""},
		{"inferred certificate type", with(func(r *connections.CreateRequest) {
			r.CredentialType, r.ClientSecret, r.Certificate = "", "", string(cert)+string(key)
		}), ""},
		{"azure stack", stack, ""},
		{"china", with(func(r *connections.CreateRequest) { r.CloudName = azure.CloudChina }), ""},
		{"dotted name", with(func(r *connections.CreateRequest) { r.Name = "a.b." }), ""},
		// Issue 12, finding 4: no "..", not only dots, no slashes or
		// control characters.
		{"name with ..", with(func(r *connections.CreateRequest) { r.Name = "a..b" }), "without '..'"},
		{"name ..", with(func(r *connections.CreateRequest) { r.Name = ".." }), "without '..'"},
		{"name .", with(func(r *connections.CreateRequest) { r.Name = "." }), "must be 1 to 64"},
		{"name with a slash", with(func(r *connections.CreateRequest) { r.Name = "a/b" }), "must be 1 to 64"},
		{"name with a control character", with(func(r *connections.CreateRequest) { r.Name = "a\x00b" }), "must be 1 to 64"},
		{"no name", with(func(r *connections.CreateRequest) { r.Name = "" }), "name is required"},
		{"bad name", with(func(r *connections.CreateRequest) { r.Name = "a b" }), "name \"a b\" must be"},
		{"long name", with(func(r *connections.CreateRequest) { r.Name = strings.Repeat("a", 65) }), "must be 1 to 64"},
		{"bad type", with(func(r *connections.CreateRequest) { r.CredentialType = "password" }), "credential_type \"password\""},
		{"bad cloud", with(func(r *connections.CreateRequest) { r.CloudName = "AzureGermanCloud" }), "cloud_name \"AzureGermanCloud\""},
		{"no tenant", with(func(r *connections.CreateRequest) { r.TenantID = "" }), "tenant_id is required"},
		{"no client", with(func(r *connections.CreateRequest) { r.ClientID = "" }), "client_id is required"},
		{"bad tenant", with(func(r *connections.CreateRequest) { r.TenantID = "a/b" }), "tenant_id must be"},
		{"no secret", with(func(r *connections.CreateRequest) { r.ClientSecret = "" }), "client_secret is required"},
		{"secret and certificate", with(func(r *connections.CreateRequest) { r.Certificate = string(cert) + string(key) }), "certificate is only used"},
		{"certificate without key", certReq(string(cert)), "found no private key"},
		{"key without certificate", certReq(string(key)), "found no certificate"},
		{"certificate not PEM", certReq("MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"), "must be PEM"},
		{"key of another certificate", certReq(string(cert) + string(otherKeyPEM)), "does not match"},
		{"EC key", certReq(string(ecCertPEM) + string(ecKeyPEM)), "must be an RSA key"},
		{"certificate without type", with(func(r *connections.CreateRequest) {
			r.CredentialType, r.ClientSecret, r.Certificate = "", "", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
		}), "certificate: a PEM block is not a valid certificate"},
		{"managed identity with secret", connections.CreateRequest{Settings: connections.Settings{Name: "mi", CredentialType: azure.CredentialManagedIdentity}, ClientSecret: "x"}, "takes neither"},
		{"http endpoint", with(func(r *connections.CreateRequest) { r.ActiveDirectoryEndpoint = "http://login.example" }), "active_directory_endpoint must be an absolute https URL"},
		{"endpoint with credentials", with(func(r *connections.CreateRequest) { r.ManagementURL = "https://u:pw@mgmt.example" }), "management_url must be"},
		{"relative vault resource", with(func(r *connections.CreateRequest) { r.VaultResourceURL = "vault.azure.net" }), "vault_resource_url must be"},
		{"resource manager with query", with(func(r *connections.CreateRequest) { r.ResourceManagerURL = "https://rm.example/?x=1" }), "resource_manager_url must be"},
		{"bad dns suffix", with(func(r *connections.CreateRequest) { r.KeyVaultDNSSuffix = "https://vault.azure.net" }), "key_vault_dns_suffix"},
		{"stack without endpoints", with(func(r *connections.CreateRequest) { r.CloudName = azure.CloudStack }), "needs active_directory_endpoint"},
		{"stack without resource manager", with(func(r *connections.CreateRequest) {
			*r = stack
			r.ResourceManagerURL = ""
		}), "resource_manager_url"},
		{"stack over ADFS", with(func(r *connections.CreateRequest) {
			*r = stack
			r.AzureStackConnectionType = "adfs"
		}), ""},
		{"stack type off stack", with(func(r *connections.CreateRequest) { r.AzureStackConnectionType = "AAD" }), "only used with cloud_name AzureStack"},
		{"bad stack type", with(func(r *connections.CreateRequest) {
			*r = stack
			r.AzureStackConnectionType = "LDAP"
		}), `azure_stack_connection_type "LDAP" must be AAD or ADFS`},
		{"cert duration too long", with(func(r *connections.CreateRequest) { r.CertDuration = connections.MaxCertDuration + 1 }), "cert_duration must be from 1"},
		{"negative cert duration", with(func(r *connections.CreateRequest) { r.CertDuration = -1 }), "cert_duration must be from 1"},
		{"meta too large", with(func(r *connections.CreateRequest) {
			r.Meta = []byte(`{"a":"` + strings.Repeat("x", connections.MaxMetaBytes) + `"}`)
		}), "meta is longer"},
		{"generated certificate and secret", with(func(r *connections.CreateRequest) { r.IsCertificateUsed = true }), "is_certificate_used and client_secret are mutually exclusive"},
		{"certificate authentication with the certificate given", with(func(r *connections.CreateRequest) {
			r.IsCertificateUsed, r.ExternalCertificateUsed, r.CredentialType, r.ClientSecret, r.Certificate = true, true, "", "", string(cert)+string(key)
		}), ""},
		{"generated certificate with secret type", with(func(r *connections.CreateRequest) {
			r.IsCertificateUsed, r.ClientSecret, r.CredentialType = true, "", azure.CredentialClientSecret
		}), "is_certificate_used needs credential_type client_certificate"},
		{"external certificate without certificate", with(func(r *connections.CreateRequest) { r.ExternalCertificateUsed = true }), "external_certificate_used is true only with a certificate"},
		{"CA not PEM", with(func(r *connections.CreateRequest) { r.AzureStackServerCert = "not a certificate" }), "azure_stack_server_cert must be one or more PEM"},
		{"CA with private key", with(func(r *connections.CreateRequest) { r.AzureStackServerCert = string(cert) + string(key) }), "only CERTIFICATE blocks"},
		{"CA garbage block", with(func(r *connections.CreateRequest) {
			r.AzureStackServerCert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
		}), "does not parse"},
		{"long description", with(func(r *connections.CreateRequest) { r.Description = strings.Repeat("x", 1025) }), "description"},
		{"empty label key", with(func(r *connections.CreateRequest) { r.Labels = map[string]string{"": "x"} }), "labels"},
		{"bad product", with(func(r *connections.CreateRequest) { r.Products = []string{"CCKM!"} }), "products"},
		{"duplicate product", with(func(r *connections.CreateRequest) { r.Products = []string{"cckm", "cckm"} }), "listed twice"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := e.reg.Create(e.ctx, tc.req)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				if _, err := e.reg.Delete(e.ctx, c.ID); err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, connections.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrInvalid containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), testSecret) || strings.Contains(err.Error(), "pw@") || strings.Contains(err.Error(), keyMaterial(key)) {
				t.Fatalf("message leaks a secret: %v", err)
			}
		})
	}
	// Nothing was left behind by the refused requests.
	if raw := rawValues(t, e); len(raw) != 0 {
		t.Fatalf("bucket not empty: %d entries", len(raw))
	}
}
