package akvemu

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
)

// LocalhostDialer returns a DialContext that sends every "localhost" and
// "*.localhost" host (which do not resolve everywhere) to ip, keeping the port.
// Other addresses are dialled unchanged.
func LocalhostDialer(ip string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err == nil {
			h := strings.ToLower(host)
			if h == "localhost" || strings.HasSuffix(h, ".localhost") {
				addr = net.JoinHostPort(ip, port)
			}
		}
		return d.DialContext(ctx, network, addr)
	}
}

// newClientTransport is an HTTP/1.1 transport trusting pool, with the localhost dialer.
func newClientTransport(pool *x509.CertPool, ip string) *http.Transport {
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           LocalhostDialer(ip),
		TLSClientConfig:       &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   10 * time.Second,
		MaxIdleConns:          0,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     false,
	}
}

func (e *Emulator) newTransport() *http.Transport {
	return newClientTransport(e.ca.pool, e.cfg.ListenHost)
}

// Transport returns the emulator's shared client transport: it trusts the CA and maps
// *.localhost host names (host-routing mode) to the listen address.
func (e *Emulator) Transport() *http.Transport { return e.transport }

// DialContext is the dialer of Transport, for clients that build their own transport.
func (e *Emulator) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return LocalhostDialer(e.cfg.ListenHost)(ctx, network, addr)
}

// CertPool returns a pool holding only the emulator CA.
func (e *Emulator) CertPool() *x509.CertPool { return e.ca.pool.Clone() }

// HTTPClient returns a client that trusts the emulator CA (shares Transport).
func (e *Emulator) HTTPClient() *http.Client { return &http.Client{Transport: e.transport} }

// ClientOptions returns azkeys options for the per-vault listeners: the CA-trusting
// transport and DisableChallengeResourceVerification (the challenge resource is
// https://vault.azure.net while vaults live on 127.0.0.1:PORT).
func (e *Emulator) ClientOptions() *azkeys.ClientOptions {
	return &azkeys.ClientOptions{
		ClientOptions:                        azcore.ClientOptions{Transport: e.HTTPClient()},
		DisableChallengeResourceVerification: true,
	}
}

// HostRoutingClientOptions returns azkeys options for host-routing URLs
// (Vault.HostURL): challenge resource verification stays on.
func (e *Emulator) HostRoutingClientOptions() *azkeys.ClientOptions {
	return &azkeys.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: e.HTTPClient()}}
}

// Credential returns an azidentity client-secret credential for the default
// principal, pointed at the emulated authority and trusting the CA.
func (e *Emulator) Credential() (azcore.TokenCredential, error) {
	return e.CredentialFor(e.clientID, e.clientSecret)
}

// CredentialFor returns a client-secret credential for any principal.
func (e *Emulator) CredentialFor(clientID, secret string) (azcore.TokenCredential, error) {
	cred, err := azidentity.NewClientSecretCredential(e.tokens.tenant, clientID, secret, &azidentity.ClientSecretCredentialOptions{
		ClientOptions:            e.identityClientOptions(),
		DisableInstanceDiscovery: true,
	})
	if err != nil {
		return nil, fmt.Errorf("client secret credential: %w", err)
	}
	return cred, nil
}

func (e *Emulator) identityClientOptions() azcore.ClientOptions {
	return azcore.ClientOptions{
		Cloud:     e.Cloud(),
		Transport: e.HTTPClient(),
	}
}

// Cloud returns the cloud configuration of the emulator: its Entra ID authority,
// and its Azure Resource Manager endpoint and audience
// (Services[cloud.ResourceManager]), for azcore ARM clients (arm.ClientOptions).
func (e *Emulator) Cloud() cloud.Configuration {
	return emulatorCloud(e.AuthorityHost(), e.ResourceManagerURL())
}

// NewClientCertificate issues an RSA client certificate signed by the emulator CA,
// registers it for clientID (registering the principal if new) and returns the
// certificate and key PEM, ready for azidentity.ParseCertificates.
func (e *Emulator) NewClientCertificate(clientID string) (certPEM, keyPEM []byte, err error) {
	cert, key, err := e.ca.issueClientCertificate(clientID)
	if err != nil {
		return nil, nil, err
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	if err := e.tokens.addPrincipal(Principal{ClientID: clientID, CertificatesPEM: string(certPEM)}); err != nil {
		return nil, nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode client key: %w", err)
	}
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	return certPEM, keyPEM, nil
}

// CertificateCredential issues a client certificate for clientID (see
// NewClientCertificate) and returns an azidentity client-certificate credential using it.
func (e *Emulator) CertificateCredential(clientID string) (azcore.TokenCredential, error) {
	certPEM, keyPEM, err := e.NewClientCertificate(clientID)
	if err != nil {
		return nil, err
	}
	certs, key, err := azidentity.ParseCertificates(append(certPEM, keyPEM...), nil)
	if err != nil {
		return nil, fmt.Errorf("parse client certificate: %w", err)
	}
	cred, err := azidentity.NewClientCertificateCredential(e.tokens.tenant, clientID, certs, key, &azidentity.ClientCertificateCredentialOptions{
		ClientOptions:            e.identityClientOptions(),
		DisableInstanceDiscovery: true,
	})
	if err != nil {
		return nil, fmt.Errorf("client certificate credential: %w", err)
	}
	return cred, nil
}
