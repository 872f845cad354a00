package e2e

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// proc is a child process whose output is kept for failure reports.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// start runs a built binary; the process is stopped when the test ends and
// its output is logged if the test failed.
func start(t *testing.T, name string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, out: &lockedBuffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(filepath.Join(bin(t), binaryOf(name)), args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("--- output of %s ---\n%s", name, tail(p.out.String(), 4000))
		}
	})
	return p
}

func binaryOf(name string) string {
	switch {
	case len(name) >= 6 && name[:6] == "worker":
		return "worker"
	case len(name) >= 5 && name[:5] == "nats-":
		return "nats-server"
	default:
		return name
	}
}

// exited reports whether the process has exited, without waiting.
func (p *proc) exited() bool {
	select {
	case err := <-p.done:
		p.done <- err
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits for the exit (SIGKILL after 20 s).
func (p *proc) stop(t *testing.T) error {
	return stopAll(t, p)[0]
}

// stopAll sends SIGTERM to every process at once, then waits for their
// exits (SIGKILL to those still running after 20 s), and returns their
// exit errors in order. Stopping processes together rather than one after
// the other saves the sum of their shutdowns.
func stopAll(t *testing.T, ps ...*proc) []error {
	for _, p := range ps {
		if !p.exited() {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	errs := make([]error, len(ps))
	for i, p := range ps {
		select {
		case err := <-p.done:
			p.done <- err
			errs[i] = err
		case <-ctx.Done():
			_ = p.cmd.Process.Kill()
			t.Errorf("%s did not stop on SIGTERM within 20s", p.name)
			err := <-p.done
			p.done <- err
			errs[i] = err
		}
	}
	return errs
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// handedOut are the ports freePort returned in this test binary: the
// kernel may hand a just-closed port out again, and two nodes of one
// cluster given the same port fail to start (a route port "already in
// use" left a cluster without quorum).
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// freePort returns a loopback port that was free a moment ago and that no
// earlier call returned. It is below the kernel's ephemeral range when it
// can be: a port from that range (what listening on :0 gives) may be
// taken by any process's outgoing connection before the node that was
// given it starts (seen: a NATS node started ten seconds after its ports
// were chosen died with "address already in use").
func freePort(t *testing.T) int {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	if low := ephemeralLow(); low > minFixedPort+1000 {
		for range 200 {
			port := minFixedPort + rand.IntN(low-minFixedPort)
			if handedOut.ports[port] {
				continue
			}
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
			if err != nil {
				continue
			}
			_ = l.Close()
			handedOut.ports[port] = true
			return port
		}
	}
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		if !handedOut.ports[port] {
			handedOut.ports[port] = true
			return port
		}
	}
	t.Fatal("no fresh loopback port after 100 tries")
	return 0
}

// minFixedPort is the lowest port freePort picks outside the ephemeral
// range.
const minFixedPort = 10000

// ephemeralLow is the first port of the kernel's ephemeral range, or 0
// when it is not known (not Linux).
func ephemeralLow() int {
	raw, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(raw))
	if len(fields) != 2 {
		return 0
	}
	low, err := strconv.Atoi(fields[0])
	if err != nil {
		return 0
	}
	return low
}
