package httpapi_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/akvsync/akvsync/internal/httpapi"
)

func readAll(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestUnknownRouteIs404JSON(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for _, path := range []string{"/", "/api/v1/nope", "/api/v1/cckm/azure/synchronization-jobs/x/y", "/api/v1/cckm/aws/keys"} {
		e.as(t, "alice", "GET", path, "").wantError(t, http.StatusNotFound, "NCERRResourceNotFound", "Resource not found")
	}
}

func TestWrongMethodIs405WithAllow(t *testing.T) {
	t.Parallel()
	e := setup(t)
	tests := []struct{ method, path, allow string }{
		{"DELETE", jobsPath, "GET, HEAD, POST"},
		{"PUT", jobsPath + "/x", "GET, HEAD"},
		{"GET", jobsPath + "/x/cancel", "POST"},
		{"GET", addPath, "POST"},
		{"DELETE", vaultsPath + "/x", "GET, HEAD, PATCH"},
		{"GET", vaultsPath + "/x/remove-vault", "DELETE, POST"},
		{"POST", "/healthz", "GET, HEAD"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			r := e.as(t, "alice", tt.method, tt.path, "")
			r.wantError(t, http.StatusMethodNotAllowed, "NCERRMethodNotAllowed", tt.method)
			if got := r.header.Get("Allow"); got != tt.allow {
				t.Errorf("Allow %q, want %q", got, tt.allow)
			}
		})
	}
}

func TestRequestIDAndLogs(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.addVaults(t, testSub, "bodymarker7")
	req, _ := http.NewRequestWithContext(testCtx(t), "POST", e.srv.URL+jobsPath, strings.NewReader(`{"key_vaults":["bodymarker7"]}`))
	req.Header.Set("Authorization", "Bearer "+e.tokens["oscar"])
	req.Header.Set("X-Request-Id", "req-123")
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Request-Id"); got != "req-123" {
		t.Errorf("X-Request-Id %q, want the caller's", got)
	}
	r := e.as(t, "victor", "GET", "/healthz", "")
	if id := r.header.Get("X-Request-Id"); len(id) != 36 {
		t.Errorf("generated X-Request-Id %q", id)
	}
	logs := e.logs.String()
	for _, want := range []string{`"request_id":"req-123"`, `"username":"oscar"`, `"status":201`, `"method":"POST"`, `"route":"POST /api/v1/cckm/azure/synchronization-jobs"`, `"duration":`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s:\n%s", want, logs)
		}
	}
	for _, secret := range []string{e.tokens["oscar"], "Bearer", "bodymarker7", "oscar-password-1"} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs contain %q", secret)
		}
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.as(t, "victor", "GET", vaultsPath, "").wantStatus(t, http.StatusOK)
	r := e.as(t, "victor", "GET", "/metrics", "")
	r.wantStatus(t, http.StatusOK)
	want := `akvsync_http_requests_total{code="200",route="GET /api/v1/cckm/azure/vaults"} 1`
	if !strings.Contains(string(r.body), want) {
		t.Errorf("metrics lack %s:\n%s", want, r.body)
	}
	if !strings.Contains(string(r.body), "akvsync_http_request_duration_seconds_bucket") {
		t.Error("no latency histogram")
	}
}

func TestNewNeedsDependencies(t *testing.T) {
	t.Parallel()
	h, err := httpapi.New(httpapi.Config{}, httpapi.Deps{})
	if err == nil || h != nil {
		t.Fatal("New without dependencies succeeded")
	}
}

func TestConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  httpapi.Config
		ok   bool
	}{
		{"zero", httpapi.Config{}, true},
		{"tiny body", httpapi.Config{MaxBodyBytes: 10}, false},
		{"negative timeout", httpapi.Config{WriteTimeout: -time.Second}, false},
		{"header timeout over read timeout", httpapi.Config{ReadHeaderTimeout: time.Minute, ReadTimeout: time.Second}, false},
		{"tiny headers", httpapi.Config{MaxHeaderBytes: 100}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
	srv := httpapi.NewServer(httpapi.Config{}, http.NotFoundHandler())
	if srv.ReadHeaderTimeout != httpapi.DefaultReadHeaderTimeout || srv.WriteTimeout != httpapi.DefaultWriteTimeout ||
		srv.IdleTimeout != httpapi.DefaultIdleTimeout || srv.MaxHeaderBytes != httpapi.HeaderHardLimitFactor*httpapi.DefaultMaxHeaderBytes || srv.ReadTimeout != httpapi.DefaultReadTimeout {
		t.Errorf("server = %+v", srv)
	}
}
