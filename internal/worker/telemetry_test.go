package worker_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/akvsync/akvsync/internal/control"
	"github.com/akvsync/akvsync/internal/natstest"
	"github.com/akvsync/akvsync/internal/telemetry"
	"github.com/akvsync/akvsync/internal/worker"
	"github.com/akvsync/akvsync/pkg/akvemu"
	"github.com/akvsync/akvsync/pkg/events"
)

// scrape GETs /metrics, checks it passes promtool's lint (promlint) with
// no problem, and returns the families.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	problems, err := promlint.New(bytes.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// sum adds the samples of a family whose labels include want.
func sum(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	var n float64
	f := fams[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.GetCounter() != nil:
			n += m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			n += m.GetGauge().GetValue()
		case m.GetHistogram() != nil:
			n += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return n
}

func getStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// emulatorTotals sums the emulator's request counters of every vault.
func (e *env) emulatorTotals() (list, get, unbilled int64) {
	for _, name := range e.vaultNames() {
		c := e.emu.Counters(name)
		list += c.Total(akvemu.OpListKeys)
		get += c.Total(akvemu.OpGetKey)
		for _, op := range []akvemu.Operation{akvemu.OpListKeys, akvemu.OpGetKey} {
			unbilled += c.Count(op, 401) + c.Count(op, 429) + c.Count(op, akvemu.StatusDropped)
		}
	}
	return list, get, unbilled
}

// TestWorkerTelemetry runs a full and a delta sync over two vaults and a
// Managed HSM pool with a worker whose registry is served over HTTP as
// worker --metrics-listen serves it, and checks the metrics and the
// jobs' stats against the emulator's own request counters.
func TestWorkerTelemetry(t *testing.T) {
	t.Parallel()
	e := setup(t, envOptions{vaults: 2, keys: 25, emulator: func(c *akvemu.Config) {
		c.Vaults = append(c.Vaults, akvemu.VaultSpec{Name: "pool-1", Kind: akvemu.KindManagedHSM, SubscriptionID: "sub-hsm", Keys: 10})
	}})
	const keys = 2*25 + 10
	reg := prometheus.NewRegistry()
	var running atomic.Pointer[worker.Worker]
	srv := httptest.NewServer(telemetry.Handler(reg, func(ctx context.Context) error {
		if w := running.Load(); w != nil {
			return w.Ready(ctx)
		}
		return fmt.Errorf("starting")
	}, 0))
	t.Cleanup(srv.Close)

	if got := getStatus(t, srv.URL+"/readyz"); got != http.StatusServiceUnavailable {
		t.Fatalf("/readyz before the worker started: %d, want 503", got)
	}
	if got := getStatus(t, srv.URL+"/healthz"); got != http.StatusOK {
		t.Fatalf("/healthz: %d", got)
	}
	w := e.startWorker(t, "w1", nil, func(c *worker.Config) { c.Registry = reg })
	running.Store(w)
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		if got := getStatus(t, srv.URL+"/readyz"); got != http.StatusOK {
			return fmt.Errorf("/readyz %d", got)
		}
		return nil
	})

	// A full sync.
	job1 := e.createJob(t, control.CreateJobRequest{SynchronizeAll: true})
	done1 := e.waitJob(t, job1.ID)
	if done1.OverallStatus != events.JobCompleted {
		t.Fatalf("job ended %s: %v", done1.OverallStatus, done1.DetailedStatus())
	}
	list1, get1, unbilled1 := e.emulatorTotals()
	p := done1.Progress
	if p.Azure.ListKeys != list1 || p.Azure.GetKey != get1 {
		t.Errorf("job 1 counted list %d get %d, the emulator %d and %d", p.Azure.ListKeys, p.Azure.GetKey, list1, get1)
	}
	if p.New != keys || p.Changed != 0 || p.Unchanged != 0 || p.Listed != keys {
		t.Errorf("job 1 keys %+v, want %d new", p, keys)
	}
	st := events.NewJobStats(done1.Job, p, events.Prices{}, time.Now())
	ops := st.Cost.Operations
	if billed := ops.Standard + ops.HSMKey + ops.ManagedHSM; billed != list1+get1-unbilled1 {
		t.Errorf("billable operations %+v = %d, want %d", ops, billed, list1+get1-unbilled1)
	}
	if ops.ManagedHSM == 0 || ops.Standard == 0 {
		t.Errorf("operations by class %+v: the vaults and the pool should each have some", ops)
	}
	if st.Cost.Estimated <= 0 || st.Vaults.Completed != 3 || st.ETASeconds == nil || *st.ETASeconds != 0 {
		t.Errorf("stats %+v", st)
	}

	// The job's finished event carries the same stats.
	msg, err := e.js.Stream(e.ctx, events.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := msg.GetLastMsgForSubject(e.ctx, events.JobEventSubject(job1.ID, events.KindJobFinished))
	if err != nil {
		t.Fatal(err)
	}
	var fin events.JobFinished
	if _, err := events.DecodeEvent(raw.Data, &fin); err != nil {
		t.Fatal(err)
	}
	if fin.Stats == nil || fin.Stats.Azure.Calls["list_keys"] != list1 || fin.Stats.Azure.Calls["get_key"] != get1 || fin.Stats.Keys.New != keys {
		t.Errorf("finished event stats %+v", fin.Stats)
	}

	// A delta sync: nothing changed, so no key is read again.
	job2 := e.createJob(t, control.CreateJobRequest{SynchronizeAll: true})
	done2 := e.waitJob(t, job2.ID)
	list2, get2, _ := e.emulatorTotals()
	p = done2.Progress
	if p.Azure.GetKey != 0 || get2 != get1 {
		t.Errorf("delta sync read %d keys (emulator: %d more)", p.Azure.GetKey, get2-get1)
	}
	if p.Azure.ListKeys != list2-list1 {
		t.Errorf("job 2 counted %d list calls, the emulator %d", p.Azure.ListKeys, list2-list1)
	}
	if p.Unchanged != keys || p.New != 0 || p.Changed != 0 {
		t.Errorf("job 2 keys %+v, want %d unchanged", p, keys)
	}

	fams := scrape(t, srv.URL)
	for name, want := range map[string]float64{
		telemetry.NameKeysSynced + "{new}":          keys,
		telemetry.NameKeysSynced + "{unchanged}":    keys,
		telemetry.NameVaultSyncs + "{completed}":    6,
		telemetry.NameAzureRequests + "{list_keys}": float64(list2),
		telemetry.NameAzureRequests + "{get_key}":   float64(get2),
		telemetry.NameVaultSyncsInProgress:          0,
	} {
		base, label, _ := strings.Cut(strings.TrimSuffix(name, "}"), "{")
		labels := map[string]string{}
		switch base {
		case telemetry.NameKeysSynced:
			labels["outcome"] = label
		case telemetry.NameVaultSyncs:
			labels["status"] = label
		case telemetry.NameAzureRequests:
			labels["operation"] = label
		}
		if got := sum(fams, base, labels); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := sum(fams, telemetry.NameAzureRequestDuration, map[string]string{"operation": "list_keys"}); got != float64(list2) {
		t.Errorf("latency histogram of list_keys has %v samples, want %d", got, list2)
	}
	if got := sum(fams, telemetry.NameInventoryJobs, map[string]string{"status": "completed"}); got != 2 {
		t.Errorf("inventory jobs completed = %v, want 2", got)
	}
	for _, name := range []string{telemetry.NameConsumerPending, telemetry.NameConsumerAckPending, telemetry.NameAzureLimiterWait,
		telemetry.NameAzureThrottled, telemetry.NameAzureRetries, telemetry.NameJobsSyncing} {
		if fams[name] == nil {
			t.Errorf("%s is missing", name)
		}
	}
	if got := sum(fams, telemetry.NameConsumerPending, map[string]string{"stream": events.StreamTasks}); got != 0 {
		t.Errorf("vault-syncer pending %v after the jobs, want 0", got)
	}

	// A stopped worker is not ready.
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := getStatus(t, srv.URL+"/readyz"); got != http.StatusServiceUnavailable {
		t.Errorf("/readyz after Close: %d, want 503", got)
	}
}

// TestReadyzNeedsNATS: a worker whose NATS connection is gone is not ready.
func TestReadyzNeedsNATS(t *testing.T) {
	t.Parallel()
	e := setup(t, envOptions{vaults: 1, keys: 1})
	w := e.startWorker(t, "w1", nil)
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error { return w.Ready(e.ctx) })
	e.nc.Close()
	if err := w.Ready(e.ctx); err == nil {
		t.Fatal("ready without NATS")
	}
}
