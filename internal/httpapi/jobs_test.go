package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/akvsync/akvsync/internal/httpapi"
	"github.com/akvsync/akvsync/pkg/events"
)

var timeRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$`)

func TestCreateJob(t *testing.T) {
	t.Parallel()
	e := setup(t)
	vs := e.addVaults(t, testSub, "vault-a", "vault-b")
	r := e.as(t, "oscar", "POST", jobsPath, fmt.Sprintf(`{"key_vaults":["vault-b",%q]}`, vs[0].ID))
	r.wantStatus(t, http.StatusCreated)

	var raw map[string]any
	r.decode(t, &raw)
	for _, f := range []string{"id", "uri", "account", "application", "devAccount", "createdAt", "updatedAt", "overall_status", "detailed_status", "cloud", "key_vaults", "abort", "synchronize_all"} {
		if _, ok := raw[f]; !ok {
			t.Errorf("job JSON lacks %q: %s", f, r.body)
		}
	}
	if _, ok := raw["completed_at"]; ok {
		t.Errorf("an in-progress job has completed_at: %s", r.body)
	}
	var job httpapi.JobJSON
	r.decode(t, &job)
	wantVaults := []string{"vault-a::" + testSub, "vault-b::" + testSub}
	switch {
	case job.URI != "kylo:kylo:cckm:synchronize:"+job.ID, job.Account != "kylo:kylo:admin:accounts:kylo":
		t.Errorf("uri %q account %q", job.URI, job.Account)
	case job.OverallStatus != "in_progress" || job.Abort || job.SynchronizeAll || job.Cloud != "AzureCloud":
		t.Errorf("job = %+v", job)
	case strings.Join(job.KeyVaults, ",") != strings.Join(wantVaults, ","):
		t.Errorf("key_vaults = %v, want %v", job.KeyVaults, wantVaults)
	case job.DetailedStatus[wantVaults[0]] != "pending" || len(job.DetailedStatus) != 2:
		t.Errorf("detailed_status = %v", job.DetailedStatus)
	case !timeRE.MatchString(job.CreatedAt) || !timeRE.MatchString(job.UpdatedAt):
		t.Errorf("timestamps %q %q", job.CreatedAt, job.UpdatedAt)
	}
	if loc := r.header.Get("Location"); loc != jobsPath+"/"+job.ID {
		t.Errorf("Location %q", loc)
	}
	if got := e.state(t); got != (state{jobs: 1, locks: 2, requests: 1}) {
		t.Errorf("state %+v, want 1 job, 2 locks, 1 request", got)
	}
	// The record is stored with its creator.
	rec, err := e.plane.Jobs.Get(testCtx(t), job.ID)
	if err != nil || rec.CreatedBy != "oscar" {
		t.Errorf("record %+v, %v", rec, err)
	}

	// GET returns the same job.
	g := e.as(t, "victor", "GET", jobsPath+"/"+job.ID, "")
	g.wantStatus(t, http.StatusOK)
	var got httpapi.JobJSON
	g.decode(t, &got)
	if got.ID != job.ID || got.CreatedAt != job.CreatedAt || strings.Join(got.KeyVaults, ",") != strings.Join(job.KeyVaults, ",") {
		t.Errorf("GET = %+v, want %+v", got, job)
	}
	// With a trailing slash too.
	e.as(t, "victor", "GET", jobsPath+"/"+job.ID+"/", "").wantStatus(t, http.StatusOK)
}

func TestCreateJobSynchronizeAll(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.as(t, "oscar", "POST", jobsPath, `{"synchronize_all":true}`).
		wantError(t, http.StatusUnprocessableEntity, "NCERRUnprocessableEntity", "no vaults are registered")
	if got := e.state(t); got != (state{}) {
		t.Errorf("state %+v after a refused job", got)
	}
	e.addVaults(t, testSub, "vault-a", "vault-b")
	e.addVaults(t, otherSub, "vault-a")
	r := e.as(t, "oscar", "POST", jobsPath+"/", `{"synchronize_all":true,"take_cloud_key_backup":false}`)
	r.wantStatus(t, http.StatusCreated)
	var job httpapi.JobJSON
	r.decode(t, &job)
	if !job.SynchronizeAll || len(job.KeyVaults) != 3 {
		t.Errorf("job = %+v", job)
	}
}

func TestCreateJobRejects(t *testing.T) {
	t.Parallel()
	const bad = "NCERRInvalidParamValue"
	tests := []struct {
		name     string
		body     string
		status   int
		codeDesc string
		msg      string
	}{
		{"both", `{"key_vaults":["vault-a"],"synchronize_all":true}`, 400, bad, "key_vaults and synchronize_all are mutually exclusive"},
		{"both with empty list", `{"key_vaults":[],"synchronize_all":true}`, 400, bad, "mutually exclusive"},
		{"neither", `{}`, 400, bad, "one of key_vaults or synchronize_all is required"},
		{"synchronize_all false alone", `{"synchronize_all":false}`, 400, bad, "one of key_vaults or synchronize_all is required"},
		{"null key_vaults", `{"key_vaults":null}`, 400, bad, "one of key_vaults or synchronize_all is required"},
		{"empty list", `{"key_vaults":[]}`, 400, bad, "key_vaults must not be empty"},
		{"empty name", `{"key_vaults":[""]}`, 400, bad, "key_vaults[0] is empty"},
		{"unknown vault", `{"key_vaults":["vault-a","ghost"]}`, 400, bad, `key_vaults[1]: vault "ghost" is not registered`},
		{"unknown vault id", `{"key_vaults":["` + events.NewID() + `"]}`, 400, bad, "is not registered"},
		{"duplicate", `{"key_vaults":["vault-a","vault-a"]}`, 400, bad, "duplicates key_vaults[0]"},
		{"same vault two ways", `{"key_vaults":["vault-a","vault-a::` + testSub + `"]}`, 400, bad, "name the same vault vault-a::" + testSub},
		{"ambiguous name", `{"key_vaults":["shared"]}`, 400, bad, "ambiguous"},
		{"unknown field", `{"key_vaults":["vault-a"],"vaults":["x"]}`, 400, bad, `unknown field "vaults"`},
		{"key_vaults not an array", `{"key_vaults":"vault-a"}`, 400, bad, "key_vaults must be an array of strings"},
		{"key_vaults of numbers", `{"key_vaults":[1]}`, 400, bad, "key_vaults"},
		{"synchronize_all a string", `{"synchronize_all":"true"}`, 400, bad, "synchronize_all must be a boolean"},
		{"backup a string", `{"key_vaults":["vault-a"],"take_cloud_key_backup":"yes"}`, 400, bad, "take_cloud_key_backup must be a boolean"},
		{"not an object", `["vault-a"]`, 400, bad, "must be a JSON object"},
		{"not JSON", `key_vaults=vault-a`, 400, bad, "not valid JSON"},
		{"truncated", `{"key_vaults":["vault-a"`, 400, bad, "truncated"},
		{"two objects", `{"synchronize_all":true}{"synchronize_all":true}`, 400, bad, "single JSON object"},
		{"empty body", ``, 400, bad, "request body is required"},
		{"backup requested", `{"key_vaults":["vault-a"],"take_cloud_key_backup":true}`, 422, "NCERRUnprocessableEntity", "take_cloud_key_backup is not supported"},
		{"too large", `{"key_vaults":["` + strings.Repeat("a", 5000) + `"]}`, 413, "NCERRRequestTooLarge", "the limit is 4096 bytes"},
	}
	e := setup(t, func(o *options) { o.http.MaxBodyBytes = 4096 })
	e.addVaults(t, testSub, "vault-a", "shared")
	e.addVaults(t, otherSub, "shared")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.as(t, "oscar", "POST", jobsPath, tt.body)
			r.wantError(t, tt.status, tt.codeDesc, tt.msg)
			if got := e.state(t); got != (state{}) {
				t.Errorf("state %+v after a refused job, want nothing", got)
			}
		})
	}
}

func TestCreateJobOnLockedVaultConflicts(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.addVaults(t, testSub, "vault-a", "vault-b")
	first := e.as(t, "oscar", "POST", jobsPath, `{"key_vaults":["vault-b"]}`)
	first.wantStatus(t, http.StatusCreated)
	var job httpapi.JobJSON
	first.decode(t, &job)
	before := e.state(t)

	r := e.as(t, "oscar", "POST", jobsPath, `{"key_vaults":["vault-a","vault-b"]}`)
	r.wantError(t, http.StatusConflict, "NCERRConflict", "vault vault-b::"+testSub+" is being synchronized by job "+job.ID)
	if got := e.state(t); got != before {
		t.Errorf("state %+v, want unchanged %+v", got, before)
	}
	r = e.as(t, "oscar", "POST", jobsPath, `{"synchronize_all":true}`)
	r.wantError(t, http.StatusConflict, "NCERRConflict", job.ID)
	if got := e.state(t); got != before {
		t.Errorf("state %+v, want unchanged %+v", got, before)
	}
}

func TestCancelJob(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.addVaults(t, testSub, "vault-a")
	r := e.as(t, "oscar", "POST", jobsPath, `{"key_vaults":["vault-a"]}`)
	r.wantStatus(t, http.StatusCreated)
	var job httpapi.JobJSON
	r.decode(t, &job)

	c := e.as(t, "oscar", "POST", jobsPath+"/"+job.ID+"/cancel", "")
	c.wantStatus(t, http.StatusOK)
	var cancelled httpapi.JobJSON
	c.decode(t, &cancelled)
	if !cancelled.Abort || cancelled.OverallStatus != "in_progress" {
		t.Errorf("cancelled job = %+v", cancelled)
	}
	rec, err := e.plane.Jobs.Get(testCtx(t), job.ID)
	if err != nil || !rec.Abort {
		t.Errorf("record abort = %v, %v", rec.Abort, err)
	}
	// The abort event is in the events stream.
	s, err := e.js.Stream(testCtx(t), events.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(testCtx(t), events.JobEventSubject(job.ID, events.KindJobAbortRequested))
	if err != nil {
		t.Fatalf("no abort event: %v", err)
	}
	var data events.Job
	if ev, err := events.DecodeEvent(m.Data, &data); err != nil || data.ID != job.ID || !data.Abort || ev.Subject != job.ID {
		t.Errorf("abort event %+v, %v", data, err)
	}
	// Trailing slash, and cancelling again, are fine.
	e.as(t, "oscar", "POST", jobsPath+"/"+job.ID+"/cancel/", "").wantStatus(t, http.StatusOK)
}

func TestCancelJobNotInProgress(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.addVaults(t, testSub, "vault-a")
	r := e.as(t, "oscar", "POST", jobsPath, `{"key_vaults":["vault-a"]}`)
	r.wantStatus(t, http.StatusCreated)
	var job httpapi.JobJSON
	r.decode(t, &job)
	finishJob(t, e, job.ID)

	e.as(t, "oscar", "POST", jobsPath+"/"+job.ID+"/cancel", "").
		wantError(t, http.StatusConflict, "NCERRConflict", "job "+job.ID+" is completed; only an in_progress job can be cancelled")
	g := e.as(t, "victor", "GET", jobsPath+"/"+job.ID, "")
	var got httpapi.JobJSON
	g.decode(t, &got)
	if got.Abort || got.OverallStatus != "completed" || !timeRE.MatchString(got.CompletedAt) {
		t.Errorf("finished job = %+v", got)
	}
}

// finishJob completes a job's record as the job tracker would.
func finishJob(t *testing.T, e *env, id string) {
	t.Helper()
	kv, err := e.js.KeyValue(testCtx(t), events.BucketJobs)
	if err != nil {
		t.Fatal(err)
	}
	entry, err := kv.Get(testCtx(t), id)
	if err != nil {
		t.Fatal(err)
	}
	var rec events.Job
	if err := json.Unmarshal(entry.Value(), &rec); err != nil {
		t.Fatal(err)
	}
	done := time.Now().UTC()
	rec.OverallStatus, rec.CompletedAt = events.JobCompleted, &done
	b, _ := json.Marshal(rec)
	if _, err := kv.Update(testCtx(t), id, b, entry.Revision()); err != nil {
		t.Fatal(err)
	}
}

func TestJobNotFound(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for _, id := range []string{events.NewID(), "not-a-uuid", "x.y", "%2A"} {
		t.Run(id, func(t *testing.T) {
			e.as(t, "victor", "GET", jobsPath+"/"+id, "").wantError(t, http.StatusNotFound, "NCERRResourceNotFound", "Resource not found")
			e.as(t, "oscar", "POST", jobsPath+"/"+id+"/cancel", "").wantError(t, http.StatusNotFound, "NCERRResourceNotFound", "Resource not found")
		})
	}
}

func TestListJobsWithoutWorkersIsUnavailable(t *testing.T) {
	t.Parallel()
	e := setup(t)
	r := e.as(t, "victor", "GET", jobsPath+"?skip=0&limit=5&overall_status=in_progress", "")
	r.wantError(t, http.StatusServiceUnavailable, "NCERRServiceUnavailable", "no worker is answering")
	if r.header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	e.as(t, "victor", "GET", jobsPath+"?overall_status=cancelled", "").
		wantError(t, http.StatusBadRequest, "NCERRInvalidParamValue", "overall_status")
}
