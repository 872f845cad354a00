package akvemu_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	armruntime "github.com/Azure/azure-sdk-for-go/sdk/azcore/arm/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"

	"github.com/akvsync/akvsync/pkg/akvemu"
)

// armClient is an azcore ARM pipeline (bearer policy for the management audience,
// retries, RP registration) pointed at the emulator's Resource Manager.
type armClient struct {
	t    testing.TB
	e    *akvemu.Emulator
	pl   runtime.Pipeline
	base string
}

func newARMClient(t testing.TB, e *akvemu.Emulator) *armClient {
	t.Helper()
	cred, err := e.Credential()
	if err != nil {
		t.Fatal(err)
	}
	pl, err := armruntime.NewPipeline("akvemu-test", "v0", cred, runtime.PipelineOptions{}, &arm.ClientOptions{
		ClientOptions: azcore.ClientOptions{Cloud: e.Cloud(), Transport: e.HTTPClient(), Retry: fastRetry},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &armClient{t: t, e: e, pl: pl, base: strings.TrimSuffix(e.ResourceManagerURL(), "/")}
}

// get sends GET base+pathAndQuery (or an absolute nextLink) and decodes a 200 body.
func (c *armClient) get(urlOrPath string, out any) *http.Response {
	c.t.Helper()
	u := urlOrPath
	if strings.HasPrefix(u, "/") {
		u = c.base + u
	}
	req, err := runtime.NewRequest(context.Background(), http.MethodGet, u)
	if err != nil {
		c.t.Fatal(err)
	}
	resp, err := c.pl.Do(req)
	if err != nil {
		c.t.Fatalf("GET %s: %v", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := runtime.Payload(resp)
		c.t.Fatalf("GET %s: %d %s", u, resp.StatusCode, b)
	}
	if out != nil {
		if err := runtime.UnmarshalAsJSON(resp, out); err != nil {
			c.t.Fatalf("GET %s: decode: %v", u, err)
		}
	}
	return resp
}

type armPage struct {
	Value    []json.RawMessage `json:"value"`
	NextLink string            `json:"nextLink"`
}

// listAllARM follows nextLink from path and returns every item and the page sizes.
func (c *armClient) listAll(path string) (items []map[string]any, pages []int) {
	c.t.Helper()
	next := path
	for next != "" {
		var p armPage
		c.get(next, &p)
		pages = append(pages, len(p.Value))
		for _, raw := range p.Value {
			var m map[string]any
			if err := json.Unmarshal(raw, &m); err != nil {
				c.t.Fatal(err)
			}
			items = append(items, m)
		}
		if p.NextLink != "" && !strings.HasPrefix(p.NextLink, c.base+"/") {
			c.t.Fatalf("nextLink %q is not an absolute URL on %s", p.NextLink, c.base)
		}
		next = p.NextLink
		if len(pages) > 1000 {
			c.t.Fatal("paging does not end")
		}
	}
	return items, pages
}

func str(m map[string]any, path ...string) string {
	var cur any = m
	for _, p := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = mm[p]
	}
	switch v := cur.(type) {
	case string:
		return v
	case nil:
		return ""
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}

func armToken(t testing.TB, e *akvemu.Emulator, scope string) string {
	t.Helper()
	cred, err := e.Credential()
	if err != nil {
		t.Fatal(err)
	}
	tk, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{scope}})
	if err != nil {
		t.Fatalf("token for %s: %v", scope, err)
	}
	return tk.Token
}

func armError(t testing.TB, body []byte) (code, message string) {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Error.Code == "" {
		t.Fatalf("not an ARM error body: %s", body)
	}
	return e.Error.Code, e.Error.Message
}

func TestResourceManagerListsSubscriptions(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *akvemu.Config) {
		c.Seed = akvemu.SeedSpec{Vaults: 6, KeysPerVault: 1, Subscriptions: 3, Seed: 11}
		c.Subscriptions = []akvemu.SubscriptionSpec{{ID: "00000000-0000-0000-0000-0000000000aa", DisplayName: "Empty one", State: "Warned"}}
		c.ARMPageSize = 2
	})
	c := newARMClient(t, e)
	want := map[string]bool{"00000000-0000-0000-0000-0000000000aa": true}
	for _, v := range e.Manifest().Vaults {
		want[v.SubscriptionID] = true
	}

	t.Run("every subscription of the tenant, paged with nextLink", func(t *testing.T) {
		subs, pages := c.listAll("/subscriptions?api-version=2022-12-01")
		if len(subs) != len(want) || len(want) != 4 {
			t.Fatalf("listed %d subscriptions, want %d", len(subs), len(want))
		}
		if !slices.Equal(pages, []int{2, 2}) {
			t.Errorf("page sizes %v, want [2 2]", pages)
		}
		for _, s := range subs {
			id := str(s, "subscriptionId")
			if !want[id] {
				t.Errorf("unexpected subscription %s", id)
			}
			if str(s, "id") != "/subscriptions/"+id || str(s, "tenantId") != e.TenantID() || str(s, "authorizationSource") != "RoleBased" ||
				str(s, "subscriptionPolicies", "spendingLimit") != "Off" || str(s, "subscriptionPolicies", "quotaId") == "" ||
				str(s, "managedByTenants") != "[]" || str(s, "displayName") == "" {
				t.Errorf("subscription shape: %v", s)
			}
			wantState := "Enabled"
			if id == "00000000-0000-0000-0000-0000000000aa" {
				wantState = "Warned"
				if str(s, "displayName") != "Empty one" {
					t.Errorf("display name %q", str(s, "displayName"))
				}
			}
			if str(s, "state") != wantState {
				t.Errorf("%s: state %q, want %s", id, str(s, "state"), wantState)
			}
		}
	})
	t.Run("older api-versions and one subscription by id", func(t *testing.T) {
		for _, v := range []string{"2020-01-01", "2021-01-01"} {
			if subs, _ := c.listAll("/subscriptions?api-version=" + v); len(subs) != 4 {
				t.Errorf("api-version %s: %d subscriptions", v, len(subs))
			}
		}
		var s map[string]any
		resp := c.get("/subscriptions/00000000-0000-0000-0000-0000000000aa?api-version=2022-12-01", &s)
		if str(s, "displayName") != "Empty one" || str(s, "tenantId") != e.TenantID() {
			t.Errorf("subscription: %v", s)
		}
		if resp.Header.Get("x-ms-ratelimit-remaining-subscription-reads") == "" || resp.Header.Get("x-ms-request-id") == "" ||
			resp.Header.Get("x-ms-correlation-request-id") == "" {
			t.Errorf("ARM headers missing: %v", resp.Header)
		}
	})
	t.Run("an unknown subscription is 404 SubscriptionNotFound", func(t *testing.T) {
		tok := armToken(t, e, akvemu.ResourceManagerAudience+"/.default")
		for _, p := range []string{"/subscriptions/nope?api-version=2022-12-01", "/subscriptions/nope/providers/Microsoft.KeyVault/vaults?api-version=2023-07-01"} {
			resp, body := rawDo(t, e, http.MethodGet, c.base+p, tok, nil)
			if code, _ := armError(t, body); resp.StatusCode != http.StatusNotFound || code != "SubscriptionNotFound" {
				t.Errorf("%s: %d %s", p, resp.StatusCode, body)
			}
		}
	})
}

func TestResourceManagerListsVaultsAndPools(t *testing.T) {
	t.Parallel()
	const sub = "11111111-2222-3333-4444-555555555555"
	e := setup(t, func(c *akvemu.Config) {
		c.ResourceGroup = "rg-default"
		c.Region = "northeurope"
		c.Vaults = []akvemu.VaultSpec{
			{Name: "kv-a", SubscriptionID: sub},
			{Name: "kv-b", SubscriptionID: sub, SKU: akvemu.SKUPremium, PurgeProtection: true, RecoverableDays: 30, Tags: map[string]string{"env": "prod"}},
			{Name: "kv-c", SubscriptionID: sub, ResourceGroup: "rg-other", Location: "westus2", RBAC: true},
			{Name: "kv-d", SubscriptionID: sub},
			{Name: "kv-e", SubscriptionID: sub},
			{Name: "elsewhere", SubscriptionID: "99999999-2222-3333-4444-555555555555"},
			{Name: "hsm-one", Kind: akvemu.KindManagedHSM, SubscriptionID: sub, ResourceGroup: "rg-hsm"},
			{Name: "hsm-two", Kind: akvemu.KindManagedHSM, SubscriptionID: sub, ResourceGroup: "rg-hsm", PurgeProtection: true},
		}
	})
	c := newARMClient(t, e)

	t.Run("vaults of a subscription with $top paging and the real vault shape", func(t *testing.T) {
		for _, v := range []string{"2023-07-01", "2022-07-01", "2024-11-01"} {
			items, pages := c.listAll("/subscriptions/" + sub + "/providers/Microsoft.KeyVault/vaults?api-version=" + v + "&$top=2")
			var names []string
			for _, it := range items {
				names = append(names, str(it, "name"))
			}
			slices.Sort(names)
			if !slices.Equal(names, []string{"kv-a", "kv-b", "kv-c", "kv-d", "kv-e"}) {
				t.Fatalf("api-version %s: vaults %v", v, names)
			}
			if !slices.Equal(pages, []int{2, 2, 1}) {
				t.Errorf("api-version %s: page sizes %v, want [2 2 1]", v, pages)
			}
		}
		items, _ := c.listAll("/subscriptions/" + sub + "/providers/Microsoft.KeyVault/vaults?api-version=2023-07-01")
		byName := map[string]map[string]any{}
		for _, it := range items {
			byName[str(it, "name")] = it
		}
		a, b, cc := byName["kv-a"], byName["kv-b"], byName["kv-c"]
		va, _ := e.Vault("kv-a")
		if str(a, "id") != "/subscriptions/"+sub+"/resourceGroups/rg-default/providers/Microsoft.KeyVault/vaults/kv-a" ||
			str(a, "type") != "Microsoft.KeyVault/vaults" || str(a, "location") != "northeurope" || str(a, "tags") != "{}" ||
			str(a, "properties", "vaultUri") != va.URL()+"/" || str(a, "properties", "tenantId") != e.TenantID() ||
			str(a, "properties", "sku") != `{"family":"A","name":"standard"}` || str(a, "properties", "provisioningState") != "Succeeded" ||
			str(a, "properties", "enableSoftDelete") != "true" || str(a, "properties", "softDeleteRetentionInDays") != "90" ||
			str(a, "properties", "enableRbacAuthorization") != "false" || str(a, "properties", "enabledForDeployment") != "false" ||
			str(a, "properties", "enabledForDiskEncryption") != "false" || str(a, "properties", "enabledForTemplateDeployment") != "false" ||
			str(a, "properties", "publicNetworkAccess") != "Enabled" || str(a, "properties", "enablePurgeProtection") != "" ||
			str(a, "systemData", "createdByType") != "Application" || !strings.HasSuffix(str(a, "systemData", "createdAt"), "Z") {
			t.Errorf("kv-a shape: %v", a)
		}
		if !strings.Contains(str(a, "properties", "accessPolicies"), `"objectId"`) {
			t.Errorf("kv-a has no access policy: %s", str(a, "properties", "accessPolicies"))
		}
		if str(b, "properties", "sku", "name") != "premium" || str(b, "properties", "enablePurgeProtection") != "true" ||
			str(b, "properties", "softDeleteRetentionInDays") != "30" || str(b, "tags", "env") != "prod" {
			t.Errorf("kv-b shape: %v", b)
		}
		if str(cc, "location") != "westus2" || !strings.Contains(str(cc, "id"), "/resourceGroups/rg-other/") ||
			str(cc, "properties", "enableRbacAuthorization") != "true" || str(cc, "properties", "accessPolicies") != "[]" {
			t.Errorf("kv-c shape: %v", cc)
		}
	})
	t.Run("vaults of one resource group, and one vault by id", func(t *testing.T) {
		items, _ := c.listAll("/subscriptions/" + sub + "/resourceGroups/RG-OTHER/providers/Microsoft.KeyVault/vaults?api-version=2023-07-01&$top=1")
		if len(items) != 1 || str(items[0], "name") != "kv-c" {
			t.Fatalf("rg-other lists %v", items)
		}
		items, pages := c.listAll("/subscriptions/" + sub + "/resourceGroups/rg-default/providers/Microsoft.KeyVault/vaults?api-version=2023-07-01&$top=3")
		if len(items) != 4 || !slices.Equal(pages, []int{3, 1}) {
			t.Fatalf("rg-default lists %d vaults in pages %v", len(items), pages)
		}
		var v map[string]any
		c.get("/subscriptions/"+sub+"/resourceGroups/rg-default/providers/Microsoft.KeyVault/vaults/KV-D?api-version=2024-11-01", &v)
		if str(v, "name") != "kv-d" {
			t.Errorf("get vault: %v", v)
		}
		tok := armToken(t, e, akvemu.ResourceManagerAudience+"/.default")
		for p, want := range map[string]string{
			"/subscriptions/" + sub + "/resourceGroups/rg-none/providers/Microsoft.KeyVault/vaults?api-version=2023-07-01":          "ResourceGroupNotFound",
			"/subscriptions/" + sub + "/resourceGroups/rg-default/providers/Microsoft.KeyVault/vaults/kv-zz?api-version=2023-07-01": "ResourceNotFound",
		} {
			resp, body := rawDo(t, e, http.MethodGet, c.base+p, tok, nil)
			if code, _ := armError(t, body); resp.StatusCode != http.StatusNotFound || code != want {
				t.Errorf("%s: %d %s, want 404 %s", p, resp.StatusCode, body, want)
			}
		}
	})
	t.Run("managed HSM pools with their own shape", func(t *testing.T) {
		items, pages := c.listAll("/subscriptions/" + sub + "/providers/Microsoft.KeyVault/managedHSMs?api-version=2023-07-01&$top=1")
		if len(items) != 2 || !slices.Equal(pages, []int{1, 1}) {
			t.Fatalf("pools %v in pages %v", items, pages)
		}
		one := items[0]
		p, _ := e.Vault("hsm-one")
		if str(one, "name") != "hsm-one" || str(one, "type") != "Microsoft.KeyVault/managedHSMs" ||
			str(one, "id") != "/subscriptions/"+sub+"/resourceGroups/rg-hsm/providers/Microsoft.KeyVault/managedHSMs/hsm-one" ||
			str(one, "sku") != `{"family":"B","name":"Standard_B1"}` || str(one, "properties", "hsmUri") != p.URL()+"/" ||
			str(one, "properties", "tenantId") != e.TenantID() || str(one, "properties", "provisioningState") != "Succeeded" ||
			str(one, "properties", "enableSoftDelete") != "true" || str(one, "properties", "softDeleteRetentionInDays") != "90" ||
			str(one, "properties", "enablePurgeProtection") != "false" || str(one, "properties", "initialAdminObjectIds") == "[]" ||
			str(one, "properties", "securityDomainProperties", "activationStatus") != "Active" {
			t.Errorf("pool shape: %v", one)
		}
		if str(items[1], "properties", "enablePurgeProtection") != "true" {
			t.Errorf("hsm-two: %v", items[1])
		}
		items, _ = c.listAll("/subscriptions/" + sub + "/resourceGroups/rg-hsm/providers/Microsoft.KeyVault/managedHSMs?api-version=2024-11-01")
		if len(items) != 2 {
			t.Errorf("pools of rg-hsm: %d", len(items))
		}
		if items, _ := c.listAll("/subscriptions/" + sub + "/resourceGroups/rg-hsm/providers/Microsoft.KeyVault/vaults?api-version=2023-07-01"); len(items) != 0 {
			t.Errorf("vaults of rg-hsm: %v", items)
		}
	})
	t.Run("vaults added and removed through the admin API show in ARM", func(t *testing.T) {
		resp, body := rawDo(t, e, http.MethodPost, e.AdminURL()+"/admin/vaults", "",
			strings.NewReader(`{"name":"kv-late","subscription_id":"`+sub+`","resource_group":"rg-late","location":"eastus","tags":{"team":"x"}}`))
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("admin add: %d %s", resp.StatusCode, body)
		}
		var mv akvemu.ManifestVault
		if err := json.Unmarshal(body, &mv); err != nil {
			t.Fatal(err)
		}
		if mv.ResourceID != "/subscriptions/"+sub+"/resourceGroups/rg-late/providers/Microsoft.KeyVault/vaults/kv-late" || mv.Kind != akvemu.KindVault {
			t.Errorf("manifest entry %+v", mv)
		}
		items, _ := c.listAll("/subscriptions/" + sub + "/resourceGroups/rg-late/providers/Microsoft.KeyVault/vaults?api-version=2023-07-01")
		if len(items) != 1 || str(items[0], "location") != "eastus" || str(items[0], "tags", "team") != "x" {
			t.Fatalf("rg-late: %v", items)
		}
		resp, body = rawDo(t, e, http.MethodPost, e.AdminURL()+"/admin/vaults", "",
			strings.NewReader(`{"name":"hsm-late","kind":"managedhsm","subscription_id":"`+sub+`"}`))
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("admin add pool: %d %s", resp.StatusCode, body)
		}
		if items, _ := c.listAll("/subscriptions/" + sub + "/providers/Microsoft.KeyVault/managedHSMs?api-version=2023-07-01"); len(items) != 3 {
			t.Errorf("%d pools after adding one", len(items))
		}
		for _, n := range []string{"kv-late", "hsm-late"} {
			if resp, body := rawDo(t, e, http.MethodDelete, e.AdminURL()+"/admin/vaults/"+n, "", nil); resp.StatusCode != http.StatusNoContent {
				t.Fatalf("admin delete %s: %d %s", n, resp.StatusCode, body)
			}
		}
		tok := armToken(t, e, akvemu.ResourceManagerAudience+"/.default")
		resp, body = rawDo(t, e, http.MethodGet, c.base+"/subscriptions/"+sub+"/resourceGroups/rg-late/providers/Microsoft.KeyVault/vaults?api-version=2023-07-01", tok, nil)
		if code, _ := armError(t, body); resp.StatusCode != http.StatusNotFound || code != "ResourceGroupNotFound" {
			t.Errorf("after removal: %d %s", resp.StatusCode, body)
		}
	})
}

func TestResourceManagerChecksAPIVersionsAndTokens(t *testing.T) {
	t.Parallel()
	const sub = "11111111-2222-3333-4444-555555555555"
	e := setup(t, func(c *akvemu.Config) {
		c.Vaults = []akvemu.VaultSpec{{Name: "kv-a", SubscriptionID: sub}}
	})
	base := strings.TrimSuffix(e.ResourceManagerURL(), "/")
	armTok := armToken(t, e, akvemu.ResourceManagerAudience+"/.default")
	vaults := base + "/subscriptions/" + sub + "/providers/Microsoft.KeyVault/vaults"

	t.Run("api-version missing or unsupported is 400", func(t *testing.T) {
		for u, want := range map[string]string{
			vaults:                                  "MissingApiVersionParameter",
			vaults + "?api-version=2099-01-01":      "InvalidApiVersionParameter",
			base + "/subscriptions":                 "MissingApiVersionParameter",
			base + "/subscriptions?api-version=7.4": "InvalidApiVersionParameter",
			base + "/subscriptions/" + sub + "/providers/Microsoft.KeyVault/managedHSMs?api-version=2019-09-01": "InvalidApiVersionParameter",
		} {
			resp, body := rawDo(t, e, http.MethodGet, u, armTok, nil)
			code, msg := armError(t, body)
			if resp.StatusCode != http.StatusBadRequest || code != want {
				t.Errorf("%s: %d %s, want 400 %s", u, resp.StatusCode, body, want)
			}
			if want == "InvalidApiVersionParameter" && !strings.Contains(msg, "2022-12-01") && !strings.Contains(msg, "2024-11-01") {
				t.Errorf("%s: message names no supported version: %s", u, msg)
			}
		}
		resp, body := rawDo(t, e, http.MethodGet, vaults+"?api-version=2023-07-01&$top=zero", armTok, nil)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "$top") {
			t.Errorf("$top=zero: %d %s", resp.StatusCode, body)
		}
		if resp.Header.Get("x-ms-ratelimit-remaining-subscription-reads") == "" || resp.Header.Get("x-ms-request-id") == "" {
			t.Errorf("a 400 lacks the ARM headers: %v", resp.Header)
		}
	})
	t.Run("a request without a token gets ARM's 401 and challenge", func(t *testing.T) {
		resp, body := rawDo(t, e, http.MethodGet, vaults+"?api-version=2023-07-01", "", nil)
		code, _ := armError(t, body)
		if resp.StatusCode != http.StatusUnauthorized || code != "AuthenticationFailed" ||
			!strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), `Bearer authorization_uri="`+strings.TrimSuffix(e.AuthorityHost(), "/")) {
			t.Errorf("no token: %d %s %v", resp.StatusCode, body, resp.Header)
		}
	})
	t.Run("a Key Vault token is refused by ARM", func(t *testing.T) {
		resp, body := rawDo(t, e, http.MethodGet, vaults+"?api-version=2023-07-01", armToken(t, e, akvemu.VaultAudience+"/.default"), nil)
		code, msg := armError(t, body)
		if resp.StatusCode != http.StatusUnauthorized || code != "InvalidAuthenticationTokenAudience" || !strings.Contains(msg, akvemu.VaultAudience) ||
			!strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Errorf("vault token: %d %s", resp.StatusCode, body)
		}
	})
	t.Run("the classic management audience is accepted", func(t *testing.T) {
		resp, body := rawDo(t, e, http.MethodGet, vaults+"?api-version=2023-07-01", armToken(t, e, akvemu.ResourceManagerClassicAudience+"/.default"), nil)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("classic audience: %d %s", resp.StatusCode, body)
		}
	})
	t.Run("an ARM token is refused by a vault", func(t *testing.T) {
		v, _ := e.Vault("kv-a")
		resp, body := rawDo(t, e, http.MethodGet, v.URL()+"/keys?api-version=7.5", armTok, nil)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "AKV10022") {
			t.Errorf("vault with an ARM token: %d %s", resp.StatusCode, body)
		}
	})
	t.Run("writes are not served", func(t *testing.T) {
		resp, body := rawDo(t, e, http.MethodPut, vaults+"/kv-x?api-version=2023-07-01", armTok, strings.NewReader("{}"))
		if resp.StatusCode < 400 {
			t.Errorf("PUT: %d %s", resp.StatusCode, body)
		}
	})
}

func TestResourceManagerThrottlesReads(t *testing.T) {
	t.Parallel()
	const sub = "11111111-2222-3333-4444-555555555555"
	e := setup(t, func(c *akvemu.Config) {
		c.Vaults = []akvemu.VaultSpec{{Name: "kv-a", SubscriptionID: sub}}
		c.ARMReadBucket = 3
		c.ARMReadRefill = 0.01 // one token per 100 s: the test never sees a refill
	})
	base := strings.TrimSuffix(e.ResourceManagerURL(), "/")
	tok := armToken(t, e, akvemu.ResourceManagerAudience+"/.default")
	u := base + "/subscriptions/" + sub + "/providers/Microsoft.KeyVault/vaults?api-version=2023-07-01"

	var remaining []int
	for range 3 {
		resp, body := rawDo(t, e, http.MethodGet, u, tok, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("read within the bucket: %d %s", resp.StatusCode, body)
		}
		n, err := strconv.Atoi(resp.Header.Get("x-ms-ratelimit-remaining-subscription-reads"))
		if err != nil {
			t.Fatalf("remaining reads header: %v", resp.Header)
		}
		remaining = append(remaining, n)
	}
	if !slices.Equal(remaining, []int{2, 1, 0}) {
		t.Errorf("remaining reads %v, want [2 1 0]", remaining)
	}
	resp, body := rawDo(t, e, http.MethodGet, u, tok, nil)
	code, msg := armError(t, body)
	ra, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
	if resp.StatusCode != http.StatusTooManyRequests || code != "SubscriptionRequestsThrottled" || ra < 1 || !strings.Contains(msg, sub) {
		t.Errorf("over the bucket: %d %s Retry-After %q", resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
	// The tenant-level subscription list has its own bucket.
	resp, body = rawDo(t, e, http.MethodGet, base+"/subscriptions?api-version=2022-12-01", tok, nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("x-ms-ratelimit-remaining-tenant-reads") != "2" {
		t.Errorf("tenant read: %d %s %v", resp.StatusCode, body, resp.Header)
	}
	var p armPage
	if err := json.Unmarshal(body, &p); err != nil || len(p.Value) != 1 {
		t.Errorf("subscriptions: %s", body)
	}
}
