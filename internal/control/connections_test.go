package control_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/akvsync/akvsync/internal/azure"
	"github.com/akvsync/akvsync/internal/connections"
	"github.com/akvsync/akvsync/internal/control"
	"github.com/akvsync/akvsync/internal/secrets"
)

func TestRegistryLookup(t *testing.T) {
	t.Parallel()
	base := setup(t)
	key, err := secrets.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := secrets.NewSealer(secrets.KeyRing{Current: "k1", Keys: map[string][]byte{"k1": key}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sealer.Close() })
	conns, err := connections.New(testCtx(t), base.js, sealer, connections.Config{Endpoints: azure.EndpointPolicy{AllowPrivate: true}})
	if err != nil {
		t.Fatal(err)
	}
	created, err := conns.Create(testCtx(t), connections.CreateRequest{
		Settings: connections.Settings{
			Name: "china", ClientID: "0b7e4a2c-1d3f-4e5a-9b8c-7d6e5f4a3b2c", TenantID: "72f988bf-86f1-41af-91ab-2d7cd011db47",
			CloudName: "AzureChinaCloud",
		},
		ClientSecret: "a-secret-value",
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := control.Config{LookupConnection: control.RegistryLookup(conns)}
	plane, err := control.New(testCtx(t), base.nc, base.js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	req := vaultReq(testSub, "vault-a")
	req.Connection = created.ID // by id
	// A vault of another cloud is refused: the connection's token would
	// go to a host outside its cloud.
	if _, err := plane.Vaults.AddVaults(testCtx(t), req); err == nil || !strings.Contains(err.Error(), "not a vault or Managed HSM pool of AzureChinaCloud") {
		t.Fatalf("AddVaults of an azure.net vault on a China connection: %v", err)
	}
	req.Vaults[0].Properties.VaultURI = "https://vault-a.vault.azure.cn/"
	vs, err := plane.Vaults.AddVaults(testCtx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	if vs[0].Connection != "china" || vs[0].Cloud != "AzureChinaCloud" {
		t.Errorf("vault connection %q cloud %q, want the registry's", vs[0].Connection, vs[0].Cloud)
	}
	for _, name := range []string{testConn, "bad name!"} {
		req2 := vaultReq(testSub, "vault-b")
		req2.Connection = name
		_, err = plane.Vaults.AddVaults(testCtx(t), req2)
		wantErr(t, err, control.ErrInvalid)
		if !strings.Contains(err.Error(), "is not a known connection") {
			t.Errorf("error %q", err)
		}
	}
}

// TestDeletingAConnectionRacesAddingAVault runs a connection delete and an
// add-vaults for that connection at the same time, many times: whichever
// wins, no vault may be left pointing at a connection that is gone.
func TestDeletingAConnectionRacesAddingAVault(t *testing.T) {
	t.Parallel()
	base := setup(t)
	ctx := testCtx(t)
	key, err := secrets.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := secrets.NewSealer(secrets.KeyRing{Current: "k1", Keys: map[string][]byte{"k1": key}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sealer.Close() })
	conns, err := connections.New(ctx, base.js, sealer, connections.Config{Endpoints: azure.EndpointPolicy{AllowPrivate: true}})
	if err != nil {
		t.Fatal(err)
	}
	plane, err := control.New(ctx, base.nc, base.js, control.Config{LookupConnection: control.RegistryLookup(conns)})
	if err != nil {
		t.Fatal(err)
	}
	outcomes := map[string]int{}
	for i := range 30 {
		name := fmt.Sprintf("race-%02d", i)
		if _, err := conns.Create(ctx, connections.CreateRequest{Settings: connections.Settings{
			Name: name, ClientID: "0b7e4a2c-1d3f-4e5a-9b8c-7d6e5f4a3b2c", TenantID: "72f988bf-86f1-41af-91ab-2d7cd011db47"},
			ClientSecret: "a-secret-value"}); err != nil {
			t.Fatal(err)
		}
		req := vaultReq(testSub, fmt.Sprintf("vault-race-%02d", i))
		req.Connection = name
		var wg sync.WaitGroup
		var addErr, delErr error
		wg.Add(2)
		go func() { defer wg.Done(); _, addErr = plane.Vaults.AddVaults(ctx, req) }()
		go func() { defer wg.Done(); _, delErr = conns.Delete(ctx, name) }()
		wg.Wait()
		_, getErr := conns.Get(ctx, name)
		gone := errors.Is(getErr, connections.ErrNotFound)
		vs, err := plane.Vaults.All(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var users int
		for _, v := range vs {
			if v.Connection == name {
				users++
			}
		}
		switch {
		case gone && users > 0:
			t.Fatalf("round %d: connection deleted (%v) but a vault still uses it (add: %v)", i, delErr, addErr)
		case !gone && users == 0 && addErr == nil:
			t.Fatalf("round %d: the add succeeded but its vault is missing", i)
		case getErr != nil && !gone:
			t.Fatal(getErr)
		}
		outcomes[fmt.Sprintf("add ok=%t, delete ok=%t", addErr == nil, delErr == nil)]++
	}
	t.Logf("outcomes over 30 rounds: %v", outcomes)
}
