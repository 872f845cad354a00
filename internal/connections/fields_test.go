package connections_test

import (
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // checks a thumbprint
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/akvsync/akvsync/internal/azure"
	"github.com/akvsync/akvsync/internal/connections"
)

// parseCert returns the first certificate of a PEM bundle.
func parseCert(t *testing.T, s string) *x509.Certificate {
	t.Helper()
	blk, _ := pem.Decode([]byte(s))
	if blk == nil || blk.Type != "CERTIFICATE" {
		t.Fatalf("not a PEM certificate: %q", s)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestGeneratedCertificate(t *testing.T) {
	e := setup(t)
	req, err := connections.ParseCreate(strings.NewReader(`{"name":"gen","tenant_id":"`+testTenant+`","client_id":"`+testClient+
		`","is_certificate_used":true,"cert_duration":30,"products":["cckm"]}`), 0)
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	c, err := e.reg.Create(e.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("the connection returns the public certificate to upload, never the key", func(t *testing.T) {
		if !c.IsCertificateUsed || c.ExternalCertificateUsed || !c.CertificateSet || c.ClientSecretSet ||
			c.CredentialType != azure.CredentialClientCertificate || c.CertDuration != 30 {
			t.Fatalf("connection %+v", c)
		}
		b, _ := json.Marshal(c)
		if strings.Contains(string(b), "PRIVATE KEY") {
			t.Fatalf("the view has a private key: %s", b)
		}
		cert := parseCert(t, c.Certificate)
		sum := sha1.Sum(cert.Raw) //nolint:gosec // a thumbprint
		if c.CertificateThumbprint != strings.ToUpper(hex.EncodeToString(sum[:])) {
			t.Fatalf("thumbprint %s", c.CertificateThumbprint)
		}
		if cert.Subject.CommonName != connections.GeneratedCertPrefix+"gen" || len(cert.ExtKeyUsage) != 1 || cert.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
			t.Fatalf("certificate %v %v", cert.Subject, cert.ExtKeyUsage)
		}
		if d := cert.NotAfter.Sub(before); d < 30*24*time.Hour-time.Minute || d > 30*24*time.Hour+time.Minute {
			t.Fatalf("valid for %s, want 30 days", d)
		}
		if pub, ok := cert.PublicKey.(*rsa.PublicKey); !ok || pub.N.BitLen() != connections.GeneratedKeyBits {
			t.Fatalf("public key %T", cert.PublicKey)
		}
	})
	t.Run("the workers get the certificate with its key", func(t *testing.T) {
		conn, err := e.reg.Connection(e.ctx, "gen")
		if err != nil {
			t.Fatal(err)
		}
		certs, key, err := azidentity.ParseCertificates(conn.CertificatePEM, nil)
		if err != nil || len(certs) != 1 || key == nil {
			t.Fatalf("stored certificate: %v", err)
		}
		if certs[0].SerialNumber.Cmp(parseCert(t, c.Certificate).SerialNumber) != 0 {
			t.Fatal("the workers' certificate is not the one returned")
		}
	})
	t.Run("setting it again keeps the certificate", func(t *testing.T) {
		// Terraform sends is_certificate_used with every update.
		p, err := connections.ParsePatch(strings.NewReader(`{"is_certificate_used":true,"description":"again","client_secret":"","certificate":"","cert_duration":0}`), 0)
		if err != nil {
			t.Fatal(err)
		}
		got, err := e.reg.Patch(e.ctx, c.ID, p)
		if err != nil || got.CertificateThumbprint != c.CertificateThumbprint || got.Description != "again" {
			t.Fatalf("patched %+v %v", got, err)
		}
	})
	t.Run("a client secret replaces it", func(t *testing.T) {
		p, err := connections.ParsePatch(strings.NewReader(`{"client_secret":"`+testSecret+`"}`), 0)
		if err != nil {
			t.Fatal(err)
		}
		got, err := e.reg.Patch(e.ctx, c.ID, p)
		if err != nil || got.IsCertificateUsed || got.CertificateSet || !got.ClientSecretSet || got.Certificate != "" ||
			got.CertificateThumbprint != "" || got.CredentialType != azure.CredentialClientSecret {
			t.Fatalf("patched %+v %v", got, err)
		}
	})
	t.Run("and is_certificate_used makes a new one", func(t *testing.T) {
		p, err := connections.ParsePatch(strings.NewReader(`{"is_certificate_used":true}`), 0)
		if err != nil {
			t.Fatal(err)
		}
		got, err := e.reg.Patch(e.ctx, c.ID, p)
		if err != nil || !got.IsCertificateUsed || got.ClientSecretSet || got.CertificateThumbprint == "" || got.CertificateThumbprint == c.CertificateThumbprint {
			t.Fatalf("patched %+v %v", got, err)
		}
	})
	t.Run("an external certificate", func(t *testing.T) {
		cert, key := testCert(t)
		p := connections.PatchRequest{Certificate: ptr(string(cert) + string(key)), ExternalCertificateUsed: ptr(true)}
		got, err := e.reg.Patch(e.ctx, c.ID, p)
		if err != nil || !got.IsCertificateUsed || !got.ExternalCertificateUsed || got.Certificate != string(cert) {
			t.Fatalf("patched %+v %v", got, err)
		}
		// is_certificate_used keeps the certificate in use, whoever made it.
		again, err := e.reg.Patch(e.ctx, c.ID, connections.PatchRequest{IsCertificateUsed: ptr(true), ExternalCertificateUsed: ptr(true)})
		if err != nil || again.CertificateThumbprint != got.CertificateThumbprint || !again.ExternalCertificateUsed {
			t.Fatalf("patched %+v %v", again, err)
		}
		// external_certificate_used cannot make a secret external.
		_, err = e.reg.Patch(e.ctx, c.ID, connections.PatchRequest{ClientSecret: ptr(testSecret), ExternalCertificateUsed: ptr(true)})
		if !errors.Is(err, connections.ErrInvalid) || !strings.Contains(err.Error(), "external_certificate_used") {
			t.Fatalf("contradiction: %v", err)
		}
	})
}

func ptr[T any](v T) *T { return &v }

func TestOptionalFieldsAreStoredAndEchoed(t *testing.T) {
	e := setup(t)
	body := `{"name":"all","description":"d","client_id":"` + testClient + `","tenant_id":"` + testTenant + `","client_secret":"` + testSecret + `",
		"cloud_name":"AzureUSGovernment","key_vault_dns_suffix":"vault.usgovcloudapi.net","vault_resource_url":"https://vault.usgovcloudapi.net",
		"management_url":"https://management.core.usgovcloudapi.net/","resource_manager_url":"https://management.usgovcloudapi.net/",
		"labels":{"team":"sec"},"meta":{"owner":{"name":"ops","ids":[1, 2]}},"products":["cckm"],"cert_duration":365}`
	req, err := connections.ParseCreate(strings.NewReader(body), 0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.reg.Create(e.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if string(c.Meta) != `{"owner":{"name":"ops","ids":[1,2]}}` || c.CertDuration != 365 || c.ManagementURL == "" || c.ResourceManagerURL == "" || c.VaultResourceURL == "" {
		t.Fatalf("connection %+v (meta %s)", c, c.Meta)
	}
	conn, err := e.reg.Connection(e.ctx, "all")
	if err != nil {
		t.Fatal(err)
	}
	if conn.ResourceManagerURL() != "https://management.usgovcloudapi.net/" || conn.ResourceManagerAudience() != "https://management.core.usgovcloudapi.net/" ||
		conn.ManagedHSMDNSSuffix() != azure.ManagedHSMSuffixGovernment {
		t.Fatalf("endpoints %s %s %s", conn.ResourceManagerURL(), conn.ResourceManagerAudience(), conn.ManagedHSMDNSSuffix())
	}
	t.Run("null and empty values are absent", func(t *testing.T) {
		req, err := connections.ParseCreate(strings.NewReader(`{"name":"empty","client_id":"c","tenant_id":"t","client_secret":"s",
			"meta":null,"labels":{},"products":null,"cert_duration":0,"description":"","is_certificate_used":false,"certificate":"",
			"external_certificate_used":false,"azure_stack_connection_type":"","id":"","uri":"","createdAt":"","last_connection_ok":false}`), 0)
		if err != nil {
			t.Fatal(err)
		}
		if req.Meta != nil || req.Labels != nil || len(req.Products) != 1 || req.CertDuration != connections.DefaultCertDuration ||
			req.CredentialType != azure.CredentialClientSecret {
			t.Fatalf("parsed %+v", req)
		}
	})
	t.Run("a patch clears meta with an empty object and leaves it with null", func(t *testing.T) {
		p, err := connections.ParsePatch(strings.NewReader(`{"meta":null,"description":"e"}`), 0)
		if err != nil {
			t.Fatal(err)
		}
		got, err := e.reg.Patch(e.ctx, "all", p)
		if err != nil || string(got.Meta) != string(c.Meta) {
			t.Fatalf("patched %+v %v", got, err)
		}
		if p, err = connections.ParsePatch(strings.NewReader(`{"meta":{}}`), 0); err != nil {
			t.Fatal(err)
		}
		if got, err = e.reg.Patch(e.ctx, "all", p); err != nil || got.Meta != nil {
			t.Fatalf("patched %+v %v", got, err)
		}
	})
}
