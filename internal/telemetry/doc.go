// Package telemetry is the Prometheus side of a worker: the collectors
// behind pkg/sync's Metrics interface, a collector of JetStream consumer
// lag, gauges read from the worker's inventory, and the small HTTP
// server of /metrics, /healthz and /readyz (worker --metrics-listen).
// Every collector is registered on the process's own registry, never on
// the global one.
package telemetry
