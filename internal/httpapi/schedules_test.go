package httpapi_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/akvsync/akvsync/internal/control"
	"github.com/akvsync/akvsync/internal/httpapi"
	"github.com/akvsync/akvsync/internal/natstest"
	"github.com/akvsync/akvsync/internal/schedule"
	"github.com/akvsync/akvsync/pkg/events"
)

const configsPath = "/api/v1/scheduler/job-configs"

// TestJobConfigs: CCKM's scheduler job configs through the API, with its
// roles, its error shapes, and nothing stored by a refused request.
func TestJobConfigs(t *testing.T) {
	t.Parallel()
	e := setup(t)
	const good = `{"name":"weekly","description":"every saturday","operation":"cckm_synchronization","run_at":"0 9 * * sat",
		"start_date":"2030-01-01T00:00:00Z","cckm_synchronization_params":{"cloud_name":"AzureCloud","synchronize_all":true}}`
	r := e.as(t, "alice", "POST", configsPath, good)
	r.wantStatus(t, http.StatusCreated)
	var c schedule.JobConfig
	r.decode(t, &c)
	if c.ID == "" || c.RunOn != "any" || c.RunAt != "0 9 * * sat" || c.StartDate == nil || !c.Params.SynchronizeAll || c.CreatedAt.IsZero() {
		t.Fatalf("created %+v", c)
	}
	e.as(t, "alice", "POST", configsPath, good).wantError(t, http.StatusConflict, "NCERRConflict", "weekly")
	e.as(t, "alice", "POST", configsPath, `{"name":"x","run_at":"0 9 * *","cckm_synchronization_params":{"synchronize_all":true}}`).
		wantError(t, http.StatusBadRequest, "NCERRInvalidParamValue", "5-field")
	e.as(t, "alice", "POST", configsPath, `{"name":"x","run_at":"0 9 * * *","operation":"cckm_rotation","cckm_synchronization_params":{"synchronize_all":true}}`).
		wantError(t, http.StatusUnprocessableEntity, "NCERRUnprocessableEntity", "operation")
	e.as(t, "alice", "POST", configsPath, `{"name":"x","run_at":"0 9 * * *","cckm_synchronization_params":{"synchronize_all":true,"key_vaults":["a"]}}`).
		wantError(t, http.StatusBadRequest, "NCERRInvalidParamValue", "mutually exclusive")
	e.as(t, "alice", "POST", configsPath, `{"name":"x","run_at":"0 9 * * *","bogus":1}`).
		wantError(t, http.StatusBadRequest, "NCERRInvalidParamValue", "bogus")
	e.as(t, "oscar", "POST", configsPath, good).wantError(t, http.StatusForbidden, "NCERRForbidden", "schedules:write")

	var page httpapi.Page[schedule.JobConfig]
	r = e.as(t, "victor", "GET", configsPath+"?limit=5", "")
	r.wantStatus(t, http.StatusOK)
	r.decode(t, &page)
	if page.Total != 1 || len(page.Resources) != 1 || page.Resources[0].ID != c.ID || page.Limit != 5 {
		t.Fatalf("list %+v (refused creates must store nothing)", page)
	}
	r = e.as(t, "victor", "GET", configsPath+"?disabled=true&operation=cckm_synchronization", "")
	r.decode(t, &page)
	if page.Total != 0 {
		t.Fatalf("disabled list %+v", page)
	}
	e.as(t, "victor", "GET", configsPath+"?colour=red", "").wantError(t, http.StatusBadRequest, "NCERRInvalidParamValue", "colour")

	r = e.as(t, "alice", "PATCH", configsPath+"/"+c.ID, `{"disabled":true,"end_date":"2031-01-01T00:00:00Z"}`)
	r.wantStatus(t, http.StatusOK)
	var up schedule.JobConfig
	r.decode(t, &up)
	if !up.Disabled || up.EndDate == nil || up.Name != "weekly" || !up.UpdatedAt.After(c.UpdatedAt) && !up.UpdatedAt.Equal(c.UpdatedAt) {
		t.Fatalf("patched %+v", up)
	}
	e.as(t, "alice", "PATCH", configsPath+"/"+c.ID, `{"end_date":"2029-01-01T00:00:00Z"}`).
		wantError(t, http.StatusBadRequest, "NCERRInvalidParamValue", "end_date")
	e.as(t, "victor", "PATCH", configsPath+"/"+c.ID, `{"disabled":false}`).wantStatus(t, http.StatusForbidden)
	r = e.as(t, "oscar", "GET", configsPath+"/"+c.ID, "")
	r.wantStatus(t, http.StatusOK)
	r.decode(t, &up)
	if !up.Disabled {
		t.Fatalf("get after patch %+v", up)
	}
	e.as(t, "alice", "DELETE", configsPath+"/"+c.ID, "").wantStatus(t, http.StatusNoContent)
	e.as(t, "alice", "GET", configsPath+"/"+c.ID, "").wantError(t, http.StatusNotFound, "NCERRResourceNotFound", "")
	e.as(t, "alice", "DELETE", configsPath+"/"+c.ID, "").wantStatus(t, http.StatusNotFound)
}

// TestJobsByConfigID: a job a config started carries job_config_id, and
// the jobs list filters on it.
func TestJobsByConfigID(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.runInventory(t)
	vs := e.addVaults(t, testSub, "vault-a", "vault-b")
	cfgID := events.NewID()
	ctx := testCtx(t)
	d, err := e.plane.Jobs.CreateScheduled(ctx, control.CreateJobRequest{KeyVaults: []string{vs[0].ID}}, cfgID, events.NewID())
	if err != nil {
		t.Fatal(err)
	}
	r := e.as(t, "alice", "POST", jobsPath, `{"key_vaults":["vault-b"]}`)
	r.wantStatus(t, http.StatusCreated)
	natstest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		var page httpapi.Page[httpapi.JobJSON]
		e.as(t, "victor", "GET", jobsPath+"?job_config_id="+cfgID, "").decode(t, &page)
		if page.Total != 1 || page.Resources[0].ID != d.ID || page.Resources[0].JobConfigID != cfgID {
			return fmt.Errorf("list by config: %+v", page)
		}
		return nil
	})
	var j httpapi.JobJSON
	e.as(t, "victor", "GET", jobsPath+"/"+d.ID, "").decode(t, &j)
	if j.JobConfigID != cfgID {
		t.Fatalf("job %+v", j)
	}
}
