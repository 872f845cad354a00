package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/akvsync/akvsync/internal/natstest"
	"github.com/akvsync/akvsync/pkg/akvemu"
)

// walkSubscription is the subscription the walkthrough's vaults are
// created in, apart from the demo's own (which the demo registers).
const walkSubscription = "5e4d3c2b-1a09-4876-9543-210fedcba987"

// walkVaultKeys is the number of keys of each walkthrough vault.
const walkVaultKeys = 3

// TestCCKMWalkthrough runs a CCKM user's sequence against a serving demo,
// with plain HTTP and the bodies Thales' public clients send: create a
// connection (an Azure Stack one, to the demo's emulated Entra ID and
// Resource Manager), get-subscriptions, get-vaults paged, add-vaults with
// what get-vaults returned, the Ansible collection's lookup by
// name::subscription, a sync of the vault, its keys, and remove-vault.
// With AKVSYNC_WALKTHROUGH=<file> it writes the requests (as curl
// commands) and the answers there: docs/walkthrough.md is made from it.
func TestCCKMWalkthrough(t *testing.T) {
	t.Parallel()
	facts, m, _ := serveDemo(t, "--demo-vaults", "2", "--demo-keys", "6", "--log-level", "error")
	if m.HostRouting == nil {
		t.Fatal("the demo's emulator is not in host-routing mode")
	}
	w := &walker{t: t, base: facts.APIURL, token: facts.Token, admin: m.AdminURL, client: &http.Client{Timeout: 30 * time.Second}}
	if path := os.Getenv("AKVSYNC_WALKTHROUGH"); path != "" {
		w.transcript = &bytes.Buffer{}
		t.Cleanup(func() {
			if err := os.WriteFile(path, w.transcript.Bytes(), 0o644); err != nil {
				t.Errorf("write the transcript: %v", err)
			}
		})
	}

	t.Run("the demo's first sync-all includes its Managed HSM pool", func(t *testing.T) {
		job := w.waitJob(t, facts.FirstJobID)
		if job.OverallStatus != "completed" || len(job.DetailedStatus) != 3 {
			t.Fatalf("first job %+v, want completed over 2 vaults and 1 pool", job)
		}
		var pools vaultList
		w.get(t, "/api/v1/cckm/azure/vaults?type=Microsoft.KeyVault/managedHSMs", http.StatusOK, &pools)
		if pools.Total != 1 || job.DetailedStatus[pools.Resources[0].Name] != "completed" {
			t.Fatalf("pools %+v, job %+v", pools, job)
		}
		var keys keyList
		w.get(t, "/api/v1/cckm/azure/keys?limit=100&key_vault_id="+pools.Resources[0].ID, http.StatusOK, &keys)
		if keys.Total != 6 {
			t.Fatalf("the pool has %d keys in the inventory, want 6", keys.Total)
		}
		for _, k := range keys.Resources {
			kty := k.AzureParam.Key.Kty
			ok := (kty == "RSA-HSM" && k.KeySize >= 2048) || (kty == "EC-HSM" && k.KeySize >= 256) ||
				(kty == "oct-HSM" && (k.KeySize == 128 || k.KeySize == 192 || k.KeySize == 256))
			if !ok {
				t.Errorf("pool key %s: kty %q key_size %d", k.KeyName, kty, k.KeySize)
			}
		}
	})

	// Somebody creates vaults in Azure: here, through the emulator's admin API.
	w.note("## 0. Vaults appear in Azure\n")
	var names []string
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("walk-kv-%d", i)
		names = append(names, name)
		w.adminCall(t, "POST", "/admin/vaults", fmt.Sprintf(`{"name":%q,"subscription_id":%q,"keys":%d}`, name, walkSubscription, walkVaultKeys), http.StatusCreated)
	}

	// a. A connection to the emulated cloud, as Ansible's
	// connection_manager_azure sends it (only the arguments given), with
	// CCKM's Azure Stack fields.
	connBody, err := json.Marshal(map[string]any{
		"name": "walkthrough", "products": []string{"cckm"}, "cert_duration": 730,
		"client_id": m.ClientID, "tenant_id": m.TenantID, "client_secret": m.ClientSecret,
		"cloud_name": "AzureStack", "azure_stack_connection_type": "AAD",
		"active_directory_endpoint": m.AuthorityHost, "azure_stack_server_cert": string(m.CACertPEM),
		"resource_manager_url": m.ResourceManagerURL, "management_url": akvemu.ResourceManagerClassicAudience + "/",
		"key_vault_dns_suffix": "vault.localhost", "vault_resource_url": m.HostRouting.Resource,
	})
	if err != nil {
		t.Fatal(err)
	}
	w.redact(m.ClientSecret, "<client_secret of the manifest>")
	w.redact(strings.ReplaceAll(string(m.CACertPEM), "\n", `\n`), "<PEM of ca_cert_file>")
	w.note("## a. Create a connection\n")
	t.Run("a. create a connection to the emulated Azure Stack", func(t *testing.T) {
		var c struct {
			ID              string `json:"id"`
			CloudName       string `json:"cloud_name"`
			ClientSecretSet bool   `json:"client_secret_set"`
		}
		raw := w.call(t, "POST", "/api/v1/connectionmgmt/services/azure/connections", string(connBody), http.StatusCreated)
		if err := json.Unmarshal(raw, &c); err != nil {
			t.Fatal(err)
		}
		if c.ID == "" || c.CloudName != "AzureStack" || !c.ClientSecretSet || bytes.Contains(raw, []byte(m.ClientSecret)) {
			t.Fatalf("connection %s", raw)
		}
	})

	w.note("## b. Subscriptions\n")
	t.Run("b. get-subscriptions lists the demo's and the new subscription", func(t *testing.T) {
		var subs []struct {
			SubscriptionID string `json:"subscriptionId"`
			State          string `json:"state"`
		}
		w.decode(t, w.call(t, "POST", "/api/v1/cckm/azure/get-subscriptions", `{"connection":"walkthrough"}`, http.StatusOK), &subs)
		var ids []string
		for _, s := range subs {
			ids = append(ids, s.SubscriptionID)
			if s.State != "Enabled" {
				t.Errorf("subscription %s state %q", s.SubscriptionID, s.State)
			}
		}
		if !slices.Contains(ids, walkSubscription) || !slices.Contains(ids, m.Vaults[0].SubscriptionID) || len(ids) != 2 {
			t.Fatalf("subscriptions %v, want the demo's %s and %s", ids, m.Vaults[0].SubscriptionID, walkSubscription)
		}
	})

	w.note("## c. Vaults and Managed HSM pools of a subscription\n")
	var found []json.RawMessage
	t.Run("c. get-vaults pages with nextLink", func(t *testing.T) {
		var page discovered
		w.decode(t, w.call(t, "POST", "/api/v1/cckm/azure/get-vaults",
			fmt.Sprintf(`{"connection":"walkthrough","subscription_id":%q,"limit":2,"nextLink":null}`, walkSubscription), http.StatusOK), &page)
		if len(page.Vaults) != 2 || page.NextLink == nil || page.SubscriptionID != walkSubscription || page.Connection != "walkthrough" {
			t.Fatalf("first page: %d vaults, nextLink %v", len(page.Vaults), page.NextLink)
		}
		found = append(found, page.Vaults...)
		// As json.Marshal in a client, but with & left as it is, so the
		// transcript shows the link as get-vaults returned it.
		var next bytes.Buffer
		enc := json.NewEncoder(&next)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(*page.NextLink); err != nil {
			t.Fatal(err)
		}
		page = discovered{}
		w.decode(t, w.call(t, "POST", "/api/v1/cckm/azure/get-vaults",
			fmt.Sprintf(`{"connection":"walkthrough","subscription_id":%q,"limit":2,"nextLink":%s}`, walkSubscription, bytes.TrimSpace(next.Bytes())), http.StatusOK), &page)
		if len(page.Vaults) != 1 || page.NextLink != nil {
			t.Fatalf("second page: %d vaults, nextLink %v", len(page.Vaults), page.NextLink)
		}
		found = append(found, page.Vaults...)
		var got []string
		for _, raw := range found {
			var v struct {
				Name       string
				Type       string
				Properties struct {
					VaultURI string `json:"vaultUri"`
				}
			}
			w.decode(t, raw, &v)
			got = append(got, v.Name)
			if v.Type != "Microsoft.KeyVault/vaults" || !strings.HasPrefix(v.Properties.VaultURI, "https://"+v.Name+".vault.localhost:") {
				t.Errorf("vault %s: type %q, vaultUri %q", v.Name, v.Type, v.Properties.VaultURI)
			}
		}
		if !slices.Equal(got, names) {
			t.Fatalf("get-vaults found %v, want %v", got, names)
		}
	})
	t.Run("c. get-managed-hsms lists the demo's pool", func(t *testing.T) {
		var pool akvemu.ManifestVault
		for _, v := range m.Vaults {
			if v.Kind == akvemu.KindManagedHSM {
				pool = v
			}
		}
		var page discovered
		w.decode(t, w.call(t, "POST", "/api/v1/cckm/azure/get-managed-hsms",
			fmt.Sprintf(`{"connection":"walkthrough","subscription_id":%q,"limit":10,"nextLink":null}`, pool.SubscriptionID), http.StatusOK), &page)
		if len(page.Vaults) != 1 || !bytes.Contains(page.Vaults[0], []byte(`"hsmUri":"`+pool.URL+`/"`)) {
			t.Fatalf("get-managed-hsms %s", page.Vaults)
		}
	})
	if len(found) != 3 {
		t.FailNow()
	}

	w.note("## d. Add the vaults as get-vaults returned them\n")
	t.Run("d. add-vaults takes get-vaults' output unmodified", func(t *testing.T) {
		var body bytes.Buffer
		enc := json.NewEncoder(&body)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(map[string]any{"connection": "walkthrough", "subscription_id": walkSubscription, "vaults": found}); err != nil {
			t.Fatal(err)
		}
		var added vaultList
		w.decode(t, w.call(t, "POST", "/api/v1/cckm/azure/add-vaults", strings.TrimSpace(body.String()), http.StatusCreated), &added)
		if added.Total != 3 || added.Resources[0].Connection != "walkthrough" || added.Resources[0].CloudName != "AzureStack" {
			t.Fatalf("added %+v", added)
		}
	})

	w.note("## e. Look the vault up by name, as the Ansible collection does\n")
	qualified := names[0] + "::" + walkSubscription
	var vault vaultRecord
	t.Run("e. the Ansible lookup by name::subscription finds the vault", func(t *testing.T) {
		var l vaultList
		w.decode(t, w.call(t, "GET", "/api/v1/cckm/azure/vaults/?skip=0&limit=1&name="+qualified, "", http.StatusOK), &l)
		if l.Total != 1 || len(l.Resources) != 1 || l.Resources[0].Name != qualified || l.Resources[0].AzureName != names[0] {
			t.Fatalf("lookup %+v", l)
		}
		vault = l.Resources[0]
	})
	if vault.ID == "" {
		t.FailNow()
	}

	w.note("## f. Sync it\n")
	t.Run("f. a sync of the vault completes", func(t *testing.T) {
		var job jobRecord
		w.decode(t, w.call(t, "POST", "/api/v1/cckm/azure/synchronization-jobs", `{"key_vaults":["`+vault.ID+`"]}`, http.StatusCreated), &job)
		if job.ID == "" || !slices.Equal(job.KeyVaults, []string{qualified}) {
			t.Fatalf("job %+v", job)
		}
		job = w.waitJob(t, job.ID)
		w.record("GET", "/api/v1/cckm/azure/synchronization-jobs/"+job.ID, "", w.lastJob)
		if job.OverallStatus != "completed" || job.DetailedStatus[qualified] != "completed" {
			t.Fatalf("job %+v", job)
		}
	})

	w.note("## g. Its keys\n")
	t.Run("g. the inventory holds the vault's keys as the emulator does", func(t *testing.T) {
		var emuKeys []json.RawMessage
		w.decode(t, w.adminGet(t, "/admin/vaults/"+names[0]+"/keys"), &emuKeys)
		var keys keyList
		w.decode(t, w.call(t, "GET", "/api/v1/cckm/azure/keys?key_vault_id="+vault.ID, "", http.StatusOK), &keys)
		if len(emuKeys) != walkVaultKeys || keys.Total != len(emuKeys) || len(keys.Resources) != len(emuKeys) {
			t.Fatalf("inventory %d keys, emulator %d", keys.Total, len(emuKeys))
		}
		for _, k := range keys.Resources {
			if k.KeyVault != qualified || k.KeyVaultID != vault.ID || k.KeySize == 0 ||
				!strings.HasPrefix(k.AzureParam.Key.Kid, "https://"+names[0]+".vault.localhost:") {
				t.Errorf("key %+v", k)
			}
		}
	})

	w.note("## h. Remove it\n")
	t.Run("h. remove-vault takes the vault and its keys out", func(t *testing.T) {
		var removed vaultRecord
		w.decode(t, w.call(t, "POST", "/api/v1/cckm/azure/vaults/"+vault.ID+"/remove-vault", "{}", http.StatusOK), &removed)
		if removed.ID != vault.ID {
			t.Fatalf("removed %+v", removed)
		}
		natstest.CheckFor(t, 15*time.Second, 50*time.Millisecond, func() error {
			var keys keyList
			w.get(t, "/api/v1/cckm/azure/keys?key_vault_id="+vault.ID, http.StatusOK, &keys)
			if keys.Total != 0 {
				return fmt.Errorf("%d keys of the removed vault are still listed", keys.Total)
			}
			return nil
		})
		w.call(t, "GET", "/api/v1/cckm/azure/keys?key_vault_id="+vault.ID, "", http.StatusOK)
		w.call(t, "GET", "/api/v1/cckm/azure/vaults/?skip=0&limit=1&name="+qualified, "", http.StatusOK)
		w.call(t, "GET", "/api/v1/cckm/azure/vaults/"+vault.ID, "", http.StatusNotFound)
	})
}

// walker calls the API as a client would and, when transcript is set,
// records each call as a curl command and its answer.
type walker struct {
	t           *testing.T
	base, token string
	admin       string
	client      *http.Client
	transcript  *bytes.Buffer
	redactions  []string // old, new, …
	lastJob     []byte   // the last answer of waitJob
}

type vaultRecord struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	AzureName  string `json:"azure_name"`
	Connection string `json:"connection"`
	CloudName  string `json:"cloud_name"`
}

type vaultList struct {
	Total     int           `json:"total"`
	Resources []vaultRecord `json:"resources"`
}

type keyList struct {
	Total     int `json:"total"`
	Resources []struct {
		KeyName    string `json:"key_name"`
		KeyVault   string `json:"key_vault"`
		KeyVaultID string `json:"key_vault_id"`
		KeySize    int    `json:"key_size"`
		AzureParam struct {
			Key struct {
				Kid string `json:"kid"`
				Kty string `json:"kty"`
			} `json:"key"`
		} `json:"azure_param"`
	} `json:"resources"`
}

type jobRecord struct {
	ID             string            `json:"id"`
	OverallStatus  string            `json:"overall_status"`
	DetailedStatus map[string]string `json:"detailed_status"`
	KeyVaults      []string          `json:"key_vaults"`
}

// discovered is get-vaults' (and get-managed-hsms') answer.
type discovered struct {
	Vaults         []json.RawMessage `json:"vaults"`
	Connection     string            `json:"connection"`
	SubscriptionID string            `json:"subscription_id"`
	NextLink       *string           `json:"nextLink"`
}

func (w *walker) redact(old, repl string) { w.redactions = append(w.redactions, old, repl) }

func (w *walker) note(s string) {
	if w.transcript != nil {
		w.transcript.WriteString("\n" + s + "\n")
	}
}

func (w *walker) decode(t *testing.T, raw []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
}

// do sends one request and returns the answer's status and body.
func (w *walker) do(t *testing.T, method, u, body string, auth bool) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth {
		req.Header.Set("Authorization", "Bearer "+w.token)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, raw
}

// call sends a request to the API, checks its status and records it.
func (w *walker) call(t *testing.T, method, path, body string, want int) []byte {
	t.Helper()
	code, raw := w.do(t, method, w.base+path, body, true)
	if code != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, code, want, raw)
	}
	w.record(method, path, body, raw)
	return raw
}

// get is an unrecorded GET of the API.
func (w *walker) get(t *testing.T, path string, want int, v any) {
	t.Helper()
	code, raw := w.do(t, "GET", w.base+path, "", true)
	if code != want {
		t.Fatalf("GET %s: status %d, want %d: %s", path, code, want, raw)
	}
	w.decode(t, raw, v)
}

// adminCall is a recorded request to the emulator's admin API.
func (w *walker) adminCall(t *testing.T, method, path, body string, want int) []byte {
	t.Helper()
	code, raw := w.do(t, method, w.admin+path, body, false)
	if code != want {
		t.Fatalf("emulator %s %s: status %d, want %d: %s", method, path, code, want, raw)
	}
	w.recordCurl(fmt.Sprintf(`curl -s -X %s "$ADMIN%s" -d '%s'`, method, path, body), raw)
	return raw
}

func (w *walker) adminGet(t *testing.T, path string) []byte {
	t.Helper()
	code, raw := w.do(t, "GET", w.admin+path, "", false)
	if code != http.StatusOK {
		t.Fatalf("emulator GET %s: status %d: %s", path, code, raw)
	}
	return raw
}

// waitJob polls a job until it is no longer in progress.
func (w *walker) waitJob(t *testing.T, id string) jobRecord {
	t.Helper()
	var job jobRecord
	natstest.CheckFor(t, 60*time.Second, 50*time.Millisecond, func() error {
		code, raw := w.do(t, "GET", w.base+"/api/v1/cckm/azure/synchronization-jobs/"+id, "", true)
		if code != http.StatusOK {
			return fmt.Errorf("job %s: status %d: %s", id, code, raw)
		}
		job = jobRecord{}
		w.decode(t, raw, &job)
		if job.OverallStatus == "in_progress" {
			return fmt.Errorf("job %s still in progress", id)
		}
		w.lastJob = raw
		return nil
	})
	return job
}

func (w *walker) record(method, path, body string, answer []byte) {
	cmd := `curl -s -H "Authorization: Bearer $TOKEN"`
	if method != "GET" {
		cmd += " -X " + method
	}
	cmd += ` "$B` + path + `"`
	if body != "" {
		cmd += ` -H 'Content-Type: application/json' -d '` + body + `'`
	}
	w.recordCurl(cmd, answer)
}

func (w *walker) recordCurl(cmd string, answer []byte) {
	if w.transcript == nil {
		return
	}
	var pretty bytes.Buffer
	if json.Indent(&pretty, answer, "", "  ") != nil {
		pretty.Reset()
		pretty.Write(answer)
	}
	text := "$ " + cmd + "\n" + pretty.String() + "\n"
	for i := 0; i+1 < len(w.redactions); i += 2 {
		text = strings.ReplaceAll(text, w.redactions[i], w.redactions[i+1])
	}
	text = strings.ReplaceAll(text, w.base, "$B")
	text = strings.ReplaceAll(text, w.admin, "$ADMIN")
	fmt.Fprintf(w.transcript, "```text\n%s```\n", text)
}

// lockedBuffer is a bytes.Buffer safe for the demo's writes and the
// test's reads.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// serveDemo runs `api --demo` with args on an ephemeral loopback port
// and a fresh data directory until the test ends (its error then fails
// the test), and returns once demo.json names the first job: the demo's
// facts, its emulator's manifest and its output.
func serveDemo(t *testing.T, args ...string) (demoFacts, akvemu.Manifest, *lockedBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	dir := filepath.Join(t.TempDir(), "data")
	out := &lockedBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- runContext(ctx, append([]string{"--demo", "--data-dir", dir, "--listen", "127.0.0.1:0"}, args...), out)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("demo: %v\n%s", err, out.String())
		}
	})
	var facts demoFacts
	natstest.CheckFor(t, 60*time.Second, 50*time.Millisecond, func() error {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("the demo stopped: %v\n%s", err, out.String())
		default:
		}
		raw, err := os.ReadFile(filepath.Join(dir, demoMarker))
		if err != nil {
			return err
		}
		if err := json.Unmarshal(raw, &facts); err != nil || facts.FirstJobID == "" || facts.Token == "" {
			return fmt.Errorf("demo.json not complete yet (%v)", err)
		}
		return nil
	})
	m, err := akvemu.LoadManifest(filepath.Join(dir, "emulator-manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	return facts, m, out
}
