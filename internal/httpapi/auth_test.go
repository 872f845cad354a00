package httpapi_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/akvsync/akvsync/internal/auth"
)

func TestEndpointsNeedAToken(t *testing.T) {
	t.Parallel()
	e := setup(t)
	routes := []struct{ method, path string }{
		{"POST", jobsPath}, {"GET", jobsPath}, {"GET", jobsPath + "/x"}, {"POST", jobsPath + "/x/cancel"},
		{"POST", addPath}, {"GET", vaultsPath}, {"GET", vaultsPath + "/x"}, {"POST", vaultsPath + "/x/remove-vault"},
		{"GET", keysPath}, {"GET", keysPath + "/x"}, {"GET", "/metrics"},
	}
	tests := []struct {
		name, header, msg string
	}{
		{"no token", "", "Unauthorized: Bearer token is missing"},
		{"not a JWT", "Bearer abc.def.ghi", "Unauthorized: Bearer token malformed"},
		{"garbage", "Bearer !!!", "Unauthorized: Bearer token malformed"},
		{"other scheme", "Basic YWxpY2U6cHc=", "Unauthorized: Bearer token malformed"},
	}
	for _, rt := range routes {
		for _, tt := range tests {
			t.Run(rt.method+" "+rt.path+"/"+tt.name, func(t *testing.T) {
				req, _ := http.NewRequestWithContext(testCtx(t), rt.method, e.srv.URL+rt.path, nil)
				if tt.header != "" {
					req.Header.Set("Authorization", tt.header)
				}
				resp, err := e.srv.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				if resp.StatusCode != http.StatusUnauthorized {
					t.Fatalf("status %d, want 401", resp.StatusCode)
				}
				var r response
				r.status, r.header = resp.StatusCode, resp.Header
				r.body = readAll(t, resp)
				r.wantError(t, http.StatusUnauthorized, "NCERRUnauthorized", tt.msg)
			})
		}
	}
	if got := e.state(t); got != (state{}) {
		t.Errorf("unauthenticated requests changed state: %+v", got)
	}
}

func TestExpiredToken(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.clock.Advance(auth.DefaultTokenLifetime + auth.DefaultClockSkew + time.Second)
	e.as(t, "alice", "GET", vaultsPath, "").
		wantError(t, http.StatusUnauthorized, "NCERRUnauthorized", "Unauthorized: Bearer token malformed: Token is expired")
}

func TestPermissions(t *testing.T) {
	t.Parallel()
	e := setup(t)
	v := e.addVaults(t, testSub, "vault-a")[0]
	tests := []struct {
		user, method, path, body string
		perm                     auth.Perm
	}{
		{"victor", "POST", jobsPath, `{"key_vaults":["vault-a"]}`, auth.PermJobsWrite},
		{"victor", "POST", jobsPath + "/" + v.ID + "/cancel", "", auth.PermJobsWrite},
		{"victor", "POST", addPath, addBody(testSub, "vault-b"), auth.PermVaultsWrite},
		{"oscar", "POST", addPath, addBody(testSub, "vault-b"), auth.PermVaultsWrite},
		{"oscar", "POST", vaultsPath + "/" + v.ID + "/remove-vault", "", auth.PermVaultsWrite},
	}
	for _, tt := range tests {
		t.Run(tt.user+" "+tt.method+" "+tt.path, func(t *testing.T) {
			e.as(t, tt.user, tt.method, tt.path, tt.body).wantError(t, http.StatusForbidden, "NCERRForbidden", string(tt.perm))
		})
	}
	if got := e.state(t); got != (state{}) {
		t.Errorf("forbidden requests changed state: %+v", got)
	}
	e.as(t, "victor", "GET", vaultsPath+"/"+v.ID, "").wantStatus(t, http.StatusOK)
}

func TestTokenEndpoint(t *testing.T) {
	t.Parallel()
	e := setup(t)
	tests := []struct {
		name, path, body string
		status           int
		msg              string
	}{
		{"password grant", tokensPath, `{"grant_type":"password","username":"victor","password":"victor-password-1"}`, 200, ""},
		{"no grant type, trailing slash", tokensPath + "/", `{"username":"victor","password":"victor-password-1"}`, 200, ""},
		{"wrong password", tokensPath, `{"username":"victor","password":"nope"}`, 401, "Unauthorized: Invalid username or password"},
		{"unknown user", tokensPath, `{"username":"mallory","password":"nope"}`, 401, "Unauthorized: Invalid username or password"},
		{"bad JSON", tokensPath, `{"username":`, 400, ""},
		{"unknown field", tokensPath, `{"username":"a","password":"b","x":1}`, 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(t, "POST", tt.path, "", tt.body)
			if tt.status != 200 {
				desc := map[int]string{400: "NCERRInvalidParamValue", 401: "NCERRUnauthorized"}[tt.status]
				r.wantError(t, tt.status, desc, tt.msg)
				return
			}
			r.wantStatus(t, 200)
			var tok auth.TokenResponse
			r.decode(t, &tok)
			if tok.JWT == "" || tok.RefreshToken == "" || tok.TokenType != "Bearer" || tok.Duration != 300 {
				t.Errorf("token response %s", r.body)
			}
			if cc := r.header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q", cc)
			}
			e.do(t, "GET", vaultsPath, tok.JWT, "").wantStatus(t, http.StatusOK)
		})
	}
}

func TestTokenEndpointRateLimited(t *testing.T) {
	t.Parallel()
	e := setup(t, func(o *options) {
		o.noLogin = true
		o.auth = func(c *auth.Config) { c.RateLimit, c.RateBurst = 0.01, 2 }
	})
	body := `{"username":"victor","password":"victor-password-1"}`
	e.do(t, "POST", tokensPath, "", body).wantStatus(t, http.StatusOK)
	e.do(t, "POST", tokensPath, "", body).wantStatus(t, http.StatusOK)
	r := e.do(t, "POST", tokensPath, "", body)
	r.wantError(t, http.StatusTooManyRequests, "NCERRTooManyRequests", "")
	if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("Retry-After %q", r.header.Get("Retry-After"))
	}
}

func TestPublicEndpoints(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for _, path := range []string{"/healthz", "/readyz", "/healthz/"} {
		r := e.do(t, "GET", path, "", "")
		r.wantStatus(t, http.StatusOK)
		if !strings.Contains(string(r.body), `"status"`) {
			t.Errorf("%s body %s", path, r.body)
		}
	}
}

func TestReadyzWithoutNATS(t *testing.T) {
	t.Parallel()
	e := setup(t, func(o *options) { o.http.ReadyTimeout = 500 * time.Millisecond })
	e.ns.Shutdown()
	e.ns.WaitForShutdown()
	r := e.do(t, "GET", "/readyz", "", "")
	r.wantStatus(t, http.StatusServiceUnavailable)
	if !strings.Contains(string(r.body), `"reason"`) {
		t.Errorf("503 without a reason: %s", r.body)
	}
	e.do(t, "GET", "/healthz", "", "").wantStatus(t, http.StatusOK)
}

func TestRevokeRefreshToken(t *testing.T) {
	t.Parallel()
	e := setup(t)
	var tok struct {
		JWT          string `json:"jwt"`
		RefreshToken string `json:"refresh_token"`
	}
	e.do(t, "POST", "/api/v1/auth/tokens", "", `{"username":"victor","password":"victor-password-1"}`).decode(t, &tok)
	refresh := func(rt string) response {
		return e.do(t, "POST", "/api/v1/auth/tokens", "", `{"grant_type":"refresh_token","refresh_token":"`+rt+`"}`)
	}
	// Refresh tokens rotate: use the first one, keep the new one.
	r := refresh(tok.RefreshToken)
	r.wantStatus(t, http.StatusOK)
	r.decode(t, &tok)

	e.do(t, "POST", "/api/v1/auth/revoke", "", `{"refresh_token":"`+tok.RefreshToken+`"}`).wantStatus(t, http.StatusNoContent)
	refresh(tok.RefreshToken).wantStatus(t, http.StatusUnauthorized)

	t.Run("AnUnknownTokenIsAlso204", func(t *testing.T) {
		e.do(t, "POST", "/api/v1/auth/revoke", "", `{"refresh_token":"never-issued"}`).wantStatus(t, http.StatusNoContent)
	})
	t.Run("ABadBodyIs400", func(t *testing.T) {
		e.do(t, "POST", "/api/v1/auth/revoke", "", `{"token":"x"}`).wantStatus(t, http.StatusBadRequest)
		e.do(t, "POST", "/api/v1/auth/revoke", "", `{}`).wantStatus(t, http.StatusBadRequest)
	})
}
