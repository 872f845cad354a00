package tlsconfig

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// SelfSignedValidity is the lifetime of a generated certificate.
const SelfSignedValidity = 365 * 24 * time.Hour

// defaultHosts are always in a self-signed certificate's SANs.
var defaultHosts = []string{"localhost", "127.0.0.1", "::1"}

// SelfSigned generates an ECDSA P-256 key and a self-signed certificate valid
// for one year for localhost, 127.0.0.1, ::1 and hosts (DNS names or IP
// addresses; duplicates and blanks are ignored), and returns a [Modern]
// configuration serving it plus the certificate in PEM, which clients can
// trust (see [WriteCertPEM]). The private key never leaves memory.
func SelfSigned(hosts []string) (*tls.Config, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("tls: serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"akvsync"}, CommonName: "akvsync self-signed"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(SelfSignedValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true, // lets clients add it as a trust anchor
	}
	seen := map[string]bool{}
	for _, h := range slices.Concat(defaultHosts, hosts) {
		h = strings.TrimSpace(h)
		if h == "" || seen[strings.ToLower(h)] {
			continue
		}
		seen[strings.ToLower(h)] = true
		if ip := net.ParseIP(strings.Trim(h, "[]")); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: create certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: parse certificate: %w", err)
	}
	cfg := Modern()
	cfg.Certificates = []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return cfg, certPEM, nil
}

// WriteCertPEM writes a certificate PEM (public data) to path atomically with
// mode 0644, creating the directory if needed, so that clients can trust it:
// curl --cacert path, or SSL_CERT_FILE.
func WriteCertPEM(path string, certPEM []byte) error {
	if blk, _ := pem.Decode(certPEM); blk == nil || blk.Type != "CERTIFICATE" {
		return fmt.Errorf("tls: write %s: data is not a PEM certificate", path)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("tls: write %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(dir, ".cert-*.pem")
	if err != nil {
		return fmt.Errorf("tls: write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if _, err := tmp.Write(certPEM); err != nil {
		tmp.Close()
		return fmt.Errorf("tls: write %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("tls: write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("tls: write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("tls: write %s: %w", path, err)
	}
	return nil
}
