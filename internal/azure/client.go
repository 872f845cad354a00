package azure

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	akvsync "github.com/akvsync/akvsync/pkg/sync"
)

// Defaults of [Config]: azcore's own retry defaults, and a connection pool
// large enough for the syncer's concurrency.
const (
	DefaultMaxRetries          = 3
	DefaultRetryDelay          = 800 * time.Millisecond
	DefaultMaxRetryDelay       = 60 * time.Second
	DefaultTryTimeout          = 60 * time.Second
	DefaultMaxConnsPerHost     = 64
	DefaultDialTimeout         = 10 * time.Second
	DefaultTLSHandshakeTimeout = 10 * time.Second
)

// Config tunes the clients a [Factory] builds. Zero fields take the
// defaults above.
type Config struct {
	// Retry is azcore's retry policy (defaults DefaultMaxRetries,
	// DefaultRetryDelay, DefaultMaxRetryDelay, DefaultTryTimeout).
	Retry
	// MaxConnsPerHost bounds connections to one vault.
	MaxConnsPerHost int
}

func (c Config) withDefaults() Config {
	c.Retry = c.Retry.WithDefaults(Retry{MaxRetries: DefaultMaxRetries, RetryDelay: DefaultRetryDelay,
		MaxRetryDelay: DefaultMaxRetryDelay, TryTimeout: DefaultTryTimeout})
	if c.MaxConnsPerHost == 0 {
		c.MaxConnsPerHost = DefaultMaxConnsPerHost
	}
	return c
}

// Validate reports settings that cannot work.
func (c Config) Validate() error {
	c = c.withDefaults()
	if !c.Retry.Valid() || c.MaxConnsPerHost < 1 {
		return fmt.Errorf("azure: invalid client config %+v", c)
	}
	return nil
}

// Factory builds Key Vault clients. It caches one credential and one HTTP
// transport per connection, so tokens and TLS connections are reused
// across vaults and syncs. It is safe for concurrent use.
type Factory struct {
	cfg Config

	mu    sync.Mutex
	conns map[string]*connState
}

type connState struct {
	conn      Connection
	transport *http.Client
	cred      azcore.TokenCredential

	mu sync.Mutex
	// clients are the shared Key Vault clients of this connection's
	// settings, by vault URI (SharedKeysClient); a change of settings
	// makes a new connState, so they never outlive the settings.
	clients map[string]*azkeys.Client
}

// MaxSharedClients bounds the shared Key Vault clients kept per
// connection; past it the cache starts over.
const MaxSharedClients = 4096

// NewFactory returns a factory with the given config.
func NewFactory(cfg Config) (*Factory, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Factory{cfg: cfg.withDefaults(), conns: map[string]*connState{}}, nil
}

// Forget drops the cached credential and transport of a connection, e.g.
// after its settings changed.
func (f *Factory) Forget(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if st, ok := f.conns[name]; ok {
		st.transport.CloseIdleConnections()
		delete(f.conns, name)
	}
}

// state returns the cached state of conn, building it on first use or when
// the connection's settings differ from the cached ones.
func (f *Factory) state(conn Connection) (*connState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if st, ok := f.conns[conn.Name]; ok && sameConnection(st.conn, conn) {
		return st, nil
	}
	if err := conn.Validate(); err != nil {
		return nil, err
	}
	transport, err := f.httpClient(conn)
	if err != nil {
		return nil, err
	}
	cred, err := newCredential(conn, transport)
	if err != nil {
		return nil, err
	}
	st := &connState{conn: conn, transport: transport, cred: cred}
	f.conns[conn.Name] = st
	return st, nil
}

func sameConnection(a, b Connection) bool {
	return a.Name == b.Name && a.CredentialType == b.CredentialType && a.TenantID == b.TenantID &&
		a.ClientID == b.ClientID && a.ClientSecret == b.ClientSecret && string(a.CertificatePEM) == string(b.CertificatePEM) &&
		a.Cloud == b.Cloud && a.ActiveDirectoryEndpoint == b.ActiveDirectoryEndpoint && a.KeyVaultDNSSuffix == b.KeyVaultDNSSuffix &&
		string(a.ExtraCAPEM) == string(b.ExtraCAPEM) && a.DisableChallengeResourceVerification == b.DisableChallengeResourceVerification &&
		a.LocalhostIP == b.LocalhostIP && a.ResourceManagerEndpoint == b.ResourceManagerEndpoint &&
		a.ManagementEndpoint == b.ManagementEndpoint && a.AzureStackConnectionType == b.AzureStackConnectionType
}

// noProxyForLocalhost is http.ProxyFromEnvironment, except that *.localhost
// hosts (loopback by definition) are never sent through a proxy.
func noProxyForLocalhost(r *http.Request) (*url.URL, error) {
	if h := strings.ToLower(r.URL.Hostname()); h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return nil, nil
	}
	return http.ProxyFromEnvironment(r)
}

// DefaultLocalhostIP is where *.localhost hosts are dialled when the
// connection names no other address.
const DefaultLocalhostIP = "127.0.0.1"

// localhostDialer dials hosts named localhost or *.localhost at ip (RFC
// 6761 reserves them for loopback, but resolvers do not all answer for
// subdomains), keeping the port; other hosts go to dial unchanged.
func localhostDialer(ip string, dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	if ip == "" {
		ip = DefaultLocalhostIP
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err == nil {
			h := strings.ToLower(strings.TrimSuffix(host, "."))
			if h == "localhost" || strings.HasSuffix(h, ".localhost") {
				addr = net.JoinHostPort(ip, port)
			}
		}
		return dial(ctx, network, addr)
	}
}

func (f *Factory) httpClient(conn Connection) (*http.Client, error) {
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	if len(conn.ExtraCAPEM) > 0 && !roots.AppendCertsFromPEM(conn.ExtraCAPEM) {
		return nil, fmt.Errorf("%w %q: the extra CA is not a PEM certificate", ErrInvalidConnection, conn.Name)
	}
	tr := &http.Transport{
		Proxy:               noProxyForLocalhost,
		DialContext:         localhostDialer(conn.LocalhostIP, (&net.Dialer{Timeout: DefaultDialTimeout, KeepAlive: 30 * time.Second}).DialContext),
		TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: DefaultTLSHandshakeTimeout,
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        4 * f.cfg.MaxConnsPerHost,
		MaxIdleConnsPerHost: f.cfg.MaxConnsPerHost,
		MaxConnsPerHost:     f.cfg.MaxConnsPerHost,
		IdleConnTimeout:     90 * time.Second,
	}
	return &http.Client{Transport: tr}, nil
}

func (f *Factory) clientOptions(st *connState) azcore.ClientOptions {
	return azcore.ClientOptions{
		Cloud:     st.conn.CloudConfig(),
		Transport: st.transport,
		Retry:     f.cfg.Retry.Options(),
		Telemetry: policy.TelemetryOptions{ApplicationID: "akvsync"},
	}
}

// KeysClient returns a Key Vault keys client for one vault of conn. A
// non-nil throttle paces every attempt, retries included.
func (f *Factory) KeysClient(conn Connection, vaultURI string, throttle akvsync.Throttle) (*azkeys.Client, error) {
	if err := CheckVaultURI(vaultURI); err != nil {
		return nil, err
	}
	st, err := f.state(conn)
	if err != nil {
		return nil, err
	}
	opts := &azkeys.ClientOptions{
		ClientOptions:                        f.clientOptions(st),
		DisableChallengeResourceVerification: conn.DisableChallengeResourceVerification,
	}
	opts.PerCallPolicies = append(opts.PerCallPolicies, apiVersionPolicy{})
	if throttle != nil {
		opts.PerCallPolicies = append(opts.PerCallPolicies, attemptPolicy{})
		opts.PerRetryPolicies = append(opts.PerRetryPolicies, throttlePolicy{throttle})
	}
	c, err := azkeys.NewClient(vaultURI, st.cred, opts)
	if err != nil {
		return nil, fmt.Errorf("azure: keys client for %s: %w", vaultURI, err)
	}
	return c, nil
}

// SharedKeysClient returns the Key Vault client of vaultURI for conn,
// built on first use and shared by every later call while conn's settings
// stay the same: a shared client has done its authentication challenge
// once (a new client's first request is answered 401 to learn the
// tenant). Its requests are paced and accounted by the throttle in their
// context (akvsync.WithThrottle); a request without one is not paced (no
// caller's throttle outlives that caller's use of the client).
func (f *Factory) SharedKeysClient(conn Connection, vaultURI string) (*azkeys.Client, error) {
	st, err := f.state(conn)
	if err != nil {
		return nil, err
	}
	st.mu.Lock()
	c, ok := st.clients[vaultURI]
	st.mu.Unlock()
	if ok {
		return c, nil
	}
	if c, err = f.KeysClient(conn, vaultURI, unpaced{}); err != nil {
		return nil, err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.clients == nil || len(st.clients) >= MaxSharedClients {
		st.clients = make(map[string]*azkeys.Client)
	}
	st.clients[vaultURI] = c
	return c, nil
}

// unpaced is the own throttle of a shared client: it paces nothing; each
// request brings its caller's throttle in its context.
type unpaced struct{}

func (unpaced) Wait(context.Context) error { return nil }
func (unpaced) Observe(int)                {}

// Credential returns the (cached) token credential of conn.
func (f *Factory) Credential(conn Connection) (azcore.TokenCredential, error) {
	st, err := f.state(conn)
	if err != nil {
		return nil, err
	}
	return st.cred, nil
}

func newCredential(conn Connection, transport *http.Client) (azcore.TokenCredential, error) {
	opts := azcore.ClientOptions{Cloud: conn.CloudConfig(), Transport: transport}
	// A custom authority (Azure Stack, an emulator) has no instance
	// discovery endpoint.
	disco := conn.ActiveDirectoryEndpoint != ""
	switch conn.CredentialType {
	case CredentialClientSecret:
		c, err := azidentity.NewClientSecretCredential(conn.TenantID, conn.ClientID, conn.ClientSecret,
			&azidentity.ClientSecretCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: disco})
		if err != nil {
			return nil, fmt.Errorf("%w %q: %w", ErrInvalidConnection, conn.Name, err)
		}
		return c, nil
	case CredentialClientCertificate:
		certs, key, err := azidentity.ParseCertificates(conn.CertificatePEM, nil)
		if err != nil {
			return nil, fmt.Errorf("%w %q: certificate: %w", ErrInvalidConnection, conn.Name, err)
		}
		c, err := azidentity.NewClientCertificateCredential(conn.TenantID, conn.ClientID, certs, key,
			&azidentity.ClientCertificateCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: disco, SendCertificateChain: true})
		if err != nil {
			return nil, fmt.Errorf("%w %q: %w", ErrInvalidConnection, conn.Name, err)
		}
		return c, nil
	case CredentialManagedIdentity:
		var sources []azcore.TokenCredential
		// Workload identity needs its environment (AKS injects it); skip
		// it where it is absent.
		if wi, err := azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
			ClientOptions: opts, ClientID: conn.ClientID, TenantID: conn.TenantID, DisableInstanceDiscovery: disco,
		}); err == nil {
			sources = append(sources, wi)
		}
		miOpts := &azidentity.ManagedIdentityCredentialOptions{ClientOptions: opts}
		if conn.ClientID != "" {
			miOpts.ID = azidentity.ClientID(conn.ClientID)
		}
		mi, err := azidentity.NewManagedIdentityCredential(miOpts)
		if err != nil {
			return nil, fmt.Errorf("%w %q: managed identity: %w", ErrInvalidConnection, conn.Name, err)
		}
		sources = append(sources, mi)
		c, err := azidentity.NewChainedTokenCredential(sources, nil)
		if err != nil {
			return nil, fmt.Errorf("%w %q: %w", ErrInvalidConnection, conn.Name, err)
		}
		return c, nil
	}
	return nil, fmt.Errorf("%w %q: unknown credential type %q", ErrInvalidConnection, conn.Name, conn.CredentialType)
}

// ARMClientOptions returns what an Azure Resource Manager client of the
// azure-sdk-for-go resourcemanager modules needs for conn: its (cached)
// credential, options whose cloud configuration points Resource Manager at
// [Connection.ResourceManagerURL] with [Connection.ResourceManagerAudience]
// as the token audience, over the connection's transport (its CA, its
// localhost dialling) with the factory's retry policy, and the Resource
// Manager URL parsed. Resource provider registration is disabled: akvsync
// only reads through ARM and must never register a provider in a
// customer's subscription. Errors wrap [ErrInvalidConnection] or
// [ErrNoResourceManager].
func (f *Factory) ARMClientOptions(conn Connection) (*arm.ClientOptions, azcore.TokenCredential, *url.URL, error) {
	raw := conn.ResourceManagerURL()
	if raw == "" {
		return nil, nil, nil, fmt.Errorf("%w: connection %q (cloud %s) has no resource_manager_url", ErrNoResourceManager, conn.Name, conn.Cloud)
	}
	rm, err := parseEndpoint(raw)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w %q: resource_manager_url %w", ErrInvalidConnection, conn.Name, err)
	}
	aud := conn.ResourceManagerAudience()
	if _, err := parseEndpoint(aud); err != nil {
		return nil, nil, nil, fmt.Errorf("%w %q: management_url %w", ErrInvalidConnection, conn.Name, err)
	}
	st, err := f.state(conn)
	if err != nil {
		return nil, nil, nil, err
	}
	opts := f.clientOptions(st)
	// A map of its own: the cloud configurations azcore exports share theirs.
	opts.Cloud = cloud.Configuration{
		ActiveDirectoryAuthorityHost: opts.Cloud.ActiveDirectoryAuthorityHost,
		Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
			cloud.ResourceManager: {Endpoint: rm.String(), Audience: aud},
		},
	}
	return &arm.ClientOptions{ClientOptions: opts, DisableRPRegistration: true}, st.cred, rm, nil
}

// parseEndpoint parses a service base URL: absolute https, a host, no
// credentials, query or fragment.
func parseEndpoint(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.Hostname() == "" || u.User != nil ||
		u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.Opaque != "" {
		return nil, errors.New("must be an absolute https URL without credentials, query or fragment")
	}
	return u, nil
}
