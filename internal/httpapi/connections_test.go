package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/akvsync/akvsync/internal/connections"
	"github.com/akvsync/akvsync/internal/httpapi"
)

const connectionSecret = "s3cr3t-value-that-must-never-come-back"

func TestConnections(t *testing.T) {
	t.Parallel()
	e := setup(t)
	path := httpapi.ConnectionsPath
	body := `{"name":"prod","tenant_id":"72f988bf-86f1-41af-91ab-2d7cd011db47","client_id":"0f1b2c3d-4e5f-6789-abcd-ef0123456789",` +
		`"client_secret":"` + connectionSecret + `","cloud_name":"AzureCloud","description":"production tenant",` +
		// Nothing listens there: the test endpoint's token request fails
		// on loopback, and no test traffic leaves the machine.
		`"active_directory_endpoint":"https://127.0.0.1:1/"}`

	var created connections.Connection
	t.Run("AdminCreatesAConnectionAndNeverSeesTheSecretAgain", func(t *testing.T) {
		r := e.as(t, "alice", "POST", path, body)
		r.wantStatus(t, http.StatusCreated)
		r.decode(t, &created)
		if created.ID == "" || created.Name != "prod" || !created.ClientSecretSet || strings.Contains(string(r.body), connectionSecret) {
			t.Fatalf("created = %s", r.body)
		}
		var shape map[string]any
		r.decode(t, &shape)
		if ts, _ := shape["createdAt"].(string); len(ts) != len(httpapi.TimeFormat) {
			t.Fatalf("createdAt %q is not in CCKM's format", shape["createdAt"])
		}
		if _, ok := shape["labels"].(map[string]any); !ok {
			t.Fatalf("labels = %v, want an object", shape["labels"])
		}
		for _, p := range []string{path, path + "/" + created.ID, path + "/prod"} {
			got := e.as(t, "victor", "GET", p, "")
			got.wantStatus(t, http.StatusOK)
			if strings.Contains(string(got.body), connectionSecret) {
				t.Fatalf("GET %s returned the secret", p)
			}
		}
	})

	t.Run("DuplicateNameConflicts", func(t *testing.T) {
		e.as(t, "alice", "POST", path, body).wantStatus(t, http.StatusConflict)
	})

	t.Run("BadBodiesAre400AndCreateNothing", func(t *testing.T) {
		for name, b := range map[string]string{
			"unknown field":     `{"name":"x1","client_id":"a","tenant_id":"b","client_secret":"c","colour":"red"}`,
			"wrong type":        `{"name":"x2","client_id":"a","tenant_id":"b","client_secret":7}`,
			"bad name":          `{"name":"no spaces allowed","client_id":"a","tenant_id":"b","client_secret":"c"}`,
			"no secret":         `{"name":"x3","client_id":"a","tenant_id":"b","credential_type":"client_secret"}`,
			"unknown cloud":     `{"name":"x4","client_id":"a","tenant_id":"b","client_secret":"c","cloud_name":"Mars"}`,
			"stack no endpoint": `{"name":"x5","client_id":"a","tenant_id":"b","client_secret":"c","cloud_name":"AzureStack"}`,
			"not json":          `name=x6`,
		} {
			t.Run(name, func(t *testing.T) {
				r := e.as(t, "alice", "POST", path, b)
				r.wantStatus(t, http.StatusBadRequest)
				if strings.Contains(string(r.body), "\"c\"") {
					t.Fatalf("the error echoes a value: %s", r.body)
				}
			})
		}
		var page connections.Page
		e.as(t, "alice", "GET", path+"?limit=-1", "").decode(t, &page)
		if page.Total != 1 {
			t.Fatalf("bad requests created connections: %+v", page.Resources)
		}
	})

	t.Run("PatchChangesSettingsAndResealsTheSecret", func(t *testing.T) {
		var got connections.Connection
		r := e.as(t, "alice", "PATCH", path+"/"+created.ID, `{"description":"moved","client_secret":"another-secret-value"}`)
		r.wantStatus(t, http.StatusOK)
		r.decode(t, &got)
		if got.Description != "moved" || !got.ClientSecretSet || strings.Contains(string(r.body), "another-secret-value") {
			t.Fatalf("patched = %s", r.body)
		}
		e.as(t, "alice", "PATCH", path+"/"+created.ID, `{"name":"renamed"}`).wantStatus(t, http.StatusBadRequest)
	})

	t.Run("TestRefusesAnUnregisteredHost", func(t *testing.T) {
		// The API must not send a connection's token to any host a caller
		// names (internal/connections tests the Azure outcomes against the
		// emulator).
		r := e.as(t, "alice", "POST", path+"/"+created.ID+"/test", `{"vault_uri":"https://127.0.0.1:1"}`)
		r.wantStatus(t, http.StatusBadRequest)
		if !strings.Contains(string(r.body), "registered vault") {
			t.Fatalf("400 body: %s", r.body)
		}
	})

	t.Run("OperatorAndViewerCannotWrite", func(t *testing.T) {
		e.as(t, "oscar", "POST", path, body).wantStatus(t, http.StatusForbidden)
		e.as(t, "victor", "DELETE", path+"/"+created.ID, "").wantStatus(t, http.StatusForbidden)
	})

	t.Run("DeleteIsRefusedWhileVaultsUseIt", func(t *testing.T) {
		// testConn is the connection the harness's vaults use; register it
		// so vaults can reference it, then add a vault.
		b := `{"name":"` + testConn + `","tenant_id":"t","client_id":"c","client_secret":"x"}`
		var conn connections.Connection
		e.as(t, "alice", "POST", path, b).decode(t, &conn)
		v := e.addVaults(t, testSub, "vault-c")[0]
		r := e.as(t, "alice", "DELETE", path+"/"+conn.ID, "")
		r.wantStatus(t, http.StatusConflict)
		if !strings.Contains(string(r.body), "vault-c") {
			t.Fatalf("409 does not name the vault: %s", r.body)
		}
		e.as(t, "alice", "POST", "/api/v1/cckm/azure/vaults/"+v.ID+"/remove-vault", "").wantStatus(t, http.StatusOK)
		e.as(t, "alice", "DELETE", path+"/"+conn.ID, "").wantStatus(t, http.StatusNoContent)
		e.as(t, "alice", "GET", path+"/"+conn.ID, "").wantStatus(t, http.StatusNotFound)
	})
}
