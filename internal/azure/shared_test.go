package azure_test

import (
	"context"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/akvsync/akvsync/internal/azure"
	"github.com/akvsync/akvsync/internal/connections"
	"github.com/akvsync/akvsync/pkg/akvemu"
	akvsync "github.com/akvsync/akvsync/pkg/sync"
)

// countingThrottle counts the attempts it paces.
type countingThrottle struct{ waits, observed atomic.Int64 }

func (c *countingThrottle) Wait(context.Context) error { c.waits.Add(1); return nil }
func (c *countingThrottle) Observe(int)                { c.observed.Add(1) }

// TestSharedKeysClient: a vault's shared client pays the authentication
// challenge once, each call is paced by the throttle in its context, and
// a change of the connection's settings builds a new client.
func TestSharedKeysClient(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	emu, err := akvemu.Start(ctx, akvemu.Config{Seed: akvemu.SeedSpec{Vaults: 1, KeysPerVault: 2, Seed: 1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emu.Close() })
	mf := filepath.Join(t.TempDir(), "manifest.json")
	if err := emu.WriteManifest(mf); err != nil {
		t.Fatal(err)
	}
	m, err := connections.ReadEmulatorManifest(mf)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := connections.EmulatorConnectionFrom(m)
	if err != nil {
		t.Fatal(err)
	}
	f, err := azure.NewFactory(azure.Config{})
	if err != nil {
		t.Fatal(err)
	}
	v := emu.Vaults()[0]
	key := v.Keys()[0].Name
	first, err := f.SharedKeysClient(conn, v.URL())
	if err != nil {
		t.Fatal(err)
	}
	perCall := []*countingThrottle{{}, {}}
	for _, th := range perCall {
		c, err := f.SharedKeysClient(conn, v.URL())
		if err != nil {
			t.Fatal(err)
		}
		if c != first {
			t.Fatal("a second call built another client")
		}
		if _, err := c.GetKey(akvsync.WithThrottle(ctx, th), key, "", nil); err != nil {
			t.Fatal(err)
		}
	}
	cnt := emu.Counters(v.Name())
	if got := cnt.Count(akvemu.OpGetKey, http.StatusUnauthorized); got != 1 {
		t.Errorf("%d authentication challenges for two calls, want 1", got)
	}
	if got := cnt.Count(akvemu.OpGetKey, http.StatusOK); got != 2 {
		t.Errorf("%d GetKey answered, want 2", got)
	}
	// The first call's throttle saw the challenge and the get, the second's
	// the get only.
	if perCall[0].waits.Load() != 2 || perCall[1].waits.Load() != 1 || perCall[0].observed.Load() != 2 {
		t.Errorf("throttle waits: first call %d, second %d; want 2, 1", perCall[0].waits.Load(), perCall[1].waits.Load())
	}
	changed := conn
	changed.ClientSecret += "-rotated"
	c, err := f.SharedKeysClient(changed, v.URL())
	if err != nil {
		t.Fatal(err)
	}
	if c == first {
		t.Fatal("changed connection settings kept the old client")
	}
}
