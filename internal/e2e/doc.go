// Package e2e holds akvsync's multi-process tests: the real binaries (api,
// worker, and nats-server built from the module in go.mod) started as
// separate processes against the emulator.
package e2e
