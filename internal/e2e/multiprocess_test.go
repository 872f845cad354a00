package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
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
	"github.com/akvsync/akvsync/internal/keyring"
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
	// adminNATSPassword is the NATS admin's, used by the init step only.
	adminNATSPassword = "e2e-admin-nats-password"
)

// natsServer starts the nats-server binary with JetStream and akvsync's
// users and permissions from deploy/nats/accounts.conf.
func natsServer(t *testing.T, dir string) (string, *proc) {
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
	p := start(t, "nats-server", natsEnv, "-c", confFile)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	natstest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		nc, err := nats.Connect(url, nats.UserInfo("akvsync-api", apiPassword))
		if err != nil {
			return err
		}
		nc.Close()
		return nil
	})
	return url, p
}

type client struct {
	t     *testing.T
	base  string
	token string
	http  *http.Client // trusts the API's self-signed certificate
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
	resp, err := c.http.Do(req)
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

// cluster is the distributed topology: the nats-server binary with
// akvsync's users, the emulator (in-process, reached over HTTPS), worker
// processes and one API process.
type cluster struct {
	ctx        context.Context
	dir        string
	natsURL    string
	manifest   string
	masterKeys string
	jwtKey     []byte
	emu        *akvemu.Emulator
	api        *proc
	workers    map[string]*proc
	natsNodes  []*natsNode // a NATS cluster's nodes; empty with one server
	natsProc   *proc       // the single nats-server (nil with a cluster)
	init       *proc       // the init step (worker --init-topology as the NATS admin)
	replicas   int
	c          *client
	tok        auth.TokenResponse
}

type clusterOptions struct {
	vaults, keys int
	workers      []string
	workerArgs   []string
	// natsNodes > 1 runs a NATS cluster of that many nodes (JetStream R3);
	// 0 or 1 a single server.
	natsNodes int
	// natsLater: the caller starts the NATS nodes (cl.natsNodes[i].start)
	// after startCluster returns, and then calls cl.waitAPI; the API and
	// workers are started before any NATS server exists.
	natsLater bool
}

func startCluster(t *testing.T, o clusterOptions) *cluster {
	t.Helper()
	bin(t) // builds first (skipped under -short): the build is not the cluster's time
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel)
	cl := &cluster{ctx: ctx, dir: t.TempDir(), workers: map[string]*proc{}}
	if o.natsNodes > 1 {
		cl.natsNodes = natsCluster(t, cl.dir, o.natsNodes)
		cl.replicas = 3
		var urls []string
		for _, n := range cl.natsNodes {
			urls = append(urls, n.url)
			if !o.natsLater {
				n.start(t)
			}
		}
		cl.natsURL = strings.Join(urls, ",")
	} else {
		cl.natsURL, cl.natsProc = natsServer(t, cl.dir)
	}
	// The init step creates the topology as the NATS admin; the services'
	// own users may only bind to it, and wait for it.
	initArgs := []string{"--init-topology", "--nats-url", cl.natsURL, "--nats-user", events.RoleAdmin.User(), "--log-level", "debug"}
	if cl.replicas > 1 {
		initArgs = append(initArgs, "--replicas", fmt.Sprint(cl.replicas))
	}
	for i, a := range o.workerArgs {
		if a == "--task-ack-wait" && i+1 < len(o.workerArgs) {
			initArgs = append(initArgs, a, o.workerArgs[i+1])
		}
	}
	cl.init = start(t, "worker-init", []string{"AKVSYNC_NATS_PASSWORD=" + adminNATSPassword}, initArgs...)
	emu, err := akvemu.Start(ctx, akvemu.Config{Seed: akvemu.SeedSpec{Vaults: o.vaults, KeysPerVault: o.keys, Seed: 42}, DataDir: filepath.Join(cl.dir, "emu")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emu.Close() })
	cl.emu = emu
	cl.manifest = filepath.Join(cl.dir, "manifest.json")
	if err := emu.WriteManifest(cl.manifest); err != nil {
		t.Fatal(err)
	}
	// The API imports the emulator's connection into the registry, its
	// secret sealed with the master key; the workers know it only from
	// there.
	mk, err := secrets.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	cl.masterKeys = keyring.Format("m1", mk)
	for _, w := range o.workers {
		cl.startWorker(t, w, o.workerArgs...)
	}
	if cl.jwtKey, err = auth.GenerateKey(); err != nil {
		t.Fatal(err)
	}
	apiPort := freePort(t)
	args := []string{"--nats-url", cl.natsURL, "--nats-user", "akvsync-api", "--listen", fmt.Sprintf("127.0.0.1:%d", apiPort),
		"--data-dir", filepath.Join(cl.dir, "api"), "--tls-self-signed", "--emulator-manifest", cl.manifest, "--log-level", "debug"}
	if cl.replicas > 1 {
		args = append(args, "--replicas", fmt.Sprint(cl.replicas))
	}
	cl.api = start(t, "api", []string{
		"AKVSYNC_NATS_PASSWORD=" + apiPassword,
		"AKVSYNC_MASTER_KEYS=" + cl.masterKeys,
		"AKVSYNC_ADMIN_PASSWORD=" + adminPassword,
		"AKVSYNC_JWT_KEYS=" + keyring.Format("e2e", cl.jwtKey),
	}, args...)
	cl.c = &client{t: t, base: fmt.Sprintf("https://127.0.0.1:%d", apiPort)}
	// Registered after the processes' own cleanups, so it runs first: the
	// services stop together, then the NATS servers together.
	t.Cleanup(func() { cl.stopAll(t) })
	if o.natsLater {
		return cl
	}
	cl.waitAPI(t)
	return cl
}

// stopAll stops the API and the workers together, then the NATS servers
// together.
func (cl *cluster) stopAll(t *testing.T) {
	var services, nats []*proc
	if cl.api != nil {
		services = append(services, cl.api)
	}
	for _, w := range cl.workers {
		services = append(services, w)
	}
	stopAll(t, services...)
	if cl.natsProc != nil {
		nats = append(nats, cl.natsProc)
	}
	for _, n := range cl.natsNodes {
		if n.p != nil {
			nats = append(nats, n.p)
		}
	}
	stopAll(t, nats...)
}

// waitAPI waits until the API serves, logs in and registers the
// emulator's vaults.
func (cl *cluster) waitAPI(t *testing.T) {
	t.Helper()
	select {
	case err := <-cl.init.done:
		cl.init.done <- err
		if err != nil {
			t.Fatalf("the init step failed: %v\n%s", err, tail(cl.init.out.String(), 3000))
		}
	case <-cl.ctx.Done():
		t.Fatal("the init step did not end")
	}
	certFile := filepath.Join(cl.dir, "api", "tls-cert.pem")
	natstest.CheckFor(t, 2*time.Minute, 50*time.Millisecond, func() error {
		if cl.c.http != nil {
			return nil
		}
		pem, err := os.ReadFile(certFile)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("no certificate in %s yet", certFile)
		}
		cl.c.http = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
		return nil
	})
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		resp, err := cl.c.http.Get(cl.c.base + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz %d", resp.StatusCode)
		}
		return nil
	})
	cl.c.do("POST", "/api/v1/auth/tokens", map[string]string{"username": "admin", "password": adminPassword}, &cl.tok)
	cl.c.token = cl.tok.JWT
	bySub := map[string][]map[string]any{}
	for _, v := range cl.emu.Manifest().Vaults {
		bySub[v.SubscriptionID] = append(bySub[v.SubscriptionID], map[string]any{"name": v.Name, "properties": map[string]string{"vaultUri": v.URL}})
	}
	for sub, vs := range bySub {
		cl.c.do("POST", "/api/v1/cckm/azure/add-vaults", map[string]any{"connection": "emulator", "subscription_id": sub, "vaults": vs}, &map[string]any{})
	}
}

// startWorker starts (or restarts) a worker process with its own store.
func (cl *cluster) startWorker(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	if cl.replicas > 1 {
		args = append([]string{"--replicas", fmt.Sprint(cl.replicas)}, args...)
	}
	p := start(t, name, []string{"AKVSYNC_NATS_PASSWORD=" + workerPassword, "AKVSYNC_MASTER_KEYS=" + cl.masterKeys},
		append([]string{"--nats-url", cl.natsURL, "--nats-user", "akvsync-worker",
			"--store", filepath.Join(cl.dir, name+".db"), "--log-level", "debug"}, args...)...)
	cl.workers[name] = p
	return p
}

type jobJSON struct {
	ID             string            `json:"id"`
	OverallStatus  string            `json:"overall_status"`
	DetailedStatus map[string]string `json:"detailed_status"`
	KeyVaults      []string          `json:"key_vaults"`
	Abort          bool              `json:"abort"`
}

func (cl *cluster) syncAll(t *testing.T) jobJSON {
	t.Helper()
	var job jobJSON
	cl.c.do("POST", "/api/v1/cckm/azure/synchronization-jobs", map[string]any{"synchronize_all": true}, &job)
	return job
}

func (cl *cluster) waitJob(t *testing.T, id string) jobJSON {
	t.Helper()
	var job jobJSON
	natstest.CheckFor(t, 3*time.Minute, 100*time.Millisecond, func() error {
		cl.c.do("GET", "/api/v1/cckm/azure/synchronization-jobs/"+id, nil, &job)
		if job.OverallStatus == "in_progress" {
			return fmt.Errorf("job in progress: %v", job.DetailedStatus)
		}
		return nil
	})
	return job
}

// emulatorKeys lists the emulator's key names by vault.
func (cl *cluster) emulatorKeys() map[string]map[string]bool {
	want := map[string]map[string]bool{}
	for _, v := range cl.emu.Manifest().Vaults {
		ev, _ := cl.emu.Vault(v.Name)
		names := map[string]bool{}
		for _, k := range ev.Keys() {
			names[k.Name] = true
		}
		want[v.Name] = names
	}
	return want
}

// assertStoreHoldsEveryKeyOnce opens a stopped worker's bbolt file and
// compares it with the emulator.
func (cl *cluster) assertStoreHoldsEveryKeyOnce(t *testing.T, worker string, want map[string]map[string]bool) {
	t.Helper()
	st, err := store.Open(store.Config{Path: filepath.Join(cl.dir, worker+".db")})
	if err != nil {
		t.Fatalf("%s: reopen store: %v", worker, err)
	}
	defer st.Close()
	total := 0
	for _, names := range want {
		total += len(names)
	}
	if n := st.Stats().Keys; n != total {
		t.Errorf("%s holds %d keys, want %d", worker, n, total)
	}
	res, err := st.ListKeys(cl.ctx, events.KeyQuery{Limit: events.LimitAll, Sort: "key_name"})
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
				t.Errorf("%s: %s/%s appears %d times, want once", worker, vault, n, got[vault][n])
			}
		}
		if len(got[vault]) != len(names) {
			t.Errorf("%s: vault %s has %d keys, want %d", worker, vault, len(got[vault]), len(names))
		}
	}
}

// TestDistributedSyncAll runs the distributed topology: nats-server, one
// API process, two worker processes and the emulator, and syncs 20 vaults ×
// 200 keys. Every key must land in both workers' inventories exactly once.
func TestDistributedSyncAll(t *testing.T) {
	t.Parallel()
	const vaults, keys = 20, 200
	cl := startCluster(t, clusterOptions{vaults: vaults, keys: keys, workers: []string{"worker-1", "worker-2"}})
	job := cl.syncAll(t)
	if len(job.KeyVaults) != vaults {
		t.Fatalf("job has %d vaults, want %d", len(job.KeyVaults), vaults)
	}
	if job = cl.waitJob(t, job.ID); job.OverallStatus != "completed" {
		t.Fatalf("job ended %s: %v", job.OverallStatus, job.DetailedStatus)
	}
	var page struct {
		Total int `json:"total"`
	}
	cl.c.do("GET", "/api/v1/cckm/azure/keys?limit=1", nil, &page)
	if page.Total != vaults*keys {
		t.Fatalf("API lists %d keys, want %d", page.Total, vaults*keys)
	}

	t.Run("SchedulerUnderTheAPIUser", func(t *testing.T) {
		// A job config created through the API fires (armed here every
		// second, as the API user may) into one job the API process
		// creates, acks and announces under its NATS user's permissions.
		var cfg struct {
			ID string `json:"id"`
		}
		if code := cl.c.do("POST", "/api/v1/scheduler/job-configs", map[string]any{
			"name": "e2e-every-minute", "run_at": "* * * * *",
			"cckm_synchronization_params": map[string]any{"synchronize_all": true},
		}, &cfg); code != http.StatusCreated {
			t.Fatalf("create job config: %d", code)
		}
		// The fired event, as a dashboard (the monitor user) sees it.
		mon, err := nats.Connect(cl.natsURL, nats.UserInfo(events.RoleMonitor.User(), monitorPassword),
			nats.CustomInboxPrefix(events.RoleMonitor.InboxPrefix()))
		if err != nil {
			t.Fatal(err)
		}
		defer mon.Close()
		fired, err := mon.SubscribeSync(events.ScheduleEventSubject(cfg.ID, events.KindScheduleFired))
		if err != nil {
			t.Fatal(err)
		}
		if err := mon.Flush(); err != nil {
			t.Fatal(err)
		}
		nc, err := nats.Connect(cl.natsURL, nats.UserInfo("akvsync-api", apiPassword), nats.CustomInboxPrefix(events.RoleAPI.InboxPrefix()))
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		js, _ := jetstream.New(nc)
		if _, err := js.Publish(cl.ctx, events.ScheduleArmSubject(cfg.ID), []byte(`{}`),
			jetstream.WithScheduleCron("* * * * * *"), jetstream.WithScheduleTarget(events.ScheduleFireSubject(cfg.ID))); err != nil {
			t.Fatalf("arm every second as the API user: %v", err)
		}
		var jobs struct {
			Total     int       `json:"total"`
			Resources []jobJSON `json:"resources"`
		}
		firedSeen := 0
		natstest.CheckFor(t, time.Minute, 100*time.Millisecond, func() error {
			if fired.IsValid() && firedSeen == 0 {
				if _, err := fired.NextMsg(10 * time.Millisecond); err == nil {
					firedSeen++
				}
			}
			if firedSeen == 0 {
				return fmt.Errorf("no schedule fired event")
			}
			if code := cl.c.do("GET", "/api/v1/cckm/azure/synchronization-jobs?job_config_id="+cfg.ID, nil, &jobs); code != http.StatusOK || jobs.Total == 0 {
				return fmt.Errorf("no job of the config listed (%d)", code)
			}
			return nil
		})
		var configs struct {
			Total int `json:"total"`
		}
		if code := cl.c.do("GET", "/api/v1/scheduler/job-configs?name=e2e-every-minute", nil, &configs); code != http.StatusOK || configs.Total != 1 {
			t.Fatalf("list job configs: %d, %d", code, configs.Total)
		}
		if code := cl.c.do("DELETE", "/api/v1/scheduler/job-configs/"+cfg.ID, nil, nil); code != http.StatusNoContent {
			t.Fatalf("delete job config: %d", code)
		}
		if job := cl.waitJob(t, jobs.Resources[0].ID); job.OverallStatus != "completed" {
			t.Fatalf("scheduled job ended %s", job.OverallStatus)
		}
	})

	t.Run("NoPermissionViolation", func(t *testing.T) {
		// The services ran a whole job as their least-privilege users:
		// nats-server refused none of their requests.
		if out := cl.natsProc.out.String(); strings.Contains(out, "Violation") {
			t.Fatalf("nats-server refused a service request:\n%s", violations(out))
		}
	})

	t.Run("NoSecretInLogsOrResponses", func(t *testing.T) {
		secretsToHide := map[string]string{
			"client secret": cl.emu.Manifest().ClientSecret, "admin password": adminPassword, "access token": cl.tok.JWT,
			"refresh token": cl.tok.RefreshToken, "master key": cl.masterKeys, "JWT key": keyring.Format("e2e", cl.jwtKey),
			"API NATS password": apiPassword, "worker NATS password": workerPassword,
		}
		var bodies strings.Builder
		for _, path := range []string{"/api/v1/cckm/azure/vaults?limit=-1", "/api/v1/cckm/azure/synchronization-jobs?limit=-1",
			"/api/v1/cckm/azure/keys?limit=50", "/api/v1/connectionmgmt/services/azure/connections"} {
			var raw json.RawMessage
			if code := cl.c.do("GET", path, nil, nil); code == http.StatusOK {
				cl.c.do("GET", path, nil, &raw)
				bodies.Write(raw)
			}
		}
		outputs := map[string]string{"api responses": bodies.String(), "api log": cl.api.out.String()}
		for name, w := range cl.workers {
			outputs[name+" log"] = w.out.String()
		}
		if !strings.Contains(cl.api.out.String(), `"level":"debug"`) && !strings.Contains(cl.api.out.String(), `"level":"info"`) {
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

	t.Run("WorkersShareTheSubscriptionBudget", func(t *testing.T) {
		// Both workers synced vaults of the emulator's one subscription at
		// once, through their leases in the budget bucket (which the
		// worker user's permissions must allow).
		shared := false
		for _, w := range cl.workers {
			for _, line := range strings.Split(w.out.String(), "\n") {
				shared = shared || strings.Contains(line, "subscription budget shared") && strings.Contains(line, `"workers":2`)
			}
		}
		if !shared {
			t.Error("no worker logged sharing its subscription's budget with the other")
		}
	})

	t.Run("APIUserCannotConsumeVaultTasks", func(t *testing.T) {
		// nats-server answers a refused request with a permissions
		// violation to the client (and no reply): each step below ends
		// when that arrives, instead of waiting out a request timeout.
		violations := make(chan error, 8)
		nc, err := nats.Connect(cl.natsURL, nats.UserInfo("akvsync-api", apiPassword), nats.CustomInboxPrefix(events.RoleAPI.InboxPrefix()),
			nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
				if errors.Is(err, nats.ErrPermissionViolation) {
					select {
					case violations <- err:
					default:
					}
				}
			}))
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		js, _ := jetstream.New(nc)
		// refused runs op until nats-server refuses one of its requests
		// (true) or op returns (false, with op's error).
		refused := func(op func(ctx context.Context) error) (bool, error) {
			ctx, cancel := context.WithTimeout(cl.ctx, 30*time.Second)
			defer cancel()
			errc := make(chan error, 1)
			go func() { errc <- op(ctx) }()
			select {
			case v := <-violations:
				cancel()
				<-errc
				return true, v
			case err := <-errc:
				return false, err
			}
		}
		if ok, err := refused(func(ctx context.Context) error {
			_, err := js.CreateOrUpdateConsumer(ctx, events.StreamTasks, jetstream.ConsumerConfig{Durable: "thief"})
			return err
		}); !ok {
			t.Fatalf("the API user's consumer on the tasks stream was not refused: %v", err)
		}
		// nats-server logs the refusal: NoPermissionViolation's check
		// can fail.
		natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
			if !strings.Contains(cl.natsProc.out.String(), "Violation") {
				return fmt.Errorf("nats-server logged no violation")
			}
			return nil
		})
		var cons jetstream.Consumer
		if ok, err := refused(func(ctx context.Context) error {
			c, err := js.Consumer(ctx, events.StreamTasks, events.ConsumerVaultSyncer)
			cons = c
			return err
		}); ok {
			t.Log("the API user may not even look the vault syncers' consumer up")
			return
		} else if err != nil {
			t.Fatalf("looking up the vault syncers' consumer: %v", err)
		}
		if ok, err := refused(func(ctx context.Context) error {
			_, err := cons.Next(jetstream.FetchContext(ctx))
			return err
		}); !ok {
			t.Fatalf("the API user's fetch of a vault task was not refused: %v", err)
		}
	})

	// Stop the workers so their bbolt files can be opened, then compare.
	want := cl.emulatorKeys()
	var names []string
	var procs []*proc
	for name, p := range cl.workers {
		names, procs = append(names, name), append(procs, p)
	}
	for i, err := range stopAll(t, procs...) {
		if err != nil {
			t.Errorf("%s exited with %v", names[i], err)
		}
	}
	for name := range cl.workers {
		cl.assertStoreHoldsEveryKeyOnce(t, name, want)
	}
}

// TestWorkerKilledMidSync kills a worker with SIGKILL while it syncs: its
// vault tasks go to the other worker once their ack wait runs out, the job
// completes, and the killed worker's bbolt file reopens and catches up.
func TestWorkerKilledMidSync(t *testing.T) {
	t.Parallel()
	const vaults, keys = 6, 300
	cl := startCluster(t, clusterOptions{vaults: vaults, keys: keys, workers: []string{"worker-1", "worker-2"},
		workerArgs: []string{"--task-ack-wait", "2s", "--vault-parallelism", "2", "--get-concurrency", "2"}})
	for _, v := range cl.emu.Manifest().Vaults {
		if err := cl.emu.SetFaults(v.Name, akvemu.Faults{Latency: 5 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
	}
	job := cl.syncAll(t)
	natstest.CheckFor(t, time.Minute, 10*time.Millisecond, func() error {
		var gets int64
		for _, v := range cl.emu.Manifest().Vaults {
			gets += cl.emu.Counters(v.Name).Total(akvemu.OpGetKey)
		}
		if gets < 200 {
			return fmt.Errorf("%d gets so far", gets)
		}
		return nil
	})
	w1 := cl.workers["worker-1"]
	if err := w1.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-w1.done
	w1.done <- nil
	if job = cl.waitJob(t, job.ID); job.OverallStatus != "completed" {
		t.Fatalf("job ended %s: %v", job.OverallStatus, job.DetailedStatus)
	}
	// The killed worker's vaults were taken over: worker-2 ran a second
	// delivery of at least one task.
	if out := cl.workers["worker-2"].out.String(); !strings.Contains(out, `"attempt":2`) {
		t.Fatalf("worker-2 never ran a redelivered task; log:\n%s", tail(out, 3000))
	}
	want := cl.emulatorKeys()
	// The killed worker's store reopens after the crash and catches up.
	cl.startWorker(t, "worker-1")
	if err := cl.workers["worker-2"].stop(t); err != nil {
		t.Errorf("worker-2 exited with %v", err)
	}
	// Only worker-1 answers queries now, after catching up with the
	// streams (read-your-writes).
	natstest.CheckFor(t, time.Minute, 100*time.Millisecond, func() error {
		var page struct {
			Total int `json:"total"`
		}
		if code := cl.c.do("GET", "/api/v1/cckm/azure/keys?limit=1", nil, nil); code != http.StatusOK {
			return fmt.Errorf("keys: %d", code)
		}
		cl.c.do("GET", "/api/v1/cckm/azure/keys?limit=1", nil, &page)
		if page.Total != vaults*keys {
			return fmt.Errorf("restarted worker lists %d keys, want %d", page.Total, vaults*keys)
		}
		return nil
	})
	if err := cl.workers["worker-1"].stop(t); err != nil {
		t.Errorf("worker-1 exited with %v", err)
	}
	cl.assertStoreHoldsEveryKeyOnce(t, "worker-1", want)
	cl.assertStoreHoldsEveryKeyOnce(t, "worker-2", want)
}

// violations picks nats-server's permission violation lines.
func violations(out string) string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "Violation") {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}
