package akvemu

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/time/rate"
)

// Host suffixes of vaults and managed HSM pools in host-routing mode.
const (
	hostRoutingSuffix    = ".vault.localhost"
	hsmHostRoutingSuffix = ".managedhsm.localhost"
)

type vaultCtxKey struct{}

// Emulator is a running Azure Key Vault + Entra ID emulator: many vaults, each on its
// own HTTPS listener, a token endpoint, an optional host-routing listener and an
// admin API. Create it with Start and release it with Close.
type Emulator struct {
	cfg Config
	log zerolog.Logger

	ca     *certAuthority
	srvTLS *tls.Config
	tokens *tokenService

	vaultSrv *http.Server // serves every vault listener and the host-routing listener
	authSrv  *http.Server
	armSrv   *http.Server
	adminSrv *http.Server

	authority        string // https://127.0.0.1:PORT
	armURL           string // https://127.0.0.1:PORT (Azure Resource Manager)
	adminURL         string
	hostPort         int
	hostResource     string // https://vault.localhost:PORT
	hsmHostResource  string // https://managedhsm.localhost:PORT
	challenge        []string
	hsmChallenge     []string
	hostChallenge    []string
	hsmHostChallenge []string
	regionHdr        []string

	arm    *armState
	events *eventHub

	clientID     string
	clientSecret string
	caFile       string
	tmpDir       string

	transport *http.Transport

	mu        sync.RWMutex
	vaults    map[string]*Vault // by lower-case name
	vaultList []*Vault          // creation order
	byPort    map[int]*Vault
	subs      map[string]*rate.Limiter

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
	wg        sync.WaitGroup
}

// Start validates cfg, creates the CA, the token endpoint, the admin API and every
// configured and generated vault, and serves them until Close (or until ctx is done).
func Start(ctx context.Context, cfg Config) (*Emulator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	begin := time.Now()
	if _, err := sharedPool(); err != nil {
		return nil, fmt.Errorf("key material: %w", err)
	}
	e := &Emulator{
		cfg: cfg, log: cfg.Logger,
		vaults: map[string]*Vault{}, byPort: map[int]*Vault{}, subs: map[string]*rate.Limiter{},
		regionHdr: []string{cfg.Region},
	}
	e.arm = newARMState(e)
	ok := false
	defer func() {
		if !ok {
			_ = e.Close()
		}
	}()
	seedStr := strconv.FormatInt(cfg.Seed.Seed, 10)
	tenant := cfg.TenantID
	if tenant == "" {
		tenant = derivedUUID("tenant", seedStr)
	}
	e.clientID = cfg.ClientID
	if e.clientID == "" {
		e.clientID = derivedUUID("client", seedStr)
	}
	e.clientSecret = cfg.ClientSecret
	if e.clientSecret == "" {
		raw := make([]byte, 30)
		if _, err := rand.Read(raw); err != nil {
			return nil, fmt.Errorf("generate client secret: %w", err)
		}
		e.clientSecret = "emu8Q~" + base64.RawURLEncoding.EncodeToString(raw)
	}

	var err error
	if e.ca, err = newCertAuthority(net.ParseIP(cfg.ListenHost)); err != nil {
		return nil, err
	}
	e.srvTLS = e.ca.serverConfig()
	if err := e.writeCAFile(); err != nil {
		return nil, err
	}
	if e.tokens, err = newTokenService(tenant, cfg.TokenLifetime); err != nil {
		return nil, err
	}
	if err := e.tokens.addPrincipal(Principal{ClientID: e.clientID, ClientSecret: e.clientSecret}); err != nil {
		return nil, err
	}
	for _, p := range cfg.Principals {
		if err := e.tokens.addPrincipal(p); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
	}
	for _, aud := range cfg.Audiences {
		e.tokens.addAudience(strings.TrimSuffix(aud, "/"))
	}
	e.events = newEventHub(e, cfg.EventDelivery)

	errLog := log.New(zerologWriter{e.log}, "", 0)
	e.vaultSrv = &http.Server{
		Handler:           http.HandlerFunc(e.serveVaults),
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ConnContext:       e.connContext,
		ConnState:         e.connState,
		TLSNextProto:      map[string]func(*http.Server, *tls.Conn, http.Handler){},
		ErrorLog:          errLog,
	}

	// Entra ID token endpoint.
	authLn, err := net.Listen("tcp", net.JoinHostPort(cfg.ListenHost, "0"))
	if err != nil {
		return nil, fmt.Errorf("listen token endpoint: %w", err)
	}
	e.authority = "https://" + authLn.Addr().String()
	e.tokens.authority = e.authority
	e.authSrv = &http.Server{Handler: e.tokens.handler(), ReadHeaderTimeout: 30 * time.Second, ErrorLog: errLog,
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){}}
	e.serve(e.authSrv, tls.NewListener(authLn, e.srvTLS))
	e.challenge = []string{`Bearer authorization="` + e.authority + "/" + tenant + `", resource="` + VaultAudience + `"`}
	e.hsmChallenge = []string{`Bearer authorization="` + e.authority + "/" + tenant + `", resource="` + ManagedHSMAudience + `"`}

	// Azure Resource Manager.
	armLn, err := net.Listen("tcp", net.JoinHostPort(cfg.ListenHost, "0"))
	if err != nil {
		return nil, fmt.Errorf("listen resource manager: %w", err)
	}
	e.armURL = "https://" + armLn.Addr().String()
	e.armSrv = &http.Server{Handler: e.arm, ReadHeaderTimeout: 30 * time.Second, ErrorLog: errLog,
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){}}
	e.serve(e.armSrv, tls.NewListener(armLn, e.srvTLS))

	// Host-routing listener.
	if cfg.HostRouting {
		hl, err := net.Listen("tcp", net.JoinHostPort(cfg.ListenHost, "0"))
		if err != nil {
			return nil, fmt.Errorf("listen host routing: %w", err)
		}
		e.hostPort = hl.Addr().(*net.TCPAddr).Port
		e.hostResource = "https://vault.localhost:" + strconv.Itoa(e.hostPort)
		e.tokens.addAudience(e.hostResource)
		e.hostChallenge = []string{`Bearer authorization="` + e.authority + "/" + tenant + `", resource="` + e.hostResource + `"`}
		e.hsmHostResource = "https://managedhsm.localhost:" + strconv.Itoa(e.hostPort)
		e.tokens.addAudience(e.hsmHostResource)
		e.hsmHostChallenge = []string{`Bearer authorization="` + e.authority + "/" + tenant + `", resource="` + e.hsmHostResource + `"`}
		e.serve(e.vaultSrv, tls.NewListener(hl, e.srvTLS))
	}

	// Admin API.
	if !cfg.DisableAdmin {
		al, err := net.Listen("tcp", cfg.AdminListen)
		if err != nil {
			return nil, fmt.Errorf("listen admin API: %w", err)
		}
		e.adminURL = "http://" + al.Addr().String()
		e.adminSrv = &http.Server{Handler: e.adminHandler(), ReadHeaderTimeout: 30 * time.Second, ErrorLog: errLog}
		e.serve(e.adminSrv, al)
	}

	e.transport = e.newTransport()

	specs, err := generatedVaults(cfg)
	if err != nil {
		return nil, err
	}
	specs = append(specs, cfg.Vaults...)
	keys := 0
	for _, s := range specs {
		v, err := e.addVault(s)
		if err != nil {
			return nil, fmt.Errorf("vault %q: %w", s.Name, err)
		}
		keys += v.Len()
	}
	// Seeding emits nothing: subscriptions start after the vaults. A failed handshake
	// leaves its subscription Failed (logged) without failing the start.
	for _, es := range cfg.EventSubscriptions {
		if err := e.AddEventSubscription(ctx, es); err != nil {
			e.log.Error().Err(err).Str("event_subscription", es.Name).Msg("event subscription not validated")
		}
	}
	context.AfterFunc(ctx, func() { _ = e.Close() })
	ok = true
	e.log.Info().Int("vaults", len(specs)).Int("keys", keys).Str("authority", e.authority).
		Str("admin_url", e.adminURL).Str("ca_file", e.caFile).Dur("startup", time.Since(begin)).Msg("akv emulator started")
	return e, nil
}

// serve runs srv on ln in a tracked goroutine.
func (e *Emulator) serve(srv *http.Server, ln net.Listener) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			e.log.Debug().Err(err).Msg("listener stopped")
		}
	}()
}

func (e *Emulator) writeCAFile() error {
	dir := e.cfg.DataDir
	if dir == "" && e.cfg.CAFile == "" {
		d, err := os.MkdirTemp("", "akvemu-")
		if err != nil {
			return fmt.Errorf("create data dir: %w", err)
		}
		e.tmpDir, dir = d, d
	}
	e.caFile = e.cfg.CAFile
	if e.caFile == "" {
		e.caFile = filepath.Join(dir, "ca.pem")
	}
	if err := os.MkdirAll(filepath.Dir(e.caFile), 0o750); err != nil {
		return fmt.Errorf("create CA directory: %w", err)
	}
	if err := os.WriteFile(e.caFile, e.ca.caPEM, 0o644); err != nil { // #nosec G306 -- a CA certificate is public; clients read it
		return fmt.Errorf("write CA file: %w", err)
	}
	return nil
}

// Close stops every listener and connection and removes the temporary data directory.
func (e *Emulator) Close() error {
	e.closeOnce.Do(func() {
		e.closed.Store(true)
		e.events.close()
		var errs []error
		for _, srv := range []*http.Server{e.vaultSrv, e.authSrv, e.armSrv, e.adminSrv} {
			if srv != nil {
				if err := srv.Close(); err != nil {
					errs = append(errs, err)
				}
			}
		}
		e.mu.Lock()
		for _, v := range e.vaultList {
			v.stop()
		}
		e.mu.Unlock()
		e.wg.Wait()
		if e.transport != nil {
			e.transport.CloseIdleConnections()
		}
		if e.tmpDir != "" {
			if err := os.RemoveAll(e.tmpDir); err != nil {
				errs = append(errs, fmt.Errorf("remove data dir: %w", err))
			}
		}
		e.closeErr = errors.Join(errs...)
		e.log.Info().Msg("akv emulator stopped")
	})
	return e.closeErr
}

// connContext tags connections accepted on a vault's own listener with the vault.
func (e *Emulator) connContext(ctx context.Context, c net.Conn) context.Context {
	if v := e.vaultByConn(c); v != nil {
		return context.WithValue(ctx, vaultCtxKey{}, v)
	}
	return ctx
}

func (e *Emulator) vaultByConn(c net.Conn) *Vault {
	a, ok := c.LocalAddr().(*net.TCPAddr)
	if !ok {
		return nil
	}
	e.mu.RLock()
	v := e.byPort[a.Port]
	e.mu.RUnlock()
	return v
}

// connState tracks open connections per vault so that an unreachable vault can
// drop them.
func (e *Emulator) connState(c net.Conn, s http.ConnState) {
	switch s {
	case http.StateNew:
		if v := e.vaultByConn(c); v != nil {
			v.lnMu.Lock()
			if v.ln == nil {
				v.lnMu.Unlock()
				resetConn(c)
				return
			}
			v.conns[c] = struct{}{}
			v.lnMu.Unlock()
		}
	case http.StateClosed, http.StateHijacked:
		if v := e.vaultByConn(c); v != nil {
			v.lnMu.Lock()
			delete(v.conns, c)
			v.lnMu.Unlock()
		}
	}
}

// serveVaults routes a data-plane request to its vault: by listener, or by host
// name on the host-routing listener.
func (e *Emulator) serveVaults(w http.ResponseWriter, r *http.Request) {
	if v, ok := r.Context().Value(vaultCtxKey{}).(*Vault); ok {
		v.serveHTTP(w, r, v.url, false)
		return
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = lower(host)
	kind := KindVault
	name, ok := strings.CutSuffix(host, hostRoutingSuffix)
	if !ok {
		name, ok = strings.CutSuffix(host, hsmHostRoutingSuffix)
		kind = KindManagedHSM
	}
	if ok {
		e.mu.RLock()
		v := e.vaults[name]
		e.mu.RUnlock()
		if v != nil && v.kind == kind {
			v.serveHTTP(w, r, v.hostURL, true)
			return
		}
	}
	writeServiceError(w, &serviceError{http.StatusNotFound, CodeNotFound, "No vault is served at host '" + r.Host + "'.", "VaultNotFound"})
}

// AddVault creates a vault (with its generated and explicit keys) and starts its listener.
func (e *Emulator) AddVault(ctx context.Context, spec VaultSpec) (ManifestVault, error) {
	if err := ctx.Err(); err != nil {
		return ManifestVault{}, fmt.Errorf("add vault: %w", err)
	}
	if err := spec.Validate(); err != nil {
		return ManifestVault{}, fmt.Errorf("add vault: %w", err)
	}
	v, err := e.addVault(spec)
	if err != nil {
		return ManifestVault{}, fmt.Errorf("add vault: %w", err)
	}
	return v.manifestEntry(), nil
}

func (e *Emulator) addVault(spec VaultSpec) (*Vault, error) {
	if e.closed.Load() {
		return nil, ErrClosed
	}
	if spec.SubscriptionID == "" {
		spec.SubscriptionID = derivedUUID("subscription", strconv.FormatInt(e.cfg.Seed.Seed, 10)+"/0")
	}
	ln := lower(spec.Name)
	e.mu.Lock()
	if e.vaults[ln] != nil {
		e.mu.Unlock()
		return nil, fmt.Errorf("%w: %s", ErrVaultExists, spec.Name)
	}
	e.vaults[ln] = nil // reserve the name
	e.mu.Unlock()
	release := func() {
		e.mu.Lock()
		delete(e.vaults, ln)
		e.mu.Unlock()
	}

	v := newVault(e, spec)
	if v.kind == KindVault {
		// Managed HSM pools are not subject to Key Vault's subscription limit.
		v.subLim = e.subscriptionLimiter(v.subID)
	}
	faults := e.cfg.DefaultFaults
	if spec.Faults != nil {
		faults = *spec.Faults
	}
	v.faults.Store(e.faultState(v, faults, nil))
	v.throttleNext.Store(int64(faults.ThrottleNext))
	for _, r := range spec.Access {
		if err := v.SetAccess(r.Principal, r.Deny...); err != nil {
			release()
			return nil, err
		}
	}
	if err := seedVaultKeys(v, spec.Keys, e.cfg.Seed); err != nil {
		release()
		return nil, err
	}
	for _, ks := range spec.KeySpecs {
		if _, err := v.createKey(ks.Name, ks.KeySpec, v.now()); err != nil {
			release()
			return nil, fmt.Errorf("key %q: %w", ks.Name, err)
		}
	}

	if e.cfg.HostRouting {
		suffix := hostRoutingSuffix
		if v.kind == KindManagedHSM {
			suffix = hsmHostRoutingSuffix
		}
		v.hostURL = "https://" + v.lname + suffix + ":" + strconv.Itoa(e.hostPort)
	}
	var l net.Listener
	port := 0
	if e.cfg.HostRoutingOnly {
		v.url = v.hostURL
	} else {
		var err error
		if l, err = net.Listen("tcp", net.JoinHostPort(e.cfg.ListenHost, "0")); err != nil {
			release()
			return nil, fmt.Errorf("listen: %w", err)
		}
		port = l.Addr().(*net.TCPAddr).Port
		v.url = "https://" + l.Addr().String()
		v.addr = l.Addr().String()
		v.ln = l
	}

	e.mu.Lock()
	if e.closed.Load() {
		e.mu.Unlock()
		if l != nil {
			_ = l.Close()
		}
		release()
		return nil, ErrClosed
	}
	e.vaults[ln] = v
	e.vaultList = append(e.vaultList, v)
	if l != nil {
		e.byPort[port] = v
	}
	e.arm.add(v)
	e.mu.Unlock()
	if l != nil {
		e.serve(e.vaultSrv, tls.NewListener(l, e.srvTLS))
	}
	if faults.Unreachable {
		v.setReachable(false)
	}
	e.events.expiry.vaultAdded(v)
	e.log.Debug().Str("vault", v.name).Str("url", v.url).Int("keys", v.Len()).Msg("vault added")
	return v, nil
}

// RemoveVault stops a vault's listener and forgets it.
func (e *Emulator) RemoveVault(name string) error {
	e.mu.Lock()
	v := e.vaults[lower(name)]
	if v == nil {
		e.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrVaultNotFound, name)
	}
	delete(e.vaults, v.lname)
	e.vaultList = slices.DeleteFunc(e.vaultList, func(x *Vault) bool { return x == v })
	for p, x := range e.byPort {
		if x == v {
			delete(e.byPort, p)
		}
	}
	e.arm.remove(v)
	e.mu.Unlock()
	v.stop()
	return nil
}

// Vault returns a vault by name (case-insensitive).
func (e *Emulator) Vault(name string) (*Vault, bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	v := e.vaults[lower(name)]
	return v, v != nil
}

// Vaults returns every vault in creation order.
func (e *Emulator) Vaults() []*Vault {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return slices.Clone(e.vaultList)
}

func (e *Emulator) vault(name string) (*Vault, error) {
	v, ok := e.Vault(name)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrVaultNotFound, name)
	}
	return v, nil
}

func (e *Emulator) subscriptionLimiter(sub string) *rate.Limiter {
	if e.cfg.DisableThrottling || e.cfg.SubscriptionLimitFactor <= 0 {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	l := e.subs[sub]
	if l == nil {
		perWindow := e.cfg.SubscriptionLimitFactor * DefaultSoftwareVaultLimit
		if e.cfg.SubscriptionLimit > 0 {
			perWindow = e.cfg.SubscriptionLimit
		}
		l = newLimiter(perWindow)
		if e.cfg.SubscriptionBurst > 0 {
			l = rate.NewLimiter(l.Limit(), e.cfg.SubscriptionBurst)
		}
		e.subs[sub] = l
	}
	return l
}

// faultState derives the effective limits for a vault's faults, keeping the
// existing bucket when the limit is unchanged.
func (e *Emulator) faultState(v *Vault, f Faults, prev *faultState) *faultState {
	limit := f.ThrottleLimit
	switch {
	case limit < 0:
		limit = 0
	case limit == 0 && e.cfg.DisableThrottling:
		limit = 0
	case limit == 0 && v.kind == KindManagedHSM:
		limit = DefaultManagedHSMLimit
	case limit == 0 && v.sku == SKUPremium:
		limit = DefaultHSMVaultLimit
	case limit == 0:
		limit = DefaultSoftwareVaultLimit
	}
	fs := &faultState{f: f, limit: limit}
	if prev != nil && prev.limit == limit {
		fs.limiter = prev.limiter
	} else {
		fs.limiter = newLimiter(limit)
	}
	return fs
}

// SetFaults replaces a vault's faults at run time.
func (e *Emulator) SetFaults(vault string, f Faults) error {
	v, err := e.vault(vault)
	if err != nil {
		return err
	}
	return v.SetFaults(f)
}

// SetFaults replaces the vault's faults at run time.
func (v *Vault) SetFaults(f Faults) error {
	if err := f.Validate(); err != nil {
		return fmt.Errorf("set faults: %w", err)
	}
	prev := v.faults.Load()
	v.faults.Store(v.e.faultState(v, f, prev))
	v.throttleNext.Store(int64(f.ThrottleNext))
	if prev.f.Unreachable != f.Unreachable {
		if !v.setReachable(!f.Unreachable) && !f.Unreachable {
			return fmt.Errorf("set faults: reopen listener %s: %w", v.addr, ErrClosed)
		}
	}
	v.e.log.Info().Str("vault", v.name).Interface("faults", f).Msg("faults changed")
	return nil
}

// setReachable closes (false) or reopens (true) the vault's listener.
func (v *Vault) setReachable(reachable bool) bool {
	v.lnMu.Lock()
	defer v.lnMu.Unlock()
	if v.stopped {
		return false
	}
	if !reachable {
		if v.ln != nil {
			_ = v.ln.Close()
			v.ln = nil
		}
		for c := range v.conns {
			resetConn(c)
			delete(v.conns, c)
		}
		return true
	}
	if v.ln != nil || v.addr == "" { // open, or served by the host-routing listener only
		return true
	}
	l, err := net.Listen("tcp", v.addr)
	if err != nil {
		v.e.log.Warn().Err(err).Str("vault", v.name).Msg("cannot reopen vault listener")
		return false
	}
	v.ln = l
	v.e.serve(v.e.vaultSrv, tls.NewListener(l, v.e.srvTLS))
	return true
}

// stop closes the vault's listener and connections for good.
func (v *Vault) stop() {
	v.setReachable(false)
	v.lnMu.Lock()
	v.stopped = true
	v.lnMu.Unlock()
}

// Counters returns a vault's request counters (zero Counters for an unknown vault).
func (e *Emulator) Counters(vault string) Counters {
	v, ok := e.Vault(vault)
	if !ok {
		return Counters{Vault: vault}
	}
	return v.Counters()
}

// ResetCounters zeroes a vault's request counters; an empty name resets every vault.
func (e *Emulator) ResetCounters(vault string) error {
	if vault == "" {
		for _, v := range e.Vaults() {
			v.ResetCounters()
		}
		return nil
	}
	v, err := e.vault(vault)
	if err != nil {
		return err
	}
	v.ResetCounters()
	return nil
}

// SetAccess denies permissions on a vault to a principal; no permissions clears the rule.
func (e *Emulator) SetAccess(vault, principal string, deny ...Permission) error {
	v, err := e.vault(vault)
	if err != nil {
		return err
	}
	return v.SetAccess(principal, deny...)
}

// AddPrincipal registers an application (client secret and/or certificates).
func (e *Emulator) AddPrincipal(p Principal) error {
	if p.ClientID == "" {
		return fmt.Errorf("%w: principal without client id", ErrBadParameter)
	}
	return e.tokens.addPrincipal(p)
}

// TokenStats returns how many tokens were issued and refused.
func (e *Emulator) TokenStats() TokenStats { return e.tokens.stats() }

// TenantID returns the emulated tenant.
func (e *Emulator) TenantID() string { return e.tokens.tenant }

// ClientID returns the default principal's client id.
func (e *Emulator) ClientID() string { return e.clientID }

// ClientSecret returns the default principal's client secret.
func (e *Emulator) ClientSecret() string { return e.clientSecret }

// AuthorityHost returns the Entra ID authority host URL (with a trailing slash, like
// cloud.Configuration.ActiveDirectoryAuthorityHost).
func (e *Emulator) AuthorityHost() string { return e.authority + "/" }

// AdminURL returns the admin API base URL ("" when disabled).
func (e *Emulator) AdminURL() string { return e.adminURL }

// CACertPEM returns the emulator CA certificate.
func (e *Emulator) CACertPEM() []byte { return slices.Clone(e.ca.caPEM) }

// CAFile returns the path of the CA certificate file.
func (e *Emulator) CAFile() string { return e.caFile }

// HostRoutingResource returns the challenge resource of the host-routing listener
// ("" when host routing is off).
func (e *Emulator) HostRoutingResource() string { return e.hostResource }

// HSMHostRoutingResource returns the challenge resource of managed HSM pools on the
// host-routing listener, https://managedhsm.localhost:PORT ("" when host routing is off).
func (e *Emulator) HSMHostRoutingResource() string { return e.hsmHostResource }

// ResourceManagerURL returns the Azure Resource Manager endpoint
// (https://127.0.0.1:PORT/, with a trailing slash like
// cloud.AzurePublic.Services[cloud.ResourceManager].Endpoint).
func (e *Emulator) ResourceManagerURL() string { return e.armURL + "/" }

// zerologWriter adapts net/http's error log to zerolog at debug level.
type zerologWriter struct{ l zerolog.Logger }

// Write logs one net/http error line.
func (z zerologWriter) Write(p []byte) (int, error) {
	z.l.Debug().Msg(strings.TrimSpace(string(p)))
	return len(p), nil
}
