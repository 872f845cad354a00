package connections_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/akvsync/akvsync/internal/arm"
	"github.com/akvsync/akvsync/internal/azure"
	"github.com/akvsync/akvsync/internal/connections"
	"github.com/akvsync/akvsync/pkg/akvemu"
)

// TestEmulatorConnectionDiscovers: the "emulator" connection built from a
// manifest (as --demo and --emulator-manifest build it) carries the
// emulator's Resource Manager, and discovery through it lists the
// emulator's subscriptions and vaults.
func TestEmulatorConnectionDiscovers(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	emu, err := akvemu.Start(ctx, akvemu.Config{Seed: akvemu.SeedSpec{Vaults: 3, KeysPerVault: 1, Seed: 5, Subscriptions: 1},
		DisableAdmin: true, DataDir: filepath.Join(dir, "emu")})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	mf := filepath.Join(dir, "manifest.json")
	if err := emu.WriteManifest(mf); err != nil {
		t.Fatal(err)
	}
	conns, err := connections.ConfiguredConnections("", mf)
	if err != nil {
		t.Fatal(err)
	}
	conn := conns[connections.EmulatorConnection]
	if conn.ResourceManagerURL() != emu.ResourceManagerURL() {
		t.Fatalf("resource manager %q, want the emulator's %q", conn.ResourceManagerURL(), emu.ResourceManagerURL())
	}
	f, err := azure.NewFactory(azure.Config{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := arm.New(f, arm.Config{})
	if err != nil {
		t.Fatal(err)
	}
	subs, _, err := c.Subscriptions(ctx, conn)
	if err != nil || len(subs) != 1 {
		t.Fatalf("subscriptions %+v (%v)", subs, err)
	}
	page, err := c.Vaults(ctx, conn, arm.KindVaults, subs[0].SubscriptionID, 10, "")
	if err != nil || len(page.Vaults) != 3 {
		t.Fatalf("vaults %+v (%v)", page, err)
	}
}
