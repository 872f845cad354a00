package sync

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/akvsync/akvsync/pkg/events"
)

// syncVault syncs one vault into the KEYS stream and fills res. It returns
// ctx's cause when cancelled.
func (s *Syncer) syncVault(ctx context.Context, task events.VaultTask, res *events.VaultResult, log zerolog.Logger) error {
	v := task.Vault
	if v.VaultURI == "" {
		return fmt.Errorf("%w: vault %s is no longer registered", ErrPermanent, v.QualifiedName())
	}
	usage := &usageCounter{managedHSM: v.IsManagedHSM()}
	// The subscription's limiter is set below, before the client sends
	// its first request.
	th := &throttles{vaultID: v.ID, vault: s.vaultLim.get(v.ID), usage: usage, metrics: s.cfg.Metrics}
	var client *azkeys.Client
	err := Retry(ctx, log, RetryPolicy{}, "read connection", func(ctx context.Context) (err error) {
		client, err = s.keys.KeysClient(ctx, v.Connection, v.VaultURI, th)
		return err
	})
	switch {
	case errors.Is(err, ErrPermanent):
		return err
	case errors.Is(err, ErrUnknownConnection):
		return fmt.Errorf("%w: %w", ErrPermanent, err)
	case err != nil:
		// The registry may be briefly unreachable: retry the task.
		return fmt.Errorf("read connection %q: %w", v.Connection, err)
	}
	subLim, release, err := s.budget.Acquire(ctx, v.SubscriptionID)
	if err != nil {
		return err
	}
	defer release()
	th.subscription = subLim
	defer func() { res.Azure = usage.snapshot() }()
	var prev map[string]events.KeyRecord
	err = Retry(ctx, log, RetryPolicy{}, "read previous inventory", func(ctx context.Context) (err error) {
		prev, err = s.inventory.VaultKeys(ctx, v.ID)
		return err
	})
	if err != nil {
		return fmt.Errorf("read previous inventory: %w", err)
	}

	// The client may be shared with other syncs of the vault (KeySource):
	// this run's requests carry its own throttle.
	run := &vaultRun{s: s, ctx: WithThrottle(ctx, th), log: log, task: task, client: client, prev: prev, now: time.Now().UTC(), usage: usage,
		seen: make(map[string]bool, len(prev)), sem: make(chan struct{}, s.cfg.GetConcurrency), compactAt: minAckCompaction}
	err = run.list()
	run.wg.Wait()
	if err == nil {
		err = run.firstErr()
	}
	if err == nil {
		err = run.markGone()
	}
	if werr := run.waitPublished(); err == nil {
		err = werr
	}
	res.Listed, res.Fetched, res.Unchanged, res.Gone, res.KeysSeq = run.listed, run.fetched, run.unchanged, run.gone, run.maxSeq
	res.New, res.Changed = run.added, run.changed
	if cause := context.Cause(ctx); cause != nil {
		return cause
	}
	return classify(err)
}

// vaultRun is the state of one vault sync.
type vaultRun struct {
	s      *Syncer
	ctx    context.Context
	log    zerolog.Logger
	task   events.VaultTask
	client *azkeys.Client
	prev   map[string]events.KeyRecord
	now    time.Time
	usage  *usageCounter
	sem    chan struct{}
	wg     sync.WaitGroup

	// noKeySizeAPI is set once the service refused KeySizeAPIVersion.
	noKeySizeAPI atomic.Bool

	mu                               sync.Mutex
	seen                             map[string]bool
	listed, fetched, unchanged, gone int
	added, changed                   int // fetched keys new to the inventory, and changed ones
	err                              error
	// acks are the publishes not yet seen acknowledged (see compactAcks).
	acks      []jetstream.PubAckFuture
	compactAt int
	maxSeq    uint64
}

// list pages through the vault, starting a GetKey for every new or changed
// key. Abort is checked before every page; a cancel also stops the GetKeys
// in flight.
func (r *vaultRun) list() error {
	pager := r.client.NewListKeyPropertiesPager(nil)
	for pager.More() {
		if err := r.ctx.Err(); err != nil {
			return err
		}
		if err := r.firstErr(); err != nil {
			return err
		}
		page, err := pager.NextPage(r.ctx)
		if err != nil {
			return fmt.Errorf("list keys: %w", err)
		}
		for _, item := range page.Value {
			if item == nil || item.KID == nil {
				continue
			}
			name := item.KID.Name()
			lower := strings.ToLower(name)
			r.mu.Lock()
			r.listed++
			r.seen[lower] = true
			p, had := r.prev[lower]
			// A symmetric key stored without its size (by a version that
			// did not read it) is read again while the service tells sizes.
			sizeUnknown := p.KeySize == 0 && strings.HasPrefix(p.Kty, "oct") && !r.noKeySizeAPI.Load()
			if had && !p.Gone && !sizeUnknown && item.Attributes != nil && item.Attributes.Updated != nil && p.Updated == item.Attributes.Updated.Unix() {
				r.unchanged++
				r.mu.Unlock()
				continue
			}
			r.mu.Unlock()
			if err := r.acquire(); err != nil {
				return err
			}
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				defer r.release()
				r.fetch(name, p, had)
			}()
		}
	}
	return nil
}

func (r *vaultRun) acquire() error {
	select {
	case r.sem <- struct{}{}:
	case <-r.ctx.Done():
		return r.ctx.Err()
	}
	select {
	case r.s.global <- struct{}{}:
		return nil
	case <-r.ctx.Done():
		<-r.sem
		return r.ctx.Err()
	}
}

func (r *vaultRun) release() { <-r.s.global; <-r.sem }

func (r *vaultRun) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err == nil {
		r.err = err
	}
}

func (r *vaultRun) firstErr() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// fetch gets the latest version of one key and publishes its record.
func (r *vaultRun) fetch(name string, prev events.KeyRecord, had bool) {
	rec, err := getKey(r.ctx, r.client, r.task, name, r.now, &r.noKeySizeAPI, r.log)
	if err != nil {
		r.getFailed(name, err)
		return
	}
	if had {
		rec.FirstSeenAt = prev.FirstSeenAt
	}
	if strings.HasSuffix(rec.Kty, "-HSM") {
		r.usage.hsmKeyRead()
	}
	r.mu.Lock()
	r.fetched++
	if had && !prev.Gone {
		r.changed++
	} else {
		r.added++
	}
	r.mu.Unlock()
	r.publish(rec)
}

// getFailed handles a failed GetKey: a key deleted between the listing and
// the get is not seen (so a completed listing marks it gone); any other
// error fails the vault.
func (r *vaultRun) getFailed(name string, err error) {
	var re *azcore.ResponseError
	if errors.As(err, &re) && re.StatusCode == http.StatusNotFound {
		r.mu.Lock()
		delete(r.seen, strings.ToLower(name))
		r.mu.Unlock()
		return
	}
	r.fail(fmt.Errorf("get key %s: %w", name, err))
}

// getKey reads the latest version of a key as an inventory record. It
// makes one GetKey call, and a second for a symmetric (oct-HSM) key,
// whose material Key Vault never returns, when the first answer lacks
// key_size: the version is read again with KeySizeAPIVersion, the
// first api-version whose JWK has key_size. A service that does not know
// that version (400) sets noKeySizeAPI, and sizes stay 0 (unknown) from
// then on.
func getKey(ctx context.Context, client *azkeys.Client, task events.VaultTask, name string, now time.Time, noKeySizeAPI *atomic.Bool, log zerolog.Logger) (events.KeyRecord, error) {
	var raw *http.Response
	resp, err := client.GetKey(policy.WithCaptureResponse(ctx, &raw), name, "", nil)
	if err != nil {
		return events.KeyRecord{}, err
	}
	rec := keyRecord(task, resp.KeyBundle, now)
	if rec.KeySize != 0 || !strings.HasPrefix(rec.Kty, "oct") {
		return rec, nil
	}
	if rec.KeySize = jwkKeySize(raw); rec.KeySize > 0 || noKeySizeAPI.Load() {
		return rec, nil
	}
	var again *http.Response
	actx := policy.WithCaptureResponse(WithAPIVersion(ctx, KeySizeAPIVersion), &again)
	if _, err := client.GetKey(actx, name, rec.Version, nil); err != nil {
		var re *azcore.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusBadRequest {
			noKeySizeAPI.Store(true)
			log.Debug().Err(err).Msg("the service has no api-version with symmetric key sizes: sizes stay unknown")
			return rec, nil
		}
		return events.KeyRecord{}, err
	}
	rec.KeySize = jwkKeySize(again)
	return rec, nil
}

// jwkKeySize reads key.key_size from a captured key bundle answer (0: absent).
func jwkKeySize(resp *http.Response) int {
	if resp == nil {
		return 0
	}
	body, err := runtime.Payload(resp)
	if err != nil {
		return 0
	}
	var kb struct {
		Key struct {
			KeySize int `json:"key_size"`
		} `json:"key"`
	}
	if json.Unmarshal(body, &kb) != nil || kb.Key.KeySize < 0 {
		return 0
	}
	return kb.Key.KeySize
}

// markGone publishes a gone record for every key of the previous inventory
// that the completed listing did not return.
func (r *vaultRun) markGone() error {
	for lower, p := range r.prev {
		if r.seen[lower] || p.Gone {
			continue
		}
		p.Gone, p.JobID, p.ChangedAt, p.SyncedAt = true, r.task.JobID, r.now, r.now
		r.gone++
		r.publish(p)
	}
	return r.firstErr()
}

func (r *vaultRun) publish(rec events.KeyRecord) {
	raw, err := json.Marshal(rec)
	if err != nil {
		r.fail(err)
		return
	}
	subject := events.KeySubject(rec.VaultID, rec.Name)
	var f jetstream.PubAckFuture
	err = Retry(r.ctx, r.log, RetryPolicy{}, "publish key record", func(ctx context.Context) (err error) {
		f, err = r.s.js.PublishAsync(subject, raw)
		if errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
			// Too many publishes in flight (a burst of gone keys, many
			// vaults at once, or a stream electing a leader): let them
			// drain or time out before the next attempt.
			select {
			case <-r.s.js.PublishAsyncComplete():
			case <-ctx.Done():
			}
		}
		return err
	})
	if err != nil {
		r.fail(fmt.Errorf("publish key %s: %w", rec.Name, err))
		return
	}
	r.mu.Lock()
	r.acks = append(r.acks, f)
	if len(r.acks) >= r.compactAt {
		r.compactAcks()
	}
	r.mu.Unlock()
}

// minAckCompaction is the fewest unresolved publishes a vault run keeps
// before it drops the acknowledged ones.
const minAckCompaction = 128

// compactAcks drops the publishes already acknowledged, keeping the
// highest sequence: each holds its record's bytes until dropped, and a
// vault's records would otherwise stay in memory until its last is
// published. The next compaction comes after the kept ones double, so the
// work stays linear in the records published. Called with r.mu held.
func (r *vaultRun) compactAcks() {
	kept := r.acks[:0]
	for _, f := range r.acks {
		select {
		case ack := <-f.Ok():
			r.maxSeq = max(r.maxSeq, ack.Sequence)
		default:
			kept = append(kept, f)
		}
	}
	clear(r.acks[len(kept):])
	r.acks = kept
	r.compactAt = max(minAckCompaction, 2*len(kept))
}

// PublishAckWait is how long waitPublished waits for the acks of a vault's
// key records before it publishes the unacknowledged ones again: an ack
// lost with a JetStream node never arrives.
const PublishAckWait = 5 * time.Second

// waitPublished waits for every key record to be stored in the KEYS
// stream. A record whose publish failed transiently (the stream was
// electing a leader, the connection was re-established) or whose ack did
// not come within PublishAckWait is published again, synchronously and
// with retries: the KEYS stream keeps one message per subject, so a
// repeat is harmless.
func (r *vaultRun) waitPublished() error {
	r.mu.Lock()
	acks := r.acks
	r.mu.Unlock()
	deadline := time.NewTimer(PublishAckWait)
	defer deadline.Stop()
	expired := false
	for _, f := range acks {
		var err error
		if !expired {
			select {
			case ack := <-f.Ok():
				r.maxSeq = max(r.maxSeq, ack.Sequence)
				continue
			case err = <-f.Err():
			case <-deadline.C:
				expired = true
			}
		}
		if expired {
			select {
			case ack := <-f.Ok():
				r.maxSeq = max(r.maxSeq, ack.Sequence)
				continue
			case err = <-f.Err():
			default:
				err = jetstream.ErrAsyncPublishTimeout
			}
		}
		if !IsTransient(err) {
			return fmt.Errorf("store key record: %w", err)
		}
		if err := r.republish(f.Msg()); err != nil {
			return err
		}
	}
	return nil
}

// republish publishes a key record again, waiting for its ack.
func (r *vaultRun) republish(m *nats.Msg) error {
	return Retry(r.ctx, r.log, RetryPolicy{}, "store key record", func(ctx context.Context) error {
		ack, err := r.s.js.PublishMsg(ctx, &nats.Msg{Subject: m.Subject, Data: m.Data})
		if err != nil {
			return fmt.Errorf("store key record: %w", err)
		}
		r.maxSeq = max(r.maxSeq, ack.Sequence)
		return nil
	})
}

// keyRecord converts the SDK's key bundle to an inventory record.
func keyRecord(task events.VaultTask, kb azkeys.KeyBundle, now time.Time) events.KeyRecord {
	v := task.Vault
	rec := events.KeyRecord{
		VaultID: v.ID, VaultName: v.Name, SubscriptionID: v.SubscriptionID, Cloud: v.Cloud, Region: v.Location,
		JobID: task.JobID, FirstSeenAt: now, ChangedAt: now, SyncedAt: now, Tags: map[string]string{},
	}
	if k := kb.Key; k != nil {
		if k.KID != nil {
			rec.Kid = string(*k.KID)
			rec.Name, rec.Version = k.KID.Name(), k.KID.Version()
		}
		if k.Kty != nil {
			rec.Kty = string(*k.Kty)
		}
		for _, op := range k.KeyOps {
			if op != nil {
				rec.KeyOps = append(rec.KeyOps, string(*op))
			}
		}
		b64 := base64.RawURLEncoding.EncodeToString
		rec.N, rec.E, rec.X, rec.Y = b64(k.N), b64(k.E), b64(k.X), b64(k.Y)
		if k.Crv != nil {
			rec.Curve = string(*k.Crv)
		}
		rec.KeySize = keySize(k)
	}
	if a := kb.Attributes; a != nil {
		rec.Enabled = a.Enabled == nil || *a.Enabled
		rec.NotBefore, rec.Expires, rec.Created, rec.Updated = unix(a.NotBefore), unix(a.Expires), unix(a.Created), unix(a.Updated)
		if a.RecoveryLevel != nil {
			rec.RecoveryLevel = string(*a.RecoveryLevel)
		}
		if a.RecoverableDays != nil {
			rec.RecoverableDays = int(*a.RecoverableDays)
		}
		rec.Exportable = a.Exportable != nil && *a.Exportable
		if a.HSMPlatform != nil {
			rec.HSMPlatform = *a.HSMPlatform
		}
	}
	rec.Managed = kb.Managed != nil && *kb.Managed
	for k, val := range kb.Tags {
		if val != nil {
			rec.Tags[k] = *val
		}
	}
	rec.ID = events.KeyID(v.ID, rec.Name)
	return rec
}

func unix(t *time.Time) int64 {
	if t == nil {
		return 0
	}
	return t.Unix()
}

// keySize is the key size in bits: the modulus length for RSA, the curve
// size for EC; 0 for symmetric keys, whose material the service never
// returns (see vaultRun.symmetricKeySize).
func keySize(k *azkeys.JSONWebKey) int {
	if len(k.N) > 0 {
		n := k.N
		for len(n) > 0 && n[0] == 0 {
			n = n[1:]
		}
		return len(n) * 8
	}
	if k.Crv != nil {
		switch *k.Crv {
		case azkeys.CurveNameP256, azkeys.CurveNameP256K:
			return 256
		case azkeys.CurveNameP384:
			return 384
		case azkeys.CurveNameP521:
			return 521
		}
	}
	return 0
}
