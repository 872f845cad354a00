package worker_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/akvsync/akvsync/internal/control"
	"github.com/akvsync/akvsync/pkg/akvemu"
	"github.com/akvsync/akvsync/pkg/events"
	akvsync "github.com/akvsync/akvsync/pkg/sync"
)

// TestManagedHSMPoolSync syncs an emulated managed HSM pool end to end: the
// real azkeys client of internal/azure (challenge for
// https://managedhsm.azure.net, a token for that audience), pkg/sync, the
// KEYS stream and the inventory. Every key, AES keys included, has its real
// size.
func TestManagedHSMPoolSync(t *testing.T) {
	t.Parallel()
	e := setup(t, envOptions{emulator: func(c *akvemu.Config) {
		c.Vaults = append(c.Vaults, akvemu.VaultSpec{
			Name: "hsm-pool", Kind: akvemu.KindManagedHSM, SubscriptionID: "sub-hsm", Keys: 40,
			KeySpecs: []akvemu.NamedKeySpec{
				{Name: "aes-128", KeySpec: akvemu.KeySpec{Kty: akvemu.KtyOctHSM, KeySize: 128}},
				{Name: "aes-192", KeySpec: akvemu.KeySpec{Kty: akvemu.KtyOctHSM, KeySize: 192}},
				{Name: "aes-256", KeySpec: akvemu.KeySpec{Kty: akvemu.KtyOctHSM, KeySize: 256}},
				{Name: "rsa-4096", KeySpec: akvemu.KeySpec{Kty: akvemu.KtyRSAHSM, KeySize: 4096}},
				{Name: "ec-521", KeySpec: akvemu.KeySpec{Kty: akvemu.KtyECHSM, Curve: akvemu.CurveP521}},
			},
		})
	}})
	e.startWorker(t, "w1", nil)
	pool := e.vaults["hsm-pool"]
	if !pool.IsManagedHSM() {
		t.Fatalf("the pool is registered as %s", pool.ResourceType())
	}
	ep, _ := e.emu.Vault("hsm-pool")
	if ep.Kind() != akvemu.KindManagedHSM {
		t.Fatalf("emulator vault kind %s", ep.Kind())
	}
	octKeys := 0
	for _, k := range ep.Keys() {
		if k.Kty == akvemu.KtyOctHSM {
			octKeys++
		}
	}

	job := e.createJob(t, control.CreateJobRequest{KeyVaults: []string{pool.QualifiedName()}})
	done := e.waitJob(t, job.ID)
	if done.OverallStatus != events.JobCompleted {
		t.Fatalf("job ended %s: %v", done.OverallStatus, done.DetailedStatus())
	}
	e.assertMatchesEmulator(t, "hsm-pool")

	inv := e.inventory(t, pool.ID)
	for name, want := range map[string]struct {
		kty  string
		size int
	}{
		"aes-128": {"oct-HSM", 128}, "aes-192": {"oct-HSM", 192}, "aes-256": {"oct-HSM", 256},
		"rsa-4096": {"RSA-HSM", 4096}, "ec-521": {"EC-HSM", 521},
	} {
		got := inv[name]
		if got.Kty != want.kty || got.KeySize != want.size {
			t.Errorf("%s: kty %s key_size %d, want %s %d", name, got.Kty, got.KeySize, want.kty, want.size)
		}
	}
	for _, r := range inv {
		if !strings.HasSuffix(r.Kty, "-HSM") || r.KeySize == 0 {
			t.Errorf("%s: kty %s key_size %d in a pool", r.Name, r.Kty, r.KeySize)
		}
	}
	// One GetKey per key, and one more per AES key for its size.
	c := e.emu.Counters("hsm-pool")
	if got, want := c.Count(akvemu.OpGetKey, http.StatusOK), int64(ep.Len()+octKeys); got != want {
		t.Errorf("%d GetKey answered, want %d (%d keys, %d of them AES)", got, want, ep.Len(), octKeys)
	}

	t.Run("a resync of the unchanged pool reads no key", func(t *testing.T) {
		before := e.emu.Counters("hsm-pool").Total(akvemu.OpGetKey)
		done := e.waitJob(t, e.createJob(t, control.CreateJobRequest{KeyVaults: []string{pool.ID}}).ID)
		if done.OverallStatus != events.JobCompleted {
			t.Fatalf("resync ended %s", done.OverallStatus)
		}
		if got := e.emu.Counters("hsm-pool").Total(akvemu.OpGetKey) - before; got != 0 {
			t.Errorf("resync made %d GetKey calls", got)
		}
	})
}

// TestSymmetricKeySizeUnknownWithoutTheAPIVersion: a service that does not
// know the api-version with key_size (400) costs one extra request per vault
// sync, and AES keys keep size 0 (unknown); the sync still completes.
func TestSymmetricKeySizeUnknownWithoutTheAPIVersion(t *testing.T) {
	t.Parallel()
	e := setup(t, envOptions{emulator: func(c *akvemu.Config) {
		c.APIVersions = []string{akvemu.LatestAPIVersion}
		c.Vaults = append(c.Vaults, akvemu.VaultSpec{
			Name: "hsm-old", Kind: akvemu.KindManagedHSM, SubscriptionID: "sub-hsm",
			KeySpecs: []akvemu.NamedKeySpec{
				{Name: "aes-128", KeySpec: akvemu.KeySpec{Kty: akvemu.KtyOctHSM, KeySize: 128}},
				{Name: "aes-256", KeySpec: akvemu.KeySpec{Kty: akvemu.KtyOctHSM, KeySize: 256}},
				{Name: "rsa-2048", KeySpec: akvemu.KeySpec{Kty: akvemu.KtyRSAHSM}},
			},
		})
	}})
	// One GetKey at a time, so the first refusal is seen before the next AES key.
	e.startWorker(t, "w1", func(c *akvsync.Config) { c.GetConcurrency = 1 })
	pool := e.vaults["hsm-old"]
	done := e.waitJob(t, e.createJob(t, control.CreateJobRequest{KeyVaults: []string{pool.ID}}).ID)
	if done.OverallStatus != events.JobCompleted {
		t.Fatalf("job ended %s: %v", done.OverallStatus, done.DetailedStatus())
	}
	inv := e.inventory(t, pool.ID)
	for _, n := range []string{"aes-128", "aes-256"} {
		if r := inv[n]; r.Kty != "oct-HSM" || r.KeySize != 0 {
			t.Errorf("%s: %s %d, want oct-HSM with unknown size", n, r.Kty, r.KeySize)
		}
	}
	if r := inv["rsa-2048"]; r.KeySize != 2048 {
		t.Errorf("rsa-2048: size %d", r.KeySize)
	}
	c := e.emu.Counters("hsm-old")
	if c.Count(akvemu.OpGetKey, http.StatusOK) != 3 || c.Count(akvemu.OpGetKey, http.StatusBadRequest) != 1 {
		t.Errorf("GetKey answers %v, want three 200 and one 400", c.ByOperation[akvemu.OpGetKey])
	}
}

// symmetricKeys counts the AES (oct-HSM) keys of the emulator's vaults: a
// sync reads each of them twice (the second time for its size).
func (e *env) symmetricKeys() int64 {
	var n int64
	for _, v := range e.emu.Vaults() {
		for _, k := range v.Keys() {
			if k.Kty == akvemu.KtyOctHSM {
				n++
			}
		}
	}
	return n
}
