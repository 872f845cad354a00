package httpapi

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics records per-request metrics and serves them on GET /metrics.
// [NewMetrics] implements it with Prometheus. route is the route's pattern
// ("GET /api/v1/cckm/azure/keys/{id}") or "unmatched", never a raw path,
// so cardinality stays bounded.
type Metrics interface {
	ObserveRequest(route string, status int, d time.Duration)
	// ObserveEventGrid counts n Event Grid events of a delivery by what
	// became of them (queued, duplicate, unknown_vault, ignored_type,
	// malformed).
	ObserveEventGrid(outcome string, n int)
	http.Handler
}

// PromMetrics is the Prometheus implementation of [Metrics].
type PromMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	egEvents *prometheus.CounterVec
	handler  http.Handler
}

// NewMetrics registers akvsync_http_requests_total and
// akvsync_http_request_duration_seconds (labels route, code) on reg — the
// process's own registry, never the global one — and returns metrics that
// serve everything reg gathers.
func NewMetrics(reg *prometheus.Registry) (*PromMetrics, error) {
	if reg == nil {
		return nil, errors.New("httpapi: nil metrics registry")
	}
	m := &PromMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "akvsync", Subsystem: "http", Name: "requests_total",
			Help: "HTTP requests by route pattern and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "akvsync", Subsystem: "http", Name: "request_duration_seconds",
			Help:    "HTTP request latency by route pattern and status code.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route", "code"}),
		egEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "akvsync", Subsystem: "eventgrid", Name: "events_total",
			Help: "Event Grid events received by outcome: queued (a key refresh), duplicate (an event id already queued), unknown_vault, ignored_type and malformed (dropped).",
		}, []string{"outcome"}),
		handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.egEvents} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("httpapi: register metrics: %w", err)
		}
	}
	return m, nil
}

// ObserveRequest records one finished request.
func (m *PromMetrics) ObserveRequest(route string, status int, d time.Duration) {
	code := strconv.Itoa(status)
	m.requests.WithLabelValues(route, code).Inc()
	m.duration.WithLabelValues(route, code).Observe(d.Seconds())
}

// ObserveEventGrid counts n Event Grid events with the outcome.
func (m *PromMetrics) ObserveEventGrid(outcome string, n int) {
	m.egEvents.WithLabelValues(outcome).Add(float64(n))
}

// ServeHTTP serves the registry in the Prometheus exposition format.
func (m *PromMetrics) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.handler.ServeHTTP(w, r)
}

// noMetrics is used when Deps.Metrics is nil: nothing is recorded and
// /metrics answers 404.
type noMetrics struct{}

func (noMetrics) ObserveRequest(string, int, time.Duration) {}
func (noMetrics) ObserveEventGrid(string, int)              {}

func (noMetrics) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	writeError(w, http.StatusNotFound, "Resource not found")
}

// serveMetrics serves the metrics.
func (a *api) serveMetrics(w http.ResponseWriter, r *http.Request) {
	a.d.Metrics.ServeHTTP(w, r)
}

// MetricsPath is the API's Prometheus endpoint.
const MetricsPath = "/metrics"

// metricsScraper is the caller's name in the request log of a scrape
// authenticated by the static metrics token.
const metricsScraper = "metrics-token"

// metricsToken reports whether token is the configured static metrics
// token (compared in constant time; false when none is configured).
func (a *api) metricsToken(token string) bool {
	want := a.d.MetricsToken
	return len(want) > 0 && subtle.ConstantTimeCompare([]byte(token), want) == 1
}
