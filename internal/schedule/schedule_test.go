package schedule

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/akvsync/akvsync/internal/control"
	"github.com/akvsync/akvsync/internal/natstest"
	"github.com/akvsync/akvsync/pkg/events"
	"github.com/akvsync/akvsync/pkg/jobs"
)

const (
	testConn = "azure-conn"
	testSub  = "11111111-2222-3333-4444-555555555555"
	// everySecond and everyTwo are the seconds-resolution patterns tests
	// arm instead of a run_at's minute-resolution one.
	everySecond = "* * * * * *"
	everyTwo    = "*/2 * * * * *"
)

type env struct {
	js    jetstream.JetStream
	topo  events.Topology
	plane *control.Plane
	store *jobs.Store
	t     *testing.T
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// setup starts a JetStream server with the topology (schedule ack wait
// 1s), a control plane and one registered vault "vault-one".
func setup(t *testing.T) *env {
	t.Helper()
	srv := natstest.RunServer(t, natstest.Options{})
	return setupOn(t, srv.ClientURL(), 1)
}

// setupOn is setup on the servers at url, with replicas of everything.
func setupOn(t *testing.T, url string, replicas int) *env {
	t.Helper()
	nc, js := natstest.ConnectURL(t, url)
	ctx := testCtx(t)
	topo := events.Topology{Replicas: replicas, Storage: jetstream.MemoryStorage, ScheduleAckWait: time.Second}
	if err := topo.EnsureStreams(ctx, js); err != nil {
		t.Fatalf("topology: %v", err)
	}
	plane, err := control.New(ctx, nc, js, control.Config{Connections: []string{testConn}})
	if err != nil {
		t.Fatal(err)
	}
	req := control.AddVaultsRequest{Connection: testConn, SubscriptionID: testSub, Vaults: []control.AddVault{{
		Name: "vault-one", Location: "westeurope", Properties: control.VaultProperties{VaultURI: "https://vault-one.vault.azure.net/"},
	}}}
	if _, err := plane.Vaults.AddVaults(ctx, req); err != nil {
		t.Fatal(err)
	}
	jobsKV, _ := js.KeyValue(ctx, events.BucketJobs)
	locks, _ := js.KeyValue(ctx, events.BucketLocks)
	store, err := jobs.New(js, jobsKV, locks, jobs.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return &env{js: js, topo: topo, plane: plane, store: store, t: t}
}

// scheduler returns a replica's scheduler arming pattern instead of the
// run_at's.
func (e *env) scheduler(pattern string) *Scheduler {
	e.t.Helper()
	return e.schedulerOn(e.js, e.plane.Jobs, pattern)
}

// schedulerOn is scheduler over its own connection and control plane.
func (e *env) schedulerOn(js jetstream.JetStream, jobs *control.Jobs, pattern string) *Scheduler {
	e.t.Helper()
	s, err := New(testCtx(e.t), js, jobs, Config{
		ClaimLease: time.Second, CatchUpEvery: time.Hour,
		Pattern: func(string) string { return pattern },
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// run runs s as a replica until the returned cancel is called.
func (e *env) run(s *Scheduler) context.CancelFunc {
	e.t.Helper()
	ctx, cancel := context.WithCancel(testCtx(e.t))
	cons, err := e.topo.EnsureConsumer(ctx, s.js, events.StreamSchedules)
	if err != nil {
		e.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx, cons) }()
	e.t.Cleanup(func() { cancel(); <-done })
	return cancel
}

// watch collects the schedule events.
type watch struct {
	mu      sync.Mutex
	fired   []events.ScheduleEvent
	skipped []events.ScheduleEvent
}

func (e *env) watch(onFired func(events.ScheduleEvent)) *watch {
	w := &watch{}
	ctx := testCtx(e.t)
	cons, err := e.js.OrderedConsumer(ctx, events.StreamEvents, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"akvsync.event.schedule.>"},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		var d events.ScheduleEvent
		ev, err := events.DecodeEvent(m.Data(), &d)
		if err != nil {
			return
		}
		w.mu.Lock()
		if ev.Type == events.KindScheduleFired.Type(events.EventScopeSchedule) {
			w.fired = append(w.fired, d)
		} else {
			w.skipped = append(w.skipped, d)
		}
		w.mu.Unlock()
		if onFired != nil && ev.Type == events.KindScheduleFired.Type(events.EventScopeSchedule) {
			onFired(d)
		}
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(cc.Stop)
	return w
}

func (w *watch) counts() (fired, skipped int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.fired), len(w.skipped)
}

// jobsCreated is the number of jobs ever created (sync-requested events).
func (e *env) jobsCreated() uint64 {
	s, err := e.js.Stream(testCtx(e.t), events.StreamRequests)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := s.Info(testCtx(e.t))
	if err != nil {
		e.t.Fatal(err)
	}
	return info.State.Msgs
}

// finish ends a job as the workers would: completed, locks released.
func (e *env) finish(id string) {
	ctx := testCtx(e.t)
	job, _, err := e.store.Update(ctx, id, func(h *events.Job) error {
		h.OverallStatus = events.JobCompleted
		return nil
	})
	if err != nil {
		e.t.Errorf("finish %s: %v", id, err)
		return
	}
	_ = e.store.ReleaseJobLocks(ctx, job)
}

func ptr[T any](v T) *T { return &v }

func (e *env) create(s *Scheduler, mods ...func(*Request)) JobConfig {
	e.t.Helper()
	req := Request{Name: ptr("nightly-" + events.NewID()[:8]), RunAt: ptr("0 9 * * sat"),
		Params: &SyncParams{CloudName: CloudName, KeyVaults: []string{"vault-one"}}}
	for _, m := range mods {
		m(&req)
	}
	c, err := s.Create(testCtx(e.t), req)
	if err != nil {
		e.t.Fatalf("create: %v", err)
	}
	return c
}

func TestConfigsCRUD(t *testing.T) {
	t.Parallel()
	e := setup(t)
	s := e.scheduler(everySecond)
	ctx := testCtx(t)
	bad := []struct {
		req  Request
		want error
	}{
		{Request{Name: ptr("a"), RunAt: ptr("0 9 * *"), Params: &SyncParams{SynchronizeAll: true}}, control.ErrInvalid},
		{Request{Name: ptr("a"), RunAt: ptr("61 9 * * *"), Params: &SyncParams{SynchronizeAll: true}}, control.ErrInvalid},
		{Request{Name: ptr("a"), RunAt: ptr("@daily"), Params: &SyncParams{SynchronizeAll: true}}, control.ErrInvalid},
		{Request{Name: ptr("a"), RunAt: ptr("0 9 * * *"), Operation: ptr("cckm_rotation"), Params: &SyncParams{SynchronizeAll: true}}, control.ErrUnprocessable},
		{Request{Name: ptr("a"), RunAt: ptr("0 9 * * *"), Params: &SyncParams{SynchronizeAll: true, KeyVaults: []string{"vault-one"}}}, control.ErrInvalid},
		{Request{Name: ptr("a"), RunAt: ptr("0 9 * * *"), Params: &SyncParams{}}, control.ErrInvalid},
		{Request{Name: ptr("a"), RunAt: ptr("0 9 * * *"), Params: &SyncParams{CloudName: "AzureChinaCloud", SynchronizeAll: true}}, control.ErrUnprocessable},
		{Request{Name: ptr("a"), RunAt: ptr("0 9 * * *"), StartDate: ptr("2030-01-02T00:00:00Z"), EndDate: ptr("2030-01-01T00:00:00Z"), Params: &SyncParams{SynchronizeAll: true}}, control.ErrInvalid},
		{Request{Name: ptr("a"), RunAt: ptr("0 9 * * *"), StartDate: ptr("tomorrow"), Params: &SyncParams{SynchronizeAll: true}}, control.ErrInvalid},
	}
	for i, b := range bad {
		if _, err := s.Create(ctx, b.req); !errors.Is(err, b.want) {
			t.Errorf("bad[%d]: err = %v, want %v", i, err, b.want)
		}
	}
	if p, err := s.List(ctx, Query{Limit: -1}); err != nil || p.Total != 0 {
		t.Fatalf("after bad creates: %+v, %v (nothing may be half-created)", p, err)
	}
	c := e.create(s, func(r *Request) { r.Name = ptr("weekly"); r.Disabled = ptr(true) })
	if c.RunOn != RunOnAny || c.Operation != Operation || c.Params.CloudName != CloudName {
		t.Fatalf("defaults: %+v", c)
	}
	if _, err := s.Create(ctx, Request{Name: ptr("WEEKLY"), RunAt: ptr("0 9 * * *"), Params: &SyncParams{SynchronizeAll: true}}); !errors.Is(err, control.ErrConflict) {
		t.Fatalf("duplicate name: %v", err)
	}
	c2 := e.create(s, func(r *Request) { r.Name = ptr("daily") })
	p, err := s.List(ctx, Query{Limit: 10, Disabled: ptr(true)})
	if err != nil || p.Total != 1 || p.Resources[0].ID != c.ID {
		t.Fatalf("list disabled: %+v %v", p, err)
	}
	if p, _ := s.List(ctx, Query{Limit: 10, Name: "daily"}); p.Total != 1 || p.Resources[0].ID != c2.ID {
		t.Fatalf("list by name: %+v", p)
	}
	if p, _ := s.List(ctx, Query{Limit: 1}); p.Total != 2 || len(p.Resources) != 1 || p.Resources[0].ID != c2.ID {
		t.Fatalf("list page: %+v", p)
	}
	up, err := s.Update(ctx, c.ID, Request{Name: ptr("weekly-2"), EndDate: ptr("2031-01-01T00:00:00Z")})
	if err != nil || up.Name != "weekly-2" || up.EndDate == nil || up.RunAt != "0 9 * * sat" {
		t.Fatalf("patch: %+v %v", up, err)
	}
	if _, err := s.Update(ctx, c.ID, Request{Name: ptr("daily")}); !errors.Is(err, control.ErrConflict) {
		t.Fatalf("patch to a taken name: %v", err)
	}
	// The old name is free again.
	e.create(s, func(r *Request) { r.Name = ptr("weekly") })
	if err := s.Delete(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, c.ID); !errors.Is(err, control.ErrNotFound) {
		t.Fatalf("get deleted: %v", err)
	}
}

// TestOneJobPerTickAcrossReplicas: three replicas share the fires of an
// every-second schedule; each tick's job is finished as soon as it fired,
// so every tick starts one; the jobs created equal the ticks fired.
func TestOneJobPerTickAcrossReplicas(t *testing.T) {
	t.Parallel()
	e := setup(t)
	var reps []*Scheduler
	for range 3 {
		reps = append(reps, e.scheduler(everySecond))
	}
	w := e.watch(func(d events.ScheduleEvent) { e.finish(d.JobID) })
	c := e.create(reps[0])
	for _, s := range reps {
		e.run(s)
	}
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		if f, _ := w.counts(); f < 4 {
			return errors.New("fewer than 4 ticks fired")
		}
		return nil
	})
	if err := reps[1].Delete(testCtx(t), c.ID); err != nil {
		t.Fatal(err)
	}
	// In flight fires end (the config is gone): count once quiet.
	natstest.CheckFor(t, 10*time.Second, 100*time.Millisecond, func() error {
		w.mu.Lock()
		defer w.mu.Unlock()
		ticks := map[time.Time]string{}
		for _, f := range w.fired {
			if other, dup := ticks[f.Tick]; dup && other != f.JobID {
				t.Fatalf("tick %s fired jobs %s and %s", f.Tick, other, f.JobID)
			}
			ticks[f.Tick] = f.JobID
		}
		if n := e.jobsCreated(); n != uint64(len(ticks)) {
			return errors.New("jobs created differ from ticks fired")
		}
		return nil
	})
}

// TestSkipWhileRunning: the first tick's job never finishes (no worker), so
// the following ticks start nothing and say so.
func TestSkipWhileRunning(t *testing.T) {
	t.Parallel()
	e := setup(t)
	s := e.scheduler(everySecond)
	w := e.watch(nil)
	e.create(s)
	e.run(s)
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		if _, sk := w.counts(); sk < 2 {
			return errors.New("fewer than 2 skips")
		}
		return nil
	})
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.fired) != 1 || e.jobsCreated() != 1 || w.skipped[0].JobID != w.fired[0].JobID || w.skipped[0].Reason == "" {
		t.Fatalf("fired %+v skipped %+v jobs %d", w.fired, w.skipped, e.jobsCreated())
	}
}

// TestReplicaDiesMidFire: the replica that received the fire dies (stops,
// never acks) after claiming the tick or after creating its job; the fire
// comes back to the other replicas, and one job exists.
func TestReplicaDiesMidFire(t *testing.T) {
	t.Parallel()
	for _, stage := range []string{"claimed", "created"} {
		t.Run(stage, func(t *testing.T) {
			t.Parallel()
			e := setup(t)
			w := e.watch(nil)
			first := e.scheduler(everyTwo)
			var once sync.Once
			dead := make(chan struct{})
			cancelFirst := make(chan context.CancelFunc, 1)
			first.hook = func(s string) {
				if s == stage {
					once.Do(func() { (<-cancelFirst)(); close(dead) })
				}
			}
			e.create(first)
			cancelFirst <- e.run(first)
			<-dead
			e.run(e.scheduler(everyTwo))
			e.run(e.scheduler(everyTwo))
			natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
				if f, sk := w.counts(); f < 1 || sk < 1 {
					return errors.New("no fire and skip yet")
				}
				return nil
			})
			if n := e.jobsCreated(); n != 1 {
				t.Fatalf("jobs created = %d, want 1", n)
			}
		})
	}
}

// TestDisabledAndEndDate: a disabled config and one past its end date
// start nothing; re-enabling re-arms.
func TestDisabledAndEndDate(t *testing.T) {
	t.Parallel()
	e := setup(t)
	s := e.scheduler(everySecond)
	w := e.watch(nil)
	ended := e.create(s, func(r *Request) { r.EndDate = ptr(time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)) })
	c := e.create(s, func(r *Request) { r.Disabled = ptr(true) })
	e.run(s)
	// Let a few ticks pass: a live marker config proves ticks happen.
	marker := e.create(s, func(r *Request) { r.Params = &SyncParams{SynchronizeAll: true} })
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		if f, sk := w.counts(); f < 1 || sk < 2 {
			return errors.New("marker has not ticked thrice")
		}
		return nil
	})
	w.mu.Lock()
	for _, ev := range append(w.fired, w.skipped...) {
		if ev.JobConfigID == ended.ID || ev.JobConfigID == c.ID {
			t.Fatalf("event of an inactive config: %+v", ev)
		}
	}
	w.mu.Unlock()
	if err := s.Delete(testCtx(t), marker.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(testCtx(t), c.ID, Request{Disabled: ptr(false)}); err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, ev := range append(w.fired, w.skipped...) {
			if ev.JobConfigID == c.ID {
				return nil
			}
		}
		return errors.New("re-enabled config has not fired")
	})
	// Disabling disarms the server's schedule: no more fire messages
	// while a second config ticks three times.
	if _, err := s.Update(testCtx(t), c.ID, Request{Disabled: ptr(true)}); err != nil {
		t.Fatal(err)
	}
	st, err := e.js.Stream(testCtx(t), events.StreamSchedules)
	if err != nil {
		t.Fatal(err)
	}
	lastFire := func() uint64 {
		m, err := st.GetLastMsgForSubject(testCtx(t), events.ScheduleFireSubject(c.ID))
		if err != nil {
			t.Fatal(err)
		}
		return m.Sequence
	}
	before := lastFire()
	marker2 := e.create(s, func(r *Request) { r.Params = &SyncParams{SynchronizeAll: true} })
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		w.mu.Lock()
		defer w.mu.Unlock()
		n := 0
		for _, ev := range append(w.fired, w.skipped...) {
			if ev.JobConfigID == marker2.ID {
				n++
			}
		}
		if n < 3 {
			return errors.New("second marker has not ticked thrice")
		}
		return nil
	})
	if after := lastFire(); after != before {
		t.Fatalf("a disabled config's schedule still fires (fire seq %d -> %d)", before, after)
	}
}

// TestCatchUpOnce: while nothing ran, many ticks passed; catch-up fires
// the latest one once, however many replicas catch up at once.
func TestCatchUpOnce(t *testing.T) {
	t.Parallel()
	e := setup(t)
	clock := time.Now().UTC()
	var mu sync.Mutex
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	var reps []*Scheduler
	for range 3 {
		s, err := New(testCtx(t), e.js, e.plane.Jobs, Config{ClaimLease: time.Second, CatchUpEvery: time.Hour, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		reps = append(reps, s)
	}
	w := e.watch(nil)
	c := e.create(reps[0], func(r *Request) { r.RunAt = ptr("* * * * *") })
	mu.Lock()
	clock = clock.Add(10 * time.Minute) // ten ticks missed
	mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range reps {
		wg.Add(1)
		go func() { defer wg.Done(); _ = s.CatchUp(testCtx(t)) }()
	}
	wg.Wait()
	natstest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		if f, _ := w.counts(); f < 1 {
			return errors.New("no catch-up fire")
		}
		return nil
	})
	for _, s := range reps { // again: nothing new
		if err := s.CatchUp(testCtx(t)); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.jobsCreated(); n != 1 {
		t.Fatalf("jobs created = %d, want 1", n)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if f := w.fired[0]; !f.CatchUp || f.JobConfigID != c.ID || !f.Tick.Equal(now().Truncate(time.Minute)) {
		t.Fatalf("fired %+v", f)
	}
}

// TestClusterNodeDies: three replicas, each on its own node of a three-node
// cluster, share an every-second schedule. The node leading the schedules
// stream (the one whose server fires) is killed with the replica on it;
// the schedule keeps firing from the new leader, and each tick fired has
// exactly one job.
func TestClusterNodeDies(t *testing.T) {
	t.Parallel()
	servers := natstest.RunCluster(t, 3)
	e := setupOn(t, natstest.ClusterURLs(servers), 3)
	ctx := testCtx(t)
	cancels := make([]context.CancelFunc, 3)
	var reps []*Scheduler
	for i, srv := range servers {
		nc, js := natstest.ConnectURL(t, srv.ClientURL())
		plane, err := control.New(ctx, nc, js, control.Config{Connections: []string{testConn}})
		if err != nil {
			t.Fatal(err)
		}
		reps = append(reps, e.schedulerOn(js, plane.Jobs, everySecond))
		cancels[i] = e.run(reps[i])
	}
	w := e.watch(func(d events.ScheduleEvent) { e.finish(d.JobID) })
	c := e.create(reps[0])
	// Generous: after the leader's node dies, the cluster elects new
	// stream and consumer leaders and the fire comes back after the ack
	// wait; on a loaded 2-core CI machine (every package's tests at once,
	// under -race) that took more than 45 s once.
	firedAtLeast := func(n int) {
		t.Helper()
		natstest.CheckFor(t, 90*time.Second, 50*time.Millisecond, func() error {
			if f, _ := w.counts(); f < n {
				return errors.New("too few ticks fired")
			}
			return nil
		})
	}
	firedAtLeast(3)
	st, err := e.js.Stream(ctx, events.StreamSchedules)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil || info.Cluster == nil {
		t.Fatalf("schedules stream info: %+v %v", info, err)
	}
	killed := -1
	for i, srv := range servers {
		if srv.Name() == info.Cluster.Leader {
			killed = i
		}
	}
	if killed < 0 {
		t.Fatalf("leader %q is no server", info.Cluster.Leader)
	}
	cancels[killed]()
	servers[killed].Shutdown()
	f, _ := w.counts()
	firedAtLeast(f + 3)
	if err := reps[(killed+1)%3].Delete(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 15*time.Second, 100*time.Millisecond, func() error {
		w.mu.Lock()
		defer w.mu.Unlock()
		ticks := map[time.Time]string{}
		for _, f := range w.fired {
			if other, dup := ticks[f.Tick]; dup && other != f.JobID {
				t.Fatalf("tick %s fired jobs %s and %s", f.Tick, other, f.JobID)
			}
			ticks[f.Tick] = f.JobID
		}
		if n := e.jobsCreated(); n != uint64(len(ticks)) {
			return fmt.Errorf("%d jobs created for %d ticks fired", n, len(ticks))
		}
		return nil
	})
}

// TestReconcileRearms: a config whose schedule message was lost (here:
// replaced by a disarm marker behind its back) is re-armed by the next
// catch-up, and a disabled one stays disarmed.
func TestReconcileRearms(t *testing.T) {
	t.Parallel()
	e := setup(t)
	s := e.scheduler(everySecond)
	ctx := testCtx(t)
	c := e.create(s)
	off := e.create(s, func(r *Request) { r.Disabled = ptr(true) })
	if err := s.disarm(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	st, err := e.js.Stream(ctx, events.StreamSchedules)
	if err != nil {
		t.Fatal(err)
	}
	pattern := func(id string) string {
		m, err := st.GetLastMsgForSubject(ctx, events.ScheduleArmSubject(id))
		if err != nil {
			t.Fatal(err)
		}
		return m.Header.Get(jetstream.ScheduleHeader)
	}
	if p := pattern(c.ID); p != "" {
		t.Fatalf("disarmed pattern %q", p)
	}
	if err := s.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if p := pattern(c.ID); p != everySecond {
		t.Fatalf("re-armed pattern %q, want %q", p, everySecond)
	}
	if p := pattern(off.ID); p != "" {
		t.Fatalf("disabled config armed: %q", p)
	}
}

// TestRunAtForms: the cron forms run_at accepts are armed as they are
// by nats-server's own scheduler (the default pattern, seconds 0).
func TestRunAtForms(t *testing.T) {
	t.Parallel()
	e := setup(t)
	s, err := New(testCtx(t), e.js, e.plane.Jobs, Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, runAt := range []string{"0 9 * * sat", "*/15 * * * *", "0 0 1 jan *", "0 9 ? * mon-fri", "5,10 1-3 * * 0", "0  9 * * SUN"} {
		c := e.create(s, func(r *Request) { r.RunAt = ptr(runAt) })
		if c.RunAt == "" || len(c.RunAt) > len(runAt) {
			t.Errorf("run_at %q stored as %q", runAt, c.RunAt)
		}
	}
	// A new run_at re-arms the server's schedule with it.
	c := e.create(s)
	if _, err := s.Update(testCtx(t), c.ID, Request{RunAt: ptr("30 4 * * mon")}); err != nil {
		t.Fatal(err)
	}
	st, err := e.js.Stream(testCtx(t), events.StreamSchedules)
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetLastMsgForSubject(testCtx(t), events.ScheduleArmSubject(c.ID))
	if err != nil {
		t.Fatal(err)
	}
	if p := m.Header.Get(jetstream.ScheduleHeader); p != "0 30 4 * * mon" {
		t.Fatalf("armed pattern %q after patching run_at", p)
	}
}
