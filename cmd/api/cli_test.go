package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCommandLine(t *testing.T) {
	t.Run("help prints the usage once and is not an error", func(t *testing.T) {
		var out bytes.Buffer
		_, err := parse([]string{"--help"}, &out)
		if !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("parse(--help) = %v, want flag.ErrHelp", err)
		}
		if n := strings.Count(out.String(), "Usage of api"); n != 1 {
			t.Errorf("usage printed %d times:\n%s", n, out.String())
		}
		if !strings.Contains(out.String(), "-listen") || !strings.Contains(out.String(), "AKVSYNC_") {
			t.Errorf("usage lacks the flags or the environment note:\n%s", out.String())
		}
	})
	t.Run("a positional argument is an error, not a silent stop", func(t *testing.T) {
		var out bytes.Buffer
		_, err := parse([]string{"--embedded", "extra", "--listen", "127.0.0.1:1"}, &out)
		if err == nil || !strings.Contains(err.Error(), `unexpected argument "extra"`) {
			t.Errorf("err = %v, want an unexpected argument error", err)
		}
		if out.Len() != 0 {
			t.Errorf("printed %q; the caller prints the error once", out.String())
		}
	})
	t.Run("an unknown flag is returned once, not printed", func(t *testing.T) {
		var out bytes.Buffer
		_, err := parse([]string{"--bogus"}, &out)
		if err == nil || !strings.Contains(err.Error(), "-bogus") {
			t.Errorf("err = %v, want one naming -bogus", err)
		}
		if out.Len() != 0 {
			t.Errorf("printed %q; the caller prints the error once", out.String())
		}
	})
	t.Run("bad Event Grid settings are refused before anything starts", func(t *testing.T) {
		for _, args := range [][]string{
			{"--embedded", "--event-grid-rate", "-5"},
			{"--embedded", "--event-grid-burst", "-1"},
			{"--embedded", "--event-grid-audience", "api://x"},
		} {
			if _, err := parse(args, io.Discard); err == nil || !strings.Contains(err.Error(), "--event-grid") {
				t.Errorf("%v: err = %v, want one naming the --event-grid flag", args, err)
			}
		}
	})
}

func TestPrepareDemoDir(t *testing.T) {
	t.Run("a failed start leaves a directory the next demo cleans", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "data")
		if err := prepareDemoDir(dir); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(dir, demoMarker)); err != nil {
			t.Fatalf("no marker right after prepare: %v", err)
		}
		// The start fails here, after it wrote state.
		if err := os.WriteFile(filepath.Join(dir, "inventory.db"), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := prepareDemoDir(dir); err != nil {
			t.Fatalf("next demo: %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, "inventory.db")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the failed start's state was kept: %v", err)
		}
	})
	t.Run("a directory that is not a demo's is refused and kept", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "precious"), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := prepareDemoDir(dir); err == nil {
			t.Fatal("a foreign directory was accepted")
		}
		if _, err := os.Stat(filepath.Join(dir, "precious")); err != nil {
			t.Errorf("foreign file touched: %v", err)
		}
	})
}

func TestProgressLine(t *testing.T) {
	tests := []struct {
		done, total, keys int
		took              time.Duration
		want              string
	}{
		{0, 10, 0, time.Second, "  … 0/10 vaults done, 0 keys, 0 keys/s, ETA –"},
		{4, 10, 800, 2 * time.Second, "  … 4/10 vaults done, 800 keys, 400 keys/s, ETA 3s"},
	}
	for _, tt := range tests {
		if got := progressLine(tt.done, tt.total, tt.keys, tt.took); got != tt.want {
			t.Errorf("progressLine(%d, %d, %d, %s) = %q, want %q", tt.done, tt.total, tt.keys, tt.took, got, tt.want)
		}
	}
}
