package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/akvsync/akvsync/internal/natstest"
	"github.com/akvsync/akvsync/pkg/akvemu"
)

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count file descriptors: %v", err)
	}
	return len(ents)
}

// TestEmulatorManifestHostRouting runs `api --embedded --emulator-manifest`
// against an emulator in host-routing-only mode with 2,000 vaults (100
// under the race detector, still five times the file descriptors allowed;
// each vault is a TLS host of its own, costly under the detector): the
// emulator holds them on one listener (a handful of sockets, not one per
// vault), akvsync dials every <vault>.vault.localhost host to it with
// challenge resource verification on, and a sync-all job fetches every key.
// It is not parallel: it counts the process's file descriptors, and it
// stops the API with SIGTERM to the test process.
func TestEmulatorManifestHostRouting(t *testing.T) {
	if testing.Short() {
		t.Skip("2,000 vaults")
	}
	vaults, keys := 2000, 1
	if raceEnabled {
		vaults = 100 // still 5 times the file descriptors allowed below
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	before := openFDs(t)
	emu, err := akvemu.Start(ctx, akvemu.Config{Seed: akvemu.SeedSpec{Vaults: vaults, KeysPerVault: keys, Seed: 7},
		HostRoutingOnly: true, DisableAdmin: true, DisableThrottling: true, DataDir: filepath.Join(dir, "emu")})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	if n := openFDs(t) - before; n > 20 {
		t.Fatalf("the emulator opened %d file descriptors for %d vaults; want a few (one listener for all vaults)", n, vaults)
	}
	m := emu.Manifest()
	if m.HostRouting == nil {
		t.Fatal("the manifest does not describe host routing")
	}
	_, routePort, _ := net.SplitHostPort(m.HostRouting.Address)
	for _, v := range m.Vaults {
		u, err := url.Parse(v.URL)
		if err != nil || u.Port() != routePort || u.Hostname() != v.Name+".vault.localhost" {
			t.Fatalf("vault %s has URL %q, want https://%s.vault.localhost:%s", v.Name, v.URL, v.Name, routePort)
		}
	}
	mf := filepath.Join(dir, "manifest.json")
	if err := emu.WriteManifest(mf); err != nil {
		t.Fatal(err)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	const password = "host-routing-admin-pw"
	errc := make(chan error, 1)
	go func() {
		errc <- run([]string{"--embedded", "--data-dir", filepath.Join(dir, "data"), "--listen", addr, "--emulator-manifest", mf,
			"--admin-password", password, "--log-level", "error"}, io.Discard)
	}()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		// run listens for SIGTERM (signal.NotifyContext): this stops it, not the test.
		_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("api: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("api did not stop")
		}
	}
	defer stop()
	base := "http://" + addr
	call := func(method, path, token string, body, out any) int {
		t.Helper()
		var rd io.Reader
		if body != nil {
			raw, _ := json.Marshal(body)
			rd = bytes.NewReader(raw)
		}
		req, _ := http.NewRequestWithContext(ctx, method, base+path, rd)
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if out != nil && resp.StatusCode < 300 {
			if err := json.Unmarshal(raw, out); err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
		} else if resp.StatusCode >= 300 && method != "GET" {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
		}
		return resp.StatusCode
	}
	natstest.CheckFor(t, time.Minute, 50*time.Millisecond, func() error {
		select {
		case err := <-errc:
			stopped = true
			t.Fatalf("api exited: %v", err)
		default:
		}
		if code := call("GET", "/readyz", "", nil, nil); code != http.StatusOK {
			return fmt.Errorf("readyz %d", code)
		}
		return nil
	})
	var tok struct {
		JWT string `json:"jwt"`
	}
	call("POST", "/api/v1/auth/tokens", "", map[string]string{"username": "admin", "password": password}, &tok)
	bySub := map[string][]map[string]any{}
	for _, v := range m.Vaults {
		bySub[v.SubscriptionID] = append(bySub[v.SubscriptionID], map[string]any{"name": v.Name, "properties": map[string]string{"vaultUri": v.URL}})
	}
	for sub, vs := range bySub {
		for len(vs) > 0 {
			n := min(len(vs), 500)
			call("POST", "/api/v1/cckm/azure/add-vaults", tok.JWT, map[string]any{"connection": "emulator", "subscription_id": sub, "vaults": vs[:n]}, &map[string]any{})
			vs = vs[n:]
		}
	}
	var job struct {
		ID             string            `json:"id"`
		OverallStatus  string            `json:"overall_status"`
		KeyVaults      []string          `json:"key_vaults"`
		DetailedStatus map[string]string `json:"detailed_status"`
	}
	call("POST", "/api/v1/cckm/azure/synchronization-jobs", tok.JWT, map[string]any{"synchronize_all": true}, &job)
	natstest.CheckFor(t, 2*time.Minute, 200*time.Millisecond, func() error {
		if code := call("GET", "/api/v1/cckm/azure/synchronization-jobs/"+job.ID, tok.JWT, nil, &job); code != http.StatusOK {
			return fmt.Errorf("job GET %d", code)
		}
		if job.OverallStatus == "in_progress" {
			return fmt.Errorf("job in progress")
		}
		return nil
	})
	if job.OverallStatus != "completed" {
		failed := 0
		for v, st := range job.DetailedStatus {
			if st != "completed" && failed < 5 {
				t.Errorf("vault %s: %s", v, st)
				failed++
			}
		}
		t.Fatalf("job ended %s", job.OverallStatus)
	}
	natstest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		var page struct {
			Total int `json:"total"`
		}
		if code := call("GET", "/api/v1/cckm/azure/keys?limit=1", tok.JWT, nil, &page); code != http.StatusOK {
			return fmt.Errorf("keys %d", code)
		}
		if page.Total != vaults*keys {
			return fmt.Errorf("%d keys listed, want %d", page.Total, vaults*keys)
		}
		return nil
	})
	// Every request went to the one routing listener, by host name.
	// One GetKey per key, and a second one per AES key for its size.
	var gets, aes int64
	for _, v := range m.Vaults {
		gets += emu.Counters(v.Name).Total(akvemu.OpGetKey)
		ev, _ := emu.Vault(v.Name)
		for _, k := range ev.Keys() {
			if k.Kty == akvemu.KtyOctHSM {
				aes++
			}
		}
	}
	if want := int64(vaults*keys) + aes; gets != want {
		t.Errorf("the emulator answered %d GetKey calls, want %d", gets, want)
	}
}
