package akvemu_test

import (
	"context"
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/akvsync/akvsync/pkg/akvemu"
)

// An emulator with one generated vault of three keys, listed with the
// unmodified azkeys client and an azidentity credential from the emulated
// Entra ID, over HTTPS trusting the emulator's CA.
func Example() {
	ctx := context.Background()
	emu, err := akvemu.Start(ctx, akvemu.Config{Seed: akvemu.SeedSpec{Vaults: 1, KeysPerVault: 3, Seed: 1}, DisableAdmin: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() { _ = emu.Close() }()

	cred, err := emu.Credential()
	if err != nil {
		fmt.Println(err)
		return
	}
	vault := emu.Vaults()[0]
	client, err := azkeys.NewClient(vault.URL(), cred, emu.ClientOptions())
	if err != nil {
		fmt.Println(err)
		return
	}
	n := 0
	for pager := client.NewListKeyPropertiesPager(nil); pager.More(); {
		page, err := pager.NextPage(ctx)
		if err != nil {
			fmt.Println(err)
			return
		}
		n += len(page.Value)
	}
	fmt.Println(vault.Kind(), "keys:", n)
	// Output: vault keys: 3
}
