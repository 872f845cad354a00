package akvemu

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Vault is one emulated key vault. Its methods mutate and read keys directly (no HTTP,
// no auth, no faults, not counted) and are safe for concurrent use.
type Vault struct {
	e        *Emulator
	name     string
	lname    string
	kind     Kind
	lid      string // lower-case ARM resource id (the ARM listing order)
	subID    string
	rg       string
	location string
	tags     map[string]string
	created  time.Time
	sku      SKU
	rbac     bool
	purgeOK  bool
	attrs    vaultAttrs
	seed     uint64
	url      string // https://127.0.0.1:PORT
	hostURL  string // https://<name>.vault.localhost:PORT (pools: .managedhsm.localhost) in host-routing mode
	subLim   *rate.Limiter

	mu           sync.RWMutex
	keys         map[string]*keyEntry // by lower-case name
	order        []*keyEntry          // sorted by lower-case name
	deleted      map[string]*deletedEntry
	deletedOrder []*deletedEntry
	rng          *rand.Rand // version ids; guarded by mu

	faults       atomic.Pointer[faultState]
	throttleNext atomic.Int64
	seq          atomic.Uint64
	access       atomic.Pointer[accessTable]
	counters     counterSet

	lnMu    sync.Mutex
	ln      net.Listener
	addr    string
	conns   map[net.Conn]struct{}
	stopped bool
}

type deletedEntry struct {
	entry       *keyEntry
	deletedDate int64
	purgeDate   int64
}

func lower(s string) string { return strings.ToLower(s) }

func newVault(e *Emulator, spec VaultSpec) *Vault {
	seed := uint64(spec.Seed) // #nosec G115 -- a PRNG seed: any bit pattern is valid, reinterpreting the sign is harmless
	if seed == 0 {
		h := fnv.New64a()
		_, _ = h.Write([]byte(lower(spec.Name)))
		seed = h.Sum64() ^ uint64(e.cfg.Seed.Seed) // #nosec G115 -- a PRNG seed: any bit pattern is valid, reinterpreting the sign is harmless
	}
	days := spec.RecoverableDays
	if days == 0 {
		days = DefaultRecoverableDays
	}
	level := "Recoverable+Purgeable"
	switch {
	case spec.PurgeProtection && days == DefaultRecoverableDays:
		level = "Recoverable"
	case spec.PurgeProtection:
		level = "CustomizedRecoverable"
	case days != DefaultRecoverableDays:
		level = "CustomizedRecoverable+Purgeable"
	}
	kind := spec.Kind
	if kind == "" {
		kind = KindVault
	}
	sku := spec.SKU
	switch {
	case kind == KindManagedHSM:
		sku = SKUStandardB1
	case sku == "":
		sku = SKUStandard
	}
	rg := spec.ResourceGroup
	if rg == "" {
		rg = e.cfg.ResourceGroup
	}
	loc := spec.Location
	if loc == "" {
		loc = e.cfg.Region
	}
	tags := make(map[string]string, len(spec.Tags))
	for k, val := range spec.Tags {
		tags[k] = val
	}
	v := &Vault{
		e: e, name: spec.Name, lname: lower(spec.Name), kind: kind, subID: spec.SubscriptionID,
		rg: rg, location: loc, tags: tags, created: time.Now().UTC(), sku: sku, rbac: spec.RBAC || kind == KindManagedHSM,
		purgeOK: !spec.PurgeProtection, attrs: vaultAttrs{recoveryLevel: level, recoverableDays: days},
		seed: seed, keys: map[string]*keyEntry{}, deleted: map[string]*deletedEntry{},
		rng:   rand.New(rand.NewPCG(seed, 0x76657273)), // #nosec G404 -- seeded PRNG for reproducible emulated key versions and faults; not secrets
		conns: map[net.Conn]struct{}{},
	}
	v.lid = lower(v.ResourceID())
	v.access.Store(&accessTable{})
	return v
}

// Name returns the vault's name.
func (v *Vault) Name() string { return v.name }

// URL returns the vault's base URL (https://127.0.0.1:PORT, no trailing slash).
func (v *Vault) URL() string { return v.url }

// HostURL returns the host-routing URL (https://<name>.vault.localhost:PORT), or ""
// when host routing is off.
func (v *Vault) HostURL() string { return v.hostURL }

// SubscriptionID returns the subscription the vault belongs to.
func (v *Vault) SubscriptionID() string { return v.subID }

// SKU returns the vault's SKU (Standard_B1 for a managed HSM pool).
func (v *Vault) SKU() SKU { return v.sku }

// Kind returns whether this is a key vault or a managed HSM pool.
func (v *Vault) Kind() Kind { return v.kind }

// ResourceGroup returns the vault's Azure Resource Manager resource group.
func (v *Vault) ResourceGroup() string { return v.rg }

// Location returns the vault's Azure Resource Manager location.
func (v *Vault) Location() string { return v.location }

// ResourceID returns the vault's Azure Resource Manager id:
// /subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.KeyVault/vaults/<name>
// (…/managedHSMs/<name> for a pool).
func (v *Vault) ResourceID() string {
	return "/subscriptions/" + v.subID + "/resourceGroups/" + v.rg + "/providers/" + v.kind.ARMType() + "/" + v.name
}

// Len returns the number of active (not deleted) keys.
func (v *Vault) Len() int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return len(v.order)
}

func (v *Vault) now() int64 { return time.Now().Unix() }

// newVersionID returns 32 lowercase hex digits; the caller holds v.mu.
func (v *Vault) newVersionID() string {
	return fmt.Sprintf("%016x%016x", v.rng.Uint64(), v.rng.Uint64())
}

// Keys returns the latest version of every active key, in case-insensitive name order.
func (v *Vault) Keys() []Key {
	v.mu.RLock()
	kvs := make([]*keyVersion, len(v.order))
	for i, e := range v.order {
		kvs[i] = e.latest
	}
	v.mu.RUnlock()
	out := make([]Key, len(kvs))
	for i, kv := range kvs {
		out[i] = kv.toKey(v.url, &v.attrs)
	}
	return out
}

// GetKey returns a key version; an empty version means the latest.
func (v *Vault) GetKey(name, version string) (Key, error) {
	kv, err := v.getVersion(name, version)
	if err != nil {
		return Key{}, err
	}
	return kv.toKey(v.url, &v.attrs), nil
}

// KeyVersions returns every version of a key in version-id order.
func (v *Vault) KeyVersions(name string) ([]Key, error) {
	v.mu.RLock()
	e := v.keys[lower(name)]
	var kvs []*keyVersion
	if e != nil {
		kvs = slices.Clone(e.versions)
	}
	v.mu.RUnlock()
	if e == nil {
		return nil, fmt.Errorf("%w: %s", ErrKeyNotFound, name)
	}
	out := make([]Key, len(kvs))
	for i, kv := range kvs {
		out[i] = kv.toKey(v.url, &v.attrs)
	}
	return out, nil
}

// DeletedKeys returns the soft-deleted keys in case-insensitive name order.
func (v *Vault) DeletedKeys() []DeletedKey {
	v.mu.RLock()
	des := slices.Clone(v.deletedOrder)
	v.mu.RUnlock()
	out := make([]DeletedKey, len(des))
	for i, d := range des {
		out[i] = v.toDeletedKey(d)
	}
	return out
}

func (v *Vault) toDeletedKey(d *deletedEntry) DeletedKey {
	return DeletedKey{
		Key:                d.entry.latest.toKey(v.url, &v.attrs),
		RecoveryID:         v.url + "/deletedkeys/" + d.entry.name,
		DeletedDate:        time.Unix(d.deletedDate, 0).UTC(),
		ScheduledPurgeDate: time.Unix(d.purgeDate, 0).UTC(),
	}
}

// CreateKey creates a key, or a new version when the name exists, and publishes
// KeyNewVersionCreated to the event subscriptions like the service.
func (v *Vault) CreateKey(name string, spec KeySpec) (Key, error) {
	kv, err := v.createKey(name, spec, v.now())
	if err != nil {
		return Key{}, err
	}
	v.e.events.keyCreated(v, kv)
	return kv.toKey(v.url, &v.attrs), nil
}

// UpdateKey changes a version's properties (empty version: the latest) and sets its
// updated time to now. A new exp reschedules the expiry events.
func (v *Vault) UpdateKey(name, version string, upd KeyUpdate) (Key, error) {
	kv, err := v.updateKey(name, version, upd, v.now())
	if err != nil {
		return Key{}, err
	}
	v.e.events.expiryChanged(v, kv)
	return kv.toKey(v.url, &v.attrs), nil
}

// RotateKey creates a new version with the latest version's type, operations and
// tags, and publishes KeyNewVersionCreated.
func (v *Vault) RotateKey(name string) (Key, error) {
	kv, err := v.rotateKey(name, v.now())
	if err != nil {
		return Key{}, err
	}
	v.e.events.keyCreated(v, kv)
	return kv.toKey(v.url, &v.attrs), nil
}

// DeleteKey soft-deletes a key with all its versions.
func (v *Vault) DeleteKey(name string) (DeletedKey, error) {
	d, err := v.deleteKey(name, v.now())
	if err != nil {
		return DeletedKey{}, err
	}
	return v.toDeletedKey(d), nil
}

// RecoverKey restores a soft-deleted key.
func (v *Vault) RecoverKey(name string) (Key, error) {
	kv, err := v.recoverKey(name)
	if err != nil {
		return Key{}, err
	}
	v.e.events.expiryChanged(v, kv)
	return kv.toKey(v.url, &v.attrs), nil
}

// PurgeKey permanently removes a soft-deleted key.
func (v *Vault) PurgeKey(name string) error { return v.purgeKey(name) }

func checkKeyName(name string) error {
	if !keyNameRE.MatchString(name) {
		return badParam(fmt.Sprintf("The request URI contains an invalid name: %s", name))
	}
	return nil
}

func (v *Vault) getVersion(name, version string) (*keyVersion, error) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	e := v.keys[lower(name)]
	if e == nil {
		return nil, fmt.Errorf("%w: %s", ErrKeyNotFound, name)
	}
	kv := e.find(version)
	if kv == nil {
		return nil, fmt.Errorf("%w: %s/%s", ErrKeyNotFound, name, version)
	}
	return kv, nil
}

// buildVersion makes a key version from a normalized spec.
func (v *Vault) buildVersion(name, version string, spec KeySpec, mat *material, created int64) (*keyVersion, error) {
	ops, err := validateOps(spec.KeyOps)
	if err != nil {
		return nil, err
	}
	tags, err := sortedTags(spec.Tags)
	if err != nil {
		return nil, err
	}
	enabled := true
	if spec.Enabled != nil {
		enabled = *spec.Enabled
	}
	return &keyVersion{
		name: name, version: version, kty: spec.Kty, size: spec.KeySize, crv: spec.Curve, mat: mat, ops: ops,
		enabled: enabled, nbf: unixOrZero(spec.NotBefore), exp: unixOrZero(spec.Expires),
		created: created, updated: created, exportable: spec.Exportable, managed: spec.Managed, tags: tags,
	}, nil
}

// addVersionLocked inserts kv under its name; the caller holds v.mu.
func (v *Vault) addVersionLocked(kv *keyVersion) error {
	ln := lower(kv.name)
	if _, gone := v.deleted[ln]; gone {
		return fmt.Errorf("%w: %s", ErrKeyDeletedButRecoverable, kv.name)
	}
	e := v.keys[ln]
	if e == nil {
		e = &keyEntry{name: kv.name, lname: ln}
		v.keys[ln] = e
		i := sort.Search(len(v.order), func(i int) bool { return v.order[i].lname >= ln })
		v.order = slices.Insert(v.order, i, e)
	} else {
		kv.name = e.name // the first spelling of a name is kept
	}
	e.insert(kv)
	return nil
}

func (v *Vault) createKey(name string, spec KeySpec, now int64) (*keyVersion, error) {
	if err := checkKeyName(name); err != nil {
		return nil, err
	}
	spec, err := normalizeSpec(spec, v.kind, v.sku)
	if err != nil {
		return nil, err
	}
	p, err := sharedPool()
	if err != nil {
		return nil, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	version := v.newVersionID()
	mat, err := p.pick(keyFamily(spec.Kty), spec.KeySize, spec.Curve, mix(v.seed, v.rng.Uint64()))
	if err != nil {
		return nil, err
	}
	kv, err := v.buildVersion(name, version, spec, mat, now)
	if err != nil {
		return nil, err
	}
	if err := v.addVersionLocked(kv); err != nil {
		return nil, err
	}
	return kv, nil
}

// importKey stores caller-supplied public material as a new version.
func (v *Vault) importKey(name string, spec KeySpec, mat *material, now int64) (*keyVersion, error) {
	if err := checkKeyName(name); err != nil {
		return nil, err
	}
	if v.kind == KindManagedHSM {
		// A pool keeps an imported key in its HSMs whatever the request says.
		switch spec.Kty {
		case KtyRSA:
			spec.Kty = KtyRSAHSM
		case KtyEC:
			spec.Kty = KtyECHSM
		case "oct":
			spec.Kty = KtyOctHSM
		}
	}
	if spec.Kty == "oct" {
		return nil, badParamInner("Invalid kty value: oct", "KeyTypeNotSupported")
	}
	if err := checkKty(spec.Kty, v.kind, v.sku); err != nil {
		return nil, err
	}
	if spec.KeyOps == nil {
		spec.KeyOps = defaultOps(spec.Kty)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	kv, err := v.buildVersion(name, v.newVersionID(), spec, mat, now)
	if err != nil {
		return nil, err
	}
	if err := v.addVersionLocked(kv); err != nil {
		return nil, err
	}
	return kv, nil
}

func (v *Vault) updateKey(name, version string, upd KeyUpdate, now int64) (*keyVersion, error) {
	var ops []string
	var tags []tag
	var err error
	if upd.KeyOps != nil {
		if ops, err = validateOps(upd.KeyOps); err != nil {
			return nil, err
		}
	}
	if upd.Tags != nil {
		if tags, err = sortedTags(upd.Tags); err != nil {
			return nil, err
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	e := v.keys[lower(name)]
	if e == nil {
		return nil, fmt.Errorf("%w: %s", ErrKeyNotFound, name)
	}
	old := e.find(version)
	if old == nil {
		return nil, fmt.Errorf("%w: %s/%s", ErrKeyNotFound, name, version)
	}
	kv := old.clone()
	if upd.Enabled != nil {
		kv.enabled = *upd.Enabled
	}
	if upd.NotBefore != nil {
		kv.nbf = unixOrZero(upd.NotBefore)
	}
	if upd.Expires != nil {
		kv.exp = unixOrZero(upd.Expires)
	}
	if upd.KeyOps != nil {
		kv.ops = ops
	}
	if upd.Tags != nil {
		kv.tags = tags
	}
	if kv.exp == old.exp {
		kv.sent.Store(old.sent.Load()) // expiry events already sent for this exp stay sent
	}
	kv.updated = now
	e.replace(old, kv)
	return kv, nil
}

func (v *Vault) rotateKey(name string, now int64) (*keyVersion, error) {
	p, err := sharedPool()
	if err != nil {
		return nil, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	e := v.keys[lower(name)]
	if e == nil {
		return nil, fmt.Errorf("%w: %s", ErrKeyNotFound, name)
	}
	cur := e.latest
	mat := cur.mat
	if fam := keyFamily(cur.kty); fam != "oct" {
		if m, err := p.pick(fam, cur.size, cur.crv, mix(v.seed, v.rng.Uint64())); err == nil {
			mat = m
		}
	}
	kv := &keyVersion{
		name: e.name, version: v.newVersionID(), kty: cur.kty, size: cur.size, crv: cur.crv, mat: mat,
		ops: cur.ops, enabled: true, created: now, updated: now, exportable: cur.exportable,
		managed: cur.managed, tags: cur.tags,
	}
	e.insert(kv)
	return kv, nil
}

func (v *Vault) deleteKey(name string, now int64) (*deletedEntry, error) {
	ln := lower(name)
	v.mu.Lock()
	defer v.mu.Unlock()
	e := v.keys[ln]
	if e == nil {
		return nil, fmt.Errorf("%w: %s", ErrKeyNotFound, name)
	}
	delete(v.keys, ln)
	v.order = removeSorted(v.order, ln, func(x *keyEntry) string { return x.lname })
	d := &deletedEntry{entry: e, deletedDate: now, purgeDate: now + int64(v.attrs.recoverableDays)*86400}
	v.deleted[ln] = d
	i := sort.Search(len(v.deletedOrder), func(i int) bool { return v.deletedOrder[i].entry.lname >= ln })
	v.deletedOrder = slices.Insert(v.deletedOrder, i, d)
	return d, nil
}

func (v *Vault) getDeleted(name string) (*deletedEntry, error) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	d := v.deleted[lower(name)]
	if d == nil {
		return nil, fmt.Errorf("%w: %s", ErrDeletedKeyNotFound, name)
	}
	return d, nil
}

func (v *Vault) recoverKey(name string) (*keyVersion, error) {
	ln := lower(name)
	v.mu.Lock()
	defer v.mu.Unlock()
	d := v.deleted[ln]
	if d == nil {
		return nil, fmt.Errorf("%w: %s", ErrDeletedKeyNotFound, name)
	}
	if v.keys[ln] != nil {
		return nil, fmt.Errorf("%w: %s", ErrKeyExists, name)
	}
	delete(v.deleted, ln)
	v.deletedOrder = removeSorted(v.deletedOrder, ln, func(x *deletedEntry) string { return x.entry.lname })
	v.keys[ln] = d.entry
	i := sort.Search(len(v.order), func(i int) bool { return v.order[i].lname >= ln })
	v.order = slices.Insert(v.order, i, d.entry)
	return d.entry.latest, nil
}

func (v *Vault) purgeKey(name string) error {
	ln := lower(name)
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.deleted[ln] == nil {
		return fmt.Errorf("%w: %s", ErrDeletedKeyNotFound, name)
	}
	if !v.purgeOK {
		return fmt.Errorf("%w: %s", ErrPurgeNotAllowed, name)
	}
	delete(v.deleted, ln)
	v.deletedOrder = removeSorted(v.deletedOrder, ln, func(x *deletedEntry) string { return x.entry.lname })
	return nil
}

func removeSorted[T any](s []T, key string, keyOf func(T) string) []T {
	i := sort.Search(len(s), func(i int) bool { return keyOf(s[i]) >= key })
	if i < len(s) && keyOf(s[i]) == key {
		return slices.Delete(s, i, i+1)
	}
	return s
}

// Faults returns the vault's current faults.
func (v *Vault) Faults() Faults { return v.faults.Load().f }

// Counters returns a snapshot of the vault's request counters.
func (v *Vault) Counters() Counters { return v.counters.snapshot(v.name) }

// ResetCounters zeroes the vault's request counters.
func (v *Vault) ResetCounters() { v.counters.reset() }
