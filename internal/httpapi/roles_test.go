package httpapi

// The role table. This is an internal test on purpose: it iterates the real
// route list ((*api).routes), so a route added to server.go without a row
// here (or without a rule covering it) fails TestRoleTable. The external
// harness in setup_test.go cannot reach routes(), so the few lines of setup
// it needs (real NATS, real control plane, real auth.Service) are repeated
// in newRolesEnv.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/akvsync/akvsync/internal/auth"
	"github.com/akvsync/akvsync/internal/azure"
	"github.com/akvsync/akvsync/internal/connections"
	"github.com/akvsync/akvsync/internal/control"
	"github.com/akvsync/akvsync/internal/discovery"
	"github.com/akvsync/akvsync/internal/natstest"
	"github.com/akvsync/akvsync/internal/schedule"
	"github.com/akvsync/akvsync/internal/secrets"
	"github.com/akvsync/akvsync/internal/tlsconfig"
	"github.com/akvsync/akvsync/pkg/events"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

const (
	rolesConn = "azure-conn"
	rolesSub  = "11111111-2222-3333-4444-555555555555"
	// connectionsPrefix is where the connection-management routes live.
	connectionsPrefix = APIPrefix + "/connectionmgmt/services/azure/connections"
)

// rolesUsers: one user per role, in the order the table runs them.
var rolesUsers = []struct {
	name, password string
	role           auth.Role
}{
	{"alice", "alice-password-1", auth.RoleAdmin},
	{"oscar", "oscar-password-1", auth.RoleOperator},
	{"victor", "victor-password-1", auth.RoleViewer},
}

// rolesGrants is the documented role matrix (docs/security.md), written
// out independently of auth's rolePerms so a change there shows up here.
var rolesGrants = map[auth.Role]map[auth.Perm]bool{
	auth.RoleAdmin: {
		auth.PermJobsRead: true, auth.PermJobsWrite: true,
		auth.PermVaultsRead: true, auth.PermVaultsWrite: true,
		auth.PermKeysRead:        true,
		auth.PermConnectionsRead: true, auth.PermConnectionsWrite: true,
		auth.PermUsersAdmin:    true,
		auth.PermSchedulesRead: true, auth.PermSchedulesWrite: true,
	},
	auth.RoleOperator: {
		auth.PermJobsRead: true, auth.PermJobsWrite: true,
		auth.PermVaultsRead: true, auth.PermKeysRead: true, auth.PermConnectionsRead: true,
		auth.PermSchedulesRead: true,
	},
	auth.RoleViewer: {
		auth.PermJobsRead: true, auth.PermVaultsRead: true, auth.PermKeysRead: true, auth.PermConnectionsRead: true,
		auth.PermSchedulesRead: true,
	},
}

// rolesPublic are the only routes that may be served without a token.
var rolesPublic = map[string]bool{
	"GET /healthz":                       true,
	"GET /readyz":                        true,
	"POST " + APIPrefix + "/auth/tokens": true,
	"POST " + APIPrefix + "/auth/revoke": true,
	"GET " + OpenAPIPath:                 true,
	"GET " + UIPath:                      true,
	// Event Grid authenticates with its own credentials (a webhook
	// secret or an Entra ID token), not an akvsync user's token.
	"POST " + EventGridPath:    true,
	"OPTIONS " + EventGridPath: true,
}

// rolesRow is the expectation for one route.
type rolesRow struct {
	perm auth.Perm // the permission the route must require
	does string    // what the route does, for subtest names: "start a sync"
	body func(f *rolesFixtures) string
}

// rolesTable has a row per known route, keyed "METHOD path" as in routes().
// Connection-management routes are covered by rolesRowFor's rule instead.
func rolesTable() map[string]rolesRow {
	const azure = APIPrefix + "/cckm/azure"
	return map[string]rolesRow{
		"GET /metrics":        {perm: auth.PermJobsRead, does: "read the metrics"},
		"GET " + SelfPath:     {perm: auth.PermJobsRead, does: "ask who they are"},
		"POST " + TicketsPath: {perm: auth.PermJobsRead, does: "get an event stream ticket"},
		"POST " + azure + "/synchronization-jobs": {perm: auth.PermJobsWrite, does: "start a sync",
			body: func(f *rolesFixtures) string { return `{"key_vaults":["vault-free"]}` }},
		"GET " + azure + "/synchronization-jobs":              {perm: auth.PermJobsRead, does: "list syncs"},
		"GET " + azure + "/synchronization-jobs/{id}":         {perm: auth.PermJobsRead, does: "read a sync"},
		"GET " + azure + "/synchronization-jobs/{id}/vaults":  {perm: auth.PermJobsRead, does: "page a sync's vaults"},
		"POST " + azure + "/synchronization-jobs/{id}/cancel": {perm: auth.PermJobsWrite, does: "cancel a sync"},
		"POST " + azure + "/add-vaults": {perm: auth.PermVaultsWrite, does: "register vaults",
			body: func(f *rolesFixtures) string { return rolesAddBody(rolesSub, "vault-new") }},
		"GET " + azure + "/vaults":      {perm: auth.PermVaultsRead, does: "list vaults"},
		"GET " + azure + "/vaults/{id}": {perm: auth.PermVaultsRead, does: "read a vault"},
		"PATCH " + azure + "/vaults/{id}": {perm: auth.PermVaultsWrite, does: "change a vault",
			body: func(f *rolesFixtures) string { return `{"cloud_key_backup_limit":3}` }},
		"POST " + azure + "/vaults/{id}/remove-vault":   {perm: auth.PermVaultsWrite, does: "remove a vault"},
		"DELETE " + azure + "/vaults/{id}/remove-vault": {perm: auth.PermVaultsWrite, does: "remove a vault with DELETE"},
		"GET " + azure + "/keys":                        {perm: auth.PermKeysRead, does: "list keys"},
		"GET " + azure + "/keys/{id}":                   {perm: auth.PermKeysRead, does: "read a key"},
		"GET " + azure + "/events":                      {perm: auth.PermJobsRead, does: "follow the event stream"},
		"POST " + azure + "/get-subscriptions": {perm: auth.PermVaultsWrite, does: "list Azure's subscriptions",
			body: func(f *rolesFixtures) string { return `{"connection":"` + rolesConn + `"}` }},
		"POST " + azure + "/get-vaults": {perm: auth.PermVaultsWrite, does: "discover vaults",
			body: func(f *rolesFixtures) string {
				return `{"connection":"` + rolesConn + `","subscription_id":"` + rolesSub + `"}`
			}},
		"POST " + azure + "/get-managed-hsms": {perm: auth.PermVaultsWrite, does: "discover Managed HSM pools",
			body: func(f *rolesFixtures) string {
				return `{"connection":"` + rolesConn + `","subscription_id":"` + rolesSub + `"}`
			}},
		"GET " + azure + "/subscriptions":         {perm: auth.PermVaultsRead, does: "list stored subscriptions"},
		"GET " + azure + "/subscriptions/{id}":    {perm: auth.PermVaultsRead, does: "read a stored subscription"},
		"DELETE " + azure + "/subscriptions/{id}": {perm: auth.PermVaultsWrite, does: "delete a stored subscription"},
		"POST " + JobConfigsPath: {perm: auth.PermSchedulesWrite, does: "create a job config",
			body: func(f *rolesFixtures) string {
				return `{"name":"nightly","run_at":"0 9 * * sat","cckm_synchronization_params":{"synchronize_all":true}}`
			}},
		"GET " + JobConfigsPath:              {perm: auth.PermSchedulesRead, does: "list job configs"},
		"GET " + JobConfigsPath + "/{id}":    {perm: auth.PermSchedulesRead, does: "read a job config"},
		"PATCH " + JobConfigsPath + "/{id}":  {perm: auth.PermSchedulesWrite, does: "change a job config", body: func(f *rolesFixtures) string { return `{"disabled":true}` }},
		"DELETE " + JobConfigsPath + "/{id}": {perm: auth.PermSchedulesWrite, does: "delete a job config"},
	}
}

// rolesRowFor returns the expectation for rt: its row, or for a
// connection-management route the rule "reads need connections:read,
// everything else connections:write".
func rolesRowFor(rt route) (rolesRow, bool) {
	if row, ok := rolesTable()[rt.method+" "+rt.path]; ok {
		return row, true
	}
	if rt.path == connectionsPrefix || strings.HasPrefix(rt.path, connectionsPrefix+"/") {
		if rt.method == http.MethodGet || rt.method == http.MethodHead {
			return rolesRow{perm: auth.PermConnectionsRead, does: "read connections (" + rt.method + " " + rt.path + ")"}, true
		}
		return rolesRow{perm: auth.PermConnectionsWrite, does: "change connections (" + rt.method + " " + rt.path + ")",
			body: func(*rolesFixtures) string { return `{}` }}, true
	}
	return rolesRow{}, false
}

// rolesFixtures is the state the table's requests point at.
type rolesFixtures struct {
	jobID       string // an in_progress job on vault-busy
	vaultID     string // vault-busy
	removableID string // vault-gone, in no job
}

// rolesEnv is a real API: NATS with akvsync's topology, the control plane,
// the auth service with one user per role.
type rolesEnv struct {
	js     jetstream.JetStream
	plane  *control.Plane
	srv    *httptest.Server
	routes []route
	tokens map[string]string
}

func newRolesEnv(t *testing.T) *rolesEnv {
	t.Helper()
	ns := natstest.RunServer(t, natstest.Options{})
	nc, js := natstest.Connect(t, ns)
	ctx := rolesCtx(t)
	if err := (events.Topology{Storage: jetstream.MemoryStorage}).EnsureStreams(ctx, js); err != nil {
		t.Fatalf("topology: %v", err)
	}
	plane, err := control.New(ctx, nc, js, control.Config{Connections: []string{rolesConn}, Endpoints: azure.EndpointPolicy{AllowPrivate: true}})
	if err != nil {
		t.Fatalf("control: %v", err)
	}
	cheap := auth.Argon2Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
	var users strings.Builder
	users.WriteString("users:\n")
	for _, u := range rolesUsers {
		h, err := auth.HashPasswordWith(u.password, cheap)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&users, "  - username: %s\n    password_hash: %q\n    role: %s\n", u.name, h, u.role)
	}
	usersFile := filepath.Join(t.TempDir(), "users.yaml")
	if err := os.WriteFile(usersFile, []byte(users.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	authSvc, err := auth.NewService(auth.Config{
		SigningKeyID: "k1",
		Keys:         map[string][]byte{"k1": bytes.Repeat([]byte{7}, 32)},
		UsersFile:    usersFile,
		RateLimit:    1e6,
		RateBurst:    1e6,
	}, auth.NewMemoryRefreshStore(time.Now), zerolog.Nop())
	if err != nil {
		t.Fatalf("auth: %v", err)
	}
	deps := DepsFromPlane(plane, authSvc, zerolog.Nop(), prometheus.NewRegistry())
	// Discovery over a registry without connections: allowed discovery
	// requests get past the guard and are refused by the service (400).
	key, err := secrets.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := secrets.NewSealer(secrets.KeyRing{Current: "r1", Keys: map[string][]byte{"r1": key}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sealer.Close() })
	conns, err := connections.New(ctx, js, sealer, connections.Config{Endpoints: azure.EndpointPolicy{AllowPrivate: true}})
	if err != nil {
		t.Fatal(err)
	}
	if deps.Discovery, err = discovery.New(ctx, js, conns, discovery.Config{}); err != nil {
		t.Fatal(err)
	}
	if deps.Scheduler, err = schedule.New(ctx, js, plane.Jobs, schedule.Config{}); err != nil {
		t.Fatal(err)
	}
	handler, err := New(Config{}, deps)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	// Over HTTPS with the server's real TLS settings, as in production.
	srv := httptest.NewUnstartedServer(handler)
	tlsCfg, _, err := tlsconfig.SelfSigned(nil)
	if err != nil {
		t.Fatal(err)
	}
	srv.TLS = tlsCfg
	srv.StartTLS()
	t.Cleanup(srv.Close)
	// The same route list New registered: routes() depends on nothing but
	// the receiver's handlers.
	a := &api{cfg: Config{}.WithDefaults(), d: deps, mux: http.NewServeMux()}
	e := &rolesEnv{js: js, plane: plane, srv: srv, routes: a.routes(), tokens: map[string]string{}}
	for _, u := range rolesUsers {
		r := e.do(t, "POST", APIPrefix+"/auth/tokens", "", fmt.Sprintf(`{"username":%q,"password":%q}`, u.name, u.password))
		if r.status != http.StatusOK {
			t.Fatalf("login %s: %d %s", u.name, r.status, r.body)
		}
		var tok auth.TokenResponse
		if err := json.Unmarshal(r.body, &tok); err != nil || tok.JWT == "" {
			t.Fatalf("login %s: %s (%v)", u.name, r.body, err)
		}
		e.tokens[u.name] = tok.JWT
	}
	return e
}

// fixtures registers vault-busy (with an in_progress job), vault-gone and
// vault-free, through the real control plane.
func (e *rolesEnv) fixtures(t *testing.T) *rolesFixtures {
	t.Helper()
	ctx := rolesCtx(t)
	var vs []control.AddVault
	for _, n := range []string{"vault-busy", "vault-gone", "vault-free"} {
		vs = append(vs, control.AddVault{Name: n, Location: "westeurope",
			Properties: control.VaultProperties{VaultURI: "https://" + n + ".vault.azure.net/"}})
	}
	added, err := e.plane.Vaults.AddVaults(ctx, control.AddVaultsRequest{Connection: rolesConn, SubscriptionID: rolesSub, Vaults: vs})
	if err != nil {
		t.Fatalf("add vaults: %v", err)
	}
	f := &rolesFixtures{}
	for _, v := range added {
		switch v.Name {
		case "vault-busy":
			f.vaultID = v.ID
		case "vault-gone":
			f.removableID = v.ID
		}
	}
	job, err := e.plane.Jobs.Create(ctx, control.CreateJobRequest{KeyVaults: []string{"vault-busy"}}, "alice")
	if err != nil {
		t.Fatalf("create job: %v", err)
	}
	f.jobID = job.ID
	// A stored subscription, as get-subscriptions leaves it.
	subs, err := e.js.KeyValue(ctx, events.BucketSubscriptions)
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := json.Marshal(discovery.Subscription{ID: discovery.RecordID(rolesSub), SubscriptionID: rolesSub,
		SubscriptionURI: "/subscriptions/" + rolesSub, DisplayName: "roles", State: "Enabled", Connection: rolesConn,
		CreatedAt: time.Now().UTC(), UpdatedAt: time.Now().UTC()})
	if _, err := subs.Create(ctx, discovery.RecordID(rolesSub), rec); err != nil {
		t.Fatal(err)
	}
	if f.vaultID == "" || f.removableID == "" {
		t.Fatalf("fixtures incomplete: %+v", f)
	}
	return f
}

// concretePath fills a route pattern's wildcards with fixture ids.
func (f *rolesFixtures) concretePath(pattern string) string {
	const azure = APIPrefix + "/cckm/azure"
	id := events.NewID()
	switch {
	case strings.HasPrefix(pattern, azure+"/synchronization-jobs/"):
		id = f.jobID
	case strings.HasPrefix(pattern, azure+"/vaults/") && strings.HasSuffix(pattern, "/remove-vault"):
		id = f.removableID
	case strings.HasPrefix(pattern, azure+"/vaults/"):
		id = f.vaultID
	case strings.HasPrefix(pattern, azure+"/subscriptions/"):
		id = discovery.RecordID(rolesSub)
	}
	return regexp.MustCompile(`\{[^}]*\}`).ReplaceAllString(pattern, id)
}

// rolesState counts everything a request could create or change.
type rolesState struct {
	jobs, locks, vaults, subscriptions int
	requests, events                   uint64
	jobRevs                            uint64
}

// rolesWrites is the last sequence of every stream a request could write
// (the buckets' streams included): equal before and after a request, it
// proves the request wrote nothing there, updates included, at one stream
// info per stream instead of state's listing of every bucket's keys.
type rolesWrites [6]uint64

func (e *rolesEnv) writes(t *testing.T) rolesWrites {
	t.Helper()
	ctx := rolesCtx(t)
	var w rolesWrites
	for i, name := range []string{
		"KV_" + events.BucketJobs, "KV_" + events.BucketLocks, "KV_" + events.BucketVaults,
		"KV_" + events.BucketSubscriptions, events.StreamRequests, events.StreamEvents,
	} {
		s, err := e.js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		w[i] = s.CachedInfo().State.LastSeq
	}
	return w
}

func (e *rolesEnv) state(t *testing.T) rolesState {
	t.Helper()
	ctx := rolesCtx(t)
	bucket := func(name string) (int, uint64) {
		kv, err := e.js.KeyValue(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		st, err := kv.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		keys, err := kv.Keys(ctx)
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return 0, st.Values()
		}
		if err != nil {
			t.Fatal(err)
		}
		return CountRecords(name, keys), st.Values()
	}
	msgs := func(stream string) uint64 {
		s, err := e.js.Stream(ctx, stream)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Msgs
	}
	var s rolesState
	s.jobs, s.jobRevs = bucket(events.BucketJobs)
	s.locks, _ = bucket(events.BucketLocks)
	s.vaults, _ = bucket(events.BucketVaults)
	s.subscriptions, _ = bucket(events.BucketSubscriptions)
	s.requests = msgs(events.StreamRequests)
	s.events = msgs(events.StreamEvents)
	return s
}

type rolesResponse struct {
	status int
	header http.Header
	body   []byte
}

func (e *rolesEnv) do(t *testing.T, method, path, token, body string) rolesResponse {
	t.Helper()
	status, header, b := SendTestRequest(rolesCtx(t), t, e.srv.Client(), method, e.srv.URL+path, token, body)
	return rolesResponse{status: status, header: header, body: b}
}

func (r rolesResponse) apiError(t *testing.T) APIError {
	t.Helper()
	var ae APIError
	if err := json.Unmarshal(r.body, &ae); err != nil {
		t.Fatalf("error body %q: %v", r.body, err)
	}
	return ae
}

func rolesAddBody(sub string, names ...string) string {
	vs := make([]string, len(names))
	for i, n := range names {
		vs[i] = fmt.Sprintf(`{"name":%q,"azure_vault_id":"/subscriptions/%s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/%s","location":"westeurope","properties":{"vaultUri":"https://%s.vault.azure.net/","sku":{"name":"standard"}}}`, n, sub, n, n)
	}
	return fmt.Sprintf(`{"connection":%q,"subscription_id":%q,"vaults":[%s]}`, rolesConn, sub, strings.Join(vs, ","))
}

func rolesCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestRoleTable checks every route of routes() for every role: a role
// without the route's permission gets 403 naming the permission and changes
// nothing; a role with it gets past authorization (any status but 401/403).
func TestRoleTable(t *testing.T) {
	t.Parallel()
	e := newRolesEnv(t)
	f := e.fixtures(t)

	// Every route has an expectation, and requires exactly that permission.
	seen := map[string]bool{}
	for _, rt := range e.routes {
		key := rt.method + " " + rt.path
		if seen[key] {
			t.Errorf("route %s is listed twice", key)
		}
		seen[key] = true
		if rt.perm == "" {
			if !rolesPublic[key] {
				t.Errorf("route %s is public (no permission); only %v may be", key, rolesPublic)
			}
			continue
		}
		row, ok := rolesRowFor(rt)
		if !ok {
			t.Errorf("route %s (permission %s) has no row in the role table: add one to rolesTable", key, rt.perm)
			continue
		}
		if rt.perm != row.perm {
			t.Errorf("route %s requires %s, want %s", key, rt.perm, row.perm)
		}
	}
	for key := range rolesTable() {
		if !seen[key] {
			t.Errorf("role table row %s matches no route", key)
		}
	}
	for key := range rolesPublic {
		if !seen[key] {
			t.Errorf("public route %s is missing", key)
		}
	}

	for _, rt := range e.routes {
		if rt.perm == "" {
			continue
		}
		row, ok := rolesRowFor(rt)
		if !ok {
			continue // reported above
		}
		path := f.concretePath(rt.path)
		body := ""
		if row.body != nil {
			body = row.body(f)
		}
		for _, u := range rolesUsers {
			allowed := rolesGrants[u.role][row.perm]
			verb := "cannot"
			if allowed {
				verb = "can"
			}
			t.Run(fmt.Sprintf("%s %s %s", u.role, verb, row.does), func(t *testing.T) {
				before := e.writes(t)
				r := e.do(t, rt.method, path, e.tokens[u.name], body)
				if !allowed {
					if r.status != http.StatusForbidden {
						t.Fatalf("%s %s as %s: status %d, want 403; body %s", rt.method, path, u.role, r.status, r.body)
					}
					ae := r.apiError(t)
					want := fmt.Sprintf("role %s lacks permission %s", u.role, row.perm)
					if !strings.Contains(ae.Message, want) || !strings.HasPrefix(ae.CodeDesc, "NCERRForbidden") {
						t.Errorf("403 %+v, want a message naming %q", ae, want)
					}
					if after := e.writes(t); after != before {
						t.Errorf("a forbidden request changed state: %+v → %+v", before, after)
					}
					return
				}
				switch r.status {
				case http.StatusUnauthorized, http.StatusForbidden, http.StatusMethodNotAllowed:
					t.Fatalf("%s %s as %s: status %d, want the route's own answer; body %s", rt.method, path, u.role, r.status, r.body)
				}
				if r.status >= 500 && r.status != http.StatusServiceUnavailable {
					t.Errorf("%s %s as %s: status %d; body %s", rt.method, path, u.role, r.status, r.body)
				}
			})
		}
		t.Run("anonymous cannot "+row.does, func(t *testing.T) {
			before := e.writes(t)
			r := e.do(t, rt.method, path, "", body)
			if r.status != http.StatusUnauthorized {
				t.Fatalf("%s %s without a token: status %d, want 401; body %s", rt.method, path, r.status, r.body)
			}
			if ae := r.apiError(t); ae.Message != "Unauthorized: Bearer token is missing" {
				t.Errorf("401 message %q", ae.Message)
			}
			if got := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
				t.Errorf("WWW-Authenticate %q", got)
			}
			// The trailing-slash spelling of the route is guarded too.
			if r := e.do(t, rt.method, path+"/", "", body); r.status != http.StatusUnauthorized {
				t.Errorf("%s %s/ without a token: status %d, want 401; body %s", rt.method, path, r.status, r.body)
			}
			if after := e.writes(t); after != before {
				t.Errorf("an anonymous request changed state: %+v → %+v", before, after)
			}
		})
	}
}

// TestRoleTableAllowedOutcomes pins what the allowed requests of the table
// actually did, so "allowed" is not just "not 403": the operator can start
// and cancel a sync, only the admin can register and remove vaults.
func TestRoleTableAllowedOutcomes(t *testing.T) {
	t.Parallel()
	e := newRolesEnv(t)
	f := e.fixtures(t)
	const azure = APIPrefix + "/cckm/azure"

	t.Run("operator can start a sync", func(t *testing.T) {
		r := e.do(t, "POST", azure+"/synchronization-jobs", e.tokens["oscar"], `{"key_vaults":["vault-free"]}`)
		if r.status != http.StatusCreated {
			t.Fatalf("status %d, want 201; body %s", r.status, r.body)
		}
	})
	t.Run("operator can cancel a sync", func(t *testing.T) {
		r := e.do(t, "POST", azure+"/synchronization-jobs/"+f.jobID+"/cancel", e.tokens["oscar"], "")
		if r.status != http.StatusOK || !bytes.Contains(r.body, []byte(`"abort":true`)) {
			t.Fatalf("status %d, want 200 with abort; body %s", r.status, r.body)
		}
	})
	t.Run("viewer can read a sync", func(t *testing.T) {
		r := e.do(t, "GET", azure+"/synchronization-jobs/"+f.jobID, e.tokens["victor"], "")
		if r.status != http.StatusOK || !bytes.Contains(r.body, []byte(f.jobID)) {
			t.Fatalf("status %d; body %s", r.status, r.body)
		}
	})
	t.Run("viewer can read a vault", func(t *testing.T) {
		r := e.do(t, "GET", azure+"/vaults/"+f.vaultID, e.tokens["victor"], "")
		if r.status != http.StatusOK || !bytes.Contains(r.body, []byte("vault-busy")) {
			t.Fatalf("status %d; body %s", r.status, r.body)
		}
	})
	t.Run("viewer can read the metrics", func(t *testing.T) {
		r := e.do(t, "GET", "/metrics", e.tokens["victor"], "")
		if r.status != http.StatusOK {
			t.Fatalf("status %d; body %.200s", r.status, r.body)
		}
	})
	t.Run("admin can register vaults", func(t *testing.T) {
		r := e.do(t, "POST", azure+"/add-vaults", e.tokens["alice"], rolesAddBody(rolesSub, "vault-new"))
		if r.status != http.StatusCreated {
			t.Fatalf("status %d, want 201; body %s", r.status, r.body)
		}
	})
	t.Run("admin can remove a vault", func(t *testing.T) {
		r := e.do(t, "POST", azure+"/vaults/"+f.removableID+"/remove-vault", e.tokens["alice"], "")
		if r.status != http.StatusOK {
			t.Fatalf("status %d, want 200; body %s", r.status, r.body)
		}
	})
	t.Run("viewer can read the stored subscriptions", func(t *testing.T) {
		r := e.do(t, "GET", azure+"/subscriptions?subscriptionId="+rolesSub, e.tokens["victor"], "")
		if r.status != http.StatusOK || !bytes.Contains(r.body, []byte(`"total":1`)) {
			t.Fatalf("status %d; body %s", r.status, r.body)
		}
	})
	t.Run("admin can delete a stored subscription", func(t *testing.T) {
		r := e.do(t, "DELETE", azure+"/subscriptions/"+rolesSub, e.tokens["alice"], "")
		if r.status != http.StatusNoContent {
			t.Fatalf("status %d, want 204; body %s", r.status, r.body)
		}
	})
	if s := e.state(t); s.jobs != 2 || s.subscriptions != 0 {
		t.Errorf("state after the allowed requests: %+v, want 2 jobs and no subscription", s)
	}
	page, err := e.plane.Vaults.List(rolesCtx(t), control.VaultQuery{Limit: events.LimitAll})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, v := range page.Resources {
		names = append(names, v.Name)
	}
	slices.Sort(names)
	if want := []string{"vault-busy", "vault-free", "vault-new"}; !slices.Equal(names, want) {
		t.Errorf("vaults after the allowed requests: %v, want %v", names, want)
	}
}

// TestPublicRoutesNeedNoToken: health, readiness and the token endpoint
// answer without a token.
func TestPublicRoutesNeedNoToken(t *testing.T) {
	t.Parallel()
	e := newRolesEnv(t)
	tests := []struct {
		name, method, path, body string
		want                     int
	}{
		{"anyone can check health", "GET", "/healthz", "", http.StatusOK},
		{"anyone can check readiness", "GET", "/readyz", "", http.StatusOK},
		{"anyone can log in", "POST", APIPrefix + "/auth/tokens", `{"username":"victor","password":"victor-password-1"}`, http.StatusOK},
		{"a wrong password is 401 from the handler, not the guard", "POST", APIPrefix + "/auth/tokens", `{"username":"victor","password":"nope"}`, http.StatusUnauthorized},
		{"anyone holding a refresh token can revoke it", "POST", APIPrefix + "/auth/revoke", `{"refresh_token":"not-a-real-one"}`, http.StatusNoContent},
		{"anyone can read the OpenAPI document", "GET", OpenAPIPath, "", http.StatusOK},
		{"anyone can load the dashboard's page (it holds no data)", "GET", UIPath, "", http.StatusOK},
		{"Event Grid deliveries need the webhook's own credentials", "POST", EventGridPath, `[{"id":"1"}]`, http.StatusUnauthorized},
		{"Event Grid's CloudEvents handshake needs none (it grants nothing)", "OPTIONS", EventGridPath, "", http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(t, tt.method, tt.path, "", tt.body)
			if r.status != tt.want {
				t.Fatalf("status %d, want %d; body %s", r.status, tt.want, r.body)
			}
			if tt.want == http.StatusUnauthorized && tt.path != EventGridPath {
				if ae := r.apiError(t); ae.Message != "Unauthorized: Invalid username or password" {
					t.Errorf("message %q", ae.Message)
				}
			}
		})
	}
	// Every public route in routes() is one of the above.
	for _, rt := range e.routes {
		if rt.perm != "" {
			continue
		}
		found := false
		for _, tt := range tests {
			found = found || tt.method+" "+tt.path == rt.method+" "+rt.path
		}
		if !found {
			t.Errorf("public route %s %s is not checked here", rt.method, rt.path)
		}
	}
}
