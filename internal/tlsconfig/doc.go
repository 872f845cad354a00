// Package tlsconfig builds the API server's TLS configuration: from a
// certificate and key file, or a generated self-signed certificate for
// development and demos, with modern settings (TLS 1.2 minimum with only
// ECDHE AEAD suites, TLS 1.3 negotiated whenever the client supports it).
// [CheckListen] refuses plain HTTP on anything but a loopback address unless
// explicitly allowed.
package tlsconfig
