package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/akvsync/akvsync/pkg/akvemu"
)

// start runs the command in the background and waits until it serves.
func start(t *testing.T, args ...string) (*akvemu.Emulator, *bytes.Buffer, func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan *akvemu.Emulator, 1)
	done := make(chan int, 1)
	var out bytes.Buffer
	go func() { done <- run(ctx, args, &out, io.Discard, ready) }()
	var emu *akvemu.Emulator
	select {
	case emu = <-ready:
	case code := <-done:
		cancel()
		t.Fatalf("run exited with %d before serving", code)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("emulator did not start within 30 s")
	}
	stop := func() int {
		cancel()
		select {
		case code := <-done:
			return code
		case <-time.After(10 * time.Second):
			t.Fatal("run did not return after cancel")
			return -1
		}
	}
	t.Cleanup(func() { cancel() })
	return emu, &out, stop
}

func TestRun(t *testing.T) {
	dir := t.TempDir()
	manifestPath := filepath.Join(dir, "manifest.json")
	_, out, stop := start(t, "--vaults", "3", "--managed-hsms", "1", "--keys-per-vault", "40", "--seed", "5",
		"--manifest", manifestPath, "--data-dir", dir, "--log-level", "warn", "--irregular-pages", "--resource-group", "rg-test")

	t.Run("the banner says how to reach it", func(t *testing.T) {
		for _, want := range []string{"3 vaults, 1 managed HSM pools, 160 keys", "authority host: https://127.0.0.1:", "resource mgr:   https://127.0.0.1:",
			"SSL_CERT_FILE=", "admin API:", "pool  hsm-0001"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("banner lacks %q:\n%s", want, out.String())
			}
		}
	})

	t.Run("another process can use the manifest alone", func(t *testing.T) {
		m, err := akvemu.LoadManifest(manifestPath)
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Vaults) != 4 || m.ClientSecret == "" || m.AdminURL == "" || m.CACertFile != filepath.Join(dir, "ca.pem") ||
			!strings.HasPrefix(m.ResourceManagerURL, "https://127.0.0.1:") || m.Vaults[3].Kind != akvemu.KindManagedHSM || m.Vaults[0].ResourceGroup != "rg-test" {
			t.Fatalf("manifest %+v", m)
		}
		info, err := os.Stat(manifestPath)
		if err != nil || info.Mode().Perm() != 0o600 {
			t.Errorf("manifest mode %v %v", info.Mode(), err)
		}
		cred, err := m.Credential()
		if err != nil {
			t.Fatal(err)
		}
		opts, err := m.ClientOptions()
		if err != nil {
			t.Fatal(err)
		}
		c, err := azkeys.NewClient(m.Vaults[1].URL, cred, opts)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		pager := c.NewListKeyPropertiesPager(nil)
		for pager.More() {
			p, err := pager.NextPage(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			n += len(p.Value)
		}
		if n != 40 {
			t.Errorf("listed %d keys, want 40", n)
		}
	})

	t.Run("SIGINT-style cancellation exits cleanly", func(t *testing.T) {
		if code := stop(); code != 0 {
			t.Errorf("exit code %d", code)
		}
	})
}

func TestRunWithSpecFile(t *testing.T) {
	dir := t.TempDir()
	spec := filepath.Join(dir, "spec.yaml")
	if err := os.WriteFile(spec, []byte("seed: {vaults: 1, keys_per_vault: 5}\nvaults:\n  - {name: from-spec, keys: 7}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	emu, _, stop := start(t, "--spec", spec, "--keys-per-vault", "9", "--data-dir", dir, "--no-admin", "--log-level", "error")
	if v, ok := emu.Vault("from-spec"); !ok || v.Len() != 7 {
		t.Errorf("vault from spec missing or wrong size")
	}
	if v, ok := emu.Vault("kv-0001"); !ok || v.Len() != 9 {
		t.Errorf("explicit flag did not override the spec")
	}
	if emu.AdminURL() != "" {
		t.Errorf("admin API not disabled")
	}
	if code := stop(); code != 0 {
		t.Errorf("exit code %d", code)
	}
}

func TestRunWithEventSubscription(t *testing.T) {
	var mu sync.Mutex
	var events []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var evs []struct {
			EventType string `json:"eventType"`
			Data      struct {
				ValidationCode string `json:"validationCode"`
			} `json:"data"`
		}
		if err := json.NewDecoder(r.Body).Decode(&evs); err != nil || len(evs) != 1 {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if r.Header.Get("aeg-event-type") == "SubscriptionValidation" {
			_ = json.NewEncoder(w).Encode(map[string]string{"validationResponse": evs[0].Data.ValidationCode})
			return
		}
		mu.Lock()
		events = append(events, evs[0].EventType)
		mu.Unlock()
	}))
	defer hook.Close()
	dir := t.TempDir()
	spec := filepath.Join(dir, "spec.yaml")
	if err := os.WriteFile(spec, []byte("vaults: [{name: evt, keys: 3}]\nevent_subscriptions:\n  - {name: akvsync, endpoint: \""+hook.URL+"/hook\"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	emu, out, stop := start(t, "--spec", spec, "--event-retry-scale", "0.001", "--data-dir", dir, "--log-level", "error")
	if !strings.Contains(out.String(), "event grid:     akvsync Succeeded") {
		t.Errorf("banner:\n%s", out.String())
	}
	v, _ := emu.Vault("evt")
	if _, err := v.RotateKey(v.Keys()[0].Name); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		mu.Lock()
		got := slices.Clone(events)
		mu.Unlock()
		if len(got) > 0 {
			if !slices.Equal(got, []string{"Microsoft.KeyVault.KeyNewVersionCreated"}) {
				t.Errorf("events %v", got)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no event delivered within 10 s")
		}
		<-tick.C
	}
	if code := stop(); code != 0 {
		t.Errorf("exit code %d", code)
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{{"--vaults", "x"}, {"--admin-listen", "0.0.0.0:0"}, {"--log-level", "loud"}, {"extra"}, {"--event-retry-scale", "-1"}} {
		if code := run(context.Background(), args, io.Discard, io.Discard, nil); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}
