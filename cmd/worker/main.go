// Command worker runs an akvsync worker: it plans jobs, syncs vaults with
// the Azure SDK, tracks job state, and keeps its own bbolt inventory that
// answers the API's queries. Run any number of them against one NATS
// cluster; each needs its own --store file.
//
// Every flag has an AKVSYNC_* environment variable (flag name upper-cased,
// dashes as underscores); a flag given on the command line wins.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"

	"github.com/akvsync/akvsync/cmd/internal/cli"
	"github.com/akvsync/akvsync/internal/azure"
	"github.com/akvsync/akvsync/internal/connections"
	"github.com/akvsync/akvsync/internal/natsconn"
	"github.com/akvsync/akvsync/internal/secrets"
	"github.com/akvsync/akvsync/internal/telemetry"
	"github.com/akvsync/akvsync/internal/worker"
	"github.com/akvsync/akvsync/pkg/events"
	akvsync "github.com/akvsync/akvsync/pkg/sync"
)

func main() {
	err := run(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

// errStarting is /readyz's reason while the worker starts.
var errStarting = errors.New("starting: waiting for NATS and the topology")

// defaultMemoryLimitMiB is the worker's default soft limit of the Go heap.
// A worker's own working set is small whatever the inventory's size: keys
// live in the streams and in the memory-mapped bbolt file, and what a
// worker holds at once is bounded by its parallelism and batch sizes.
// Without a limit the garbage collector lets the heap grow to twice the
// live heap before it collects (anonymous memory peaked at 190 MB while a
// worker synced 1,000,000 keys); the limit makes it collect earlier
// instead. It is soft: a live heap above it is not an error, only more
// collection work (the runtime caps that at half the CPU).
const defaultMemoryLimitMiB = 160

// defaultStoreResidentLimitMiB is the worker's default file-backed resident
// memory above which its inventory hands the pages of its map back to the
// page cache. It is lower than the store's own default (sized for the
// embedded API process, whose executable alone maps about 60 MiB): a
// worker's executable maps about 11 MiB, so 64 MiB leaves it some 50 MiB
// of the map between releases.
const defaultStoreResidentLimitMiB = 64

// defaultInventoryBatch is the worker's default of key records per bbolt
// transaction of its inventory (the embedded API process keeps
// inventory.DefaultBatchLimit, 1,000). bbolt's commit sorts the
// transaction's dirty nodes by key, reading every page the batch touched
// again: with 1,000 records a commit brought back about 80 MB of pages
// the apply had released, and the worker's RSS peaked at 250 MB.
const defaultInventoryBatch = 250

// setMemoryLimit applies the soft heap limit unless GOMEMLIMIT is set.
func setMemoryLimit(mib int) error {
	if mib < 0 {
		return fmt.Errorf("--memory-limit-mib %d is negative", mib)
	}
	if _, env := os.LookupEnv("GOMEMLIMIT"); env || mib == 0 {
		return nil
	}
	debug.SetMemoryLimit(int64(mib) << 20)
	return nil
}

func run(args []string) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	natsURL := fs.String("nats-url", "nats://127.0.0.1:4222", "NATS server URL(s), comma-separated")
	natsCreds := fs.String("nats-creds", "", "NATS credentials file (user JWT and nkey seed)")
	natsUser := fs.String("nats-user", "", "NATS user name")
	natsPassword := fs.String("nats-password", "", "NATS password (prefer AKVSYNC_NATS_PASSWORD)")
	storePath := fs.String("store", filepath.Join("data", "worker.db"), "this worker's bbolt inventory file (one per worker process)")
	connFile := fs.String("connections", "", "JSON file of Azure connections (see docs/operations.md)")
	manifest := fs.String("emulator-manifest", "", "akv-emulator manifest: adds a connection named \"emulator\"")
	masterKeys := fs.String("master-keys", "", "master key ring that opens connection secrets in the registry (set AKVSYNC_MASTER_KEYS instead of this flag)")
	masterKeyFile := fs.String("master-key-file", "", "file holding the master key ring")
	replicas := fs.Int("replicas", events.DefaultReplicas, "JetStream replicas of streams and buckets (3 in a cluster)")
	vaultPar := fs.Int("vault-parallelism", akvsync.DefaultVaultParallelism, "vaults synced at once by this worker")
	getConc := fs.Int("get-concurrency", akvsync.DefaultGetConcurrency, "GetKey calls in flight per vault")
	vaultRate := fs.Float64("vault-rate", akvsync.DefaultVaultRate, "Azure requests per second per vault (negative: unlimited)")
	subRate := fs.Float64("subscription-rate", akvsync.DefaultSubscriptionRate, "Azure requests per second per subscription, shared by every worker (give all workers the same value; negative: unlimited)")
	budgetLinger := fs.Duration("budget-linger", akvsync.DefaultBudgetLinger, "keep this worker's share of a subscription's budget this long after its last vault sync there")
	ackWait := fs.Duration("task-ack-wait", events.DefaultTaskAckWait, "redeliver a vault task after this long without a heartbeat")
	retention := fs.Duration("job-retention", akvsync.DefaultJobRetention, "delete finished jobs this long after they finished")
	jobsKept := fs.Int("jobs-kept", akvsync.DefaultJobsKept, "keep at most this many finished jobs (the oldest beyond it are deleted)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	inventoryBatch := fs.Int("inventory-batch", defaultInventoryBatch, "key records the inventory applies per bbolt transaction (bounds the pages one commit touches)")
	residentLimit := fs.Int("store-resident-limit-mib", defaultStoreResidentLimitMiB, "file-backed resident memory in MiB above which the inventory hands its mapped pages back to the page cache (negative: at every apply)")
	initTopo := fs.Bool("init-topology", false, "the init step: create or update the streams, buckets and durable consumers (with --replicas and --task-ack-wait), then exit; connect as the admin NATS user (akvsync-admin)")
	metricsListen := fs.String("metrics-listen", "", "serve /metrics, /healthz and /readyz on this host:port (plain HTTP, no authentication; empty: off)")
	metricsPublic := fs.Bool("metrics-public", false, "allow a non-loopback --metrics-listen address")
	azurePrices := fs.String("azure-prices", "", "JSON file of Azure Key Vault prices per 10,000 operations, for the cost estimate of job finished events (see docs/operations.md)")
	memLimit := fs.Int("memory-limit-mib", defaultMemoryLimitMiB, "soft limit of the Go heap in MiB (debug.SetMemoryLimit); 0 for none; the GOMEMLIMIT environment variable, when set, wins")
	if err := cli.ParseFlags(fs, args, os.Stdout); err != nil {
		return err
	}
	log, err := cli.NewLogger(os.Stderr, *logLevel, false, "akvsync-worker")
	if err != nil {
		return err
	}
	if err := setMemoryLimit(*memLimit); err != nil {
		return err
	}
	natsOpts := natsconn.Auth{Creds: *natsCreds, User: *natsUser, Password: *natsPassword}.Options
	if *initTopo {
		return initTopology(*natsURL, events.Topology{Replicas: *replicas, TaskAckWait: *ackWait}, log, natsOpts(events.RoleAdmin))
	}
	conns, err := connections.ConfiguredConnections(*connFile, *manifest)
	if err != nil {
		return err
	}
	haveKey := *masterKeys != "" || *masterKeyFile != ""
	if len(conns) == 0 && !haveKey {
		return errors.New("no Azure connection: set the master key (AKVSYNC_MASTER_KEYS) to use the connection registry, or give --connections or --emulator-manifest")
	}

	prices, err := events.LoadPrices(*azurePrices)
	if err != nil {
		return err
	}
	var ring secrets.KeyRing
	if haveKey {
		if ring, err = secrets.MasterKeyRing(*masterKeys, *masterKeyFile, ""); err != nil {
			return err
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	resolver := connections.Chain{Static: conns}
	host, _ := os.Hostname()
	cfg := worker.Config{
		Topology:           events.Topology{Replicas: *replicas, TaskAckWait: *ackWait},
		StorePath:          *storePath,
		StoreResidentLimit: int64(*residentLimit) << 20,
		InventoryBatch:     *inventoryBatch,
		Sync: akvsync.Config{Source: "akvsync/worker/" + host, Heartbeat: min(akvsync.DefaultHeartbeat, *ackWait/3), VaultParallelism: *vaultPar, GetConcurrency: *getConc, VaultRate: *vaultRate,
			SubscriptionRate: *subRate, BudgetLinger: *budgetLinger, Logger: log, Prices: prices},
		Azure:       azure.Config{},
		Janitor:     akvsync.JanitorConfig{JobRetention: *retention, JobsKept: *jobsKept},
		Connections: resolver,
		Logger:      log,
		BindOnly:    true,
		Registry:    reg,
	}
	// Every setting is checked before anything starts: bad input is a
	// clear error at once, not a wait for NATS followed by one.
	if err := cfg.Validate(); err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The metrics server starts first: /readyz answers 503 while the
	// worker waits for NATS and its topology.
	var running atomic.Pointer[worker.Worker]
	if *metricsListen != "" {
		ready := func(ctx context.Context) error {
			w := running.Load()
			if w == nil {
				return errStarting
			}
			return w.Ready(ctx)
		}
		ms, err := telemetry.Listen(telemetry.Config{Listen: *metricsListen, Public: *metricsPublic},
			telemetry.Handler(reg, ready, 0), log)
		if err != nil {
			return err
		}
		defer func() { _ = ms.Close() }()
	}
	// Waits (and logs) while no NATS server answers yet.
	nc, err := natsconn.Connect(ctx, *natsURL, "akvsync-worker", log, natsOpts(events.RoleWorker)...)
	if err != nil {
		return err
	}
	defer nc.Close()
	if haveKey {
		sealer, err := secrets.NewSealer(ring)
		if err != nil {
			return err
		}
		defer sealer.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return err
		}
		// The init step creates the topology; wait for it.
		if err := worker.WaitForTopology(ctx, log, func(ctx context.Context) error { return events.Require(ctx, js, events.RoleWorker) }); err != nil {
			return err
		}
		if resolver.Registry, err = connections.New(ctx, js, sealer, connections.Config{Logger: log}); err != nil {
			return err
		}
		cfg.Connections = resolver
	}
	w, err := worker.Start(ctx, nc, cfg)
	if err != nil {
		return err
	}
	running.Store(w)
	select {
	case <-ctx.Done():
	case <-w.Failed():
		log.Error().Err(w.Err()).Msg("a worker component failed; exiting so the worker is restarted")
		_ = w.Close()
		return w.Err()
	}
	log.Info().Msg("stopping")
	done := make(chan error, 1)
	go func() { done <- w.Close() }()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		return errors.New("did not stop within 30s")
	}
}

// initTopology is the init step: it creates or updates every stream,
// bucket and durable consumer, waiting while the NATS cluster forms, and
// returns. The services' own users may not do it (docs/security.md).
func initTopology(url string, topo events.Topology, log zerolog.Logger, opts []nats.Option) error {
	if err := topo.Validate(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	nc, err := natsconn.Connect(ctx, url, "akvsync-init", log, opts...)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	if err := worker.WaitForTopology(ctx, log, func(ctx context.Context) error { return topo.Init(ctx, js) }); err != nil {
		return err
	}
	t := topo.WithDefaults()
	log.Info().Int("replicas", t.Replicas).Dur("task_ack_wait", t.TaskAckWait).Msg("NATS topology created or updated")
	return nil
}
