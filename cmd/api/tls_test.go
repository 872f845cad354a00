package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/akvsync/akvsync/internal/testbin"
	"github.com/akvsync/akvsync/internal/tlsconfig"
	"github.com/akvsync/akvsync/pkg/akvemu"
)

// TestDemoServesHTTPS runs the demo with a self-signed certificate to its
// end: the API URL it prints and records is https, demo.json names the CA
// file, and that file is a certificate for 127.0.0.1 and localhost.
func TestDemoServesHTTPS(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	var out bytes.Buffer
	err := run([]string{"--demo", "--demo-exit", "--tls-self-signed", "--data-dir", dir, "--listen", "127.0.0.1:0",
		"--demo-vaults", "2", "--demo-keys", "5", "--log-level", "error"}, &out)
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "API       https://127.0.0.1:") {
		t.Errorf("the printed API URL is not https:\n%s", out.String())
	}
	certFile := filepath.Join(dir, "tls-cert.pem")
	if !strings.Contains(out.String(), "--cacert "+certFile) {
		t.Errorf("the printed commands do not trust %s:\n%s", certFile, out.String())
	}
	if strings.Contains(out.String(), "curl -sk") || strings.Contains(out.String(), "--insecure") {
		t.Errorf("the printed commands skip verification:\n%s", out.String())
	}
	// 2 vaults and the demo's Managed HSM pool, 5 keys each.
	if !strings.Contains(out.String(), "completed: 3 vaults, 15 keys") {
		t.Errorf("the demo sync did not complete:\n%s", out.String())
	}
	raw, err := os.ReadFile(filepath.Join(dir, "demo.json"))
	if err != nil {
		t.Fatal(err)
	}
	var facts demoFacts
	if err := json.Unmarshal(raw, &facts); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(facts.APIURL, "https://") {
		t.Errorf("demo.json api_url %q is not https", facts.APIURL)
	}
	if facts.CACertFile != certFile {
		t.Errorf("demo.json ca_cert_file %q, want %q", facts.CACertFile, certFile)
	}
	leaf := tlsParseCert(t, certFile)
	for _, host := range []string{"127.0.0.1", "localhost"} {
		if err := leaf.VerifyHostname(host); err != nil {
			t.Errorf("the written certificate does not cover %s: %v", host, err)
		}
	}
}

// TestPlainHTTPOffLoopbackIsRefused: without TLS and without
// --insecure-http, a non-loopback listen address stops the start with a
// clear error, before anything is created.
func TestPlainHTTPOffLoopbackIsRefused(t *testing.T) {
	for _, listen := range []string{"0.0.0.0:18443", "[::]:18443", "192.0.2.1:18443"} {
		t.Run(listen, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			var out bytes.Buffer
			err := run([]string{"--embedded", "--listen", listen, "--data-dir", dir}, &out)
			if err == nil {
				t.Fatal("run accepted plain HTTP on a non-loopback address")
			}
			if !errors.Is(err, tlsconfig.ErrPlainHTTPNotLoopback) || !strings.Contains(err.Error(), "refusing plain HTTP on a non-loopback address") {
				t.Fatalf("err = %v, want a refusal naming plain HTTP", err)
			}
			if _, statErr := os.Stat(dir); !errors.Is(statErr, os.ErrNotExist) {
				t.Errorf("the refused start created its data dir (%v)", statErr)
			}
		})
	}
	t.Run("TLS or the explicit opt-in is accepted", func(t *testing.T) {
		for _, args := range [][]string{
			{"--embedded", "--listen", "0.0.0.0:18443", "--tls-self-signed"},
			{"--embedded", "--listen", "0.0.0.0:18443", "--insecure-http"},
			{"--embedded", "--listen", "127.0.0.1:18443"},
		} {
			if _, err := parse(args, io.Discard); err != nil {
				t.Errorf("parse(%v): %v", args, err)
			}
		}
	})
}

// TestTLSPolicy serves over a real TLS listener with the configurations
// the API uses (tlsconfig.SelfSigned, and tlsconfig.ServerConfig from PEM
// files) and checks which clients get in.
func TestTLSPolicy(t *testing.T) {
	selfCfg, certPEM, err := tlsconfig.SelfSigned([]string{"akvsync.test"})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile := filepath.Join(dir, "cert.pem")
	keyFile := filepath.Join(dir, "key.pem")
	if err := tlsconfig.WriteCertPEM(certFile, certPEM); err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(selfCfg.Certificates[0].PrivateKey.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	fileCfg, err := tlsconfig.ServerConfig(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	trusted := x509.NewCertPool()
	if !trusted.AppendCertsFromPEM(certPEM) {
		t.Fatal("the self-signed PEM does not parse")
	}

	for name, cfg := range map[string]*tls.Config{"SelfSigned": selfCfg, "ServerConfig": fileCfg} {
		t.Run(name, func(t *testing.T) {
			addr := tlsServe(t, cfg)
			refused := []struct {
				name string
				cfg  *tls.Config
			}{
				{"TLS 1.0 is refused", &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10}},
				{"TLS 1.1 is refused", &tls.Config{MinVersion: tls.VersionTLS11, MaxVersion: tls.VersionTLS11}},
				{"TLS 1.2 with a CBC suite is refused", &tls.Config{MaxVersion: tls.VersionTLS12,
					CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256}}},
				{"TLS 1.2 without ECDHE is refused", &tls.Config{MaxVersion: tls.VersionTLS12,
					CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_256_GCM_SHA384}}},
				{"TLS 1.2 with 3DES is refused", &tls.Config{MaxVersion: tls.VersionTLS12,
					CipherSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA, tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA}}},
				{"only P-384 is refused", &tls.Config{CurvePreferences: []tls.CurveID{tls.CurveP384}}},
			}
			for _, c := range refused {
				t.Run(c.name, func(t *testing.T) {
					c.cfg.RootCAs, c.cfg.ServerName = trusted, "127.0.0.1"
					state, err := tlsHandshake(t, addr, c.cfg)
					if err == nil {
						t.Fatalf("handshake succeeded: version %s, suite %s", tls.VersionName(state.Version), tls.CipherSuiteName(state.CipherSuite))
					}
					// The server must be the one refusing (an alert), not
					// our client failing to offer what was asked.
					if !strings.Contains(err.Error(), "remote error") {
						t.Fatalf("handshake failed on the client side, not refused by the server: %v", err)
					}
					t.Logf("refused: %v", err)
				})
			}

			accepted := []struct {
				name    string
				cfg     *tls.Config
				version uint16
				suite   uint16 // 0: any
				curve   tls.CurveID
			}{
				{"TLS 1.3 works and is preferred", &tls.Config{}, tls.VersionTLS13, 0, tls.X25519MLKEM768},
				{"TLS 1.3 with X25519 works", &tls.Config{MinVersion: tls.VersionTLS13, CurvePreferences: []tls.CurveID{tls.X25519}}, tls.VersionTLS13, 0, tls.X25519},
				{"TLS 1.2 with AES-GCM works", &tls.Config{MaxVersion: tls.VersionTLS12,
					CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}}, tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, 0},
				{"TLS 1.2 with ChaCha20-Poly1305 works", &tls.Config{MaxVersion: tls.VersionTLS12,
					CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}}, tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, 0},
			}
			for _, c := range accepted {
				t.Run(c.name, func(t *testing.T) {
					c.cfg.RootCAs, c.cfg.ServerName = trusted, "127.0.0.1"
					state, err := tlsHandshake(t, addr, c.cfg)
					if err != nil {
						t.Fatalf("handshake: %v", err)
					}
					if state.Version != c.version {
						t.Errorf("version %s, want %s", tls.VersionName(state.Version), tls.VersionName(c.version))
					}
					if c.suite != 0 && state.CipherSuite != c.suite {
						t.Errorf("suite %s, want %s", tls.CipherSuiteName(state.CipherSuite), tls.CipherSuiteName(c.suite))
					}
					if c.curve != 0 && state.CurveID != c.curve {
						t.Errorf("key exchange %s, want %s", state.CurveID, c.curve)
					}
				})
			}

			t.Run("a client trusting the PEM verifies 127.0.0.1 and localhost", func(t *testing.T) {
				for _, host := range []string{"127.0.0.1", "localhost", "akvsync.test"} {
					client := &http.Client{Transport: &http.Transport{
						TLSClientConfig:   &tls.Config{RootCAs: trusted, ServerName: host},
						ForceAttemptHTTP2: true,
					}}
					resp, err := client.Get("https://" + addr + "/ping")
					if err != nil {
						t.Errorf("%s: %v", host, err)
						continue
					}
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK || string(body) != "pong" {
						t.Errorf("%s: %d %q", host, resp.StatusCode, body)
					}
					if resp.ProtoMajor != 2 {
						t.Errorf("%s: protocol %s, want HTTP/2 via ALPN", host, resp.Proto)
					}
				}
			})
			t.Run("verification is real", func(t *testing.T) {
				if _, err := tlsHandshake(t, addr, &tls.Config{RootCAs: trusted, ServerName: "example.com"}); err == nil {
					t.Error("the certificate verified for a host it does not name")
				}
				if _, err := tlsHandshake(t, addr, &tls.Config{RootCAs: x509.NewCertPool(), ServerName: "127.0.0.1"}); err == nil {
					t.Error("the certificate verified without being trusted")
				}
			})
		})
	}
}

// TestBinaryServesHTTPS builds the api binary and runs it the way an
// operator would (--embedded --tls-self-signed, an emulator connection,
// the admin password in the environment), logs in and reads over HTTPS
// trusting <data-dir>/tls-cert.pem, and stops it with SIGTERM.
func TestBinaryServesHTTPS(t *testing.T) {
	t.Parallel()
	bin := testbin.Path(t, testbin.API) // skipped under -short
	tmp := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	emu, err := akvemu.Start(ctx, akvemu.Config{
		Seed:         akvemu.SeedSpec{Vaults: 1, KeysPerVault: 3, Seed: 7},
		DataDir:      filepath.Join(tmp, "emulator"),
		DisableAdmin: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	manifest := filepath.Join(tmp, "emulator-manifest.json")
	if err := emu.WriteManifest(manifest); err != nil {
		t.Fatal(err)
	}

	dataDir := filepath.Join(tmp, "data")
	const password = "correct-horse-battery-staple-42"
	cmd := exec.Command(bin, "--embedded", "--tls-self-signed", "--listen", "127.0.0.1:0",
		"--data-dir", dataDir, "--emulator-manifest", manifest, "--log-level", "info")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AKVSYNC_") { // only our settings reach the binary
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "AKVSYNC_ADMIN_PASSWORD="+password)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	var logs bytes.Buffer
	urls := make(chan string, 1)
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			logs.Write(line)
			logs.WriteByte('\n')
			var rec struct {
				Message string `json:"message"`
				URL     string `json:"url"`
			}
			if json.Unmarshal(line, &rec) == nil && rec.Message == "API listening" {
				select {
				case urls <- rec.URL:
				default:
				}
			}
		}
	}()
	go func() {
		<-scanned // Wait must not close the pipe before the reader is done
		exited <- cmd.Wait()
	}()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = cmd.Process.Kill()
			<-exited
		}
	})

	var apiURL string
	select {
	case apiURL = <-urls:
	case err := <-exited:
		stopped = true
		<-scanned
		t.Fatalf("the API exited before listening: %v\n%s", err, logs.String())
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		stopped = true
		<-exited
		t.Fatalf("the API did not log its URL in time\n%s", logs.String())
	}
	if !strings.HasPrefix(apiURL, "https://127.0.0.1:") {
		t.Fatalf("API URL %q is not https", apiURL)
	}

	pemBytes, err := os.ReadFile(filepath.Join(dataDir, "tls-cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatal("tls-cert.pem holds no certificate")
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}

	t.Run("a client that does not trust the certificate is refused", func(t *testing.T) {
		_, err := (&http.Client{Timeout: 10 * time.Second}).Get(apiURL + "/healthz")
		var ue *tls.CertificateVerificationError
		if !errors.As(err, &ue) {
			t.Fatalf("err = %v, want a certificate verification error", err)
		}
	})
	t.Run("plain HTTP to the TLS port gets no API answer", func(t *testing.T) {
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + strings.TrimPrefix(apiURL, "https://") + "/healthz")
		if err == nil {
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("plain HTTP got %d", resp.StatusCode)
			}
		}
	})

	var token string
	t.Run("log in over HTTPS", func(t *testing.T) {
		body := fmt.Sprintf(`{"username":"admin","password":%q}`, password)
		resp, err := client.Post(apiURL+"/api/v1/auth/tokens", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var tok struct {
			JWT string `json:"jwt"`
		}
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &tok) != nil || tok.JWT == "" {
			t.Fatalf("token: %d %s", resp.StatusCode, raw)
		}
		if resp.TLS == nil || resp.TLS.Version != tls.VersionTLS13 {
			t.Errorf("TLS state %+v, want TLS 1.3", resp.TLS)
		}
		token = tok.JWT
	})
	t.Run("an authenticated GET over HTTPS", func(t *testing.T) {
		if token == "" {
			t.Skip("no token")
		}
		req, err := http.NewRequestWithContext(ctx, "GET", apiURL+"/api/v1/cckm/azure/vaults", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(raw), `"resources"`) {
			t.Fatalf("vaults: %d %s", resp.StatusCode, raw)
		}
		// The same request without the token is refused.
		req2, _ := http.NewRequestWithContext(ctx, "GET", apiURL+"/api/v1/cckm/azure/vaults", nil)
		resp2, err := client.Do(req2)
		if err != nil {
			t.Fatal(err)
		}
		resp2.Body.Close()
		if resp2.StatusCode != http.StatusUnauthorized {
			t.Fatalf("without a token: %d, want 401", resp2.StatusCode)
		}
	})

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Fatalf("the API exited with %v after SIGTERM\n%s", err, logs.String())
		}
	case <-ctx.Done():
		t.Fatalf("the API did not stop after SIGTERM\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), `"stopping"`) {
		t.Errorf("no orderly stop in the logs:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), password) {
		t.Errorf("the admin password appears in the logs")
	}
}

// tlsServe serves a tiny handler over a TLS listener with cfg, the way run
// does (tls.NewListener around a TCP listener, http.Server with TLSConfig).
func tlsServe(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "pong")
		}),
		TLSConfig:         cfg,
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0), // refused handshakes are the point
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(tls.NewListener(ln, cfg))
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	return ln.Addr().String()
}

// tlsHandshake dials addr and completes a TLS handshake with cfg.
func tlsHandshake(t *testing.T, addr string, cfg *tls.Config) (tls.ConnectionState, error) {
	t.Helper()
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: cfg}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer conn.Close()
	return conn.(*tls.Conn).ConnectionState(), nil
}

// tlsParseCert reads the first certificate of a PEM file.
func tlsParseCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(raw)
	if blk == nil || blk.Type != "CERTIFICATE" {
		t.Fatalf("%s is not a PEM certificate", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
