package worker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/akvsync/akvsync/internal/control"
	"github.com/akvsync/akvsync/internal/natsconn"
	"github.com/akvsync/akvsync/internal/natstest"
	"github.com/akvsync/akvsync/internal/worker"
	"github.com/akvsync/akvsync/pkg/events"
)

// leastPrivilege is a NATS server that accepts akvsync's users only, with
// the permissions deploy/nats ships (events.Role.Permissions).
type leastPrivilege struct {
	srv       *server.Server
	passwords map[events.Role]string
	api       *recorder   // the plane's connection
	workers   []*recorder // the workers' connections
}

func startLeastPrivilege(t testing.TB) *leastPrivilege {
	t.Helper()
	lp := &leastPrivilege{passwords: map[events.Role]string{}}
	for _, r := range events.Roles() {
		lp.passwords[r] = "test-" + string(r) + "-password"
	}
	lp.srv = natstest.RunServer(t, natstest.Options{MaxPayload: natsconn.EmbeddedMaxPayload, Users: lp.passwords})
	return lp
}

// recorder keeps the permission violations the server reported to one
// connection.
type recorder struct {
	mu   sync.Mutex
	errs []string
	news chan struct{}
}

func (r *recorder) handle(_ *nats.Conn, _ *nats.Subscription, err error) {
	if !errors.Is(err, nats.ErrPermissionViolation) {
		return
	}
	r.mu.Lock()
	r.errs = append(r.errs, err.Error())
	r.mu.Unlock()
	select {
	case r.news <- struct{}{}:
	default:
	}
}

func (r *recorder) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.errs...)
}

// connect connects as role's user with the role's inbox prefix.
func (lp *leastPrivilege) connect(t testing.TB, role events.Role) (*nats.Conn, jetstream.JetStream, *recorder) {
	t.Helper()
	rec := &recorder{news: make(chan struct{}, 1)}
	nc, js := natstest.ConnectAs(t, lp.srv, role, lp.passwords[role], nats.ErrorHandler(rec.handle))
	return nc, js, rec
}

// refused runs op and checks that the server refused subject to the
// connection (a permissions violation naming it) and that op failed.
func refused(t *testing.T, rec *recorder, subject string, op func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- op(ctx) }()
	want := fmt.Sprintf("%q", subject)
	deadline := time.After(10 * time.Second)
	for {
		found := false
		for _, e := range rec.all() {
			found = found || strings.Contains(e, want)
		}
		if found {
			break
		}
		select {
		case <-rec.news:
		case err := <-done:
			done <- err
			if err == nil {
				t.Fatalf("%s was allowed", subject)
			}
		case <-deadline:
			t.Fatalf("the server reported no violation for %s; got %v", subject, rec.all())
		}
	}
	cancel()
	if err := <-done; err == nil {
		t.Fatalf("%s: the operation succeeded", subject)
	}
}

// request sends a raw JetStream API request.
func request(nc *nats.Conn, subject string, body string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		m, err := nc.RequestWithContext(ctx, subject, []byte(body))
		if err != nil {
			return err
		}
		if strings.Contains(string(m.Data), `"error"`) {
			return fmt.Errorf("%s", m.Data)
		}
		return nil
	}
}

// subscribe subscribes and waits for the server's answer (a PING round
// trip); a refused subscription is reported asynchronously.
func subscribe(nc *nats.Conn, subject string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		sub, err := nc.SubscribeSync(subject)
		if err != nil {
			return err
		}
		defer func() { _ = sub.Unsubscribe() }()
		_, err = sub.NextMsgWithContext(ctx)
		return err
	}
}

// TestLeastPrivilegeUsers runs a sync job with every component connected
// as its own least-privilege NATS user (the API's control plane, two
// workers), then proves each operation issue 12 found open is refused.
func TestLeastPrivilegeUsers(t *testing.T) {
	t.Parallel()
	const vaults, keys = 3, 20
	e := setup(t, envOptions{vaults: vaults, keys: keys, users: true, noThrottling: true})
	e.startWorker(t, "w1", nil)
	e.startWorker(t, "w2", nil)

	t.Run("SyncJobCompletes", func(t *testing.T) {
		// Follow the job's events as the API's server-sent events do.
		fctx, fcancel := context.WithCancel(e.ctx)
		defer fcancel()
		seen := make(chan struct{}, 1)
		followed := make(chan error, 1)
		go func() {
			followed <- e.plane.Events.Follow(fctx, control.EventFilter{}, func(control.Event) error {
				select {
				case seen <- struct{}{}:
				default:
				}
				return nil
			})
		}()
		job := e.createJob(t, control.CreateJobRequest{SynchronizeAll: true})
		if job = e.waitJob(t, job.ID); job.OverallStatus != events.JobCompleted {
			t.Fatalf("job ended %s: %v", job.OverallStatus, job.DetailedStatus())
		}
		select {
		case <-seen:
		case err := <-followed:
			t.Fatalf("following events failed: %v", err)
		case <-e.ctx.Done():
			t.Fatal("no event followed")
		}
		// The workers' inventories answer the API (a key export's chunks
		// cross from the worker's to the API's inbox and back).
		natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
			page, err := e.plane.Queries.Keys(e.ctx, events.KeyQuery{Limit: events.LimitAll})
			if err != nil {
				return err
			}
			if page.Total != vaults*keys || len(page.Resources) != vaults*keys {
				return fmt.Errorf("%d keys listed (%d records), want %d", page.Total, len(page.Resources), vaults*keys)
			}
			return nil
		})
		// An Event Grid event's key refresh: the API queues it, a worker
		// reads the key's record, calls Key Vault and publishes the record
		// and a key refreshed event.
		page, err := e.plane.Queries.Keys(e.ctx, events.KeyQuery{Limit: 1})
		if err != nil || len(page.Resources) != 1 {
			t.Fatalf("keys: %v (%d)", err, len(page.Resources))
		}
		before := page.Resources[0]
		if _, err := e.plane.Refreshes.Request(e.ctx, []events.KeyRefresh{{VaultID: before.VaultID, KeyName: before.Name,
			EventID: "least-privilege-1", EventType: events.EventGridKeyNearExpiry, EventTime: time.Now(), ReceivedAt: time.Now()}}); err != nil {
			t.Fatalf("queue a key refresh: %v", err)
		}
		natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
			page, err := e.plane.Queries.Keys(e.ctx, events.KeyQuery{VaultID: before.VaultID, KeyName: before.Name})
			if err != nil {
				return err
			}
			if len(page.Resources) != 1 || !page.Resources[0].SyncedAt.After(before.SyncedAt) {
				return fmt.Errorf("key %s not refreshed yet", before.Name)
			}
			return nil
		})
		// Remove a vault: the API purges its keys and marks it removed.
		for _, v := range e.vaults {
			if _, err := e.plane.Vaults.Remove(e.ctx, v.ID); err != nil {
				t.Fatalf("remove vault: %v", err)
			}
			break
		}
		// Cancel a job (the API's abort request reaches the workers).
		job = e.createJob(t, control.CreateJobRequest{SynchronizeAll: true})
		if _, err := e.plane.Jobs.Cancel(e.ctx, job.ID); err != nil {
			t.Fatalf("cancel: %v", err)
		}
		if done := e.waitJob(t, job.ID); done.OverallStatus == events.JobInProgress {
			t.Fatalf("cancelled job still in progress")
		}
		// A worker whose janitor deletes finished jobs at once (a purge of
		// the job's records in the jobs bucket).
		e.startWorker(t, "w3", nil, func(c *worker.Config) {
			c.Janitor.Interval, c.Janitor.JobRetention = 50*time.Millisecond, time.Millisecond
		})
		natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
			if _, err := e.plane.Jobs.Get(e.ctx, job.ID); err == nil {
				return fmt.Errorf("job %s not deleted yet", job.ID)
			}
			return nil
		})
		for name, rec := range map[string]*recorder{"api": e.users.api, "w1": e.users.workers[0], "w2": e.users.workers[1], "w3": e.users.workers[2]} {
			if v := rec.all(); len(v) > 0 {
				t.Errorf("%s: the server refused a needed operation: %v", name, v)
			}
		}
	})

	t.Run("APIUser", func(t *testing.T) {
		nc, js, rec := e.users.connect(t, events.RoleAPI)
		inject := jetstream.StreamConfig{Name: "INJECT", Subjects: []string{"inject.>"},
			Sources: []*jetstream.StreamSource{{Name: events.StreamEvents,
				SubjectTransforms: []jetstream.SubjectTransformConfig{{Source: ">", Destination: "akvsync.key.v.k"}}}}}
		refused(t, rec, "$JS.API.STREAM.CREATE.INJECT", func(ctx context.Context) error {
			_, err := js.CreateStream(ctx, inject)
			return err
		})
		refused(t, rec, "$JS.API.STREAM.UPDATE."+events.StreamKeys, func(ctx context.Context) error {
			cfg := (events.Topology{}).Streams()[3]
			cfg.Sources = inject.Sources
			_, err := js.UpdateStream(ctx, cfg)
			return err
		})
		refused(t, rec, "$JS.API.STREAM.MSG.DELETE."+events.StreamKeys, request(nc, "$JS.API.STREAM.MSG.DELETE."+events.StreamKeys, `{"seq":1}`))
		refused(t, rec, "$JS.API.STREAM.MSG.DELETE."+events.StreamTasks, request(nc, "$JS.API.STREAM.MSG.DELETE."+events.StreamTasks, `{"seq":1}`))
		refused(t, rec, "$JS.API.CONSUMER.DELETE."+events.StreamTasks+"."+events.ConsumerVaultSyncer, func(ctx context.Context) error {
			return js.DeleteConsumer(ctx, events.StreamTasks, events.ConsumerVaultSyncer)
		})
		steal := `{"stream_name":"` + events.StreamTasks + `","config":{"deliver_subject":"` + events.RoleAPI.InboxPrefix() + `.steal","ack_policy":"none"}}`
		// The old-style create, without a consumer name in the subject.
		refused(t, rec, "$JS.API.CONSUMER.CREATE."+events.StreamTasks, request(nc, "$JS.API.CONSUMER.CREATE."+events.StreamTasks, steal))
		refused(t, rec, "$JS.API.CONSUMER.CREATE."+events.StreamTasks+".thief", request(nc, "$JS.API.CONSUMER.CREATE."+events.StreamTasks+".thief", steal))
		refused(t, rec, "$JS.API.CONSUMER.DURABLE.CREATE."+events.StreamTasks+".thief",
			request(nc, "$JS.API.CONSUMER.DURABLE.CREATE."+events.StreamTasks+".thief", steal))
		refused(t, rec, "$JS.API.CONSUMER.MSG.NEXT."+events.StreamTasks+"."+events.ConsumerVaultSyncer,
			request(nc, "$JS.API.CONSUMER.MSG.NEXT."+events.StreamTasks+"."+events.ConsumerVaultSyncer, `{"batch":1}`))
		// The job tracker's consumer on the events stream, which the API
		// reads with its own ordered consumers.
		refused(t, rec, "$JS.API.CONSUMER.CREATE."+events.StreamEvents+"."+events.ConsumerJobTracker,
			request(nc, "$JS.API.CONSUMER.CREATE."+events.StreamEvents+"."+events.ConsumerJobTracker, `{"stream_name":"`+events.StreamEvents+`","config":{"durable_name":"`+events.ConsumerJobTracker+`","deliver_subject":"`+events.RoleAPI.InboxPrefix()+`.steal"}}`))
		refused(t, rec, "$JS.API.CONSUMER.MSG.NEXT."+events.StreamEvents+"."+events.ConsumerJobTracker,
			request(nc, "$JS.API.CONSUMER.MSG.NEXT."+events.StreamEvents+"."+events.ConsumerJobTracker, `{"batch":1}`))
		refused(t, rec, "akvsync.key.v.k", func(ctx context.Context) error {
			_, err := js.Publish(ctx, "akvsync.key.v.k", []byte("{}"))
			return err
		})
		refused(t, rec, "_INBOX.>", subscribe(nc, "_INBOX.>"))
		refused(t, rec, events.RoleWorker.InboxPrefix()+".>", subscribe(nc, events.RoleWorker.InboxPrefix()+".>"))
	})

	t.Run("WorkerUser", func(t *testing.T) {
		nc, js, rec := e.users.connect(t, events.RoleWorker)
		conns := "KV_" + events.BucketConnections
		refused(t, rec, "$JS.API.STREAM.UPDATE."+conns, func(ctx context.Context) error {
			_, err := js.UpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: events.BucketConnections, History: 5})
			return err
		})
		refused(t, rec, "$KV."+events.BucketConnections+".x", func(ctx context.Context) error {
			_, err := js.Publish(ctx, "$KV."+events.BucketConnections+".x", []byte("{}"))
			return err
		})
		tokens := "KV_" + events.BucketRefreshTokens
		refused(t, rec, "$JS.API.STREAM.INFO."+tokens, func(ctx context.Context) error {
			_, err := js.KeyValue(ctx, events.BucketRefreshTokens)
			return err
		})
		refused(t, rec, "$JS.API.DIRECT.GET."+tokens+".$KV."+events.BucketRefreshTokens+".x",
			request(nc, "$JS.API.DIRECT.GET."+tokens+".$KV."+events.BucketRefreshTokens+".x", ""))
		refused(t, rec, "$JS.API.STREAM.MSG.GET."+tokens, request(nc, "$JS.API.STREAM.MSG.GET."+tokens, `{"seq":1}`))
		refused(t, rec, "$JS.API.CONSUMER.CREATE."+tokens+".peek", request(nc, "$JS.API.CONSUMER.CREATE."+tokens+".peek",
			`{"stream_name":"`+tokens+`","config":{"name":"peek","ack_policy":"none"}}`))
		refused(t, rec, "$KV."+events.BucketRefreshTokens+".>", subscribe(nc, "$KV."+events.BucketRefreshTokens+".>"))
		// The API's replies (its key-value gets of refresh tokens).
		refused(t, rec, events.RoleAPI.InboxPrefix()+".>", subscribe(nc, events.RoleAPI.InboxPrefix()+".>"))
		refused(t, rec, "_INBOX.>", subscribe(nc, "_INBOX.>"))
		refused(t, rec, "$JS.API.STREAM.DELETE."+events.StreamKeys, request(nc, "$JS.API.STREAM.DELETE."+events.StreamKeys, ""))
		refused(t, rec, "$JS.API.CONSUMER.DELETE."+events.StreamTasks+"."+events.ConsumerVaultSyncer, func(ctx context.Context) error {
			return js.DeleteConsumer(ctx, events.StreamTasks, events.ConsumerVaultSyncer)
		})
		refused(t, rec, "akvsync.sync.requested.x", func(ctx context.Context) error {
			_, err := js.Publish(ctx, "akvsync.sync.requested.x", []byte("{}"))
			return err
		})
	})

	t.Run("MonitorUser", func(t *testing.T) {
		nc, js, rec := e.users.connect(t, events.RoleMonitor)
		ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
		defer cancel()
		// What it is for: stream and consumer state.
		cons, err := js.Consumer(ctx, events.StreamTasks, events.ConsumerVaultSyncer)
		if err != nil {
			t.Fatalf("monitor: consumer info: %v", err)
		}
		if cons.CachedInfo().Config.Durable != events.ConsumerVaultSyncer {
			t.Fatalf("monitor: consumer info %+v", cons.CachedInfo().Config)
		}
		for name := range js.StreamNames(ctx).Name() {
			_ = name
		}
		if v := rec.all(); len(v) > 0 {
			t.Fatalf("monitor: refused %v", v)
		}
		refused(t, rec, "$JS.API.CONSUMER.CREATE."+events.StreamEvents+".x", request(nc, "$JS.API.CONSUMER.CREATE."+events.StreamEvents+".x",
			`{"stream_name":"`+events.StreamEvents+`","config":{"name":"x","ack_policy":"none"}}`))
		refused(t, rec, "akvsync.event.job.x.completed", func(ctx context.Context) error {
			_, err := js.Publish(ctx, "akvsync.event.job.x.completed", []byte("{}"))
			return err
		})
		refused(t, rec, "$KV."+events.BucketJobs+".x", func(ctx context.Context) error {
			_, err := js.Publish(ctx, "$KV."+events.BucketJobs+".x", []byte("{}"))
			return err
		})
	})
}
