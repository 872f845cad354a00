package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/akvsync/akvsync/internal/azure"
	"github.com/akvsync/akvsync/internal/control"
	"github.com/akvsync/akvsync/internal/keyring"
	"github.com/akvsync/akvsync/internal/natstest"
	"github.com/akvsync/akvsync/internal/secrets"
	"github.com/akvsync/akvsync/internal/store"
	"github.com/akvsync/akvsync/pkg/akvemu"
	"github.com/akvsync/akvsync/pkg/events"
	"github.com/akvsync/akvsync/pkg/sync"
)

// The tests here run the command's run function in-process, one at a
// time: it stops on SIGTERM to this process (signal.NotifyContext), and
// --memory-limit-mib 0 keeps it from changing the test process's heap
// limit.

// masterKey is a valid master key ring of one key.
func masterKey(t *testing.T) string {
	t.Helper()
	k, err := secrets.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return keyring.Format("m1", k)
}

// clearEnv unsets every AKVSYNC_ variable for the rest of the test, so
// the caller's environment does not leak into the flags.
func clearEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "AKVSYNC_") {
			t.Setenv(name, "")
			unsetenv(t, name)
		}
	}
}

// runQuickly runs the command and fails the test if it has not returned
// within a minute: bad input must be refused at once, not after waiting
// for a NATS server.
func runQuickly(t *testing.T, args ...string) error {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- run(append([]string{"--memory-limit-mib", "0"}, args...)) }()
	select {
	case err := <-errc:
		return err
	case <-time.After(time.Minute):
		t.Fatalf("run %v did not return: it waits instead of refusing its input", args)
		return nil
	}
}

// TestBadInputIsRefusedBeforeAnythingStarts: every bad flag or
// environment value is a clear error, returned before the worker connects
// to NATS or creates its store.
func TestBadInputIsRefusedBeforeAnythingStarts(t *testing.T) {
	clearEnv(t)
	t.Setenv("AKVSYNC_LOG_LEVEL", "error")
	srv := natstest.RunServer(t, natstest.Options{})
	key := masterKey(t)
	dir := t.TempDir()
	storePath := filepath.Join(dir, "worker.db")
	base := []string{"--nats-url", srv.ClientURL(), "--master-keys", key, "--store", storePath}
	for _, c := range []struct {
		name string
		args []string
		env  map[string]string
		is   error  // the error wraps it, or
		text string // the message holds it
	}{
		{name: "unknown flag", args: []string{"--no-such-flag"}, text: "flag provided but not defined"},
		{name: "positional argument", args: []string{"extra"}, text: `unexpected argument "extra"`},
		{name: "log level", args: []string{"--log-level", "loud"}, text: "loud"},
		{name: "log level from the environment", env: map[string]string{"AKVSYNC_LOG_LEVEL": "loud"}, text: "loud"},
		{name: "a bad value in the environment", env: map[string]string{"AKVSYNC_VAULT_PARALLELISM": "many"}, text: "AKVSYNC_VAULT_PARALLELISM"},
		{name: "negative memory limit", args: []string{"--memory-limit-mib", "-1"}, text: "--memory-limit-mib -1"},
		{name: "no connection and no master key", args: []string{"--master-keys", ""}, text: "no Azure connection"},
		{name: "master key ring", args: []string{"--master-keys", "m1:not-base64!"}, is: secrets.ErrInvalidKeyRing},
		{name: "replicas", args: []string{"--replicas", "7"}, is: events.ErrTopology},
		{name: "task ack wait", args: []string{"--task-ack-wait", "10ms"}, is: events.ErrTopology},
		{name: "vault parallelism", args: []string{"--vault-parallelism", "-1"}, is: sync.ErrInvalidConfig},
		{name: "get concurrency", args: []string{"--get-concurrency", "-2"}, is: sync.ErrInvalidConfig},
		{name: "job retention", args: []string{"--job-retention", "-1h"}, is: sync.ErrInvalidConfig},
		{name: "jobs kept", args: []string{"--jobs-kept", "-1"}, is: sync.ErrInvalidConfig},
		{name: "inventory batch", args: []string{"--inventory-batch", "-5"}, text: "InventoryBatch -5"},
		{name: "init step's replicas", args: []string{"--init-topology", "--replicas", "9"}, is: events.ErrTopology},
	} {
		t.Run(c.name, func(t *testing.T) {
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			err := runQuickly(t, append(append([]string{}, base...), c.args...)...)
			switch {
			case err == nil:
				t.Fatal("accepted")
			case c.is != nil && !errors.Is(err, c.is):
				t.Fatalf("err = %v, want %v", err, c.is)
			case c.text != "" && !strings.Contains(err.Error(), c.text):
				t.Fatalf("err = %v, want it to say %q", err, c.text)
			}
			if n := srv.NumClients(); n != 0 {
				t.Errorf("%d NATS connections after bad input", n)
			}
			if _, err := os.Stat(storePath); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the store was created (%v)", err)
			}
		})
	}
	if total := varz(t, srv).TotalConnections; total != 0 {
		t.Fatalf("%d NATS connections were opened by refused runs", total)
	}

	t.Run("a flag wins over its environment variable", func(t *testing.T) {
		t.Setenv("AKVSYNC_LOG_LEVEL", "loud")
		err := runQuickly(t, "--nats-url", srv.ClientURL(), "--store", storePath, "--log-level", "warn")
		if err == nil || strings.Contains(err.Error(), "loud") || !strings.Contains(err.Error(), "no Azure connection") {
			t.Fatalf("err = %v, want the next check's (no Azure connection), not the environment's log level", err)
		}
	})
	t.Run("help is not an error", func(t *testing.T) {
		if err := runQuickly(t, "--help"); !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("err = %v, want flag.ErrHelp (main exits 0)", err)
		}
	})
}

func varz(t *testing.T, s *server.Server) *server.Varz {
	t.Helper()
	v, err := s.Varz(nil)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestRunSyncsAndStopsOnSIGTERM runs the init step, then the worker as an
// operator would (least privilege aside: the test server has no users),
// with the emulator's connection from its manifest; a sync-all job created
// through the control plane completes, and SIGTERM stops the worker
// cleanly, its store closed and holding every key.
func TestRunSyncsAndStopsOnSIGTERM(t *testing.T) {
	clearEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv := natstest.RunServer(t, natstest.Options{})
	url := srv.ClientURL()
	if err := runQuickly(t, "--init-topology", "--nats-url", url, "--task-ack-wait", "3s", "--log-level", "error"); err != nil {
		t.Fatalf("init step: %v", err)
	}
	const vaults, keys = 2, 5
	dir := t.TempDir()
	emu, err := akvemu.Start(ctx, akvemu.Config{Seed: akvemu.SeedSpec{Vaults: vaults, KeysPerVault: keys, Seed: 3},
		DataDir: filepath.Join(dir, "emu"), DisableAdmin: true})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	manifest := filepath.Join(dir, "manifest.json")
	if err := emu.WriteManifest(manifest); err != nil {
		t.Fatal(err)
	}
	storePath := filepath.Join(dir, "worker.db")
	errc := make(chan error, 1)
	go func() {
		errc <- run([]string{"--nats-url", url, "--emulator-manifest", manifest, "--store", storePath,
			"--task-ack-wait", "3s", "--memory-limit-mib", "0", "--log-level", "error"})
	}()
	stopped := false
	defer func() {
		if !stopped {
			_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
			<-errc
		}
	}()

	// The API's side: register the vaults and start a sync of all.
	nc, js := natstest.Connect(t, srv)
	plane, err := control.New(ctx, nc, js, control.Config{Connections: []string{"emulator"}, Endpoints: azure.EndpointPolicy{AllowPrivate: true}})
	if err != nil {
		t.Fatal(err)
	}
	bySub := map[string][]control.AddVault{}
	for _, v := range emu.Manifest().Vaults {
		bySub[v.SubscriptionID] = append(bySub[v.SubscriptionID], control.AddVault{Name: v.Name, Type: v.ResourceType,
			AzureVaultID: v.ResourceID, Location: v.Location, Properties: control.VaultProperties{VaultURI: v.URL}})
	}
	for sub, vs := range bySub {
		if _, err := plane.Vaults.AddVaults(ctx, control.AddVaultsRequest{Connection: "emulator", SubscriptionID: sub, Vaults: vs}); err != nil {
			t.Fatal(err)
		}
	}
	job, err := plane.Jobs.Create(ctx, control.CreateJobRequest{SynchronizeAll: true}, "test")
	if err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, time.Minute, 25*time.Millisecond, func() error {
		select {
		case err := <-errc:
			errc <- err
			t.Fatalf("the worker exited: %v", err)
		default:
		}
		got, err := plane.Jobs.Get(ctx, job.ID)
		if err != nil {
			return err
		}
		if got.OverallStatus == events.JobInProgress {
			return fmt.Errorf("job in progress: %v", got.DetailedStatus())
		}
		if got.OverallStatus != events.JobCompleted || got.Progress.Fetched != vaults*keys {
			t.Fatalf("job ended %s with %d keys fetched: %v", got.OverallStatus, got.Progress.Fetched, got.DetailedStatus())
		}
		return nil
	})

	// The job completed, so run is past signal.NotifyContext: SIGTERM
	// stops it, not the test.
	stopped = true
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("the worker stopped with %v", err)
		}
	case <-ctx.Done():
		t.Fatal("the worker did not stop on SIGTERM")
	}
	// Stopped cleanly: the store is closed (bbolt's lock released) and
	// holds every key.
	st, err := store.Open(store.Config{Path: storePath, NoSync: true})
	if err != nil {
		t.Fatalf("reopen the store: %v", err)
	}
	defer st.Close()
	if n := st.Stats().Keys; n != vaults*keys {
		t.Fatalf("the store holds %d keys, want %d", n, vaults*keys)
	}
}
