// Package worker assembles one worker process: the planner, the vault
// syncer, the job tracker, the inventory projector and the query service,
// over one NATS connection and one bbolt store.
package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/akvsync/akvsync/internal/azure"
	"github.com/akvsync/akvsync/internal/inventory"
	"github.com/akvsync/akvsync/internal/store"
	"github.com/akvsync/akvsync/internal/telemetry"
	"github.com/akvsync/akvsync/pkg/events"
	"github.com/akvsync/akvsync/pkg/jobs"
	akvsync "github.com/akvsync/akvsync/pkg/sync"
)

// Config is a worker's configuration.
type Config struct {
	// Topology must match the other processes'.
	Topology events.Topology
	// StorePath is this worker's bbolt file (one per worker process).
	StorePath string
	// StoreNoSync skips fsync (tests and benchmarks only).
	StoreNoSync bool
	// StoreResidentLimit is the store's store.Config.ResidentLimit (0:
	// store.DefaultResidentLimit).
	StoreResidentLimit int64
	// InventoryBatch bounds the key records the inventory applies in one
	// bbolt transaction (0: inventory.DefaultBatchLimit). A transaction
	// touches the pages of every record it writes, and its commit touches
	// them again, so the batch bounds the worker's resident file pages.
	InventoryBatch int
	// Sync tunes the planner, syncer and tracker.
	Sync akvsync.Config
	// Azure tunes the Azure clients.
	Azure azure.Config
	// Connections resolves vault connections.
	Connections azure.Connections
	// Janitor tunes the repair of orphaned jobs and the retention of
	// finished ones (zero fields: the akvsync.Default* values).
	Janitor akvsync.JanitorConfig
	// Logger receives the worker's logs.
	Logger zerolog.Logger
	// BindOnly makes the worker look up the streams, buckets and durable
	// consumers instead of creating or updating them: a worker connected
	// as the least-privilege worker user (events.RoleWorker), whose
	// topology the init step created. It waits, logging, while they are
	// missing. Without it the worker ensures the topology itself, which
	// needs the admin permissions (embedded mode and tests).
	BindOnly bool
	// Registry, when set, gets the worker's metrics: sync and Azure
	// request metrics (unless Sync.Metrics is set), JetStream consumer lag
	// and inventory gauges (see internal/telemetry).
	Registry *prometheus.Registry
}

// Validate reports an unusable configuration.
func (c Config) Validate() error {
	if c.StorePath == "" {
		return errors.New("worker: StorePath is required")
	}
	if c.Connections == nil {
		return errors.New("worker: Connections is required")
	}
	if c.InventoryBatch < 0 {
		return fmt.Errorf("worker: InventoryBatch %d is negative", c.InventoryBatch)
	}
	if err := c.Topology.Validate(); err != nil {
		return err
	}
	if hb, ack := c.Sync.WithDefaults().Heartbeat, c.Topology.WithDefaults().TaskAckWait; hb > ack/3 {
		return fmt.Errorf("worker: heartbeat %s must be at most a third of the task ack wait %s, or running tasks are redelivered", hb, ack)
	}
	if err := c.Azure.Validate(); err != nil {
		return err
	}
	if err := c.Janitor.Validate(); err != nil {
		return err
	}
	return c.Sync.Validate()
}

// Worker is a running worker.
type Worker struct {
	store     *store.Store
	query     *inventory.QueryService
	proj      *inventory.Projector
	nc        *nats.Conn
	consumers []jetstream.Consumer
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closed    atomic.Bool
	caughtUp  atomic.Bool // the inventory caught up with its streams once since start

	mu     sync.Mutex
	err    error
	failed chan struct{} // closed at the first component failure
}

// Start ensures the NATS topology, opens the store and starts every
// component. It returns once they run; Close stops them.
func Start(ctx context.Context, nc *nats.Conn, cfg Config) (*Worker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	topo := cfg.Topology.WithDefaults()
	cfg.Sync.MaxDeliver = topo.TaskMaxDeliver
	log := cfg.Logger
	// An async publish whose ack was lost with a JetStream node fails
	// after PublishAckWait, and the syncer publishes it again.
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096), jetstream.WithPublishAsyncTimeout(akvsync.PublishAckWait))
	if err != nil {
		return nil, fmt.Errorf("worker: jetstream: %w", err)
	}
	buckets := map[string]jetstream.KeyValue{}
	consumers := map[string]jetstream.Consumer{}
	// A cluster still forming answers with errors for a while: wait for it.
	err = WaitForTopology(ctx, log, func(ctx context.Context) error {
		if cfg.BindOnly {
			if err := events.Require(ctx, js, events.RoleWorker); err != nil {
				return err
			}
		} else if err := topo.EnsureStreams(ctx, js); err != nil {
			return err
		}
		var err error
		for _, b := range []string{events.BucketJobs, events.BucketLocks} {
			if buckets[b], err = events.Bucket(ctx, js, b); err != nil {
				return err
			}
		}
		for _, s := range []string{events.StreamRequests, events.StreamTasks, events.StreamEvents, events.StreamRefresh} {
			if cfg.BindOnly {
				consumers[s], err = topo.BindConsumer(ctx, js, s)
			} else {
				consumers[s], err = topo.EnsureConsumer(ctx, js, s)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	// The last delivery of a failing task fails its vault, and a running
	// task's heartbeat must come well within its ack wait: go by the
	// consumer as it is, which another process (the init step) configured.
	tasks := consumers[events.StreamTasks].CachedInfo().Config
	if tasks.MaxDeliver > 0 {
		cfg.Sync.MaxDeliver = tasks.MaxDeliver
	}
	if hb := cfg.Sync.WithDefaults().Heartbeat; tasks.AckWait > 0 && hb > tasks.AckWait/3 {
		log.Warn().Dur("heartbeat", hb).Dur("task_ack_wait", tasks.AckWait).Msg("the vault-syncer consumer's ack wait is shorter than this worker's: heartbeat at a third of it")
		cfg.Sync.Heartbeat = max(tasks.AckWait/3, 10*time.Millisecond)
	}
	if cfg.Registry != nil && cfg.Sync.Metrics == nil {
		m, err := telemetry.NewWorkerMetrics(cfg.Registry)
		if err != nil {
			return nil, err
		}
		cfg.Sync.Metrics = m
	}
	factory, err := azure.NewFactory(cfg.Azure)
	if err != nil {
		return nil, err
	}
	st, err := store.Open(store.Config{Path: cfg.StorePath, NoSync: cfg.StoreNoSync, ResidentLimit: cfg.StoreResidentLimit, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	proj, err := inventory.NewProjector(st, js, cfg.InventoryBatch, log)
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	jobStore, err := jobs.New(js, buckets[events.BucketJobs], buckets[events.BucketLocks], jobs.Config{CASRetries: cfg.Sync.CASRetries()})
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	planner, err := akvsync.NewPlanner(cfg.Sync, js, jobStore)
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	syncer, err := akvsync.NewSyncer(cfg.Sync, nc, js, jobStore, azure.KeySource{Connections: cfg.Connections, Factory: factory}, proj)
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	tracker, err := akvsync.NewTracker(cfg.Sync, js, jobStore, proj)
	if err != nil {
		_ = st.Close()
		return nil, err
	}

	query, err := inventory.StartQueryService(nc, st, proj, log)
	if err != nil {
		_ = st.Close()
		return nil, fmt.Errorf("worker: query service: %w", err)
	}

	janitor, err := akvsync.NewJanitor(cfg.Sync, cfg.Janitor, nc, js, jobStore, proj)
	if err != nil {
		_ = query.Stop()
		_ = st.Close()
		return nil, err
	}

	runCtx, cancel := context.WithCancel(context.Background())
	if err := janitor.Subscribe(runCtx); err != nil {
		cancel()
		_ = query.Stop()
		_ = st.Close()
		return nil, err
	}
	w := &Worker{store: st, query: query, proj: proj, nc: nc, cancel: cancel, failed: make(chan struct{}),
		consumers: []jetstream.Consumer{consumers[events.StreamRequests], consumers[events.StreamTasks], consumers[events.StreamEvents]}}
	if cfg.Registry != nil {
		for _, c := range []prometheus.Collector{
			telemetry.NewConsumerCollector(0, w.consumers...),
			telemetry.NewInventoryCollector(w, inventory.SourceKeys, inventory.SourceJobs),
		} {
			if err := cfg.Registry.Register(c); err != nil {
				cancel()
				_ = query.Stop()
				_ = st.Close()
				return nil, fmt.Errorf("worker: register metrics: %w", err)
			}
		}
	}
	w.wg.Add(1)
	go func() { defer w.wg.Done(); w.catchUp(runCtx, log) }()
	w.run(runCtx, "projector", proj.Run)
	w.run(runCtx, "planner", func(ctx context.Context) error { return planner.Run(ctx, consumers[events.StreamRequests]) })
	w.run(runCtx, "syncer", func(ctx context.Context) error { return syncer.Run(ctx, consumers[events.StreamTasks]) })
	w.run(runCtx, "refresher", func(ctx context.Context) error { return syncer.RunRefresher(ctx, consumers[events.StreamRefresh]) })
	w.run(runCtx, "tracker", func(ctx context.Context) error { return tracker.Run(ctx, consumers[events.StreamEvents]) })
	w.run(runCtx, "janitor", janitor.Run)
	log.Info().Str("store", cfg.StorePath).Msg("worker started")
	return w, nil
}

func (w *Worker) run(ctx context.Context, name string, fn func(context.Context) error) {
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		err := fn(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = errors.New("stopped")
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.err == nil {
			w.err = fmt.Errorf("worker: %s: %w", name, err)
			close(w.failed)
		}
	}()
}

// catchUp marks the worker caught up once its inventory has applied
// both of its streams up to where they were (retrying until then).
func (w *Worker) catchUp(ctx context.Context, log zerolog.Logger) {
	for ctx.Err() == nil {
		ok := true
		for _, src := range []string{inventory.SourceKeys, inventory.SourceJobs} {
			done, err := w.proj.CatchUp(ctx, src, catchUpWait)
			if err != nil || !done {
				ok = false
				if ctx.Err() == nil {
					log.Debug().Err(err).Str("stream", src).Msg("inventory still catching up")
				}
				break
			}
		}
		if ok {
			w.caughtUp.Store(true)
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(catchUpRetry):
		}
	}
}

// Bounds of the catch-up behind Ready.
const (
	catchUpWait  = time.Minute
	catchUpRetry = time.Second
)

// Errors of [Worker.Ready].
var (
	ErrStopped      = errors.New("worker: stopped")
	ErrNotConnected = errors.New("worker: NATS not connected")
	ErrCatchingUp   = errors.New("worker: the inventory is catching up with its streams")
)

// Ready reports whether the worker can do its work: no component failed,
// NATS is connected, its JetStream consumers (and so the topology) are
// there, the store is open, and the inventory has caught up with its
// streams since start.
func (w *Worker) Ready(ctx context.Context) error {
	if w.closed.Load() {
		return ErrStopped
	}
	select {
	case <-w.failed:
		return w.Err()
	default:
	}
	if !w.nc.IsConnected() {
		return ErrNotConnected
	}
	for _, c := range w.consumers {
		if _, err := c.Info(ctx); err != nil {
			return fmt.Errorf("worker: consumer %s: %w", c.CachedInfo().Name, err)
		}
	}
	if _, err := w.store.Position(inventory.SourceKeys); err != nil {
		return fmt.Errorf("worker: store: %w", err)
	}
	if !w.caughtUp.Load() {
		return ErrCatchingUp
	}
	return nil
}

// Stats implements telemetry.Inventory.
func (w *Worker) Stats() store.Stats { return w.store.Stats() }

// Applied implements telemetry.Inventory.
func (w *Worker) Applied(source string) uint64 { return w.proj.Applied(source) }

// Failed is closed when a component fails: the worker no longer does its
// whole job and its process should exit (Err says why) so it is restarted.
func (w *Worker) Failed() <-chan struct{} { return w.failed }

// Err reports the first component failure, if any.
func (w *Worker) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Store is the worker's inventory store.
func (w *Worker) Store() *store.Store { return w.store }

// Projector is the worker's inventory projector.
func (w *Worker) Projector() *inventory.Projector { return w.proj }

// Close stops every component, waits for them, and closes the store.
func (w *Worker) Close() error {
	w.closed.Store(true)
	w.cancel()
	qerr := w.query.Stop()
	w.wg.Wait()
	return errors.Join(qerr, w.store.Close(), w.Err())
}

// WaitForTopology runs ensure until it succeeds, retrying with backoff and
// a log line per attempt while the NATS cluster is still forming or the
// topology is missing (events.ErrTopologyMissing: the init step has not
// run yet), until ctx ends; see akvsync.WhileForming for what counts as
// forming.
func WaitForTopology(ctx context.Context, log zerolog.Logger, ensure func(ctx context.Context) error) error {
	retryable := func(err error) bool { return errors.Is(err, events.ErrTopologyMissing) || akvsync.WhileForming(err) }
	return akvsync.Retry(ctx, log, akvsync.RetryPolicy{Initial: 250 * time.Millisecond, Max: topologyBackoffMax, Budget: -1,
		Retryable: retryable}, "ensure NATS topology", func(ctx context.Context) error {
		// Each attempt has its own deadline, so one lost request does not
		// stall the wait.
		actx, cancel := context.WithTimeout(ctx, topologyAttemptTimeout)
		defer cancel()
		return ensure(actx)
	})
}

// Bounds of WaitForTopology.
const (
	topologyBackoffMax     = 5 * time.Second
	topologyAttemptTimeout = 10 * time.Second
)
