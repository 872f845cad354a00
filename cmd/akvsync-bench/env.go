package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// binaries are the programs a run builds, by file name.
var binaries = map[string]string{
	"api":          "github.com/akvsync/akvsync/cmd/api",
	"worker":       "github.com/akvsync/akvsync/cmd/worker",
	"akv-emulator": "github.com/akvsync/akvsync/cmd/akv-emulator",
	"nats-server":  "github.com/nats-io/nats-server/v2",
}

// stopTimeout is how long a process gets to exit on SIGTERM.
const stopTimeout = 30 * time.Second

// env is one benchmark run: binaries, work directory, processes.
type env struct {
	o       options
	log     io.Writer
	bin     string
	dir     string
	tmpWork string
	seq     int

	mu    sync.Mutex
	procs []*proc

	// fixtures are the embedded inventories shared by figures, by size.
	fixtures map[[2]int]*fixture
	live     *fixture
}

func newEnv(ctx context.Context, o options, log io.Writer) (*env, error) {
	e := &env{o: o, log: log, bin: o.bin, dir: o.workDir, fixtures: map[[2]int]*fixture{}}
	var err error
	if e.dir == "" {
		if e.dir, err = os.MkdirTemp("", "akvsync-bench-"); err != nil {
			return nil, err
		}
		e.tmpWork = e.dir
	} else if err := os.MkdirAll(e.dir, 0o700); err != nil {
		return nil, err
	}
	need := o.binaries()
	if e.bin == "" {
		e.bin = filepath.Join(e.dir, "bin")
		if err := buildBinaries(ctx, e.bin, need, log); err != nil {
			e.close()
			return nil, err
		}
	}
	for _, name := range need {
		if _, err := os.Stat(filepath.Join(e.bin, name)); err != nil { // #nosec G703 -- the bench operator's own --bin directory (or one it built) joined with a fixed binary name
			e.close()
			return nil, fmt.Errorf("binary %s: %w", name, err)
		}
	}
	return e, nil
}

// binaries returns the binaries the selected figures run.
func (o options) binaries() []string {
	need := []string{"api", "akv-emulator"}
	if o.figures[figP4] || o.figures[figP6] {
		need = append(need, "worker", "nats-server")
	} else if o.figures[figFanout] && o.fanWorkers > 0 {
		need = append(need, "worker")
	}
	return need
}

// buildBinaries runs go build for the named binaries into dir.
func buildBinaries(ctx context.Context, dir string, names []string, log io.Writer) error {
	goTool, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("the go command builds the binaries: %w", err)
	}
	for _, name := range names {
		pkg := binaries[name]
		start := time.Now()
		cmd := exec.CommandContext(ctx, goTool, "build", "-o", filepath.Join(dir, name), pkg) // #nosec G204 G702 -- runs the Go toolchain of this build (GOROOT) on fixed package paths of this module, output into the bench's own directory
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go build %s: %w", pkg, err)
		}
		fmt.Fprintf(log, "built %s in %s\n", name, time.Since(start).Round(time.Millisecond))
	}
	return nil
}

func (e *env) logf(format string, args ...any) {
	fmt.Fprintf(e.log, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// subdir returns a new, empty directory for one process group.
func (e *env) subdir(name string) (string, error) {
	e.mu.Lock()
	e.seq++
	d := filepath.Join(e.dir, fmt.Sprintf("%02d-%s", e.seq, name))
	e.mu.Unlock()
	return d, os.MkdirAll(d, 0o700)
}

// close stops every process still running and removes the temporary
// directories.
func (e *env) close() {
	e.mu.Lock()
	procs := e.procs
	e.procs = nil
	e.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		_ = procs[i].stop()
	}
	if e.tmpWork != "" && !e.o.keep {
		_ = os.RemoveAll(e.tmpWork) // #nosec G703 -- removes only the temporary directory the bench made with os.MkdirTemp
	} else if e.o.keep {
		fmt.Fprintf(e.log, "work directory kept: %s\n", e.dir)
	}
}

// proc is a child process; its output goes to a log file.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	logFile *os.File
	done    chan struct{}
	err     error
}

// start runs one of the built binaries with its output in dir/name.log.
func (e *env) start(dir, name, binary string, extraEnv []string, args ...string) (*proc, error) {
	p := &proc{name: name, logPath: filepath.Join(dir, name+".log"), done: make(chan struct{})}
	f, err := os.Create(p.logPath)
	if err != nil {
		return nil, err
	}
	p.logFile = f
	p.cmd = exec.Command(filepath.Join(e.bin, binary), args...) // #nosec G204 -- starts one of the fixed akvsync binaries from the bench operator's own --bin directory, with arguments the bench builds
	p.cmd.Env = append(os.Environ(), extraEnv...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.Dir = dir
	dieWithParent(p.cmd)
	if err := p.cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		f.Close()
		close(p.done)
	}()
	e.mu.Lock()
	e.procs = append(e.procs, p)
	e.mu.Unlock()
	if e.o.verbose {
		e.logf("started %s (pid %d): %s %s", name, p.cmd.Process.Pid, binary, strings.Join(args, " "))
	}
	return p, nil
}

// pid is the process id.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited reports an early exit as an error naming the log.
func (p *proc) exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited (%v); log %s:\n%s", p.name, p.err, p.logPath, tailFile(p.logPath, 2000))
	default:
		return nil
	}
}

// stop sends SIGTERM and waits; SIGKILL after stopTimeout.
func (p *proc) stop() error {
	select {
	case <-p.done:
		return nil
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not stop on SIGTERM within %s", p.name, stopTimeout)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) && ee.ExitCode() > 0 {
		return fmt.Errorf("%s exited with %w", p.name, p.err)
	}
	return nil
}

func tailFile(path string, n int) string {
	raw, err := os.ReadFile(path) // #nosec G304 -- a log file the bench harness itself created under its work directory
	if err != nil {
		return ""
	}
	if len(raw) > n {
		raw = raw[len(raw)-n:]
	}
	return string(raw)
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitFor polls check every interval until it returns nil, ctx ends, or
// the deadline passes (the last error is returned).
func waitFor(ctx context.Context, timeout, interval time.Duration, check func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		err := check()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %w)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// memory is a process's resident memory, from /proc/<pid>/status.
type memory struct {
	// RSS is VmRSS, HWM its peak (VmHWM), in bytes.
	RSS, HWM int64
	// Anon is RssAnon (heap, stacks), the rest of RSS being RssFile
	// (mapped files, such as bbolt's) and RssShmem.
	Anon int64
}

func readMemory(pid int) (memory, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, err
	}
	var m memory
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			m.RSS = kb << 10
		case "VmHWM:":
			m.HWM = kb << 10
		case "RssAnon:":
			m.Anon = kb << 10
		}
	}
	return m, nil
}

// sampler reads a process's memory periodically and keeps the peak.
type sampler struct {
	pid     int
	stopc   chan struct{}
	done    chan struct{}
	peak    int64
	anon    int64 // peak RssAnon
	first   int64
	samples int
}

// sampleMemory starts sampling pid every interval until stop.
func sampleMemory(pid int, interval time.Duration) *sampler {
	s := &sampler{pid: pid, stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			if m, err := readMemory(pid); err == nil {
				if s.samples == 0 {
					s.first = m.RSS
				}
				s.samples++
				s.peak = max(s.peak, m.RSS)
				s.anon = max(s.anon, m.Anon)
			}
			select {
			case <-s.stopc:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// peakAnon is the peak RssAnon sampled (call after stop).
func (s *sampler) peakAnon() int64 { return s.anon }

// stop ends the sampling and returns the peak RSS seen and the process's
// own high-water mark (VmHWM, since it started).
func (s *sampler) stop() (peak int64, hwm int64) {
	close(s.stopc)
	<-s.done
	m, _ := readMemory(s.pid)
	return max(s.peak, m.RSS), m.HWM
}

const mb = 1 << 20
