package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/akvsync/akvsync/pkg/events"
	"github.com/akvsync/akvsync/pkg/jobs"
	"github.com/nats-io/nats.go/jetstream"
)

// Limits of vault fields.
const (
	// MaxTags bounds the tags of a vault.
	MaxTags = 50
	// MaxTagKeyLen and MaxTagValueLen bound a tag (Azure's limits).
	MaxTagKeyLen   = 512
	MaxTagValueLen = 256
	// MaxFieldLen bounds free-text vault fields (azure_vault_id, location,
	// vaultUri, connection).
	MaxFieldLen = 1024
	// MaxSubscriptionLen bounds a subscription id.
	MaxSubscriptionLen = 64
)

// staleIndexAfter is how old a name index entry whose vault record does not
// exist must be before an add may take it over (the adding process died
// between writing the index and the record).
const staleIndexAfter = 30 * time.Second

// nameKeyPrefix prefixes the uniqueness index keys of the vaults bucket.
const nameKeyPrefix = events.VaultIndexPrefix

// vaultNameRE is the shape of an Azure Key Vault name.
var vaultNameRE = regexp.MustCompile(`^[0-9a-zA-Z-]{3,24}$`)

// Registry is the vault registry over the akvsync-vaults bucket. It is
// safe for concurrent use, also by several processes.
type Registry struct {
	kv    jetstream.KeyValue
	store *jobs.Store
	js    jetstream.JetStream
	cfg   Config
}

// nameKey is the uniqueness index key of a vault.
func nameKey(name, subscriptionID string) string {
	return nameKeyPrefix + strings.ToLower(subscriptionID) + "." + strings.ToLower(name)
}

// ValidVaultName reports whether name has the shape of an Azure Key Vault
// name (^[0-9a-zA-Z-]{3,24}$).
func ValidVaultName(name string) bool { return vaultNameRE.MatchString(name) }

// validSubscription reports whether s can be a subscription id (and a
// subject token).
func validSubscription(s string) bool {
	return len(s) <= MaxSubscriptionLen && events.ValidToken(s)
}

// validate checks the request and builds the vault records it adds.
func (r *Registry) validate(ctx context.Context, req AddVaultsRequest, now time.Time) ([]events.Vault, error) {
	list, listField, err := req.list()
	if err != nil {
		return nil, err
	}
	switch {
	case req.Connection == "":
		return nil, invalidf("connection is required")
	case len(req.Connection) > MaxFieldLen:
		return nil, invalidf("connection is longer than %d bytes", MaxFieldLen)
	case req.SubscriptionID == "":
		return nil, invalidf("subscription_id is required")
	case !validSubscription(req.SubscriptionID):
		return nil, invalidf("subscription_id %q is not a valid subscription id", req.SubscriptionID)
	case len(list) == 0:
		return nil, invalidf("vaults must not be empty")
	case len(list) > r.cfg.MaxAddVaults:
		return nil, invalidf("%s has %d entries; at most %d may be added at once", listField, len(list), r.cfg.MaxAddVaults)
	}
	limit, err := checkBackupLimit(req.CloudKeyBackupLimit)
	if err != nil {
		return nil, err
	}
	type checked struct {
		typ, uri, armID string
		props           json.RawMessage
	}
	ok := make([]checked, len(list))
	seen := make(map[string]int, len(list))
	for i, v := range list {
		field := fmt.Sprintf("%s[%d]", listField, i)
		typ, uri, armID, props, err := validateAddVault(field, v, req.SubscriptionID)
		if err != nil {
			return nil, err
		}
		ok[i] = checked{typ, uri, armID, props}
		lower := strings.ToLower(v.Name)
		if j, dup := seen[lower]; dup {
			return nil, invalidf("%s.name %q duplicates %s[%d].name", field, v.Name, listField, j)
		}
		seen[lower] = i
	}
	conn, found, err := r.cfg.connection(ctx, req.Connection)
	if err != nil {
		return nil, unavailable("look up connection", err)
	}
	if !found {
		return nil, invalidf("connection %q is not a known connection", req.Connection)
	}
	if conn.Cloud == "" {
		conn.Cloud = r.cfg.Cloud
	}
	for i := range list {
		if err := r.cfg.checkVaultURI(fmt.Sprintf("%s[%d] URI", listField, i), ok[i].uri, conn); err != nil {
			return nil, err
		}
	}
	out := make([]events.Vault, 0, len(list))
	for i, v := range list {
		if len(v.Tags) == 0 {
			v.Tags = nil // {} is absent
		}
		out = append(out, events.Vault{
			ID:                  events.NewID(),
			Name:                v.Name,
			AzureVaultID:        ok[i].armID,
			SubscriptionID:      req.SubscriptionID,
			Location:            v.Location,
			VaultURI:            ok[i].uri,
			Connection:          conn.Name,
			Cloud:               conn.Cloud,
			Tags:                v.Tags,
			Type:                ok[i].typ,
			Properties:          ok[i].props,
			CloudKeyBackupLimit: limit,
			CreatedAt:           now,
			UpdatedAt:           now,
		})
	}
	return out, nil
}

// AddVaults registers the vaults of req. Either every vault is registered
// or none: on any error what was written is undone. A vault whose
// "name::subscription" is already registered (by this or a concurrent
// request, in any API process) makes the request fail with [ErrConflict].
func (r *Registry) AddVaults(ctx context.Context, req AddVaultsRequest) (added []events.Vault, err error) {
	now := r.cfg.Now().UTC().Truncate(time.Microsecond)
	vaults, err := r.validate(ctx, req, now)
	if err != nil {
		return nil, err
	}
	var undo []func(context.Context)
	defer func() {
		if err == nil {
			return
		}
		cctx, cancel := cleanupContext(ctx, r.cfg.CleanupTimeout)
		defer cancel()
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i](cctx)
		}
	}()
	for _, v := range vaults {
		key := nameKey(v.Name, v.SubscriptionID)
		rev, err := r.claimName(ctx, key, v)
		if err != nil {
			return nil, err
		}
		undo = append(undo, func(ctx context.Context) {
			_ = r.kv.Delete(ctx, key, jetstream.LastRevision(rev))
		})
	}
	for _, v := range vaults {
		data, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("control: encode vault: %w", err)
		}
		rev, err := r.kv.Create(ctx, v.ID, data)
		if err != nil {
			return nil, unavailable("store vault "+v.QualifiedName(), err)
		}
		undo = append(undo, func(ctx context.Context) {
			_ = r.kv.Delete(ctx, v.ID, jetstream.LastRevision(rev))
		})
	}
	// A connection being deleted meanwhile either saw these vaults (and
	// refused), or is gone or going now: then undo, so no vault is left
	// pointing at a connection that does not exist.
	if _, found, err := r.cfg.connection(ctx, req.Connection); err != nil {
		return nil, unavailable("check connection", err)
	} else if !found {
		return nil, invalidf("connection %q was deleted while the vaults were being added", req.Connection)
	}
	return vaults, nil
}

// claimName creates the uniqueness index entry of v (see
// events.ClaimKey: an entry left behind by a process that died before
// writing the record is taken over once it is older than staleIndexAfter).
func (r *Registry) claimName(ctx context.Context, key string, v events.Vault) (uint64, error) {
	rev, holder, err := events.ClaimKey(ctx, r.kv, key, v.ID, staleIndexAfter, r.cfg.Now())
	switch {
	case errors.Is(err, events.ErrTaken) && holder != "":
		return 0, conflictf("vault %s already exists (id %s)", v.QualifiedName(), holder)
	case errors.Is(err, events.ErrTaken):
		return 0, conflictf("vault %s already exists", v.QualifiedName())
	case err != nil:
		return 0, unavailable("register vault "+v.QualifiedName(), err)
	}
	return rev, nil
}

// Get returns the vault with the given id.
func (r *Registry) Get(ctx context.Context, id string) (events.Vault, error) {
	v, _, err := r.get(ctx, id)
	return v, err
}

// get returns a vault and its revision.
func (r *Registry) get(ctx context.Context, id string) (events.Vault, uint64, error) {
	return getRecord[events.Vault](ctx, r.kv, "vault", id)
}

// EachBatch streams every registered vault in one pass, calling fn with
// batches of up to batch vaults, in no particular order. fn's error is
// returned as it is; a failure to read the registry wraps [ErrUnavailable].
func (r *Registry) EachBatch(ctx context.Context, batch int, fn func([]events.Vault) error) error {
	var fnErr error
	err := events.EachVault(ctx, r.kv, batch, func(vs []events.Vault) error {
		fnErr = fn(vs)
		return fnErr
	})
	if err != nil && fnErr == nil {
		return unavailable("list vaults", err)
	}
	return err
}

// All returns every registered vault, in no particular order.
func (r *Registry) All(ctx context.Context) ([]events.Vault, error) {
	vs, err := events.ListVaults(ctx, r.kv)
	if err != nil {
		return nil, unavailable("list vaults", err)
	}
	return vs, nil
}

// Resolve finds a vault by reference: its id, "name::subscription", or a
// bare name when exactly one subscription has a vault of that name. An
// ambiguous bare name is [ErrInvalid] listing the candidates; an unknown
// one is [ErrNotFound].
func (r *Registry) Resolve(ctx context.Context, ref string) (events.Vault, error) {
	if IsID(ref) {
		return r.Get(ctx, ref)
	}
	if name, sub, ok := strings.Cut(ref, "::"); ok {
		if !ValidVaultName(name) || !validSubscription(sub) {
			return events.Vault{}, notFoundf("vault %q not found", ref)
		}
		return r.byIndex(ctx, nameKey(name, sub), ref)
	}
	if !ValidVaultName(ref) {
		return events.Vault{}, notFoundf("vault %q not found", ref)
	}
	lister, err := r.kv.ListKeysFiltered(ctx, nameKeyPrefix+"*."+strings.ToLower(ref))
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return events.Vault{}, notFoundf("vault %q not found", ref)
		}
		return events.Vault{}, unavailable("resolve vault", err)
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	if err := ctx.Err(); err != nil {
		return events.Vault{}, unavailable("resolve vault", err)
	}
	var found []events.Vault
	for _, k := range keys {
		v, err := r.byIndex(ctx, k, ref)
		if errors.Is(err, ErrNotFound) {
			continue // a dangling index entry
		}
		if err != nil {
			return events.Vault{}, err
		}
		found = append(found, v)
	}
	switch len(found) {
	case 0:
		return events.Vault{}, notFoundf("vault %q not found", ref)
	case 1:
		return found[0], nil
	}
	names := make([]string, len(found))
	for i, v := range found {
		names[i] = v.QualifiedName()
	}
	slices.Sort(names)
	return events.Vault{}, invalidf("vault name %q is ambiguous; use one of: %s", ref, strings.Join(names, ", "))
}

// byIndex reads the vault an index entry points to.
func (r *Registry) byIndex(ctx context.Context, key, ref string) (events.Vault, error) {
	e, err := r.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return events.Vault{}, notFoundf("vault %q not found", ref)
	}
	if err != nil {
		return events.Vault{}, unavailable("resolve vault", err)
	}
	v, err := r.Get(ctx, string(e.Value()))
	if errors.Is(err, ErrNotFound) {
		return events.Vault{}, notFoundf("vault %q not found", ref)
	}
	return v, err
}

// dropKeys takes a vault's keys out of the inventory: it purges the
// vault's subjects from the KEYS stream, so a worker that replays the
// stream never sees them, and then publishes the vault-removed marker, so
// every worker that already holds them deletes them (in one store
// transaction) and ignores any key record of the vault published later
// (by a sync still running). It is idempotent.
func (r *Registry) dropKeys(ctx context.Context, vaultID string) error {
	st, err := r.js.Stream(ctx, events.StreamKeys)
	if err != nil {
		return unavailable("remove vault keys", err)
	}
	if err := st.Purge(ctx, jetstream.WithPurgeSubject(events.VaultKeysFilter(vaultID))); err != nil {
		return unavailable("remove vault keys", err)
	}
	body, err := json.Marshal(events.VaultRemoved{VaultID: vaultID, RemovedAt: time.Now().UTC()})
	if err != nil {
		return fmt.Errorf("control: encode vault removal: %w", err)
	}
	if _, err := r.js.Publish(ctx, events.VaultRemovedSubject(vaultID), body); err != nil {
		return unavailable("remove vault keys", err)
	}
	return nil
}

// Remove unregisters the vault with the given id and returns it, after
// taking its keys out of every worker's inventory (see dropKeys).
//
// It first marks the record "removing" (compare-and-set): from then on no
// job takes the vault and no worker syncs it. A job that already holds the
// vault does not stop the removal: its workers see the mark (or the
// removal marker) and end the vault "aborted" with the error "vault
// removed from the inventory", and every inventory ignores a key record of
// the vault published after the marker. Then the keys are dropped and the
// record and its name index deleted; a failure between the steps leaves
// the mark, and a retry finishes the removal. A second removal running at
// the same time is refused with a [ConflictError]. Adding the vault again
// afterwards gives it a new id and it syncs normally.
func (r *Registry) Remove(ctx context.Context, id string) (events.Vault, error) {
	v, _, err := r.get(ctx, id)
	if err != nil {
		return events.Vault{}, err
	}
	lockRev, err := r.store.TakeLock(ctx, v.ID, RemoveLockHolder)
	var conflict *jobs.LockConflictError
	switch {
	case errors.As(err, &conflict) && conflict.Holder == RemoveLockHolder:
		return events.Vault{}, &ConflictError{Vault: v.QualifiedName()}
	case errors.As(err, &conflict):
		// A job holds the vault: it skips it (see above); its lock is
		// released when it finishes.
	case err != nil:
		return events.Vault{}, unavailable("take vault lock", err)
	default:
		defer func() {
			cctx, cancel := cleanupContext(ctx, r.cfg.CleanupTimeout)
			defer cancel()
			_ = r.store.ReleaseLock(cctx, v.ID, lockRev)
		}()
	}
	v, rev, err := r.update(ctx, v.ID, "mark vault "+v.QualifiedName()+" removing", func(cur *events.Vault) error {
		if cur.Removing {
			return events.ErrNoChange
		}
		cur.Removing = true
		return nil
	})
	if err != nil {
		return events.Vault{}, err
	}
	if err := r.dropKeys(ctx, v.ID); err != nil {
		return events.Vault{}, err
	}
	if err := r.kv.Delete(ctx, v.ID, jetstream.LastRevision(rev)); err != nil {
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return events.Vault{}, conflictf("vault %s changed while being removed; retry", v.QualifiedName())
		}
		return events.Vault{}, unavailable("remove vault", err)
	}
	key := nameKey(v.Name, v.SubscriptionID)
	if e, err := r.kv.Get(ctx, key); err == nil && string(e.Value()) == v.ID {
		// Best effort: a dangling index entry is repaired by the next add.
		_ = r.kv.Delete(ctx, key, jetstream.LastRevision(e.Revision()))
	}
	v.Removing = false
	return v, nil
}

// VaultPatch is the body of CCKM's PATCH /cckm/azure/vaults/{id}. Null
// fields are absent; at least one field is required.
type VaultPatch struct {
	// Connection moves the vault to another registered connection (by
	// name or id); "" is absent. The vault takes the connection's cloud.
	Connection *string `json:"connection"`
	// CloudKeyBackupLimit sets cloud_key_backup_limit: 1 to
	// [MaxCloudKeyBackupLimit], or 0 for no limit.
	CloudKeyBackupLimit *int `json:"cloud_key_backup_limit"`
	// Name may be sent as Terraform's provider does; a vault's name is
	// Azure's and cannot change, so it must be the vault's own (plain or
	// qualified).
	Name *string `json:"name"`
}

// Patch changes the connection and cloud_key_backup_limit of the vault
// with the given id, with compare-and-set, and returns it. A running job
// keeps the vault as it was planned. Errors wrap [ErrNotFound] (no such
// vault), [ErrInvalid] (nothing to change, an unknown connection, a bad
// limit, another name) or [ErrConflict].
func (r *Registry) Patch(ctx context.Context, id string, p VaultPatch) (events.Vault, error) {
	if p.Connection != nil && *p.Connection == "" {
		p.Connection = nil
	}
	if p.Name != nil && *p.Name == "" {
		p.Name = nil
	}
	if p.Connection == nil && p.CloudKeyBackupLimit == nil && p.Name == nil {
		return events.Vault{}, invalidf("the patch changes nothing: give connection or cloud_key_backup_limit")
	}
	if p.Connection != nil && len(*p.Connection) > MaxFieldLen {
		return events.Vault{}, invalidf("connection is longer than %d bytes", MaxFieldLen)
	}
	var limit int
	if p.CloudKeyBackupLimit != nil {
		var err error
		if limit, err = checkBackupLimit(p.CloudKeyBackupLimit); err != nil {
			return events.Vault{}, err
		}
	}
	var conn ConnectionInfo
	if p.Connection != nil {
		c, found, err := r.cfg.connection(ctx, *p.Connection)
		if err != nil {
			return events.Vault{}, unavailable("look up connection", err)
		}
		if !found {
			return events.Vault{}, invalidf("connection %q is not a known connection", *p.Connection)
		}
		if c.Cloud == "" {
			c.Cloud = r.cfg.Cloud
		}
		conn = c
	}
	var prev events.Vault
	v, next, err := r.update(ctx, id, "update vault "+id, func(v *events.Vault) error {
		if p.Name != nil && !strings.EqualFold(*p.Name, v.Name) && !strings.EqualFold(*p.Name, v.QualifiedName()) {
			return invalidf("name cannot be changed: it is the vault's name in Azure (%s)", v.QualifiedName())
		}
		prev = *v
		if p.Connection != nil {
			if err := r.cfg.checkVaultURI("connection", v.VaultURI, conn); err != nil {
				return err
			}
			v.Connection, v.Cloud = conn.Name, conn.Cloud
		}
		if p.CloudKeyBackupLimit != nil {
			v.CloudKeyBackupLimit = limit
		}
		v.UpdatedAt = r.cfg.Now().UTC().Truncate(time.Microsecond)
		return nil
	})
	if err != nil {
		return events.Vault{}, err
	}
	// A connection deleted meanwhile either saw the vault on its old
	// connection, or is gone now: then undo, as AddVaults does.
	if p.Connection != nil {
		if _, found, err := r.cfg.connection(ctx, conn.Name); err != nil || !found {
			cctx, cancel := cleanupContext(ctx, r.cfg.CleanupTimeout)
			defer cancel()
			if old, merr := json.Marshal(prev); merr == nil {
				_, _ = r.kv.Update(cctx, v.ID, old, next)
			}
			if err != nil {
				return events.Vault{}, unavailable("check connection", err)
			}
			return events.Vault{}, invalidf("connection %q was deleted while the vault was being moved to it", conn.Name)
		}
	}
	return v, nil
}

// update is the compare-and-set of the vault record with the given id:
// events.UpdateRecord with this package's errors (ErrNotFound, ErrConflict
// after CASRetries rounds, ErrUnavailable saying what failed). mutate
// must do no I/O. It returns the record as written or found and its
// revision.
func (r *Registry) update(ctx context.Context, id, what string, mutate func(v *events.Vault) error) (events.Vault, uint64, error) {
	nid, ok := normalizeID(id)
	if !ok {
		return events.Vault{}, 0, notFoundf("vault %q not found", id)
	}
	v, rev, _, err := events.UpdateRecord(ctx, r.kv, nid, events.CAS{Attempts: r.cfg.CASRetries}, func(v *events.Vault, _ bool) error { return mutate(v) })
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return events.Vault{}, 0, notFoundf("vault %q not found", id)
	case errors.Is(err, events.ErrContended):
		return events.Vault{}, 0, conflictf("vault %s changed concurrently %d times; retry", id, r.cfg.CASRetries)
	case errors.Is(err, events.ErrKV):
		return events.Vault{}, 0, unavailable(what, err)
	case err != nil:
		return events.Vault{}, 0, err
	}
	return v, rev, nil
}
