package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/akvsync/akvsync/internal/httpapi"
)

// Issue 12, finding 4: request shapes the API refuses, each in CCKM's
// error shape.
func TestRequestShapeRefusals(t *testing.T) {
	t.Parallel()
	e := setup(t, func(o *options) { o.realConnections = true })
	send := func(t *testing.T, method, path, contentType, body string, follow bool) response {
		t.Helper()
		req, err := http.NewRequestWithContext(testCtx(t), method, e.srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+e.tokens["alice"])
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		c := *e.srv.Client()
		if !follow {
			c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return response{status: resp.StatusCode, header: resp.Header, body: readAll(t, resp)}
	}
	t.Run("a non-JSON Content-Type is 415", func(t *testing.T) {
		for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "application/xml"} {
			send(t, "POST", jobsPath, ct, `{"synchronize_all":true}`, true).
				wantError(t, http.StatusUnsupportedMediaType, "NCERRUnsupportedMediaType", "Content-Type: application/json")
			send(t, "PATCH", vaultsPath+"/00000000-0000-4000-8000-000000000000", ct, `{"cloud_key_backup_limit":1}`, true).
				wantError(t, http.StatusUnsupportedMediaType, "NCERRUnsupportedMediaType", "JSON")
		}
		send(t, "POST", tokensPath, "text/plain", `{"username":"alice","password":"alice-password-1"}`, true).
			wantError(t, http.StatusUnsupportedMediaType, "NCERRUnsupportedMediaType", "JSON")
	})
	t.Run("duplicate JSON keys are 400", func(t *testing.T) {
		for path, body := range map[string]string{
			jobsPath:                `{"synchronize_all":false,"synchronize_all":true}`,
			tokensPath:              `{"username":"victor","username":"alice","password":"alice-password-1"}`,
			httpapi.ConnectionsPath: `{"name":"dup","client_id":"c","tenant_id":"t","client_secret":"s","labels":{"a":"1","a":"2"}}`,
		} {
			send(t, "POST", path, "application/json", body, true).wantError(t, http.StatusBadRequest, "NCERRInvalidParamValue", "twice")
		}
	})
	t.Run("connection names with .., slashes or control characters are 400", func(t *testing.T) {
		for _, name := range []string{"..", ".", "a..b", "a/b", `a\\b`, `a\u0000b`, `a\nb`, "../etc"} {
			send(t, "POST", httpapi.ConnectionsPath, "application/json", `{"name":"`+name+`","client_id":"c","tenant_id":"t","client_secret":"s"}`, true).
				wantError(t, http.StatusBadRequest, "NCERRInvalidParamValue", "name")
		}
	})
	t.Run("a path-cleaning redirect is in CCKM's shape", func(t *testing.T) {
		r := send(t, "GET", "/api/v1/cckm//azure/vaults", "", "", false)
		if r.status != http.StatusMovedPermanently && r.status != http.StatusTemporaryRedirect && r.status != http.StatusPermanentRedirect {
			t.Fatalf("status %d; body %s", r.status, r.body)
		}
		if loc := r.header.Get("Location"); loc != vaultsPath {
			t.Errorf("Location %q", loc)
		}
		r.wantError(t, r.status, "NCERRRedirect", vaultsPath)
	})
}
