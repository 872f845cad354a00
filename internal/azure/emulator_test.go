package azure_test

// The adapter against the real emulator (pkg/akvemu over HTTPS) with the
// real azidentity and azkeys clients: credentials, clouds and custom
// endpoints, paging, the api-version override, and the throttle policy
// (every attempt, 429 and Retry-After, retries, 5xx, dropped connections)
// checked by counting what the emulator answered. One emulator serves the
// package; every test adds vaults of its own, so counters and faults are
// the test's alone and the tests run in parallel.

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/rs/zerolog"

	"github.com/akvsync/akvsync/internal/azure"
	"github.com/akvsync/akvsync/pkg/akvemu"
	akvsync "github.com/akvsync/akvsync/pkg/sync"
	gosync "github.com/akvsync/akvsync/pkg/sync"
)

var shared struct {
	once sync.Once
	emu  *akvemu.Emulator
	err  error
	seq  atomic.Int64
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.emu != nil {
		_ = shared.emu.Close()
	}
	os.Exit(code)
}

// emulator is the package's emulator, started on first use: a listener per
// vault and the host-routing listener (<vault>.vault.localhost).
func emulator(t *testing.T) *akvemu.Emulator {
	t.Helper()
	shared.once.Do(func() {
		shared.emu, shared.err = akvemu.Start(context.Background(), akvemu.Config{
			Seed: akvemu.SeedSpec{Seed: 11}, HostRouting: true, DisableAdmin: true, Logger: zerolog.Nop()})
	})
	if shared.err != nil {
		t.Fatalf("emulator: %v", shared.err)
	}
	return shared.emu
}

// addVault adds a vault (or pool) of the test's own to the emulator.
func addVault(t *testing.T, spec akvemu.VaultSpec) akvemu.ManifestVault {
	t.Helper()
	if spec.Name == "" {
		spec.Name = fmt.Sprintf("az-%d", shared.seq.Add(1))
	}
	v, err := emulator(t).AddVault(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emulator(t).RemoveVault(v.Name) })
	return v
}

// connection is the emulator's default principal as a client-secret
// connection: the emulator is the authority (a custom endpoint) and its CA
// is trusted in addition to the system's.
func connection(t *testing.T, name string) azure.Connection {
	e := emulator(t)
	return azure.Connection{Name: name, CredentialType: azure.CredentialClientSecret,
		TenantID: e.TenantID(), ClientID: e.ClientID(), ClientSecret: e.ClientSecret(),
		ActiveDirectoryEndpoint: e.AuthorityHost(), ExtraCAPEM: e.CACertPEM(),
		DisableChallengeResourceVerification: true}
}

// fastRetry retries at once: a 429 without Retry-After or a 5xx costs no
// wall time, and a Retry-After of a second or more exceeds MaxRetryDelay,
// so the SDK hands the 429 back instead of waiting.
var fastRetry = azure.Retry{MaxRetries: 3, RetryDelay: time.Millisecond, MaxRetryDelay: 5 * time.Millisecond}

func factory(t *testing.T, r azure.Retry) *azure.Factory {
	t.Helper()
	f, err := azure.NewFactory(azure.Config{Retry: r})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// recorder is a Throttle that lets everything through and records what
// the policy told it.
type recorder struct {
	mu         sync.Mutex
	waitErr    error
	waits      int
	statuses   []int
	attempts   []akvsync.Attempt
	retryAfter []time.Duration
}

func (r *recorder) Wait(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.waits++
	return r.waitErr
}

func (r *recorder) Observe(status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.statuses = append(r.statuses, status)
}

func (r *recorder) ObserveAttempt(a akvsync.Attempt) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts = append(r.attempts, a)
}

func (r *recorder) ObserveRetryAfter(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.retryAfter = append(r.retryAfter, d)
}

// reset forgets what was recorded so far.
func (r *recorder) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.waits, r.statuses, r.attempts, r.retryAfter = 0, nil, nil, nil
}

// retries are the Retry flags of the recorded attempts.
func (r *recorder) retries() []bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []bool
	for _, a := range r.attempts {
		out = append(out, a.Retry)
	}
	return out
}

func (r *recorder) snapshot() (waits int, statuses []int, attempts []akvsync.Attempt, retryAfter []time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.waits, slices.Clone(r.statuses), slices.Clone(r.attempts), slices.Clone(r.retryAfter)
}

// warmClient returns a keys client for the vault whose first GetKey (the
// authentication challenge's 401 and the token) is done, with the
// recorder reset.
func warmClient(t *testing.T, f *azure.Factory, conn azure.Connection, v akvemu.ManifestVault, rec *recorder) (*azkeys.Client, string) {
	t.Helper()
	c, err := f.KeysClient(conn, v.URL, rec)
	if err != nil {
		t.Fatal(err)
	}
	ev, _ := emulator(t).Vault(v.Name)
	name := ev.Keys()[0].Name
	if _, err := c.GetKey(context.Background(), name, "", nil); err != nil {
		t.Fatalf("warm-up GetKey: %v", err)
	}
	rec.reset()
	return c, name
}

func responseStatus(err error) int {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

func TestKeysClientPagesAndGets(t *testing.T) {
	t.Parallel()
	const keys = 2*akvemu.MaxPageSize + 10 // three pages
	v := addVault(t, akvemu.VaultSpec{Keys: keys})
	rec := &recorder{}
	c, err := factory(t, fastRetry).KeysClient(connection(t, "pages"), v.URL, rec)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var names []string
	pages := 0
	for pager := c.NewListKeyPropertiesPager(nil); pager.More(); {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, k := range page.Value {
			names = append(names, k.KID.Name())
		}
	}
	ev, _ := emulator(t).Vault(v.Name)
	var want []string
	for _, k := range ev.Keys() {
		want = append(want, k.Name)
	}
	slices.Sort(names)
	slices.Sort(want)
	if !slices.Equal(names, want) || pages != 3 {
		t.Fatalf("%d pages, %d keys listed; want 3 pages and the emulator's %d keys", pages, len(names), len(want))
	}
	for _, n := range want[:3] {
		resp, err := c.GetKey(ctx, n, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Key.KID.Name() != n {
			t.Fatalf("GetKey(%s) returned %s", n, *resp.Key.KID)
		}
	}
	// The emulator's count and the throttle's agree: the challenge's
	// unauthenticated first request, three pages, three keys.
	counts := emulator(t).Counters(v.Name)
	if counts.Count(akvemu.OpListKeys, http.StatusUnauthorized) != 1 || counts.Count(akvemu.OpListKeys, 200) != 3 || counts.Count(akvemu.OpGetKey, 200) != 3 {
		t.Fatalf("emulator counted %+v", counts.ByOperation)
	}
	waits, statuses, attempts, _ := rec.snapshot()
	if waits != 7 || !slices.Equal(statuses, []int{401, 200, 200, 200, 200, 200, 200}) {
		t.Fatalf("throttle: %d waits, statuses %v", waits, statuses)
	}
	for i, a := range attempts {
		want := akvsync.OpListKeys
		if i >= 4 {
			want = akvsync.OpGetKey
		}
		if a.Operation != want || a.Retry || a.Status != statuses[i] {
			t.Errorf("attempt %d: %+v, want %s, no retry, status %d", i, a, want, statuses[i])
		}
	}
}

func TestIrregularPages(t *testing.T) {
	t.Parallel()
	v := addVault(t, akvemu.VaultSpec{Keys: 40, Faults: &akvemu.Faults{IrregularPages: true}})
	c, err := factory(t, fastRetry).KeysClient(connection(t, "irregular"), v.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	n, pages := 0, 0
	for pager := c.NewListKeyPropertiesPager(nil); pager.More(); {
		page, err := pager.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		pages++
		n += len(page.Value)
	}
	if n != 40 {
		t.Fatalf("%d keys over %d irregular pages, want 40", n, pages)
	}
	if got := emulator(t).Counters(v.Name).Count(akvemu.OpListKeys, 200); got != int64(pages) {
		t.Fatalf("the emulator answered %d pages, the pager read %d", got, pages)
	}
}

func TestCredentials(t *testing.T) {
	t.Parallel()
	e := emulator(t)
	v := addVault(t, akvemu.VaultSpec{Keys: 2})
	ev, _ := e.Vault(v.Name)
	key := ev.Keys()[0].Name
	getKey := func(conn azure.Connection) error {
		c, err := factory(t, fastRetry).KeysClient(conn, v.URL, nil)
		if err != nil {
			return err
		}
		_, err = c.GetKey(context.Background(), key, "", nil)
		return err
	}

	t.Run("client secret", func(t *testing.T) {
		if err := getKey(connection(t, "secret")); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("client certificate", func(t *testing.T) {
		certPEM, keyPEM, err := e.NewClientCertificate("az-cert-app")
		if err != nil {
			t.Fatal(err)
		}
		conn := connection(t, "certificate")
		conn.CredentialType, conn.ClientID, conn.ClientSecret = azure.CredentialClientCertificate, "az-cert-app", ""
		conn.CertificatePEM = append(certPEM, keyPEM...)
		if err := getKey(conn); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a wrong secret fails authentication and reaches no key", func(t *testing.T) {
		before := e.Counters(v.Name).Count(akvemu.OpGetKey, 200)
		conn := connection(t, "wrong")
		conn.ClientSecret = "not-the-secret"
		var afe *azidentity.AuthenticationFailedError
		if err := getKey(conn); !errors.As(err, &afe) {
			t.Fatalf("err = %v, want an authentication failure", err)
		}
		if after := e.Counters(v.Name).Count(akvemu.OpGetKey, 200); after != before {
			t.Fatal("a key was served without a valid credential")
		}
	})
	t.Run("the emulator's CA is trusted only through ExtraCAPEM", func(t *testing.T) {
		conn := connection(t, "no-ca")
		conn.ExtraCAPEM = nil
		var uae x509.UnknownAuthorityError
		if err := getKey(conn); !errors.As(err, &uae) {
			t.Fatalf("err = %v, want the emulator's certificate refused", err)
		}
	})
	t.Run("a certificate that is not PEM is refused before any request", func(t *testing.T) {
		conn := connection(t, "bad-cert")
		conn.CredentialType, conn.CertificatePEM = azure.CredentialClientCertificate, []byte("not a certificate")
		if err := getKey(conn); !errors.Is(err, azure.ErrInvalidConnection) {
			t.Fatalf("err = %v, want ErrInvalidConnection", err)
		}
	})
}

// TestCloudsWithACustomAuthority: a connection of each cloud whose Entra ID
// authority is a custom endpoint (sovereign clouds, Azure Stack) gets its
// tokens there, and reads the vault.
func TestCloudsWithACustomAuthority(t *testing.T) {
	t.Parallel()
	v := addVault(t, akvemu.VaultSpec{Keys: 1})
	ev, _ := emulator(t).Vault(v.Name)
	key := ev.Keys()[0].Name
	f := factory(t, fastRetry)
	for _, cloud := range []string{"", azure.CloudPublic, azure.CloudChina, azure.CloudGovernment, azure.CloudStack} {
		t.Run("cloud "+cloud, func(t *testing.T) {
			conn := connection(t, "cloud-"+cloud)
			conn.Cloud = cloud
			if cloud == azure.CloudStack {
				conn.KeyVaultDNSSuffix, conn.AzureStackConnectionType = "vault.local.azurestack.external", azure.AzureStackADFS
			}
			if got := conn.CloudConfig().ActiveDirectoryAuthorityHost; got != emulator(t).AuthorityHost() {
				t.Fatalf("authority %s, want the emulator's %s", got, emulator(t).AuthorityHost())
			}
			c, err := f.KeysClient(conn, v.URL, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.GetKey(context.Background(), key, "", nil); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestHostRouting: a vault addressed as <vault>.vault.localhost is dialled
// at LocalhostIP, and its challenge resource is verified against its host.
func TestHostRouting(t *testing.T) {
	t.Parallel()
	v := addVault(t, akvemu.VaultSpec{Keys: 1})
	if !strings.Contains(v.HostURL, ".vault.localhost:") {
		t.Fatalf("host URL %q", v.HostURL)
	}
	ev, _ := emulator(t).Vault(v.Name)
	key := ev.Keys()[0].Name
	f := factory(t, fastRetry)
	get := func(conn azure.Connection, uri string) error {
		c, err := f.KeysClient(conn, uri, nil)
		if err != nil {
			return err
		}
		_, err = c.GetKey(context.Background(), key, "", nil)
		return err
	}
	verified := connection(t, "verified")
	verified.DisableChallengeResourceVerification = false
	if err := get(verified, v.HostURL); err != nil {
		t.Fatalf("host-routed vault with challenge verification: %v", err)
	}
	// The same vault by IP: its challenge names vault.azure.net, which
	// 127.0.0.1 is not under.
	if err := get(verified, v.URL); err == nil || !strings.Contains(err.Error(), "challenge resource") {
		t.Fatalf("vault by IP with challenge verification: %v, want the challenge refused", err)
	}
	elsewhere := connection(t, "elsewhere")
	elsewhere.DisableChallengeResourceVerification, elsewhere.LocalhostIP = false, "127.0.0.2"
	if err := get(elsewhere, v.HostURL); err == nil {
		t.Fatal("reached the vault although LocalhostIP points elsewhere")
	}
}

func TestAPIVersionOverride(t *testing.T) {
	t.Parallel()
	if akvsync.KeySizeAPIVersion != akvemu.KeySizeAPIVersion {
		t.Fatalf("akvsync.KeySizeAPIVersion %s, emulator %s", akvsync.KeySizeAPIVersion, akvemu.KeySizeAPIVersion)
	}
	pool := addVault(t, akvemu.VaultSpec{Kind: akvemu.KindManagedHSM, KeySpecs: []akvemu.NamedKeySpec{
		{Name: "aes192", KeySpec: akvemu.KeySpec{Kty: akvemu.KtyOctHSM, KeySize: 192}}}})
	c, err := factory(t, fastRetry).KeysClient(connection(t, "apiversion"), pool.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	// hasKeySize reads the raw answer: azkeys' JSONWebKey has no key_size.
	hasKeySize := func(ctx context.Context) (bool, error) {
		var resp *http.Response
		if _, err := c.GetKey(policy.WithCaptureResponse(ctx, &resp), "aes192", "", nil); err != nil {
			return false, err
		}
		body, err := runtime.Payload(resp)
		return strings.Contains(string(body), `"key_size":192`), err
	}
	ctx := context.Background()
	if got, err := hasKeySize(ctx); err != nil || got {
		t.Fatalf("SDK's api-version: key_size %v (%v), want none", got, err)
	}
	if got, err := hasKeySize(akvsync.WithAPIVersion(ctx, akvsync.KeySizeAPIVersion)); err != nil || !got {
		t.Fatalf("api-version %s: key_size %v (%v), want 192", akvsync.KeySizeAPIVersion, got, err)
	}
	if _, err := hasKeySize(akvsync.WithAPIVersion(ctx, "2001-01-01")); responseStatus(err) != http.StatusBadRequest {
		t.Fatalf("an api-version the service does not serve: %v, want 400", err)
	}
}

func TestThrottlePolicy(t *testing.T) {
	t.Parallel()
	e := emulator(t)
	ctx := context.Background()
	conn := connection(t, "throttle")

	t.Run("429s without Retry-After are retried, each attempt paced and seen", func(t *testing.T) {
		t.Parallel()
		v := addVault(t, akvemu.VaultSpec{Keys: 1})
		rec := &recorder{}
		c, key := warmClient(t, factory(t, fastRetry), conn, v, rec)
		if err := e.SetFaults(v.Name, akvemu.Faults{ThrottleNext: 2, OmitRetryAfter: true}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.GetKey(ctx, key, "", nil); err != nil {
			t.Fatal(err)
		}
		waits, statuses, _, retryAfter := rec.snapshot()
		if waits != 3 || !slices.Equal(statuses, []int{429, 429, 200}) || !slices.Equal(rec.retries(), []bool{false, true, true}) || len(retryAfter) != 0 {
			t.Fatalf("waits %d, statuses %v, retries %v, Retry-After %v", waits, statuses, rec.retries(), retryAfter)
		}
		if got := e.Counters(v.Name).Count(akvemu.OpGetKey, 429); got != 2 {
			t.Fatalf("emulator answered %d 429s, want 2", got)
		}
	})

	t.Run("a Retry-After longer than MaxRetryDelay hands the 429 back, and reaches the throttle", func(t *testing.T) {
		t.Parallel()
		v := addVault(t, akvemu.VaultSpec{Keys: 1})
		rec := &recorder{}
		c, key := warmClient(t, factory(t, fastRetry), conn, v, rec)
		if err := e.SetFaults(v.Name, akvemu.Faults{ThrottleNext: 1, RetryAfterSeconds: 7}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.GetKey(ctx, key, "", nil); responseStatus(err) != http.StatusTooManyRequests {
			t.Fatalf("err = %v, want the 429", err)
		}
		waits, statuses, _, retryAfter := rec.snapshot()
		if waits != 1 || !slices.Equal(statuses, []int{429}) || !slices.Equal(retryAfter, []time.Duration{7 * time.Second}) {
			t.Fatalf("waits %d, statuses %v, Retry-After %v", waits, statuses, retryAfter)
		}
		c2 := e.Counters(v.Name)
		if c2.Count(akvemu.OpGetKey, 429) != 1 || c2.Count(akvemu.OpGetKey, 200) != 1 {
			t.Fatalf("emulator counted %v, want the warm-up and one 429", c2.ByOperation[akvemu.OpGetKey])
		}
	})

	t.Run("a Retry-After within MaxRetryDelay is waited out and retried", func(t *testing.T) {
		t.Parallel()
		v := addVault(t, akvemu.VaultSpec{Keys: 1})
		rec := &recorder{}
		// azcore's defaults: the 1-second Retry-After is honoured.
		c, key := warmClient(t, factory(t, azure.Retry{}), conn, v, rec)
		if err := e.SetFaults(v.Name, akvemu.Faults{ThrottleNext: 1, RetryAfterSeconds: 1}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.GetKey(ctx, key, "", nil); err != nil {
			t.Fatal(err)
		}
		_, statuses, _, retryAfter := rec.snapshot()
		if !slices.Equal(statuses, []int{429, 200}) || !slices.Equal(retryAfter, []time.Duration{time.Second}) || !slices.Equal(rec.retries(), []bool{false, true}) {
			t.Fatalf("statuses %v, Retry-After %v, retries %v", statuses, retryAfter, rec.retries())
		}
	})

	t.Run("retries stop at MaxRetries", func(t *testing.T) {
		t.Parallel()
		v := addVault(t, akvemu.VaultSpec{Keys: 1})
		rec := &recorder{}
		c, key := warmClient(t, factory(t, azure.Retry{MaxRetries: 2, RetryDelay: time.Millisecond, MaxRetryDelay: time.Millisecond}), conn, v, rec)
		if err := e.SetFaults(v.Name, akvemu.Faults{ThrottleNext: 10, OmitRetryAfter: true}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.GetKey(ctx, key, "", nil); responseStatus(err) != http.StatusTooManyRequests {
			t.Fatalf("err = %v, want the last 429", err)
		}
		if _, statuses, _, _ := rec.snapshot(); !slices.Equal(statuses, []int{429, 429, 429}) {
			t.Fatalf("statuses %v, want three attempts", statuses)
		}
		if got := e.Counters(v.Name).Count(akvemu.OpGetKey, 429); got != 3 {
			t.Fatalf("emulator answered %d 429s, want 3", got)
		}
	})

	t.Run("5xx answers are retried", func(t *testing.T) {
		t.Parallel()
		v := addVault(t, akvemu.VaultSpec{Keys: 1})
		rec := &recorder{}
		c, key := warmClient(t, factory(t, azure.Retry{MaxRetries: 2, RetryDelay: time.Millisecond, MaxRetryDelay: time.Millisecond}), conn, v, rec)
		if err := e.SetFaults(v.Name, akvemu.Faults{ErrorRate: 1, ErrorStatus: http.StatusServiceUnavailable}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.GetKey(ctx, key, "", nil); responseStatus(err) != http.StatusServiceUnavailable {
			t.Fatalf("err = %v, want 503", err)
		}
		if _, statuses, _, _ := rec.snapshot(); !slices.Equal(statuses, []int{503, 503, 503}) || !slices.Equal(rec.retries(), []bool{false, true, true}) {
			t.Fatalf("statuses %v, retries %v", statuses, rec.retries())
		}
		if got := e.Counters(v.Name).Count(akvemu.OpGetKey, http.StatusServiceUnavailable); got != 3 {
			t.Fatalf("emulator answered %d 503s, want 3", got)
		}
	})

	t.Run("an unanswered attempt is retried and seen with status 0", func(t *testing.T) {
		t.Parallel()
		v := addVault(t, akvemu.VaultSpec{Keys: 1})
		rec := &recorder{}
		c, key := warmClient(t, factory(t, azure.Retry{MaxRetries: 1, RetryDelay: time.Millisecond, MaxRetryDelay: time.Millisecond}), conn, v, rec)
		if err := e.SetFaults(v.Name, akvemu.Faults{DropRate: 1}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.GetKey(ctx, key, "", nil); err == nil {
			t.Fatal("a dropped connection succeeded")
		}
		_, statuses, attempts, _ := rec.snapshot()
		if len(attempts) != 2 || attempts[0].Status != 0 || attempts[1].Status != 0 || len(statuses) != 0 || !slices.Equal(rec.retries(), []bool{false, true}) {
			t.Fatalf("attempts %+v, observed statuses %v", attempts, statuses)
		}
		// net/http itself retries a GET once when a reused keep-alive
		// connection is reset before any answer (the warm-up left one):
		// the emulator may drop more connections than the policy saw
		// attempts, never fewer.
		if got := e.Counters(v.Name).Count(akvemu.OpGetKey, akvemu.StatusDropped); got < 2 {
			t.Fatalf("emulator dropped %d connections, want at least the 2 attempts", got)
		}
	})

	t.Run("a throttle that refuses sends nothing", func(t *testing.T) {
		t.Parallel()
		v := addVault(t, akvemu.VaultSpec{Keys: 1})
		rec := &recorder{}
		c, key := warmClient(t, factory(t, fastRetry), conn, v, rec)
		held := errors.New("held by the throttle")
		rec.mu.Lock()
		rec.waitErr = held
		rec.mu.Unlock()
		before := e.Counters(v.Name).Total(akvemu.OpGetKey)
		if _, err := c.GetKey(ctx, key, "", nil); !errors.Is(err, held) {
			t.Fatalf("err = %v, want the throttle's", err)
		}
		if after := e.Counters(v.Name).Total(akvemu.OpGetKey); after != before {
			t.Fatalf("%d requests reached the vault", after-before)
		}
	})

	t.Run("the adaptive limiter backs off on the emulator's 429", func(t *testing.T) {
		t.Parallel()
		v := addVault(t, akvemu.VaultSpec{Keys: 1})
		lim := gosync.NewAdaptiveLimiter(1000)
		c, err := factory(t, fastRetry).KeysClient(conn, v.URL, lim)
		if err != nil {
			t.Fatal(err)
		}
		ev, _ := e.Vault(v.Name)
		key := ev.Keys()[0].Name
		if _, err := c.GetKey(ctx, key, "", nil); err != nil {
			t.Fatal(err)
		}
		if lim.Rate() != lim.Ceiling() {
			t.Fatalf("rate %v below its ceiling %v before any 429", lim.Rate(), lim.Ceiling())
		}
		if err := e.SetFaults(v.Name, akvemu.Faults{ThrottleNext: 1, OmitRetryAfter: true}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.GetKey(ctx, key, "", nil); err != nil {
			t.Fatal(err)
		}
		if got := e.Counters(v.Name).Count(akvemu.OpGetKey, 429); got != 1 {
			t.Fatalf("emulator answered %d 429s, want 1", got)
		}
		if lim.Rate() >= lim.Ceiling() {
			t.Fatalf("rate %v after a 429, want below the ceiling %v", lim.Rate(), lim.Ceiling())
		}
	})
}

func TestKeysClientRefuses(t *testing.T) {
	t.Parallel()
	f := factory(t, fastRetry)
	conn := connection(t, "refuses")
	for _, uri := range []string{"http://kv.vault.azure.net", "https://kv.vault.azure.net/keys", "https://kv.vault.azure.net/?x=1", "kv.vault.azure.net"} {
		if _, err := f.KeysClient(conn, uri, nil); !errors.Is(err, azure.ErrInvalidVaultURI) {
			t.Errorf("vault URI %q: err = %v, want ErrInvalidVaultURI", uri, err)
		}
	}
	bad := conn
	bad.ClientSecret = ""
	if _, err := f.KeysClient(bad, "https://kv.vault.azure.net", nil); !errors.Is(err, azure.ErrInvalidConnection) {
		t.Errorf("connection without a secret: err = %v, want ErrInvalidConnection", err)
	}
	bad = conn
	bad.Name, bad.ExtraCAPEM = "bad-ca", []byte("not PEM")
	if _, err := f.KeysClient(bad, "https://kv.vault.azure.net", nil); !errors.Is(err, azure.ErrInvalidConnection) {
		t.Errorf("extra CA that is not PEM: err = %v, want ErrInvalidConnection", err)
	}
}

func TestFactoryCachesPerConnection(t *testing.T) {
	t.Parallel()
	f := factory(t, fastRetry)
	conn := connection(t, "cached")
	first, err := f.Credential(conn)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := f.Credential(conn); again != first {
		t.Error("the same connection got a new credential")
	}
	changed := conn
	changed.ClientSecret = "rotated"
	rotated, err := f.Credential(changed)
	if err != nil || rotated == first {
		t.Errorf("a changed secret kept the old credential (%v)", err)
	}
	f.Forget(conn.Name)
	if after, _ := f.Credential(changed); after == rotated {
		t.Error("Forget kept the credential")
	}
	mi, err := f.Credential(azure.Connection{Name: "mi", CredentialType: azure.CredentialManagedIdentity, ClientID: "some-app"})
	if err != nil || mi == nil {
		t.Errorf("managed identity credential: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]azure.Config{
		"negative retries":                {Retry: azure.Retry{MaxRetries: -1}},
		"max delay below the first delay": {Retry: azure.Retry{RetryDelay: time.Second, MaxRetryDelay: time.Millisecond}},
		"negative try timeout":            {Retry: azure.Retry{TryTimeout: -time.Second}},
		"no connections per host":         {MaxConnsPerHost: -1},
	} {
		if _, err := azure.NewFactory(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	d := azure.Retry{}.WithDefaults(azure.Retry{MaxRetries: 3, RetryDelay: time.Second, MaxRetryDelay: time.Minute, TryTimeout: time.Minute})
	if d.MaxRetries != 3 || d.RetryDelay != time.Second || d.MaxRetryDelay != time.Minute || d.TryTimeout != time.Minute || !d.Valid() {
		t.Errorf("WithDefaults: %+v", d)
	}
	if o := d.Options(); o.MaxRetries != 3 || o.RetryDelay != time.Second || o.MaxRetryDelay != time.Minute || o.TryTimeout != time.Minute {
		t.Errorf("Options: %+v", o)
	}
}
