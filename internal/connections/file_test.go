package connections_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/akvsync/akvsync/internal/azure"
	"github.com/akvsync/akvsync/internal/connections"
	"github.com/akvsync/akvsync/internal/natstest"
	"github.com/akvsync/akvsync/internal/secrets"
	"github.com/akvsync/akvsync/internal/tlsconfig"
	"github.com/akvsync/akvsync/pkg/events"
	akvsync "github.com/akvsync/akvsync/pkg/sync"
)

func write(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadConnections(t *testing.T) {
	dir := t.TempDir()
	_, caPEM, err := tlsconfig.SelfSigned(nil)
	if err != nil {
		t.Fatal(err)
	}
	write(t, dir, "ca.pem", string(caPEM))

	t.Run("ReadsEveryKindWithPathsRelativeToTheFile", func(t *testing.T) {
		f := write(t, dir, "conns.json", `{"connections":[
			{"name":"prod","tenant_id":"t","client_id":"c","client_secret":"s"},
			{"name":"stack","tenant_id":"t","client_id":"c","client_secret":"s","cloud_name":"AzureStack",
			 "active_directory_endpoint":"https://login.stack.example/","key_vault_dns_suffix":"vault.stack.example","ca_cert_file":"ca.pem"},
			{"name":"aks","credential_type":"managed_identity"}]}`)
		got, err := connections.LoadConnections(f)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 3 || got["prod"].CredentialType != azure.CredentialClientSecret || got["prod"].ClientSecret != "s" {
			t.Fatalf("connections = %+v", got)
		}
		if string(got["stack"].ExtraCAPEM) != string(caPEM) || got["stack"].VaultDNSSuffix() != "vault.stack.example" {
			t.Fatalf("stack = %+v", got["stack"])
		}
	})

	for name, body := range map[string]string{
		"duplicate name":   `{"connections":[{"name":"a","tenant_id":"t","client_id":"c","client_secret":"s"},{"name":"a","tenant_id":"t","client_id":"c","client_secret":"s"}]}`,
		"no name":          `{"connections":[{"tenant_id":"t","client_id":"c","client_secret":"s"}]}`,
		"missing secret":   `{"connections":[{"name":"a","tenant_id":"t","client_id":"c"}]}`,
		"missing CA file":  `{"connections":[{"name":"a","tenant_id":"t","client_id":"c","client_secret":"s","ca_cert_file":"nope.pem"}]}`,
		"not JSON":         `connections: []`,
		"unknown cloud":    `{"connections":[{"name":"a","tenant_id":"t","client_id":"c","client_secret":"s","cloud_name":"Mars"}]}`,
		"stack w/o suffix": `{"connections":[{"name":"a","tenant_id":"t","client_id":"c","client_secret":"s","cloud_name":"AzureStack","active_directory_endpoint":"https://l.example/"}]}`,
	} {
		t.Run("Refuses "+name, func(t *testing.T) {
			f := write(t, dir, "bad.json", body)
			if _, err := connections.LoadConnections(f); !errors.Is(err, connections.ErrConnectionsFile) {
				t.Fatalf("err = %v, want connections.ErrConnectionsFile", err)
			}
		})
	}
}

func TestImportConnectionAndChain(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := natstest.RunServer(t, natstest.Options{})
	_, js := natstest.Connect(t, s)
	if err := (events.Topology{}).EnsureStreams(ctx, js); err != nil {
		t.Fatal(err)
	}
	key, _ := secrets.GenerateKey()
	sealer, err := secrets.NewSealer(secrets.KeyRing{Current: "m1", Keys: map[string][]byte{"m1": key}})
	if err != nil {
		t.Fatal(err)
	}
	defer sealer.Close()
	reg, err := connections.New(ctx, js, sealer, connections.Config{Endpoints: azure.EndpointPolicy{AllowPrivate: true}})
	if err != nil {
		t.Fatal(err)
	}
	conn := azure.Connection{Name: "prod", CredentialType: azure.CredentialClientSecret, TenantID: "t1", ClientID: "c1", ClientSecret: "first-secret"}

	t.Run("CreatesThenUpdates", func(t *testing.T) {
		if err := reg.Import(ctx, conn); err != nil {
			t.Fatal(err)
		}
		conn.TenantID, conn.ClientSecret = "t2", "second-secret"
		if err := reg.Import(ctx, conn); err != nil {
			t.Fatal(err)
		}
		got, err := reg.Connection(ctx, "prod")
		if err != nil || got.TenantID != "t2" || got.ClientSecret != "second-secret" {
			t.Fatalf("registry has %+v, %v", got, err)
		}
	})
	t.Run("ChainPrefersConfiguredConnectionsThenTheRegistry", func(t *testing.T) {
		chain := connections.Chain{Static: map[string]azure.Connection{"prod": {Name: "prod", TenantID: "static"}}, Registry: reg}
		if got, _ := chain.Connection(ctx, "prod"); got.TenantID != "static" {
			t.Fatalf("got %+v, want the configured one", got)
		}
		chain.Static = nil
		if got, err := chain.Connection(ctx, "prod"); err != nil || got.TenantID != "t2" {
			t.Fatalf("got %+v, %v, want the registry's", got, err)
		}
		if _, err := chain.Connection(ctx, "ghost"); !errors.Is(err, akvsync.ErrUnknownConnection) {
			t.Fatalf("unknown: %v", err)
		}
	})
	t.Run("AnUndecryptableSecretIsPermanent", func(t *testing.T) {
		other, _ := secrets.GenerateKey()
		wrong, err := secrets.NewSealer(secrets.KeyRing{Current: "m9", Keys: map[string][]byte{"m9": other}})
		if err != nil {
			t.Fatal(err)
		}
		defer wrong.Close()
		reg2, err := connections.New(ctx, js, wrong, connections.Config{Endpoints: azure.EndpointPolicy{AllowPrivate: true}})
		if err != nil {
			t.Fatal(err)
		}
		_, err = connections.Chain{Registry: reg2}.Connection(ctx, "prod")
		if !errors.Is(err, akvsync.ErrPermanent) || strings.Contains(err.Error(), "second-secret") {
			t.Fatalf("err = %v", err)
		}
	})
}
