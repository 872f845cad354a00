package connections_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/akvsync/akvsync/internal/azure"
	"github.com/akvsync/akvsync/internal/connections"
	"github.com/akvsync/akvsync/internal/natstest"
	"github.com/akvsync/akvsync/internal/secrets"
	"github.com/akvsync/akvsync/pkg/akvemu"
	"github.com/akvsync/akvsync/pkg/events"
)

const (
	testTenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	testClient = "0b7e4a2c-1d3f-4e5a-9b8c-7d6e5f4a3b2c"
	// testSecret is long and distinctive so that a search for it in raw
	// bytes cannot match by accident.
	testSecret = "s3cr3t-Value-That-Must-Never-Leak-7f9a2b"
)

// env is one test's JetStream server, buckets, sealer and registry.
type env struct {
	ctx      context.Context
	js       jetstream.JetStream
	kv       jetstream.KeyValue // the connections bucket, raw
	vaults   jetstream.KeyValue // the vaults bucket, raw
	sealer   *secrets.Sealer
	ring     secrets.KeyRing
	reg      *connections.Registry
	lastTime time.Time
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newRing(t *testing.T, kids ...string) secrets.KeyRing {
	t.Helper()
	r := secrets.KeyRing{Current: kids[0], Keys: map[string][]byte{}}
	for _, kid := range kids {
		k, err := secrets.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		r.Keys[kid] = k
	}
	return r
}

func newSealer(t *testing.T, r secrets.KeyRing) *secrets.Sealer {
	t.Helper()
	s, err := secrets.NewSealer(r)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func setup(t *testing.T) *env {
	t.Helper()
	srv := natstest.RunServer(t, natstest.Options{})
	_, js := natstest.Connect(t, srv)
	ctx := testCtx(t)
	if err := (events.Topology{Storage: jetstream.MemoryStorage}).EnsureStreams(ctx, js); err != nil {
		t.Fatalf("topology: %v", err)
	}
	e := &env{ctx: ctx, js: js, ring: newRing(t, "k1")}
	e.sealer = newSealer(t, e.ring)
	e.reg = e.newRegistry(t, e.sealer)
	var err error
	if e.kv, err = events.Bucket(ctx, js, events.BucketConnections); err != nil {
		t.Fatal(err)
	}
	if e.vaults, err = events.Bucket(ctx, js, events.BucketVaults); err != nil {
		t.Fatal(err)
	}
	return e
}

// newRegistry returns another registry (another process) on the same
// server with the given sealer.
func (e *env) newRegistry(t *testing.T, s *secrets.Sealer) *connections.Registry {
	t.Helper()
	reg, err := connections.New(e.ctx, e.js, s, connections.Config{Endpoints: azure.EndpointPolicy{AllowPrivate: true}})
	if err != nil {
		t.Fatalf("connections.New: %v", err)
	}
	return reg
}

// addVault writes a vault record into the vaults bucket, as the vault
// registry does, and returns it.
func (e *env) addVault(t *testing.T, name, uri, connection string) events.Vault {
	t.Helper()
	now := time.Now().UTC()
	if !now.After(e.lastTime) {
		now = e.lastTime.Add(time.Microsecond)
	}
	e.lastTime = now
	v := events.Vault{
		ID: events.NewID(), Name: name, SubscriptionID: "11111111-2222-3333-4444-555555555555",
		VaultURI: uri, Connection: connection, Cloud: azure.CloudPublic, CreatedAt: now, UpdatedAt: now,
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.vaults.Create(e.ctx, v.ID, b); err != nil {
		t.Fatal(err)
	}
	// An index entry like the vault registry's must be ignored.
	if _, err := e.vaults.Put(e.ctx, "byname.11111111-2222-3333-4444-555555555555."+name, []byte(v.ID)); err != nil {
		t.Fatal(err)
	}
	return v
}

// secretReq is a valid client-secret create request.
func secretReq(name string) connections.CreateRequest {
	return connections.CreateRequest{
		Settings: connections.Settings{
			Name: name, Description: "test connection", Labels: map[string]string{"env": "test"},
			TenantID: testTenant, ClientID: testClient, CredentialType: azure.CredentialClientSecret,
		},
		ClientSecret: testSecret,
	}
}

// A test certificate and key, made once: RSA generation is slow under -race.
var (
	certOnce            sync.Once
	certPEM, keyPEM     []byte
	otherKeyPEM         []byte // RSA key of no certificate
	ecKeyPEM, ecCertPEM []byte // an ECDSA pair (Entra ID needs RSA)
)

func testCert(t *testing.T) (cert, key []byte) {
	t.Helper()
	certOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		certPEM, keyPEM = selfSigned(k, &k.PublicKey, "akvsync-connections-test")
		k2, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		_, otherKeyPEM = selfSigned(k2, &k2.PublicKey, "other")
		ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		ecCertPEM, ecKeyPEM = selfSigned(ek, &ek.PublicKey, "ec")
	})
	return certPEM, keyPEM
}

func selfSigned(key any, pub any, cn string) (certOut, keyOut []byte) {
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		panic(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

// emu is an emulator with one vault and a certificate principal.
type emu struct {
	*akvemu.Emulator
	m        akvemu.Manifest
	vaultURL string
	certApp  string
}

const emuVault = "kv-conntest"

func startEmulator(t *testing.T) *emu {
	t.Helper()
	cert, _ := testCert(t)
	certApp := "3c2b1a09-8f7e-4d6c-b5a4-938271605f4e"
	e, err := akvemu.Start(testCtx(t), akvemu.Config{
		Vaults:     []akvemu.VaultSpec{{Name: emuVault, Keys: 3, SubscriptionID: "11111111-2222-3333-4444-555555555555"}},
		Principals: []akvemu.Principal{{ClientID: certApp, CertificatesPEM: string(cert)}},
		DataDir:    t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	m := e.Manifest()
	return &emu{Emulator: e, m: m, vaultURL: m.Vaults[0].URL, certApp: certApp}
}

// secretConn is a client-secret connection to the emulator.
func (m *emu) secretConn(name, secret string) connections.CreateRequest {
	return connections.CreateRequest{
		Settings: connections.Settings{
			Name: name, TenantID: m.m.TenantID, ClientID: m.m.ClientID,
			CredentialType: azure.CredentialClientSecret, ActiveDirectoryEndpoint: m.m.AuthorityHost,
			AzureStackServerCert: string(m.m.CACertPEM), DisableChallengeResourceVerification: true,
		},
		ClientSecret: secret,
	}
}

// certConn is a client-certificate connection to the emulator.
func (m *emu) certConn(t *testing.T, name string) connections.CreateRequest {
	cert, key := testCert(t)
	return connections.CreateRequest{
		Settings: connections.Settings{
			Name: name, TenantID: m.m.TenantID, ClientID: m.certApp,
			CredentialType: azure.CredentialClientCertificate, ActiveDirectoryEndpoint: m.m.AuthorityHost,
			AzureStackServerCert: string(m.m.CACertPEM), DisableChallengeResourceVerification: true,
		},
		Certificate: string(cert) + string(key),
	}
}
