package control

import (
	"container/heap"
	"context"
	"errors"
	"slices"
	"strings"
	"sync"

	"github.com/akvsync/akvsync/pkg/events"
)

// MaxVaultsLimit bounds a page of the vault list; limit -1 asks for that
// many.
const MaxVaultsLimit = 1000

// Sort orders of the vault list: a field, ascending, or prefixed with "-"
// for descending. The default is [DefaultVaultSort].
var VaultSortFields = []string{"name", "createdAt", "updatedAt"}

// DefaultVaultSort is the vault list's order when none is given: newest
// first.
const DefaultVaultSort = "-createdAt"

// VaultQuery filters and pages the vault list. Filters compare without
// regard to case; an empty filter matches every vault.
type VaultQuery struct {
	// Name matches the vault name or, with "::", the qualified name
	// "name::subscription".
	Name string
	// AzureVaultID matches the ARM resource id.
	AzureVaultID string
	// SubscriptionID, Connection and Location match those fields
	// (locations also without spaces: "West Europe" is "westeurope").
	SubscriptionID, Connection, Location string
	// Type matches the resource type, Microsoft.KeyVault/vaults or
	// Microsoft.KeyVault/managedHSMs.
	Type string
	// Sort is one of [VaultSortFields], optionally prefixed with "-";
	// "" is [DefaultVaultSort].
	Sort string
	// Skip and Limit page the list; Limit [events.LimitAll] returns all (up
	// to [MaxVaultsLimit]), 0 means [events.DefaultLimit].
	Skip, Limit int
}

// VaultPage is one page of vaults in CCKM's list envelope.
type VaultPage struct {
	Skip      int            `json:"skip"`
	Limit     int            `json:"limit"`
	Total     int            `json:"total"`
	Resources []events.Vault `json:"resources"`
}

// CheckVaultSort reports whether s is a valid vault list order.
func CheckVaultSort(s string) error {
	if s == "" || slices.Contains(VaultSortFields, strings.TrimPrefix(s, "-")) {
		return nil
	}
	return invalidf("sort must be one of %s (prefix - for descending), not %q", strings.Join(VaultSortFields, ", "), s)
}

// normLocation folds a location for comparison: "West Europe" and
// "westeurope" are the same region.
func normLocation(s string) string { return strings.ToLower(strings.ReplaceAll(s, " ", "")) }

// matcher returns the filter of q (the name is matched by the caller when
// it uses the name index).
func (q VaultQuery) matcher() (func(events.Vault) bool, error) {
	typ := ""
	if q.Type != "" {
		t, ok := CanonicalVaultType(q.Type)
		if !ok {
			return nil, invalidf("type %q must be %s or %s", q.Type, events.VaultTypeVault, events.VaultTypeManagedHSM)
		}
		typ = t
	}
	name, sub, qualified := strings.Cut(q.Name, "::")
	loc := normLocation(q.Location)
	return func(v events.Vault) bool {
		switch {
		case q.Name != "" && !strings.EqualFold(v.Name, name):
			return false
		case qualified && !strings.EqualFold(v.SubscriptionID, sub):
			return false
		case q.AzureVaultID != "" && !strings.EqualFold(v.AzureVaultID, q.AzureVaultID):
			return false
		case q.SubscriptionID != "" && !strings.EqualFold(v.SubscriptionID, q.SubscriptionID):
			return false
		case q.Connection != "" && !strings.EqualFold(v.Connection, q.Connection):
			return false
		case q.Location != "" && normLocation(v.Location) != loc:
			return false
		case typ != "" && v.ResourceType() != typ:
			return false
		}
		return true
	}, nil
}

// vaultOrder returns the comparison of a sort order: the field (the
// qualified name for "name"), then the qualified name ascending and the
// id, so the order is total.
func vaultOrder(sort string) func(a, b events.Vault) int {
	if sort == "" {
		sort = DefaultVaultSort
	}
	field, desc := strings.TrimPrefix(sort, "-"), strings.HasPrefix(sort, "-")
	byName := func(a, b events.Vault) int {
		return strings.Compare(strings.ToLower(a.QualifiedName()), strings.ToLower(b.QualifiedName()))
	}
	return func(a, b events.Vault) int {
		var c int
		switch field {
		case "createdAt":
			c = a.CreatedAt.Compare(b.CreatedAt)
		case "updatedAt":
			c = a.UpdatedAt.Compare(b.UpdatedAt)
		default:
			c = byName(a, b)
		}
		if desc {
			c = -c
		}
		if c == 0 {
			c = byName(a, b)
		}
		if c == 0 {
			c = strings.Compare(a.ID, b.ID)
		}
		return c
	}
}

// List returns one page of vaults matching q, in q's order. A name filter
// is answered from the uniqueness index. Otherwise the registry is streamed
// once, a batch at a time, keeping only the best skip+limit matches — each
// without its properties and tags, so a kept vault costs a few hundred
// bytes — and the page's records are then read whole; a vault removed
// meanwhile drops out of the page.
func (r *Registry) List(ctx context.Context, q VaultQuery) (VaultPage, error) {
	if q.Skip < 0 {
		return VaultPage{}, invalidf("skip must not be negative")
	}
	if q.Limit < events.LimitAll {
		return VaultPage{}, invalidf("limit must be -1 (all) or positive")
	}
	if err := CheckVaultSort(q.Sort); err != nil {
		return VaultPage{}, err
	}
	match, err := q.matcher()
	if err != nil {
		return VaultPage{}, err
	}
	limit := q.Limit
	if limit == 0 {
		limit = events.DefaultLimit
	}
	if limit < 0 || limit > MaxVaultsLimit {
		limit = MaxVaultsLimit
	}
	order := vaultOrder(q.Sort)
	if q.Name != "" {
		vs, err := r.byName(ctx, q.Name)
		if err != nil {
			return VaultPage{}, err
		}
		vs = slices.DeleteFunc(vs, func(v events.Vault) bool { return !match(v) })
		slices.SortFunc(vs, order)
		return VaultPage{Skip: q.Skip, Limit: limit, Total: len(vs), Resources: events.PageOf(vs, q.Skip, limit)}, nil
	}
	total := 0
	top := &vaultHeap{cmp: order, n: q.Skip + limit}
	if err := r.EachBatch(ctx, resolveBatch, func(vs []events.Vault) error {
		for _, v := range vs {
			if match(v) {
				total++
				top.offer(v.ForTask())
			}
		}
		return nil
	}); err != nil {
		return VaultPage{}, err
	}
	page, err := r.whole(ctx, events.PageOf(top.sorted(), q.Skip, limit), match)
	if err != nil {
		return VaultPage{}, err
	}
	return VaultPage{Skip: q.Skip, Limit: limit, Total: total, Resources: page}, nil
}

// whole reads the records of a page of slim vaults (concurrently, in
// order), dropping those removed — or changed so they no longer match —
// since the page was chosen.
func (r *Registry) whole(ctx context.Context, slim []events.Vault, match func(events.Vault) bool) ([]events.Vault, error) {
	out := make([]events.Vault, len(slim))
	errs := make([]error, len(slim))
	var wg sync.WaitGroup
	sem := make(chan struct{}, resolveParallelism)
	for i, s := range slim {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out[i], errs[i] = r.Get(ctx, s.ID)
		}()
	}
	wg.Wait()
	page := out[:0]
	for i, v := range out {
		switch {
		case errors.Is(errs[i], ErrNotFound):
		case errs[i] != nil:
			return nil, errs[i]
		case match(v):
			page = append(page, v)
		}
	}
	return page, nil
}

// byName returns the vaults whose name (or "name::subscription") is name,
// through the uniqueness index.
func (r *Registry) byName(ctx context.Context, name string) ([]events.Vault, error) {
	v, err := r.Resolve(ctx, name)
	switch {
	case err == nil:
		return []events.Vault{v}, nil
	case errors.Is(err, ErrNotFound):
		return nil, nil
	case errors.Is(err, ErrInvalid) && !strings.Contains(name, "::") && ValidVaultName(name):
		// Ambiguous: the name exists in several subscriptions.
		lister, err := r.kv.ListKeysFiltered(ctx, nameKeyPrefix+"*."+strings.ToLower(name))
		if err != nil {
			return nil, unavailable("list vaults", err)
		}
		var out []events.Vault
		for k := range lister.Keys() {
			if v, err := r.byIndex(ctx, k, name); err == nil {
				out = append(out, v)
			}
		}
		return out, nil
	case errors.Is(err, ErrInvalid):
		return nil, nil
	default:
		return nil, err
	}
}

// vaultHeap keeps the n smallest vaults by cmp seen so far: a
// container/heap max-heap whose root is the worst vault kept.
type vaultHeap struct {
	cmp func(a, b events.Vault) int
	n   int
	vs  []events.Vault
}

func (h *vaultHeap) Len() int           { return len(h.vs) }
func (h *vaultHeap) Less(i, j int) bool { return h.cmp(h.vs[i], h.vs[j]) > 0 }
func (h *vaultHeap) Swap(i, j int)      { h.vs[i], h.vs[j] = h.vs[j], h.vs[i] }
func (h *vaultHeap) Push(x any)         { h.vs = append(h.vs, x.(events.Vault)) }
func (h *vaultHeap) Pop() any {
	v := h.vs[len(h.vs)-1]
	h.vs = h.vs[:len(h.vs)-1]
	return v
}

// offer keeps v if it is among the n smallest seen.
func (h *vaultHeap) offer(v events.Vault) {
	switch {
	case h.n <= 0:
	case len(h.vs) < h.n:
		heap.Push(h, v)
	case h.cmp(v, h.vs[0]) < 0:
		h.vs[0] = v
		heap.Fix(h, 0)
	}
}

// sorted returns the kept vaults in cmp order.
func (h *vaultHeap) sorted() []events.Vault {
	out := slices.Clone(h.vs)
	slices.SortFunc(out, h.cmp)
	return out
}
