package control_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/akvsync/akvsync/internal/control"
	"github.com/akvsync/akvsync/pkg/events"
	"github.com/akvsync/akvsync/pkg/jobs"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// requests returns every sync-requested event in AKVSYNC_REQUESTS.
func (e *env) requests(t *testing.T) []jetstream.RawStreamMsg {
	t.Helper()
	s, err := e.js.Stream(testCtx(t), events.StreamRequests)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	var out []jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(testCtx(t), seq)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, *m)
	}
	return out
}

// jobRecord reads a job from the jobs bucket.
func (e *env) jobRecord(t *testing.T, id string) events.Job {
	t.Helper()
	raw := e.get(t, events.BucketJobs, id)
	if raw == "" {
		t.Fatalf("job %s not in the jobs bucket", id)
	}
	var j events.Job
	if err := json.Unmarshal([]byte(raw), &j); err != nil {
		t.Fatal(err)
	}
	return j
}

// headers lists the job headers in the jobs bucket (keys without a dot:
// plan chunks and vault records are "<job>.plan.N", "<job>.vault.V").
func (e *env) headers(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, k := range e.keys(t, events.BucketJobs) {
		if !strings.Contains(k, ".") {
			out = append(out, k)
		}
	}
	return out
}

// assertUntouched checks there is no job, lock or sync request.
func (e *env) assertUntouched(t *testing.T) {
	t.Helper()
	if keys := e.keys(t, events.BucketJobs); len(keys) != 0 {
		t.Errorf("jobs bucket has %v", keys)
	}
	if keys := e.keys(t, events.BucketLocks); len(keys) != 0 {
		t.Errorf("locks bucket has %v", keys)
	}
	if n := e.streamMsgs(t, events.StreamRequests); n != 0 {
		t.Errorf("%s has %d messages", events.StreamRequests, n)
	}
}

func TestCreateJob(t *testing.T) {
	t.Parallel()
	e := setup(t)
	vs := e.addVaults(t, testSub, "vault-b", "vault-a")
	job, err := e.plane.Jobs.Create(testCtx(t), control.CreateJobRequest{KeyVaults: []string{"vault-b::" + testSub, vs[1].ID}}, "oscar")
	if err != nil {
		t.Fatal(err)
	}
	if !control.IsID(job.ID) || job.OverallStatus != events.JobInProgress || job.Abort || job.CreatedBy != "oscar" {
		t.Errorf("job = %+v", job)
	}
	if job.CreatedAt.Location() != time.UTC || !job.CreatedAt.Equal(job.UpdatedAt) {
		t.Errorf("timestamps %v / %v, want equal UTC", job.CreatedAt, job.UpdatedAt)
	}
	var got []string
	for _, v := range job.Vaults {
		got = append(got, v.QualifiedName())
	}
	if strings.Join(got, ",") != "vault-a::"+testSub+",vault-b::"+testSub || job.VaultTotal != 2 || job.VaultsTruncated {
		t.Errorf("key vaults = %v (total %d), want sorted", got, job.VaultTotal)
	}
	if job.Progress.Pending != 2 {
		t.Errorf("progress %+v, want 2 pending", job.Progress)
	}
	for _, v := range job.Vaults {
		if v.Status != events.VaultPending {
			t.Errorf("vault %s is %s, want pending", v.Name, v.Status)
		}
	}
	rec := e.jobRecord(t, job.ID)
	if rec.ID != job.ID || rec.VaultTotal != 2 || rec.PlanChunks != 1 || !rec.CreatedAt.Equal(job.CreatedAt) {
		t.Errorf("stored job = %+v", rec)
	}
	for _, v := range vs {
		if got := e.get(t, events.BucketLocks, v.ID); got != job.ID {
			t.Errorf("lock of %s = %q, want %q", v.Name, got, job.ID)
		}
	}
	msgs := e.requests(t)
	if len(msgs) != 1 {
		t.Fatalf("%d sync requests, want 1", len(msgs))
	}
	m := msgs[0]
	if m.Subject != events.SyncRequestedSubject(job.ID) || m.Header.Get(jetstream.MsgIDHeader) != job.ID {
		t.Errorf("message subject %q msg-id %q", m.Subject, m.Header.Get(jetstream.MsgIDHeader))
	}
	var sr events.SyncRequested
	ev, err := events.DecodeEvent(m.Data, &sr)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Type != "io.akvsync.sync.requested" || ev.Subject != job.ID || sr.Job.ID != job.ID || sr.Job.VaultTotal != 2 {
		t.Errorf("event %+v data %+v", ev, sr)
	}
	// No worker answers here: a small job's detail comes from its records.
	d, err := e.plane.Jobs.Get(testCtx(t), job.ID)
	if err != nil || d.ID != job.ID || d.DetailUnavailable || len(d.Vaults) != 2 || d.Progress.Pending != 2 {
		t.Errorf("Get = %+v, %v", d, err)
	}
}

func TestCreateJobSynchronizeAll(t *testing.T) {
	t.Parallel()
	e := setup(t)
	_, err := e.plane.Jobs.Create(testCtx(t), control.CreateJobRequest{SynchronizeAll: true}, "")
	wantErr(t, err, control.ErrUnprocessable)
	e.assertUntouched(t)

	e.addVaults(t, testSub, "vault-a", "vault-b")
	e.addVaults(t, otherSub, "vault-a")
	job, err := e.plane.Jobs.Create(testCtx(t), control.CreateJobRequest{SynchronizeAll: true}, "")
	if err != nil {
		t.Fatal(err)
	}
	if job.VaultTotal != 3 || len(job.Vaults) != 3 || !job.SynchronizeAll {
		t.Errorf("job = %+v, want 3 vaults", job)
	}
	if n := len(e.keys(t, events.BucketLocks)); n != 3 {
		t.Errorf("%d locks, want 3", n)
	}
}

func TestCreateJobRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		req     control.CreateJobRequest
		want    error
		wantMsg string
	}{
		{"both", control.CreateJobRequest{KeyVaults: []string{"vault-a"}, SynchronizeAll: true}, control.ErrInvalid, "key_vaults and synchronize_all are mutually exclusive"},
		{"neither", control.CreateJobRequest{}, control.ErrInvalid, "one of key_vaults or synchronize_all is required"},
		{"empty list", control.CreateJobRequest{KeyVaults: []string{}}, control.ErrInvalid, "key_vaults must not be empty"},
		{"empty name", control.CreateJobRequest{KeyVaults: []string{" "}}, control.ErrInvalid, "key_vaults[0] is empty"},
		{"unknown vault", control.CreateJobRequest{KeyVaults: []string{"vault-a", "ghost"}}, control.ErrInvalid, `vault "ghost" is not registered`},
		{"duplicate", control.CreateJobRequest{KeyVaults: []string{"vault-a", "VAULT-A"}}, control.ErrInvalid, "duplicates key_vaults[0]"},
		{"same vault two ways", control.CreateJobRequest{KeyVaults: []string{"vault-a", "vault-a::" + testSub}}, control.ErrInvalid, "name the same vault"},
		{"ambiguous", control.CreateJobRequest{KeyVaults: []string{"shared"}}, control.ErrInvalid, "ambiguous"},
		{"backup", control.CreateJobRequest{KeyVaults: []string{"vault-a"}, TakeCloudKeyBackup: true}, control.ErrUnprocessable, "take_cloud_key_backup is not supported"},
	}
	e := setup(t)
	e.addVaults(t, testSub, "vault-a", "shared")
	e.addVaults(t, otherSub, "shared")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.plane.Jobs.Create(testCtx(t), tt.req, "")
			wantErr(t, err, tt.want)
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not contain %q", err, tt.wantMsg)
			}
			e.assertUntouched(t)
		})
	}
}

func TestCreateJobTooManyVaults(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *control.Config) { c.MaxJobVaults = 2 })
	e.addVaults(t, testSub, "vault-a", "vault-b", "vault-c")
	_, err := e.plane.Jobs.Create(testCtx(t), control.CreateJobRequest{KeyVaults: []string{"vault-a", "vault-b", "vault-c"}}, "")
	wantErr(t, err, control.ErrInvalid)
	_, err = e.plane.Jobs.Create(testCtx(t), control.CreateJobRequest{SynchronizeAll: true}, "")
	wantErr(t, err, control.ErrUnprocessable)
	e.assertUntouched(t)
}

func TestCreateJobConflictReleasesLocks(t *testing.T) {
	t.Parallel()
	e := setup(t)
	vs := e.addVaults(t, testSub, "vault-a", "vault-b", "vault-c")
	first, err := e.plane.Jobs.Create(testCtx(t), control.CreateJobRequest{KeyVaults: []string{"vault-b"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.plane.Jobs.Create(testCtx(t), control.CreateJobRequest{KeyVaults: []string{"vault-a", "vault-b", "vault-c"}}, "")
	var ce *control.ConflictError
	if !errors.As(err, &ce) || ce.JobID != first.ID || ce.Vault != "vault-b::"+testSub {
		t.Fatalf("error = %v, want a conflict on vault-b naming %s", err, first.ID)
	}
	want := "vault vault-b::" + testSub + " is being synchronized by job " + first.ID
	if err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
	if keys := e.keys(t, events.BucketLocks); len(keys) != 1 || keys[0] != vs[1].ID {
		t.Errorf("locks = %v, want only vault-b's", keys)
	}
	if keys := e.headers(t); len(keys) != 1 {
		t.Errorf("jobs = %v, want only the first", keys)
	}
	if n := e.streamMsgs(t, events.StreamRequests); n != 1 {
		t.Errorf("%d sync requests, want 1", n)
	}
	// The other vaults are free.
	if _, err := e.plane.Jobs.Create(testCtx(t), control.CreateJobRequest{KeyVaults: []string{"vault-a", "vault-c"}}, ""); err != nil {
		t.Errorf("job on the free vaults: %v", err)
	}
}

// Not parallel: the creators take their vaults' locks in request order, so
// racers naming the vaults in opposite orders can all lose (each holds one
// lock the other needs); the more the scheduler interleaves them, the
// likelier that is (seen with this test among parallel ones).
func TestCreateJobConcurrentOneWinsPerVault(t *testing.T) {
	e := setup(t)
	e.addVaults(t, testSub, "vault-a", "vault-b")
	planes := []*control.Plane{e.plane, e.newPlane(t)}
	const racers = 6
	errs := make([]error, racers)
	var wg sync.WaitGroup
	for i := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			refs := []string{"vault-a", "vault-b"}
			if i%2 == 1 {
				refs = []string{"vault-b", "vault-a"}
			}
			_, errs[i] = planes[i%2].Jobs.Create(testCtx(t), control.CreateJobRequest{KeyVaults: refs}, "")
		}()
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		if err == nil {
			wins++
		} else if !errors.Is(err, control.ErrConflict) {
			t.Errorf("unexpected error %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d jobs created, want 1: %v", wins, errs)
	}
	if n := len(e.headers(t)); n != 1 {
		t.Errorf("%d job records, want 1", n)
	}
	if n := e.streamMsgs(t, events.StreamRequests); n != 1 {
		t.Errorf("%d sync requests, want 1", n)
	}
}

func TestCreateJobPublishFailureUndoes(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.addVaults(t, testSub, "vault-a")
	if err := e.js.DeleteStream(testCtx(t), events.StreamRequests); err != nil {
		t.Fatal(err)
	}
	_, err := e.plane.Jobs.Create(testCtx(t), control.CreateJobRequest{KeyVaults: []string{"vault-a"}}, "")
	wantErr(t, err, control.ErrUnavailable)
	if keys := e.keys(t, events.BucketJobs); len(keys) != 0 {
		t.Errorf("job left behind: %v", keys)
	}
	if keys := e.keys(t, events.BucketLocks); len(keys) != 0 {
		t.Errorf("locks left behind: %v", keys)
	}
}

func TestCreateJobCancelledContextUndoes(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.addVaults(t, testSub, "vault-a")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := e.plane.Jobs.Create(ctx, control.CreateJobRequest{KeyVaults: []string{"vault-a"}}, "")
	if err == nil {
		t.Fatal("Create with a cancelled context succeeded")
	}
	e.assertUntouched(t)
}

func TestCancelJob(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.addVaults(t, testSub, "vault-a")
	job, err := e.plane.Jobs.Create(testCtx(t), control.CreateJobRequest{KeyVaults: []string{"vault-a"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	sub, err := e.nc.SubscribeSync(events.JobEventSubject(job.ID, events.KindJobAbortRequested))
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.plane.Jobs.Cancel(testCtx(t), job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Abort || got.OverallStatus != events.JobInProgress || !got.UpdatedAt.After(job.UpdatedAt) && !got.UpdatedAt.Equal(job.UpdatedAt) {
		t.Errorf("cancelled job = %+v", got)
	}
	if rec := e.jobRecord(t, job.ID); !rec.Abort {
		t.Error("abort not stored")
	}
	msg, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("no abort event: %v", err)
	}
	var data events.Job
	ev, err := events.DecodeEvent(msg.Data, &data)
	if err != nil || ev.Type != "io.akvsync.job.abort_requested" || data.ID != job.ID || !data.Abort {
		t.Errorf("event %+v data %+v err %v", ev, data, err)
	}
	// Cancelling again is harmless.
	if again, err := e.plane.Jobs.Cancel(testCtx(t), job.ID); err != nil || !again.Abort {
		t.Errorf("second cancel = %+v, %v", again, err)
	}
}

func TestCancelFinishedJobConflicts(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.addVaults(t, testSub, "vault-a")
	job, err := e.plane.Jobs.Create(testCtx(t), control.CreateJobRequest{KeyVaults: []string{"vault-a"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	// A worker finishes the job.
	kv, _ := e.js.KeyValue(testCtx(t), events.BucketJobs)
	entry, _ := kv.Get(testCtx(t), job.ID)
	rec := e.jobRecord(t, job.ID)
	done := time.Now().UTC()
	rec.OverallStatus, rec.CompletedAt = events.JobCompleted, &done
	data, _ := json.Marshal(rec)
	if _, err := kv.Update(testCtx(t), job.ID, data, entry.Revision()); err != nil {
		t.Fatal(err)
	}
	_, err = e.plane.Jobs.Cancel(testCtx(t), job.ID)
	wantErr(t, err, control.ErrConflict)
	if want := "job " + job.ID + " is completed; only an in_progress job can be cancelled"; err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
	if e.jobRecord(t, job.ID).Abort {
		t.Error("a completed job was marked aborted")
	}
	_, err = e.plane.Jobs.Cancel(testCtx(t), events.NewID())
	wantErr(t, err, control.ErrNotFound)
}

func TestCancelRetriesOnConcurrentUpdates(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.addVaults(t, testSub, "vault-a")
	job, err := e.plane.Jobs.Create(testCtx(t), control.CreateJobRequest{KeyVaults: []string{"vault-a"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	kv, _ := e.js.KeyValue(testCtx(t), events.BucketJobs)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // a busy worker updating progress with CAS
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			entry, err := kv.Get(context.Background(), job.ID)
			if err != nil {
				return
			}
			var rec events.Job
			_ = json.Unmarshal(entry.Value(), &rec)
			rec.UpdatedAt = time.Unix(int64(i), 0).UTC()
			data, _ := json.Marshal(rec)
			_, _ = kv.Update(context.Background(), job.ID, data, entry.Revision())
		}
	}()
	got, err := e.plane.Jobs.Cancel(testCtx(t), job.ID)
	close(stop)
	<-done
	if err != nil {
		t.Fatal(err)
	}
	if !got.Abort || !e.jobRecord(t, job.ID).Abort {
		t.Error("abort lost under concurrent updates")
	}
}

// TestCreateJobAtScale: a synchronize_all job over thousands of vaults
// writes records whose size does not depend on the job's: a small header
// and sync-requested event, and bounded plan chunks.
func TestCreateJobAtScale(t *testing.T) {
	t.Parallel()
	e := setup(t)
	const n = 5000
	for start := 0; start < n; start += 1000 {
		names := make([]string, 1000)
		for i := range names {
			names[i] = fmt.Sprintf("kv-%05d", start+i)
		}
		e.addVaults(t, testSub, names...)
	}
	job, err := e.plane.Jobs.Create(testCtx(t), control.CreateJobRequest{SynchronizeAll: true}, "")
	if err != nil {
		t.Fatal(err)
	}
	if job.VaultTotal != n || len(job.Vaults) != events.GetDetailVaults || !job.VaultsTruncated {
		t.Fatalf("total %d, %d vaults in the reply, truncated %v", job.VaultTotal, len(job.Vaults), job.VaultsTruncated)
	}
	if got := len(e.keys(t, events.BucketLocks)); got != n {
		t.Fatalf("%d locks, want %d", got, n)
	}
	if raw := e.get(t, events.BucketJobs, job.ID); len(raw) > 512 {
		t.Errorf("header is %d bytes", len(raw))
	}
	for _, m := range e.requests(t) {
		if len(m.Data) > 2048 {
			t.Errorf("sync-requested event is %d bytes", len(m.Data))
		}
	}
	for _, k := range e.keys(t, events.BucketJobs) {
		if raw := e.get(t, events.BucketJobs, k); len(raw) > jobs.DefaultPlanChunkBytes+1024 {
			t.Errorf("%s is %d bytes", k, len(raw))
		}
	}
}

// TestGetFinishedJobBehindInventory: the worker that answers a job's
// detail query has not yet applied the job's last vault records (its
// inventory lags, e.g. after a NATS node loss) while the header already
// says completed. Get must not show a completed job with running vaults:
// a small job's detail is read from its records instead.
func TestGetFinishedJobBehindInventory(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.addVaults(t, testSub, "vault-a", "vault-b")
	job, err := e.plane.Jobs.Create(testCtx(t), control.CreateJobRequest{KeyVaults: []string{"vault-a", "vault-b"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	jobsKV, _ := events.Bucket(testCtx(t), e.js, events.BucketJobs)
	locks, _ := events.Bucket(testCtx(t), e.js, events.BucketLocks)
	st, err := jobs.New(e.js, jobsKV, locks, jobs.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range job.Vaults {
		if _, _, _, err := st.UpdateVault(testCtx(t), job.ID, v.VaultID, func(r *events.JobVault, _ bool) error {
			*r = v
			r.Status, r.Fetched = events.VaultCompleted, 3
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := st.Update(testCtx(t), job.ID, func(h *events.Job) error {
		h.OverallStatus = events.JobCompleted
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// The lagging worker: it answers with the job as it was first applied,
	// both vaults still running.
	stale := events.JobDetail{Job: job.Job, Vaults: job.Vaults, Progress: events.JobProgress{Running: 2}}
	for i := range stale.Vaults {
		stale.Vaults[i].Status = events.VaultRunning
	}
	sub, err := e.nc.Subscribe(events.QuerySubject(events.QueryJobsGet), func(m *nats.Msg) {
		b, _ := json.Marshal(events.QueryReply[events.JobDetail]{Data: &stale})
		_ = m.Respond(b)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	d, err := e.plane.Jobs.Get(testCtx(t), job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d.OverallStatus != events.JobCompleted || d.DetailUnavailable || d.Progress.Completed != 2 || d.Progress.Fetched != 6 {
		t.Errorf("Get = status %s unavailable %v progress %+v, want completed with 2 completed vaults", d.OverallStatus, d.DetailUnavailable, d.Progress)
	}
	for _, v := range d.Vaults {
		if v.Status != events.VaultCompleted {
			t.Errorf("vault %s is %s in a completed job", v.Name, v.Status)
		}
	}
}
