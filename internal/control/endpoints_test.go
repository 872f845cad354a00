package control_test

import (
	"strings"
	"testing"

	"github.com/akvsync/akvsync/internal/azure"
	"github.com/akvsync/akvsync/internal/control"
)

// Issue 12, finding 2: a vault URI is a host of the connection's cloud;
// loopback, link-local and metadata addresses only when the operator
// allows them.
func TestVaultURIEndpointPolicy(t *testing.T) {
	t.Parallel()
	strict := setup(t, func(c *control.Config) { c.Endpoints = azure.EndpointPolicy{} })
	allowed := setup(t)
	for i, uri := range []string{"https://127.0.0.1:8443/", "https://[::1]/", "https://169.254.169.254/", "https://kv.vault.localhost:8443/", "https://10.1.2.3/"} {
		req := vaultReq(testSub, "kv-private")
		req.Vaults[0].Properties.VaultURI = uri
		_, err := strict.plane.Vaults.AddVaults(testCtx(t), req)
		wantErr(t, err, control.ErrInvalid)
		if !strings.Contains(err.Error(), "has not allowed private endpoints") {
			t.Errorf("%s: %v", uri, err)
		}
		req.Vaults[0].Name = "kv-private-" + string(rune('a'+i))
		if _, err := allowed.plane.Vaults.AddVaults(testCtx(t), req); err != nil {
			t.Errorf("allowed %s: %v", uri, err)
		}
	}
	for _, uri := range []string{"https://kv.evil.example/", "https://kv.vault.azure.cn/"} {
		req := vaultReq(testSub, "kv-foreign")
		req.Vaults[0].Properties.VaultURI = uri
		_, err := strict.plane.Vaults.AddVaults(testCtx(t), req)
		wantErr(t, err, control.ErrInvalid)
		if !strings.Contains(err.Error(), "is not a vault or Managed HSM pool of AzureCloud") {
			t.Errorf("%s: %v", uri, err)
		}
	}
	if _, err := strict.plane.Vaults.AddVaults(testCtx(t), vaultReq(testSub, "kv-public")); err != nil {
		t.Fatal(err)
	}
}
