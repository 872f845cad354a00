package deploy

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/akvsync/akvsync/internal/testbin"
)

// needTools fails (under CI, whose .ci/run installs them) or skips the
// test when a command it runs is missing.
func needTools(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is not installed (.ci/run installs it)", n)
			}
			t.Skipf("%s is not installed", n)
		}
	}
}

// freePorts returns a base port such that base … base+n-1 are all free on
// loopback (the script numbers the nodes' ports from one base).
func freePorts(t *testing.T, n int) int {
	t.Helper()
	for range 200 {
		base := 20000 + rand.IntN(40000)
		var ls []net.Listener
		ok := true
		for i := range n {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(base+i))
			if err != nil {
				ok = false
				break
			}
			ls = append(ls, l)
		}
		for _, l := range ls {
			l.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatalf("no %d consecutive free ports", n)
	return 0
}

// TestLocalTopology runs deploy/local/run.sh smoke: a three-node NATS
// cluster from deploy/nats/cluster.conf with the shipped least-privilege
// users, the init step, the emulator, the API and two workers; a sync-all
// job through it; the key count through the API; both workers' /readyz and
// /metrics scraped (new keys and completed vaults add up to the job's);
// and no permission violation in any NATS node's log.
func TestLocalTopology(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster and five processes")
	}
	needTools(t, "bash", "curl", "jq", "openssl")
	t.Parallel()
	bin := testbin.Dir(t, testbin.NATSServer, testbin.API, testbin.Worker, testbin.Emulator)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir := t.TempDir()
	env := append(os.Environ(),
		"AKVSYNC_LOCAL_DIR="+dir,
		"AKVSYNC_LOCAL_BIN="+bin,
		fmt.Sprintf("AKVSYNC_LOCAL_NATS_PORT=%d", freePorts(t, 3)),
		fmt.Sprintf("AKVSYNC_LOCAL_HTTP_PORT=%d", freePorts(t, 3)),
		fmt.Sprintf("AKVSYNC_LOCAL_ROUTE_PORT=%d", freePorts(t, 3)),
		fmt.Sprintf("AKVSYNC_LOCAL_API_PORT=%d", freePorts(t, 1)),
		fmt.Sprintf("AKVSYNC_LOCAL_METRICS_PORT=%d", freePorts(t, 2)),
		"AKVSYNC_LOCAL_VAULTS=4", "AKVSYNC_LOCAL_KEYS=50",
	)
	cmd := exec.CommandContext(ctx, "bash", "local/run.sh", "smoke")
	cmd.Env = env
	cmd.WaitDelay = 30 * time.Second
	out, err := cmd.CombinedOutput()
	t.Logf("run.sh smoke:\n%s", out)
	if err != nil {
		for _, name := range []string{"api", "worker-1", "worker-2", "nats-1"} {
			if raw, rerr := os.ReadFile(dir + "/logs/" + name + ".log"); rerr == nil {
				t.Logf("%s.log (tail):\n%s", name, tail(string(raw), 20))
			}
		}
		t.Fatalf("run.sh smoke: %v", err)
	}
	for _, want := range []string{"worker metrics: 200 new keys synced, 4 vault syncs completed", "smoke test passed"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("run.sh smoke did not say %q", want)
		}
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// TestComposeConfig: Debian's docker-compose accepts compose.yaml (it
// checks the file without a Docker engine), with the variables of
// compose.env.example.
func TestComposeConfig(t *testing.T) {
	needTools(t, "docker-compose")
	t.Parallel()
	cmd := exec.Command("docker-compose", "--env-file", "compose.env.example", "-f", "compose.yaml", "config", "--quiet")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docker-compose config: %v\n%s", err, out)
	}
}
