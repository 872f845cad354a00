package telemetry

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/akvsync/akvsync/internal/store"
	"github.com/akvsync/akvsync/pkg/events"
)

// DefaultConsumerInfoTimeout bounds the consumer info requests of one
// scrape: a consumer that does not answer in time is left out of it.
const DefaultConsumerInfoTimeout = 2 * time.Second

// ConsumerCollector reports the lag of JetStream consumers at scrape
// time: messages pending delivery and delivered but not acknowledged,
// with a consumer info request each (bounded by a timeout).
type ConsumerCollector struct {
	consumers  []jetstream.Consumer
	timeout    time.Duration
	pending    *prometheus.Desc
	ackPending *prometheus.Desc
	redeliv    *prometheus.Desc
}

// NewConsumerCollector returns a collector of cs; timeout <= 0 means
// DefaultConsumerInfoTimeout.
func NewConsumerCollector(timeout time.Duration, cs ...jetstream.Consumer) *ConsumerCollector {
	if timeout <= 0 {
		timeout = DefaultConsumerInfoTimeout
	}
	labels := []string{"stream", "consumer"}
	return &ConsumerCollector{consumers: cs, timeout: timeout,
		pending: prometheus.NewDesc(NameConsumerPending,
			"Messages of the stream not yet delivered to the consumer (its lag).", labels, nil),
		ackPending: prometheus.NewDesc(NameConsumerAckPending,
			"Messages delivered to the consumer and not yet acknowledged.", labels, nil),
		redeliv: prometheus.NewDesc(NameConsumerRedelivered,
			"Messages delivered to the consumer more than once and not yet acknowledged.", labels, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *ConsumerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.pending
	ch <- c.ackPending
	ch <- c.redeliv
}

// Collect implements prometheus.Collector.
func (c *ConsumerCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	for _, cons := range c.consumers {
		info, err := cons.Info(ctx)
		if err != nil {
			continue
		}
		l := []string{info.Stream, info.Name}
		ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(info.NumPending), l...)
		ch <- prometheus.MustNewConstMetric(c.ackPending, prometheus.GaugeValue, float64(info.NumAckPending), l...)
		ch <- prometheus.MustNewConstMetric(c.redeliv, prometheus.GaugeValue, float64(info.NumRedelivered), l...)
	}
}

// Inventory is what [InventoryCollector] reads: the worker's store and
// how far it has applied each source stream.
type Inventory interface {
	Stats() store.Stats
	Applied(source string) uint64
}

// InventoryCollector reports the worker's inventory: its keys, its jobs
// by overall status (the cluster's jobs as this worker has applied
// them), and the stream sequences it has applied.
type InventoryCollector struct {
	inv     Inventory
	sources []string
	keys    *prometheus.Desc
	jobs    *prometheus.Desc
	applied *prometheus.Desc
}

// NewInventoryCollector returns a collector of inv, reporting the
// applied sequence of each of sources.
func NewInventoryCollector(inv Inventory, sources ...string) *InventoryCollector {
	return &InventoryCollector{inv: inv, sources: sources,
		keys: prometheus.NewDesc(NameInventoryKeys, "Key records in this worker's inventory (gone keys included).", nil, nil),
		jobs: prometheus.NewDesc(NameInventoryJobs,
			"Jobs in this worker's inventory by overall status (in_progress: jobs in progress in the cluster).", []string{"status"}, nil),
		applied: prometheus.NewDesc(NameInventoryAppliedSeq, "Last stream sequence this worker's inventory applied, by stream.", []string{"stream"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *InventoryCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.keys
	ch <- c.jobs
	ch <- c.applied
}

// Collect implements prometheus.Collector.
func (c *InventoryCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.inv.Stats()
	ch <- prometheus.MustNewConstMetric(c.keys, prometheus.GaugeValue, float64(st.Keys))
	for _, s := range []events.JobStatus{events.JobInProgress, events.JobCompleted, events.JobFailed} {
		ch <- prometheus.MustNewConstMetric(c.jobs, prometheus.GaugeValue, float64(st.JobsByStatus[s]), string(s))
	}
	for _, src := range c.sources {
		ch <- prometheus.MustNewConstMetric(c.applied, prometheus.GaugeValue, float64(c.inv.Applied(src)), src)
	}
}
