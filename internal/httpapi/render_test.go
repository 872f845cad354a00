package httpapi_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/akvsync/akvsync/internal/httpapi"
	"github.com/akvsync/akvsync/pkg/events"
)

func TestRenderKey(t *testing.T) {
	t.Parallel()
	seen := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.FixedZone("CET", 3600))
	rec := events.KeyRecord{
		ID: "k-id", VaultID: "v-id", VaultName: "vault1", SubscriptionID: "sub", Cloud: "AzureCloud", Region: "westeurope",
		Name: "k1", Version: "0123456789abcdef0123456789abcdef", Kid: "https://vault1.vault.azure.net/keys/k1/0123", Kty: "RSA",
		KeySize: 2048, KeyOps: []string{"sign", "verify"}, N: "nnn", E: "AQAB",
		Enabled: false, NotBefore: 5, Expires: 6, Created: 1601461416, Updated: 1601461417,
		RecoveryLevel: "Recoverable+Purgeable", RecoverableDays: 90, HSMPlatform: "2", Managed: true,
		Tags: map[string]string{"env": "prod"}, Gone: true,
		FirstSeenAt: seen, ChangedAt: seen.Add(time.Second), SyncedAt: seen.Add(2 * time.Second),
	}
	b, err := json.Marshal(httpapi.RenderKey(rec))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"id": "k-id", "uri": "kylo:kylo:cckm:azure-key:k-id", "key_name": "k1", "key_vault": "vault1::sub", "key_vault_id": "v-id",
		"cloud_name": "AzureCloud", "region": "westeurope", "version": "0123456789abcdef0123456789abcdef", "key_size": 2048.0,
		"key_material_origin": "native", "status": "DISABLED", "gone": true, "deleted": true,
		"createdAt": "2026-03-01T11:00:00.123456Z", "updatedAt": "2026-03-01T11:00:01.123456Z", "syncedAt": "2026-03-01T11:00:02.123456Z",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	ap := got["azure_param"].(map[string]any)
	key := ap["key"].(map[string]any)
	attrs := ap["attributes"].(map[string]any)
	if key["kid"] != rec.Kid || key["kty"] != "RSA" || key["n"] != "nnn" || key["e"] != "AQAB" || key["crv"] != nil || len(key["key_ops"].([]any)) != 2 {
		t.Errorf("azure_param.key = %v", key)
	}
	if attrs["enabled"] != false || attrs["nbf"] != 5.0 || attrs["exp"] != 6.0 || attrs["created"] != 1601461416.0 || attrs["updated"] != 1601461417.0 ||
		attrs["recoveryLevel"] != "Recoverable+Purgeable" || attrs["recoverableDays"] != 90.0 || attrs["exportable"] != false || attrs["hsmPlatform"] != "2" {
		t.Errorf("azure_param.attributes = %v", attrs)
	}
	if ap["managed"] != true || ap["tags"].(map[string]any)["env"] != "prod" {
		t.Errorf("azure_param = %v", ap)
	}
	rec.Enabled, rec.Kty, rec.N, rec.E, rec.Curve, rec.X, rec.Y = true, "EC", "", "", "P-256", "xx", "yy"
	k := httpapi.RenderKey(rec)
	if k.Status != "AVAILABLE" || k.AzureParam.Key.Crv != "P-256" || k.AzureParam.Key.X != "xx" || k.AzureParam.Key.N != "" {
		t.Errorf("EC key = %+v", k)
	}
}

func TestRenderJobCompletedAt(t *testing.T) {
	t.Parallel()
	now := time.Now()
	j := events.JobDetail{Job: events.Job{ID: "j", CreatedAt: now, UpdatedAt: now, OverallStatus: events.JobInProgress, VaultTotal: 3},
		Vaults: []events.JobVault{{Name: "v", SubscriptionID: "s", Status: events.VaultFailed, Error: "boom"}}, VaultsTruncated: true,
		Progress: events.JobProgress{Failed: 1, Pending: 2}}
	out := httpapi.RenderJob(j)
	if out.CompletedAt != "" || out.DetailedStatus["v::s"] != "failed: boom" || len(out.KeyVaults) != 1 {
		t.Errorf("in-progress job = %+v", out)
	}
	if !out.VaultsTruncated || out.VaultsTotal != 3 || out.Progress == nil || out.Progress.Failed != 1 || out.Progress.Pending != 2 {
		t.Errorf("counts = %+v %+v", out, out.Progress)
	}
	j.OverallStatus, j.CompletedAt = events.JobFailed, &now
	if out := httpapi.RenderJob(j); out.OverallStatus != events.JobFailed || out.CompletedAt == "" {
		t.Errorf("finished job = %+v", out)
	}
	j.DetailUnavailable = true
	if out := httpapi.RenderJob(j); out.Progress != nil {
		t.Errorf("a job without detail shows progress %+v", out.Progress)
	}
}
