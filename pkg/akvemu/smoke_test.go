package akvemu_test

import (
	"context"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/akvsync/akvsync/pkg/akvemu"
)

func TestSmoke(t *testing.T) {
	ctx := context.Background()
	start := time.Now()
	e, err := akvemu.Start(ctx, akvemu.Config{Seed: akvemu.SeedSpec{Vaults: 3, KeysPerVault: 60, Seed: 1}, DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	t.Log("start", time.Since(start))
	cred, err := e.Credential()
	if err != nil {
		t.Fatal(err)
	}
	m := e.Manifest()
	c, err := azkeys.NewClient(m.Vaults[0].URL, cred, e.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	pager := c.NewListKeyPropertiesPager(nil)
	n := 0
	for pager.More() {
		p, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range p.Value {
			n++
			r, err := c.GetKey(ctx, k.KID.Name(), "", nil)
			if err != nil {
				t.Fatal(err)
			}
			if n < 3 {
				t.Logf("%s %s %v", *r.Key.KID, *r.Key.Kty, r.Attributes.Created)
			}
		}
	}
	t.Log("keys", n, e.Counters(m.Vaults[0].Name))
}
