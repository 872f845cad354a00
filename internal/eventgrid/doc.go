// Package eventgrid reads Azure Event Grid deliveries of Key Vault events
// for the API's webhook (POST /api/v1/cckm/azure/event-grid): both
// delivery schemas (the Event Grid schema and CloudEvents 1.0) with their
// subscription validation handshakes, the webhook's authentication (a
// per-subscription shared secret in a delivery header, or an Entra ID
// token for a configured audience) and its rate limit.
//
// It knows the wire format only. Which vault an event names and what a
// refresh does belong to internal/control and pkg/sync; the HTTP contract
// to internal/httpapi.
package eventgrid
