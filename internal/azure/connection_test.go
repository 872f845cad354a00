package azure_test

import (
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"

	"github.com/akvsync/akvsync/internal/azure"
)

func TestCloudDefaults(t *testing.T) {
	tests := []struct {
		cloud, rm, audience, hsm, vault string
	}{
		{"", "https://management.azure.com/", "https://management.core.windows.net/", "managedhsm.azure.net", "vault.azure.net"},
		{azure.CloudPublic, "https://management.azure.com/", "https://management.core.windows.net/", "managedhsm.azure.net", "vault.azure.net"},
		{azure.CloudChina, "https://management.chinacloudapi.cn/", "https://management.core.chinacloudapi.cn/", "managedhsm.azure.cn", "vault.azure.cn"},
		{azure.CloudGovernment, "https://management.usgovcloudapi.net/", "https://management.core.usgovcloudapi.net/", "managedhsm.usgovcloudapi.net", "vault.usgovcloudapi.net"},
	}
	for _, tt := range tests {
		t.Run("cloud "+tt.cloud, func(t *testing.T) {
			c := azure.Connection{Cloud: tt.cloud}
			if c.ResourceManagerURL() != tt.rm || c.ResourceManagerAudience() != tt.audience || c.ManagedHSMDNSSuffix() != tt.hsm || c.VaultDNSSuffix() != tt.vault {
				t.Fatalf("got %s %s %s %s", c.ResourceManagerURL(), c.ResourceManagerAudience(), c.ManagedHSMDNSSuffix(), c.VaultDNSSuffix())
			}
			if got := c.ManagedHSMURI("pool1"); got != "https://pool1."+tt.hsm+"/" {
				t.Fatalf("ManagedHSMURI = %s", got)
			}
			svc := c.CloudConfig().Services[cloud.ResourceManager]
			if svc.Endpoint != tt.rm || svc.Audience != tt.audience {
				t.Fatalf("cloud config resource manager %+v", svc)
			}
		})
	}
	t.Run("overrides win and get a trailing slash", func(t *testing.T) {
		c := azure.Connection{Cloud: azure.CloudStack, ResourceManagerEndpoint: "https://management.local.azurestack.external",
			ManagementEndpoint: "https://management.adfs.azurestack.local/0a1b2c"}
		if c.ResourceManagerURL() != "https://management.local.azurestack.external/" || c.ResourceManagerAudience() != "https://management.adfs.azurestack.local/0a1b2c/" {
			t.Fatalf("got %s %s", c.ResourceManagerURL(), c.ResourceManagerAudience())
		}
		if c.ManagedHSMDNSSuffix() != "" || c.ManagedHSMURI("p") != "" {
			t.Fatal("Azure Stack has no Managed HSM")
		}
		if (azure.Connection{Cloud: azure.CloudStack}).ResourceManagerURL() != "" {
			t.Fatal("Azure Stack has no default Resource Manager")
		}
	})
	t.Run("a connection's cloud config does not change azcore's shared one", func(t *testing.T) {
		before := cloud.AzurePublic.Services[cloud.ResourceManager]
		cfg := azure.Connection{ResourceManagerEndpoint: "https://127.0.0.1:8443/"}.CloudConfig()
		if cfg.Services[cloud.ResourceManager].Endpoint != "https://127.0.0.1:8443/" {
			t.Fatalf("config %+v", cfg.Services)
		}
		if cloud.AzurePublic.Services[cloud.ResourceManager] != before {
			t.Fatal("azcore's AzurePublic was modified")
		}
	})
}

func TestValidateEndpointsAndStackType(t *testing.T) {
	base := azure.Connection{Name: "c", CredentialType: azure.CredentialClientSecret, TenantID: "t", ClientID: "c", ClientSecret: "s"}
	for name, c := range map[string]azure.Connection{
		"http resource manager": func() azure.Connection { c := base; c.ResourceManagerEndpoint = "http://rm"; return c }(),
		"bad management url":    func() azure.Connection { c := base; c.ManagementEndpoint = "mgmt"; return c }(),
		"bad stack type":        func() azure.Connection { c := base; c.AzureStackConnectionType = "LDAP"; return c }(),
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%s: valid", name)
		}
	}
	ok := base
	ok.ResourceManagerEndpoint, ok.AzureStackConnectionType = "https://rm.example/", azure.AzureStackADFS
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
}
