package httpapi

import (
	"context"
	"net/http"
)

// healthStatus is the body of /healthz and /readyz.
type healthStatus struct {
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
}

// healthz answers 200 while the process runs.
func (a *api) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, healthStatus{Status: "ok"})
}

// readyz answers 200 when the control plane is ready (NATS connected,
// JetStream answering) and 503 with the reason otherwise.
func (a *api) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.ReadyTimeout)
	defer cancel()
	w.Header().Set("Cache-Control", "no-store")
	if err := a.d.Ready(ctx); err != nil {
		if info := infoFrom(r.Context()); info != nil {
			info.err = err
		}
		writeJSON(w, http.StatusServiceUnavailable, healthStatus{Status: "unavailable", Reason: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, healthStatus{Status: "ready"})
}
