package main

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/akvsync/akvsync/pkg/akvemu"
	"github.com/akvsync/akvsync/pkg/events"
)

// TestMetricsTokenAndJobStats runs the demo with a static metrics token:
// Prometheus reads /metrics with it (and with nothing else), the output
// holds the embedded worker's metrics and passes promtool's lint, and the
// first job's stats count exactly the requests the emulator counted.
func TestMetricsTokenAndJobStats(t *testing.T) {
	t.Parallel()
	tokenFile := filepath.Join(t.TempDir(), "metrics-token")
	const token = "scrape-0123456789abcdef0123456789abcdef"
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	facts, m, out := serveDemo(t, "--metrics-token-file", tokenFile, "--demo-vaults", "2", "--demo-keys", "8", "--log-level", "error")
	w := &walker{t: t, base: facts.APIURL, token: facts.Token, admin: m.AdminURL, client: &http.Client{Timeout: 30 * time.Second}}
	w.waitJob(t, facts.FirstJobID)

	var job struct {
		Stats *events.JobStats `json:"stats"`
	}
	w.get(t, "/api/v1/cckm/azure/synchronization-jobs/"+facts.FirstJobID, http.StatusOK, &job)
	var list, get int64
	for _, v := range m.Vaults {
		var info struct {
			Counters akvemu.Counters `json:"counters"`
		}
		w.decode(t, w.adminGet(t, "/admin/vaults/"+v.Name), &info)
		list += info.Counters.Total(akvemu.OpListKeys)
		get += info.Counters.Total(akvemu.OpGetKey)
	}
	st := job.Stats
	if st == nil {
		t.Fatal("the job has no stats")
	}
	if st.Azure.Calls["list_keys"] != list || st.Azure.Calls["get_key"] != get {
		t.Errorf("stats count list %d get %d; the emulator %d and %d", st.Azure.Calls["list_keys"], st.Azure.Calls["get_key"], list, get)
	}
	if vaults := len(m.Vaults); st.Vaults.Completed != vaults || st.Keys.New != int64(vaults*8) || st.Cost.Currency != "USD" || st.Cost.Estimated <= 0 {
		t.Errorf("stats %+v", st)
	}

	scrape := func(bearer string) (int, []byte) {
		req, _ := http.NewRequest("GET", facts.APIURL+"/metrics", nil)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := w.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return resp.StatusCode, b.Bytes()
	}
	code, body := scrape(token)
	if code != http.StatusOK {
		t.Fatalf("/metrics with the static token: %d %s", code, body)
	}
	problems, err := promlint.New(bytes.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	for _, name := range []string{"akvsync_http_requests_total", "akvsync_keys_synced_total", "akvsync_azure_request_duration_seconds",
		"akvsync_jetstream_consumer_pending_messages", "akvsync_vault_syncs_in_progress", "go_goroutines"} {
		if !bytes.Contains(body, []byte("\n"+name)) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	if code, _ := scrape(facts.Token); code != http.StatusOK {
		t.Errorf("/metrics with a JWT: %d", code)
	}
	for _, bad := range []string{"", token[:len(token)-1], token + "x"} {
		if code, _ := scrape(bad); code != http.StatusUnauthorized {
			t.Errorf("/metrics with %q: %d, want 401", bad, code)
		}
	}
	// The static token opens /metrics only.
	req, _ := http.NewRequest("GET", facts.APIURL+"/api/v1/cckm/azure/synchronization-jobs", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := w.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("jobs with the metrics token: %d, want 401", resp.StatusCode)
	}
	if strings.Contains(out.String(), token) {
		t.Error("the metrics token was logged")
	}
}
