package inventory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/akvsync/akvsync/internal/store"
	"github.com/akvsync/akvsync/pkg/events"
	"github.com/akvsync/akvsync/pkg/jobs"
)

// Sources the projector applies, by the stream they come from.
const (
	// SourceKeys is the KEYS stream.
	SourceKeys = events.StreamKeys
	// SourceJobs is the stream behind the jobs bucket.
	SourceJobs = "KV_" + events.BucketJobs
)

// DefaultBatchLimit bounds the records applied in one bbolt transaction.
const DefaultBatchLimit = 1000

// DefaultBatchWait is how long the projector keeps collecting records after
// the first one of a batch, so a burst commits in few large transactions
// (each commit rewrites pages and fsyncs) instead of many small ones.
const DefaultBatchWait = 20 * time.Millisecond

// Projector applies the KEYS stream and the jobs bucket to a store. Each
// worker runs one over its own store; they all converge on the same state.
type Projector struct {
	st         *store.Store
	js         jetstream.JetStream
	log        zerolog.Logger
	batchLimit int

	mu      sync.Mutex
	applied map[string]uint64
	changed chan struct{} // closed and replaced after every applied batch
}

// NewProjector returns a projector over st. batchLimit <= 0 takes
// DefaultBatchLimit.
func NewProjector(st *store.Store, js jetstream.JetStream, batchLimit int, log zerolog.Logger) (*Projector, error) {
	if batchLimit <= 0 {
		batchLimit = DefaultBatchLimit
	}
	applied, err := st.Positions()
	if err != nil {
		return nil, fmt.Errorf("inventory: read positions: %w", err)
	}
	return &Projector{st: st, js: js, batchLimit: batchLimit, applied: applied, changed: make(chan struct{}),
		log: log.With().Str("component", "projector").Logger()}, nil
}

type item struct {
	source string
	msg    jetstream.Msg
}

// Run applies both sources until ctx ends. Each source has its own loop
// and batches (bbolt serializes the commits), so a flood of key records
// never delays the job records behind it: job queries stay current while
// a big sync runs.
func (p *Projector) Run(ctx context.Context) error {
	errc := make(chan error, 2)
	for _, src := range []string{SourceKeys, SourceJobs} {
		go func() { errc <- p.runSource(ctx, src) }()
	}
	var first error
	for range 2 {
		if err := <-errc; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// runSource follows one source and applies it in batches until ctx ends;
// then it drains what the stream holds (within DefaultDrainTimeout).
func (p *Projector) runSource(ctx context.Context, src string) error {
	// The follower and the store outlive ctx by the drain below.
	runCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := make(chan item, 4*p.batchLimit)
	errc := make(chan error, 1)
	go func() { errc <- p.follow(runCtx, src, ch) }()
	stop := ctx.Done()
	var drainTo map[string]uint64
	var drainDeadline <-chan time.Time
	for {
		if drainTo != nil && p.reached(drainTo) {
			return nil
		}
		select {
		case <-stop:
			// A graceful stop leaves the store current: apply what the
			// stream holds now, within DefaultDrainTimeout.
			stop = nil
			drainTo = p.lastSequences(src)
			drainDeadline = time.After(DefaultDrainTimeout)
		case <-drainDeadline:
			p.log.Warn().Str("source", src).Msg("stopping before the store caught up with the stream; it resumes at the next start")
			return nil
		case err := <-errc:
			if drainTo != nil || ctx.Err() != nil {
				return nil
			}
			if err == nil {
				err = errors.New("inventory: a stream follower stopped")
			}
			return err
		case it := <-ch:
			batch := []item{it}
			wait := time.NewTimer(DefaultBatchWait)
		collect:
			for len(batch) < p.batchLimit {
				select {
				case it := <-ch:
					batch = append(batch, it)
				case <-wait.C:
					break collect
				}
			}
			wait.Stop()
			if err := p.apply(runCtx, batch); err != nil {
				return err
			}
		}
	}
}

// DefaultDrainTimeout bounds how long a stopping projector keeps applying
// to catch up with the streams.
const DefaultDrainTimeout = 5 * time.Second

// lastSequences reads the sources' last stream sequences (0 when unknown:
// nothing to wait for).
func (p *Projector) lastSequences(sources ...string) map[string]uint64 {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	out := map[string]uint64{}
	for _, src := range sources {
		st, err := p.js.Stream(ctx, src)
		if err != nil {
			continue
		}
		info, err := st.Info(ctx)
		if err != nil {
			continue
		}
		out[src] = info.State.LastSeq
	}
	return out
}

// reached reports whether every source is applied up to target.
func (p *Projector) reached(target map[string]uint64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for src, seq := range target {
		if p.applied[src] < seq {
			return false
		}
	}
	return true
}

// follow feeds the messages of one source after its applied position into ch.
func (p *Projector) follow(ctx context.Context, source string, ch chan<- item) error {
	next := p.Applied(source) + 1 // the next sequence to hand over
	backoff := followBackoffMin
	for attempt := 1; ; attempt++ {
		err := p.followFrom(ctx, source, &next, ch)
		if ctx.Err() != nil {
			return nil
		}
		// A node lost, a leader moved, the connection re-established: a
		// follower never gives up; it resumes after the last message it
		// handed over, so nothing is skipped or applied twice.
		p.log.Warn().Err(err).Str("source", source).Int("attempt", attempt).Uint64("next_seq", next).
			Dur("retry_in", backoff).Msg("stream follower interrupted; resuming")
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, followBackoffMax)
	}
}

// Backoff of a stream follower that lost its consumer.
const (
	followBackoffMin = 100 * time.Millisecond
	followBackoffMax = 5 * time.Second
)

// followStallCheck is how often a follower checks that its consumer
// still delivers: a consumer whose server died can go quiet without an
// error. If nothing came for two whole periods (while the follower was
// not waiting on the store) and at both checks the consumer could not be
// read or had messages pending, it is recreated.
const followStallCheck = 5 * time.Second

// errFollowerStalled reports a consumer that stopped delivering.
var errFollowerStalled = errors.New("the consumer stopped delivering")

// followFrom feeds the messages of source from *next on into ch, advancing
// *next past each message handed over, until ctx ends or the consumer
// fails or stalls.
func (p *Projector) followFrom(ctx context.Context, source string, next *uint64, ch chan<- item) error {
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	if *next > 1 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, *next
	}
	cons, err := p.js.OrderedConsumer(ctx, source, cfg)
	if err != nil {
		return fmt.Errorf("inventory: follow %s: %w", source, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(p.batchLimit))
	if err != nil {
		return fmt.Errorf("inventory: follow %s: %w", source, err)
	}
	var (
		pos     atomic.Uint64 // *next, for the watchdog
		sending atomic.Bool   // waiting for the store, not the consumer
		stalled atomic.Bool
	)
	pos.Store(*next)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		t := time.NewTicker(followStallCheck)
		defer t.Stop()
		last := pos.Load()
		suspect := false
		for {
			select {
			case <-ctx.Done():
				it.Stop()
				return
			case <-stop:
				it.Stop()
				return
			case <-t.C:
			}
			cur := pos.Load()
			if cur != last || sending.Load() {
				last, suspect = cur, false
				continue
			}
			// Messages pending at one check may have been published an
			// instant before it: only a consumer that still has not
			// delivered them a whole period later is stalled.
			if !p.consumerStalled(ctx, cons, source, cur) {
				suspect = false
				continue
			}
			if suspect {
				stalled.Store(true)
				it.Stop()
				return
			}
			suspect = true
		}
	}()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if stalled.Load() {
				err = errFollowerStalled
			}
			return fmt.Errorf("inventory: follow %s: %w", source, err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("inventory: follow %s: metadata: %w", source, err)
		}
		if md.Sequence.Stream < *next {
			continue // handed over before the consumer was recreated
		}
		sending.Store(true)
		select {
		case ch <- item{source, msg}:
			sending.Store(false)
			*next = md.Sequence.Stream + 1
			pos.Store(*next)
		case <-ctx.Done():
			return nil
		}
	}
}

// consumerStalled reports a consumer that cannot be read (its server is
// gone), that has messages pending it did not deliver, or whose stream
// holds messages at or after next, the follower's position: after a node
// of a cluster died, an ordered consumer can be left on a replica that
// counts nothing pending while the stream's leader has more.
func (p *Projector) consumerStalled(ctx context.Context, cons jetstream.Consumer, source string, next uint64) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	info, err := cons.Info(ctx)
	if err != nil || info.NumPending > 0 {
		return true
	}
	st, err := p.js.Stream(ctx, source) // answered by the stream's leader
	return err != nil || st.CachedInfo().State.LastSeq >= next
}

// apply commits one batch and its positions in one transaction.
func (p *Projector) apply(ctx context.Context, items []item) error {
	b := store.Batch{Positions: map[string]uint64{}}
	for _, it := range items {
		md, err := it.msg.Metadata()
		if err != nil {
			return fmt.Errorf("inventory: metadata: %w", err)
		}
		b.Positions[it.source] = max(b.Positions[it.source], md.Sequence.Stream)
		switch it.source {
		case SourceKeys:
			if vaultID, ok := events.ParseVaultRemovedSubject(it.msg.Subject()); ok {
				// The store deletes removed vaults' keys and tombstones
				// them, so no key of the vault is applied, before or after
				// the marker (a vault id is never reused: a record after
				// the marker comes from a sync that was running when the
				// vault was removed). Dropping them here only saves work.
				b.Keys = slices.DeleteFunc(b.Keys, func(r events.KeyRecord) bool { return r.VaultID == vaultID })
				b.RemovedVaults = append(b.RemovedVaults, vaultID)
				continue
			}
			var r events.KeyRecord
			err := json.Unmarshal(it.msg.Data(), &r)
			id, ok := events.NormalizeID(r.ID) // the store keeps key ids as UUIDs
			if err != nil || !ok {
				p.log.Warn().Err(err).Str("subject", it.msg.Subject()).Msg("skipping undecodable key record")
				continue
			}
			r.ID = id
			b.Keys = append(b.Keys, r)
		case SourceJobs:
			if err := addJobRecord(&b.Jobs, it.msg); err != nil {
				p.log.Warn().Err(err).Str("subject", it.msg.Subject()).Msg("skipping undecodable job record")
			}
		}
	}
	if err := p.st.Apply(ctx, b); err != nil {
		return fmt.Errorf("inventory: apply: %w", err)
	}
	p.mu.Lock()
	for src, seq := range b.Positions {
		p.applied[src] = max(p.applied[src], seq)
	}
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
	return nil
}

// jobsKeyPrefix is the subject prefix of the jobs bucket's keys.
const jobsKeyPrefix = "$KV." + events.BucketJobs + "."

// addJobRecord adds one message of the jobs bucket's stream to the batch:
// a header, a plan chunk or a vault record (see pkg/jobs), or the deletion
// of a job (a delete or purge of its header).
func addJobRecord(c *store.JobChanges, msg jetstream.Msg) error {
	key := strings.TrimPrefix(msg.Subject(), jobsKeyPrefix)
	jobID, kind, _ := jobs.ParseKey(key)
	if op := msg.Headers().Get("KV-Operation"); op == "DEL" || op == "PURGE" {
		if kind == jobs.KindHeader {
			c.Deleted = append(c.Deleted, jobID)
		}
		return nil
	}
	switch kind {
	case jobs.KindHeader:
		var j events.Job
		if err := json.Unmarshal(msg.Data(), &j); err != nil || j.ID == "" {
			return fmt.Errorf("job header: %w", errors.Join(err, errors.New("no id")))
		}
		c.Headers = append(c.Headers, j)
	case jobs.KindPlan:
		var pc events.JobPlanChunk
		if err := json.Unmarshal(msg.Data(), &pc); err != nil {
			return fmt.Errorf("job plan: %w", err)
		}
		pc.JobID = jobID
		c.Plans = append(c.Plans, pc)
	case jobs.KindVault:
		var v events.JobVault
		if err := json.Unmarshal(msg.Data(), &v); err != nil {
			return fmt.Errorf("job vault: %w", err)
		}
		v.JobID = jobID
		c.Vaults = append(c.Vaults, v)
	default:
		return fmt.Errorf("unknown jobs key %q", key)
	}
	return nil
}

// Applied is the last stream sequence of source in the store.
func (p *Projector) Applied(source string) uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.applied[source]
}

// WaitFor blocks until source is applied up to seq, ctx ends, or timeout
// passes; it reports whether the store caught up.
func (p *Projector) WaitFor(ctx context.Context, source string, seq uint64, timeout time.Duration) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		done, ch := p.applied[source] >= seq, p.changed
		p.mu.Unlock()
		if done {
			return true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		case <-deadline.C:
			return false
		}
	}
}

// CatchUp waits until source is applied up to the stream's last sequence
// at the time of the call.
func (p *Projector) CatchUp(ctx context.Context, source string, timeout time.Duration) (bool, error) {
	st, err := p.js.Stream(ctx, source)
	if err != nil {
		return false, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return false, err
	}
	return p.WaitFor(ctx, source, info.State.LastSeq, timeout), nil
}

// DefaultVaultKeysWait bounds how long VaultKeys waits for the store to
// catch up with the KEYS stream.
const DefaultVaultKeysWait = 30 * time.Second

// VaultKeys returns a vault's keys by lower-cased name, after the store
// has applied the vault's last record in the KEYS stream (one direct get
// of the last message on the vault's subjects): every record of the vault
// published before the call is reflected. It waits for that vault alone,
// not for the whole stream, so a vault synced while a big job floods the
// stream does not queue behind the others' records; a vault never synced
// waits for nothing. It implements sync.Inventory.
func (p *Projector) VaultKeys(ctx context.Context, vaultID string) (map[string]events.KeyRecord, error) {
	seq, err := p.vaultLastSeq(ctx, vaultID)
	if err != nil {
		return nil, fmt.Errorf("inventory: last record of vault %s: %w", vaultID, err)
	}
	if seq > 0 && !p.WaitFor(ctx, SourceKeys, seq, DefaultVaultKeysWait) {
		return nil, fmt.Errorf("inventory: the store did not apply %s up to %d within %s", SourceKeys, seq, DefaultVaultKeysWait)
	}
	out := map[string]events.KeyRecord{}
	err = p.st.VaultKeys(ctx, vaultID, func(r events.KeyRecord) error {
		out[strings.ToLower(r.Name)] = r
		return nil
	})
	return out, err
}

// vaultLastSeq is the KEYS stream sequence of the vault's last record (0
// when it has none).
func (p *Projector) vaultLastSeq(ctx context.Context, vaultID string) (uint64, error) {
	st, err := p.js.Stream(ctx, SourceKeys)
	if err != nil {
		return 0, err
	}
	m, err := st.GetLastMsgForSubject(ctx, events.VaultKeysFilter(vaultID))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return m.Sequence, nil
}

// DefaultProgressWait bounds how long JobProgress waits for the store to
// apply the jobs stream up to the sequence asked for.
const DefaultProgressWait = 30 * time.Second

// JobProgress returns a job's vault counts once the store has applied the
// jobs bucket's stream up to seq. It implements sync.Progress.
func (p *Projector) JobProgress(ctx context.Context, jobID string, seq uint64) (events.JobProgress, error) {
	if seq > 0 && !p.WaitFor(ctx, SourceJobs, seq, DefaultProgressWait) {
		return events.JobProgress{}, fmt.Errorf("inventory: the store did not apply %s up to %d within %s", SourceJobs, seq, DefaultProgressWait)
	}
	return p.st.JobProgress(ctx, jobID)
}

// DefaultStallTimeout is how long WaitKeys waits while the store applies
// nothing at all before it gives up.
const DefaultStallTimeout = 30 * time.Second

// WaitKeys blocks until the store has applied the KEYS stream up to seq.
// It waits as long as the store keeps applying records, however far
// behind it is (a lagging inventory holds back whoever waits: that is the
// backpressure), and gives up with an error wrapping [ErrStalled] only
// when nothing was applied for DefaultStallTimeout, or when ctx ends. It
// implements sync.Inventory and sync.Progress.
func (p *Projector) WaitKeys(ctx context.Context, seq uint64) error {
	return p.WaitAdvancing(ctx, SourceKeys, seq, DefaultStallTimeout)
}

// WaitAdvancing blocks until source is applied up to seq, as long as the
// store applies something of source within every stall period; else it
// returns an error wrapping [ErrStalled]. It returns ctx's error when ctx
// ends first.
func (p *Projector) WaitAdvancing(ctx context.Context, source string, seq uint64, stall time.Duration) error {
	last := p.Applied(source)
	for {
		if p.WaitFor(ctx, source, seq, stall) {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		now := p.Applied(source)
		if now == last {
			return fmt.Errorf("inventory: %w: %s applied up to %d for %s, waiting for %d", ErrStalled, source, now, stall, seq)
		}
		last = now
	}
}

// InProgressJobs lists the jobs in progress, once the store has caught up
// with the jobs stream. It implements sync.JobIndex.
func (p *Projector) InProgressJobs(ctx context.Context) ([]events.Job, error) {
	if ok, err := p.CatchUp(ctx, SourceJobs, DefaultProgressWait); err != nil || !ok {
		return nil, fmt.Errorf("inventory: catch up with %s: %w", SourceJobs, errors.Join(err, errBehind))
	}
	return p.st.InProgressJobs(ctx)
}

// ExpiredJobs lists finished jobs past retention. It implements
// sync.JobIndex.
func (p *Projector) ExpiredJobs(ctx context.Context, olderThan time.Time, keep, limit int) ([]string, error) {
	return p.st.ExpiredJobs(ctx, olderThan, keep, limit)
}
