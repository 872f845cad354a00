package connections

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/akvsync/akvsync/internal/secrets"
	"github.com/akvsync/akvsync/pkg/events"
)

// nameKeyPrefix prefixes the uniqueness index keys of the bucket.
const nameKeyPrefix = "byname."

// Query filters and pages the connection list.
type Query struct {
	// Name matches the connection name exactly (case-insensitive).
	Name string
	// Skip and Limit page the list; Limit [events.LimitAll] returns all,
	// 0 means [events.DefaultLimit].
	Skip, Limit int
}

// Page is one page of connections in CCKM's list envelope.
type Page struct {
	Skip      int          `json:"skip"`
	Limit     int          `json:"limit"`
	Total     int          `json:"total"`
	Resources []Connection `json:"resources"`
}

// Registry is the connection registry over the akvsync-connections
// bucket. It is safe for concurrent use, also by several processes.
type Registry struct {
	kv     jetstream.KeyValue
	vaults jetstream.KeyValue
	sealer *secrets.Sealer
	cfg    Config

	mu    sync.Mutex
	cache map[string]cached // lower-case name → last decrypted connection
}

// New opens the connections and vaults buckets (which
// [events.Topology.EnsureStreams] must have created) and returns the
// registry. The sealer seals new secrets and opens stored ones.
func New(ctx context.Context, js jetstream.JetStream, sealer *secrets.Sealer, cfg Config) (*Registry, error) {
	if js == nil || sealer == nil {
		return nil, errors.New("connections: nil JetStream context or sealer")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	kv, err := events.Bucket(ctx, js, events.BucketConnections)
	if err != nil {
		return nil, fmt.Errorf("connections: %w", err)
	}
	vaults, err := events.Bucket(ctx, js, events.BucketVaults)
	if err != nil {
		return nil, fmt.Errorf("connections: %w", err)
	}
	return &Registry{kv: kv, vaults: vaults, sealer: sealer, cfg: cfg.WithDefaults(), cache: map[string]cached{}}, nil
}

// nameKey is the uniqueness index key of a name: hex keeps any valid name
// (dots included) a valid KV key.
func nameKey(name string) string {
	return nameKeyPrefix + hex.EncodeToString([]byte(strings.ToLower(name)))
}

// normalizeID is events.NormalizeID: connection ids are UUIDs.
func normalizeID(s string) (string, bool) { return events.NormalizeID(s) }

func (r *Registry) now() time.Time { return r.cfg.Now().UTC().Truncate(time.Microsecond) }

func cleanupContext(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), d)
}

// Create validates req, seals its secrets and registers the connection.
// A name already registered (case-insensitively, by this or a concurrent
// request in any process) fails with [ErrConflict]; on any error nothing
// is left behind.
func (r *Registry) Create(ctx context.Context, req CreateRequest) (c Connection, err error) {
	req = req.normalized()
	if err := req.check(); err != nil {
		return Connection{}, err
	}
	generate := req.generates()
	if err := validate(req.Settings, req.secrets(), generate); err != nil {
		return Connection{}, err
	}
	if err := r.checkEndpoints(req.Settings); err != nil {
		return Connection{}, err
	}
	now := r.now()
	sec := req.secrets()
	if generate {
		if sec.Certificate, err = generateCertificate(req.Name, req.CertDuration, now); err != nil {
			return Connection{}, err
		}
		if err := validate(req.Settings, sec, false); err != nil {
			return Connection{}, err
		}
	}
	rec := record{ID: events.NewID(), Settings: req.Settings, Generated: generate, CreatedAt: now, UpdatedAt: now}
	rec.URI = URIPrefix + rec.Name + "-" + rec.ID
	rec.Labels = cloneMap(rec.Labels)
	rec.Products = slices.Clone(rec.Products)
	rec.Meta = slices.Clone(rec.Meta)
	if err := rec.seal(r.sealer, sec); err != nil {
		return Connection{}, err
	}
	data, err := json.Marshal(rec) // #nosec G117 -- record.ClientSecret holds secrets.Sealer output only (sealed), never the plain secret
	if err != nil {
		return Connection{}, fmt.Errorf("connections: encode: %w", err)
	}
	key := nameKey(rec.Name)
	irev, err := r.claimName(ctx, key, rec)
	if err != nil {
		return Connection{}, err
	}
	if _, err := r.kv.Create(ctx, rec.ID, data); err != nil {
		cctx, cancel := cleanupContext(ctx, r.cfg.CleanupTimeout)
		defer cancel()
		_ = r.kv.Delete(cctx, key, jetstream.LastRevision(irev))
		return Connection{}, unavailable("store connection "+rec.Name, err)
	}
	r.cfg.Logger.Info().Str("connection_id", rec.ID).Str("connection", rec.Name).
		Str("credential_type", rec.CredentialType).Msg("connection created")
	return rec.view(), nil
}

// claimName creates the uniqueness index entry of rec (see
// events.ClaimKey: an entry left behind by a process that died before
// writing the record is taken over once it is older than staleIndexAfter).
func (r *Registry) claimName(ctx context.Context, key string, rec record) (uint64, error) {
	rev, holder, err := events.ClaimKey(ctx, r.kv, key, rec.ID, staleIndexAfter, r.cfg.Now())
	switch {
	case errors.Is(err, events.ErrTaken) && holder != "":
		return 0, conflictf("connection %s already exists (id %s)", rec.Name, holder)
	case errors.Is(err, events.ErrTaken):
		return 0, conflictf("connection %s already exists", rec.Name)
	case err != nil:
		return 0, unavailable("register connection "+rec.Name, err)
	}
	return rev, nil
}

// load returns the record a reference names — its id, else its name —
// and the record's revision.
func (r *Registry) load(ctx context.Context, ref string) (record, uint64, error) {
	if id, ok := normalizeID(ref); ok {
		rec, rev, err := r.byID(ctx, id)
		if !errors.Is(err, ErrNotFound) {
			return rec, rev, err
		}
	}
	if !validName(ref) {
		return record{}, 0, notFoundf("connection %q not found", ref)
	}
	e, err := r.kv.Get(ctx, nameKey(ref))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return record{}, 0, notFoundf("connection %q not found", ref)
	}
	if err != nil {
		return record{}, 0, unavailable("resolve connection", err)
	}
	rec, rev, err := r.byID(ctx, string(e.Value()))
	if errors.Is(err, ErrNotFound) || err == nil && !strings.EqualFold(rec.Name, ref) {
		return record{}, 0, notFoundf("connection %q not found", ref) // a dangling index entry
	}
	return rec, rev, err
}

// byID reads the record stored under id.
func (r *Registry) byID(ctx context.Context, id string) (record, uint64, error) {
	e, err := r.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return record{}, 0, notFoundf("connection %q not found", id)
	}
	if err != nil {
		return record{}, 0, unavailable("read connection", err)
	}
	rec, err := decodeRecord(id, e.Value())
	if err != nil {
		return record{}, 0, err
	}
	return rec, e.Revision(), nil
}

// Get returns the connection with the given id or name.
func (r *Registry) Get(ctx context.Context, ref string) (Connection, error) {
	rec, _, err := r.load(ctx, ref)
	if err != nil {
		return Connection{}, err
	}
	if rec.Deleting {
		return Connection{}, notFoundf("connection %q is being deleted", ref)
	}
	return rec.view(), nil
}

// all returns every record with its revision, in no particular order.
func (r *Registry) all(ctx context.Context) ([]record, []uint64, error) {
	// Records are single-token keys (UUIDs); index entries have dots.
	w, err := r.kv.WatchFiltered(ctx, []string{"*"}, jetstream.IgnoreDeletes())
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return nil, nil, nil
		}
		return nil, nil, unavailable("list connections", err)
	}
	defer func() { _ = w.Stop() }()
	var recs []record
	var revs []uint64
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil, nil, unavailable("list connections", errors.New("watcher closed"))
			}
			if e == nil {
				return recs, revs, nil
			}
			rec, err := decodeRecord(e.Key(), e.Value())
			if err != nil {
				return nil, nil, err
			}
			recs, revs = append(recs, rec), append(revs, e.Revision())
		case <-ctx.Done():
			return nil, nil, unavailable("list connections", ctx.Err())
		}
	}
}

// List returns one page of connections matching q, newest first (then by
// name).
func (r *Registry) List(ctx context.Context, q Query) (Page, error) {
	if q.Skip < 0 {
		return Page{}, invalidf("skip must not be negative")
	}
	if q.Limit < events.LimitAll {
		return Page{}, invalidf("limit must be -1 (all) or positive")
	}
	recs, _, err := r.all(ctx)
	if err != nil {
		return Page{}, err
	}
	match := make([]Connection, 0, len(recs))
	for _, rec := range recs {
		if q.Name == "" || strings.EqualFold(rec.Name, q.Name) {
			match = append(match, rec.view())
		}
	}
	slices.SortFunc(match, func(a, b Connection) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	limit := q.Limit
	if limit == 0 {
		limit = events.DefaultLimit
	}
	return Page{Skip: q.Skip, Limit: limit, Total: len(match), Resources: events.PageOf(match, q.Skip, limit)}, nil
}

// Patch applies a partial update to the connection with the given id or
// name and returns it. The patched connection is validated as a whole;
// new secrets are sealed under the current master key. A concurrent
// update is retried on the new revision.
func (r *Registry) Patch(ctx context.Context, ref string, req PatchRequest) (Connection, error) {
	req = req.normalized()
	if err := req.checkShape(); err != nil {
		return Connection{}, err
	}
	found, _, err := r.load(ctx, ref)
	if err != nil {
		return Connection{}, err
	}
	var generated []byte // made once, on the first attempt that needs it
	next, _, err := r.update(ctx, found.ID, "update connection "+found.Name, func(rec *record) error {
		cur, err := rec.open(r.sealer)
		if err != nil {
			return err
		}
		if req.needsGeneratedCertificate(rec.Settings, cur) && generated == nil {
			days := rec.CertDuration
			if req.CertDuration != nil {
				days = *req.CertDuration
			}
			if days < 1 || days > MaxCertDuration {
				return invalidf("cert_duration must be from 1 to %d days, not %d", MaxCertDuration, days)
			}
			if generated, err = generateCertificate(rec.Name, days, r.now()); err != nil {
				return err
			}
		}
		settings, sec, gen, err := req.apply(rec.Settings, rec.Generated, cur, generated)
		if err != nil {
			return err
		}
		if err := validate(settings, sec, false); err != nil {
			return err
		}
		if err := r.checkEndpoints(settings); err != nil {
			return err
		}
		if err := needsCredentialAgain(req, rec.Settings, settings, cur, sec); err != nil {
			return err
		}
		prev := *rec
		rec.Settings = settings
		rec.Generated = gen
		rec.UpdatedAt = r.now()
		rec.Deleting = false // a delete that died half-way left its mark
		if req.ClientSecret != nil || req.Certificate != nil || settings.CredentialType != prev.CredentialType ||
			gen != prev.Generated || (gen && string(sec.Certificate) != string(cur.Certificate)) {
			if err := rec.seal(r.sealer, sec); err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, events.ErrContended) {
		return Connection{}, conflictf("connection %s changed concurrently %d times; retry", ref, r.cfg.CASRetries)
	}
	if err != nil {
		return Connection{}, err
	}
	r.forget(next.Name)
	r.cfg.Logger.Info().Str("connection_id", next.ID).Str("connection", next.Name).
		Strs("fields", req.fields()).Msg("connection updated")
	return next.view(), nil
}

// update is the compare-and-set of one connection record (by id): it
// applies mutate (no I/O) to the decoded record and writes it back with
// events.UpdateValue. It returns the record as written or found and
// whether it wrote. A missing record is ErrNotFound, a failed access
// ErrUnavailable (saying what); events.ErrContended is left to the caller.
func (r *Registry) update(ctx context.Context, id, what string, mutate func(rec *record) error) (record, bool, error) {
	var rec record
	_, _, wrote, err := events.UpdateValue(ctx, r.kv, id, events.CAS{Attempts: r.cfg.CASRetries}, func(old []byte, _ bool) ([]byte, error) {
		var err error
		if rec, err = decodeRecord(id, old); err != nil {
			return nil, err
		}
		if err := mutate(&rec); err != nil {
			return nil, err
		}
		data, err := json.Marshal(rec) // #nosec G117 -- record.ClientSecret holds secrets.Sealer output only (sealed), never the plain secret
		if err != nil {
			return nil, fmt.Errorf("connections: encode: %w", err)
		}
		return data, nil
	})
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return rec, false, notFoundf("connection %q not found", id)
	case errors.Is(err, events.ErrKV):
		return rec, false, unavailable(what, err)
	}
	return rec, wrote, err
}

// put writes rec over revision rev and returns the new revision; a
// concurrent change gives an error wrapping ErrConflict.
func (r *Registry) put(ctx context.Context, rec record, rev uint64) (uint64, error) {
	data, err := json.Marshal(rec) // #nosec G117 -- record.ClientSecret holds secrets.Sealer output only (sealed), never the plain secret
	if err != nil {
		return 0, fmt.Errorf("connections: encode: %w", err)
	}
	next, err := r.kv.Update(ctx, rec.ID, data, rev)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
		return 0, conflictf("connection %s changed concurrently", rec.Name)
	}
	if err != nil {
		return 0, unavailable("update connection "+rec.Name, err)
	}
	return next, nil
}

// Delete removes the connection with the given id or name and returns it.
// It refuses with an [InUseError] (wrapping [ErrConflict]) naming the
// vaults while any registered vault refers to the connection.
func (r *Registry) Delete(ctx context.Context, ref string) (Connection, error) {
	for attempt := 0; attempt < r.cfg.CASRetries; attempt++ {
		rec, rev, err := r.load(ctx, ref)
		if err != nil {
			return Connection{}, err
		}
		// Mark it first, so a vault added from now on sees the connection
		// gone (and undoes itself), then look for vaults that use it.
		if !rec.Deleting {
			rec.Deleting = true
			if rev, err = r.put(ctx, rec, rev); err != nil {
				if errors.Is(err, ErrConflict) {
					continue
				}
				return Connection{}, err
			}
		}
		users, err := r.vaultsOf(ctx, rec.Name)
		if err != nil {
			return Connection{}, err
		}
		if len(users) > 0 {
			rec.Deleting = false
			if _, err := r.put(ctx, rec, rev); err != nil {
				r.cfg.Logger.Warn().Err(err).Str("connection", rec.Name).Msg("cannot clear the deleting mark; the next delete or patch does")
			}
			names := make([]string, len(users))
			for i, v := range users {
				names[i] = v.QualifiedName()
			}
			slices.Sort(names)
			return Connection{}, &InUseError{Connection: rec.Name, Vaults: names}
		}
		err = r.kv.Delete(ctx, rec.ID, jetstream.LastRevision(rev))
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
			continue
		}
		if err != nil {
			return Connection{}, unavailable("delete connection "+rec.Name, err)
		}
		key := nameKey(rec.Name)
		if e, err := r.kv.Get(ctx, key); err == nil && string(e.Value()) == rec.ID {
			// Best effort: a dangling index entry is repaired by the next create.
			_ = r.kv.Delete(ctx, key, jetstream.LastRevision(e.Revision()))
		}
		r.forget(rec.Name)
		r.cfg.Logger.Info().Str("connection_id", rec.ID).Str("connection", rec.Name).Msg("connection deleted")
		return rec.view(), nil
	}
	return Connection{}, conflictf("connection %s changed concurrently %d times; retry", ref, r.cfg.CASRetries)
}
