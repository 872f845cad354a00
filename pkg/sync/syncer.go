package sync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/akvsync/akvsync/pkg/events"
	"github.com/akvsync/akvsync/pkg/jobs"
)

// Inventory is the worker's own inventory. VaultKeys gives a vault's keys
// as the KEYS stream holds them now, by lower-cased key name: what the last
// sync of the vault left. It must reflect every record published before
// the call (the vault's lock keeps other syncs of it away meanwhile).
// WaitKeys blocks until the inventory has applied the KEYS stream up to
// seq, for as long as the inventory makes progress (it returns an error
// when the inventory is stuck or ctx ends): a vault's sync ends only once
// its keys are in the worker's inventory, so syncing never runs ahead of
// the inventory (backpressure) and a job seen completed has its keys
// queryable.
type Inventory interface {
	VaultKeys(ctx context.Context, vaultID string) (map[string]events.KeyRecord, error)
	WaitKeys(ctx context.Context, seq uint64) error
}

// Syncer consumes vault tasks: it pages through one vault with azkeys,
// fetches the keys whose `updated` time changed since the last sync,
// publishes their records to the KEYS stream, marks keys missing from a
// completed listing gone, and publishes the vault's result event.
//
// Ack semantics: a task is acked after its result event is stored; it is
// nacked with a growing delay on a transient failure (throttling or a vault
// unreachable after the SDK's retries) until its last delivery, which fails
// the vault; a task of a finished or aborted job is acked without Azure
// traffic; an undecodable task is terminated. While it runs, the task is
// kept alive with InProgress heartbeats.
type Syncer struct {
	cfg       Config
	nc        *nats.Conn
	js        jetstream.JetStream
	store     *jobs.Store
	keys      KeySource
	inventory Inventory
	log       zerolog.Logger

	aborts   *abortRegistry
	removals *abortRegistry // running syncs by vault id
	vaults   jetstream.KeyValue
	jobCache *jobCache
	global   chan struct{}
	vaultLim *limiterSet
	budget   *Budget
	// ready is closed once Run has set up vaults and budget (RunRefresher
	// waits for it); keyStream is the KEYS stream the refresher reads.
	ready     chan struct{}
	keyStream jetstream.Stream
}

// NewSyncer returns a syncer. store reads the job records (to honour
// abort before and during a sync); keys opens each vault's Key Vault
// client; inv gives the previous state of a vault for delta sync and
// gone-marking.
func NewSyncer(cfg Config, nc *nats.Conn, js jetstream.JetStream, store *jobs.Store, keys KeySource, inv Inventory) (*Syncer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	return &Syncer{
		cfg: cfg, nc: nc, js: js, store: store, keys: keys, inventory: inv,
		log:      cfg.Logger.With().Str("component", "syncer").Logger(),
		aborts:   newAbortRegistry(),
		removals: newAbortRegistry(),
		jobCache: newJobCache(store),
		global:   make(chan struct{}, cfg.GlobalGetConcurrency),
		vaultLim: newLimiterSet(cfg.VaultRate),
		budget:   NewLocalBudget(cfg.SubscriptionRate),
		ready:    make(chan struct{}),
	}, nil
}

// Run consumes tasks from cons until ctx ends, and listens for abort
// requests to cancel running syncs of cancelled jobs. It shares each
// subscription's budget with the other workers through the budget bucket
// (events.BucketBudget), leaving every subscription when it returns.
func (s *Syncer) Run(ctx context.Context, cons jetstream.Consumer) error {
	if s.cfg.SubscriptionRate > 0 {
		kv, err := events.Bucket(ctx, s.js, events.BucketBudget)
		if err != nil {
			return err
		}
		b, err := NewBudget(ctx, kv, BudgetConfig{Rate: s.cfg.SubscriptionRate, Linger: s.cfg.BudgetLinger, Source: s.cfg.Source, Logger: s.cfg.Logger})
		if err != nil {
			return err
		}
		s.budget = b
		bctx, stop := context.WithCancel(context.WithoutCancel(ctx))
		done := make(chan struct{})
		go func() { defer close(done); _ = b.Run(bctx) }()
		defer func() { stop(); <-done }()
	}
	vaults, err := events.Bucket(ctx, s.js, events.BucketVaults)
	if err != nil {
		return err
	}
	s.vaults = vaults
	// remove-vault publishes a marker on the KEYS stream: stop the vault's
	// running syncs at once (the heartbeat's registry check covers a
	// marker this worker missed).
	rsub, err := s.nc.Subscribe(events.VaultRemovedFilter(), func(m *nats.Msg) {
		if vaultID, ok := events.ParseVaultRemovedSubject(m.Subject); ok {
			if n := s.removals.cancel(vaultID, ErrVaultRemoved); n > 0 {
				s.log.Info().Str("vault_id", vaultID).Int("syncs", n).Msg("stopping the syncs of a removed vault")
			}
		}
	})
	if err != nil {
		return fmt.Errorf("subscribe to vault removals: %w", err)
	}
	defer func() { _ = rsub.Unsubscribe() }()
	sub, err := s.nc.Subscribe(events.JobEventFilter(events.KindJobAbortRequested), func(m *nats.Msg) {
		if jobID, _, err := events.ParseJobEventSubject(m.Subject); err == nil {
			s.jobCache.markAborted(jobID)
			if n := s.aborts.abort(jobID); n > 0 {
				s.log.Info().Str("job_id", jobID).Int("vaults", n).Msg("aborting running vault syncs")
			}
		}
	})
	if err != nil {
		return fmt.Errorf("subscribe to abort requests: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	close(s.ready)
	return consume(ctx, cons, s.cfg.VaultParallelism, s.handle)
}

// handle syncs the vault of one task. Once the vault's Azure work is done
// it releases its slot (another vault starts) and, with the heartbeat still
// beating, waits for this worker's inventory to hold the vault's keys
// before it reports the result and acks.
func (s *Syncer) handle(ctx context.Context, msg jetstream.Msg, release func()) {
	var task events.VaultTask
	if err := json.Unmarshal(msg.Data(), &task); err != nil || task.JobID == "" || task.Vault.ID == "" {
		s.log.Error().Err(err).Str("subject", msg.Subject()).Msg("dropping undecodable vault task")
		_ = msg.Term()
		return
	}
	attempt := 1
	if md, err := msg.Metadata(); err == nil {
		attempt = deliveryCount(md.NumDelivered)
	}
	log := s.log.With().Str("job_id", task.JobID).Str("vault", task.Vault.QualifiedName()).Int("attempt", attempt).Logger()

	// Register for abort before reading the job, so an abort between the
	// read and the sync is not missed.
	syncCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	defer s.aborts.add(task.JobID, cancel)()
	defer s.removals.add(task.Vault.ID, cancel)()

	// A first delivery may use a state read a moment ago by another task of
	// the same job; a redelivery reads afresh (its vault may be done).
	var job events.Job
	err := Retry(ctx, log, RetryPolicy{}, "read job", func(ctx context.Context) (err error) {
		job, err = s.jobCache.get(ctx, task.JobID, attempt > 1)
		return err
	})
	if errors.Is(err, jobs.ErrNotFound) {
		log.Warn().Msg("task of an unknown job; dropping")
		_ = msg.Term()
		return
	} else if err != nil {
		log.Warn().Err(err).Msg("cannot read job; will retry")
		_ = msg.NakWithDelay(s.cfg.RetryDelay)
		return
	}
	if job.Finished() {
		log.Debug().Msg("task of a finished job; acking")
		_ = msg.Ack()
		return
	}
	// The vault's own record: a vault already terminal (a redelivered or
	// republished task) is not synced again.
	var jv events.JobVault
	err = Retry(ctx, log, RetryPolicy{}, "read vault status", func(ctx context.Context) (err error) {
		jv, _, err = s.store.Vault(ctx, task.JobID, task.Vault.ID)
		return err
	})
	if err == nil && jv.Status.Terminal() {
		log.Debug().Msg("task already done; acking")
		_ = msg.Ack()
		return
	} else if err != nil && !errors.Is(err, jobs.ErrNotFound) {
		log.Warn().Err(err).Msg("cannot read the vault's job record; will retry")
		_ = msg.NakWithDelay(s.cfg.RetryDelay)
		return
	}
	res := events.VaultResult{JobID: task.JobID, VaultID: task.Vault.ID, Vault: task.Vault.QualifiedName(), Attempt: attempt, StartedAt: time.Now().UTC()}
	if job.Abort {
		s.finish(ctx, msg, log, res, events.VaultAborted, nil)
		return
	}
	stopBeat := s.heartbeat(syncCtx, msg, task.JobID, task.Vault.ID, cancel)
	// A vault removed from the registry since the job was planned is
	// skipped: no Azure traffic, no key of it published.
	if s.vaultRemoved(ctx, log, task.Vault.ID) {
		stopBeat()
		s.finish(ctx, msg, log, res, events.VaultAborted, ErrVaultRemoved)
		return
	}
	if err := s.event(syncCtx, log, res, events.KindVaultStarted, fmt.Sprintf("%s/%s/%s/%d", res.JobID, res.VaultID, events.KindVaultStarted, attempt)); err != nil {
		// Only progress display: the result event carries the start time.
		log.Debug().Err(err).Msg("cannot publish vault started")
	}
	s.cfg.Metrics.VaultSyncStarted(task.JobID)
	err = s.syncVault(syncCtx, task, &res, log)
	release()
	s.awaitKeys(ctx, log, res)
	s.cfg.Metrics.VaultSyncStopped(task.JobID)
	// Removed while it synced (and this worker missed the marker)? Asked
	// while the heartbeat still beats.
	removed := errors.Is(context.Cause(syncCtx), ErrVaultRemoved) || err == nil && s.vaultRemoved(ctx, log, task.Vault.ID)
	stopBeat()

	switch {
	case removed:
		// Removed while it synced: the inventory has dropped its keys
		// (and ignores any record published after the removal).
		s.finish(ctx, msg, log, res, events.VaultAborted, ErrVaultRemoved)
	case err == nil:
		s.finish(ctx, msg, log, res, events.VaultCompleted, nil)
	case errors.Is(context.Cause(syncCtx), ErrAborted):
		s.finish(ctx, msg, log, res, events.VaultAborted, nil)
	case ctx.Err() != nil:
		// This worker is stopping: let another one take the task now.
		_ = msg.Nak()
	case errors.Is(err, ErrPermanent) || attempt >= s.cfg.MaxDeliver:
		s.finish(ctx, msg, log, res, events.VaultFailed, err)
	default:
		delay := s.cfg.RetryDelay * time.Duration(attempt)
		log.Warn().Err(err).Dur("retry_in", delay).Msg("vault sync failed transiently; will retry")
		_ = msg.NakWithDelay(delay)
	}
}

// finish publishes the vault's terminal event and acks the task; if the
// event cannot be stored the task is redelivered instead.
func (s *Syncer) finish(ctx context.Context, msg jetstream.Msg, log zerolog.Logger, res events.VaultResult, status events.VaultStatus, cause error) {
	res.Status = status
	res.FinishedAt = time.Now().UTC()
	if cause != nil {
		res.Error = errorText(cause)
	}
	kind := map[events.VaultStatus]events.EventKind{
		events.VaultCompleted: events.KindVaultCompleted, events.VaultFailed: events.KindVaultFailed, events.VaultAborted: events.KindVaultAborted,
	}[status]
	if err := s.event(ctx, log, res, kind, fmt.Sprintf("%s/%s/%s/%d", res.JobID, res.VaultID, kind, res.Attempt)); err != nil {
		log.Warn().Err(err).Msg("cannot publish vault result; will retry the task")
		_ = msg.NakWithDelay(s.cfg.RetryDelay)
		return
	}
	s.cfg.Metrics.VaultSyncFinished(res, res.FinishedAt.Sub(res.StartedAt))
	ev := log.Info()
	if cause != nil {
		ev = log.Warn().Err(cause)
	}
	ev.Str("status", string(status)).Int("listed", res.Listed).Int("fetched", res.Fetched).
		Int("unchanged", res.Unchanged).Int("gone", res.Gone).Int64("azure_requests", res.Azure.Calls()).Int64("throttled", res.Azure.Throttled).
		Dur("took", res.FinishedAt.Sub(res.StartedAt)).Msg("vault sync finished")
	// An ack lost to a leader change only costs a redelivery, which finds
	// the vault terminal and acks it without syncing.
	if err := Retry(ctx, log, ackRetry, "ack vault task", msg.DoubleAck); err != nil {
		log.Warn().Err(err).Msg("cannot ack vault task; it will be redelivered and acked")
	}
}

// awaitKeys waits until this worker's inventory has applied the vault's
// key records: a vault is reported only once its keys are queryable here,
// which also holds back new vaults while the inventory lags (see
// consume). It waits as long as the inventory makes progress; a stalled
// inventory is logged and the vault reported anyway.
func (s *Syncer) awaitKeys(ctx context.Context, log zerolog.Logger, res events.VaultResult) {
	if res.KeysSeq == 0 {
		return
	}
	if err := s.inventory.WaitKeys(ctx, res.KeysSeq); err != nil && ctx.Err() == nil {
		log.Warn().Err(err).Msg("reporting the vault before this worker's inventory holds its keys")
	}
}

// ackRetry bounds the retries of a task ack: an ack that reached the
// consumer before its reply was lost may not be answered again.
var ackRetry = RetryPolicy{Attempts: 5}

// event publishes a vault event, retrying transient NATS errors (msgID
// deduplicates the repeats).
func (s *Syncer) event(ctx context.Context, log zerolog.Logger, res events.VaultResult, kind events.EventKind, msgID string) error {
	return Retry(ctx, log, RetryPolicy{}, "publish vault "+string(kind), func(ctx context.Context) error {
		_, err := publishEvent(ctx, s.js, s.cfg.Source, events.VaultEventSubject(res.JobID, res.VaultID, kind),
			kind.Type("vault"), res.VaultID, msgID, res)
		return err
	})
}

// vaultRemoved reports whether the vault is gone from the registry, or
// being removed. A registry that cannot be read reports false (the
// removal marker and the next check still catch it).
func (s *Syncer) vaultRemoved(ctx context.Context, log zerolog.Logger, vaultID string) bool {
	if s.vaults == nil {
		return false
	}
	e, err := s.vaults.Get(ctx, vaultID)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return true
	}
	if err != nil {
		log.Debug().Err(err).Msg("cannot read the vault's registry record")
		return false
	}
	var v events.Vault
	return json.Unmarshal(e.Value(), &v) == nil && v.Removing
}

// heartbeat keeps msg from being redelivered while the sync runs, and
// re-reads the job and the vault's registry record at every beat: an
// abort or a removal whose message this worker missed (it was
// disconnected) still stops the sync within one beat.
func (s *Syncer) heartbeat(ctx context.Context, msg jetstream.Msg, jobID, vaultID string, cancel context.CancelCauseFunc) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(s.cfg.Heartbeat)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				// A beat lost to a consumer leader change is made up by
				// the next one: the ack wait spans at least three.
				if err := msg.InProgress(); err != nil {
					s.log.Debug().Err(err).Str("job_id", jobID).Msg("heartbeat failed")
				}
				// The checks may not delay the next beat.
				cctx, cancelCheck := context.WithTimeout(ctx, s.cfg.Heartbeat)
				if j, _, err := s.store.Get(cctx, jobID); err == nil && j.Abort {
					cancel(ErrAborted)
				}
				if s.vaultRemoved(cctx, s.log, vaultID) {
					cancel(ErrVaultRemoved)
				}
				cancelCheck()
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// MaxErrorText bounds the error text of one vault in its job record, so
// a job's detail (up to events.GetDetailVaults vaults) stays small.
const MaxErrorText = 128

// errorText is the message a user sees in detailed_status: Azure's status
// and error code when there is one; else the first line of the error, cut
// to MaxErrorText bytes.
func errorText(err error) string {
	var re *azcore.ResponseError
	var afe *azidentity.AuthenticationFailedError
	switch {
	case errors.As(err, &re):
		return fmt.Sprintf("%d %s", re.StatusCode, re.ErrorCode)
	case errors.As(err, &afe) && afe.RawResponse != nil:
		return fmt.Sprintf("authentication failed: Entra ID answered %d", afe.RawResponse.StatusCode)
	}
	msg := strings.TrimPrefix(err.Error(), ErrPermanent.Error()+": ")
	msg, _, _ = strings.Cut(msg, "\n")
	if len(msg) > MaxErrorText {
		msg = strings.ToValidUTF8(msg[:MaxErrorText], "") + "…"
	}
	return msg
}

// classify marks errors that retrying the task cannot fix: Key Vault's
// 400/401/403/404 and Entra ID refusing the credential.
func classify(err error) error {
	var re *azcore.ResponseError
	var afe *azidentity.AuthenticationFailedError
	switch {
	case errors.As(err, &re):
		switch re.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusBadRequest:
			return fmt.Errorf("%w: %w", ErrPermanent, err)
		}
	case errors.As(err, &afe) && afe.RawResponse != nil:
		switch afe.RawResponse.StatusCode {
		case http.StatusBadRequest, http.StatusUnauthorized:
			return fmt.Errorf("%w: %w", ErrPermanent, err)
		}
	}
	return err
}
