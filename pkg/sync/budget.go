package sync

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// Defaults of [BudgetConfig].
const (
	// DefaultBudgetLinger is how long a worker keeps its lease on a
	// subscription after its last vault sync there ends, so a worker
	// that moves from vault to vault does not leave and rejoin; short,
	// so that at the end of a job the workers still syncing get the
	// share of those done.
	DefaultBudgetLinger = time.Second
	// DefaultBudgetJoinTimeout bounds joining a subscription (reading
	// the other leases and writing this worker's).
	DefaultBudgetJoinTimeout = 10 * time.Second
)

// BudgetConfig configures a [Budget].
type BudgetConfig struct {
	// Rate is each subscription's request budget per second, shared by
	// every worker syncing vaults of it (default DefaultSubscriptionRate,
	// Azure's limit; negative: unlimited).
	Rate float64
	// Linger is how long a lease outlives the worker's last vault sync in
	// its subscription (default DefaultBudgetLinger; negative: none).
	Linger time.Duration
	// JoinTimeout bounds joining a subscription (default
	// DefaultBudgetJoinTimeout).
	JoinTimeout time.Duration
	// WorkerID names this worker's leases: letters, digits, '-' and '_'
	// (default: random). Each worker process needs its own.
	WorkerID string
	// Source is written in the leases for operators (e.g. the host).
	Source string
	// Logger receives membership changes.
	Logger zerolog.Logger
}

// WithDefaults returns c with zero fields replaced by defaults.
func (c BudgetConfig) WithDefaults() BudgetConfig {
	if c.Rate == 0 {
		c.Rate = DefaultSubscriptionRate
	}
	if c.Linger == 0 {
		c.Linger = DefaultBudgetLinger
	}
	if c.Linger < 0 {
		c.Linger = 0
	}
	if c.JoinTimeout == 0 {
		c.JoinTimeout = DefaultBudgetJoinTimeout
	}
	if c.WorkerID == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		c.WorkerID = hex.EncodeToString(b[:])
	}
	return c
}

// Validate reports settings that cannot work.
func (c BudgetConfig) Validate() error {
	c = c.WithDefaults()
	switch {
	case c.JoinTimeout < 0:
		return fmt.Errorf("%w: negative budget join timeout", ErrInvalidConfig)
	case !isToken(c.WorkerID):
		return fmt.Errorf("%w: worker id %q must be letters, digits, '-' or '_'", ErrInvalidConfig, c.WorkerID)
	}
	return nil
}

// Budget shares each Azure subscription's request budget among the worker
// processes syncing vaults of it, through the budget bucket (a KV bucket
// with a TTL, events.BucketBudget).
//
// A worker that starts a vault sync in a subscription joins it: it reads
// the live leases of the subscription ("<subscription>.<worker>-<n>"), writes
// its own, and from then on watches them. Its share is Rate divided by the
// live leases, its own included; the share is the ceiling of its adaptive
// limiter for the subscription, which the vault syncs of that subscription
// on this worker share. The lease is renewed every third of the TTL while
// the worker has syncs there (plus Linger), then deleted. Peers count a
// lease live for one TTL after they last saw it written, so a worker that
// died stops counting after one TTL.
//
// Bound: the shares add up to at most Rate, except right after a worker
// joins: until every peer has seen its lease (one NATS delivery, about a
// millisecond on a healthy cluster) the sum is at most Rate plus the
// joiners' shares. Leaving never overshoots: a leaver stops sending
// before its lease is deleted, and a dead worker's share stays unused for
// up to one TTL. A worker that cannot renew its lease for two thirds of
// the TTL (cut off from NATS) drops to ThrottleFloor of its share before
// its peers stop counting it; one that cannot join at all paces at
// ThrottleFloor of the budget, without a lease.
//
// A Budget without a bucket (NewLocalBudget) paces each subscription at
// the whole Rate: right for a single worker process.
type Budget struct {
	cfg BudgetConfig
	kv  jetstream.KeyValue
	ttl time.Duration
	log zerolog.Logger
	wg  sync.WaitGroup

	mu       sync.Mutex
	subs     map[string]*subBudget
	gen      uint64                      // memberships so far, in lease keys
	fallback map[string]*AdaptiveLimiter // per subscription, while joining fails
}

// subBudget is this worker's membership of one subscription.
type subBudget struct {
	token string // the subscription as a key token
	key   string // this worker's lease key
	lim   *AdaptiveLimiter
	ready chan struct{} // closed when joined (or failed: err)
	err   error
	stop  context.CancelFunc // stops the watch

	// Guarded by Budget.mu.
	users     int
	idleSince time.Time
	peers     map[string]time.Time // other workers' lease keys -> when last seen written
	renewed   time.Time            // last successful write of our lease
	degraded  bool                 // our lease may have lapsed: at the floor
	workers   int                  // live leases, ours included, behind the ceiling
}

// NewBudget returns a budget shared through kv, the budget bucket, whose
// TTL is the lease lifetime. Run must be running for leases to be renewed.
func NewBudget(ctx context.Context, kv jetstream.KeyValue, cfg BudgetConfig) (*Budget, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("budget bucket status: %w", err)
	}
	if st.TTL() <= 0 {
		return nil, fmt.Errorf("%w: budget bucket %s has no TTL", ErrInvalidConfig, st.Bucket())
	}
	b := NewLocalBudget(cfg.Rate)
	b.cfg, b.kv, b.ttl = cfg, kv, st.TTL()
	b.log = cfg.Logger.With().Str("component", "budget").Str("worker_id", cfg.WorkerID).Logger()
	return b, nil
}

// NewLocalBudget returns a budget that is not shared: each subscription is
// paced at perSecond (negative: unlimited) by this process alone.
func NewLocalBudget(perSecond float64) *Budget {
	cfg := BudgetConfig{Rate: perSecond}.WithDefaults()
	return &Budget{cfg: cfg, log: zerolog.Nop(), subs: map[string]*subBudget{}, fallback: map[string]*AdaptiveLimiter{}}
}

// WorkerID is the id in this worker's lease keys.
func (b *Budget) WorkerID() string { return b.cfg.WorkerID }

// Acquire joins subscription (if this worker is not syncing in it
// already) and returns the limiter every request to it must wait on, and
// a release to call when the vault sync ends. The limiter is nil when the
// budget is unlimited. When joining fails (NATS unreachable), the sync
// goes on at ThrottleFloor of the budget, and the next one tries to join
// again; the error is ctx's only.
func (b *Budget) Acquire(ctx context.Context, subscription string) (*AdaptiveLimiter, func(), error) {
	if b.cfg.Rate <= 0 {
		return nil, func() {}, nil
	}
	b.mu.Lock()
	sb, ok := b.subs[subscription]
	if !ok {
		sb = &subBudget{token: leaseToken(subscription), ready: make(chan struct{}), peers: map[string]time.Time{}, workers: 1}
		// Each membership has a key of its own, so deleting the lease of
		// one that ended cannot delete the next one's.
		b.gen++
		sb.key = fmt.Sprintf("%s.%s-%d", sb.token, b.cfg.WorkerID, b.gen)
		b.subs[subscription] = sb
	}
	sb.users++
	b.mu.Unlock()
	if !ok {
		if b.kv == nil {
			sb.lim = NewAdaptiveLimiter(b.cfg.Rate)
			close(sb.ready)
		} else {
			b.join(subscription, sb)
		}
	}
	release := func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		sb.users--
		if sb.users == 0 {
			sb.idleSince = time.Now()
			if b.kv != nil {
				time.AfterFunc(b.cfg.Linger, func() { b.leaveIfIdle(subscription, sb) })
			}
		}
	}
	select {
	case <-sb.ready:
	case <-ctx.Done():
		release()
		return nil, nil, ctx.Err()
	}
	if sb.err != nil {
		// NATS is unreachable (the next sync tries again): go on at the
		// floor, on one limiter per subscription, rather than fail.
		release()
		b.log.Warn().Err(sb.err).Str("subscription", subscription).Msg("cannot join the subscription budget; pacing at the floor")
		b.mu.Lock()
		defer b.mu.Unlock()
		lim := b.fallback[subscription]
		if lim == nil {
			lim = NewAdaptiveLimiter(b.cfg.Rate * ThrottleFloor)
			b.fallback[subscription] = lim
		}
		return lim, func() {}, nil
	}
	return sb.lim, release, nil
}

// join reads the subscription's leases, writes ours and starts watching;
// a failure is left in sb.err and sb is forgotten, so the next Acquire
// tries again.
func (b *Budget) join(subscription string, sb *subBudget) {
	defer close(sb.ready)
	fail := func(err error) {
		sb.err = fmt.Errorf("join the budget of subscription %s: %w", subscription, err)
		b.mu.Lock()
		if b.subs[subscription] == sb {
			delete(b.subs, subscription)
		}
		b.mu.Unlock()
	}
	ctx, cancel := context.WithCancel(context.Background())
	jctx, jcancel := context.WithTimeout(ctx, b.cfg.JoinTimeout)
	defer jcancel()
	w, err := b.kv.Watch(ctx, sb.token+".*")
	if err != nil {
		cancel()
		fail(err)
		return
	}
	// The current leases come first, then a nil entry.
	now := time.Now()
	initial := map[string]time.Time{}
	for done := false; !done; {
		select {
		case e, ok := <-w.Updates():
			switch {
			case !ok:
				cancel()
				fail(errors.New("lease watch closed"))
				return
			case e == nil:
				done = true
			case e.Key() != sb.key && e.Operation() == jetstream.KeyValuePut:
				// When a lease was written before we looked is not
				// trusted across clocks: count it a whole TTL from now.
				initial[e.Key()] = now
			}
		case <-jctx.Done():
			cancel()
			_ = w.Stop()
			fail(jctx.Err())
			return
		}
	}
	if _, err := b.kv.Put(jctx, sb.key, []byte(b.cfg.Source)); err != nil {
		cancel()
		_ = w.Stop()
		fail(err)
		return
	}
	b.mu.Lock()
	sb.stop = cancel
	sb.renewed = time.Now()
	for k, t := range initial {
		sb.peers[k] = t
	}
	// Born at its share: a limiter born at the whole rate would hold a
	// bucket sized for it.
	sb.lim = NewAdaptiveLimiter(b.cfg.Rate / float64(1+len(sb.peers)))
	b.reshare(subscription, sb)
	b.mu.Unlock()
	b.wg.Add(1)
	go b.watch(subscription, sb, w)
}

// watch applies the subscription's lease changes until the watch stops.
func (b *Budget) watch(subscription string, sb *subBudget, w jetstream.KeyWatcher) {
	defer b.wg.Done()
	defer func() { _ = w.Stop() }()
	for e := range w.Updates() {
		if e == nil || e.Key() == sb.key {
			continue
		}
		b.mu.Lock()
		if e.Operation() == jetstream.KeyValuePut {
			sb.peers[e.Key()] = time.Now()
		} else {
			delete(sb.peers, e.Key())
		}
		b.reshare(subscription, sb)
		b.mu.Unlock()
	}
}

// reshare sets sb's ceiling from its live leases; b.mu is held.
func (b *Budget) reshare(subscription string, sb *subBudget) {
	n := 1 + len(sb.peers)
	share := b.cfg.Rate / float64(n)
	if sb.degraded {
		share *= ThrottleFloor
	}
	sb.lim.SetCeiling(share)
	if n != sb.workers {
		b.log.Info().Str("subscription", subscription).Int("workers", n).Float64("share", share).Msg("subscription budget shared")
		sb.workers = n
	}
}

// Share is this worker's current share of subscription's budget, requests
// per second, and the number of workers it is shared with (0, 0 when this
// worker is not syncing in it).
func (b *Budget) Share(subscription string) (perSecond float64, workers int) {
	b.mu.Lock()
	sb, ok := b.subs[subscription]
	b.mu.Unlock()
	if !ok {
		return 0, 0
	}
	select {
	case <-sb.ready:
	default:
		return 0, 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return sb.lim.Ceiling(), 1 + len(sb.peers)
}

// Run renews this worker's leases, forgets peers whose lease lapsed and
// leaves subscriptions idle for longer than Linger, until ctx ends; then
// it deletes its leases and returns.
func (b *Budget) Run(ctx context.Context) error {
	if b.kv == nil {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(b.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			b.leaveAll()
			return nil
		case <-t.C:
			b.tick(ctx)
		}
	}
}

// tick is one round of renewals, expiries and departures.
func (b *Budget) tick(ctx context.Context) {
	now := time.Now()
	type renewal struct {
		subscription string
		sb           *subBudget
		leave        bool
	}
	var todo []renewal
	b.mu.Lock()
	for sub, sb := range b.subs {
		select {
		case <-sb.ready:
		default:
			continue // still joining
		}
		if sb.err != nil {
			continue
		}
		leave := sb.users == 0 && now.Sub(sb.idleSince) >= b.cfg.Linger
		if leave {
			delete(b.subs, sub)
		}
		// Our lease may have lapsed at the peers: stop counting on it.
		if !leave && !sb.degraded && now.Sub(sb.renewed) > 2*b.ttl/3 {
			sb.degraded = true
			b.log.Warn().Str("subscription", sub).Dur("since", now.Sub(sb.renewed)).Msg("cannot renew the budget lease; pacing at the floor")
		}
		// Peers whose lease lapsed are gone; but cut off from NATS we see
		// no renewals at all, so we keep counting them.
		for k, seen := range sb.peers {
			if !sb.degraded && now.Sub(seen) > b.ttl {
				delete(sb.peers, k)
			}
		}
		b.reshare(sub, sb)
		todo = append(todo, renewal{sub, sb, leave})
	}
	b.mu.Unlock()
	for _, r := range todo {
		if r.leave {
			b.leave(ctx, r.sb)
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, b.ttl/3)
		_, err := b.kv.Put(pctx, r.sb.key, []byte(b.cfg.Source))
		cancel()
		if err != nil {
			b.log.Warn().Err(err).Str("subscription", r.subscription).Msg("cannot renew the budget lease")
			continue
		}
		b.mu.Lock()
		r.sb.renewed = time.Now()
		if r.sb.degraded {
			// Back in touch: the peers we kept count a TTL from now,
			// unless their leases turn out deleted meanwhile.
			r.sb.degraded = false
			for k := range r.sb.peers {
				r.sb.peers[k] = r.sb.renewed
			}
			b.reshare(r.subscription, r.sb)
		}
		b.mu.Unlock()
	}
}

// leaveIfIdle leaves subscription when sb is still this worker's
// membership and has had no sync for Linger: the peers take over its share
// at once rather than at the next renewal round.
func (b *Budget) leaveIfIdle(subscription string, sb *subBudget) {
	b.mu.Lock()
	idle := b.subs[subscription] == sb && sb.users == 0 && time.Since(sb.idleSince) >= b.cfg.Linger && sb.stop != nil
	if idle {
		delete(b.subs, subscription)
	}
	b.mu.Unlock()
	if idle {
		b.leave(context.Background(), sb)
	}
}

// leave stops watching a subscription and deletes our lease, so the peers
// take over our share at once.
func (b *Budget) leave(ctx context.Context, sb *subBudget) {
	sb.stop()
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.ttl/3)
	defer cancel()
	if err := b.kv.Delete(dctx, sb.key); err != nil {
		b.log.Debug().Err(err).Str("key", sb.key).Msg("cannot delete the budget lease; it expires")
	}
}

// leaveAll leaves every subscription (the worker is stopping) and waits
// for the watches to end.
func (b *Budget) leaveAll() {
	b.mu.Lock()
	var joined []*subBudget
	for sub, sb := range b.subs {
		select {
		case <-sb.ready:
			if sb.err == nil {
				joined = append(joined, sb)
			}
			delete(b.subs, sub)
		default:
		}
	}
	b.mu.Unlock()
	for _, sb := range joined {
		b.leave(context.Background(), sb)
	}
	b.wg.Wait()
}

// leaseToken is a subscription id usable as one token of a KV key: the id
// itself when it is letters, digits, '-' and '_' (Azure's are GUIDs),
// else a hash of it.
func leaseToken(subscription string) string {
	if subscription == "" {
		return "none"
	}
	if isToken(subscription) {
		return subscription
	}
	sum := sha256.Sum256([]byte(subscription))
	return "h" + hex.EncodeToString(sum[:16])
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}
