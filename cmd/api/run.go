package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"

	"github.com/akvsync/akvsync/cmd/internal/cli"
	"github.com/akvsync/akvsync/internal/auth"
	"github.com/akvsync/akvsync/internal/azure"
	"github.com/akvsync/akvsync/internal/connections"
	"github.com/akvsync/akvsync/internal/control"
	"github.com/akvsync/akvsync/internal/discovery"
	"github.com/akvsync/akvsync/internal/eventgrid"
	"github.com/akvsync/akvsync/internal/httpapi"
	"github.com/akvsync/akvsync/internal/keyring"
	"github.com/akvsync/akvsync/internal/natsconn"
	"github.com/akvsync/akvsync/internal/schedule"
	"github.com/akvsync/akvsync/internal/secrets"
	"github.com/akvsync/akvsync/internal/store"
	"github.com/akvsync/akvsync/internal/telemetry"
	"github.com/akvsync/akvsync/internal/tlsconfig"
	"github.com/akvsync/akvsync/internal/worker"
	"github.com/akvsync/akvsync/pkg/events"
	akvsync "github.com/akvsync/akvsync/pkg/sync"
)

// options are the parsed flags.
type options struct {
	listen, dataDir                   string
	embedded, demo, demoExit          bool
	natsURL, natsListen, natsCreds    string
	natsUser, natsPassword            string
	natsTLSCert, natsTLSKey           string
	replicas                          int
	connections, manifest             string
	usersFile, adminPassword, jwtKeys string
	tokenLifetime, usersPoll          time.Duration
	sseMaxDuration                    time.Duration
	masterKeys, masterKeyFile         string
	tlsCert, tlsKey                   string
	tlsSelfSigned, insecureHTTP       bool
	logLevel                          string
	demoVaults, demoKeys, demoHSMs    int
	vaultParallelism, getConcurrency  int
	jobRetention                      time.Duration
	jobsKept                          int
	residentLimitMiB                  int
	vaultRate, subscriptionRate       float64
	metricsTokenFile, azurePrices     string
	allowPrivateEndpoints             bool
	oidcDiscovery, oidcIssuers        string
	oidcAudience, oidcRoleMap         string
	egSecretsFile, egDiscovery        string
	egIssuers, egAudience, egAppIDs   string
	egRate                            float64
	egBurst                           int
}

// endpointPolicy is the connections' endpoint policy: private addresses
// (loopback, link-local, metadata) only when the operator allows them
// with --allow-private-endpoints, or runs an emulator (--demo,
// --emulator-manifest), which listens on loopback.
func (o options) endpointPolicy() azure.EndpointPolicy {
	return azure.EndpointPolicy{AllowPrivate: o.allowPrivateEndpoints || o.demo || o.manifest != ""}
}

func parse(args []string, usage io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("api", flag.ContinueOnError)
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8080", "HTTP(S) listen address; plain HTTP only on loopback unless --insecure-http")
	fs.StringVar(&o.dataDir, "data-dir", "data", "directory for the embedded NATS store, the embedded worker's inventory and demo files")
	fs.BoolVar(&o.embedded, "embedded", false, "run NATS and a worker in this process")
	fs.BoolVar(&o.demo, "demo", false, "implies --embedded; add an emulator with seeded vaults and run a first sync-all job")
	fs.BoolVar(&o.demoExit, "demo-exit", false, "with --demo: exit once the first sync-all job is done (for scripts)")
	fs.IntVar(&o.demoVaults, "demo-vaults", 10, "with --demo: number of emulated vaults")
	fs.IntVar(&o.demoKeys, "demo-keys", 200, "with --demo: keys per emulated vault")
	fs.IntVar(&o.demoHSMs, "demo-hsms", 1, "with --demo: number of emulated Managed HSM pools (as many keys each as a vault)")
	fs.StringVar(&o.natsURL, "nats-url", "", "external NATS server URL(s); required unless --embedded")
	fs.StringVar(&o.natsListen, "nats-listen", "", "with --embedded: also serve NATS clients on this host:port (needs --nats-user/--nats-password)")
	fs.StringVar(&o.natsTLSCert, "nats-tls-cert", "", "with --nats-listen: TLS certificate file (PEM) of the embedded NATS server; required off loopback")
	fs.StringVar(&o.natsTLSKey, "nats-tls-key", "", "with --nats-listen: TLS private key file (PEM) of the embedded NATS server")
	fs.StringVar(&o.natsCreds, "nats-creds", "", "NATS credentials file")
	fs.StringVar(&o.natsUser, "nats-user", "", "NATS user name")
	fs.StringVar(&o.natsPassword, "nats-password", "", "NATS password (prefer AKVSYNC_NATS_PASSWORD)")
	fs.IntVar(&o.replicas, "replicas", events.DefaultReplicas, "JetStream replicas of streams and buckets (3 in a cluster)")
	fs.StringVar(&o.connections, "connections", "", "JSON file of Azure connections")
	fs.StringVar(&o.manifest, "emulator-manifest", "", "akv-emulator manifest: adds a connection named \"emulator\"")
	fs.BoolVar(&o.allowPrivateEndpoints, "allow-private-endpoints", false, "let connections and vaults name loopback, link-local, private or metadata addresses (emulators, tests); implied by --demo and --emulator-manifest")
	fs.StringVar(&o.oidcDiscovery, "oidc-discovery-url", "", "also accept Entra ID (OpenID Connect) access tokens: the provider's .well-known/openid-configuration URL")
	fs.StringVar(&o.oidcIssuers, "oidc-issuers", "", "with --oidc-discovery-url: accepted iss values, comma-separated (default: the discovery document's issuer)")
	fs.StringVar(&o.oidcAudience, "oidc-audience", "", "with --oidc-discovery-url: the aud the tokens must carry (the app's id URI)")
	fs.StringVar(&o.oidcRoleMap, "oidc-role-map", "", "with --oidc-discovery-url: app role or group to akvsync role, e.g. \"akvsync.admin=admin,<group id>=viewer\"")
	fs.StringVar(&o.egSecretsFile, "event-grid-secrets-file", "", "Event Grid webhook: file of \"<name> <secret>\" lines; a delivery carrying one in the "+eventgrid.SecretHeader+" header is accepted")
	fs.StringVar(&o.egDiscovery, "event-grid-discovery-url", "", "Event Grid webhook: accept Entra ID tokens (Event Grid's Microsoft Entra delivery authentication) from this provider's .well-known/openid-configuration URL")
	fs.StringVar(&o.egAudience, "event-grid-audience", "", "with --event-grid-discovery-url: the aud the tokens must carry (the Entra application id URI of the subscription)")
	fs.StringVar(&o.egIssuers, "event-grid-issuers", "", "with --event-grid-discovery-url: accepted iss values, comma-separated (default: the discovery document's issuer)")
	fs.StringVar(&o.egAppIDs, "event-grid-app-ids", eventGridAppID, "with --event-grid-discovery-url: accepted caller application ids (appid/azp), comma-separated; empty: any")
	fs.Float64Var(&o.egRate, "event-grid-rate", eventgrid.DefaultRate, "Event Grid webhook: events per second this process accepts (429 with Retry-After beyond)")
	fs.IntVar(&o.egBurst, "event-grid-burst", eventgrid.DefaultBurst, "Event Grid webhook: events accepted at once above the rate")
	fs.StringVar(&o.usersFile, "users-file", "", "users file (YAML or JSON, password hashes); see docs/security.md")
	fs.StringVar(&o.adminPassword, "admin-password", "", "bootstrap admin password (set AKVSYNC_ADMIN_PASSWORD instead of this flag)")
	fs.StringVar(&o.jwtKeys, "jwt-keys", "", "JWT key ring \"kid:base64,…\" (first signs) or @file; generated and kept in --data-dir when embedded")
	fs.StringVar(&o.masterKeys, "master-keys", "", "master key ring sealing connection secrets, \"kid:base64,…\" (first seals); set AKVSYNC_MASTER_KEYS instead of this flag; generated in --data-dir when embedded")
	fs.StringVar(&o.masterKeyFile, "master-key-file", "", "file holding the master key ring")
	fs.DurationVar(&o.usersPoll, "users-file-poll", auth.DefaultUsersFilePoll, "how often the users file is checked for changes (reloaded when its content changes; SIGHUP reloads at once)")
	fs.DurationVar(&o.tokenLifetime, "token-lifetime", auth.DefaultTokenLifetime, "access token lifetime")
	fs.DurationVar(&o.sseMaxDuration, "sse-max-duration", 0, "end each event stream after this long (clients resume where they were, on any replica); 0: never")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "TLS certificate file (PEM)")
	fs.StringVar(&o.tlsKey, "tls-key", "", "TLS private key file (PEM)")
	fs.BoolVar(&o.tlsSelfSigned, "tls-self-signed", false, "serve HTTPS with a generated self-signed certificate (written to <data-dir>/tls-cert.pem)")
	fs.BoolVar(&o.insecureHTTP, "insecure-http", false, "allow plain HTTP on a non-loopback address")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error (the demo's default is warn, to keep its screen readable)")
	fs.IntVar(&o.vaultParallelism, "vault-parallelism", akvsync.DefaultVaultParallelism, "embedded worker: vaults synced at once")
	fs.IntVar(&o.getConcurrency, "get-concurrency", akvsync.DefaultGetConcurrency, "embedded worker: GetKey calls in flight per vault")
	fs.DurationVar(&o.jobRetention, "job-retention", akvsync.DefaultJobRetention, "embedded worker: delete finished jobs this long after they finished")
	fs.IntVar(&o.jobsKept, "jobs-kept", akvsync.DefaultJobsKept, "embedded worker: keep at most this many finished jobs")
	fs.IntVar(&o.residentLimitMiB, "store-resident-limit-mib", store.DefaultResidentLimit>>20, "embedded worker: file-backed resident memory in MiB above which the inventory hands its mapped pages back to the page cache (negative: at every apply)")
	fs.Float64Var(&o.vaultRate, "vault-rate", akvsync.DefaultVaultRate, "embedded worker: Azure requests per second per vault")
	fs.Float64Var(&o.subscriptionRate, "subscription-rate", akvsync.DefaultSubscriptionRate, "embedded worker: Azure requests per second per subscription, shared with any other worker on this NATS (negative: unlimited)")
	fs.StringVar(&o.metricsTokenFile, "metrics-token-file", "", "file holding a static bearer token that may read /metrics (for Prometheus; a JWT works too)")
	fs.StringVar(&o.azurePrices, "azure-prices", "", "JSON file of Azure Key Vault prices per 10,000 operations for the jobs' cost estimate (see docs/operations.md)")
	if err := cli.ParseFlags(fs, args, usage); err != nil {
		return o, err
	}
	if o.demo {
		o.embedded = true
		setLevel := false
		fs.Visit(func(f *flag.Flag) { setLevel = setLevel || f.Name == "log-level" })
		if _, env := os.LookupEnv(cli.EnvName("log-level")); !setLevel && !env {
			o.logLevel = "warn"
		}
	}
	switch {
	case !o.embedded && o.natsURL == "":
		return o, errors.New("give --nats-url, or --embedded to run NATS in this process")
	case o.embedded && o.natsURL != "":
		return o, errors.New("--embedded and --nats-url are exclusive")
	case o.natsListen != "" && !o.embedded:
		return o, errors.New("--nats-listen needs --embedded")
	case o.natsListen != "" && (o.natsUser == "" || o.natsPassword == ""):
		return o, errors.New("--nats-listen needs --nats-user and --nats-password: the embedded server never listens without credentials")
	case (o.natsTLSCert == "") != (o.natsTLSKey == ""):
		return o, errors.New("--nats-tls-cert and --nats-tls-key go together")
	case o.natsTLSCert != "" && o.natsListen == "":
		return o, errors.New("--nats-tls-cert needs --nats-listen")
	case (o.tlsCert == "") != (o.tlsKey == ""):
		return o, errors.New("--tls-cert and --tls-key go together")
	case o.tlsCert != "" && o.tlsSelfSigned:
		return o, errors.New("--tls-cert and --tls-self-signed are exclusive")
	case (o.egDiscovery == "") != (o.egAudience == ""):
		return o, errors.New("--event-grid-discovery-url and --event-grid-audience go together")
	}
	if err := (eventgrid.Config{Rate: o.egRate, Burst: o.egBurst}).Validate(); err != nil {
		return o, fmt.Errorf("--event-grid-rate, --event-grid-burst: %w", err)
	}
	tlsOn := o.tlsCert != "" || o.tlsSelfSigned
	if err := tlsconfig.CheckListen(o.listen, tlsOn, o.insecureHTTP); err != nil {
		return o, err
	}
	// The embedded NATS server carries connection secrets and the task
	// stream: never in clear off loopback.
	if o.natsListen != "" {
		if err := tlsconfig.CheckListen(o.natsListen, o.natsTLSCert != "", false); err != nil {
			return o, fmt.Errorf("--nats-listen %s is not a loopback address: give --nats-tls-cert and --nats-tls-key (%w)", o.natsListen, err)
		}
	}
	return o, nil
}

func run(args []string, stdout io.Writer) error {
	return runContext(context.Background(), args, stdout)
}

// runContext is run, stopping also when parent is done (tests run a
// serving demo in-process and stop it that way).
func runContext(parent context.Context, args []string, stdout io.Writer) error {
	o, err := parse(args, stdout)
	if err != nil {
		return err
	}
	log, err := cli.NewLogger(os.Stderr, o.logLevel, false, "akvsync-api")
	if err != nil {
		return err
	}
	prices, err := events.LoadPrices(o.azurePrices)
	if err != nil {
		return err
	}
	metricsToken, err := telemetry.LoadMetricsToken(o.metricsTokenFile)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Take the API's port first: a port in use fails at once, and the port
	// stays ours while the process waits for a NATS cluster still forming
	// (connections wait in the backlog until the API serves).
	rawLn, err := net.Listen("tcp", o.listen)
	if err != nil {
		return err
	}
	defer func() { _ = rawLn.Close() }()
	if o.demo {
		if err := prepareDemoDir(o.dataDir); err != nil {
			return err
		}
	}
	// The data directory holds the embedded state and the self-signed
	// certificate; a plain distributed API writes nothing.
	if o.embedded || o.tlsSelfSigned {
		if err := os.MkdirAll(o.dataDir, 0o700); err != nil {
			return err
		}
	}

	// NATS: embedded or external.
	var ns *server.Server
	connect := func(name string, role events.Role) (*nats.Conn, error) {
		if ns != nil {
			// The embedded server's own user, when it has one.
			return natsconn.ConnectInProcess(ns, name, natsconn.Auth{User: o.natsUser, Password: o.natsPassword}.Options(role)...)
		}
		// Waits (and logs) while no NATS server answers yet.
		auth := natsconn.Auth{Creds: o.natsCreds, User: o.natsUser, Password: o.natsPassword}
		return natsconn.Connect(ctx, o.natsURL, name, log, auth.Options(role)...)
	}
	if o.embedded {
		ncfg := natsconn.EmbeddedConfig{DataDir: o.dataDir, Listen: o.natsListen, User: o.natsUser, Password: o.natsPassword}
		if o.natsTLSCert != "" {
			if ncfg.TLS, err = tlsconfig.ServerConfig(o.natsTLSCert, o.natsTLSKey); err != nil {
				return err
			}
		}
		ns, err = natsconn.StartEmbedded(ncfg)
		if err != nil {
			return err
		}
		defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	}
	nc, err := connect("akvsync-api", events.RoleAPI)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	topo := events.Topology{Replicas: o.replicas}
	if err := topo.Validate(); err != nil {
		return err
	}
	// A cluster still forming answers with errors for a while: wait for
	// it. The embedded server's in-process connection creates the
	// topology; an external NATS's API user may only bind to it, so the
	// API waits for the init step (worker --init-topology as the admin).
	ensure := func(ctx context.Context) error { return events.Require(ctx, js, events.RoleAPI) }
	if o.embedded {
		ensure = func(ctx context.Context) error { return topo.EnsureStreams(ctx, js) }
	}
	if err := worker.WaitForTopology(ctx, log, ensure); err != nil {
		return err
	}

	// Azure connections live in the registry, their secrets sealed with
	// the master key; configured ones are imported at start.
	embeddedDir := ""
	if o.embedded {
		embeddedDir = o.dataDir
	}
	ring, err := secrets.MasterKeyRing(o.masterKeys, o.masterKeyFile, embeddedDir)
	if err != nil {
		return err
	}
	sealer, err := secrets.NewSealer(ring)
	if err != nil {
		return err
	}
	defer sealer.Close()
	connReg, err := connections.New(ctx, js, sealer, connections.Config{Logger: log, Endpoints: o.endpointPolicy()})
	if err != nil {
		return err
	}
	// After a master key rotation (new key first in the ring), secrets
	// sealed under an older key are re-encrypted; harmless otherwise.
	if st, err := connReg.Reseal(ctx); err != nil {
		log.Error().Err(err).Int("failed", st.Failed).Msg("cannot reseal every connection secret under the current master key")
	} else if st.Resealed > 0 {
		log.Info().Int("resealed", st.Resealed).Str("master_key", sealer.CurrentKeyID()).Msg("connection secrets resealed under the current master key")
	}
	conns, err := connections.ConfiguredConnections(o.connections, o.manifest)
	if err != nil {
		return err
	}
	var demo *demoRun
	if o.demo {
		if demo, err = startDemo(ctx, o, log); err != nil {
			return err
		}
		defer demo.close()
		conns[demo.conn.Name] = demo.conn
	}
	for _, c := range conns {
		if err := connReg.Import(ctx, c); err != nil {
			return err
		}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// The embedded worker; its sync metrics are served on the API's /metrics.
	var w *worker.Worker
	workerFailed := make(<-chan struct{}) // never closed without a worker
	if o.embedded {
		wnc, err := connect("akvsync-worker", events.RoleWorker)
		if err != nil {
			return err
		}
		defer wnc.Close()
		host, _ := os.Hostname()
		w, err = worker.Start(ctx, wnc, worker.Config{
			Topology:           topo,
			StorePath:          filepath.Join(o.dataDir, "inventory.db"),
			StoreResidentLimit: int64(o.residentLimitMiB) << 20,
			Sync: akvsync.Config{Source: "akvsync/worker/" + host, VaultParallelism: o.vaultParallelism,
				GetConcurrency: o.getConcurrency, VaultRate: o.vaultRate, SubscriptionRate: o.subscriptionRate, Logger: log, Prices: prices},
			Janitor:     akvsync.JanitorConfig{JobRetention: o.jobRetention, JobsKept: o.jobsKept},
			Connections: connections.Chain{Registry: connReg},
			Logger:      log,
			Registry:    reg,
		})
		if err != nil {
			return err
		}
		workerFailed = w.Failed()
		defer func() {
			if err := w.Close(); err != nil {
				log.Warn().Err(err).Msg("worker stopped with an error")
			}
		}()
	}

	// Control plane, auth, HTTP.
	host, _ := os.Hostname()
	plane, err := control.New(ctx, nc, js, control.Config{LookupConnection: control.RegistryLookup(connReg), Source: "akvsync/api/" + host,
		Endpoints: o.endpointPolicy(),
		// A job's record must fit one NATS message of this server's size.
		MaxJobVaults: 0})
	if err != nil {
		return err
	}
	authSvc, adminPassword, closeAuth, err := newAuth(ctx, o, js, log)
	if err != nil {
		return err
	}
	defer closeAuth()
	// Users: SIGHUP and a change of the users file reload them, ending
	// the sessions of removed, disabled or changed users.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go reloadUsersOn(ctx, hup, authSvc)
	go authSvc.WatchUsersFile(ctx, o.usersPoll)
	deps := httpapi.DepsFromPlane(plane, authSvc, log, reg)
	deps.Connections = connReg
	// The scheduler: every API process serves the job-config routes and
	// shares the durable consumer of the schedule fires, so each tick
	// starts one job however many API processes run (internal/schedule).
	sched, err := schedule.New(ctx, js, plane.Jobs, schedule.Config{Source: "akvsync/api/" + host,
		ClaimLease: topo.WithDefaults().ScheduleAckWait, Log: log})
	if err != nil {
		return err
	}
	deps.Scheduler = sched
	// The init step creates the fires' durable consumer; the embedded
	// server's in-process connection creates it here.
	bindSchedules := topo.BindConsumer
	if o.embedded {
		bindSchedules = topo.EnsureConsumer
	}
	var schedCons jetstream.Consumer
	if err := worker.WaitForTopology(ctx, log, func(ctx context.Context) (err error) {
		schedCons, err = bindSchedules(ctx, js, events.StreamSchedules)
		return err
	}); err != nil {
		return err
	}
	go func() {
		for ctx.Err() == nil {
			if err := sched.Run(ctx, schedCons); err != nil {
				log.Warn().Err(err).Msg("the scheduler stopped; restarting it")
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}()
	if deps.EventGridWebhook, err = eventGridWebhook(ctx, o, demo); err != nil {
		return err
	}
	deps.MetricsToken = metricsToken
	deps.Prices = prices
	// Discovery (get-subscriptions, get-vaults, get-managed-hsms) reads the
	// registry's connections and calls Azure Resource Manager.
	disco, err := discovery.New(ctx, js, connReg, discovery.Config{Logger: log})
	if err != nil {
		return err
	}
	deps.Discovery = disco
	// The dashboard's event-stream tickets, shared by every API replica.
	ticketKV, err := events.Bucket(ctx, js, events.BucketTickets)
	if err != nil {
		return err
	}
	if deps.Tickets, err = auth.NewTicketStore(ticketKV, auth.DefaultTicketTTL, nil); err != nil {
		return err
	}
	hcfg := httpapi.Config{SSEMaxDuration: o.sseMaxDuration}
	handler, err := httpapi.New(hcfg, deps)
	if err != nil {
		return err
	}
	srv := httpapi.NewServer(hcfg, handler)
	scheme := "http"
	var certFile string
	switch {
	case o.tlsCert != "":
		if srv.TLSConfig, err = tlsconfig.ServerConfig(o.tlsCert, o.tlsKey); err != nil {
			return err
		}
		scheme = "https"
	case o.tlsSelfSigned:
		host, _, _ := net.SplitHostPort(o.listen)
		var pem []byte
		if srv.TLSConfig, pem, err = tlsconfig.SelfSigned([]string{host}); err != nil {
			return err
		}
		certFile = filepath.Join(o.dataDir, "tls-cert.pem")
		if err := tlsconfig.WriteCertPEM(certFile, pem); err != nil {
			return err
		}
		scheme = "https"
	}
	ln := rawLn
	if srv.TLSConfig != nil {
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	apiURL := scheme + "://" + ln.Addr().String()
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info().Str("url", apiURL).Bool("embedded", o.embedded).Msg("API listening")

	if demo != nil {
		if err := demo.run(ctx, stdout, plane, authSvc, apiURL, certFile, adminPassword); err != nil {
			_ = srv.Close()
			return err
		}
		if o.demoExit {
			stop()
		}
	}
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	case <-workerFailed:
		log.Error().Err(w.Err()).Msg("the embedded worker failed; exiting so the process is restarted")
		_ = srv.Close()
		return w.Err()
	}
	log.Info().Msg("stopping")
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// newAuth builds the token service. Signing keys come from --jwt-keys; an
// embedded process without them generates a key ring once and keeps it in
// the data directory. In demo mode without any user, an admin password is
// generated and returned so it can be printed once.
func newAuth(ctx context.Context, o options, js jetstream.JetStream, log zerolog.Logger) (*auth.Service, string, func(), error) {
	var kid string
	var keys map[string][]byte
	var err error
	switch {
	case strings.HasPrefix(o.jwtKeys, "@"):
		kid, keys, err = auth.LoadKeyRingFile(strings.TrimPrefix(o.jwtKeys, "@"))
	case o.jwtKeys != "":
		kid, keys, err = auth.ParseKeyRing(o.jwtKeys)
	case o.embedded:
		kid, keys, err = embeddedKeyRing(filepath.Join(o.dataDir, "jwt-keys"))
	default:
		err = errors.New("give --jwt-keys (or AKVSYNC_JWT_KEYS): every API process must share the signing keys")
	}
	if err != nil {
		return nil, "", nil, err
	}
	adminPassword := o.adminPassword
	generated := ""
	if adminPassword == "" && o.usersFile == "" {
		if !o.demo {
			return nil, "", nil, errors.New("no users: give --users-file or set AKVSYNC_ADMIN_PASSWORD")
		}
		if adminPassword, err = auth.GeneratePassword(); err != nil {
			return nil, "", nil, err
		}
		generated = adminPassword
	}
	kv, err := events.Bucket(ctx, js, events.BucketRefreshTokens)
	if err != nil {
		return nil, "", nil, err
	}
	// The access-token denylist every API replica watches.
	dkv, err := events.Bucket(ctx, js, events.BucketRevokedTokens)
	if err != nil {
		return nil, "", nil, err
	}
	revoked, err := auth.NewKVRevocations(ctx, dkv, nil, log)
	if err != nil {
		return nil, "", nil, err
	}
	oidc, err := oidcVerifier(ctx, o)
	if err != nil {
		revoked.Close()
		return nil, "", nil, err
	}
	svc, err := auth.NewService(auth.Config{
		TokenLifetime: o.tokenLifetime, SigningKeyID: kid, Keys: keys, UsersFile: o.usersFile,
		BootstrapAdminUsername: auth.DefaultBootstrapAdminUsername, BootstrapAdminPassword: adminPassword,
		Revocations: revoked, OIDC: oidc,
	}, auth.NewKVRefreshStore(kv), log)
	if err != nil {
		revoked.Close()
		return nil, "", nil, err
	}
	return svc, generated, revoked.Close, nil
}

// oidcVerifier builds the Entra ID (OIDC) verifier the flags ask for, or
// nil.
func oidcVerifier(ctx context.Context, o options) (*auth.OIDCVerifier, error) {
	if o.oidcDiscovery == "" {
		return nil, nil
	}
	roles := map[string]auth.Role{}
	for _, pair := range strings.Split(o.oidcRoleMap, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--oidc-role-map: %q is not <role or group>=<admin|operator|viewer>", pair)
		}
		roles[k] = auth.Role(v)
	}
	return auth.NewOIDCVerifier(ctx, auth.OIDCConfig{DiscoveryURL: o.oidcDiscovery, Issuers: splitList(o.oidcIssuers), Audience: o.oidcAudience, RoleMap: roles})
}

// eventGridAppID is the application id of Azure Event Grid's own Entra
// identity, the caller of its Microsoft Entra authenticated deliveries.
const eventGridAppID = "4962773b-9cdb-44cf-a8bf-237846a00ab7"

// eventGridWebhook builds the Event Grid webhook's authentication and
// rate limit from the flags (and the demo's own secret). Without a secret
// or an identity provider every delivery is refused.
func eventGridWebhook(ctx context.Context, o options, demo *demoRun) (*eventgrid.Webhook, error) {
	cfg := eventgrid.Config{Rate: o.egRate, Burst: o.egBurst}
	if o.egSecretsFile != "" {
		f, err := os.Open(o.egSecretsFile)
		if err != nil {
			return nil, fmt.Errorf("--event-grid-secrets-file: %w", err)
		}
		defer func() { _ = f.Close() }()
		if cfg.Secrets, err = eventgrid.ParseSecrets(f); err != nil {
			return nil, fmt.Errorf("--event-grid-secrets-file: %w", err)
		}
	}
	if demo != nil {
		cfg.Secrets = append(cfg.Secrets, demo.webhookSecret)
	}
	if o.egDiscovery != "" {
		v, err := auth.NewOIDCVerifier(ctx, auth.OIDCConfig{DiscoveryURL: o.egDiscovery, Issuers: splitList(o.egIssuers),
			Audience: o.egAudience, AppIDs: splitList(o.egAppIDs), IdentityOnly: true})
		if err != nil {
			return nil, fmt.Errorf("event grid: %w", err)
		}
		cfg.Tokens = v
	}
	return eventgrid.New(cfg)
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// reloadUsersOn reloads the users of svc at each signal on sig until ctx
// ends.
func reloadUsersOn(ctx context.Context, sig <-chan os.Signal, svc *auth.Service) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-sig:
			_ = svc.ReloadUsers(ctx) // logged; the previous users stay on error
		}
	}
}

// embeddedKeyRing loads the key ring kept at path, creating it (0600) on
// first start.
func embeddedKeyRing(path string) (string, map[string][]byte, error) {
	if err := keyring.Ensure(path, "k"+time.Now().UTC().Format("20060102"), auth.MinKeyBytes); err != nil {
		return "", nil, err
	}
	return auth.LoadKeyRingFile(path)
}
