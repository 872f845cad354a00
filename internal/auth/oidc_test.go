package auth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/akvsync/akvsync/pkg/akvemu"
)

// Issue 12, optional: Entra ID sign-in, against the emulator's Entra ID
// (OIDC discovery, JWKS, client-credentials tokens with app roles).
func TestOIDCSignIn(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	emu, err := akvemu.Start(ctx, akvemu.Config{
		Vaults: []akvemu.VaultSpec{{Name: "kv-oidc", Keys: 1, SubscriptionID: "11111111-2222-3333-4444-555555555555"}},
		Principals: []akvemu.Principal{
			{ClientID: "app-admin", ClientSecret: "secret-admin", Roles: []string{"akvsync.admin", "akvsync.viewer"}},
			{ClientID: "app-viewer", ClientSecret: "secret-viewer", Roles: []string{"akvsync.viewer"}},
			{ClientID: "app-none", ClientSecret: "secret-none"},
		},
		Audiences: []string{"api://akvsync"},
		DataDir:   t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emu.Close() })
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(emu.CACertPEM())
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	base := strings.TrimSuffix(emu.AuthorityHost(), "/") + "/" + emu.TenantID()
	token := func(clientID, secret, scope string) string {
		t.Helper()
		form := url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {secret}, "scope": {scope}}
		resp, err := client.PostForm(base+"/oauth2/v2.0/token", form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct {
			AccessToken string `json:"access_token"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.AccessToken == "" {
			t.Fatalf("token for %s: status %d, %v", clientID, resp.StatusCode, err)
		}
		return out.AccessToken
	}
	v, err := NewOIDCVerifier(ctx, OIDCConfig{
		DiscoveryURL: base + "/v2.0/.well-known/openid-configuration",
		Issuers:      []string{"https://sts.windows.net/" + emu.TenantID() + "/"},
		Audience:     "api://akvsync",
		RoleMap:      map[string]Role{"akvsync.admin": RoleAdmin, "akvsync.viewer": RoleViewer},
		HTTPClient:   client,
	})
	if err != nil {
		t.Fatal(err)
	}
	env := newTestEnv(t, nil, func(c *Config) { c.OIDC = v })

	p, err := env.svc.Verify(ctx, token("app-admin", "secret-admin", "api://akvsync/.default"))
	if err != nil || p.Role != RoleAdmin || !strings.HasPrefix(p.Username, "oidc:") {
		t.Fatalf("admin app: %+v %v", p, err)
	}
	if p, err := env.svc.Verify(ctx, token("app-viewer", "secret-viewer", "api://akvsync/.default")); err != nil || p.Role != RoleViewer {
		t.Fatalf("viewer app: %+v %v", p, err)
	}
	if _, err := env.svc.Verify(ctx, token("app-none", "secret-none", "api://akvsync/.default")); !errors.Is(err, ErrTokenNoRole) {
		t.Fatalf("app without a role: %v", err)
	}
	// A token for another audience (the vaults') is refused.
	if _, err := env.svc.Verify(ctx, token("app-admin", "secret-admin", akvemu.VaultAudience+"/.default")); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("token for Key Vault: %v", err)
	}
	// Another issuer is refused.
	other, err := NewOIDCVerifier(ctx, OIDCConfig{
		DiscoveryURL: base + "/v2.0/.well-known/openid-configuration", Audience: "api://akvsync",
		RoleMap: map[string]Role{"akvsync.admin": RoleAdmin}, HTTPClient: client,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Verify(ctx, token("app-admin", "secret-admin", "api://akvsync/.default")); !errors.Is(err, ErrTokenIssuer) {
		t.Fatalf("v1 token against the v2 issuer: %v", err)
	}
	// akvsync's own tokens still work beside.
	own := env.login(t, "alice", "alice-password-1")
	if p, err := env.svc.Verify(ctx, own.JWT); err != nil || p.Username != "alice" {
		t.Fatalf("own token: %+v %v", p, err)
	}
}
