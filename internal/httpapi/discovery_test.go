package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/akvsync/akvsync/internal/azure"
	"github.com/akvsync/akvsync/internal/connections"
	"github.com/akvsync/akvsync/internal/discovery"
	"github.com/akvsync/akvsync/internal/httpapi"
	"github.com/akvsync/akvsync/pkg/akvemu"
)

const (
	emuConn = "emu-conn"
	subA    = "aaaaaaaa-1111-2222-3333-444444444444" // 7 vaults, 2 Managed HSM pools
	subB    = "bbbbbbbb-1111-2222-3333-444444444444" // 2 vaults
	subC    = "cccccccc-1111-2222-3333-444444444444" // nothing

	azurePath     = "/api/v1/cckm/azure"
	getSubsPath   = azurePath + "/get-subscriptions"
	getVaultsPath = azurePath + "/get-vaults"
	getHSMsPath   = azurePath + "/get-managed-hsms"
	subsPath      = azurePath + "/subscriptions"
)

// startEmulator starts an emulator whose Resource Manager lists subA, subB
// and subC.
func startEmulator(t *testing.T, mod func(*akvemu.Config)) *akvemu.Emulator {
	t.Helper()
	cfg := akvemu.Config{
		DataDir:       t.TempDir(),
		Subscriptions: []akvemu.SubscriptionSpec{{ID: subC, DisplayName: "Sandbox", State: "Disabled"}},
	}
	for i := 1; i <= 7; i++ {
		cfg.Vaults = append(cfg.Vaults, akvemu.VaultSpec{Name: fmt.Sprintf("kv-a-%02d", i), SubscriptionID: subA,
			Location: "westeurope", Tags: map[string]string{"team": "payments"}, Keys: 2})
	}
	cfg.Vaults = append(cfg.Vaults,
		akvemu.VaultSpec{Name: "kv-b-01", SubscriptionID: subB, SKU: akvemu.SKUPremium},
		akvemu.VaultSpec{Name: "kv-b-02", SubscriptionID: subB},
		akvemu.VaultSpec{Name: "hsm-a-01", Kind: akvemu.KindManagedHSM, SubscriptionID: subA},
		akvemu.VaultSpec{Name: "hsm-a-02", Kind: akvemu.KindManagedHSM, SubscriptionID: subA},
	)
	if mod != nil {
		mod(&cfg)
	}
	e, err := akvemu.Start(testCtx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

// createEmuConnection registers a client-secret connection to the
// emulator, its Resource Manager as resource_manager_url, as a client
// would.
func createEmuConnection(t *testing.T, ctx context.Context, reg *connections.Registry, e *akvemu.Emulator, name, secret string) {
	t.Helper()
	_, err := reg.Create(ctx, connections.CreateRequest{
		Settings: connections.Settings{
			Name: name, TenantID: e.TenantID(), ClientID: e.ClientID(), CredentialType: azure.CredentialClientSecret,
			ActiveDirectoryEndpoint: e.AuthorityHost(), AzureStackServerCert: string(e.CACertPEM()),
			ResourceManagerURL: e.ResourceManagerURL(), DisableChallengeResourceVerification: true,
		},
		ClientSecret: secret,
	})
	if err != nil {
		t.Fatalf("create connection %s: %v", name, err)
	}
}

func withDiscovery(o *options) { o.discovery = true }

// vaultsAnswer is get-vaults' answer as the Terraform provider decodes it,
// plus the raw vaults.
type vaultsAnswer struct {
	Vaults         []json.RawMessage `json:"vaults"`
	Connection     string            `json:"connection"`
	SubscriptionID string            `json:"subscription_id"`
	NextLink       *string           `json:"nextLink"`
}

func (a vaultsAnswer) names(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, raw := range a.Vaults {
		var v struct {
			Name string `json:"name"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v.Name)
	}
	return out
}

// vaultsBody is the body the Terraform provider sends: limit always,
// nextLink null on the first call.
func vaultsBody(conn, sub string, limit int, next *string) string {
	b, _ := json.Marshal(map[string]any{"connection": conn, "subscription_id": sub, "limit": limit, "nextLink": next})
	return string(b)
}

func TestGetSubscriptions(t *testing.T) {
	t.Parallel()
	e := setup(t, withDiscovery)

	var live []map[string]any
	t.Run("lists the connection's subscriptions live, as a JSON array of ARM's fields", func(t *testing.T) {
		r := e.as(t, "alice", "POST", getSubsPath, `{"connection":"`+emuConn+`"}`)
		r.wantStatus(t, http.StatusOK)
		r.decode(t, &live)
		var ids []string
		for _, s := range live {
			ids = append(ids, s["subscriptionId"].(string))
			pol, _ := s["subscriptionPolicies"].(map[string]any)
			if s["displayName"] == "" || s["state"] == "" || s["tenantId"] != e.emu.TenantID() || s["authorizationSource"] == "" ||
				pol["locationPlacementId"] == nil || pol["quotaId"] == nil || pol["spendingLimit"] == nil {
				t.Errorf("subscription %v lacks CCKM's fields", s)
			}
		}
		slices.Sort(ids)
		if want := []string{subA, subB, subC}; !slices.Equal(ids, want) {
			t.Fatalf("subscriptions %v, want %v", ids, want)
		}
		if r.header.Get(httpapi.TruncatedHeader) != "" {
			t.Errorf("%s set on a complete list", httpapi.TruncatedHeader)
		}
	})

	var stored httpapi.Page[httpapi.SubscriptionJSON]
	t.Run("stores what it listed", func(t *testing.T) {
		r := e.as(t, "victor", "GET", subsPath+"?sort=subscriptionId", "")
		r.wantStatus(t, http.StatusOK)
		r.decode(t, &stored)
		if stored.Total != 3 || len(stored.Resources) != 3 || stored.Limit != 10 {
			t.Fatalf("stored page %+v", stored)
		}
		s := stored.Resources[2]
		if s.SubscriptionID != subC || s.DisplayName != "Sandbox" || s.State != "Disabled" || s.SubscriptionURI != "/subscriptions/"+subC ||
			s.URI != httpapi.SubscriptionURIPrefix+s.ID || s.Account == "" || s.TenantID != e.emu.TenantID() ||
			s.AuthorizationSource == "" || s.Connection != emuConn || s.CreatedAt == "" || s.UpdatedAt != s.CreatedAt || s.ID != discovery.RecordID(subC) {
			t.Fatalf("stored subscription %+v", s)
		}
		var raw httpapi.Page[map[string]any]
		r.decode(t, &raw)
		for _, f := range []string{"id", "uri", "account", "created_at", "updated_at", "subscriptionId", "subscriptionUri", "displayName", "state", "authorizationSource", "tenantId", "connection"} {
			if _, ok := raw.Resources[0][f]; !ok {
				t.Errorf("stored subscription has no %s: %v", f, raw.Resources[0])
			}
		}
	})
	t.Run("listing again changes nothing stored", func(t *testing.T) {
		e.as(t, "alice", "POST", getSubsPath, `{"connection":"`+emuConn+`"}`).wantStatus(t, http.StatusOK)
		var again httpapi.Page[httpapi.SubscriptionJSON]
		e.as(t, "victor", "GET", subsPath+"?sort=subscriptionId", "").decode(t, &again)
		if !slices.Equal(again.Resources, stored.Resources) {
			t.Fatalf("after a second listing:\n%+v\nwas\n%+v", again.Resources, stored.Resources)
		}
	})
	t.Run("the stored list filters, sorts and pages", func(t *testing.T) {
		var p httpapi.Page[httpapi.SubscriptionJSON]
		e.as(t, "victor", "GET", subsPath+"?subscriptionId="+strings.ToUpper(subB), "").decode(t, &p)
		if p.Total != 1 || p.Resources[0].SubscriptionID != subB {
			t.Fatalf("by subscriptionId: %+v", p)
		}
		e.as(t, "victor", "GET", subsPath+"?name=sandbox", "").decode(t, &p)
		if p.Total != 1 || p.Resources[0].SubscriptionID != subC {
			t.Fatalf("by name: %+v", p)
		}
		e.as(t, "victor", "GET", subsPath+"?sort=-subscriptionId&skip=1&limit=1", "").decode(t, &p)
		if p.Total != 3 || len(p.Resources) != 1 || p.Resources[0].SubscriptionID != subB || p.Skip != 1 || p.Limit != 1 {
			t.Fatalf("sorted page: %+v", p)
		}
		e.as(t, "victor", "GET", subsPath+"?sort=color", "").wantError(t, http.StatusBadRequest, "NCERRInvalidParamValue", "sort")
		e.as(t, "victor", "GET", subsPath+"?state=Enabled", "").wantError(t, http.StatusBadRequest, "NCERRInvalidParamValue", `"state"`)
	})
	t.Run("one is read by its id or its subscription id", func(t *testing.T) {
		for _, ref := range []string{discovery.RecordID(subA), subA} {
			var s httpapi.SubscriptionJSON
			r := e.as(t, "victor", "GET", subsPath+"/"+ref, "")
			r.wantStatus(t, http.StatusOK)
			r.decode(t, &s)
			if s.SubscriptionID != subA {
				t.Fatalf("GET %s: %+v", ref, s)
			}
		}
		e.as(t, "victor", "GET", subsPath+"/"+discovery.RecordID("nope"), "").wantError(t, http.StatusNotFound, "NCERRResourceNotFound", "Resource not found")
	})
	t.Run("a deleted one is gone until listed again", func(t *testing.T) {
		e.as(t, "victor", "DELETE", subsPath+"/"+subB, "").wantStatus(t, http.StatusForbidden)
		r := e.as(t, "alice", "DELETE", subsPath+"/"+subB, "")
		r.wantStatus(t, http.StatusNoContent)
		e.as(t, "alice", "GET", subsPath+"/"+subB, "").wantStatus(t, http.StatusNotFound)
		e.as(t, "alice", "DELETE", subsPath+"/"+subB, "").wantStatus(t, http.StatusNotFound)
		var p httpapi.Page[httpapi.SubscriptionJSON]
		e.as(t, "victor", "GET", subsPath, "").decode(t, &p)
		if p.Total != 2 {
			t.Fatalf("after the delete: %+v", p)
		}
		e.as(t, "alice", "POST", getSubsPath, `{"connection":"`+emuConn+`"}`).wantStatus(t, http.StatusOK)
		e.as(t, "alice", "GET", subsPath+"/"+subB, "").wantStatus(t, http.StatusOK)
	})
	t.Run("bad requests name the field", func(t *testing.T) {
		e.as(t, "alice", "POST", getSubsPath, `{}`).wantError(t, http.StatusBadRequest, "NCERRInvalidParamValue", "connection is required")
		e.as(t, "alice", "POST", getSubsPath, `{"connection":"nope"}`).wantError(t, http.StatusBadRequest, "NCERRInvalidParamValue", `connection "nope" is not a known connection`)
		e.as(t, "alice", "POST", getSubsPath, `{"connection":"`+emuConn+`","subscription":"x"}`).wantError(t, http.StatusBadRequest, "NCERRInvalidParamValue", "subscription")
	})
	t.Run("a viewer cannot list Azure's subscriptions", func(t *testing.T) {
		e.as(t, "victor", "POST", getSubsPath, `{"connection":"`+emuConn+`"}`).wantError(t, http.StatusForbidden, "NCERRForbidden", "vaults:write")
	})
}

func TestGetVaults(t *testing.T) {
	t.Parallel()
	e := setup(t, withDiscovery)

	t.Run("pages with limit and nextLink, as the Terraform provider does", func(t *testing.T) {
		var all []string
		var sizes []int
		var next *string
		for i := 0; ; i++ {
			r := e.as(t, "alice", "POST", getVaultsPath, vaultsBody(emuConn, subA, 3, next))
			r.wantStatus(t, http.StatusOK)
			var a vaultsAnswer
			r.decode(t, &a)
			if a.Connection != emuConn || a.SubscriptionID != subA {
				t.Fatalf("answer echoes %q %q", a.Connection, a.SubscriptionID)
			}
			all = append(all, a.names(t)...)
			sizes = append(sizes, len(a.Vaults))
			if a.NextLink == nil {
				if !strings.Contains(string(r.body), `"nextLink":null`) {
					t.Errorf("last page %s: nextLink is not null", r.body)
				}
				break
			}
			next = a.NextLink
			if i > 10 {
				t.Fatal("paging does not end")
			}
		}
		if want := []int{3, 3, 1}; !slices.Equal(sizes, want) {
			t.Errorf("page sizes %v, want %v", sizes, want)
		}
		if want := []string{"kv-a-01", "kv-a-02", "kv-a-03", "kv-a-04", "kv-a-05", "kv-a-06", "kv-a-07"}; !slices.Equal(all, want) {
			t.Fatalf("vaults %v, want %v", all, want)
		}
	})
	t.Run("a vault is the ARM object with azure_vault_id", func(t *testing.T) {
		r := e.as(t, "alice", "POST", getVaultsPath, `{"connection":"`+emuConn+`","subscription_id":"`+subB+`"}`)
		r.wantStatus(t, http.StatusOK)
		var a vaultsAnswer
		r.decode(t, &a)
		if len(a.Vaults) != 2 || a.NextLink != nil {
			t.Fatalf("answer %s", r.body)
		}
		var v map[string]any
		if err := json.Unmarshal(a.Vaults[0], &v); err != nil {
			t.Fatal(err)
		}
		props, _ := v["properties"].(map[string]any)
		sku, _ := props["sku"].(map[string]any)
		if v["name"] != "kv-b-01" || v["type"] != "Microsoft.KeyVault/vaults" || v["azure_vault_id"] != v["id"] || v["location"] == "" || v["tags"] == nil ||
			props["vaultUri"] == nil || props["tenantId"] != e.emu.TenantID() || sku["name"] != "premium" || props["enableSoftDelete"] != true {
			t.Fatalf("vault %v", v)
		}
		if _, ok := props["accessPolicies"]; ok {
			t.Errorf("access policies are returned: %v", props)
		}
	})
	t.Run("get-managed-hsms lists the pools the same way", func(t *testing.T) {
		r := e.as(t, "alice", "POST", getHSMsPath, vaultsBody(emuConn, subA, 1, nil))
		r.wantStatus(t, http.StatusOK)
		var a vaultsAnswer
		r.decode(t, &a)
		if got := a.names(t); !slices.Equal(got, []string{"hsm-a-01"}) || a.NextLink == nil {
			t.Fatalf("first page %v, next %v", got, a.NextLink)
		}
		r = e.as(t, "alice", "POST", getHSMsPath, vaultsBody(emuConn, subA, 1, a.NextLink))
		r.wantStatus(t, http.StatusOK)
		r.decode(t, &a)
		if got := a.names(t); !slices.Equal(got, []string{"hsm-a-02"}) || a.NextLink != nil {
			t.Fatalf("second page %v, next %v", got, a.NextLink)
		}
		var v map[string]any
		_ = json.Unmarshal(a.Vaults[0], &v)
		props, _ := v["properties"].(map[string]any)
		if v["type"] != "Microsoft.KeyVault/managedHSMs" || props["hsmUri"] == nil || props["vaultUri"] != props["hsmUri"] {
			t.Fatalf("pool %v", v)
		}
	})
	t.Run("limit defaults to 10 and is at most 1000", func(t *testing.T) {
		r := e.as(t, "alice", "POST", getVaultsPath, `{"connection":"`+emuConn+`","subscription_id":"`+subA+`","limit":null,"nextLink":""}`)
		r.wantStatus(t, http.StatusOK)
		var a vaultsAnswer
		r.decode(t, &a)
		if len(a.Vaults) != 7 || a.NextLink != nil {
			t.Fatalf("default page %v", a.names(t))
		}
		e.as(t, "alice", "POST", getVaultsPath, vaultsBody(emuConn, subA, 1000, nil)).wantStatus(t, http.StatusOK)
		e.as(t, "alice", "POST", getVaultsPath, vaultsBody(emuConn, subA, 1001, nil)).wantError(t, http.StatusBadRequest, "NCERRInvalidParamValue", "limit must be 1 to 1000")
		e.as(t, "alice", "POST", getVaultsPath, vaultsBody(emuConn, subA, -1, nil)).wantError(t, http.StatusBadRequest, "NCERRInvalidParamValue", "limit")
	})
	t.Run("bad requests name the field", func(t *testing.T) {
		for _, c := range []struct{ name, body, msg string }{
			{"no subscription", `{"connection":"` + emuConn + `"}`, "subscription_id is required"},
			{"a malformed subscription", `{"connection":"` + emuConn + `","subscription_id":"a/b"}`, "subscription_id must be"},
			{"no connection", `{"subscription_id":"` + subA + `"}`, "connection is required"},
			{"an unknown connection", `{"connection":"nope","subscription_id":"` + subA + `"}`, `connection "nope" is not a known connection`},
			{"an unknown field", `{"connection":"` + emuConn + `","subscription_id":"` + subA + `","top":5}`, "top"},
			{"a limit that is not a number", `{"connection":"` + emuConn + `","subscription_id":"` + subA + `","limit":"5"}`, "limit"},
		} {
			t.Run(c.name, func(t *testing.T) {
				e.as(t, "alice", "POST", getVaultsPath, c.body).wantError(t, http.StatusBadRequest, "NCERRInvalidParamValue", c.msg)
			})
		}
	})
	t.Run("a nextLink to another host is refused and that host gets no request", func(t *testing.T) {
		var calls atomic.Int32
		evil := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			_, _ = w.Write([]byte(`{"value":[]}`))
		}))
		t.Cleanup(evil.Close)
		link := evil.URL + "/subscriptions/" + subA + "/providers/Microsoft.KeyVault/vaults?api-version=2024-11-01&$skiptoken=x"
		ae := e.as(t, "alice", "POST", getVaultsPath, vaultsBody(emuConn, subA, 3, &link)).
			wantError(t, http.StatusBadRequest, "NCERRInvalidParamValue", "nextLink does not point at the connection's resource manager")
		if strings.Contains(ae.Message, strings.TrimPrefix(evil.URL, "https://")) {
			t.Errorf("message %q echoes the link", ae.Message)
		}
		// A link of another subscription, on the right host.
		first := e.as(t, "alice", "POST", getVaultsPath, vaultsBody(emuConn, subA, 3, nil))
		var a vaultsAnswer
		first.decode(t, &a)
		e.as(t, "alice", "POST", getVaultsPath, vaultsBody(emuConn, subB, 3, a.NextLink)).
			wantError(t, http.StatusBadRequest, "NCERRInvalidParamValue", "nextLink is not a continuation")
		if n := calls.Load(); n != 0 {
			t.Fatalf("the other host got %d requests", n)
		}
	})
	t.Run("Azure's refusal is a 502 with its error code", func(t *testing.T) {
		ae := e.as(t, "alice", "POST", getVaultsPath, vaultsBody(emuConn, "dddddddd-1111-2222-3333-444444444444", 3, nil)).
			wantError(t, http.StatusBadGateway, "NCERRBadGateway", "SubscriptionNotFound")
		if !strings.Contains(ae.Message, "404") {
			t.Errorf("message %q lacks Azure's status", ae.Message)
		}
	})
	t.Run("a refused credential is a 502 with Entra ID's code and without the secret", func(t *testing.T) {
		const wrong = "Wrong-Secret-Never-Echoed-0123456789"
		createEmuConnection(t, testCtx(t), e.conns, e.emu, "wrong-secret", wrong)
		ae := e.as(t, "alice", "POST", getVaultsPath, vaultsBody("wrong-secret", subA, 3, nil)).
			wantError(t, http.StatusBadGateway, "NCERRBadGateway", "invalid_client")
		if strings.Contains(ae.Message, wrong) {
			t.Fatalf("message %q echoes the secret", ae.Message)
		}
		if strings.Contains(e.logs.String(), wrong) {
			t.Fatal("the logs hold the secret")
		}
	})
	t.Run("an operator or viewer cannot discover vaults", func(t *testing.T) {
		for _, u := range []string{"oscar", "victor"} {
			e.as(t, u, "POST", getVaultsPath, vaultsBody(emuConn, subA, 3, nil)).wantError(t, http.StatusForbidden, "NCERRForbidden", "vaults:write")
			e.as(t, u, "POST", getHSMsPath, vaultsBody(emuConn, subA, 3, nil)).wantError(t, http.StatusForbidden, "NCERRForbidden", "vaults:write")
		}
	})
}

// TestGetVaultsThrottled: ARM's 429 that the request cannot wait out is a
// 503 with Azure's Retry-After.
func TestGetVaultsThrottled(t *testing.T) {
	t.Parallel()
	e := setup(t, withDiscovery, func(o *options) {
		// A read bucket of 1 refilled every 5 s: the second read waits 5 s,
		// more than the 1-s request timeout.
		o.emu = func(c *akvemu.Config) { c.ARMReadBucket = 1; c.ARMReadRefill = 0.2 }
		o.disco = func(c *discovery.Config) { c.RequestTimeout = time.Second }
	})
	e.as(t, "alice", "POST", getVaultsPath, vaultsBody(emuConn, subB, 1, nil)).wantStatus(t, http.StatusOK)
	start := time.Now()
	r := e.as(t, "alice", "POST", getVaultsPath, vaultsBody(emuConn, subB, 1, nil))
	r.wantError(t, http.StatusServiceUnavailable, "NCERRServiceUnavailable", "SubscriptionRequestsThrottled")
	if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 2 {
		t.Errorf("Retry-After %q, want Azure's delay", r.header.Get("Retry-After"))
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("took %s", took)
	}
}

// TestDiscoveredVaultsCanBeAdded: what get-vaults returns is posted to
// add-vaults unmodified, and the vaults are registered.
func TestDiscoveredVaultsCanBeAdded(t *testing.T) {
	t.Parallel()
	e := setup(t, withDiscovery)
	r := e.as(t, "alice", "POST", getVaultsPath, vaultsBody(emuConn, subB, 10, nil))
	r.wantStatus(t, http.StatusOK)
	var a vaultsAnswer
	r.decode(t, &a)
	body, err := json.Marshal(map[string]any{"connection": a.Connection, "subscription_id": a.SubscriptionID, "vaults": a.Vaults})
	if err != nil {
		t.Fatal(err)
	}
	r = e.as(t, "alice", "POST", addPath, string(body))
	r.wantStatus(t, http.StatusCreated)
	var added httpapi.Page[map[string]any]
	r.decode(t, &added)
	if added.Total != 2 {
		t.Fatalf("added %s", r.body)
	}
	for _, v := range added.Resources {
		if !strings.HasPrefix(fmt.Sprint(v["azure_vault_id"]), "/subscriptions/"+subB+"/") || v["subscription_id"] != subB || v["connection"] != emuConn {
			t.Errorf("added vault %v", v)
		}
	}
	// And they can be looked up as Ansible does.
	r = e.as(t, "victor", "GET", vaultsPath+"?skip=0&limit=1&name=kv-b-01::"+subB, "")
	r.wantStatus(t, http.StatusOK)
	var found httpapi.Page[httpapi.VaultJSON]
	r.decode(t, &found)
	if found.Total != 1 {
		t.Fatalf("lookup by name: %s", r.body)
	}

	t.Run("Managed HSM pools too", func(t *testing.T) {
		r := e.as(t, "alice", "POST", getHSMsPath, vaultsBody(emuConn, subA, 10, nil))
		r.wantStatus(t, http.StatusOK)
		var a vaultsAnswer
		r.decode(t, &a)
		body, _ := json.Marshal(map[string]any{"connection": a.Connection, "subscription_id": a.SubscriptionID, "vaults": a.Vaults})
		r = e.as(t, "alice", "POST", addPath, string(body))
		r.wantStatus(t, http.StatusCreated)
		var added httpapi.Page[map[string]any]
		r.decode(t, &added)
		if added.Total != 2 {
			t.Fatalf("added %s", r.body)
		}
		for _, v := range added.Resources {
			if v["type"] != "Microsoft.KeyVault/managedHSMs" {
				t.Errorf("added pool %v", v)
			}
		}
	})
}
