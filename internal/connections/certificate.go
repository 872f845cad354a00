package connections

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" // #nosec G505 -- only for the SHA-1 certificate thumbprint Entra ID requires (x5t); not used for security
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// Generated client certificates (is_certificate_used).
const (
	// DefaultCertDuration is the validity, in days, of a generated client
	// certificate when cert_duration is not given (CCKM's two years).
	DefaultCertDuration = 730
	// MaxCertDuration bounds cert_duration (ten years).
	MaxCertDuration = 3650
	// GeneratedKeyBits is the RSA key size of a generated certificate
	// (Entra ID accepts 2048 and 4096).
	GeneratedKeyBits = 2048
	// GeneratedCertPrefix prefixes the common name of a generated
	// certificate; the connection name follows.
	GeneratedCertPrefix = "akvsync-"
)

// generateCertificate makes the self-signed client certificate of a
// connection that sets is_certificate_used: an RSA key, and a certificate
// for client authentication valid for days days from now. It returns the
// certificate followed by its PKCS #8 private key, in PEM (the form a
// client_certificate connection stores, sealed).
func generateCertificate(name string, days int, now time.Time) ([]byte, error) {
	key, err := rsa.GenerateKey(rand.Reader, GeneratedKeyBits)
	if err != nil {
		return nil, fmt.Errorf("connections: generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("connections: generate serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: GeneratedCertPrefix + name},
		NotBefore:             now.Add(-5 * time.Minute), // tolerate clock skew at Entra ID
		NotAfter:              now.AddDate(0, 0, days),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("connections: create certificate: %w", err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("connections: encode key: %w", err)
	}
	var b bytes.Buffer
	_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	_ = pem.Encode(&b, &pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})
	clear(pkcs8)
	return b.Bytes(), nil
}

// describeCertificate returns the public part of a PEM client certificate
// — its CERTIFICATE blocks, re-encoded, never a key — and the upper-case
// hex SHA-1 thumbprint of the first certificate. Anything it cannot parse
// gives empty strings (validation has refused such input already).
func describeCertificate(b []byte) (public, thumbprint string) {
	var out strings.Builder
	rest := b
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		if thumbprint == "" {
			sum := sha1.Sum(blk.Bytes) // #nosec G401 -- SHA-1 is the certificate thumbprint Entra ID shows and expects (x5t); an identifier, not a signature
			thumbprint = strings.ToUpper(hex.EncodeToString(sum[:]))
		}
		_ = pem.Encode(&out, &pem.Block{Type: "CERTIFICATE", Bytes: blk.Bytes})
	}
	return out.String(), thumbprint
}
