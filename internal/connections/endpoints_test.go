package connections_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/akvsync/akvsync/internal/azure"
	"github.com/akvsync/akvsync/internal/connections"
)

// strictRegistry is a registry whose operator has not allowed private
// endpoints (the production default).
func (e *env) strictRegistry(t *testing.T) *connections.Registry {
	t.Helper()
	reg, err := connections.New(e.ctx, e.js, e.sealer, connections.Config{Endpoints: azure.EndpointPolicy{}})
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

func publicConn(name string) connections.CreateRequest {
	return connections.CreateRequest{
		Settings: connections.Settings{
			Name: name, TenantID: "72f988bf-86f1-41af-91ab-2d7cd011db47", ClientID: "0b7e4a2c-1d3f-4e5a-9b8c-7d6e5f4a3b2c",
		},
		ClientSecret: "the-stored-secret",
	}
}

func wantInvalid(t *testing.T, err error, msg string) {
	t.Helper()
	if !errors.Is(err, connections.ErrInvalid) || !strings.Contains(err.Error(), msg) {
		t.Fatalf("err = %v, want ErrInvalid mentioning %q", err, msg)
	}
}

// Issue 12, finding 2: endpoints must be hosts of the connection's cloud,
// and loopback, link-local and metadata addresses are refused unless the
// operator allows them.
func TestEndpointsMatchTheCloud(t *testing.T) {
	t.Parallel()
	e := setup(t)
	strict := e.strictRegistry(t)
	for name, tc := range map[string]struct {
		mod func(*connections.CreateRequest)
		msg string
	}{
		"foreign authority":                   {func(r *connections.CreateRequest) { r.ActiveDirectoryEndpoint = "https://login.evil.example/" }, "not AzureCloud's authority host"},
		"China authority on the public cloud": {func(r *connections.CreateRequest) { r.ActiveDirectoryEndpoint = "https://login.chinacloudapi.cn/" }, "not AzureCloud's authority host"},
		"loopback authority":                  {func(r *connections.CreateRequest) { r.ActiveDirectoryEndpoint = "https://127.0.0.1:8443/" }, "has not allowed private endpoints"},
		"IPv6 loopback authority":             {func(r *connections.CreateRequest) { r.ActiveDirectoryEndpoint = "https://[::1]:8443/" }, "has not allowed private endpoints"},
		"metadata resource manager":           {func(r *connections.CreateRequest) { r.ResourceManagerURL = "https://169.254.169.254/" }, "has not allowed private endpoints"},
		"localhost management":                {func(r *connections.CreateRequest) { r.ManagementURL = "https://localhost/" }, "has not allowed private endpoints"},
		"foreign vault suffix":                {func(r *connections.CreateRequest) { r.KeyVaultDNSSuffix = "vault.evil.example" }, "key_vault_dns_suffix vault.evil.example is not one of AzureCloud's"},
		"foreign vault resource":              {func(r *connections.CreateRequest) { r.VaultResourceURL = "https://vault.evil.example" }, "vault_resource_url"},
		"US Gov authority on China": {func(r *connections.CreateRequest) {
			r.CloudName, r.ActiveDirectoryEndpoint = azure.CloudChina, "https://login.microsoftonline.us/"
		}, "not AzureChinaCloud's authority host"},
		"stack authority outside its domain": {func(r *connections.CreateRequest) {
			r.CloudName, r.KeyVaultDNSSuffix = azure.CloudStack, "vault.local.azurestack.external"
			r.ResourceManagerURL, r.ActiveDirectoryEndpoint = "https://management.local.azurestack.external/", "https://adfs.evil.example/adfs"
			r.AzureStackConnectionType = azure.AzureStackADFS
		}, "not under the stack's domain local.azurestack.external"},
	} {
		t.Run(name, func(t *testing.T) {
			req := publicConn("c-" + strings.ReplaceAll(name, " ", "-"))
			tc.mod(&req)
			_, err := strict.Create(e.ctx, req)
			wantInvalid(t, err, tc.msg)
		})
	}
	for name, mod := range map[string]func(*connections.CreateRequest){
		"public defaults": func(*connections.CreateRequest) {},
		"public explicit": func(r *connections.CreateRequest) {
			r.ActiveDirectoryEndpoint, r.KeyVaultDNSSuffix = "https://login.microsoftonline.com/", "vault.azure.net"
		},
		"China": func(r *connections.CreateRequest) {
			r.CloudName, r.ActiveDirectoryEndpoint = azure.CloudChina, "https://login.chinacloudapi.cn/"
		},
		"US Gov": func(r *connections.CreateRequest) {
			r.CloudName, r.ResourceManagerURL = azure.CloudGovernment, "https://management.usgovcloudapi.net/"
		},
		"stack (ADFS)": func(r *connections.CreateRequest) {
			r.CloudName, r.KeyVaultDNSSuffix = azure.CloudStack, "vault.local.azurestack.external"
			r.ResourceManagerURL, r.ActiveDirectoryEndpoint = "https://management.local.azurestack.external/", "https://adfs.local.azurestack.external/adfs"
			r.AzureStackConnectionType = azure.AzureStackADFS
		},
		"stack (AAD)": func(r *connections.CreateRequest) {
			r.CloudName, r.KeyVaultDNSSuffix = azure.CloudStack, "vault.local.azurestack.external"
			r.ResourceManagerURL, r.ActiveDirectoryEndpoint = "https://management.local.azurestack.external/", "https://login.microsoftonline.com/"
			r.AzureStackConnectionType = azure.AzureStackAAD
		},
	} {
		t.Run("accepts "+name, func(t *testing.T) {
			req := publicConn("ok-" + strings.NewReplacer(" ", "-", "(", "", ")", "").Replace(name))
			mod(&req)
			if _, err := strict.Create(e.ctx, req); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("the operator's allowance accepts loopback", func(t *testing.T) {
		req := publicConn("allowed-loopback")
		req.ActiveDirectoryEndpoint = "https://127.0.0.1:8443/"
		if _, err := e.reg.Create(e.ctx, req); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a test's vault_uri must be of the cloud", func(t *testing.T) {
		c, err := strict.Create(e.ctx, publicConn("tested"))
		if err != nil {
			t.Fatal(err)
		}
		for _, uri := range []string{"https://169.254.169.254", "https://[::1]:443", "https://127.0.0.1:9443"} {
			_, err := strict.Test(e.ctx, c.ID, connections.TestRequest{VaultURI: uri})
			wantInvalid(t, err, "has not allowed private endpoints")
		}
	})
}

// Issue 12, finding 2: an edit that changes where the secret goes needs
// the secret again; the stored secret never follows such an edit.
func TestEndpointEditsNeedTheSecretAgain(t *testing.T) {
	t.Parallel()
	e := setup(t)
	m := startEmulator(t)
	c, err := e.reg.Create(e.ctx, m.secretConn("emu-bound", m.m.ClientSecret))
	if err != nil {
		t.Fatal(err)
	}
	otherCA, _ := testCert(t)
	str := func(s string) *string { return &s }
	yes, no := true, false
	for name, p := range map[string]connections.PatchRequest{
		"authority":         {ActiveDirectoryEndpoint: str("https://127.0.0.2:9/")},
		"CA":                {AzureStackServerCert: str(string(otherCA))},
		"challenge check":   {DisableChallengeResourceVerification: &no},
		"resource manager":  {ResourceManagerURL: str("https://127.0.0.2:9/")},
		"vault suffix":      {KeyVaultDNSSuffix: str("vault.localhost")},
		"cleared authority": {ActiveDirectoryEndpoint: str("")},
	} {
		t.Run("refuses "+name+" without the secret", func(t *testing.T) {
			_, err := e.reg.Patch(e.ctx, c.ID, p)
			wantInvalid(t, err, "requires the connection's credential again: give client_secret")
		})
	}
	t.Run("unchanged values, as Terraform resends them, need nothing", func(t *testing.T) {
		got, err := e.reg.Patch(e.ctx, c.ID, connections.PatchRequest{
			ActiveDirectoryEndpoint: str(m.m.AuthorityHost), AzureStackServerCert: str(string(m.m.CACertPEM)),
			DisableChallengeResourceVerification: &yes, Description: str("edited"),
		})
		if err != nil || got.Description != "edited" {
			t.Fatalf("patch: %+v %v", got, err)
		}
	})
	t.Run("with the secret given again", func(t *testing.T) {
		got, err := e.reg.Patch(e.ctx, c.ID, connections.PatchRequest{ActiveDirectoryEndpoint: str("https://127.0.0.2:9/"), ClientSecret: str("a-new-secret")})
		if err != nil || got.ActiveDirectoryEndpoint != "https://127.0.0.2:9/" {
			t.Fatalf("patch: %+v %v", got, err)
		}
	})
	t.Run("a certificate connection needs its certificate", func(t *testing.T) {
		cc, err := e.reg.Create(e.ctx, m.certConn(t, "emu-bound-cert"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.reg.Patch(e.ctx, cc.ID, connections.PatchRequest{ActiveDirectoryEndpoint: str("https://127.0.0.2:9/")})
		wantInvalid(t, err, "give certificate")
	})
}
