package connections_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/akvsync/akvsync/internal/connections"
	"github.com/akvsync/akvsync/pkg/akvemu"
)

func TestTestAgainstEmulator(t *testing.T) {
	e := setup(t)
	m := startEmulator(t)

	sec, err := e.reg.Create(e.ctx, m.secretConn("emu-secret", m.m.ClientSecret))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := e.reg.Create(e.ctx, m.certConn(t, "emu-cert"))
	if err != nil {
		t.Fatal(err)
	}
	wrong, err := e.reg.Create(e.ctx, m.secretConn("emu-wrong", "not-the-secret"))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("an unregistered host outside the cloud is refused", func(t *testing.T) {
		_, err := e.reg.Test(e.ctx, sec.ID, connections.TestRequest{VaultURI: m.vaultURL})
		if !errors.Is(err, connections.ErrInvalid) {
			t.Fatalf("test of an unregistered vault: %v", err)
		}
	})
	// The emulator's vault, registered (under another connection): a
	// known vault may be tested with any connection.
	e.addVault(t, "emu-known", m.vaultURL, "some-other-connection")

	t.Run("client secret, vault given", func(t *testing.T) {
		res, err := e.reg.Test(e.ctx, sec.ID, connections.TestRequest{VaultURI: m.vaultURL})
		if err != nil || !res.ConnectionOK || res.Error != nil || res.KeysListed != 3 || res.VaultURI != m.vaultURL {
			t.Fatalf("test: %+v %v (%+v)", res, err, res.Error)
		}
	})
	t.Run("client certificate, first registered vault", func(t *testing.T) {
		if _, err := e.reg.Test(e.ctx, cert.ID, connections.TestRequest{}); !errors.Is(err, connections.ErrUnprocessable) {
			t.Fatalf("no vault registered: %v", err)
		}
		e.addVault(t, emuVault, m.vaultURL, "emu-cert")
		e.addVault(t, "kv-later", "https://kv-later.vault.azure.net", "emu-cert")
		res, err := e.reg.Test(e.ctx, "emu-cert", connections.TestRequest{})
		if err != nil || !res.ConnectionOK || res.KeysListed != 3 || res.VaultURI != m.vaultURL {
			t.Fatalf("test: %+v %v (%+v)", res, err, res.Error)
		}
	})
	t.Run("wrong secret", func(t *testing.T) {
		res, err := e.reg.Test(e.ctx, wrong.ID, connections.TestRequest{VaultURI: m.vaultURL})
		if err != nil || res.ConnectionOK || res.Error == nil {
			t.Fatalf("test: %+v %v", res, err)
		}
		ae := res.Error
		want := "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '" + m.m.ClientID + "'."
		if ae.Stage != connections.StageToken || ae.Status != 401 || ae.Code != "invalid_client" || !strings.HasPrefix(ae.Message, want) {
			t.Fatalf("error %+v", ae)
		}
		if strings.Contains(ae.Message, "not-the-secret") {
			t.Fatalf("message echoes the secret: %s", ae.Message)
		}
		// The outcome is recorded on the connection (CCKM's last_connection_*).
		got, err := e.reg.Get(e.ctx, wrong.ID)
		if err != nil || got.LastConnectionOK || !strings.HasPrefix(got.LastConnectionError, "token: 401 invalid_client: AADSTS7000215") ||
			got.LastConnectionAt == nil || got.LastConnectionAt.Before(got.CreatedAt) || !got.UpdatedAt.Equal(wrong.UpdatedAt) {
			t.Fatalf("after a failed test: %+v %v", got, err)
		}
		// Fixing the secret with a patch fixes the test.
		s := m.m.ClientSecret
		if _, err := e.reg.Patch(e.ctx, wrong.ID, connections.PatchRequest{ClientSecret: &s}); err != nil {
			t.Fatal(err)
		}
		if res, err := e.reg.Test(e.ctx, wrong.ID, connections.TestRequest{VaultURI: m.vaultURL}); err != nil || !res.ConnectionOK {
			t.Fatalf("after patch: %+v %v", res, err)
		}
		if got, err := e.reg.Get(e.ctx, wrong.ID); err != nil || !got.LastConnectionOK || got.LastConnectionError != "" {
			t.Fatalf("after a good test: %+v %v", got, err)
		}
	})
	t.Run("denied principal", func(t *testing.T) {
		v, ok := m.Vault(emuVault)
		if !ok {
			t.Fatal("no vault")
		}
		if err := v.SetAccess(m.certApp, akvemu.PermList); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = v.SetAccess(m.certApp) }()
		res, err := e.reg.Test(e.ctx, cert.ID, connections.TestRequest{VaultURI: m.vaultURL})
		if err != nil || res.ConnectionOK || res.Error == nil {
			t.Fatalf("test: %+v %v", res, err)
		}
		ae := res.Error
		wantPrefix := "The user, group or application 'appid=" + m.certApp + ";"
		wantPart := "does not have keys list permission on key vault '" + emuVault + ";location=" + akvemu.DefaultRegion + "'."
		if ae.Stage != connections.StageList || ae.Status != 403 || ae.Code != "Forbidden" || ae.InnerCode != "AccessDenied" ||
			!strings.HasPrefix(ae.Message, wantPrefix) || !strings.Contains(ae.Message, wantPart) {
			t.Fatalf("error %+v", ae)
		}
		// The secret principal is not denied.
		if res, err := e.reg.Test(e.ctx, sec.ID, connections.TestRequest{VaultURI: m.vaultURL}); err != nil || !res.ConnectionOK {
			t.Fatalf("other principal: %+v %v", res, err)
		}
	})
	t.Run("bad requests", func(t *testing.T) {
		if _, err := e.reg.Test(e.ctx, sec.ID, connections.TestRequest{VaultURI: "http://plain.example"}); !errors.Is(err, connections.ErrInvalid) {
			t.Fatalf("bad vault URI: %v", err)
		}
		if _, err := e.reg.Test(e.ctx, "missing", connections.TestRequest{}); !errors.Is(err, connections.ErrNotFound) {
			t.Fatalf("unknown connection: %v", err)
		}
	})
}
