package tlsconfig

import (
	"crypto/tls"
	"fmt"
)

// cipherSuites are the TLS 1.2 suites we allow: ECDHE key exchange (forward
// secrecy) with an AEAD. TLS 1.3 suites are not configurable and all good.
var cipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// curves are the key exchanges offered: the X25519+ML-KEM hybrid
// (post-quantum, TLS 1.3 only), then X25519 and P-256.
var curves = []tls.CurveID{tls.X25519MLKEM768, tls.X25519, tls.CurveP256}

// Modern returns the base server settings without certificates: TLS 1.2
// minimum, ECDHE+AEAD suites only, curves X25519MLKEM768/X25519/P-256, ALPN
// h2 and http/1.1. TLS 1.3 is negotiated with every client that supports it.
func Modern() *tls.Config {
	return &tls.Config{
		MinVersion:       tls.VersionTLS12,
		CipherSuites:     append([]uint16(nil), cipherSuites...),
		CurvePreferences: append([]tls.CurveID(nil), curves...),
		NextProtos:       []string{"h2", "http/1.1"},
	}
}

// ServerConfig loads a PEM certificate chain and private key and returns a
// [Modern] configuration serving them.
func ServerConfig(certFile, keyFile string) (*tls.Config, error) {
	if certFile == "" || keyFile == "" {
		return nil, fmt.Errorf("tls: both a certificate file and a key file are required")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: load %s / %s: %w", certFile, keyFile, err)
	}
	cfg := Modern()
	cfg.Certificates = []tls.Certificate{cert}
	return cfg, nil
}
