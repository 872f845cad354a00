package worker_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/akvsync/akvsync/internal/azure"
	"github.com/akvsync/akvsync/internal/connections"
	"github.com/akvsync/akvsync/internal/control"
	"github.com/akvsync/akvsync/internal/natsconn"
	"github.com/akvsync/akvsync/internal/natstest"
	"github.com/akvsync/akvsync/internal/worker"
	"github.com/akvsync/akvsync/pkg/akvemu"
	"github.com/akvsync/akvsync/pkg/events"
	"github.com/akvsync/akvsync/pkg/jobs"
	akvsync "github.com/akvsync/akvsync/pkg/sync"
)

// env is one pipeline under test: a real JetStream server, the emulator
// over HTTPS, the API's control plane, and workers started on demand.
type env struct {
	ctx    context.Context
	nc     *nats.Conn
	js     jetstream.JetStream
	emu    *akvemu.Emulator
	plane  *control.Plane
	conn   azure.Connection
	vaults map[string]events.Vault // by emulator vault name
	topo   events.Topology
	dir    string
	// users: the server accepts akvsync's users only; the plane runs as
	// the API user, workers as the worker user (bind only).
	users *leastPrivilege
}

type envOptions struct {
	vaults, keys   int
	maxDeliver     int
	noThrottling   bool
	ackWait        time.Duration
	subscriptions  int
	versionsPerKey int
	emulator       func(*akvemu.Config) // adjusts the emulator's config
	// users runs every component as its least-privilege NATS user, after
	// the init step as the admin.
	users bool
}

func setup(t testing.TB, o envOptions) *env {
	t.Helper()
	timeout := 2 * time.Minute
	if _, bench := t.(*testing.B); bench {
		timeout = 30 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	if o.ackWait == 0 {
		o.ackWait = 5 * time.Second
	}
	if o.maxDeliver == 0 {
		o.maxDeliver = 2
	}
	// Memory storage: no test here restarts the NATS server, so nothing
	// needs the streams on disk.
	topo := events.Topology{TaskAckWait: o.ackWait, TaskMaxDeliver: o.maxDeliver, Storage: jetstream.MemoryStorage}
	var (
		nc    *nats.Conn
		js    jetstream.JetStream
		users *leastPrivilege
	)
	if o.users {
		users = startLeastPrivilege(t)
		_, adminJS, _ := users.connect(t, events.RoleAdmin)
		if err := topo.Init(ctx, adminJS); err != nil {
			t.Fatal(err)
		}
		nc, js, users.api = users.connect(t, events.RoleAPI)
	} else {
		srv := natstest.RunServer(t, natstest.Options{MaxPayload: natsconn.EmbeddedMaxPayload}) // as embedded
		nc, js = natstest.Connect(t, srv)
		if err := topo.EnsureStreams(ctx, js); err != nil {
			t.Fatal(err)
		}
	}
	emuCfg := akvemu.Config{
		Seed:              akvemu.SeedSpec{Vaults: o.vaults, KeysPerVault: o.keys, Seed: 7, VersionsPerKey: max(o.versionsPerKey, 1), Subscriptions: o.subscriptions},
		DataDir:           t.TempDir(),
		DisableThrottling: o.noThrottling,
	}
	if o.emulator != nil {
		o.emulator(&emuCfg)
	}
	emu, err := akvemu.Start(ctx, emuCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emu.Close() })
	m := emu.Manifest()
	conn := azure.Connection{
		Name: "emulator", CredentialType: azure.CredentialClientSecret,
		TenantID: m.TenantID, ClientID: m.ClientID, ClientSecret: m.ClientSecret,
		ActiveDirectoryEndpoint: m.AuthorityHost, ExtraCAPEM: m.CACertPEM, DisableChallengeResourceVerification: true,
	}
	// "ghost" is a connection the API accepts but no worker knows.
	plane, err := control.New(ctx, nc, js, control.Config{Connections: []string{"emulator", "ghost"}, Endpoints: azure.EndpointPolicy{AllowPrivate: true},
		MaxJobVaults: 0})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{ctx: ctx, nc: nc, js: js, emu: emu, plane: plane, conn: conn, vaults: map[string]events.Vault{}, topo: topo, dir: t.TempDir(), users: users}
	bySub := map[string][]control.AddVault{}
	for _, v := range m.Vaults {
		bySub[v.SubscriptionID] = append(bySub[v.SubscriptionID], control.AddVault{Name: v.Name, Type: v.ResourceType,
			AzureVaultID: v.ResourceID, Location: v.Location, Properties: control.VaultProperties{VaultURI: v.URL}})
	}
	for sub, vs := range bySub {
		added, err := plane.Vaults.AddVaults(ctx, control.AddVaultsRequest{Connection: "emulator", SubscriptionID: sub, Vaults: vs})
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range added {
			e.vaults[v.Name] = v
		}
	}
	return e
}

// startWorker starts a worker with its own store; tweak adjusts its sync
// settings.
func (e *env) startWorker(t testing.TB, name string, tweak func(*akvsync.Config), more ...func(*worker.Config)) *worker.Worker {
	t.Helper()
	cfg := akvsync.Config{Source: "test/" + name, RetryDelay: 50 * time.Millisecond, Heartbeat: 300 * time.Millisecond, VaultRate: -1, SubscriptionRate: -1}
	if tweak != nil {
		tweak(&cfg)
	}
	wcfg := worker.Config{
		Topology:    e.topo,
		StorePath:   filepath.Join(e.dir, name+".db"),
		StoreNoSync: true,
		Sync:        cfg,
		Azure:       azure.Config{Retry: azure.Retry{RetryDelay: 10 * time.Millisecond, MaxRetryDelay: 50 * time.Millisecond, MaxRetries: 2}},
		Connections: connections.Chain{Static: map[string]azure.Connection{"emulator": e.conn}},
		Logger:      zerolog.Nop(),
	}
	for _, f := range more {
		f(&wcfg)
	}
	nc := e.nc
	if e.users != nil {
		var rec *recorder
		nc, _, rec = e.users.connect(t, events.RoleWorker)
		e.users.workers = append(e.users.workers, rec)
		wcfg.BindOnly = true
	}
	w, err := worker.Start(e.ctx, nc, wcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	return w
}

func (e *env) createJob(t testing.TB, req control.CreateJobRequest) events.JobDetail {
	t.Helper()
	job, err := e.plane.Jobs.Create(e.ctx, req, "test")
	if err != nil {
		t.Fatalf("create job: %v", err)
	}
	return job
}

// waitJob polls the job record until it leaves in_progress.
func (e *env) waitJob(t testing.TB, id string) events.JobDetail {
	t.Helper()
	var job events.JobDetail
	natstest.CheckFor(t, 10*time.Minute, 25*time.Millisecond, func() error {
		var err error
		if job, err = e.plane.Jobs.Get(e.ctx, id); err != nil {
			return err
		}
		if job.OverallStatus == events.JobInProgress {
			return fmt.Errorf("job still in progress: %v", job.DetailedStatus())
		}
		return nil
	})
	return job
}

// jobStore opens the job records as the API and workers do.
func (e *env) jobStore(t testing.TB) *jobs.Store {
	t.Helper()
	jobsKV, err := events.Bucket(e.ctx, e.js, events.BucketJobs)
	if err != nil {
		t.Fatal(err)
	}
	locks, err := events.Bucket(e.ctx, e.js, events.BucketLocks)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jobs.New(e.js, jobsKV, locks, jobs.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// inventory lists a vault's keys through the API's query path.
func (e *env) inventory(t *testing.T, vaultID string) map[string]events.KeyRecord {
	t.Helper()
	page, err := e.plane.Queries.Keys(e.ctx, events.KeyQuery{VaultID: vaultID, Limit: events.LimitAll})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]events.KeyRecord{}
	for _, r := range page.Resources {
		if _, dup := out[r.Name]; dup {
			t.Fatalf("key %s listed twice", r.Name)
		}
		out[r.Name] = r
	}
	return out
}

func (e *env) vaultNames() []string {
	var names []string
	for n := range e.vaults {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// assertMatchesEmulator compares the inventory of a vault with the
// emulator's keys field by field.
func (e *env) assertMatchesEmulator(t *testing.T, name string) {
	t.Helper()
	v := e.vaults[name]
	ev, ok := e.emu.Vault(name)
	if !ok {
		t.Fatalf("emulator has no vault %s", name)
	}
	inv := e.inventory(t, v.ID)
	want := ev.Keys()
	live := 0
	b64 := base64.RawURLEncoding.EncodeToString
	unix := func(tm *time.Time) int64 {
		if tm == nil {
			return 0
		}
		return tm.Unix()
	}
	for _, k := range want {
		live++
		got, ok := inv[k.Name]
		if !ok {
			t.Errorf("%s: key %s missing from the inventory", name, k.Name)
			continue
		}
		// Symmetric keys have no material in the answer; their size comes
		// from key_size (api-version 2026-01-01-preview), which the emulator
		// serves: every key has its real size.
		wantSize := k.KeySize
		checks := []struct {
			field    string
			got, exp any
		}{
			{"kid", got.Kid, k.KID}, {"version", got.Version, k.Version}, {"kty", got.Kty, k.Kty},
			{"key_size", got.KeySize, wantSize}, {"crv", got.Curve, k.Curve},
			{"key_ops", strings.Join(got.KeyOps, ","), strings.Join(k.KeyOps, ",")},
			{"n", got.N, b64(k.N)}, {"e", got.E, b64(k.E)}, {"x", got.X, b64(k.X)}, {"y", got.Y, b64(k.Y)},
			{"enabled", got.Enabled, k.Enabled}, {"nbf", got.NotBefore, unix(k.NotBefore)}, {"exp", got.Expires, unix(k.Expires)},
			{"created", got.Created, k.Created.Unix()}, {"updated", got.Updated, k.Updated.Unix()},
			{"recoveryLevel", got.RecoveryLevel, k.RecoveryLevel}, {"recoverableDays", got.RecoverableDays, k.RecoverableDays},
			{"exportable", got.Exportable, k.Exportable}, {"hsmPlatform", got.HSMPlatform, k.HSMPlatform},
			{"managed", got.Managed, k.Managed}, {"tags", fmt.Sprint(got.Tags), fmt.Sprint(nonNil(k.Tags))},
			{"vault", got.KeyVault(), v.QualifiedName()}, {"gone", got.Gone, false},
			{"id", got.ID, events.KeyID(v.ID, k.Name)},
		}
		for _, c := range checks {
			if c.got != c.exp {
				t.Errorf("%s/%s: %s = %v, want %v", name, k.Name, c.field, c.got, c.exp)
			}
		}
	}
	notGone := 0
	for _, r := range inv {
		if !r.Gone {
			notGone++
		}
	}
	if notGone != live {
		t.Errorf("%s: inventory has %d live keys, emulator %d", name, notGone, live)
	}
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func TestPipeline(t *testing.T) {
	t.Parallel()
	e := setup(t, envOptions{vaults: 4, keys: 60})
	e.startWorker(t, "w1", nil)
	names := e.vaultNames()

	t.Run("SyncOfNamedVaultsSyncsOnlyThose", func(t *testing.T) {
		v0, v1 := e.vaults[names[0]], e.vaults[names[1]]
		job := e.createJob(t, control.CreateJobRequest{KeyVaults: []string{v0.QualifiedName(), v1.ID}})
		done := e.waitJob(t, job.ID)
		if done.OverallStatus != events.JobCompleted || done.Abort {
			t.Fatalf("job ended %s abort=%v: %v", done.OverallStatus, done.Abort, done.DetailedStatus())
		}
		for _, n := range names[:2] {
			e.assertMatchesEmulator(t, n)
		}
		if inv := e.inventory(t, e.vaults[names[2]].ID); len(inv) != 0 {
			t.Fatalf("a vault outside the job was synced: %d keys", len(inv))
		}
		if done.CompletedAt == nil || done.Vaults[0].Listed == 0 {
			t.Fatalf("finished job lacks completion facts: %+v", done)
		}
		// Dashboards see the job start and finish on the events stream.
		st, err := e.js.Stream(e.ctx, events.StreamEvents)
		if err != nil {
			t.Fatal(err)
		}
		for _, kind := range []events.EventKind{events.KindSyncRequested, events.KindJobFinished} {
			m, err := st.GetLastMsgForSubject(e.ctx, events.JobEventSubject(job.ID, kind))
			if err != nil {
				t.Fatalf("job %s event on the events stream: %v", kind, err)
			}
			ev, err := events.DecodeEvent(m.Data, &struct{}{})
			if err != nil || ev.Type != kind.Type("job") || ev.Subject != job.ID {
				t.Errorf("job %s event: type %q subject %q, %v", kind, ev.Type, ev.Subject, err)
			}
		}
	})

	t.Run("SyncAllSyncsEveryVaultAndSkipsUnchangedKeys", func(t *testing.T) {
		before := e.emu.Counters(names[0])
		job := e.createJob(t, control.CreateJobRequest{SynchronizeAll: true})
		done := e.waitJob(t, job.ID)
		if done.OverallStatus != events.JobCompleted || len(done.Vaults) != len(names) {
			t.Fatalf("job ended %s with %d vaults: %v", done.OverallStatus, len(done.Vaults), done.DetailedStatus())
		}
		for _, n := range names {
			e.assertMatchesEmulator(t, n)
		}
		// names[0] was synced before: delta sync lists it but gets nothing.
		after := e.emu.Counters(names[0])
		if got := after.Total(akvemu.OpGetKey) - before.Total(akvemu.OpGetKey); got != 0 {
			t.Fatalf("re-sync of an unchanged vault made %d GetKey calls, want 0", got)
		}
		jv := done.Vault(e.vaults[names[0]].ID)
		if jv.Unchanged != 60 || jv.Fetched != 0 {
			t.Fatalf("unchanged vault: fetched %d unchanged %d, want 0/60", jv.Fetched, jv.Unchanged)
		}
	})

	t.Run("SecondSyncReflectsAddUpdateDelete", func(t *testing.T) {
		name := names[3]
		ev, _ := e.emu.Vault(name)
		keys := ev.Keys()
		if _, err := ev.CreateKey("added-key", akvemu.KeySpec{Kty: akvemu.KtyEC, Curve: "P-256"}); err != nil {
			t.Fatal(err)
		}
		off := false
		updated, err := ev.UpdateKey(keys[0].Name, "", akvemu.KeyUpdate{Enabled: &off, Tags: map[string]string{"owner": "sec"}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ev.DeleteKey(keys[1].Name); err != nil {
			t.Fatal(err)
		}
		job := e.createJob(t, control.CreateJobRequest{KeyVaults: []string{name}})
		done := e.waitJob(t, job.ID)
		if done.OverallStatus != events.JobCompleted {
			t.Fatalf("job ended %s: %v", done.OverallStatus, done.DetailedStatus())
		}
		e.assertMatchesEmulator(t, name)
		inv := e.inventory(t, e.vaults[name].ID)
		if k := inv["added-key"]; k.Kty != "EC" || k.Gone {
			t.Fatalf("added key = %+v", k)
		}
		if k := inv[keys[0].Name]; k.Enabled || k.Tags["owner"] != "sec" || k.Updated != updated.Updated.Unix() {
			t.Fatalf("updated key = %+v, want disabled, tagged, updated %d", k, updated.Updated.Unix())
		}
		if k := inv[keys[1].Name]; !k.Gone {
			t.Fatalf("deleted key not gone: %+v", k)
		}
		jv := done.Vault(e.vaults[name].ID)
		if jv.Fetched != 2 || jv.Gone != 1 {
			t.Fatalf("delta: fetched %d gone %d, want 2 and 1", jv.Fetched, jv.Gone)
		}
	})

	t.Run("ActiveVaultIsLockedAndReleasedAtTheEnd", func(t *testing.T) {
		name := names[0]
		// Slow answers keep the first job running while the second asks.
		if err := e.emu.SetFaults(name, akvemu.Faults{Latency: 500 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = e.emu.SetFaults(name, akvemu.Faults{}) }()
		job := e.createJob(t, control.CreateJobRequest{KeyVaults: []string{name}})
		_, err := e.plane.Jobs.Create(e.ctx, control.CreateJobRequest{KeyVaults: []string{name}}, "test")
		var ce *control.ConflictError
		if !asConflict(err, &ce) || ce.JobID != job.ID {
			t.Fatalf("second job on a locked vault: err = %v, want a conflict naming %s", err, job.ID)
		}
		if done, _ := e.plane.Jobs.Get(e.ctx, job.ID); done.OverallStatus != events.JobInProgress {
			t.Fatal("the first job finished before the check: the conflict proved nothing")
		}
		e.waitJob(t, job.ID)
		natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
			_, err := e.plane.Jobs.Create(e.ctx, control.CreateJobRequest{KeyVaults: []string{name}}, "test")
			return err
		})
	})
}

func asConflict(err error, target **control.ConflictError) bool {
	ce, ok := err.(*control.ConflictError)
	if !ok {
		return false
	}
	*target = ce
	return true
}

func TestPermanentlyFailingVaultFailsAlone(t *testing.T) {
	t.Parallel()
	e := setup(t, envOptions{vaults: 3, keys: 30})
	names := e.vaultNames()
	bad, _ := e.emu.Vault(names[1])
	if err := bad.SetAccess(e.conn.ClientID, akvemu.PermList); err != nil {
		t.Fatal(err)
	}
	e.startWorker(t, "w1", nil)
	job := e.createJob(t, control.CreateJobRequest{SynchronizeAll: true})
	done := e.waitJob(t, job.ID)
	if done.OverallStatus != events.JobFailed {
		t.Fatalf("job ended %s, want failed: %v", done.OverallStatus, done.DetailedStatus())
	}
	for _, n := range names {
		v := e.vaults[n]
		status := done.DetailedStatus()[v.QualifiedName()]
		if n == names[1] {
			if !strings.HasPrefix(status, "failed: 403") {
				t.Errorf("denied vault status = %q, want failed: 403 …", status)
			}
			if inv := e.inventory(t, v.ID); len(inv) != 0 {
				t.Errorf("failed vault has %d keys in the inventory", len(inv))
			}
			continue
		}
		if status != "completed" {
			t.Errorf("vault %s status = %q, want completed", n, status)
		}
		e.assertMatchesEmulator(t, n)
	}
}

func TestVaultOfAnUnknownConnectionFailsAtOnce(t *testing.T) {
	t.Parallel()
	e := setup(t, envOptions{vaults: 1, keys: 5})
	m := e.emu.Manifest()
	added, err := e.plane.Vaults.AddVaults(e.ctx, control.AddVaultsRequest{Connection: "ghost", SubscriptionID: m.Vaults[0].SubscriptionID,
		Vaults: []control.AddVault{{Name: "ghost-vault", Properties: control.VaultProperties{VaultURI: m.Vaults[0].URL}}}})
	if err != nil {
		t.Fatal(err)
	}
	e.startWorker(t, "w1", nil)
	job := e.createJob(t, control.CreateJobRequest{KeyVaults: []string{added[0].ID}})
	done := e.waitJob(t, job.ID)
	jv := done.Vaults[0]
	if done.OverallStatus != events.JobFailed || !strings.Contains(jv.Error, `unknown connection "ghost"`) {
		t.Fatalf("job %s, vault %s: %q", done.OverallStatus, jv.Status, jv.Error)
	}
	if c := e.emu.Counters(m.Vaults[0].Name); c.Total(akvemu.OpListKeys) != 0 {
		t.Fatal("a vault without a usable connection reached Azure")
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	t.Run("BeforeTasksStartSkipsThemWithoutAzureCalls", func(t *testing.T) {
		t.Parallel()
		e := setup(t, envOptions{vaults: 3, keys: 10})
		job := e.createJob(t, control.CreateJobRequest{SynchronizeAll: true})
		cancelled, err := e.plane.Jobs.Cancel(e.ctx, job.ID)
		if err != nil || !cancelled.Abort || cancelled.OverallStatus != events.JobInProgress {
			t.Fatalf("cancel: %+v, %v", cancelled, err)
		}
		e.startWorker(t, "w1", nil)
		done := e.waitJob(t, job.ID)
		if done.OverallStatus != events.JobCompleted || !done.Abort {
			t.Fatalf("job ended %s abort=%v, want completed with abort", done.OverallStatus, done.Abort)
		}
		for _, n := range e.vaultNames() {
			if s := done.DetailedStatus()[e.vaults[n].QualifiedName()]; s != string(events.VaultAborted) {
				t.Errorf("vault %s = %q, want aborted", n, s)
			}
			c := e.emu.Counters(n)
			if c.Total(akvemu.OpListKeys)+c.Total(akvemu.OpGetKey) != 0 {
				t.Errorf("vault %s got Azure calls after an early cancel: %+v", n, c)
			}
		}
		if _, err := e.plane.Jobs.Cancel(e.ctx, job.ID); err == nil {
			t.Fatal("cancel of a finished job succeeded")
		}
	})

	t.Run("MidJobStopsAzureTrafficWithinOnePage", func(t *testing.T) {
		t.Parallel()
		const keys, getConc = 400, 4
		e := setup(t, envOptions{vaults: 1, keys: keys})
		name := e.vaultNames()[0]
		if err := e.emu.SetFaults(name, akvemu.Faults{Latency: 20 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
		e.startWorker(t, "w1", func(c *akvsync.Config) { c.GetConcurrency = getConc })
		job := e.createJob(t, control.CreateJobRequest{KeyVaults: []string{name}})
		natstest.CheckFor(t, 30*time.Second, 5*time.Millisecond, func() error {
			if n := e.emu.Counters(name).Total(akvemu.OpGetKey); n < 30 {
				return fmt.Errorf("%d gets so far", n)
			}
			return nil
		})
		if _, err := e.plane.Jobs.Cancel(e.ctx, job.ID); err != nil {
			t.Fatal(err)
		}
		atCancel := e.emu.Counters(name)
		done := e.waitJob(t, job.ID)
		final := e.emu.Counters(name)
		if done.OverallStatus != events.JobCompleted || !done.Abort {
			t.Fatalf("job ended %s abort=%v, want completed with abort", done.OverallStatus, done.Abort)
		}
		calls := func(c akvemu.Counters) int64 { return c.Total(akvemu.OpListKeys) + c.Total(akvemu.OpGetKey) }
		// After the cancel: at most the requests in flight (GetKeys and one
		// list page) and the rest of one page's worth of gets.
		if extra := calls(final) - calls(atCancel); extra > akvemu.MaxPageSize+getConc+1 {
			t.Fatalf("%d Azure calls after the cancel, want at most one page's worth", extra)
		}
		if got := final.Total(akvemu.OpGetKey); got >= keys {
			t.Fatalf("every key was fetched (%d): the cancel stopped nothing", got)
		}
		jv := done.Vaults[0]
		if jv.Status != events.VaultAborted {
			t.Fatalf("vault status %s, want aborted", jv.Status)
		}
		// An aborted listing marks nothing gone.
		for _, r := range e.inventory(t, e.vaults[name].ID) {
			if r.Gone {
				t.Fatalf("aborted sync marked %s gone", r.Name)
			}
		}
	})
}

func TestWorkersShareTheWorkAndBothHoldTheInventory(t *testing.T) {
	t.Parallel()
	e := setup(t, envOptions{vaults: 6, keys: 40})
	w1 := e.startWorker(t, "w1", nil)
	w2 := e.startWorker(t, "w2", nil)
	job := e.createJob(t, control.CreateJobRequest{SynchronizeAll: true})
	if done := e.waitJob(t, job.ID); done.OverallStatus != events.JobCompleted {
		t.Fatalf("job ended %s: %v", done.OverallStatus, done.DetailedStatus())
	}
	for _, w := range []*worker.Worker{w1, w2} {
		natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
			if n := w.Store().Stats().Keys; n != 6*40 {
				return fmt.Errorf("worker store has %d keys, want %d", n, 6*40)
			}
			return nil
		})
	}
}

func TestJanitor(t *testing.T) {
	t.Parallel()
	t.Run("RunsAJobWhoseSyncRequestWasNeverPublished", func(t *testing.T) {
		t.Parallel()
		e := setup(t, envOptions{vaults: 2, keys: 10})
		// What an API process leaves behind when it dies between writing
		// the job record and publishing its event: a record and locks.
		store := e.jobStore(t)
		job := events.Job{ID: events.NewID(), CreatedAt: time.Now().UTC().Add(-time.Hour), UpdatedAt: time.Now().UTC(), OverallStatus: events.JobInProgress}
		var vs []events.Vault
		for _, n := range e.vaultNames() {
			vs = append(vs, e.vaults[n])
		}
		if _, err := store.Create(e.ctx, job, func(_ context.Context, yield func([]events.Vault) error) error { return yield(vs) }, nil); err != nil {
			t.Fatal(err)
		}
		e.startWorker(t, "w1", nil, func(c *worker.Config) { c.Janitor.Interval, c.Janitor.Grace = 50*time.Millisecond, time.Millisecond })
		done := e.waitJob(t, job.ID)
		if done.OverallStatus != events.JobCompleted {
			t.Fatalf("orphaned job ended %s: %v", done.OverallStatus, done.DetailedStatus())
		}
		for _, n := range e.vaultNames() {
			e.assertMatchesEmulator(t, n)
		}
		locks, err := e.js.KeyValue(e.ctx, events.BucketLocks)
		if err != nil {
			t.Fatal(err)
		}
		natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
			keys, err := locks.Keys(e.ctx)
			if errors.Is(err, jetstream.ErrNoKeysFound) {
				return nil
			}
			return fmt.Errorf("locks still held: %v %v", keys, err)
		})
	})

	t.Run("ReleasesLocksWhoseHolderIsGoneOrFinished", func(t *testing.T) {
		t.Parallel()
		e := setup(t, envOptions{vaults: 3, keys: 5})
		names := e.vaultNames()
		locks, err := e.js.KeyValue(e.ctx, events.BucketLocks)
		if err != nil {
			t.Fatal(err)
		}
		// names[0]: an API died between locking and creating the job.
		if _, err := locks.Create(e.ctx, e.vaults[names[0]].ID, []byte(events.NewID())); err != nil {
			t.Fatal(err)
		}
		// names[1]: a live (slow) job holds it and must keep it.
		if err := e.emu.SetFaults(names[1], akvemu.Faults{Latency: time.Second}); err != nil {
			t.Fatal(err)
		}
		live := e.createJob(t, control.CreateJobRequest{KeyVaults: []string{names[1]}})
		e.startWorker(t, "w1", func(c *akvsync.Config) { c.VaultParallelism = 1 }, func(c *worker.Config) {
			c.Janitor.Interval, c.Janitor.Grace = 50*time.Millisecond, time.Millisecond
		})
		natstest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
			_, err := e.plane.Jobs.Create(e.ctx, control.CreateJobRequest{KeyVaults: []string{names[0]}}, "test")
			return err
		})
		// Sweeps ran meanwhile; the live job still holds its vault.
		l, err := locks.Get(e.ctx, e.vaults[names[1]].ID)
		if j, _ := e.plane.Jobs.Get(e.ctx, live.ID); j.OverallStatus != events.JobInProgress {
			t.Fatal("the slow job finished before the check: nothing was observed")
		}
		if err != nil || string(l.Value()) != live.ID {
			t.Fatalf("the live job's lock was released: %v", err)
		}
		if done := e.waitJob(t, live.ID); done.OverallStatus != events.JobCompleted {
			t.Fatalf("the live job ended %s", done.OverallStatus)
		}
	})

	t.Run("FailsAVaultWhoseTaskRanOutOfDeliveries", func(t *testing.T) {
		t.Parallel()
		e := setup(t, envOptions{vaults: 2, keys: 10, maxDeliver: 1, ackWait: 3 * time.Second})
		names := e.vaultNames()
		victim := e.vaults[names[0]]
		job := e.createJob(t, control.CreateJobRequest{KeyVaults: []string{victim.ID}})
		// A worker takes the task and dies without acking it. Planning is
		// a worker's job too, so publish the task as the planner would.
		task, _ := json.Marshal(events.VaultTask{JobID: job.ID, Vault: victim})
		if _, err := e.js.Publish(e.ctx, events.VaultTaskSubject(job.ID, victim.ID), task, jetstream.WithMsgID(job.ID+"/"+victim.ID)); err != nil {
			t.Fatal(err)
		}
		cons, err := e.topo.EnsureConsumer(e.ctx, e.js, events.StreamTasks)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("the dying worker got no task: %v", err)
		}
		if md, _ := msg.Metadata(); md.NumDelivered != 1 {
			t.Fatalf("delivery %d", md.NumDelivered)
		}
		// The janitor listens once Start returns; the advisory comes when
		// the stolen task's ack wait (3 s) runs out.
		e.startWorker(t, "w1", nil)
		done := e.waitJob(t, job.ID)
		if done.OverallStatus != events.JobFailed {
			t.Fatalf("job ended %s: %v", done.OverallStatus, done.DetailedStatus())
		}
		if s := done.DetailedStatus()[victim.QualifiedName()]; !strings.Contains(s, "gave up after 1 deliveries") {
			t.Fatalf("vault status %q", s)
		}
		c := e.emu.Counters(names[0])
		if c.Total(akvemu.OpListKeys) != 0 {
			t.Fatalf("the exhausted task was synced anyway: %+v", c)
		}
	})

	t.Run("DeletesFinishedJobsPastRetentionWithTheirRecords", func(t *testing.T) {
		t.Parallel()
		e := setup(t, envOptions{vaults: 3, keys: 5})
		names := e.vaultNames()
		e.startWorker(t, "w1", nil, func(c *worker.Config) {
			c.Janitor.Interval, c.Janitor.Grace, c.Janitor.JobsKept = 50*time.Millisecond, time.Hour, 1
		})
		var ids []string
		for range 3 {
			job := e.createJob(t, control.CreateJobRequest{SynchronizeAll: true})
			if done := e.waitJob(t, job.ID); done.OverallStatus != events.JobCompleted {
				t.Fatalf("job ended %s", done.OverallStatus)
			}
			ids = append(ids, job.ID)
		}
		// Only the newest finished job is kept; the others go with their
		// plan and vault records, and every inventory drops them.
		jobsKV, err := e.js.KeyValue(e.ctx, events.BucketJobs)
		if err != nil {
			t.Fatal(err)
		}
		natstest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
			keys, err := jobsKV.Keys(e.ctx)
			if err != nil {
				return err
			}
			for _, k := range keys {
				if strings.HasPrefix(k, ids[0]) || strings.HasPrefix(k, ids[1]) {
					return fmt.Errorf("record %s of an expired job is left", k)
				}
			}
			page, err := e.plane.Queries.Jobs(e.ctx, events.JobQuery{})
			if err != nil {
				return err
			}
			if page.Total != 1 || page.Resources[0].ID != ids[2] {
				return fmt.Errorf("jobs list: total %d", page.Total)
			}
			return nil
		})
		if _, err := e.plane.Jobs.Get(e.ctx, ids[0]); !errors.Is(err, control.ErrNotFound) {
			t.Fatalf("an expired job is still readable: %v", err)
		}
		if _, err := e.plane.Jobs.Get(e.ctx, ids[2]); err != nil {
			t.Fatalf("the kept job: %v", err)
		}
		// The keys stay: retention is about jobs, not the inventory.
		if inv := e.inventory(t, e.vaults[names[0]].ID); len(inv) != 5 {
			t.Fatalf("%d keys after retention, want 5", len(inv))
		}
	})
}
