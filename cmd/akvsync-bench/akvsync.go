package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/akvsync/akvsync/internal/auth"
	"github.com/akvsync/akvsync/internal/keyring"
	"github.com/akvsync/akvsync/internal/secrets"
)

const (
	benchAdminPassword = "akvsync-bench-admin-password" // #nosec G101 -- the throwaway password of the benchmark's own local, temporary deployment
	benchNATSUser      = "akvsync-bench"
	benchNATSPassword  = "akvsync-bench-nats-password" // #nosec G101 -- the throwaway NATS password of the benchmark's own local, temporary deployment
	// addVaultsChunk is how many vaults one add-vaults request carries
	// (the API's default maximum).
	addVaultsChunk = 1000
	// tokenLifetime outlives any figure, so a long sync needs no new
	// token (a 401 still takes one).
	tokenLifetime = "12h"
)

// deployment is a running akvsync: an embedded API, or nats-server, an API
// and worker processes.
type deployment struct {
	name    string
	dir     string
	api     *proc
	nats    *proc
	workers []*proc
	c       *apiClient
	// natsURL is where extra workers connect (distributed, or embedded
	// with --nats-listen).
	natsURL string
	env     []string
}

// startEmbedded runs `api --embedded` with the emulator's manifest.
// natsListen opens the embedded NATS server to worker processes.
func (e *env) startEmbedded(ctx context.Context, name string, em *emulator, natsListen bool, args ...string) (*deployment, error) {
	dir, err := e.subdir(name)
	if err != nil {
		return nil, err
	}
	d := &deployment{name: name, dir: dir}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	apiArgs := []string{"--embedded", "--data-dir", filepath.Join(dir, "data"), "--listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--emulator-manifest", em.manifest, "--token-lifetime", tokenLifetime, "--log-level", "warn"}
	if natsListen {
		np, err := freePort()
		if err != nil {
			return nil, err
		}
		apiArgs = append(apiArgs, "--nats-listen", fmt.Sprintf("127.0.0.1:%d", np), "--nats-user", benchNATSUser)
		d.natsURL = fmt.Sprintf("nats://127.0.0.1:%d", np)
	}
	d.env = []string{"AKVSYNC_ADMIN_PASSWORD=" + benchAdminPassword, "AKVSYNC_NATS_PASSWORD=" + benchNATSPassword}
	if d.api, err = e.start(dir, "api", "api", d.env, append(apiArgs, args...)...); err != nil {
		return nil, err
	}
	d.c = newAPIClient(fmt.Sprintf("http://127.0.0.1:%d", port))
	if err := d.waitReady(ctx); err != nil {
		d.stop()
		return nil, err
	}
	return d, nil
}

// startDistributed runs the nats-server binary, one API process and
// workers worker processes, each with its own bbolt file.
func (e *env) startDistributed(ctx context.Context, name string, em *emulator, workers int, workerArgs ...string) (*deployment, error) {
	dir, err := e.subdir(name)
	if err != nil {
		return nil, err
	}
	d := &deployment{name: name, dir: dir}
	np, err := freePort()
	if err != nil {
		return nil, err
	}
	// deploy/nats/jetstream.conf without its users: loopback only.
	conf := fmt.Sprintf("host: 127.0.0.1\nport: %d\nmax_payload: 8MB\njetstream {\n  store_dir: %q\n  max_memory_store: 256MB\n  max_file_store: 20GB\n}\n",
		np, filepath.Join(dir, "nats"))
	if err := os.WriteFile(filepath.Join(dir, "nats.conf"), []byte(conf), 0o600); err != nil {
		return nil, err
	}
	if d.nats, err = e.start(dir, "nats-server", "nats-server", nil, "-c", filepath.Join(dir, "nats.conf")); err != nil {
		return nil, err
	}
	d.natsURL = fmt.Sprintf("nats://127.0.0.1:%d", np)
	mk, err := secrets.GenerateKey()
	if err != nil {
		return nil, err
	}
	jk, err := auth.GenerateKey()
	if err != nil {
		return nil, err
	}
	d.env = []string{"AKVSYNC_ADMIN_PASSWORD=" + benchAdminPassword, "AKVSYNC_MASTER_KEYS=" + keyring.Format("m1", mk),
		"AKVSYNC_JWT_KEYS=" + keyring.Format("k1", jk)}
	err = waitFor(ctx, time.Minute, 100*time.Millisecond, func() error {
		if err := d.nats.exited(); err != nil {
			return err
		}
		if !natsReady(d.natsURL) {
			return errors.New("nats-server not listening yet")
		}
		return nil
	})
	if err != nil {
		d.stop()
		return nil, err
	}
	// The init step creates the topology (the services only bind to it),
	// with the workers' task ack wait.
	initArgs := []string{"--init-topology", "--nats-url", d.natsURL, "--log-level", "warn"}
	for i, a := range workerArgs {
		if a == "--task-ack-wait" && i+1 < len(workerArgs) {
			initArgs = append(initArgs, a, workerArgs[i+1])
		}
	}
	initProc, err := e.start(dir, "init", "worker", nil, initArgs...)
	if err != nil {
		d.stop()
		return nil, err
	}
	select {
	case <-initProc.done:
		if initProc.err != nil {
			d.stop()
			return nil, fmt.Errorf("init step: %w; log %s:\n%s", initProc.err, initProc.logPath, tailFile(initProc.logPath, 2000))
		}
	case <-ctx.Done():
		d.stop()
		return nil, ctx.Err()
	}
	// Workers first, as in deploy/local: the API's first query needs one.
	for i := range workers {
		if err := d.startWorker(e, em, i+1, workerArgs...); err != nil {
			d.stop()
			return nil, err
		}
	}
	port, err := freePort()
	if err != nil {
		d.stop()
		return nil, err
	}
	d.api, err = e.start(dir, "api", "api", d.env, "--nats-url", d.natsURL, "--listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--data-dir", filepath.Join(dir, "api"), "--emulator-manifest", em.manifest, "--token-lifetime", tokenLifetime, "--log-level", "warn")
	if err != nil {
		d.stop()
		return nil, err
	}
	d.c = newAPIClient(fmt.Sprintf("http://127.0.0.1:%d", port))
	if err := d.waitReady(ctx); err != nil {
		d.stop()
		return nil, err
	}
	return d, nil
}

// startWorker adds worker process i, with the emulator connection from
// its manifest.
func (d *deployment) startWorker(e *env, em *emulator, i int, args ...string) error {
	env := []string{}
	base := []string{"--nats-url", d.natsURL, "--store", filepath.Join(d.dir, fmt.Sprintf("worker-%d.db", i)),
		"--emulator-manifest", em.manifest, "--log-level", "warn"}
	if d.api != nil && d.nats == nil { // joins an embedded server
		base = append(base, "--nats-user", benchNATSUser)
		env = append(env, "AKVSYNC_NATS_PASSWORD="+benchNATSPassword)
	}
	p, err := e.start(d.dir, fmt.Sprintf("worker-%d", i), "worker", env, append(base, args...)...)
	if err != nil {
		return err
	}
	d.workers = append(d.workers, p)
	return nil
}

func natsReady(url string) bool {
	u := url[len("nats://"):]
	c, err := net.DialTimeout("tcp", u, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// waitReady waits for /readyz and takes a token.
func (d *deployment) waitReady(ctx context.Context) error {
	err := waitFor(ctx, 2*time.Minute, 100*time.Millisecond, func() error {
		for _, p := range append([]*proc{d.api, d.nats}, d.workers...) {
			if p != nil {
				if err := p.exited(); err != nil {
					return err
				}
			}
		}
		code, _, err := d.c.raw(ctx, http.MethodGet, "/readyz", nil, false)
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("readyz %d", code)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s: API not ready: %w", d.name, err)
	}
	return d.c.login(ctx)
}

// stop stops the processes: API, workers, then NATS.
func (d *deployment) stop() {
	if d.api != nil {
		_ = d.api.stop()
	}
	var wg sync.WaitGroup
	for _, w := range d.workers {
		wg.Add(1)
		go func() { defer wg.Done(); _ = w.stop() }()
	}
	wg.Wait()
	if d.nats != nil {
		_ = d.nats.stop()
	}
}

// register adds every emulator vault through POST /add-vaults, in chunks,
// by subscription. hostURLs registers the host-routing URLs.
func (d *deployment) register(ctx context.Context, em *emulator, hostURLs bool) error {
	type vault struct {
		Name       string            `json:"name"`
		Properties map[string]string `json:"properties"`
	}
	bySub := map[string][]vault{}
	var order []string
	for _, v := range em.m.Vaults {
		uri := v.URL
		if hostURLs {
			if v.HostURL == "" {
				return errors.New("the emulator gave no host_url: is it in host-routing mode?")
			}
			uri = v.HostURL
		}
		if _, ok := bySub[v.SubscriptionID]; !ok {
			order = append(order, v.SubscriptionID)
		}
		bySub[v.SubscriptionID] = append(bySub[v.SubscriptionID], vault{Name: v.Name, Properties: map[string]string{"vaultUri": uri}})
	}
	for _, sub := range order {
		vs := bySub[sub]
		for i := 0; i < len(vs); i += addVaultsChunk {
			body := map[string]any{"connection": "emulator", "subscription_id": sub, "vaults": vs[i:min(len(vs), i+addVaultsChunk)]}
			if err := d.c.call(ctx, http.MethodPost, "/api/v1/cckm/azure/add-vaults", body, nil); err != nil {
				return fmt.Errorf("register vaults: %w", err)
			}
		}
	}
	return nil
}

// syncResult is one sync-all as a user sees it.
type syncResult struct {
	JobID  string `json:"job_id"`
	Status string `json:"status"`
	// Accepted is the POST's answer time; Completed the time from the POST
	// until the job reported a terminal status; Queryable until the keys
	// list showed every key.
	Accepted  time.Duration `json:"accepted_ns"`
	Completed time.Duration `json:"completed_ns"`
	Queryable time.Duration `json:"queryable_ns"`
	Keys      int           `json:"keys"`
}

// keysPerSecond is the keys synced per second until they were queryable.
func (r syncResult) keysPerSecond() float64 { return float64(r.Keys) / r.Queryable.Seconds() }

// jobView is the part of a job the benchmark reads; other helpers are
// changing the rest of its shape.
type jobView struct {
	ID            string `json:"id"`
	OverallStatus string `json:"overall_status"`
}

// startSyncAll posts a sync-all job.
func (d *deployment) startSyncAll(ctx context.Context) (jobView, time.Duration, error) {
	var job jobView
	start := time.Now()
	err := d.c.call(ctx, http.MethodPost, "/api/v1/cckm/azure/synchronization-jobs", map[string]any{"synchronize_all": true}, &job)
	return job, time.Since(start), err
}

// syncAll runs a sync-all job and waits until it ended and the keys list
// shows wantKeys keys. onPoll, if set, runs at every poll.
func (d *deployment) syncAll(ctx context.Context, wantKeys int, poll, timeout time.Duration) (syncResult, error) {
	start := time.Now()
	job, accepted, err := d.startSyncAll(ctx)
	if err != nil {
		return syncResult{}, err
	}
	res := syncResult{JobID: job.ID, Accepted: accepted, Keys: wantKeys}
	if err := d.waitJob(ctx, job.ID, poll, timeout, &res.Status); err != nil {
		return res, err
	}
	res.Completed = time.Since(start)
	if res.Status != "completed" {
		return res, fmt.Errorf("job %s ended %s", job.ID, res.Status)
	}
	if err := d.waitKeys(ctx, wantKeys, poll, timeout); err != nil {
		return res, err
	}
	res.Queryable = time.Since(start)
	return res, nil
}

// waitJob polls GET …/synchronization-jobs/{id} until it is no longer in
// progress.
func (d *deployment) waitJob(ctx context.Context, id string, poll, timeout time.Duration, status *string) error {
	return waitFor(ctx, timeout, poll, func() error {
		for _, p := range append([]*proc{d.api, d.nats}, d.workers...) {
			if p != nil {
				if err := p.exited(); err != nil {
					return fmt.Errorf("%w: %w", errProcessDied, err)
				}
			}
		}
		var j jobView
		if err := d.c.call(ctx, http.MethodGet, "/api/v1/cckm/azure/synchronization-jobs/"+id, nil, &j); err != nil {
			return err
		}
		*status = j.OverallStatus
		if j.OverallStatus == "in_progress" || j.OverallStatus == "" {
			return fmt.Errorf("job %s %s", id, j.OverallStatus)
		}
		return nil
	})
}

// waitKeys polls the keys list until its total is want.
func (d *deployment) waitKeys(ctx context.Context, want int, poll, timeout time.Duration) error {
	return waitFor(ctx, timeout, poll, func() error {
		n, err := d.keyTotal(ctx)
		if err != nil {
			return err
		}
		if n != want {
			return fmt.Errorf("keys list shows %d keys, want %d", n, want)
		}
		return nil
	})
}

func (d *deployment) keyTotal(ctx context.Context) (int, error) {
	var page struct {
		Total int `json:"total"`
	}
	err := d.c.call(ctx, http.MethodGet, "/api/v1/cckm/azure/keys?limit=1", nil, &page)
	return page.Total, err
}

// apiClient talks to the akvsync HTTP API as a user would.
type apiClient struct {
	base string
	hc   *http.Client
	mu   sync.Mutex
	jwt  string
}

func newAPIClient(base string) *apiClient {
	return &apiClient{base: base, hc: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}, Timeout: 10 * time.Minute}}
}

// login takes a token from POST /api/v1/auth/tokens.
func (c *apiClient) login(ctx context.Context) error {
	body, _ := json.Marshal(map[string]string{"username": auth.DefaultBootstrapAdminUsername, "password": benchAdminPassword})
	code, raw, err := c.raw(ctx, http.MethodPost, "/api/v1/auth/tokens", body, false)
	if err != nil {
		return err
	}
	if code != http.StatusOK && code != http.StatusCreated {
		return fmt.Errorf("token: %d %s", code, raw)
	}
	var tok auth.TokenResponse
	if err := json.Unmarshal(raw, &tok); err != nil {
		return fmt.Errorf("token: %w", err)
	}
	c.mu.Lock()
	c.jwt = tok.JWT
	c.mu.Unlock()
	return nil
}

// raw sends one request and reads the whole answer.
func (c *apiClient) raw(ctx context.Context, method, path string, body []byte, authn bool) (int, []byte, error) {
	resp, err := c.send(ctx, method, path, body, authn)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, err
}

func (c *apiClient) send(ctx context.Context, method, path string, body []byte, authn bool) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if authn {
		c.mu.Lock()
		req.Header.Set("Authorization", "Bearer "+c.jwt)
		c.mu.Unlock()
	}
	return c.hc.Do(req)
}

// stream sends an authenticated GET and returns the open response (a new
// token is taken once on 401).
func (c *apiClient) stream(ctx context.Context, path string) (*http.Response, error) {
	resp, err := c.send(ctx, http.MethodGet, path, nil, true)
	if err == nil && resp.StatusCode == http.StatusUnauthorized {
		resp.Body.Close()
		if err := c.login(ctx); err != nil {
			return nil, err
		}
		resp, err = c.send(ctx, http.MethodGet, path, nil, true)
	}
	return resp, err
}

// call sends an authenticated JSON request; a non-2xx answer is an
// error. A 401 takes a new token once.
func (c *apiClient) call(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	code, raw, err := c.raw(ctx, method, path, body, true)
	if err == nil && code == http.StatusUnauthorized {
		if err := c.login(ctx); err != nil {
			return err
		}
		code, raw, err = c.raw(ctx, method, path, body, true)
	}
	if err != nil {
		return err
	}
	if code >= 300 {
		if len(raw) > 300 {
			raw = raw[:300]
		}
		return &httpError{Method: method, Path: path, Code: code, Body: string(raw)}
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("%s %s: decode: %w", method, path, err)
		}
	}
	return nil
}

// httpError is a non-2xx answer of the API.
type httpError struct {
	Method, Path string
	Code         int
	Body         string
}

func (e *httpError) Error() string {
	return e.Method + " " + e.Path + ": " + strconv.Itoa(e.Code) + " " + e.Body
}

// timedGet measures one authenticated GET, body read, and returns its
// duration, status and body size.
func (c *apiClient) timedGet(ctx context.Context, path string) (time.Duration, int, int64, error) {
	start := time.Now()
	resp, err := c.stream(ctx, path)
	if err != nil {
		return 0, 0, 0, err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return time.Since(start), resp.StatusCode, n, err
}
