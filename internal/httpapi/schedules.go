package httpapi

import (
	"context"
	"errors"
	"net/http"
	"net/url"

	"github.com/akvsync/akvsync/internal/schedule"
)

// JobConfigsPath is the path of CCKM's scheduler job configs.
const JobConfigsPath = APIPrefix + "/scheduler/job-configs"

// JobConfigParams are the query parameters of GET /scheduler/job-configs.
var JobConfigParams = []string{"name", "operation", "disabled", "skip", "limit"}

// ScheduleService stores the scheduler's job configs (schedule.Scheduler).
type ScheduleService interface {
	Create(ctx context.Context, req schedule.Request) (schedule.JobConfig, error)
	List(ctx context.Context, q schedule.Query) (schedule.Page, error)
	Get(ctx context.Context, id string) (schedule.JobConfig, error)
	Update(ctx context.Context, id string, req schedule.Request) (schedule.JobConfig, error)
	Delete(ctx context.Context, id string) error
}

var errNoScheduler = errors.New("the scheduler is not available in this process")

// scheduler returns the schedule service, or answers 503 without one.
func (a *api) scheduler(w http.ResponseWriter) (ScheduleService, bool) {
	if a.d.Scheduler == nil {
		writeError(w, http.StatusServiceUnavailable, errNoScheduler.Error())
		return nil, false
	}
	return a.d.Scheduler, true
}

// ParseJobConfigQuery parses the query of GET /scheduler/job-configs.
func ParseJobConfigQuery(v url.Values) (schedule.Query, error) {
	p, err := newParams(v, JobConfigParams...)
	if err != nil {
		return schedule.Query{}, err
	}
	var q schedule.Query
	if q.Name, err = p.str("name"); err != nil {
		return schedule.Query{}, err
	}
	if q.Operation, err = p.str("operation"); err != nil {
		return schedule.Query{}, err
	}
	if q.Disabled, err = p.boolean("disabled"); err != nil {
		return schedule.Query{}, err
	}
	if q.Skip, q.Limit, err = p.paging(); err != nil {
		return schedule.Query{}, err
	}
	return q, nil
}

// createJobConfig handles POST /scheduler/job-configs: 201 with the config.
func (a *api) createJobConfig(w http.ResponseWriter, r *http.Request) {
	svc, ok := a.scheduler(w)
	if !ok {
		return
	}
	var req schedule.Request
	if err := decodeBody(http.MaxBytesReader(w, r.Body, a.cfg.MaxBodyBytes), a.cfg.MaxBodyBytes, &req); err != nil {
		fail(w, r, err)
		return
	}
	c, err := svc.Create(r.Context(), req)
	if err != nil {
		fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, c)
}

// listJobConfigs handles GET /scheduler/job-configs.
func (a *api) listJobConfigs(w http.ResponseWriter, r *http.Request) {
	svc, ok := a.scheduler(w)
	if !ok {
		return
	}
	q, err := ParseJobConfigQuery(r.URL.Query())
	if err != nil {
		fail(w, r, err)
		return
	}
	page, err := svc.List(r.Context(), q)
	if err != nil {
		fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

// getJobConfig handles GET /scheduler/job-configs/{id}.
func (a *api) getJobConfig(w http.ResponseWriter, r *http.Request) {
	svc, ok := a.scheduler(w)
	if !ok {
		return
	}
	c, err := svc.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

// patchJobConfig handles PATCH /scheduler/job-configs/{id}: 200 with the
// config.
func (a *api) patchJobConfig(w http.ResponseWriter, r *http.Request) {
	svc, ok := a.scheduler(w)
	if !ok {
		return
	}
	var req schedule.Request
	if err := decodeBody(http.MaxBytesReader(w, r.Body, a.cfg.MaxBodyBytes), a.cfg.MaxBodyBytes, &req); err != nil {
		fail(w, r, err)
		return
	}
	c, err := svc.Update(r.Context(), r.PathValue("id"), req)
	if err != nil {
		fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

// deleteJobConfig handles DELETE /scheduler/job-configs/{id}: 204.
func (a *api) deleteJobConfig(w http.ResponseWriter, r *http.Request) {
	svc, ok := a.scheduler(w)
	if !ok {
		return
	}
	if err := svc.Delete(r.Context(), r.PathValue("id")); err != nil {
		fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
