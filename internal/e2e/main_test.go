package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// bin holds the binaries built for the tests.
var bin string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "akvsync-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin = dir
	// The go command that runs these tests.
	goTool, err := exec.LookPath("go")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: no go command to build the binaries:", err)
		os.Exit(1)
	}
	for out, pkg := range map[string]string{
		"nats-server": "github.com/nats-io/nats-server/v2",
		"api":         "github.com/akvsync/akvsync/cmd/api",
		"worker":      "github.com/akvsync/akvsync/cmd/worker",
	} {
		cmd := exec.Command(goTool, "build", "-o", filepath.Join(dir, out), pkg)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: build %s: %v\n", pkg, err)
			return 1
		}
	}
	return m.Run()
}
