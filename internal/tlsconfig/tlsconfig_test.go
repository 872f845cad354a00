package tlsconfig

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// serve starts an HTTPS server with cfg on 127.0.0.1.
func serve(t *testing.T, cfg *tls.Config) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	srv.TLS = cfg
	srv.EnableHTTP2 = true
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func pool(t *testing.T, certPEM []byte) *x509.CertPool {
	t.Helper()
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(certPEM) {
		t.Fatal("bad PEM")
	}
	return p
}

// handshake dials the server's port with client settings.
func handshake(t *testing.T, srv *httptest.Server, client *tls.Config) (tls.ConnectionState, error) {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", srv.Listener.Addr().String(), client)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer conn.Close()
	return conn.ConnectionState(), nil
}

func TestSelfSignedIsTrustedForItsNames(t *testing.T) {
	cfg, certPEM, err := SelfSigned([]string{"akvsync.internal", "10.1.2.3", " ", "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	leaf := cfg.Certificates[0].Leaf
	if _, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok {
		t.Fatalf("key type %T", leaf.PublicKey)
	}
	if d := leaf.NotAfter.Sub(leaf.NotBefore); d < 364*24*time.Hour || d > 367*24*time.Hour {
		t.Fatalf("validity %s", d)
	}
	if len(leaf.DNSNames) != 2 || len(leaf.IPAddresses) != 3 {
		t.Fatalf("SANs dns=%v ip=%v", leaf.DNSNames, leaf.IPAddresses)
	}
	srv := serve(t, cfg)
	roots := pool(t, certPEM)
	for _, name := range []string{"localhost", "127.0.0.1", "akvsync.internal", "10.1.2.3"} {
		t.Run("trusted as "+name, func(t *testing.T) {
			st, err := handshake(t, srv, &tls.Config{RootCAs: roots, ServerName: name})
			if err != nil {
				t.Fatal(err)
			}
			if st.Version != tls.VersionTLS13 {
				t.Fatalf("negotiated %s, want TLS 1.3", tls.VersionName(st.Version))
			}
		})
	}
	t.Run("not trusted for another name", func(t *testing.T) {
		if _, err := handshake(t, srv, &tls.Config{RootCAs: roots, ServerName: "evil.example"}); err == nil {
			t.Fatal("handshake succeeded")
		}
	})
	t.Run("https request with the PEM as root", func(t *testing.T) {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}}
		resp, err := c.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
			t.Fatalf("status %d proto %s", resp.StatusCode, resp.Proto)
		}
	})
}

func TestProtocolPolicy(t *testing.T) {
	cfg, certPEM, err := SelfSigned(nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := serve(t, cfg)
	roots := pool(t, certPEM)
	tests := []struct {
		name   string
		client *tls.Config
		ok     bool
	}{
		{name: "TLS 1.3", client: &tls.Config{MinVersion: tls.VersionTLS13}, ok: true},
		{name: "TLS 1.2 with ECDHE AES-GCM", client: &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}}, ok: true},
		{name: "TLS 1.2 with ChaCha20", client: &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}}, ok: true},
		{name: "TLS 1.2 CBC only is refused", client: &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}}, ok: false},
		{name: "TLS 1.1 is refused", client: &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}, ok: false},
		{name: "P-384 only is refused", client: &tls.Config{CurvePreferences: []tls.CurveID{tls.CurveP384}}, ok: false},
		{name: "P-256 only", client: &tls.Config{CurvePreferences: []tls.CurveID{tls.CurveP256}}, ok: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.client.RootCAs, tt.client.ServerName = roots, "localhost"
			_, err := handshake(t, srv, tt.client)
			if (err == nil) != tt.ok {
				t.Fatalf("handshake err = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestServerConfigFromFiles(t *testing.T) {
	dir := t.TempDir()
	_, certPEM, err := SelfSigned([]string{"api.test"})
	if err != nil {
		t.Fatal(err)
	}
	// A certificate and key on disk, as an operator would provide them.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	tmpl := &x509.Certificate{SerialNumber: bigOne(), DNSNames: []string{"api.test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certOnDisk := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(certFile, certOnDisk, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}

	cfg, err := ServerConfig(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS12 || len(cfg.Certificates) != 1 {
		t.Fatalf("cfg = %+v", cfg)
	}
	srv := serve(t, cfg)
	if _, err := handshake(t, srv, &tls.Config{RootCAs: pool(t, certOnDisk), ServerName: "api.test"}); err != nil {
		t.Fatal(err)
	}

	// Errors: missing file, mismatched key, empty names.
	if _, err := ServerConfig(filepath.Join(dir, "absent.crt"), keyFile); err == nil {
		t.Fatal("missing cert accepted")
	}
	other := filepath.Join(dir, "other.crt")
	if err := os.WriteFile(other, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ServerConfig(other, keyFile); err == nil {
		t.Fatal("mismatched key accepted")
	}
	if _, err := ServerConfig("", ""); err == nil {
		t.Fatal("empty names accepted")
	}
}

func TestWriteCertPEM(t *testing.T) {
	_, certPEM, err := SelfSigned(nil)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "sub", "akvsync-ca.pem")
	if err := WriteCertPEM(path, certPEM); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil || string(got) != string(certPEM) {
		t.Fatalf("read back: %v", err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v", st.Mode())
	}
	if err := WriteCertPEM(path, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")); err == nil {
		t.Fatal("non-certificate PEM written")
	}
}

func TestCheckListen(t *testing.T) {
	tests := []struct {
		addr          string
		tls, insecure bool
		want          error
	}{
		{addr: "127.0.0.1:8080"},
		{addr: "127.9.9.9:8080"},
		{addr: "[::1]:8080"},
		{addr: "localhost:8080"},
		{addr: "LOCALHOST:8080"},
		{addr: "[::ffff:127.0.0.1]:8080"},
		{addr: ":8080", want: ErrPlainHTTPNotLoopback},
		{addr: "0.0.0.0:8080", want: ErrPlainHTTPNotLoopback},
		{addr: "[::]:8080", want: ErrPlainHTTPNotLoopback},
		{addr: "10.0.0.5:8080", want: ErrPlainHTTPNotLoopback},
		{addr: "api.example:8080", want: ErrPlainHTTPNotLoopback},
		{addr: "0.0.0.0:8443", tls: true},
		{addr: ":8080", insecure: true},
		{addr: "8080", want: ErrBadAddress},
		{addr: "8080", tls: true, want: ErrBadAddress},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			err := CheckListen(tt.addr, tt.tls, tt.insecure)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("CheckListen(%q, tls=%v, insecure=%v) = %v, want %v", tt.addr, tt.tls, tt.insecure, err, tt.want)
			}
		})
	}
}

func bigOne() *big.Int { return big.NewInt(1) }
