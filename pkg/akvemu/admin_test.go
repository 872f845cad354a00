package akvemu_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/akvsync/akvsync/pkg/akvemu"
)

func adminCall(t *testing.T, e *akvemu.Emulator, method, path, body string, wantStatus int, out any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.AdminURL()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantStatus {
		t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, b, wantStatus)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
}

func TestAdminAPI(t *testing.T) {
	t.Parallel()
	e := setup(t)

	t.Run("add a vault and read its keys", func(t *testing.T) {
		var mv akvemu.ManifestVault
		adminCall(t, e, http.MethodPost, "/admin/vaults", `{"name":"adm","keys":12,"sku":"premium"}`, http.StatusCreated, &mv)
		if mv.Name != "adm" || !strings.HasPrefix(mv.URL, "https://127.0.0.1:") || mv.SKU != akvemu.SKUPremium {
			t.Errorf("vault %+v", mv)
		}
		var keys []akvemu.Key
		adminCall(t, e, http.MethodGet, "/admin/vaults/adm/keys", "", http.StatusOK, &keys)
		if len(keys) != 12 {
			t.Errorf("%d keys", len(keys))
		}
		adminCall(t, e, http.MethodPost, "/admin/vaults", `{"name":"adm"}`, http.StatusConflict, nil)
		adminCall(t, e, http.MethodPost, "/admin/vaults", `{"name":"x"}`, http.StatusBadRequest, nil)
	})

	t.Run("create, update, rotate and delete keys", func(t *testing.T) {
		var k akvemu.Key
		adminCall(t, e, http.MethodPost, "/admin/vaults/adm/keys/admin-key", `{"kty":"EC-HSM","crv":"P-384","tags":{"a":"b"}}`, http.StatusCreated, &k)
		if k.Kty != akvemu.KtyECHSM || k.Curve != akvemu.CurveP384 || k.Tags["a"] != "b" {
			t.Errorf("created %+v", k)
		}
		adminCall(t, e, http.MethodPatch, "/admin/vaults/adm/keys/admin-key", `{"enabled":false}`, http.StatusOK, &k)
		if k.Enabled {
			t.Errorf("still enabled")
		}
		var r akvemu.Key
		adminCall(t, e, http.MethodPost, "/admin/vaults/adm/keys/admin-key/rotate", "", http.StatusOK, &r)
		if r.Version == k.Version {
			t.Errorf("rotate kept version")
		}
		adminCall(t, e, http.MethodDelete, "/admin/vaults/adm/keys/admin-key?purge=true", "", http.StatusOK, nil)
		adminCall(t, e, http.MethodGet, "/admin/vaults/adm/keys/admin-key", "", http.StatusNotFound, nil)
	})

	t.Run("faults, access and counters", func(t *testing.T) {
		adminCall(t, e, http.MethodPut, "/admin/vaults/adm/faults", `{"latency":"5ms","latency_jitter":2,"irregular_pages":true,"throttle_next":1}`, http.StatusOK, nil)
		var f akvemu.Faults
		adminCall(t, e, http.MethodGet, "/admin/vaults/adm/faults", "", http.StatusOK, &f)
		if f.Latency != 5*time.Millisecond || f.LatencyJitter != 2*time.Millisecond || !f.IrregularPages {
			t.Errorf("faults %+v", f)
		}
		adminCall(t, e, http.MethodPut, "/admin/vaults/adm/faults", `{"error_rate":2}`, http.StatusBadRequest, nil)
		adminCall(t, e, http.MethodDelete, "/admin/vaults/adm/faults", "", http.StatusOK, nil)
		adminCall(t, e, http.MethodPut, "/admin/vaults/adm/access/some-app", `{"deny":["list","get"]}`, http.StatusOK, nil)
		var rules []akvemu.AccessRule
		adminCall(t, e, http.MethodGet, "/admin/vaults/adm/access", "", http.StatusOK, &rules)
		if len(rules) != 1 || len(rules[0].Deny) != 2 {
			t.Errorf("rules %+v", rules)
		}
		v, _ := e.Vault("adm")
		if _, err := newClient(t, e, v, nil).GetKey(t.Context(), v.Keys()[0].Name, "", nil); err != nil {
			t.Fatal(err)
		}
		var c akvemu.Counters
		adminCall(t, e, http.MethodGet, "/admin/vaults/adm/counters", "", http.StatusOK, &c)
		if c.Count(akvemu.OpGetKey, 200) != 1 || c.Count(akvemu.OpGetKey, 401) != 1 {
			t.Errorf("counters %+v", c)
		}
		adminCall(t, e, http.MethodDelete, "/admin/counters", "", http.StatusNoContent, nil)
		adminCall(t, e, http.MethodGet, "/admin/vaults/adm/counters", "", http.StatusOK, &c)
		if c.Requests != 0 {
			t.Errorf("counters not reset: %+v", c)
		}
	})

	t.Run("manifest and token stats", func(t *testing.T) {
		var m akvemu.Manifest
		adminCall(t, e, http.MethodGet, "/admin/manifest", "", http.StatusOK, &m)
		if m.TenantID != e.TenantID() || len(m.Vaults) != 1 {
			t.Errorf("manifest %+v", m)
		}
		var ts akvemu.TokenStats
		adminCall(t, e, http.MethodGet, "/admin/tokens", "", http.StatusOK, &ts)
		if ts.Issued == 0 {
			t.Errorf("token stats %+v", ts)
		}
	})
}

func TestSpecFiles(t *testing.T) {
	t.Parallel()
	yamlSpec := `
tenant_id: 11111111-2222-3333-4444-555555555555
token_lifetime: 10m
host_routing: true
seed: {vaults: 2, keys_per_vault: 20, seed: 3, subscriptions: 2}
default_faults: {irregular_pages: true}
vaults:
  - name: payments-prod
    sku: premium
    keys: 5
    key_specs:
      - {name: explicit, kty: RSA-HSM, key_size: 4096, tags: {env: prod}}
    faults: {latency: 1ms, throttle_limit: -1}
    access: [{principal: "*", deny: [purge]}]
principals:
  - {client_id: other-app, client_secret: x}
`
	jsonSpec := `{"seed":{"vaults":1,"keys_per_vault":3},"vaults":[{"name":"from-json","keys":2}]}`

	t.Run("YAML spec", func(t *testing.T) {
		cfg, err := akvemu.ParseSpec([]byte(yamlSpec), false)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.TokenLifetime != 10*time.Minute || !cfg.HostRouting || cfg.Seed.Vaults != 2 || len(cfg.Vaults) != 1 || len(cfg.Principals) != 1 {
			t.Fatalf("config %+v", cfg)
		}
		cfg.DataDir = t.TempDir()
		e := setup(t, func(c *akvemu.Config) { *c = cfg })
		v, ok := e.Vault("payments-prod")
		if !ok || v.Len() != 6 || v.Faults().Latency != time.Millisecond {
			t.Fatalf("vault from spec: %v", ok)
		}
		k, err := v.GetKey("explicit", "")
		if err != nil || k.KeySize != 4096 || k.Kty != akvemu.KtyRSAHSM {
			t.Errorf("explicit key %+v %v", k, err)
		}
		if len(e.Manifest().Vaults) != 3 || e.TenantID() != "11111111-2222-3333-4444-555555555555" {
			t.Errorf("manifest %+v", e.Manifest())
		}
	})

	t.Run("JSON spec", func(t *testing.T) {
		cfg, err := akvemu.ParseSpec([]byte(jsonSpec), true)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Seed.Vaults != 1 || cfg.Vaults[0].Name != "from-json" {
			t.Errorf("config %+v", cfg)
		}
	})

	t.Run("unknown fields are rejected", func(t *testing.T) {
		if _, err := akvemu.ParseSpec([]byte(`{"vault":[]}`), true); err == nil {
			t.Error("want an error")
		}
	})
}

func TestSeedingIsDeterministicAndFast(t *testing.T) {
	t.Parallel()
	cfg := func(c *akvemu.Config) { c.Seed = akvemu.SeedSpec{Vaults: 100, KeysPerVault: 1000, Seed: 42} }
	start := time.Now()
	a := setup(t, cfg)
	t.Logf("100 vaults x 1000 keys started in %s", time.Since(start))
	b := setup(t, func(c *akvemu.Config) { c.Seed = akvemu.SeedSpec{Vaults: 2, KeysPerVault: 1000, Seed: 42} })
	for _, name := range []string{"kv-0001", "kv-0002"} {
		va, _ := a.Vault(name)
		vb, _ := b.Vault(name)
		ka, kb := va.Keys(), vb.Keys()
		if len(ka) != 1000 || len(ka) != len(kb) {
			t.Fatalf("%s: %d vs %d keys", name, len(ka), len(kb))
		}
		for i := range ka {
			if ka[i].Name != kb[i].Name || ka[i].Version != kb[i].Version || !ka[i].Updated.Equal(kb[i].Updated) || string(ka[i].N) != string(kb[i].N) {
				t.Fatalf("%s key %d differs: %s/%s vs %s/%s", name, i, ka[i].Name, ka[i].Version, kb[i].Name, kb[i].Version)
			}
		}
	}
	mix := map[string]int{}
	disabled, expired, managed, tagged := 0, 0, 0, 0
	for _, v := range a.Vaults()[:10] {
		for _, k := range v.Keys() {
			mix[k.Kty]++
			if !k.Enabled {
				disabled++
			}
			if k.Expires != nil && k.Expires.Before(time.Now()) {
				expired++
			}
			if k.Managed {
				managed++
			}
			if len(k.Tags) > 0 {
				tagged++
			}
		}
	}
	if len(mix) < 4 || disabled == 0 || expired == 0 || managed == 0 || tagged == 0 {
		t.Errorf("unrealistic mix: types %v disabled %d expired %d managed %d tagged %d", mix, disabled, expired, managed, tagged)
	}
}
