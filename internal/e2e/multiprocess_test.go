package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/akvsync/akvsync/internal/auth"
	"github.com/akvsync/akvsync/internal/natstest"
	"github.com/akvsync/akvsync/internal/secrets"
	"github.com/akvsync/akvsync/internal/store"
	"github.com/akvsync/akvsync/pkg/akvemu"
	"github.com/akvsync/akvsync/pkg/events"
)

const (
	apiPassword    = "e2e-api-nats-password"
	workerPassword = "e2e-worker-nats-password"
	adminPassword  = "e2e-admin-password-123"
)

// natsServer starts the nats-server binary with JetStream and akvsync's
// users and permissions from deploy/nats/accounts.conf.
func natsServer(t *testing.T, dir string) string {
	t.Helper()
	port := freePort(t)
	_, file, _, _ := runtime.Caller(0)
	accounts, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "deploy", "nats", "accounts.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "accounts.conf"), accounts, 0o600); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf("host: 127.0.0.1\nport: %d\njetstream { store_dir: %q }\ninclude ./accounts.conf\n", port, filepath.Join(dir, "js"))
	confFile := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	start(t, "nats-server", []string{
		"AKVSYNC_NATS_API_PASSWORD=" + apiPassword,
		"AKVSYNC_NATS_WORKER_PASSWORD=" + workerPassword,
		"AKVSYNC_NATS_DASHBOARD_PASSWORD=e2e-dashboard",
	}, "-c", confFile)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	natstest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		nc, err := nats.Connect(url, nats.UserInfo("akvsync-api", apiPassword))
		if err != nil {
			return err
		}
		nc.Close()
		return nil
	})
	return url
}

type client struct {
	t     *testing.T
	base  string
	token string
}

func (c *client) do(method, path string, body any, out any) int {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, c.base+path, rd)
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			c.t.Fatalf("%s %s: decode %q: %v", method, path, raw, err)
		}
	}
	if resp.StatusCode >= 300 && out != nil {
		c.t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	return resp.StatusCode
}

// TestDistributedSyncAll runs the distributed topology: nats-server, one
// API process, two worker processes and the emulator, and syncs 20 vaults ×
// 200 keys. Every key must land in both workers' inventories exactly once.
func TestDistributedSyncAll(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	const vaults, keys = 20, 200
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	natsURL := natsServer(t, dir)

	emu, err := akvemu.Start(ctx, akvemu.Config{Seed: akvemu.SeedSpec{Vaults: vaults, KeysPerVault: keys, Seed: 42}, DataDir: filepath.Join(dir, "emu")})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	manifest := filepath.Join(dir, "manifest.json")
	if err := emu.WriteManifest(manifest); err != nil {
		t.Fatal(err)
	}

	// The API imports the emulator's connection into the registry, its
	// secret sealed with the master key; the workers know it only from
	// there.
	mk, err := secrets.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	masterKeys := secrets.FormatKey("m1", mk)
	var workers []*proc
	for _, w := range []string{"worker-1", "worker-2"} {
		workers = append(workers, start(t, w, []string{"AKVSYNC_NATS_PASSWORD=" + workerPassword, "AKVSYNC_MASTER_KEYS=" + masterKeys},
			"--nats-url", natsURL, "--nats-user", "akvsync-worker",
			"--store", filepath.Join(dir, w+".db"), "--log-level", "debug"))
	}
	key, err := auth.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	apiPort := freePort(t)
	api := start(t, "api", []string{
		"AKVSYNC_NATS_PASSWORD=" + apiPassword,
		"AKVSYNC_MASTER_KEYS=" + masterKeys,
		"AKVSYNC_ADMIN_PASSWORD=" + adminPassword,
		"AKVSYNC_JWT_KEYS=" + auth.FormatKeyRingEntry("e2e", key),
	}, "--nats-url", natsURL, "--nats-user", "akvsync-api", "--listen", fmt.Sprintf("127.0.0.1:%d", apiPort),
		"--emulator-manifest", manifest, "--log-level", "debug")

	c := &client{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", apiPort)}
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		resp, err := http.Get(c.base + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz %d", resp.StatusCode)
		}
		return nil
	})
	var tok auth.TokenResponse
	c.do("POST", "/api/v1/auth/tokens", map[string]string{"username": "admin", "password": adminPassword}, &tok)
	c.token = tok.JWT

	m := emu.Manifest()
	bySub := map[string][]map[string]any{}
	for _, v := range m.Vaults {
		bySub[v.SubscriptionID] = append(bySub[v.SubscriptionID], map[string]any{"name": v.Name, "properties": map[string]string{"vaultUri": v.URL}})
	}
	for sub, vs := range bySub {
		c.do("POST", "/api/v1/cckm/azure/add-vaults", map[string]any{"connection": "emulator", "subscription_id": sub, "vaults": vs}, &map[string]any{})
	}

	var job struct {
		ID             string            `json:"id"`
		OverallStatus  string            `json:"overall_status"`
		DetailedStatus map[string]string `json:"detailed_status"`
		KeyVaults      []string          `json:"key_vaults"`
	}
	c.do("POST", "/api/v1/cckm/azure/synchronization-jobs", map[string]any{"synchronize_all": true}, &job)
	if len(job.KeyVaults) != vaults {
		t.Fatalf("job has %d vaults, want %d", len(job.KeyVaults), vaults)
	}
	natstest.CheckFor(t, 2*time.Minute, 100*time.Millisecond, func() error {
		c.do("GET", "/api/v1/cckm/azure/synchronization-jobs/"+job.ID, nil, &job)
		if job.OverallStatus == "in_progress" {
			return fmt.Errorf("job in progress: %v", job.DetailedStatus)
		}
		return nil
	})
	if job.OverallStatus != "completed" {
		t.Fatalf("job ended %s: %v", job.OverallStatus, job.DetailedStatus)
	}
	var page struct {
		Total int `json:"total"`
	}
	c.do("GET", "/api/v1/cckm/azure/keys?limit=1", nil, &page)
	if page.Total != vaults*keys {
		t.Fatalf("API lists %d keys, want %d", page.Total, vaults*keys)
	}

	t.Run("NoSecretInLogsOrResponses", func(t *testing.T) {
		secretsToHide := map[string]string{
			"client secret": m.ClientSecret, "admin password": adminPassword, "access token": tok.JWT,
			"refresh token": tok.RefreshToken, "master key": masterKeys, "JWT key": auth.FormatKeyRingEntry("e2e", key),
			"API NATS password": apiPassword, "worker NATS password": workerPassword,
		}
		var bodies strings.Builder
		for _, path := range []string{"/api/v1/cckm/azure/vaults?limit=-1", "/api/v1/cckm/azure/synchronization-jobs?limit=-1",
			"/api/v1/cckm/azure/keys?limit=50", "/api/v1/connectionmgmt/services/azure/connections"} {
			var raw json.RawMessage
			if code := c.do("GET", path, nil, nil); code == http.StatusOK {
				c.do("GET", path, nil, &raw)
				bodies.Write(raw)
			}
		}
		outputs := map[string]string{"api responses": bodies.String(), "api log": api.out.String()}
		for _, w := range workers {
			outputs[w.name+" log"] = w.out.String()
		}
		if !strings.Contains(api.out.String(), `"level":"debug"`) && !strings.Contains(api.out.String(), `"level":"info"`) {
			t.Fatal("the API logged nothing: the check would prove nothing")
		}
		for where, text := range outputs {
			for what, secret := range secretsToHide {
				if secret != "" && strings.Contains(text, secret) {
					t.Errorf("%s contains the %s", where, what)
				}
			}
		}
	})

	t.Run("APIUserCannotConsumeVaultTasks", func(t *testing.T) {
		nc, err := nats.Connect(natsURL, nats.UserInfo("akvsync-api", apiPassword))
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		js, _ := jetstream.New(nc)
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		defer ccancel()
		if _, err := js.CreateOrUpdateConsumer(cctx, events.StreamTasks, jetstream.ConsumerConfig{Durable: "thief"}); err == nil {
			t.Fatal("the API user created a consumer on the tasks stream")
		}
		cons, err := js.Consumer(cctx, events.StreamTasks, events.ConsumerVaultSyncer)
		if err == nil {
			if _, err := cons.Next(jetstream.FetchMaxWait(time.Second)); err == nil {
				t.Fatal("the API user fetched a vault task")
			}
		}
	})

	want := map[string]map[string]bool{}
	for _, v := range m.Vaults {
		ev, _ := emu.Vault(v.Name)
		names := map[string]bool{}
		for _, k := range ev.Keys() {
			names[k.Name] = true
		}
		want[v.Name] = names
	}
	// Stop the workers so their bbolt files can be opened, then compare.
	for _, p := range workers {
		if err := p.stop(t); err != nil {
			t.Errorf("%s exited with %v", p.name, err)
		}
	}
	for _, w := range []string{"worker-1", "worker-2"} {
		st, err := store.Open(store.Config{Path: filepath.Join(dir, w+".db")})
		if err != nil {
			t.Fatal(err)
		}
		if n := st.Stats().Keys; n != vaults*keys {
			t.Errorf("%s holds %d keys, want %d", w, n, vaults*keys)
		}
		res, err := st.ListKeys(ctx, events.KeyQuery{Limit: events.LimitAll, Sort: "key_name"})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]map[string]int{}
		for _, r := range res.Resources {
			if got[r.VaultName] == nil {
				got[r.VaultName] = map[string]int{}
			}
			got[r.VaultName][r.Name]++
		}
		for vault, names := range want {
			for n := range names {
				if got[vault][n] != 1 {
					t.Errorf("%s: %s/%s appears %d times, want once", w, vault, n, got[vault][n])
				}
			}
			if len(got[vault]) != len(names) {
				t.Errorf("%s: vault %s has %d keys, want %d", w, vault, len(got[vault]), len(names))
			}
		}
		_ = st.Close()
	}
}
