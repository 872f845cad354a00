package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestDemoCompletesASyncAll runs the README's run command (small) to its
// end: embedded NATS, worker, emulator with its vaults and one Managed HSM
// pool, and a completed sync-all job.
func TestDemoCompletesASyncAll(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	var out bytes.Buffer
	err := run([]string{"--demo", "--demo-exit", "--data-dir", dir, "--listen", "127.0.0.1:0",
		"--demo-vaults", "3", "--demo-keys", "20", "--log-level", "error"}, &out)
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	// 3 vaults and the pool (--demo-hsms defaults to 1), 20 keys each.
	if !strings.Contains(out.String(), "completed: 4 vaults, 80 keys") {
		t.Fatalf("demo output lacks the completed sync:\n%s", out.String())
	}
	raw, err := os.ReadFile(filepath.Join(dir, "demo.json"))
	if err != nil {
		t.Fatal(err)
	}
	var facts demoFacts
	if err := json.Unmarshal(raw, &facts); err != nil {
		t.Fatal(err)
	}
	if facts.APIURL == "" || facts.Password == "" || facts.Token == "" || len(facts.Vaults) != 4 || facts.FirstJobID == "" {
		t.Fatalf("demo.json = %+v", facts)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "demo.json")); fi.Mode().Perm() != 0o600 {
		t.Fatalf("demo.json mode %v, want 0600", fi.Mode().Perm())
	}

	t.Run("ListeningNATSWithCredentialsStillWorks", func(t *testing.T) {
		out.Reset()
		if err := run([]string{"--demo", "--demo-exit", "--data-dir", filepath.Join(t.TempDir(), "d"), "--listen", "127.0.0.1:0",
			"--nats-listen", "127.0.0.1:0", "--nats-user", "akv", "--nats-password", "pw-123456",
			"--demo-vaults", "2", "--demo-keys", "5", "--demo-hsms", "0", "--log-level", "error"}, &out); err != nil {
			t.Fatalf("demo with a listening NATS: %v\n%s", err, out.String())
		}
		if !strings.Contains(out.String(), "completed: 2 vaults, 10 keys") {
			t.Fatalf("demo output:\n%s", out.String())
		}
	})

	t.Run("RefusesADataDirThatIsNotADemos", func(t *testing.T) {
		other := t.TempDir()
		if err := os.WriteFile(filepath.Join(other, "precious"), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		err := run([]string{"--demo", "--demo-exit", "--data-dir", other, "--listen", "127.0.0.1:0"}, &out)
		if err == nil || !strings.Contains(err.Error(), "empty --data-dir") {
			t.Fatalf("err = %v, want a refusal", err)
		}
		if _, err := os.Stat(filepath.Join(other, "precious")); err != nil {
			t.Fatal("the demo touched a foreign data dir")
		}
	})

	t.Run("RestartsCleanInItsOwnDataDir", func(t *testing.T) {
		out.Reset()
		if err := run([]string{"--demo", "--demo-exit", "--data-dir", dir, "--listen", "127.0.0.1:0",
			"--demo-vaults", "2", "--demo-keys", "5", "--log-level", "error"}, &out); err != nil {
			t.Fatalf("second demo: %v\n%s", err, out.String())
		}
		if !strings.Contains(out.String(), "completed: 3 vaults, 15 keys") {
			t.Fatalf("second demo output:\n%s", out.String())
		}
	})
}

func TestNATSListenNeedsTLSOffLoopback(t *testing.T) {
	base := []string{"--embedded", "--nats-user", "u", "--nats-password", "p"}
	if _, err := parse(append(base, "--nats-listen", "0.0.0.0:4222"), io.Discard); err == nil || !strings.Contains(err.Error(), "--nats-tls-cert") {
		t.Fatalf("err = %v, want the TLS flags named", err)
	}
	for _, args := range [][]string{
		{"--nats-listen", "127.0.0.1:4222"},
		{"--nats-listen", "[::1]:4222"},
		{"--nats-listen", "0.0.0.0:4222", "--nats-tls-cert", "c.pem", "--nats-tls-key", "k.pem"},
	} {
		if _, err := parse(append(slices.Clone(base), args...), io.Discard); err != nil {
			t.Errorf("parse(%v): %v", args, err)
		}
	}
}

func TestFlagsRefuseUnsafeCombinations(t *testing.T) {
	cases := map[string][]string{
		"NoNATS":                    {},
		"EmbeddedAndExternal":       {"--embedded", "--nats-url", "nats://127.0.0.1:4222"},
		"NATSListenWithoutPassword": {"--embedded", "--nats-listen", "127.0.0.1:4222"},
		"PlainHTTPOffLoopback":      {"--embedded", "--listen", "0.0.0.0:8080"},
		"HalfTLS":                   {"--embedded", "--tls-cert", "c.pem"},
		// Issue 12, finding 4: embedded NATS in clear off loopback.
		"NATSListenOffLoopbackWithoutTLS": {"--embedded", "--nats-listen", "0.0.0.0:4222", "--nats-user", "u", "--nats-password", "p"},
		"NATSListenAnyAddressWithoutTLS":  {"--embedded", "--nats-listen", ":4222", "--nats-user", "u", "--nats-password", "p"},
		"HalfNATSTLS":                     {"--embedded", "--nats-listen", "0.0.0.0:4222", "--nats-user", "u", "--nats-password", "p", "--nats-tls-cert", "c.pem"},
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := parse(args, io.Discard); err == nil {
				t.Fatalf("parse(%v) accepted", args)
			}
		})
	}
}
