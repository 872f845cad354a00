package main

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"

	"github.com/akvsync/akvsync/internal/telemetry"
	"github.com/akvsync/akvsync/pkg/events"
)

func TestSetMemoryLimit(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	t.Run("the flag sets the soft limit", func(t *testing.T) {
		t.Setenv("GOMEMLIMIT", "")
		// An empty GOMEMLIMIT still counts as set: unset it for this case.
		unsetenv(t, "GOMEMLIMIT")
		if err := setMemoryLimit(96); err != nil {
			t.Fatal(err)
		}
		if got := debug.SetMemoryLimit(-1); got != 96<<20 {
			t.Errorf("limit %d, want %d", got, 96<<20)
		}
	})
	t.Run("GOMEMLIMIT wins", func(t *testing.T) {
		debug.SetMemoryLimit(math.MaxInt64)
		t.Setenv("GOMEMLIMIT", "1GiB")
		if err := setMemoryLimit(96); err != nil {
			t.Fatal(err)
		}
		if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
			t.Errorf("limit %d changed although GOMEMLIMIT is set", got)
		}
	})
	t.Run("a negative limit is refused", func(t *testing.T) {
		if err := setMemoryLimit(-1); err == nil {
			t.Error("accepted -1")
		}
	})
}

// unsetenv removes name for the rest of the test (t.Setenv restores it).
func unsetenv(t *testing.T, name string) {
	t.Helper()
	if err := os.Unsetenv(name); err != nil {
		t.Fatal(err)
	}
}

func TestMetricsListenIsLoopbackUnlessPublic(t *testing.T) {
	key := masterKey(t)
	err := run([]string{"--master-keys", key, "--memory-limit-mib", "0", "--metrics-listen", "0.0.0.0:0"})
	if !errors.Is(err, telemetry.ErrNotLoopback) {
		t.Fatalf("err = %v, want telemetry.ErrNotLoopback", err)
	}
	prices := filepath.Join(t.TempDir(), "prices.json")
	if err := os.WriteFile(prices, []byte(`{"standard_per_10k": -1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := run([]string{"--master-keys", key, "--memory-limit-mib", "0", "--azure-prices", prices}); !errors.Is(err, events.ErrInvalidPrices) {
		t.Fatalf("err = %v, want events.ErrInvalidPrices", err)
	}
}
