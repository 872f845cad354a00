package azure

import (
	"errors"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
)

func TestARMClientOptions(t *testing.T) {
	f, err := NewFactory(Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("points resource manager at the connection's endpoint and audience", func(t *testing.T) {
		conn := Connection{Name: "c", CredentialType: CredentialClientSecret, TenantID: "t", ClientID: "c", ClientSecret: "s",
			ResourceManagerEndpoint: "https://arm.example.test:8443/"}
		opts, cred, rm, err := f.ARMClientOptions(conn)
		if err != nil {
			t.Fatal(err)
		}
		if cred == nil || !opts.DisableRPRegistration {
			t.Fatalf("cred %v, DisableRPRegistration %v", cred, opts.DisableRPRegistration)
		}
		svc := opts.Cloud.Services["resourceManager"]
		if svc.Endpoint != "https://arm.example.test:8443/" || svc.Audience != "https://management.core.windows.net/" || rm.Host != "arm.example.test:8443" {
			t.Fatalf("resource manager service %+v, url %v", svc, rm)
		}
	})
	t.Run("does not write azcore's shared cloud configuration", func(t *testing.T) {
		before := cloud.AzurePublic.Services[cloud.ResourceManager]
		conn := Connection{Name: "p", CredentialType: CredentialManagedIdentity, ResourceManagerEndpoint: "https://elsewhere.test/", ManagementEndpoint: "https://aud.test/"}
		opts, _, _, err := f.ARMClientOptions(conn)
		if err != nil {
			t.Fatal(err)
		}
		if after := cloud.AzurePublic.Services[cloud.ResourceManager]; after != before {
			t.Fatalf("azcore's public cloud changed: %+v → %+v", before, after)
		}
		if got := opts.Cloud.Services[cloud.ResourceManager]; got.Endpoint != "https://elsewhere.test/" || got.Audience != "https://aud.test/" {
			t.Fatalf("services %+v", got)
		}
	})
	t.Run("azure stack without resource_manager_url has none", func(t *testing.T) {
		_, _, _, err := f.ARMClientOptions(Connection{Name: "s", CredentialType: CredentialManagedIdentity, Cloud: CloudStack,
			ActiveDirectoryEndpoint: "https://login.stack.test/", KeyVaultDNSSuffix: "vault.stack.test"})
		if !errors.Is(err, ErrNoResourceManager) {
			t.Fatalf("err = %v, want ErrNoResourceManager", err)
		}
	})
	for _, bad := range []string{"http://arm.test/", "https://user:pw@arm.test/", "https://arm.test/?x=1", "https://arm.test/#f"} {
		t.Run("refuses resource_manager_url "+bad, func(t *testing.T) {
			_, _, _, err := f.ARMClientOptions(Connection{Name: "b", CredentialType: CredentialManagedIdentity, ResourceManagerEndpoint: bad})
			if !errors.Is(err, ErrInvalidConnection) {
				t.Fatalf("err = %v, want ErrInvalidConnection", err)
			}
		})
	}
}
