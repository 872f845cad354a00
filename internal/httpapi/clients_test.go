package httpapi_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/akvsync/akvsync/internal/httpapi"
)

// The request bodies of Thales' public CCKM clients, field for field, as
// testdata/clients/README.md describes, sent to the real handlers.

// clientBody reads a fixture and fills its {{placeholders}} (ids known
// only at run time).
func clientBody(t *testing.T, name string, vars map[string]string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "clients", name))
	if err != nil {
		t.Fatal(err)
	}
	s := string(raw)
	for k, v := range vars {
		s = strings.ReplaceAll(s, "{{"+k+"}}", v)
	}
	if m := regexp.MustCompile(`\{\{\w+\}\}`).FindString(s); m != "" {
		t.Fatalf("fixture %s: placeholder %s not filled", name, m)
	}
	return s
}

// object decodes a JSON object answer.
func object(t *testing.T, r response) map[string]any {
	t.Helper()
	var m map[string]any
	r.decode(t, &m)
	return m
}

// field follows a path of object members.
func field(m map[string]any, path ...string) any {
	var v any = m
	for _, p := range path {
		o, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = o[p]
	}
	return v
}

// wantFields checks members of an answer.
func wantFields(t *testing.T, m map[string]any, want map[string]any) {
	t.Helper()
	for path, w := range want {
		if got := field(m, strings.Split(path, ".")...); got != w {
			t.Errorf("%s = %#v, want %#v", path, got, w)
		}
	}
}

// noSecret fails if an answer quotes a secret of the fixtures.
func noSecret(t *testing.T, r response) {
	t.Helper()
	for _, s := range []string{"s3cr3t", "PRIVATE KEY"} {
		if strings.Contains(string(r.body), s) {
			t.Fatalf("the answer quotes a secret (%s): %s", s, r.body)
		}
	}
}

func TestPublicClientBodies(t *testing.T) {
	t.Parallel()
	e := setup(t, func(o *options) { o.realConnections = true })
	conns := httpapi.ConnectionsPath
	vars := map[string]string{}
	var tfConn, hsmID, ansibleVault, tfVault string

	t.Run("Terraform creates a connection with every field of its model", func(t *testing.T) {
		r := e.as(t, "alice", "POST", conns, clientBody(t, "terraform_connection_create.json", vars))
		r.wantStatus(t, http.StatusCreated)
		noSecret(t, r)
		m := object(t, r)
		wantFields(t, m, map[string]any{
			"name": "tf-azure", "description": "managed by terraform", "labels.team": "security", "meta.owner": "platform",
			"cert_duration": 730.0, "cloud_name": "AzureCloud", "is_certificate_used": false, "external_certificate_used": false,
			"certificate": "", "certificate_thumbprint": "", "last_connection_ok": false, "last_connection_error": "",
			"service": "azure", "category": "cloud", "account": httpapi.Account, "client_secret_set": true,
		})
		tfConn = m["id"].(string)
		vars["tf_connection_id"] = tfConn
		if m["resource_url"] != conns+"/"+tfConn || m["uri"] == "" || m["createdAt"] == "" {
			t.Errorf("read-only fields: %s", r.body)
		}
	})
	t.Run("Terraform updates it with every field of its model", func(t *testing.T) {
		// name "", certificate "", cert_duration 0 and the read-only fields
		// are absent; the secret is sealed again.
		r := e.as(t, "alice", "PATCH", conns+"/"+tfConn, clientBody(t, "terraform_connection_update.json", vars))
		r.wantStatus(t, http.StatusOK)
		noSecret(t, r)
		wantFields(t, object(t, r), map[string]any{
			"name": "tf-azure", "description": "managed by terraform, updated", "labels.tier": "prod", "cert_duration": 730.0, "client_secret_set": true,
		})
	})
	t.Run("Terraform creates an Azure Stack connection", func(t *testing.T) {
		r := e.as(t, "alice", "POST", conns, clientBody(t, "terraform_connection_stack.json", vars))
		r.wantStatus(t, http.StatusCreated)
		m := object(t, r)
		wantFields(t, m, map[string]any{
			"cloud_name": "AzureStack", "azure_stack_connection_type": "AAD", "resource_manager_url": "https://management.local.azurestack.external/",
			"key_vault_dns_suffix": "vault.local.azurestack.external", "vault_resource_url": "https://vault.local.azurestack.external",
		})
		if !strings.HasPrefix(m["azure_stack_server_cert"].(string), "-----BEGIN CERTIFICATE-----") {
			t.Errorf("azure_stack_server_cert = %v", m["azure_stack_server_cert"])
		}
	})
	t.Run("Ansible's connection_manager_azure creates one", func(t *testing.T) {
		r := e.as(t, "alice", "POST", conns, clientBody(t, "ansible_connection_manager_azure_create.json", vars))
		r.wantStatus(t, http.StatusCreated)
		noSecret(t, r)
		wantFields(t, object(t, r), map[string]any{"name": "ansible", "cert_duration": 730.0})
	})
	t.Run("Ansible looks a connection up by name", func(t *testing.T) {
		r := e.as(t, "victor", "GET", conns+"?skip=0&limit=1&name=ansible", "")
		r.wantStatus(t, http.StatusOK)
		var page struct{ Resources []map[string]any }
		r.decode(t, &page)
		if len(page.Resources) != 1 || page.Resources[0]["name"] != "ansible" {
			t.Fatalf("lookup %s", r.body)
		}
	})
	t.Run("Ansible's connection_manager_azure patches it", func(t *testing.T) {
		r := e.as(t, "alice", "PATCH", conns+"/ansible", clientBody(t, "ansible_connection_manager_azure_patch.json", vars))
		r.wantStatus(t, http.StatusOK)
		wantFields(t, object(t, r), map[string]any{"description": "patched by ansible", "client_secret_set": true})
	})
	t.Run("Ansible's connection_azure_save has the server generate a certificate", func(t *testing.T) {
		r := e.as(t, "alice", "POST", conns, clientBody(t, "ansible_connection_azure_save_certificate.json", vars))
		r.wantStatus(t, http.StatusCreated)
		noSecret(t, r)
		m := object(t, r)
		wantFields(t, m, map[string]any{"is_certificate_used": true, "external_certificate_used": false, "cert_duration": 365.0,
			"credential_type": "client_certificate", "certificate_set": true})
		if !strings.HasPrefix(m["certificate"].(string), "-----BEGIN CERTIFICATE-----") || !regexp.MustCompile(`^[0-9A-F]{40}$`).MatchString(m["certificate_thumbprint"].(string)) {
			t.Errorf("certificate %v thumbprint %v", m["certificate"], m["certificate_thumbprint"])
		}
	})

	t.Run("the Ansible playbook adds its vault", func(t *testing.T) {
		// The first collection sends every property, null when unset.
		r := e.as(t, "alice", "POST", addPath, clientBody(t, "ansible_cckm_az_vault_create.json", vars))
		r.wantStatus(t, http.StatusCreated)
		var page struct{ Resources []map[string]any }
		r.decode(t, &page)
		v := page.Resources[0]
		wantFields(t, v, map[string]any{
			"name": "ansible-vault::" + testSub, "azure_name": "ansible-vault", "type": "Microsoft.KeyVault/vaults", "connection": "ansible",
			"azure_vault_id":      "/subscriptions/" + testSub + "/resourceGroups/ansible-rg/providers/Microsoft.KeyVault/vaults/ansible-vault",
			"properties.vaultUri": "https://ansible-vault.vault.azure.net/", "properties.softDeleteRetentionInDays": 7.0,
			"properties.sku.name": "Standard", "location": "eastus", "cloud_key_backup_limit": 0.0,
		})
		for _, null := range []string{"createMode", "enablePurgeProtection", "enabledForDeployment"} {
			if _, ok := v["properties"].(map[string]any)[null]; ok {
				t.Errorf("properties keep the null %s", null)
			}
		}
		ansibleVault = v["id"].(string)
	})
	t.Run("Ansible looks the vault id up by name::subscription", func(t *testing.T) {
		// cm_resource_get_id_from_name, resource_type azure-key-vault.
		r := e.as(t, "victor", "GET", "/api/v1/cckm/azure/vaults/?skip=0&limit=1&name=ansible-vault::"+testSub, "")
		r.wantStatus(t, http.StatusOK)
		var page struct {
			Total     int
			Resources []map[string]any
		}
		r.decode(t, &page)
		if page.Total != 1 || len(page.Resources) != 1 || page.Resources[0]["id"] != ansibleVault || page.Resources[0]["name"] != "ansible-vault::"+testSub {
			t.Fatalf("lookup %s", r.body)
		}
	})
	t.Run("Ansible's cckm_azure_vault adds a discovered vault with a backup limit", func(t *testing.T) {
		r := e.as(t, "alice", "POST", addPath, clientBody(t, "ansible_cckm_azure_vault_add.json", vars))
		r.wantStatus(t, http.StatusCreated)
		var page struct{ Resources []map[string]any }
		r.decode(t, &page)
		wantFields(t, page.Resources[0], map[string]any{"cloud_key_backup_limit": 10.0, "tags.env": "prod", "properties.enablePurgeProtection": true, "properties.createMode": "default"})
		// Its idempotency check filters by plain name and subscription.
		l := e.as(t, "victor", "GET", vaultsPath+"?skip=0&limit=1&name=production-vault&subscription_id="+testSub, "")
		l.wantStatus(t, http.StatusOK)
		var found struct{ Total int }
		l.decode(t, &found)
		if found.Total != 1 {
			t.Fatalf("filter by name and subscription: %s", l.body)
		}
	})
	t.Run("Terraform's ciphertrust_azure_vault adds the ARM vault under azure, by connection id", func(t *testing.T) {
		r := e.as(t, "alice", "POST", addPath, clientBody(t, "terraform_azure_vault_create.json", vars))
		r.wantStatus(t, http.StatusCreated)
		var page struct{ Resources []map[string]any }
		r.decode(t, &page)
		v := page.Resources[0]
		wantFields(t, v, map[string]any{"connection": "tf-azure", "azure_vault_id": "/subscriptions/" + testSub + "/resourceGroups/tf-rg/providers/Microsoft.KeyVault/vaults/tf-vault",
			"properties.networkAcls.defaultAction": "Allow", "tags.owner": "terraform"})
		if pols, _ := field(v, "properties", "accessPolicies").([]any); len(pols) != 1 {
			t.Errorf("accessPolicies %v", field(v, "properties", "accessPolicies"))
		}
		tfVault = v["id"].(string)
	})
	t.Run("Terraform's add-vaults model, empty strings and all", func(t *testing.T) {
		r := e.as(t, "alice", "POST", addPath, clientBody(t, "terraform_add_vault_payload.json", vars))
		r.wantStatus(t, http.StatusCreated)
		var page struct{ Resources []map[string]any }
		r.decode(t, &page)
		v := page.Resources[0]
		wantFields(t, v, map[string]any{"subscription_id": otherSub, "cloud_key_backup_limit": 5.0, "properties.enableRbacAuthorization": true})
		if _, ok := v["properties"].(map[string]any)["createMode"]; ok {
			t.Errorf("the empty createMode was kept: %v", v["properties"])
		}
	})
	t.Run("a Managed HSM pool as ARM lists it", func(t *testing.T) {
		r := e.as(t, "alice", "POST", addPath, clientBody(t, "arm_managed_hsm_add.json", vars))
		r.wantStatus(t, http.StatusCreated)
		var page struct{ Resources []map[string]any }
		r.decode(t, &page)
		v := page.Resources[0]
		wantFields(t, v, map[string]any{"type": "Microsoft.KeyVault/managedHSMs", "properties.hsmUri": "https://hsm-pool-1.managedhsm.azure.net",
			"properties.securityDomainProperties.activationStatus": "Active", "azure_name": "hsm-pool-1"})
		hsmID = v["id"].(string)
		g := e.as(t, "victor", "GET", vaultsPath+"/"+hsmID, "")
		g.wantStatus(t, http.StatusOK)
		wantFields(t, object(t, g), map[string]any{"type": "Microsoft.KeyVault/managedHSMs", "location": "westus"})
	})
	t.Run("the vault list filters and sorts as CCKM's", func(t *testing.T) {
		for q, want := range map[string][]string{
			"?type=Microsoft.KeyVault/managedHSMs": {"hsm-pool-1"},
			"?connection=tf-azure&sort=name":       {"tf-model-vault", "tf-vault"},
			"?subscription_id=" + otherSub:         {"tf-model-vault"},
			"?location=West+Europe&sort=-name":     {"tf-model-vault", "production-vault"},
			"?azure_vault_id=/subscriptions/" + testSub + "/resourceGroups/ansible-rg/providers/Microsoft.KeyVault/vaults/ANSIBLE-VAULT": {"ansible-vault"},
			"?sort=createdAt&limit=2": {"ansible-vault", "production-vault"},
		} {
			r := e.as(t, "victor", "GET", vaultsPath+q, "")
			r.wantStatus(t, http.StatusOK)
			var page struct{ Resources []map[string]any }
			r.decode(t, &page)
			var got []string
			for _, v := range page.Resources {
				got = append(got, v["azure_name"].(string))
			}
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("%s: %v, want %v", q, got, want)
			}
		}
	})
	t.Run("Ansible moves a vault to another connection", func(t *testing.T) {
		r := e.as(t, "alice", "PATCH", vaultsPath+"/"+ansibleVault, clientBody(t, "ansible_cckm_azure_vault_patch.json", vars))
		r.wantStatus(t, http.StatusOK)
		wantFields(t, object(t, r), map[string]any{"connection": "tf-azure", "cloud_key_backup_limit": 5.0})
		r = e.as(t, "alice", "PATCH", vaultsPath+"/"+ansibleVault, clientBody(t, "ansible_cckm_az_vault_update.json", vars))
		r.wantStatus(t, http.StatusOK)
		wantFields(t, object(t, r), map[string]any{"connection": "ansible", "cloud_key_backup_limit": 5.0})
	})
	t.Run("Terraform's vault update sends the name: unchanged it passes, renamed it is refused", func(t *testing.T) {
		e.as(t, "alice", "PATCH", vaultsPath+"/"+tfVault, clientBody(t, "terraform_azure_vault_update.json", vars)).wantStatus(t, http.StatusOK)
		e.as(t, "alice", "PATCH", vaultsPath+"/"+tfVault, clientBody(t, "terraform_azure_vault_rename.json", vars)).
			wantError(t, http.StatusBadRequest, "NCERRInvalidParamValue", "name cannot be changed")
	})

	t.Run("a field no client documents is refused by name and changes nothing", func(t *testing.T) {
		for _, tc := range []struct{ method, path, body, field string }{
			{"POST", conns, `{"name":"x","client_id":"c","tenant_id":"t","client_secret":"s","colour":"red"}`, "colour"},
			{"PATCH", conns + "/ansible", `{"description":"d","colour":"red"}`, "colour"},
			{"POST", addPath, `{"connection":"ansible","subscription_id":"` + testSub + `","vaults":[{"name":"kv-x","properties":{"vaultUri":"https://kv-x.vault.azure.net/"}}],"colour":"red"}`, "colour"},
			{"POST", addPath, `{"connection":"ansible","subscription_id":"` + testSub + `","vaults":[{"name":"kv-x","colour":"red","properties":{"vaultUri":"https://kv-x.vault.azure.net/"}}]}`, "colour"},
			{"POST", addPath, `{"connection":"ansible","subscription_id":"` + testSub + `","vaults":[{"name":"kv-x","properties":{"vaultUri":"https://kv-x.vault.azure.net/","colour":"red"}}]}`, "colour"},
			{"PATCH", vaultsPath + "/" + tfVault, `{"connection":"ansible","colour":"red"}`, "colour"},
		} {
			before := e.as(t, "victor", "GET", vaultsPath+"?limit=-1", "").body
			r := e.as(t, "alice", tc.method, tc.path, tc.body)
			r.wantError(t, http.StatusBadRequest, "NCERRInvalidParamValue", `unknown field "`+tc.field+`"`)
			if after := e.as(t, "victor", "GET", vaultsPath+"?limit=-1", "").body; string(after) != string(before) {
				t.Errorf("%s %s changed the vaults", tc.method, tc.path)
			}
		}
	})

	t.Run("the jobs list takes CCKM's spelling of overall_status", func(t *testing.T) {
		// No worker answers in this harness (503), but the filter passes.
		for _, q := range []string{"in%20progress", "in+progress", "in_progress"} {
			if r := e.as(t, "victor", "GET", jobsPath+"?overall_status="+q, ""); r.status == http.StatusBadRequest {
				t.Errorf("overall_status=%s refused: %s", q, r.body)
			}
		}
		e.as(t, "victor", "GET", jobsPath+"?overall_status=running", "").wantError(t, http.StatusBadRequest, "NCERRInvalidParamValue", "overall_status")
	})

	t.Run("Terraform removes a vault with {}, the first Ansible collection with DELETE", func(t *testing.T) {
		r := e.as(t, "alice", "POST", vaultsPath+"/"+tfVault+"/remove-vault", "{}")
		r.wantStatus(t, http.StatusOK)
		e.as(t, "alice", "DELETE", vaultsPath+"/"+hsmID+"/remove-vault", "").wantStatus(t, http.StatusOK)
		for _, id := range []string{tfVault, hsmID} {
			e.as(t, "victor", "GET", vaultsPath+"/"+id, "").wantStatus(t, http.StatusNotFound)
		}
		// Terraform treats the 404 of a vault already gone as removed.
		e.as(t, "alice", "POST", vaultsPath+"/"+tfVault+"/remove-vault", "{}").wantStatus(t, http.StatusNotFound)
	})

	t.Run("the stored vault record has the documented shape", func(t *testing.T) {
		raw := e.as(t, "victor", "GET", vaultsPath+"/"+ansibleVault, "")
		var v map[string]json.RawMessage
		raw.decode(t, &v)
		for _, f := range []string{"id", "uri", "account", "name", "azure_name", "azure_vault_id", "type", "cloud_name", "connection",
			"location", "subscription_id", "properties", "cloud_key_backup_limit", "createdAt", "updatedAt", "tags"} {
			if _, ok := v[f]; !ok {
				t.Errorf("vault entry lacks %s: %s", f, raw.body)
			}
		}
	})
}
