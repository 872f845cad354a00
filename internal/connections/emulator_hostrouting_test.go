package connections_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/akvsync/akvsync/internal/azure"
	"github.com/akvsync/akvsync/internal/connections"
	"github.com/akvsync/akvsync/pkg/akvemu"
)

// TestEmulatorConnectionHonoursHostRouting builds the "emulator" connection
// from the manifest of an emulator that serves its vaults only as
// <vault>.vault.localhost:PORT, and lists a vault's keys through the
// Azure client factory with challenge resource verification on.
func TestEmulatorConnectionHonoursHostRouting(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	emu, err := akvemu.Start(ctx, akvemu.Config{Seed: akvemu.SeedSpec{Vaults: 2, KeysPerVault: 3, Seed: 3},
		HostRoutingOnly: true, DisableAdmin: true, DataDir: filepath.Join(dir, "emu")})
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
	if conn.DisableChallengeResourceVerification {
		t.Fatal("host routing: challenge resource verification is off")
	}
	if conn.LocalhostIP != "127.0.0.1" {
		t.Fatalf("localhost IP %q, want the routing listener's 127.0.0.1", conn.LocalhostIP)
	}
	// As configured, and as read back from the registry (which does not
	// keep the IP: *.localhost then goes to loopback).
	fromRegistry := conn
	fromRegistry.Name, fromRegistry.LocalhostIP = "from-registry", ""
	f, err := azure.NewFactory(azure.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []azure.Connection{conn, fromRegistry} {
		for _, v := range emu.Manifest().Vaults {
			client, err := f.KeysClient(c, v.URL, nil)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for pager := client.NewListKeyPropertiesPager(nil); pager.More(); {
				page, err := pager.NextPage(ctx)
				if err != nil {
					t.Fatalf("%s: list %s: %v", c.Name, v.URL, err)
				}
				n += len(page.Value)
			}
			if n != 3 {
				t.Fatalf("%s: %s lists %d keys, want 3", c.Name, v.URL, n)
			}
		}
	}
}
