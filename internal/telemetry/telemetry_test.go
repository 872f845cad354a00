package telemetry

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/akvsync/akvsync/pkg/events"
	akvsync "github.com/akvsync/akvsync/pkg/sync"
)

func TestConfigListen(t *testing.T) {
	for addr, ok := range map[string]bool{"127.0.0.1:9464": true, "[::1]:0": true, "localhost:1": true, "0.0.0.0:9464": false, ":9464": false, "nope": false} {
		err := Config{Listen: addr}.Validate()
		if (err == nil) != ok {
			t.Errorf("Validate(%q) = %v", addr, err)
		}
	}
	if err := (Config{Listen: "0.0.0.0:9464", Public: true}).Validate(); err != nil {
		t.Errorf("public: %v", err)
	}
	if err := (Config{Listen: "0.0.0.0:9464"}).Validate(); !errors.Is(err, ErrNotLoopback) {
		t.Errorf("err %v, want ErrNotLoopback", err)
	}
}

func TestWorkerMetricsLintAndCount(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewWorkerMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.VaultSyncStarted("j1")
	m.VaultSyncStarted("j1")
	m.VaultSyncStarted("j2")
	m.VaultSyncStopped("j2")
	m.AzureAttempt(akvsync.Attempt{Operation: akvsync.OpListKeys, Status: 401, Duration: time.Millisecond})
	m.AzureAttempt(akvsync.Attempt{Operation: akvsync.OpGetKey, Status: 429, Wait: time.Second})
	m.AzureAttempt(akvsync.Attempt{Operation: akvsync.OpGetKey, Status: 200, Retry: true})
	m.AzureAttempt(akvsync.Attempt{Operation: akvsync.OpGetKey})
	m.VaultSyncFinished(events.VaultResult{Status: events.VaultCompleted, New: 3, Unchanged: 4}, time.Second)

	if got := testutil.ToFloat64(m.inProgress); got != 2 {
		t.Errorf("in progress %v", got)
	}
	if got := testutil.ToFloat64(m.jobsSyncing); got != 1 {
		t.Errorf("jobs syncing %v", got)
	}
	for _, c := range []struct {
		c    prometheus.Collector
		want float64
	}{
		{m.throttled.WithLabelValues("get_key"), 1},
		{m.retries.WithLabelValues("get_key"), 1},
		{m.requests.WithLabelValues("get_key", "none"), 1},
		{m.requests.WithLabelValues("list_keys", "401"), 1},
		{m.keys.WithLabelValues("new"), 3},
	} {
		if got := testutil.ToFloat64(c.c); got != c.want {
			t.Errorf("got %v, want %v", got, c.want)
		}
	}

	srv := httptest.NewServer(Handler(reg, func(context.Context) error { return errors.New("not yet") }, 0))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	problems, err := promlint.New(bytes.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	resp, err = http.Get(srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz %d", resp.StatusCode)
	}
}
