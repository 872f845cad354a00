package httpapi

import (
	"net/http"
	"strings"

	"github.com/akvsync/akvsync/pkg/events"
)

// createJob handles POST /cckm/azure/synchronization-jobs: 201 with the job.
func (a *api) createJob(w http.ResponseWriter, r *http.Request) {
	req, err := ParseCreateJob(http.MaxBytesReader(w, r.Body, a.cfg.MaxBodyBytes), a.cfg.MaxBodyBytes)
	if err != nil {
		fail(w, r, err)
		return
	}
	job, err := a.d.Jobs.Create(r.Context(), req, username(r))
	if err != nil {
		fail(w, r, err)
		return
	}
	w.Header().Set("Location", strings.TrimSuffix(r.URL.Path, "/")+"/"+job.ID)
	writeJSON(w, http.StatusCreated, a.renderJob(job))
}

// listJobs handles GET /cckm/azure/synchronization-jobs (from the workers'
// inventory; 503 when no worker answers).
func (a *api) listJobs(w http.ResponseWriter, r *http.Request) {
	q, err := ParseJobQuery(r.URL.Query())
	if err != nil {
		fail(w, r, err)
		return
	}
	page, err := a.d.Queries.Jobs(r.Context(), q)
	if err != nil {
		fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, Page[JobJSON]{
		Skip: page.Skip, Limit: page.Limit, Total: page.Total,
		Resources: renderAll(page.Resources, a.renderJob),
	})
}

// getJob handles GET /cckm/azure/synchronization-jobs/{id}: the job's
// header (authoritative) with its progress and a bounded detail.
func (a *api) getJob(w http.ResponseWriter, r *http.Request) {
	job, err := a.d.Jobs.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, a.renderJob(job))
}

// cancelJob handles POST /cckm/azure/synchronization-jobs/{id}/cancel: 200
// with the job, abort true. A body, if any, is ignored.
func (a *api) cancelJob(w http.ResponseWriter, r *http.Request) {
	job, err := a.d.Jobs.Cancel(r.Context(), r.PathValue("id"))
	if err != nil {
		fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, a.renderJob(job))
}

// jobVaults handles GET /cckm/azure/synchronization-jobs/{id}/vaults: one
// page of the job's vaults (skip, limit, status), failures first.
func (a *api) jobVaults(w http.ResponseWriter, r *http.Request) {
	q, err := ParseJobVaultQuery(r.URL.Query())
	if err != nil {
		fail(w, r, err)
		return
	}
	q.JobID = r.PathValue("id")
	page, err := a.d.Jobs.Vaults(r.Context(), q)
	if err != nil {
		fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, Page[JobVaultJSON]{
		Skip: page.Skip, Limit: page.Limit, Total: page.Total,
		Resources: renderAll(page.Resources, RenderJobVault),
	})
}

// renderJob renders a job with its stats.
func (a *api) renderJob(j events.JobDetail) JobJSON {
	return RenderJobStats(j, a.d.Prices, a.d.Now())
}
