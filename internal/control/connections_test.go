package control_test

import (
	"strings"
	"testing"

	"github.com/akvsync/akvsync/internal/connections"
	"github.com/akvsync/akvsync/internal/control"
	"github.com/akvsync/akvsync/internal/secrets"
)

func TestRegistryLookup(t *testing.T) {
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
	conns, err := connections.New(testCtx(t), base.js, sealer, connections.Config{})
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
