// Package httpapi is akvsync's CCKM-compatible REST API: synchronization
// jobs, vaults and keys under /api/v1/cckm/azure, the token endpoint, and
// health, readiness and metrics endpoints. It is a thin layer over the
// control plane (package control), which talks to NATS; it never calls
// Azure.
//
// Every endpoint but /healthz, /readyz and POST /api/v1/auth/tokens needs a
// bearer token; each route declares the permission it requires. Errors are
// JSON in CCKM's shape {"code","codeDesc","message"}. docs/api.md and
// docs/openapi.yaml describe every endpoint.
//
// cmd/api builds the handler with [New] and serves it with [NewServer].
package httpapi
