package telemetry

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/akvsync/akvsync/pkg/events"
	akvsync "github.com/akvsync/akvsync/pkg/sync"
)

// Metric names of [WorkerMetrics] (all prefixed akvsync_).
const (
	NameVaultSyncsInProgress  = "akvsync_vault_syncs_in_progress"
	NameJobsSyncing           = "akvsync_jobs_syncing"
	NameVaultSyncs            = "akvsync_vault_syncs_total"
	NameVaultSyncDuration     = "akvsync_vault_sync_duration_seconds"
	NameKeysSynced            = "akvsync_keys_synced_total"
	NameAzureRequests         = "akvsync_azure_requests_total"
	NameAzureRequestDuration  = "akvsync_azure_request_duration_seconds"
	NameAzureThrottled        = "akvsync_azure_throttled_total"
	NameAzureRetries          = "akvsync_azure_retries_total"
	NameAzureLimiterWait      = "akvsync_azure_limiter_wait_seconds"
	NameConsumerPending       = "akvsync_jetstream_consumer_pending_messages"
	NameConsumerAckPending    = "akvsync_jetstream_consumer_ack_pending_messages"
	NameConsumerRedelivered   = "akvsync_jetstream_consumer_redelivered_messages"
	NameInventoryKeys         = "akvsync_inventory_keys"
	NameInventoryJobs         = "akvsync_inventory_jobs"
	NameInventoryAppliedSeq   = "akvsync_inventory_applied_sequence"
	NameKeyRefreshes          = "akvsync_key_refreshes_total"
	codeNone                  = "none"
	codeClassNone             = "none"
	outcomeNew, outcomeChange = "new", "changed"
)

// WorkerMetrics implements sync.Metrics with Prometheus collectors.
type WorkerMetrics struct {
	inProgress  prometheus.Gauge
	jobsSyncing prometheus.Gauge
	syncs       *prometheus.CounterVec
	syncSeconds prometheus.Histogram
	keys        *prometheus.CounterVec
	requests    *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	throttled   *prometheus.CounterVec
	retries     *prometheus.CounterVec
	wait        prometheus.Histogram
	refreshes   *prometheus.CounterVec

	mu   sync.Mutex
	jobs map[string]int // running vault syncs by job
}

// NewWorkerMetrics creates the worker's sync and Azure collectors and
// registers them on reg.
func NewWorkerMetrics(reg prometheus.Registerer) (*WorkerMetrics, error) {
	if reg == nil {
		return nil, errors.New("telemetry: nil registry")
	}
	m := &WorkerMetrics{
		inProgress: prometheus.NewGauge(prometheus.GaugeOpts{Name: NameVaultSyncsInProgress,
			Help: "Vault syncs running in this worker."}),
		jobsSyncing: prometheus.NewGauge(prometheus.GaugeOpts{Name: NameJobsSyncing,
			Help: "Jobs with at least one vault sync running in this worker."}),
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: NameVaultSyncs,
			Help: "Vault syncs finished by this worker, by status (completed, failed, aborted)."}, []string{"status"}),
		syncSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: NameVaultSyncDuration,
			Help: "Duration of the vault syncs this worker finished.", Buckets: prometheus.ExponentialBuckets(0.05, 2, 14)}),
		keys: prometheus.NewCounterVec(prometheus.CounterOpts{Name: NameKeysSynced,
			Help: "Keys synced by this worker, by outcome (new, changed, unchanged, gone)."}, []string{"outcome"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: NameAzureRequests,
			Help: "Key Vault HTTP attempts (retries and authentication challenges included), by operation and status code (none: no answer)."},
			[]string{"operation", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: NameAzureRequestDuration,
			Help:    "Key Vault HTTP attempt latency, by operation and status code class (2xx, 4xx, 5xx, none).",
			Buckets: prometheus.ExponentialBuckets(0.002, 2, 14)}, []string{"operation", "code_class"}),
		throttled: prometheus.NewCounterVec(prometheus.CounterOpts{Name: NameAzureThrottled,
			Help: "Key Vault answers 429 (throttled), by operation."}, []string{"operation"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: NameAzureRetries,
			Help: "Key Vault attempts that retried a throttled, failed or unanswered attempt, by operation."}, []string{"operation"}),
		wait: prometheus.NewHistogram(prometheus.HistogramOpts{Name: NameAzureLimiterWait,
			Help:    "Time a Key Vault attempt waited for akvsync's own rate limiters before it was sent.",
			Buckets: []float64{0.0001, 0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}}),
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: NameKeyRefreshes,
			Help: "Key refreshes (from Event Grid events) this worker finished, by outcome (updated, unchanged, current, not_found, vault_removed, failed)."},
			[]string{"outcome"}),
		jobs: map[string]int{},
	}
	for _, c := range []prometheus.Collector{m.inProgress, m.jobsSyncing, m.syncs, m.syncSeconds, m.keys,
		m.requests, m.latency, m.throttled, m.retries, m.wait, m.refreshes} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("telemetry: register: %w", err)
		}
	}
	// Known label values start at zero, so rates and alerts see them.
	for _, s := range []events.VaultStatus{events.VaultCompleted, events.VaultFailed, events.VaultAborted} {
		m.syncs.WithLabelValues(string(s))
	}
	for _, o := range []string{outcomeNew, outcomeChange, "unchanged", "gone"} {
		m.keys.WithLabelValues(o)
	}
	for _, o := range []string{events.RefreshUpdated, events.RefreshUnchanged, events.RefreshCurrent,
		events.RefreshNotFound, events.RefreshVaultRemoved, events.RefreshFailed} {
		m.refreshes.WithLabelValues(o)
	}
	for _, op := range akvsync.Operations {
		m.throttled.WithLabelValues(string(op))
		m.retries.WithLabelValues(string(op))
	}
	return m, nil
}

// KeyRefreshed implements sync.Metrics.
func (m *WorkerMetrics) KeyRefreshed(outcome string) { m.refreshes.WithLabelValues(outcome).Inc() }

// VaultSyncStarted implements sync.Metrics.
func (m *WorkerMetrics) VaultSyncStarted(jobID string) {
	m.inProgress.Inc()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.jobs[jobID]++
	m.jobsSyncing.Set(float64(len(m.jobs)))
}

// VaultSyncStopped implements sync.Metrics.
func (m *WorkerMetrics) VaultSyncStopped(jobID string) {
	m.inProgress.Dec()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.jobs[jobID]--; m.jobs[jobID] <= 0 {
		delete(m.jobs, jobID)
	}
	m.jobsSyncing.Set(float64(len(m.jobs)))
}

// VaultSyncFinished implements sync.Metrics.
func (m *WorkerMetrics) VaultSyncFinished(res events.VaultResult, took time.Duration) {
	m.syncs.WithLabelValues(string(res.Status)).Inc()
	m.syncSeconds.Observe(took.Seconds())
	m.keys.WithLabelValues(outcomeNew).Add(float64(res.New))
	m.keys.WithLabelValues(outcomeChange).Add(float64(res.Changed))
	m.keys.WithLabelValues("unchanged").Add(float64(res.Unchanged))
	m.keys.WithLabelValues("gone").Add(float64(res.Gone))
}

// AzureAttempt implements sync.Metrics.
func (m *WorkerMetrics) AzureAttempt(a akvsync.Attempt) {
	op := string(a.Operation)
	code, class := codeNone, codeClassNone
	if a.Status > 0 {
		code, class = strconv.Itoa(a.Status), strconv.Itoa(a.Status/100)+"xx"
	}
	m.requests.WithLabelValues(op, code).Inc()
	m.latency.WithLabelValues(op, class).Observe(a.Duration.Seconds())
	if a.Status == 429 {
		m.throttled.WithLabelValues(op).Inc()
	}
	if a.Retry {
		m.retries.WithLabelValues(op).Inc()
	}
	m.wait.Observe(a.Wait.Seconds())
}
