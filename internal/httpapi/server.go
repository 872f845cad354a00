package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/akvsync/akvsync/internal/auth"
	"github.com/akvsync/akvsync/internal/control"
	"github.com/akvsync/akvsync/internal/jsonbody"
	"github.com/akvsync/akvsync/pkg/events"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// APIPrefix prefixes every CCKM route.
const APIPrefix = "/api/v1"

// JobService creates, reads and cancels jobs; *control.Jobs implements it.
type JobService interface {
	Create(ctx context.Context, req control.CreateJobRequest, createdBy string) (events.JobDetail, error)
	Get(ctx context.Context, id string) (events.JobDetail, error)
	Vaults(ctx context.Context, q events.JobVaultQuery) (events.JobVaultPage, error)
	Cancel(ctx context.Context, id string) (events.JobDetail, error)
}

// VaultService is the vault registry; *control.Registry implements it.
type VaultService interface {
	AddVaults(ctx context.Context, req control.AddVaultsRequest) ([]events.Vault, error)
	Get(ctx context.Context, id string) (events.Vault, error)
	List(ctx context.Context, q control.VaultQuery) (control.VaultPage, error)
	Remove(ctx context.Context, id string) (events.Vault, error)
	Patch(ctx context.Context, id string, p control.VaultPatch) (events.Vault, error)
}

// QueryService asks the workers' inventory; *control.Queries implements it.
type QueryService interface {
	// StreamKeys calls head with the page envelope (no resources), then
	// each with every key of the page, in order.
	StreamKeys(ctx context.Context, q events.KeyQuery, head func(events.KeyPage) error, each func(events.KeyRecord) error) error
	Key(ctx context.Context, id string) (events.KeyRecord, error)
	Jobs(ctx context.Context, q events.JobQuery) (events.JobPage, error)
}

// Authenticator issues and verifies tokens; *auth.Service implements it.
type Authenticator interface {
	IssueToken(ctx context.Context, req auth.TokenRequest, clientAddr string) (auth.TokenResponse, error)
	Verify(ctx context.Context, token string) (auth.Principal, error)
	Revoke(ctx context.Context, refreshToken string) error
}

// TicketService issues and redeems the single-use tickets a browser opens
// the event stream with; *auth.TicketStore implements it.
type TicketService interface {
	Issue(ctx context.Context, p auth.Principal) (auth.Ticket, error)
	Redeem(ctx context.Context, ticket string) (auth.Principal, error)
}

// Deps are the services the API is built on. All are required but Log
// (default: no logging) and the metrics (default: none; /metrics answers
// 404).
type Deps struct {
	Jobs    JobService
	Vaults  VaultService
	Queries QueryService
	// Ready reports whether the process can serve (control.Plane.Ready).
	Ready func(ctx context.Context) error
	Auth  Authenticator
	// Connections is the Azure connection registry; without it the
	// connection routes answer 503.
	Connections ConnectionService
	// Events follows job and vault events for the SSE stream; without it
	// that route answers 503.
	Events EventService
	// Discovery lists subscriptions, vaults and Managed HSM pools through
	// Azure Resource Manager and keeps the stored subscriptions; without
	// it the discovery routes answer 503.
	Discovery DiscoveryService
	// Scheduler stores CCKM scheduler job configs; without it the
	// job-config routes answer 503.
	Scheduler ScheduleService
	// EventGrid queues the key refreshes of Event Grid deliveries, and
	// EventGridWebhook authenticates and paces them; without both the
	// webhook answers 503.
	EventGrid        EventGridService
	EventGridWebhook EventGridWebhook
	// Tickets issues the event stream's tickets for browsers; without it
	// the ticket route answers 503 and the stream takes bearer tokens only.
	Tickets TicketService
	// Log receives one line per request and the errors behind 5xx answers.
	Log zerolog.Logger
	// Registry, when set (and Metrics is not), gets the HTTP metrics
	// ([NewMetrics]) and is served on /metrics with whatever else the
	// process registered on it.
	Registry *prometheus.Registry
	// Metrics, when set, records request metrics and serves /metrics
	// instead of Registry.
	Metrics Metrics
	// MetricsToken, when set, is a static bearer token that may read
	// /metrics (and nothing else), for a scraper that cannot renew a JWT.
	// It is compared in constant time and never logged.
	MetricsToken []byte
	// Prices price the Azure operations in a job's stats (zero:
	// events.DefaultPrices).
	Prices events.Prices
	// Now is the clock of a job's stats (default time.Now).
	Now func() time.Time
}

// DepsFromPlane fills Deps from a control plane.
func DepsFromPlane(p *control.Plane, a Authenticator, log zerolog.Logger, reg *prometheus.Registry) Deps {
	return Deps{Jobs: p.Jobs, Vaults: p.Vaults, Queries: p.Queries, Events: p.Events, EventGrid: p.Refreshes, Ready: p.Ready, Auth: a, Log: log, Registry: reg}
}

// api is the handler behind [New].
type api struct {
	cfg Config
	d   Deps
	mux *http.ServeMux
}

// route is one endpoint: its method and path (without trailing slash), the
// permission it needs ("" for public endpoints) and its handler.
type route struct {
	method string
	path   string
	perm   auth.Perm
	h      http.HandlerFunc
}

// New returns the API's http.Handler.
func New(cfg Config, d Deps) (http.Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.Jobs == nil || d.Vaults == nil || d.Queries == nil || d.Ready == nil || d.Auth == nil {
		return nil, errors.New("httpapi: Jobs, Vaults, Queries, Ready and Auth are required")
	}
	switch {
	case d.Metrics != nil:
	case d.Registry != nil:
		m, err := NewMetrics(d.Registry)
		if err != nil {
			return nil, err
		}
		d.Metrics = m
	default:
		d.Metrics = noMetrics{}
	}
	if err := d.Prices.Validate(); err != nil {
		return nil, fmt.Errorf("httpapi: %w", err)
	}
	d.Prices = d.Prices.WithDefaults()
	if d.Now == nil {
		d.Now = time.Now
	}
	a := &api{cfg: cfg.WithDefaults(), d: d, mux: http.NewServeMux()}
	for _, rt := range a.routes() {
		h := a.guard(rt)
		a.mux.Handle(rt.method+" "+rt.path, h)
		if !strings.HasSuffix(rt.path, "/") {
			a.mux.Handle(rt.method+" "+rt.path+"/{$}", h)
		}
	}
	return a.instrument(a.limits(http.HandlerFunc(a.dispatch))), nil
}

// limits answers in CCKM's error shape what the http.Server would answer
// in plain text, or not check: headers over Config.MaxHeaderBytes (431),
// and a body whose Content-Type is not JSON (415). A body without a
// Content-Type is taken as JSON (curl -d sends form encoding only when
// told nothing, so clients are asked to send the header).
func (a *api) limits(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if headerBytes(r) > a.cfg.MaxHeaderBytes {
			w.Header().Set("Connection", "close")
			writeError(w, http.StatusRequestHeaderFieldsTooLarge,
				fmt.Sprintf("the request line and headers exceed %d bytes", a.cfg.MaxHeaderBytes))
			return
		}
		if r.Method == http.MethodPost || r.Method == http.MethodPatch || r.Method == http.MethodPut {
			if err := jsonbody.CheckContentType(r.Header.Get("Content-Type")); err != nil {
				writeError(w, http.StatusUnsupportedMediaType, err.Error())
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// headerBytes is about the size of the request line and headers as sent.
func headerBytes(r *http.Request) int {
	n := len(r.Method) + len(r.RequestURI) + len(r.Proto) + 4 + len("Host: \r\n") + len(r.Host)
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// routes lists every endpoint.
func (a *api) routes() []route {
	const azure = APIPrefix + "/cckm/azure"
	return []route{
		{"GET", "/healthz", "", a.healthz},
		{"GET", "/readyz", "", a.readyz},
		{"GET", MetricsPath, auth.PermJobsRead, a.serveMetrics},
		{"GET", OpenAPIPath, "", a.serveOpenAPI},
		{"GET", UIPath, "", a.serveUI},
		{"POST", APIPrefix + "/auth/tokens", "", a.issueToken},
		{"POST", APIPrefix + "/auth/revoke", "", a.revokeToken},
		// Every role has jobs:read: any signed-in user may ask who they are.
		{"GET", SelfPath, auth.PermJobsRead, a.self},

		{"POST", azure + "/synchronization-jobs", auth.PermJobsWrite, a.createJob},
		{"GET", azure + "/synchronization-jobs", auth.PermJobsRead, a.listJobs},
		{"GET", azure + "/synchronization-jobs/{id}", auth.PermJobsRead, a.getJob},
		{"GET", azure + "/synchronization-jobs/{id}/vaults", auth.PermJobsRead, a.jobVaults},
		{"POST", azure + "/synchronization-jobs/{id}/cancel", auth.PermJobsWrite, a.cancelJob},

		{"POST", azure + "/add-vaults", auth.PermVaultsWrite, a.addVaults},
		{"GET", azure + "/vaults", auth.PermVaultsRead, a.listVaults},
		{"GET", azure + "/vaults/{id}", auth.PermVaultsRead, a.getVault},
		{"PATCH", azure + "/vaults/{id}", auth.PermVaultsWrite, a.patchVault},
		{"POST", azure + "/vaults/{id}/remove-vault", auth.PermVaultsWrite, a.removeVault},
		// Thales' first Ansible collection sends remove-vault as a DELETE.
		{"DELETE", azure + "/vaults/{id}/remove-vault", auth.PermVaultsWrite, a.removeVault},

		// Discovery calls Azure with the connection's credential: admins
		// only, like registering what it finds.
		{"POST", azure + "/get-subscriptions", auth.PermVaultsWrite, a.getSubscriptions},
		{"POST", azure + "/get-vaults", auth.PermVaultsWrite, a.getVaults},
		{"POST", azure + "/get-managed-hsms", auth.PermVaultsWrite, a.getManagedHSMs},
		{"GET", azure + "/subscriptions", auth.PermVaultsRead, a.listSubscriptions},
		{"GET", azure + "/subscriptions/{id}", auth.PermVaultsRead, a.getSubscription},
		{"DELETE", azure + "/subscriptions/{id}", auth.PermVaultsWrite, a.deleteSubscription},

		// Event Grid authenticates with its own credentials (see
		// eventGridCaller), not a user's token.
		{"POST", EventGridPath, "", a.eventGrid},
		{"OPTIONS", EventGridPath, "", a.eventGridOptions},

		{"GET", azure + "/keys", auth.PermKeysRead, a.listKeys},
		{"GET", azure + "/keys/{id}", auth.PermKeysRead, a.getKey},
		{"GET", EventsPath, auth.PermJobsRead, a.streamEvents},
		{"POST", TicketsPath, auth.PermJobsRead, a.issueTicket},

		{"POST", JobConfigsPath, auth.PermSchedulesWrite, a.createJobConfig},
		{"GET", JobConfigsPath, auth.PermSchedulesRead, a.listJobConfigs},
		{"GET", JobConfigsPath + "/{id}", auth.PermSchedulesRead, a.getJobConfig},
		{"PATCH", JobConfigsPath + "/{id}", auth.PermSchedulesWrite, a.patchJobConfig},
		{"DELETE", JobConfigsPath + "/{id}", auth.PermSchedulesWrite, a.deleteJobConfig},
		{"POST", ConnectionsPath, auth.PermConnectionsWrite, a.createConnection},
		{"GET", ConnectionsPath, auth.PermConnectionsRead, a.listConnections},
		{"GET", ConnectionsPath + "/{id}", auth.PermConnectionsRead, a.getConnection},
		{"PATCH", ConnectionsPath + "/{id}", auth.PermConnectionsWrite, a.patchConnection},
		{"DELETE", ConnectionsPath + "/{id}", auth.PermConnectionsWrite, a.deleteConnection},
		{"POST", ConnectionsPath + "/{id}/test", auth.PermConnectionsWrite, a.testConnection},
	}
}

// dispatch serves a request with the mux, answering unknown routes with a
// JSON 404 and a known path with a wrong method with a JSON 405 and Allow.
func (a *api) dispatch(w http.ResponseWriter, r *http.Request) {
	h, pattern := a.mux.Handler(r)
	if pattern != "" {
		// The mux redirects unclean paths itself (with a pattern): in
		// CCKM's shape instead of its HTML.
		a.mux.ServeHTTP(&redirectShaper{ResponseWriter: w}, r)
		return
	}
	// The mux's own 404/405 handler: learn which, keep its Allow header.
	probe := &statusProbe{header: http.Header{}}
	h.ServeHTTP(probe, r)
	if probe.status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", probe.header.Get("Allow"))
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s is not allowed on %s", r.Method, r.URL.Path))
		return
	}
	if probe.status >= 300 && probe.status < 400 { // a path-cleaning redirect
		loc := probe.header.Get("Location")
		w.Header().Set("Location", loc)
		writeError(w, probe.status, "the resource is at "+loc)
		return
	}
	writeError(w, http.StatusNotFound, "Resource not found")
}

// redirectShaper answers a 3xx the mux writes (path cleaning) with a CCKM
// error body, dropping the mux's HTML. No handler of the API redirects.
type redirectShaper struct {
	http.ResponseWriter
	redirected bool
}

func (s *redirectShaper) WriteHeader(status int) {
	if status >= 300 && status < 400 && !s.redirected {
		s.redirected = true
		s.ResponseWriter.Header().Del("Content-Type")
		writeError(s.ResponseWriter, status, "the resource is at "+s.ResponseWriter.Header().Get("Location"))
		return
	}
	s.ResponseWriter.WriteHeader(status)
}

func (s *redirectShaper) Write(b []byte) (int, error) {
	if s.redirected {
		return len(b), nil
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (streaming).
func (s *redirectShaper) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// statusProbe is a ResponseWriter that only records the status and headers.
type statusProbe struct {
	header http.Header
	status int
}

func (p *statusProbe) Header() http.Header { return p.header }
func (p *statusProbe) Write(b []byte) (int, error) {
	if p.status == 0 {
		p.status = http.StatusOK
	}
	return len(b), nil
}
func (p *statusProbe) WriteHeader(status int) {
	if p.status == 0 {
		p.status = status
	}
}

// guard wraps a route's handler: it names the route for logs and metrics
// and, unless the route is public, authenticates the caller and checks
// the route's permission.
func (a *api) guard(rt route) http.Handler {
	name := rt.method + " " + rt.path
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := infoFrom(r.Context())
		if info != nil {
			info.route = name
		}
		if rt.perm == "" {
			rt.h(w, r)
			return
		}
		if rt.path == MetricsPath {
			if token, err := auth.FromRequest(r); err == nil && a.metricsToken(token) {
				if info != nil {
					info.user = metricsScraper
				}
				rt.h(w, r)
				return
			}
		}
		p, err := a.authenticate(r, rt.path == EventsPath)
		if err != nil {
			a.unauthorized(w, r, err)
			return
		}
		if info != nil {
			info.user = p.Username
		}
		if err := p.Require(rt.perm); err != nil {
			fail(w, r, err)
			return
		}
		rt.h(w, r.WithContext(auth.WithPrincipal(r.Context(), p)))
	})
}

// authenticate returns the caller of a request: the owner of its bearer
// token or, where ticketOK (the event stream only) and the request carries
// no Authorization header, of its ?ticket=, which is then used up.
func (a *api) authenticate(r *http.Request, ticketOK bool) (auth.Principal, error) {
	if ticketOK && a.d.Tickets != nil && r.Header.Get("Authorization") == "" && r.URL.Query().Has("ticket") {
		return a.d.Tickets.Redeem(r.Context(), r.URL.Query().Get("ticket"))
	}
	token, err := auth.FromRequest(r)
	if err != nil {
		return auth.Principal{}, err
	}
	return a.d.Auth.Verify(r.Context(), token)
}

// unauthorized answers 401 in CCKM's words for a token error.
func (a *api) unauthorized(w http.ResponseWriter, r *http.Request, err error) {
	if !errors.Is(err, auth.ErrInvalidToken) {
		// Verify failed for another reason (e.g. a cancelled context).
		fail(w, r, err)
		return
	}
	if info := infoFrom(r.Context()); info != nil {
		info.err = err
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="akvsync"`)
	writeError(w, http.StatusUnauthorized, auth.UnauthorizedMessage(err))
}

// username returns the authenticated caller's name, or "".
func username(r *http.Request) string {
	p, _ := auth.PrincipalFrom(r.Context())
	return p.Username
}
