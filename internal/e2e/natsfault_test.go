package e2e

import (
	"context"
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

	"github.com/akvsync/akvsync/internal/natstest"
	"github.com/akvsync/akvsync/pkg/akvemu"
	"github.com/akvsync/akvsync/pkg/events"
)

// natsNode is one nats-server process of a cluster.
type natsNode struct {
	name string // server name, n1…
	conf string
	url  string
	p    *proc
}

// monitorPassword is the NATS monitoring user's.
const monitorPassword = "e2e-monitor-nats-password"

// natsEnv gives nats-server the passwords of akvsync's users.
var natsEnv = []string{
	"AKVSYNC_NATS_API_PASSWORD=" + apiPassword,
	"AKVSYNC_NATS_WORKER_PASSWORD=" + workerPassword,
	"AKVSYNC_NATS_MONITOR_PASSWORD=" + monitorPassword,
	"AKVSYNC_NATS_ADMIN_PASSWORD=" + adminNATSPassword,
}

// natsCluster writes the configurations of an n-node JetStream cluster
// with akvsync's users (deploy/nats/accounts.conf); start each node with
// natsNode.start.
func natsCluster(t *testing.T, dir string, n int) []*natsNode {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	accounts, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "deploy", "nats", "accounts.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "accounts.conf"), accounts, 0o600); err != nil {
		t.Fatal(err)
	}
	routePorts := make([]int, n)
	var routes []string
	for i := range routePorts {
		routePorts[i] = freePort(t)
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", routePorts[i]))
	}
	nodes := make([]*natsNode, n)
	for i := range nodes {
		port := freePort(t)
		name := fmt.Sprintf("n%d", i+1)
		conf := fmt.Sprintf(`server_name: %s
host: 127.0.0.1
port: %d
jetstream { store_dir: %q }
cluster {
  name: akvsync-e2e
  listen: 127.0.0.1:%d
  routes: [%s]
}
include ./accounts.conf
`, name, port, filepath.Join(dir, name), routePorts[i], strings.Join(routes, ", "))
		file := filepath.Join(dir, name+".conf")
		if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		nodes[i] = &natsNode{name: name, conf: file, url: fmt.Sprintf("nats://127.0.0.1:%d", port)}
	}
	return nodes
}

func (n *natsNode) start(t *testing.T) {
	t.Helper()
	n.p = start(t, "nats-"+n.name, natsEnv, "-c", n.conf)
}

// kill stops the node with SIGKILL.
func (n *natsNode) kill(t *testing.T) {
	t.Helper()
	if err := n.p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	err := <-n.p.done
	n.p.done <- err
}

// streamLeader names the node leading a stream's replicas.
func (cl *cluster) streamLeader(t *testing.T, stream string) *natsNode {
	t.Helper()
	// The monitoring user reads stream state, with its own inboxes.
	nc, err := nats.Connect(cl.natsURL, nats.UserInfo(events.RoleMonitor.User(), monitorPassword),
		nats.CustomInboxPrefix(events.RoleMonitor.InboxPrefix()))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	var leader string
	natstest.CheckFor(t, 20*time.Second, 100*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(cl.ctx, 2*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, stream)
		if err != nil {
			return err
		}
		if ci := s.CachedInfo().Cluster; ci == nil || ci.Leader == "" || len(ci.Replicas) != len(cl.natsNodes)-1 {
			return fmt.Errorf("stream %s has no leader and %d followers yet", stream, len(cl.natsNodes)-1)
		} else {
			leader = ci.Leader
		}
		return nil
	})
	for _, n := range cl.natsNodes {
		if n.name == leader {
			return n
		}
	}
	t.Fatalf("stream %s is led by unknown server %q", stream, leader)
	return nil
}

// pollJob waits for the job to end, tolerating failed requests while NATS
// fails over (the API answers 503 meanwhile).
func (cl *cluster) pollJob(t *testing.T, id string) jobJSON {
	t.Helper()
	var job jobJSON
	natstest.CheckFor(t, 3*time.Minute, 100*time.Millisecond, func() error {
		if code := cl.c.tryGet("/api/v1/cckm/azure/synchronization-jobs/"+id, &job); code != http.StatusOK {
			return fmt.Errorf("job GET answered %d", code)
		}
		if job.OverallStatus == "in_progress" {
			return fmt.Errorf("job in progress: %v", job.DetailedStatus)
		}
		return nil
	})
	return job
}

// tryGet GETs path into out and returns the status; unlike do it accepts
// failures (0: no answer), for polling through a failover.
func (c *client) tryGet(path string, out any) int {
	c.t.Helper()
	req, _ := http.NewRequest("GET", c.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, out); err != nil {
			c.t.Fatalf("GET %s: decode %q: %v", path, raw, err)
		}
	}
	return resp.StatusCode
}

// assertJobComplete checks the job completed with every vault completed
// and the API lists every key.
func (cl *cluster) assertJobComplete(t *testing.T, job jobJSON, vaults, keys int) {
	t.Helper()
	if job.OverallStatus != "completed" {
		t.Errorf("job ended %s", job.OverallStatus)
	}
	failed := 0
	for v, st := range job.DetailedStatus {
		if !strings.HasPrefix(strings.ToLower(st), "completed") {
			failed++
			t.Errorf("vault %s: %s", v, st)
		}
	}
	if failed > 0 || len(job.DetailedStatus) != vaults {
		t.Errorf("%d of %d vaults did not complete (%d reported)", failed, vaults, len(job.DetailedStatus))
	}
	natstest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		var page struct {
			Total int `json:"total"`
		}
		if code := cl.c.tryGet("/api/v1/cckm/azure/keys?limit=1", &page); code != http.StatusOK {
			return fmt.Errorf("keys: %d", code)
		}
		if page.Total != vaults*keys {
			return fmt.Errorf("API lists %d keys, want %d", page.Total, vaults*keys)
		}
		return nil
	})
}

// vaultSyncFailures counts the vault sync attempts that failed in the
// workers' logs (retried or not).
func (cl *cluster) vaultSyncFailures() (n int, lines []string) {
	for _, w := range cl.workers {
		for _, l := range strings.Split(w.out.String(), "\n") {
			if strings.Contains(l, "vault sync failed transiently") || strings.Contains(l, "cannot publish vault result") ||
				(strings.Contains(l, "vault sync finished") && !strings.Contains(l, `"status":"completed"`)) {
				n++
				lines = append(lines, l)
			}
		}
	}
	return n, lines
}

// TestNATSNodeKilledMidSync kills -9 the node leading the KEYS stream of a
// three-node JetStream cluster (R3) while a sync-all job runs: the job
// must complete with every vault completed on its first attempt and every
// key in the inventory. Losing one node of three costs retries inside the
// workers, never a failed vault sync.
func TestNATSNodeKilledMidSync(t *testing.T) {
	t.Parallel()
	const vaults, keys = 12, 150
	cl := startCluster(t, clusterOptions{vaults: vaults, keys: keys, natsNodes: 3, workers: []string{"worker-1", "worker-2"},
		workerArgs: []string{"--vault-parallelism", "3", "--get-concurrency", "4"}})
	for _, v := range cl.emu.Manifest().Vaults {
		if err := cl.emu.SetFaults(v.Name, akvemu.Faults{Latency: 10 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
	}
	victim := cl.streamLeader(t, events.StreamKeys)
	begin := time.Now()
	job := cl.syncAll(t)
	// Kill once a fair share of the keys was fetched: syncs are running.
	natstest.CheckFor(t, time.Minute, 10*time.Millisecond, func() error {
		var gets int64
		for _, v := range cl.emu.Manifest().Vaults {
			gets += cl.emu.Counters(v.Name).Total(akvemu.OpGetKey)
		}
		if gets < vaults*keys/5 {
			return fmt.Errorf("%d gets so far", gets)
		}
		return nil
	})
	victim.kill(t)
	t.Logf("killed %s (leader of %s) %s after the job started", victim.name, events.StreamKeys, time.Since(begin).Round(time.Millisecond))
	job = cl.pollJob(t, job.ID)
	t.Logf("job %s ended %s after %s", job.ID, job.OverallStatus, time.Since(begin).Round(time.Millisecond))
	cl.assertJobComplete(t, job, vaults, keys)
	retries := map[string]int{}
	for _, w := range cl.workers {
		for _, l := range strings.Split(w.out.String(), "\n") {
			var e struct{ Op, Message string }
			if json.Unmarshal([]byte(l), &e) == nil && e.Message == "transient NATS error; retrying" {
				retries[e.Op]++
			}
		}
	}
	t.Logf("NATS calls the workers retried, by operation: %v", retries)
	if n, lines := cl.vaultSyncFailures(); n > 0 {
		t.Errorf("%d vault sync attempts failed after the node loss, want 0:\n%s", n, strings.Join(lines, "\n"))
	}
}

// TestStartBeforeNATSCluster starts the API and a worker before any NATS
// server runs, then one node of three (no JetStream quorum), then the
// rest: both processes wait, logging their attempts, and then work.
func TestStartBeforeNATSCluster(t *testing.T) {
	t.Parallel()
	const vaults, keys = 4, 50
	cl := startCluster(t, clusterOptions{vaults: vaults, keys: keys, natsNodes: 3, natsLater: true, workers: []string{"worker-1"}})
	procs := map[string]*proc{"api": cl.api, "worker-1": cl.workers["worker-1"]}
	// waitLog waits until every process logged the retry of op after the
	// given attempt, and checks
	// none exited meanwhile.
	waitLog := func(op string, attempt int) {
		t.Helper()
		natstest.CheckFor(t, 40*time.Second, 50*time.Millisecond, func() error {
			for name, p := range procs {
				select {
				case err := <-p.done:
					p.done <- err
					t.Fatalf("%s exited while NATS was not ready: %v\n%s", name, err, tail(p.out.String(), 2000))
				default:
				}
				if out := p.out.String(); !strings.Contains(out, `"op":"`+op+`"`) || !strings.Contains(out, fmt.Sprintf(`"attempt":%d,`, attempt)) {
					return fmt.Errorf("%s has not logged attempt %d to %s yet", name, attempt, op)
				}
			}
			return nil
		})
	}
	waitLog("connect to NATS", 2)
	cl.natsNodes[0].start(t)
	waitLog("ensure NATS topology", 1)
	for _, n := range cl.natsNodes[1:] {
		n.start(t)
	}
	// The nodes' own cleanups, registered after startCluster's, would
	// stop them first, one by one, under running services: stop it all
	// in order, together, first.
	t.Cleanup(func() { cl.stopAll(t) })
	cl.waitAPI(t)
	job := cl.syncAll(t)
	job = cl.pollJob(t, job.ID)
	cl.assertJobComplete(t, job, vaults, keys)
	for name, p := range procs {
		select {
		case err := <-p.done:
			p.done <- err
			t.Errorf("%s exited: %v", name, errors.Join(err))
		default:
		}
	}
}
