package akvemu_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/akvsync/akvsync/pkg/akvemu"
)

func TestManagedHSMPool(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *akvemu.Config) { c.HostRouting = true })
	pool := addVault(t, e, akvemu.VaultSpec{Name: "hsm-pay", Kind: akvemu.KindManagedHSM, KeySpecs: []akvemu.NamedKeySpec{
		{Name: "aes128", KeySpec: akvemu.KeySpec{Kty: akvemu.KtyOctHSM, KeySize: 128}},
		{Name: "aes192", KeySpec: akvemu.KeySpec{Kty: akvemu.KtyOctHSM, KeySize: 192}},
		{Name: "aes256", KeySpec: akvemu.KeySpec{Kty: akvemu.KtyOctHSM}},
		{Name: "rsa", KeySpec: akvemu.KeySpec{Kty: akvemu.KtyRSAHSM, KeySize: 3072}},
		{Name: "ec", KeySpec: akvemu.KeySpec{Kty: akvemu.KtyECHSM, Curve: akvemu.CurveP384}},
	}})
	vault := addVault(t, e, akvemu.VaultSpec{Name: "kv-std"})
	cred, err := e.Credential()
	if err != nil {
		t.Fatal(err)
	}

	t.Run("the real azkeys client lists and reads a pool", func(t *testing.T) {
		c := newClient(t, e, pool, nil)
		names, _, _ := listAll(t, c)
		if strings.Join(names, ",") != "aes128,aes192,aes256,ec,rsa" {
			t.Fatalf("listed %v", names)
		}
		for name, kty := range map[string]azkeys.KeyType{"aes192": azkeys.KeyTypeOctHSM, "rsa": azkeys.KeyTypeRSAHSM, "ec": azkeys.KeyTypeECHSM} {
			resp, err := c.GetKey(context.Background(), name, "", nil)
			if err != nil {
				t.Fatalf("get %s: %v", name, err)
			}
			if *resp.Key.Kty != kty || resp.Key.KID.Name() != name {
				t.Errorf("%s: kty %s", name, *resp.Key.Kty)
			}
		}
		if k, _ := pool.GetKey("aes192", ""); k.KeySize != 192 || k.Kty != akvemu.KtyOctHSM || k.HSMPlatform == "" {
			t.Errorf("Go API key: %+v", k)
		}
		if got := e.Counters("hsm-pay").Count(akvemu.OpGetKey, 200); got != 3 {
			t.Errorf("%d GetKey answered, want 3", got)
		}
	})
	t.Run("the challenge names the managed HSM resource", func(t *testing.T) {
		resp, body := rawDo(t, e, http.MethodGet, pool.URL()+"/keys?api-version=7.5", "", nil)
		want := `Bearer authorization="` + strings.TrimSuffix(e.AuthorityHost(), "/") + "/" + e.TenantID() + `", resource="https://managedhsm.azure.net"`
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != want || !strings.Contains(string(body), "AKV10000") {
			t.Errorf("challenge: %d %q %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
		}
	})
	t.Run("a vault token is refused by a pool and a pool token by a vault", func(t *testing.T) {
		resp, body := rawDo(t, e, http.MethodGet, pool.URL()+"/keys?api-version=7.5", vaultToken(t, cred), nil)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "AKV10022") {
			t.Errorf("vault token on pool: %d %s", resp.StatusCode, body)
		}
		hsmTok := armToken(t, e, akvemu.ManagedHSMAudience+"/.default")
		resp, body = rawDo(t, e, http.MethodGet, vault.URL()+"/keys?api-version=7.5", hsmTok, nil)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "AKV10022") {
			t.Errorf("pool token on vault: %d %s", resp.StatusCode, body)
		}
		resp, body = rawDo(t, e, http.MethodGet, pool.URL()+"/keys?api-version=7.5", hsmTok, nil)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("pool token on pool: %d %s", resp.StatusCode, body)
		}
	})
	t.Run("only HSM key types, in pools; no symmetric keys in standard vaults", func(t *testing.T) {
		c := newClient(t, e, pool, nil)
		_, err := c.CreateKey(context.Background(), "soft", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeRSA)}, nil)
		if re := responseError(t, err); re.StatusCode != http.StatusBadRequest || !strings.Contains(re.Error(), "KeyTypeNotSupported") {
			t.Errorf("software RSA in a pool: %v", err)
		}
		created, err := c.CreateKey(context.Background(), "aes-new", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeOctHSM), KeySize: ptr[int32](128)}, nil)
		if err != nil || *created.Key.Kty != azkeys.KeyTypeOctHSM {
			t.Fatalf("oct-HSM in a pool: %v", err)
		}
		if k, _ := pool.GetKey("aes-new", ""); k.KeySize != 128 {
			t.Errorf("created AES key size %d", k.KeySize)
		}
		vc := newClient(t, e, vault, nil)
		for _, kty := range []azkeys.KeyType{azkeys.KeyTypeOct, azkeys.KeyTypeOctHSM} {
			_, err := vc.CreateKey(context.Background(), "sym", azkeys.CreateKeyParameters{Kty: ptr(kty)}, nil)
			if re := responseError(t, err); re.StatusCode != http.StatusBadRequest {
				t.Errorf("%s in a standard vault: %v", kty, err)
			}
		}
		if _, err := vault.CreateKey("sym", akvemu.KeySpec{Kty: "oct"}); err == nil || !strings.Contains(err.Error(), "Invalid kty value: oct") {
			t.Errorf("Go API oct in a vault: %v", err)
		}
		// An imported software RSA key is kept in the pool's HSMs.
		k, _ := vault.CreateKey("to-import", akvemu.KeySpec{Kty: akvemu.KtyRSA})
		imp, err := c.ImportKey(context.Background(), "imported", azkeys.ImportKeyParameters{Key: &azkeys.JSONWebKey{
			Kty: ptr(azkeys.KeyTypeRSA), N: k.N, E: k.E}}, nil)
		if err != nil || *imp.Key.Kty != azkeys.KeyTypeRSAHSM {
			t.Errorf("import into a pool: %v", err)
		}
	})
	t.Run("key_size of symmetric keys from api-version 2026-01-01-preview", func(t *testing.T) {
		tok := armToken(t, e, akvemu.ManagedHSMAudience+"/.default")
		sizeOf := func(apiVersion, name string) any {
			resp, body := rawDo(t, e, http.MethodGet, pool.URL()+"/keys/"+name+"?api-version="+apiVersion, tok, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s %s: %d %s", apiVersion, name, resp.StatusCode, body)
			}
			var kb struct {
				Key map[string]any `json:"key"`
			}
			if err := json.Unmarshal(body, &kb); err != nil {
				t.Fatal(err)
			}
			return kb.Key["key_size"]
		}
		if got := sizeOf(akvemu.KeySizeAPIVersion, "aes192"); got != float64(192) {
			t.Errorf("aes192 at %s: key_size %v", akvemu.KeySizeAPIVersion, got)
		}
		if got := sizeOf(akvemu.LatestAPIVersion, "aes192"); got != nil {
			t.Errorf("aes192 at %s: key_size %v, want none", akvemu.LatestAPIVersion, got)
		}
		if got := sizeOf(akvemu.KeySizeAPIVersion, "rsa"); got != nil {
			t.Errorf("RSA keys carry their size in n, not key_size: %v", got)
		}
		opts := e.ClientOptions()
		opts.APIVersion = akvemu.KeySizeAPIVersion
		c, err := azkeys.NewClient(pool.URL(), cred, opts)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.GetKey(context.Background(), "aes128", "", nil); err != nil {
			t.Errorf("azkeys at %s: %v", akvemu.KeySizeAPIVersion, err)
		}
	})
	t.Run("host routing serves pools under managedhsm.localhost with verification on", func(t *testing.T) {
		if !strings.Contains(pool.HostURL(), "hsm-pay.managedhsm.localhost:") {
			t.Fatalf("pool host URL %q", pool.HostURL())
		}
		c, err := azkeys.NewClient(pool.HostURL(), cred, e.HostRoutingClientOptions())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.GetKey(context.Background(), "rsa", "", nil); err != nil {
			t.Fatalf("host-routed pool: %v", err)
		}
		wrong := strings.Replace(pool.HostURL(), ".managedhsm.", ".vault.", 1)
		resp, body := rawDo(t, e, http.MethodGet, wrong+"/keys?api-version=7.5", "", nil)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("pool under the vault suffix: %d %s", resp.StatusCode, body)
		}
		if m := e.Manifest(); m.HostRouting == nil || m.HostRouting.HSMResource != e.HSMHostRoutingResource() || !strings.HasPrefix(m.HostRouting.HSMResource, "https://managedhsm.localhost:") {
			t.Errorf("manifest host routing %+v", m.HostRouting)
		}
	})
}

func TestSeededManagedHSMs(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *akvemu.Config) {
		c.Seed = akvemu.SeedSpec{Vaults: 1, ManagedHSMs: 2, KeysPerVault: 300, Seed: 3, Subscriptions: 2}
	})
	m := e.Manifest()
	if len(m.Vaults) != 3 || m.Vaults[1].Name != "hsm-0001" || m.Vaults[1].Kind != akvemu.KindManagedHSM || m.Vaults[1].SKU != akvemu.SKUStandardB1 ||
		m.Vaults[1].ResourceType != "Microsoft.KeyVault/managedHSMs" || m.Vaults[2].SubscriptionID == m.Vaults[1].SubscriptionID {
		t.Fatalf("manifest %+v", m.Vaults)
	}
	p, _ := e.Vault("hsm-0001")
	sizes := map[int]int{}
	for _, k := range p.Keys() {
		switch k.Kty {
		case akvemu.KtyOctHSM:
			sizes[k.KeySize]++
		case akvemu.KtyRSAHSM, akvemu.KtyECHSM:
		default:
			t.Errorf("%s: kty %s in a pool", k.Name, k.Kty)
		}
		if k.Managed {
			t.Errorf("%s: managed key in a pool", k.Name)
		}
	}
	if sizes[128] == 0 || sizes[192] == 0 || sizes[256] == 0 {
		t.Errorf("AES key sizes %v, want 128, 192 and 256", sizes)
	}
}

func TestAPIVersionsCanBeNarrowed(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *akvemu.Config) { c.APIVersions = []string{akvemu.LatestAPIVersion} })
	pool := addVault(t, e, akvemu.VaultSpec{Name: "hsm-old", Kind: akvemu.KindManagedHSM,
		KeySpecs: []akvemu.NamedKeySpec{{Name: "aes", KeySpec: akvemu.KeySpec{Kty: akvemu.KtyOctHSM}}}})
	tok := armToken(t, e, akvemu.ManagedHSMAudience+"/.default")
	resp, body := rawDo(t, e, http.MethodGet, pool.URL()+"/keys/aes?api-version="+akvemu.KeySizeAPIVersion, tok, nil)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "is not recognized") {
		t.Errorf("a left-out api-version: %d %s", resp.StatusCode, body)
	}
	if resp, body := rawDo(t, e, http.MethodGet, pool.URL()+"/keys/aes?api-version="+akvemu.LatestAPIVersion, tok, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("the kept api-version: %d %s", resp.StatusCode, body)
	}
	if err := (akvemu.Config{APIVersions: []string{"2099-01-01"}}).Validate(); err == nil {
		t.Error("an api-version the emulator does not serve was accepted")
	}
}
