package sync

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the worker's Prometheus collectors. A nil *Metrics records
// nothing.
type Metrics struct {
	vaultSyncs    *prometheus.CounterVec
	keys          *prometheus.CounterVec
	azureRequests *prometheus.CounterVec
	syncSeconds   prometheus.Histogram
}

// NewMetrics creates the collectors and registers them on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		vaultSyncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "akvsync_vault_syncs_total", Help: "Vault syncs finished, by status (completed, failed, aborted).",
		}, []string{"status"}),
		keys: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "akvsync_keys_total", Help: "Keys seen by vault syncs, by outcome (fetched, unchanged, gone).",
		}, []string{"outcome"}),
		azureRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "akvsync_azure_requests_total", Help: "Key Vault HTTP attempts (retries included), by status code.",
		}, []string{"code"}),
		syncSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "akvsync_vault_sync_seconds", Help: "Duration of vault syncs.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 14),
		}),
	}
	for _, c := range []prometheus.Collector{m.vaultSyncs, m.keys, m.azureRequests, m.syncSeconds} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) vaultDone(status string, fetched, unchanged, gone int, took time.Duration) {
	if m == nil {
		return
	}
	m.vaultSyncs.WithLabelValues(status).Inc()
	m.keys.WithLabelValues("fetched").Add(float64(fetched))
	m.keys.WithLabelValues("unchanged").Add(float64(unchanged))
	m.keys.WithLabelValues("gone").Add(float64(gone))
	m.syncSeconds.Observe(took.Seconds())
}

func (m *Metrics) azureResponse(status int) {
	if m == nil {
		return
	}
	m.azureRequests.WithLabelValues(strconv.Itoa(status)).Inc()
}
