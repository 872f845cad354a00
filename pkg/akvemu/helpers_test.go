package akvemu_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/rs/zerolog"

	"github.com/akvsync/akvsync/pkg/akvemu"
)

// fastRetry keeps the SDK's retry policy (statuses, Retry-After handling) but with
// tiny delays so fault tests stay fast.
var fastRetry = policy.RetryOptions{MaxRetries: 3, RetryDelay: time.Millisecond, MaxRetryDelay: 5 * time.Millisecond}

// setup starts an emulator for one test. mutate adjusts the config first.
func setup(t testing.TB, mutate ...func(*akvemu.Config)) *akvemu.Emulator {
	t.Helper()
	cfg := akvemu.Config{
		Seed:    akvemu.SeedSpec{Seed: 7},
		DataDir: t.TempDir(),
		Logger:  zerolog.Nop(),
	}
	for _, m := range mutate {
		m(&cfg)
	}
	e, err := akvemu.Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("start emulator: %v", err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("close emulator: %v", err)
		}
	})
	return e
}

// addVault adds a vault through the Go API.
func addVault(t testing.TB, e *akvemu.Emulator, spec akvemu.VaultSpec) *akvemu.Vault {
	t.Helper()
	if _, err := e.AddVault(context.Background(), spec); err != nil {
		t.Fatalf("add vault %s: %v", spec.Name, err)
	}
	v, ok := e.Vault(spec.Name)
	if !ok {
		t.Fatalf("vault %s missing after AddVault", spec.Name)
	}
	return v
}

// newClient returns a real azkeys client for a vault using the default principal.
func newClient(t testing.TB, e *akvemu.Emulator, v *akvemu.Vault, retry *policy.RetryOptions) *azkeys.Client {
	t.Helper()
	cred, err := e.Credential()
	if err != nil {
		t.Fatal(err)
	}
	return newClientWith(t, e, v.URL(), cred, retry)
}

func newClientWith(t testing.TB, e *akvemu.Emulator, url string, cred azcore.TokenCredential, retry *policy.RetryOptions) *azkeys.Client {
	t.Helper()
	opts := e.ClientOptions()
	if retry != nil {
		opts.Retry = *retry
	} else {
		opts.Retry = fastRetry
	}
	c, err := azkeys.NewClient(url, cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// responseError extracts the SDK's *azcore.ResponseError.
func responseError(t testing.TB, err error) *azcore.ResponseError {
	t.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("want *azcore.ResponseError, got %T: %v", err, err)
	}
	return re
}

// listAll pages through every key with the SDK and returns the pages' item counts.
func listAll(t testing.TB, c *azkeys.Client) (names []string, pages []int, emptyWithNext int) {
	t.Helper()
	pager := c.NewListKeyPropertiesPager(nil)
	for pager.More() {
		p, err := pager.NextPage(context.Background())
		if err != nil {
			t.Fatalf("list page %d: %v", len(pages)+1, err)
		}
		pages = append(pages, len(p.Value))
		if len(p.Value) == 0 && p.NextLink != nil {
			emptyWithNext++
		}
		for _, k := range p.Value {
			names = append(names, k.KID.Name())
		}
	}
	return names, pages, emptyWithNext
}

// rawGet sends an unauthenticated or hand-authenticated request to the emulator.
func rawDo(t testing.TB, e *akvemu.Emulator, method, url, token string, body io.Reader) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.HTTPClient().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// vaultToken gets a Key Vault token for the default principal through azidentity.
func vaultToken(t testing.TB, cred azcore.TokenCredential) string {
	t.Helper()
	tk, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{akvemu.VaultAudience + "/.default"}})
	if err != nil {
		t.Fatalf("get token: %v", err)
	}
	return tk.Token
}

// eventually polls cond every 20 ms until it holds or the deadline passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

func ptr[T any](v T) *T { return &v }
