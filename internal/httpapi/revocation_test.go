package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/akvsync/akvsync/internal/auth"
	"github.com/akvsync/akvsync/internal/azure"
	"github.com/akvsync/akvsync/internal/control"
	"github.com/akvsync/akvsync/internal/httpapi"
	"github.com/akvsync/akvsync/internal/tlsconfig"
	"github.com/akvsync/akvsync/pkg/events"
)

// sharedAuthStores are the NATS-backed refresh store and denylist of an
// API process.
func sharedAuthStores(t *testing.T, ctx context.Context, js jetstream.JetStream, now func() time.Time) (auth.RefreshStore, auth.Revocations) {
	t.Helper()
	rkv, err := events.Bucket(ctx, js, events.BucketRefreshTokens)
	if err != nil {
		t.Fatal(err)
	}
	dkv, err := events.Bucket(ctx, js, events.BucketRevokedTokens)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := auth.NewKVRevocations(ctx, dkv, now, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rev.Close)
	return auth.NewKVRefreshStore(rkv), rev
}

// replica starts a second API process on e's NATS server: its own
// control plane, auth service (same keys and users file, NATS-backed
// stores) and HTTPS server.
func (e *env) replica(t *testing.T) *env {
	t.Helper()
	ctx := testCtx(t)
	plane, err := control.New(ctx, e.nc, e.js, control.Config{Connections: []string{testConn}, Endpoints: azure.EndpointPolicy{AllowPrivate: true}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.authCfg
	var store auth.RefreshStore
	store, cfg.Revocations = sharedAuthStores(t, ctx, e.js, e.clock.Now)
	svc, err := auth.NewService(cfg, store, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	handler, err := httpapi.New(httpapi.Config{}, httpapi.DepsFromPlane(plane, svc, zerolog.Nop(), prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(handler)
	if srv.TLS, _, err = tlsconfig.SelfSigned(nil); err != nil {
		t.Fatal(err)
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return &env{ns: e.ns, js: e.js, nc: e.nc, plane: plane, srv: srv, clock: e.clock, logs: e.logs, tokens: map[string]string{}, auth: svc, authCfg: cfg}
}

// eventuallyStatus polls GET path with token on e until it answers want.
// The denylist reaches replicas in milliseconds; the deadline only keeps
// a broken build from hanging.
func (e *env) eventuallyStatus(t *testing.T, path, token string, want int) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		r := e.do(t, "GET", path, token, "")
		if r.status == want {
			return
		}
		select {
		case <-deadline:
			t.Fatalf("GET %s: status %d, still not %d; body %s", path, r.status, want, r.body)
		case <-tick.C:
		}
	}
}

// Issue 12, finding 3: an access token revoked on one API replica is
// refused by every other.
func TestRevocationReachesEveryReplica(t *testing.T) {
	t.Parallel()
	a := setup(t, func(o *options) { o.sharedAuth = true; o.noLogin = true })
	b := a.replica(t)

	// Logout on A revokes the session's access token on B too.
	r := a.do(t, "POST", tokensPath, "", `{"username":"oscar","password":"oscar-password-1"}`)
	r.wantStatus(t, http.StatusOK)
	var tok auth.TokenResponse
	r.decode(t, &tok)
	b.do(t, "GET", vaultsPath, tok.JWT, "").wantStatus(t, http.StatusOK)
	a.do(t, "POST", "/api/v1/auth/revoke", "", fmt.Sprintf(`{"refresh_token":%q}`, tok.RefreshToken)).wantStatus(t, http.StatusNoContent)
	a.do(t, "GET", vaultsPath, tok.JWT, "").wantStatus(t, http.StatusUnauthorized)
	b.eventuallyStatus(t, vaultsPath, tok.JWT, http.StatusUnauthorized)
	// The refresh token of the session is gone for B as well.
	b.do(t, "POST", tokensPath, "", fmt.Sprintf(`{"grant_type":"refresh_token","refresh_token":%q}`, tok.RefreshToken)).wantStatus(t, http.StatusUnauthorized)

	// A user removed from the users file and reloaded on A only: B, which
	// has not reloaded, refuses the user's tokens through the denylist.
	victor := b.login(t, "victor", "victor-password-1")
	alice := b.login(t, "alice", "alice-password-1")
	b.do(t, "GET", vaultsPath, victor, "").wantStatus(t, http.StatusOK)
	data, err := os.ReadFile(a.authCfg.UsersFile)
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	lines := strings.Split(string(data), "\n")
	for i := 0; i < len(lines); i++ {
		if strings.Contains(lines[i], "username: victor") {
			for i+1 < len(lines) && !strings.HasPrefix(strings.TrimSpace(lines[i+1]), "- ") {
				i++
			}
			continue
		}
		kept = append(kept, lines[i])
	}
	if err := os.WriteFile(a.authCfg.UsersFile, []byte(strings.Join(kept, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.auth.ReloadUsers(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.auth.Users().Lookup("victor"); !ok {
		b.eventuallyStatus(t, vaultsPath, victor, http.StatusUnauthorized)
	} else {
		t.Fatal("victor is still a user after the reload")
	}
	b.do(t, "GET", vaultsPath, alice, "").wantStatus(t, http.StatusOK)
}
