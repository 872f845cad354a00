package deploy

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/akvsync/akvsync/internal/httpapi"
	"github.com/akvsync/akvsync/internal/telemetry"
)

// describer is a prometheus.Registerer that keeps the metric names of
// what is registered on it.
type describer struct{ names map[string]bool }

var fqName = regexp.MustCompile(`fqName: "([a-z_:]+)"`)

func (d *describer) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc, 64)
	go func() { c.Describe(ch); close(ch) }()
	for desc := range ch {
		if m := fqName.FindStringSubmatch(desc.String()); m != nil {
			d.names[m[1]] = true
		}
	}
	return nil
}

func (d *describer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		_ = d.Register(c)
	}
}

func (d *describer) Unregister(prometheus.Collector) bool { return true }

// servedMetrics is every akvsync_ metric name the API and the worker
// register.
func servedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	d := &describer{names: map[string]bool{}}
	if _, err := telemetry.NewWorkerMetrics(d); err != nil {
		t.Fatal(err)
	}
	d.MustRegister(telemetry.NewConsumerCollector(0), telemetry.NewInventoryCollector(nil))
	reg := prometheus.NewRegistry()
	if _, err := httpapi.NewMetrics(reg); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		d.names[mf.GetName()] = true
	}
	// The HTTP vectors have no samples before a request: add them by
	// description too.
	d.names["akvsync_http_requests_total"] = true
	d.names["akvsync_http_request_duration_seconds"] = true
	if len(d.names) < 10 {
		t.Fatalf("only %d metric names described: %v", len(d.names), d.names)
	}
	return d.names
}

// TestMetricNames: every akvsync_ metric the alert rules and the Grafana
// dashboard query is one that an akvsync process serves, so a renamed
// metric cannot silently empty a panel or disarm an alert.
func TestMetricNames(t *testing.T) {
	t.Parallel()
	served := servedMetrics(t)
	ident := regexp.MustCompile(`akvsync_[a-z_]+`)
	for _, f := range []string{"prometheus/alerts.yaml", "grafana/akvsync.json"} {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		used := 0
		for _, name := range ident.FindAllString(string(raw), -1) {
			base := name
			for _, suf := range []string{"_bucket", "_sum", "_count"} {
				if b, ok := strings.CutSuffix(name, suf); ok && served[b] {
					base = b
				}
			}
			if !served[base] {
				t.Errorf("%s queries %s, which no akvsync process serves", f, name)
			}
			used++
		}
		if used == 0 {
			t.Errorf("%s queries no akvsync metric", f)
		}
	}
}
