package akvemu

import (
	"container/heap"
	"sync"
	"time"
)

// The expiry tracker sends KeyNearExpiry (NearExpiryWindow before exp) and
// KeyExpired (at exp) for the current version of each key, once per version and exp
// (keyVersion.sent). It starts with the first event subscription, so an emulator
// without subscriptions does no expiry work at all.
//
// Cost: it holds only the thresholds due within expiryHorizon, in a min-heap with a
// de-duplicating index (at most maxExpiryItems). Finding them is a scan of every
// vault's latest key versions — O(keys), no allocation per key without exp — when
// the tracker starts, when a vault is added, and every expiryHorizon/2; key
// creations, imports, updates and recoveries push their own thresholds directly.
// Thresholds already past when the tracker starts or scans are history: a
// subscription added today does not receive the events Azure would have sent
// before it existed (seeding emits nothing).

const (
	// expiryHorizon is how far ahead the heap holds thresholds.
	expiryHorizon = 24 * time.Hour
	// maxExpiryItems bounds the heap; thresholds beyond it are skipped (logged).
	maxExpiryItems = 1 << 20
)

type expiryKey struct {
	v              *Vault
	lname, version string
	bit            uint32
}

type expiryItem struct {
	key expiryKey
	due int64 // unix seconds
	exp int64 // the exp the threshold was computed from
	heapSlot
}

// dueAt implements dueItem.
func (it *expiryItem) dueAt() time.Time { return time.Unix(it.due, 0) }

type expiryTracker struct {
	hub  *eventHub
	wake chan struct{}
	wg   sync.WaitGroup

	mu      sync.Mutex
	active  bool
	stopped bool
	until   int64 // thresholds up to here are in the heap (unix seconds)
	h       dueHeap[*expiryItem]
	byKey   map[expiryKey]*expiryItem
	skipped int64
}

func newExpiryTracker(h *eventHub) *expiryTracker {
	return &expiryTracker{hub: h, wake: make(chan struct{}, 1), byKey: map[expiryKey]*expiryItem{}}
}

func (t *expiryTracker) window() int64 { return int64(t.hub.cfg.NearExpiryWindow / time.Second) }

// activate starts the tracker (once) and scans every vault.
func (t *expiryTracker) activate() {
	t.mu.Lock()
	if t.active || t.stopped {
		t.mu.Unlock()
		return
	}
	t.active = true
	now := time.Now().Unix()
	t.until = now + int64(expiryHorizon/time.Second)
	until := t.until
	t.wg.Add(1)
	go t.run()
	t.mu.Unlock()
	for _, v := range t.hub.e.Vaults() {
		t.scanVault(v, now, until)
	}
}

// vaultAdded scans a vault added while the tracker runs.
func (t *expiryTracker) vaultAdded(v *Vault) {
	t.mu.Lock()
	active, until := t.active, t.until
	t.mu.Unlock()
	if active {
		t.scanVault(v, time.Now().Unix(), until)
	}
}

// stop prevents a start and waits for the timer goroutine (the hub's context is done).
func (t *expiryTracker) stop() {
	t.mu.Lock()
	t.stopped = true
	t.mu.Unlock()
	t.wg.Wait()
}

// scanVault pushes the thresholds of the vault's current versions due in (lo, hi].
func (t *expiryTracker) scanVault(v *Vault, lo, hi int64) {
	if v.kind != KindVault {
		return
	}
	w := t.window()
	var items []*expiryItem
	v.mu.RLock()
	for _, e := range v.order {
		kv := e.latest
		if kv.exp == 0 {
			continue
		}
		if d := kv.exp - w; d > lo && d <= hi {
			items = append(items, &expiryItem{key: expiryKey{v, e.lname, kv.version, sentNearExpiry}, due: d, exp: kv.exp})
		}
		if kv.exp > lo && kv.exp <= hi {
			items = append(items, &expiryItem{key: expiryKey{v, e.lname, kv.version, sentExpired}, due: kv.exp, exp: kv.exp})
		}
	}
	v.mu.RUnlock()
	t.push(items)
}

// schedule pushes the thresholds of a version whose exp was just set (created,
// imported, updated or recovered at run time): a threshold already past is due now.
func (t *expiryTracker) schedule(v *Vault, kv *keyVersion) {
	if v.kind != KindVault || kv.exp == 0 {
		return
	}
	t.mu.Lock()
	active, until := t.active, t.until
	t.mu.Unlock()
	if !active {
		return
	}
	now := time.Now().Unix()
	ln := lower(kv.name)
	var items []*expiryItem
	if kv.exp > now {
		if near := max(now, kv.exp-t.window()); near <= until {
			items = append(items, &expiryItem{key: expiryKey{v, ln, kv.version, sentNearExpiry}, due: near, exp: kv.exp})
		}
	}
	if due := max(now, kv.exp); due <= until {
		items = append(items, &expiryItem{key: expiryKey{v, ln, kv.version, sentExpired}, due: due, exp: kv.exp})
	}
	t.push(items)
}

func (t *expiryTracker) push(items []*expiryItem) {
	if len(items) == 0 {
		return
	}
	t.mu.Lock()
	skipped := int64(0)
	for _, it := range items {
		if old := t.byKey[it.key]; old != nil {
			if old.due != it.due || old.exp != it.exp {
				old.due, old.exp = it.due, it.exp
				heap.Fix(&t.h, old.index)
			}
			continue
		}
		if len(t.h) >= maxExpiryItems {
			skipped++
			continue
		}
		heap.Push(&t.h, it)
		t.byKey[it.key] = it
	}
	t.skipped += skipped
	total := t.skipped
	t.mu.Unlock()
	if skipped > 0 {
		t.hub.e.log.Warn().Int64("skipped", total).Int("limit", maxExpiryItems).Msg("expiry tracker full: near-expiry/expired events skipped")
	}
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// run fires due thresholds and rescans the vaults every expiryHorizon/2.
func (t *expiryTracker) run() {
	defer t.wg.Done()
	horizon := int64(expiryHorizon / time.Second)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		now := time.Now().Unix()
		var fire []*expiryItem
		var lo, hi int64
		t.mu.Lock()
		for len(t.h) > 0 && t.h[0].due <= now {
			it := heap.Pop(&t.h).(*expiryItem)
			delete(t.byKey, it.key)
			fire = append(fire, it)
		}
		if now >= t.until-horizon/2 {
			lo, hi = t.until, now+horizon
			t.until = hi
		}
		next := time.Unix(t.until-horizon/2, 0)
		if len(t.h) > 0 && t.h[0].due < next.Unix() {
			next = time.Unix(t.h[0].due, 0)
		}
		t.mu.Unlock()
		for _, it := range fire {
			t.fire(it)
		}
		if hi != 0 {
			for _, v := range t.hub.e.Vaults() {
				t.scanVault(v, lo, hi)
			}
			continue
		}
		timer.Reset(time.Until(next))
		select {
		case <-timer.C:
		case <-t.wake:
		case <-t.hub.ctx.Done():
			return
		}
		timer.Stop()
	}
}

// fire publishes a threshold's event if the version is still the key's current one
// with the same exp, and the event was not sent yet.
func (t *expiryTracker) fire(it *expiryItem) {
	v := it.key.v
	if cur, ok := t.hub.e.Vault(v.name); !ok || cur != v {
		return
	}
	v.mu.RLock()
	var kv *keyVersion
	if e := v.keys[it.key.lname]; e != nil {
		kv = e.latest
	}
	v.mu.RUnlock()
	if kv == nil || kv.version != it.key.version || kv.exp != it.exp || !kv.markSent(it.key.bit) {
		return
	}
	typ := EventKeyExpired
	if it.key.bit == sentNearExpiry {
		typ = EventKeyNearExpiry
	}
	t.hub.publish(v, kv, typ)
}
