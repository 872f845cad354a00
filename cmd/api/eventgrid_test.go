package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/akvsync/akvsync/internal/natstest"
)

// TestEventGridPush runs the demo, whose emulator sends Key Vault's
// Event Grid events to the API's webhook, and checks that a key change
// reaches the inventory with no job and at most 2 Azure calls, that a
// replayed delivery changes nothing, and the webhook's refusals.
func TestEventGridPush(t *testing.T) {
	const secret = "test-webhook-secret-0123456789"
	secrets := filepath.Join(t.TempDir(), "event-grid-secrets")
	if err := os.WriteFile(secrets, []byte("# test subscriptions\ntest "+secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	facts, m, _ := serveDemo(t, "--demo-vaults", "2", "--demo-keys", "5", "--demo-hsms", "0", "--log-level", "error",
		"--event-grid-secrets-file", secrets)
	w := &walker{t: t, base: facts.APIURL, token: facts.Token, admin: m.AdminURL, client: &http.Client{Timeout: 30 * time.Second}}
	w.waitJob(t, facts.FirstJobID)
	vault := m.Vaults[0]
	webhook := facts.APIURL + "/api/v1/cckm/azure/event-grid"

	// vaultRequests is how many Key Vault requests the emulator served
	// for the vault since its counters were reset.
	vaultRequests := func(t *testing.T) int {
		t.Helper()
		var c struct {
			Requests int `json:"requests"`
		}
		w.decode(t, w.adminGet(t, "/admin/vaults/"+vault.Name+"/counters"), &c)
		return c.Requests
	}
	type pushedKey struct {
		Kid      string `json:"kid"`
		Version  string `json:"version"`
		SyncedAt string `json:"syncedAt"`
	}
	// inventoryKey is the inventory's record of a key of the vault.
	inventoryKey := func(t *testing.T, name string) (pushedKey, bool) {
		t.Helper()
		var list struct {
			Total     int `json:"total"`
			Resources []struct {
				KeyVault   string `json:"key_vault"`
				SyncedAt   string `json:"syncedAt"`
				AzureParam struct {
					Key struct {
						Kid string `json:"kid"`
					} `json:"key"`
				} `json:"azure_param"`
			} `json:"resources"`
		}
		w.get(t, "/api/v1/cckm/azure/keys?key_name="+name, http.StatusOK, &list)
		for _, k := range list.Resources {
			if strings.HasPrefix(k.KeyVault, vault.Name+"::") {
				return pushedKey{Kid: k.AzureParam.Key.Kid, SyncedAt: k.SyncedAt}, true
			}
		}
		return pushedKey{}, false
	}
	waitKid := func(t *testing.T, name, kid string) pushedKey {
		t.Helper()
		var got pushedKey
		natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
			k, ok := inventoryKey(t, name)
			if !ok || k.Kid != kid {
				return fmt.Errorf("inventory has %q (found %v), want %q", k.Kid, ok, kid)
			}
			got = k
			return nil
		})
		return got
	}
	jobsTotal := func(t *testing.T) int {
		t.Helper()
		var jobs struct {
			Total int `json:"total"`
		}
		w.get(t, "/api/v1/cckm/azure/synchronization-jobs?limit=1", http.StatusOK, &jobs)
		return jobs.Total
	}
	// metric reads one sample of the API's /metrics (0 when absent).
	metric := func(t *testing.T, series string) float64 {
		t.Helper()
		code, raw := w.do(t, "GET", facts.APIURL+"/metrics", "", true)
		if code != http.StatusOK {
			t.Fatalf("GET /metrics: %d", code)
		}
		for _, line := range strings.Split(string(raw), "\n") {
			if v, ok := strings.CutPrefix(line, series+" "); ok {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					t.Fatal(err)
				}
				return f
			}
		}
		return 0
	}
	deliver := func(t *testing.T, body string, header map[string]string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, webhook, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := w.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var sb strings.Builder
		_, _ = bufio.NewReader(resp.Body).WriteTo(&sb)
		return resp.StatusCode, sb.String()
	}
	withSecret := map[string]string{"X-Akvsync-Webhook-Secret": secret}
	eventBody := func(id, topic, key, version string, at time.Time) string {
		return fmt.Sprintf(`[{"id":%q,"topic":%q,"subject":%q,"eventType":"Microsoft.KeyVault.KeyNewVersionCreated","eventTime":%q,
			"data":{"Id":"","VaultName":%q,"ObjectType":"Key","ObjectName":%q,"Version":%q,"NBF":null,"EXP":null},"dataVersion":"1","metadataVersion":"1"}]`,
			id, topic, key, at.UTC().Format(time.RFC3339Nano), topic[strings.LastIndexByte(topic, '/')+1:], key, version)
	}

	var created pushedKey
	t.Run("a key created in Azure is in the inventory with no job, in at most 2 Key Vault calls", func(t *testing.T) {
		jobs := jobsTotal(t)
		w.adminCall(t, "DELETE", "/admin/vaults/"+vault.Name+"/counters", "", http.StatusNoContent)
		w.decode(t, w.adminCall(t, "POST", "/admin/vaults/"+vault.Name+"/keys/pushed-1", `{"kty":"RSA"}`, http.StatusCreated), &created)
		waitKid(t, "pushed-1", created.Kid)
		if n := vaultRequests(t); n < 1 || n > 2 {
			t.Fatalf("the refresh made %d Key Vault requests, want 1 or 2", n)
		}
		if got := jobsTotal(t); got != jobs {
			t.Fatalf("%d jobs, want %d: the change started a job", got, jobs)
		}
	})

	t.Run("a rotation, also delivered in the CloudEvents schema after its handshake", func(t *testing.T) {
		sub, _ := json.Marshal(map[string]any{"name": "cloudevents", "endpoint": webhook, "schema": "CloudEventSchemaV1_0",
			"delivery_headers": withSecret})
		w.adminCall(t, "POST", "/admin/event-subscriptions", string(sub), http.StatusCreated)
		w.adminCall(t, "DELETE", "/admin/vaults/"+vault.Name+"/counters", "", http.StatusNoContent)
		var rotated pushedKey
		w.decode(t, w.adminCall(t, "POST", "/admin/vaults/"+vault.Name+"/keys/pushed-1/rotate", "", http.StatusOK), &rotated)
		if rotated.Kid == created.Kid {
			t.Fatal("rotation kept the version")
		}
		waitKid(t, "pushed-1", rotated.Kid)
		var status struct {
			Counters struct {
				Delivered int `json:"delivered"`
			} `json:"counters"`
		}
		natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
			w.decode(t, w.adminGet(t, "/admin/event-subscriptions/cloudevents"), &status)
			if status.Counters.Delivered != 1 {
				return fmt.Errorf("%d CloudEvents deliveries", status.Counters.Delivered)
			}
			return nil
		})
		// Both subscriptions delivered the rotation: the second refresh
		// found the version already read (or coalesced with the first).
		if n := vaultRequests(t); n < 1 || n > 2 {
			t.Fatalf("two deliveries of one rotation made %d Key Vault requests, want 1 or 2", n)
		}
		created = rotated
	})

	t.Run("a replayed delivery changes nothing", func(t *testing.T) {
		before, ok := inventoryKey(t, "pushed-1")
		if !ok {
			t.Fatal("pushed-1 is not in the inventory")
		}
		current := metric(t, `akvsync_key_refreshes_total{outcome="current"}`)
		dups := metric(t, `akvsync_eventgrid_events_total{outcome="duplicate"}`)
		w.adminCall(t, "DELETE", "/admin/vaults/"+vault.Name+"/counters", "", http.StatusNoContent)
		body := eventBody("replayed-1", vault.ResourceID, "pushed-1", created.Version, time.Now().Add(-time.Minute))
		for range 2 {
			if code, answer := deliver(t, body, withSecret); code != http.StatusOK {
				t.Fatalf("delivery: %d %s", code, answer)
			}
		}
		natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
			if got := metric(t, `akvsync_key_refreshes_total{outcome="current"}`); got != current+1 {
				return fmt.Errorf("%v refreshes found the inventory current, want %v", got, current+1)
			}
			return nil
		})
		if got := metric(t, `akvsync_eventgrid_events_total{outcome="duplicate"}`); got != dups+1 {
			t.Fatalf("%v duplicate events, want %v", got, dups+1)
		}
		if n := vaultRequests(t); n != 0 {
			t.Fatalf("the replay made %d Key Vault requests", n)
		}
		if after, _ := inventoryKey(t, "pushed-1"); after != before {
			t.Fatalf("the replay changed the record: %+v, was %+v", after, before)
		}
	})

	t.Run("an event naming the key in another case refreshes the same record", func(t *testing.T) {
		before, _ := inventoryKey(t, "pushed-1")
		unchanged := metric(t, `akvsync_key_refreshes_total{outcome="unchanged"}`)
		if code, answer := deliver(t, eventBody("upper-1", vault.ResourceID, "PUSHED-1", "", time.Now()), withSecret); code != http.StatusOK {
			t.Fatalf("delivery: %d %s", code, answer)
		}
		natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
			if got := metric(t, `akvsync_key_refreshes_total{outcome="unchanged"}`); got != unchanged+1 {
				return fmt.Errorf("%v unchanged refreshes, want %v", got, unchanged+1)
			}
			return nil
		})
		after, _ := inventoryKey(t, "pushed-1")
		if after.Kid != before.Kid || after.SyncedAt == before.SyncedAt {
			t.Fatalf("record %+v, was %+v: want the same version read again", after, before)
		}
		if n := metric(t, `akvsync_key_refreshes_total{outcome="failed"}`); n != 0 {
			t.Fatalf("%v refreshes failed", n)
		}
	})

	t.Run("an event of an unregistered vault is counted and dropped", func(t *testing.T) {
		before := metric(t, `akvsync_eventgrid_events_total{outcome="unknown_vault"}`)
		topic := vault.ResourceID[:strings.LastIndexByte(vault.ResourceID, '/')+1] + "not-registered"
		if code, answer := deliver(t, eventBody("unknown-1", topic, "k", "v", time.Now()), withSecret); code != http.StatusOK {
			t.Fatalf("delivery: %d %s", code, answer)
		}
		if got := metric(t, `akvsync_eventgrid_events_total{outcome="unknown_vault"}`); got != before+1 {
			t.Fatalf("%v unknown-vault events, want %v", got, before+1)
		}
	})

	t.Run("the Event Grid schema's validation handshake", func(t *testing.T) {
		code, answer := deliver(t, `[{"id":"v-1","topic":"`+vault.ResourceID+`","subject":"","eventType":"Microsoft.EventGrid.SubscriptionValidationEvent",
			"eventTime":"2026-12-02T10:00:00Z","data":{"validationCode":"code-123","validationUrl":"https://example.invalid/v"},"dataVersion":"1"}]`, withSecret)
		if code != http.StatusOK || !strings.Contains(answer, `"validationResponse":"code-123"`) {
			t.Fatalf("%d %s", code, answer)
		}
	})

	t.Run("refusals", func(t *testing.T) {
		body := eventBody("refused-1", vault.ResourceID, "pushed-1", created.Version, time.Now())
		for name, h := range map[string]map[string]string{
			"no credential":        nil,
			"a wrong secret":       {"X-Akvsync-Webhook-Secret": secret + "x"},
			"a user's API token":   {"Authorization": "Bearer " + facts.Token},
			"a secret in a bearer": {"Authorization": "Bearer " + secret},
		} {
			if code, answer := deliver(t, body, h); code != http.StatusUnauthorized {
				t.Errorf("%s: %d %s, want 401", name, code, answer)
			}
		}
		if code, answer := deliver(t, `[{"id":"x"}]`, withSecret); code != http.StatusBadRequest {
			t.Errorf("malformed: %d %s, want 400", code, answer)
		}
		// A bad event is dropped alone: Event Grid never redelivers a batch
		// answered 400, so the good events of it must be taken.
		malformed := metric(t, `akvsync_eventgrid_events_total{outcome="malformed"}`)
		queued := metric(t, `akvsync_eventgrid_events_total{outcome="queued"}`)
		good, bad := eventBody("good-1", vault.ResourceID, "pushed-1", "", time.Now()), eventBody("bad-key", vault.ResourceID, "not_a_key_name", "", time.Now())
		if code, answer := deliver(t, good[:len(good)-1]+","+bad[1:], withSecret); code != http.StatusOK {
			t.Errorf("a batch with a bad key name: %d %s, want 200", code, answer)
		}
		if got := metric(t, `akvsync_eventgrid_events_total{outcome="malformed"}`); got != malformed+1 {
			t.Errorf("%v malformed events, want %v", got, malformed+1)
		}
		if got := metric(t, `akvsync_eventgrid_events_total{outcome="queued"}`); got != queued+1 {
			t.Errorf("%v queued events, want %v", got, queued+1)
		}
		// The handshakes need no credentials: they grant nothing.
		code, answer := deliver(t, `[{"id":"v-2","topic":"`+vault.ResourceID+`","subject":"","eventType":"Microsoft.EventGrid.SubscriptionValidationEvent",
			"eventTime":"2026-12-02T10:00:00Z","data":{"validationCode":"code-456"},"dataVersion":"1"}]`, nil)
		if code != http.StatusOK || !strings.Contains(answer, `"validationResponse":"code-456"`) {
			t.Errorf("unauthenticated validation: %d %s", code, answer)
		}
	})

	t.Run("key refreshed events reach the event stream", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, facts.APIURL+"/api/v1/cckm/azure/events", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+facts.Token)
		resp, err := (&http.Client{}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("events: %d", resp.StatusCode)
		}
		var k pushedKey
		w.decode(t, w.adminCall(t, "POST", "/admin/vaults/"+vault.Name+"/keys/pushed-2", `{"kty":"EC"}`, http.StatusCreated), &k)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		name := ""
		for sc.Scan() {
			line := sc.Text()
			if n, ok := strings.CutPrefix(line, "event: "); ok {
				name = n
				continue
			}
			if data, ok := strings.CutPrefix(line, "data: "); ok && name == "key.refreshed" {
				var ev struct {
					Type string `json:"type"`
					Data struct {
						KeyName    string `json:"key_name"`
						Version    string `json:"version"`
						Outcome    string `json:"outcome"`
						AzureCalls int    `json:"azure_calls"`
					} `json:"data"`
				}
				w.decode(t, []byte(data), &ev)
				if ev.Data.KeyName != "pushed-2" {
					continue
				}
				if ev.Type != "io.akvsync.key.refreshed" || ev.Data.Version != k.Version || ev.Data.Outcome != "updated" || ev.Data.AzureCalls < 1 || ev.Data.AzureCalls > 2 {
					t.Fatalf("key refreshed event %s", data)
				}
				return
			}
		}
		t.Fatalf("no key refreshed event for pushed-2: %v", sc.Err())
	})
}
