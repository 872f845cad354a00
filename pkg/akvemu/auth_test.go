package akvemu_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/akvsync/akvsync/pkg/akvemu"
)

func TestChallenge(t *testing.T) {
	t.Parallel()
	e := setup(t)
	v := addVault(t, e, akvemu.VaultSpec{Name: "challenge", Keys: 5})
	wantHeader := `Bearer authorization="` + strings.TrimSuffix(e.AuthorityHost(), "/") + "/" + e.TenantID() + `", resource="https://vault.azure.net"`
	wantBody := `{"error":{"code":"Unauthorized","message":"AKV10000: Request is missing a Bearer or PoP token."}}`

	t.Run("a request without token gets the 401 challenge", func(t *testing.T) {
		resp, body := rawDo(t, e, http.MethodGet, v.URL()+"/keys?api-version=2025-07-01", "", nil)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if got := resp.Header.Get("WWW-Authenticate"); got != wantHeader {
			t.Errorf("WWW-Authenticate\n got %s\nwant %s", got, wantHeader)
		}
		if string(body) != wantBody {
			t.Errorf("body %s", body)
		}
		if resp.Header.Get("x-ms-error-code") != "Unauthorized" {
			t.Errorf("x-ms-error-code %q", resp.Header.Get("x-ms-error-code"))
		}
	})

	t.Run("auth is checked before the body", func(t *testing.T) {
		resp, _ := rawDo(t, e, http.MethodPost, v.URL()+"/keys/x/create?api-version=7.6", "", strings.NewReader("not json"))
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("status %d, want 401", resp.StatusCode)
		}
	})

	t.Run("the SDK answers the challenge once and reuses the token", func(t *testing.T) {
		v.ResetCounters()
		issued := e.TokenStats().Issued
		c := newClient(t, e, v, nil)
		for range 3 {
			if _, err := c.GetKey(context.Background(), v.Keys()[0].Name, "", nil); err != nil {
				t.Fatal(err)
			}
		}
		cnt := v.Counters()
		if cnt.Count(akvemu.OpGetKey, 401) != 1 || cnt.Count(akvemu.OpGetKey, 200) != 3 {
			t.Errorf("counters %v", cnt.ByOperation)
		}
		if got := e.TokenStats().Issued - issued; got != 1 {
			t.Errorf("%d tokens issued, want 1", got)
		}
	})

	t.Run("forged and foreign tokens are rejected", func(t *testing.T) {
		cred, err := e.Credential()
		if err != nil {
			t.Fatal(err)
		}
		tok := vaultToken(t, cred)
		forged := tok[:len(tok)-4] + "AAAA"
		resp, body := rawDo(t, e, http.MethodGet, v.URL()+"/keys?api-version=7.6", forged, nil)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "AKV10046") {
			t.Errorf("forged token: %d %s", resp.StatusCode, body)
		}
		other := setup(t)
		otherCred, err := other.Credential()
		if err != nil {
			t.Fatal(err)
		}
		resp, body = rawDo(t, e, http.MethodGet, v.URL()+"/keys?api-version=7.6", vaultToken(t, otherCred), nil)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("foreign token: %d %s", resp.StatusCode, body)
		}
	})

	t.Run("a wrong client secret is refused by the token endpoint", func(t *testing.T) {
		cred, err := e.CredentialFor(e.ClientID(), "wrong")
		if err != nil {
			t.Fatal(err)
		}
		_, err = newClientWith(t, e, v.URL(), cred, nil).GetKey(context.Background(), v.Keys()[0].Name, "", nil)
		if err == nil || !strings.Contains(err.Error(), "AADSTS7000215") {
			t.Errorf("want AADSTS7000215, got %v", err)
		}
	})
}

func TestTokenExpiryAndRefresh(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *akvemu.Config) { c.TokenLifetime = 2 * time.Second })
	v := addVault(t, e, akvemu.VaultSpec{Name: "expiry", Keys: 3})
	cred, err := e.Credential()
	if err != nil {
		t.Fatal(err)
	}
	old := vaultToken(t, cred)
	c := newClientWith(t, e, v.URL(), cred, nil)
	name := v.Keys()[0].Name
	ctx := context.Background()
	if _, err := c.GetKey(ctx, name, "", nil); err != nil {
		t.Fatal(err)
	}
	issued := e.TokenStats().Issued

	t.Run("the client refreshes an expired token by itself", func(t *testing.T) {
		eventually(t, 10*time.Second, "a new token", func() bool {
			if _, err := c.GetKey(ctx, name, "", nil); err != nil {
				t.Fatalf("get key across token expiry: %v", err)
			}
			return e.TokenStats().Issued > issued
		})
	})

	t.Run("the vault rejects an expired token", func(t *testing.T) {
		var body []byte
		eventually(t, 10*time.Second, "expired token rejected", func() bool {
			var resp *http.Response
			resp, body = rawDo(t, e, http.MethodGet, v.URL()+"/keys?api-version=7.6", old, nil)
			return resp.StatusCode == http.StatusUnauthorized
		})
		if !strings.Contains(string(body), "TokenExpired") {
			t.Errorf("body %s", body)
		}
	})
}

func TestAccessControl(t *testing.T) {
	t.Parallel()
	e := setup(t)
	v := addVault(t, e, akvemu.VaultSpec{Name: "guarded", Keys: 3})
	rbac := addVault(t, e, akvemu.VaultSpec{Name: "guarded-rbac", Keys: 3, RBAC: true})
	if err := e.AddPrincipal(akvemu.Principal{ClientID: "denied-app", ClientSecret: "s3cret"}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{v.Name(), rbac.Name()} {
		if err := e.SetAccess(name, "denied-app", akvemu.PermList, akvemu.PermGet); err != nil {
			t.Fatal(err)
		}
	}
	cred, err := e.CredentialFor("denied-app", "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	t.Run("a denied principal gets 403 on list and get", func(t *testing.T) {
		c := newClientWith(t, e, v.URL(), cred, nil)
		_, err := c.NewListKeyPropertiesPager(nil).NextPage(ctx)
		re := responseError(t, err)
		if re.StatusCode != http.StatusForbidden || re.ErrorCode != "Forbidden" ||
			!strings.Contains(err.Error(), "'appid=denied-app;") || !strings.Contains(err.Error(), "does not have keys list permission on key vault 'guarded;location=westeurope'") {
			t.Errorf("list: %v", err)
		}
		_, err = c.GetKey(ctx, v.Keys()[0].Name, "", nil)
		if re := responseError(t, err); re.StatusCode != http.StatusForbidden || !strings.Contains(err.Error(), "keys get permission") {
			t.Errorf("get: %v", err)
		}
		if got := v.Counters().Count(akvemu.OpListKeys, 403); got != 1 {
			t.Errorf("ListKeys 403 = %d", got)
		}
	})

	t.Run("an RBAC vault answers ForbiddenByRbac", func(t *testing.T) {
		_, err := newClientWith(t, e, rbac.URL(), cred, nil).GetKey(ctx, rbac.Keys()[0].Name, "", nil)
		if re := responseError(t, err); re.StatusCode != http.StatusForbidden || !strings.Contains(err.Error(), "ForbiddenByRbac") {
			t.Errorf("rbac: %v", err)
		}
	})

	t.Run("other principals are unaffected and rules can be lifted", func(t *testing.T) {
		if _, err := newClient(t, e, v, nil).GetKey(ctx, v.Keys()[0].Name, "", nil); err != nil {
			t.Errorf("default principal: %v", err)
		}
		if err := v.SetAccess("denied-app"); err != nil {
			t.Fatal(err)
		}
		if _, err := newClientWith(t, e, v.URL(), cred, nil).GetKey(ctx, v.Keys()[0].Name, "", nil); err != nil {
			t.Errorf("after lifting: %v", err)
		}
	})
}

func TestClientCertificateCredential(t *testing.T) {
	t.Parallel()
	e := setup(t)
	v := addVault(t, e, akvemu.VaultSpec{Name: "certauth", Keys: 2})
	ctx := context.Background()

	t.Run("a registered certificate gets a token", func(t *testing.T) {
		cred, err := e.CertificateCredential("cert-app")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := newClientWith(t, e, v.URL(), cred, nil).GetKey(ctx, v.Keys()[0].Name, "", nil); err != nil {
			t.Fatalf("get key with certificate credential: %v", err)
		}
	})

	t.Run("an unregistered certificate is refused", func(t *testing.T) {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "rogue"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		cred, err := azidentity.NewClientCertificateCredential(e.TenantID(), "cert-app", []*x509.Certificate{cert}, key,
			&azidentity.ClientCertificateCredentialOptions{
				ClientOptions:            azcore.ClientOptions{Cloud: e.Manifest().Cloud(), Transport: e.HTTPClient()},
				DisableInstanceDiscovery: true,
			})
		if err != nil {
			t.Fatal(err)
		}
		_, err = newClientWith(t, e, v.URL(), cred, nil).GetKey(ctx, v.Keys()[0].Name, "", nil)
		if err == nil || !strings.Contains(err.Error(), "AADSTS700027") {
			t.Errorf("want AADSTS700027, got %v", err)
		}
	})
}

func TestHostRouting(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *akvemu.Config) { c.HostRouting = true })
	v := addVault(t, e, akvemu.VaultSpec{Name: "Routed", Keys: 40})
	cred, err := e.Credential()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	t.Run("challenge resource verification stays on", func(t *testing.T) {
		if !strings.HasPrefix(v.HostURL(), "https://routed.vault.localhost:") {
			t.Fatalf("host url %s", v.HostURL())
		}
		c, err := azkeys.NewClient(v.HostURL(), cred, e.HostRoutingClientOptions())
		if err != nil {
			t.Fatal(err)
		}
		names, _, _ := listAll(t, c)
		if len(names) != 40 {
			t.Errorf("%d keys", len(names))
		}
		r, err := c.GetKey(ctx, names[0], "", nil)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(*r.Key.KID), v.HostURL()+"/keys/") {
			t.Errorf("kid %s", *r.Key.KID)
		}
	})

	t.Run("the per-port resource fails verification", func(t *testing.T) {
		opts := e.ClientOptions()
		opts.DisableChallengeResourceVerification = false
		c, err := azkeys.NewClient(v.URL(), cred, opts)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.GetKey(ctx, "any", "", nil); err == nil || !strings.Contains(err.Error(), "doesn't match the requested domain") {
			t.Errorf("want a challenge resource mismatch, got %v", err)
		}
	})
}
