package arm_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/akvsync/akvsync/internal/arm"
	"github.com/akvsync/akvsync/internal/azure"
	"github.com/akvsync/akvsync/pkg/akvemu"
)

const (
	subA = "11111111-2222-3333-4444-555555555555"
	subB = "22222222-3333-4444-5555-666666666666"
	subC = "33333333-4444-5555-6666-777777777777" // listed, no vaults
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// startEmulator starts an emulator whose Resource Manager lists three
// subscriptions: subA with 7 vaults and 2 Managed HSM pools, subB with 2
// vaults, subC with nothing.
func startEmulator(t *testing.T, mod func(*akvemu.Config)) *akvemu.Emulator {
	t.Helper()
	cfg := akvemu.Config{
		DataDir:       t.TempDir(),
		Subscriptions: []akvemu.SubscriptionSpec{{ID: subC, DisplayName: "Empty subscription", State: "Disabled"}},
	}
	for i := 1; i <= 7; i++ {
		cfg.Vaults = append(cfg.Vaults, akvemu.VaultSpec{Name: fmt.Sprintf("kv-a-%02d", i), SubscriptionID: subA,
			Location: "westeurope", Tags: map[string]string{"env": "test"}})
	}
	cfg.Vaults = append(cfg.Vaults,
		akvemu.VaultSpec{Name: "kv-b-01", SubscriptionID: subB, SKU: akvemu.SKUPremium, PurgeProtection: true},
		akvemu.VaultSpec{Name: "kv-b-02", SubscriptionID: subB, RBAC: true},
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

// connOf is a client-secret connection to the emulator, its Resource
// Manager given as resource_manager_url.
func connOf(e *akvemu.Emulator, name string) azure.Connection {
	return azure.Connection{
		Name: name, CredentialType: azure.CredentialClientSecret,
		TenantID: e.TenantID(), ClientID: e.ClientID(), ClientSecret: e.ClientSecret(),
		ActiveDirectoryEndpoint: e.AuthorityHost(), ExtraCAPEM: e.CACertPEM(),
		ResourceManagerEndpoint: e.ResourceManagerURL(),
	}
}

func newClient(t *testing.T, cfg arm.Config) *arm.Client {
	t.Helper()
	f, err := azure.NewFactory(azure.Config{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := arm.New(f, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func names(vs []arm.Vault) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.Name
	}
	return out
}

func TestSubscriptions(t *testing.T) {
	t.Parallel()
	e := startEmulator(t, nil)
	c := newClient(t, arm.Config{})
	ctx := testCtx(t)

	t.Run("lists every subscription the connection sees, in CCKM's fields", func(t *testing.T) {
		subs, truncated, err := c.Subscriptions(ctx, connOf(e, "emu"))
		if err != nil {
			t.Fatal(err)
		}
		if truncated {
			t.Fatal("truncated")
		}
		var ids []string
		for _, s := range subs {
			ids = append(ids, s.SubscriptionID)
			if s.ID != "/subscriptions/"+s.SubscriptionID || s.TenantID != e.TenantID() || s.State == "" || s.DisplayName == "" ||
				s.AuthorizationSource == "" || s.SubscriptionPolicies == nil || s.SubscriptionPolicies.QuotaID == "" {
				t.Errorf("subscription %+v lacks fields", s)
			}
		}
		slices.Sort(ids)
		if want := []string{subA, subB, subC}; !slices.Equal(ids, want) {
			t.Fatalf("subscriptions %v, want %v", ids, want)
		}
		for _, s := range subs {
			if s.SubscriptionID == subC && (s.DisplayName != "Empty subscription" || s.State != "Disabled") {
				t.Errorf("subC = %+v", s)
			}
		}
	})
	t.Run("follows ARM's pages and stops at the cap", func(t *testing.T) {
		paged := startEmulator(t, func(cfg *akvemu.Config) { cfg.ARMPageSize = 1 })
		subs, truncated, err := c.Subscriptions(ctx, connOf(paged, "paged"))
		if err != nil || truncated || len(subs) != 3 {
			t.Fatalf("one per page: %d subscriptions, truncated %v, err %v", len(subs), truncated, err)
		}
		capped := newClient(t, arm.Config{MaxSubscriptions: 2})
		subs, truncated, err = capped.Subscriptions(ctx, connOf(paged, "paged"))
		if err != nil || !truncated || len(subs) != 2 {
			t.Fatalf("capped at 2: %d subscriptions, truncated %v, err %v", len(subs), truncated, err)
		}
	})
	t.Run("a refused credential is Entra ID's error code, without the secret", func(t *testing.T) {
		conn := connOf(e, "bad-secret")
		conn.ClientSecret = "wrong-Secret-Value-1234567890"
		_, _, err := c.Subscriptions(ctx, conn)
		var ae *arm.Error
		if !errors.As(err, &ae) || !errors.Is(err, arm.ErrAzure) {
			t.Fatalf("err = %v, want an *arm.Error", err)
		}
		if ae.Code != "invalid_client" || ae.Status != http.StatusUnauthorized {
			t.Errorf("error %+v, want 401 invalid_client", ae)
		}
		if strings.Contains(err.Error(), conn.ClientSecret) || strings.Contains(err.Error(), "\n") {
			t.Errorf("message %q echoes the secret or spans lines", err)
		}
	})
}

func TestVaultsPaging(t *testing.T) {
	t.Parallel()
	e := startEmulator(t, nil)
	c := newClient(t, arm.Config{})
	ctx := testCtx(t)
	conn := connOf(e, "emu")

	t.Run("pages of limit entries follow each other through nextLink", func(t *testing.T) {
		var all []string
		var sizes []int
		next := ""
		for i := 0; ; i++ {
			page, err := c.Vaults(ctx, conn, arm.KindVaults, subA, 3, next)
			if err != nil {
				t.Fatalf("page %d: %v", i, err)
			}
			all = append(all, names(page.Vaults)...)
			sizes = append(sizes, len(page.Vaults))
			if page.NextLink == "" {
				break
			}
			if !strings.HasPrefix(page.NextLink, e.ResourceManagerURL()) {
				t.Fatalf("nextLink %q is not on the emulator's resource manager", page.NextLink)
			}
			next = page.NextLink
			if i > 10 {
				t.Fatal("paging does not end")
			}
		}
		if want := []int{3, 3, 1}; !slices.Equal(sizes, want) {
			t.Errorf("page sizes %v, want %v", sizes, want)
		}
		want := []string{"kv-a-01", "kv-a-02", "kv-a-03", "kv-a-04", "kv-a-05", "kv-a-06", "kv-a-07"}
		if !slices.Equal(all, want) {
			t.Fatalf("vaults %v, want %v", all, want)
		}
	})
	t.Run("a continuation takes the request's page size", func(t *testing.T) {
		first, err := c.Vaults(ctx, conn, arm.KindVaults, subA, 2, "")
		if err != nil || len(first.Vaults) != 2 || first.NextLink == "" {
			t.Fatalf("first page %v (%v)", names(first.Vaults), err)
		}
		second, err := c.Vaults(ctx, conn, arm.KindVaults, subA, 4, first.NextLink)
		if err != nil {
			t.Fatal(err)
		}
		if got := names(second.Vaults); !slices.Equal(got, []string{"kv-a-03", "kv-a-04", "kv-a-05", "kv-a-06"}) || second.NextLink == "" {
			t.Fatalf("second page %v, next %q", got, second.NextLink)
		}
	})
	t.Run("managed HSM pools are listed apart from vaults", func(t *testing.T) {
		page, err := c.Vaults(ctx, conn, arm.KindManagedHSMs, subA, 10, "")
		if err != nil {
			t.Fatal(err)
		}
		if got := names(page.Vaults); !slices.Equal(got, []string{"hsm-a-01", "hsm-a-02"}) || page.NextLink != "" {
			t.Fatalf("pools %v, next %q", got, page.NextLink)
		}
		p := page.Vaults[0]
		if p.Type != string(arm.KindManagedHSMs) || p.Properties.HsmURI == "" || p.Properties.VaultURI != p.Properties.HsmURI ||
			p.Properties.SKU == nil || p.Properties.SKU.Name != "Standard_B1" || p.AzureVaultID != p.ID {
			t.Fatalf("pool %+v (properties %+v)", p, p.Properties)
		}
	})
	t.Run("a vault is the ARM object with azure_vault_id", func(t *testing.T) {
		page, err := c.Vaults(ctx, conn, arm.KindVaults, subB, 10, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Vaults) != 2 {
			t.Fatalf("vaults %v", names(page.Vaults))
		}
		v := page.Vaults[0]
		wantID := "/subscriptions/" + subB + "/resourceGroups/" + akvemu.DefaultResourceGroup + "/providers/Microsoft.KeyVault/vaults/kv-b-01"
		if !strings.EqualFold(v.ID, wantID) || v.AzureVaultID != v.ID || v.Type != string(arm.KindVaults) || v.Location == "" || v.Tags == nil {
			t.Fatalf("vault %+v", v)
		}
		pr := v.Properties
		if pr.VaultURI == "" || pr.TenantID != e.TenantID() || pr.SKU == nil || pr.SKU.Name != "premium" || pr.SKU.Family != "A" ||
			pr.EnablePurgeProtection == nil || !*pr.EnablePurgeProtection || pr.SoftDeleteRetentionInDays == nil || pr.EnableSoftDelete == nil {
			t.Fatalf("properties %+v", pr)
		}
		if rbac := page.Vaults[1].Properties.EnableRbacAuthorization; rbac == nil || !*rbac {
			t.Fatalf("kv-b-02 enableRbacAuthorization = %v", rbac)
		}
	})
	t.Run("an unknown subscription is Azure's SubscriptionNotFound", func(t *testing.T) {
		_, err := c.Vaults(ctx, conn, arm.KindVaults, "44444444-5555-6666-7777-888888888888", 10, "")
		var ae *arm.Error
		if !errors.As(err, &ae) || ae.Status != http.StatusNotFound || ae.Code != "SubscriptionNotFound" || !strings.Contains(ae.Message, "could not be found") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("bad arguments are refused before Azure is called", func(t *testing.T) {
		for _, c2 := range []struct {
			name string
			sub  string
			top  int
		}{{"a page of 0", subA, 0}, {"a page over 1000", subA, arm.MaxTop + 1}, {"a subscription with a slash", "a/b", 10}} {
			if _, err := c.Vaults(ctx, conn, arm.KindVaults, c2.sub, c2.top, ""); !errors.Is(err, arm.ErrInvalid) {
				t.Errorf("%s: err = %v, want ErrInvalid", c2.name, err)
			}
		}
	})
}

// TestNextLinkNeverLeavesTheResourceManager: a nextLink naming another
// host gets no request at all — that host never sees the token.
func TestNextLinkNeverLeavesTheResourceManager(t *testing.T) {
	t.Parallel()
	e := startEmulator(t, nil)
	c := newClient(t, arm.Config{})
	ctx := testCtx(t)
	conn := connOf(e, "emu")
	// A hostile HTTPS server that records whether anyone called it.
	var calls atomic.Int32
	evil := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`{"value":[]}`))
	}))
	t.Cleanup(evil.Close)
	first, err := c.Vaults(ctx, conn, arm.KindVaults, subA, 2, "")
	if err != nil || first.NextLink == "" {
		t.Fatalf("first page: %v", err)
	}
	rmHost := strings.TrimSuffix(strings.TrimPrefix(e.ResourceManagerURL(), "https://"), "/")
	for _, link := range []string{
		strings.Replace(first.NextLink, rmHost, strings.TrimPrefix(evil.URL, "https://"), 1),
		evil.URL + "/subscriptions/" + subA + "/providers/Microsoft.KeyVault/vaults?api-version=2024-11-01",
		strings.Replace(first.NextLink, "https://", "http://", 1),
		strings.Replace(first.NextLink, subA, subB, 1),
		strings.Replace(first.NextLink, "/vaults?", "/managedHSMs?", 1),
	} {
		if _, err := c.Vaults(ctx, conn, arm.KindVaults, subA, 2, link); !errors.Is(err, arm.ErrInvalid) {
			t.Errorf("nextLink %s: err = %v, want ErrInvalid", link, err)
		}
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("the other host got %d requests", n)
	}
}

// TestThrottling: ARM's 429 is waited out when its Retry-After fits the
// call's deadline, and returned at once with the delay when it does not.
func TestThrottling(t *testing.T) {
	t.Parallel()
	// A read bucket of 2 refilled at 1 per second: the third read in a
	// row is throttled with Retry-After: 1.
	e := startEmulator(t, func(cfg *akvemu.Config) { cfg.ARMReadBucket = 2; cfg.ARMReadRefill = 1 })
	c := newClient(t, arm.Config{})
	conn := connOf(e, "emu")
	drain := func(t *testing.T) {
		t.Helper()
		// Empty the bucket; a quick deadline so nothing is waited for.
		for i := 0; i < 5; i++ {
			ctx, cancel := context.WithTimeout(testCtx(t), 200*time.Millisecond)
			_, err := c.Vaults(ctx, conn, arm.KindVaults, subB, 1, "")
			cancel()
			if errors.Is(err, arm.ErrThrottled) {
				return
			}
		}
		t.Fatal("the bucket never emptied")
	}
	t.Run("a Retry-After beyond the deadline comes back at once as ErrThrottled", func(t *testing.T) {
		drain(t)
		ctx, cancel := context.WithTimeout(testCtx(t), 600*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := c.Vaults(ctx, conn, arm.KindVaults, subB, 1, "")
		var ae *arm.Error
		if !errors.Is(err, arm.ErrThrottled) || !errors.As(err, &ae) {
			t.Fatalf("err = %v, want ErrThrottled", err)
		}
		if ae.Status != http.StatusTooManyRequests || ae.Code != "SubscriptionRequestsThrottled" || ae.RetryAfter < time.Second {
			t.Errorf("error %+v", ae)
		}
		if took := time.Since(start); took > 500*time.Millisecond {
			t.Errorf("took %s: the throttled answer was waited on", took)
		}
	})
	t.Run("a Retry-After within the deadline is waited out", func(t *testing.T) {
		drain(t)
		ctx, cancel := context.WithTimeout(testCtx(t), 10*time.Second)
		defer cancel()
		start := time.Now()
		page, err := c.Vaults(ctx, conn, arm.KindVaults, subB, 1, "")
		if err != nil {
			t.Fatalf("err = %v, want the page after waiting", err)
		}
		if len(page.Vaults) != 1 {
			t.Fatalf("page %v", names(page.Vaults))
		}
		if took := time.Since(start); took < 500*time.Millisecond {
			t.Errorf("took %s: Retry-After was not honoured", took)
		}
	})
}
