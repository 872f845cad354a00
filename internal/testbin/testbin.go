// Package testbin builds akvsync's commands, and the nats-server of
// go.mod, for tests that run them as processes.
//
// All binaries asked for at once are built by one go build invocation (one
// compile of the shared dependencies, one link each), into one directory
// per module checkout and race mode under the user's cache directory,
// shared by every test process: go build relinks only a binary that is out
// of date, so the second package (or run) that needs a binary pays about a
// second, not a link. A file lock keeps concurrent test processes from
// building at the same time.
//
// The binaries are built without the race detector, even when the tests
// run under -race: the processes' code is the code the in-process tests
// already run under the detector, and instrumented processes made the
// multi-process tests take about twice as long (internal/e2e, deploy,
// cmd/api and cmd/akvsync-bench: 116 s against 58 s on two cores). Set
// AKVSYNC_TESTBIN_RACE=1 to build them with -race as well.
//
// Tests that need binaries are skipped under -short.
package testbin

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The binaries Dir can build, by file name.
const (
	API        = "api"
	Worker     = "worker"
	Emulator   = "akv-emulator"
	NATSServer = "nats-server"
)

// packages maps each binary to its main package.
var packages = map[string]string{
	API:        "github.com/akvsync/akvsync/cmd/api",
	Worker:     "github.com/akvsync/akvsync/cmd/worker",
	Emulator:   "github.com/akvsync/akvsync/cmd/akv-emulator",
	NATSServer: "github.com/nats-io/nats-server/v2",
}

// ErrUnknown is returned for a binary name Dir does not know.
var ErrUnknown = errors.New("testbin: unknown binary")

// state is this process's: the shared directory and the binaries it has
// brought up to date there.
var state struct {
	mu    sync.Mutex
	dir   string
	built map[string]bool
}

// Dir returns the directory holding the named binaries (API, Worker,
// Emulator, NATSServer), up to date with the source. It skips t under
// -short and fails it when the build fails.
func Dir(t testing.TB, names ...string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("testbin: builds and runs binaries (skipped under -short)")
	}
	start := time.Now()
	dir, n, err := build(names)
	if err != nil {
		t.Fatal(err)
	}
	if n > 0 {
		t.Logf("testbin: %d binaries up to date in %s", n, time.Since(start).Round(time.Millisecond))
	}
	return dir
}

// Path is the named binary's file (see Dir).
func Path(t testing.TB, name string) string {
	t.Helper()
	return filepath.Join(Dir(t, name), name)
}

// build brings the binaries of names that this process has not checked
// yet up to date and returns the directory and how many it checked.
func build(names []string) (string, int, error) {
	state.mu.Lock()
	defer state.mu.Unlock()
	var pkgs []string
	for _, n := range names {
		pkg, ok := packages[n]
		if !ok {
			return "", 0, fmt.Errorf("%w %q", ErrUnknown, n)
		}
		if !state.built[n] && !slices.Contains(pkgs, pkg) {
			pkgs = append(pkgs, pkg)
		}
	}
	if state.dir == "" {
		dir, err := outputDir()
		if err != nil {
			return "", 0, err
		}
		state.dir, state.built = dir, map[string]bool{}
	}
	if len(pkgs) == 0 {
		return state.dir, 0, nil
	}
	unlock, err := lock(filepath.Join(state.dir, ".lock"))
	if err != nil {
		return "", 0, fmt.Errorf("testbin: lock %s: %w", state.dir, err)
	}
	defer unlock()
	args := []string{"build"}
	if raceBinaries() {
		args = append(args, "-race")
	}
	// With a trailing separator, -o is a directory and several main
	// packages may be built at once (each named after its package).
	args = append(args, "-o", state.dir+string(filepath.Separator))
	args = append(args, pkgs...)
	cmd := exec.Command(goTool(), args...) // #nosec G204 -- the go tool on fixed package paths of this module and go.mod
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", 0, fmt.Errorf("testbin: go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	for _, n := range names {
		state.built[n] = true
	}
	return state.dir, len(pkgs), nil
}

// outputDir is the shared directory of this module checkout's binaries in
// this race mode: one per checkout, so that two worktrees do not take
// turns relinking (or replacing) each other's binaries.
func outputDir() (string, error) {
	out, err := exec.Command(goTool(), "env", "GOMOD").Output() // #nosec G204 -- the go tool
	if err != nil {
		return "", fmt.Errorf("testbin: go env GOMOD: %w", err)
	}
	gomod := string(bytes.TrimSpace(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("testbin: not inside a module")
	}
	sum := sha256.Sum256([]byte(filepath.Dir(gomod)))
	mode := "norace"
	if raceBinaries() {
		mode = "race"
	}
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	dir := filepath.Join(base, "akvsync-testbin", hex.EncodeToString(sum[:8])+"-"+mode)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("testbin: %w", err)
	}
	return dir, nil
}

// RaceEnv is the environment variable that, set to 1, builds the binaries
// with -race.
const RaceEnv = "AKVSYNC_TESTBIN_RACE"

// raceBinaries reports whether the binaries are built with -race.
func raceBinaries() bool { return os.Getenv(RaceEnv) == "1" }

// goTool is the go command on PATH (where go test found it), or "go",
// whose failure to start then says so.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "go"
}
