package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/akvsync/akvsync/internal/apierr"
	"github.com/akvsync/akvsync/internal/arm"
	"github.com/akvsync/akvsync/pkg/events"
)

// recordNamespace is the namespace of stored subscription ids (a fixed
// random UUID).
var recordNamespace = uuid.MustParse("3f0c9d52-7a41-4c8e-9b6d-2e51a7c4f809")

// RecordID is the id of the stored record of an Azure subscription: a
// version 5 UUID of the lower-cased subscription id, the same in every
// process.
func RecordID(subscriptionID string) string {
	return uuid.NewSHA1(recordNamespace, []byte(strings.ToLower(subscriptionID))).String()
}

// Subscription is a stored subscription, in CCKM's field names.
type Subscription struct {
	ID string `json:"id"`
	// SubscriptionID is Azure's subscription id; SubscriptionURI its ARM
	// resource id ("/subscriptions/<id>").
	SubscriptionID      string `json:"subscriptionId"`
	SubscriptionURI     string `json:"subscriptionUri"`
	DisplayName         string `json:"displayName"`
	State               string `json:"state"`
	AuthorizationSource string `json:"authorizationSource"`
	TenantID            string `json:"tenantId"`
	// Connection is the name of the connection that last listed it.
	Connection string    `json:"connection"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// sameContent reports whether a and b differ only in their times.
func sameContent(a, b Subscription) bool {
	a.CreatedAt, a.UpdatedAt, b.CreatedAt, b.UpdatedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	return a == b
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC().Truncate(time.Microsecond) }

// store upserts the subscriptions, at most StoreConcurrency at a time.
func (s *Service) store(ctx context.Context, connection string, subs []arm.Subscription) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.cfg.StoreConcurrency)
	now := s.now()
	for _, sub := range subs {
		if sub.SubscriptionID == "" {
			continue
		}
		rec := Subscription{
			ID:                  RecordID(sub.SubscriptionID),
			SubscriptionID:      sub.SubscriptionID,
			SubscriptionURI:     sub.ID,
			DisplayName:         sub.DisplayName,
			State:               sub.State,
			AuthorizationSource: sub.AuthorizationSource,
			TenantID:            sub.TenantID,
			Connection:          connection,
			CreatedAt:           now,
			UpdatedAt:           now,
		}
		g.Go(func() error { return s.upsert(gctx, rec) })
	}
	return g.Wait()
}

// upsert creates rec, or updates the stored record when its content
// changed (keeping created_at), with compare-and-set.
func (s *Service) upsert(ctx context.Context, rec Subscription) error {
	_, _, _, err := events.UpdateValue(ctx, s.kv, rec.ID, events.CAS{Attempts: s.cfg.CASRetries, Create: true}, func(raw []byte, exists bool) ([]byte, error) {
		next := rec
		var old Subscription
		if exists && json.Unmarshal(raw, &old) == nil {
			if sameContent(old, next) {
				return nil, events.ErrNoChange
			}
			if !old.CreatedAt.IsZero() {
				next.CreatedAt = old.CreatedAt
			}
		}
		data, err := json.Marshal(next)
		if err != nil {
			return nil, fmt.Errorf("discovery: encode subscription: %w", err)
		}
		return data, nil
	})
	switch {
	case errors.Is(err, events.ErrContended):
		return unavailable("store subscription "+rec.SubscriptionID, errors.New("it changed concurrently too often"))
	case errors.Is(err, events.ErrKV):
		return unavailable("store subscription "+rec.SubscriptionID, err)
	}
	return err
}

// SubscriptionQuery filters and pages the stored subscriptions.
type SubscriptionQuery struct {
	// ID matches the record id.
	ID string
	// SubscriptionID matches Azure's subscription id (case-insensitive).
	SubscriptionID string
	// DisplayName matches the display name (case-insensitive).
	DisplayName string
	// Sort is a field name (subscriptionId, displayName, createdAt,
	// updatedAt), descending with a leading '-'; default -createdAt.
	Sort string
	// Skip and Limit page the list; Limit [events.LimitAll] returns all
	// (at most [MaxListLimit]), 0 means [events.DefaultLimit].
	Skip, Limit int
}

// SubscriptionSorts are the accepted values of SubscriptionQuery.Sort
// (each also with a leading '-'). Snake-case spellings are accepted too.
var SubscriptionSorts = []string{"subscriptionId", "displayName", "createdAt", "updatedAt"}

func bySubscriptionID(a, b Subscription) int {
	return strings.Compare(strings.ToLower(a.SubscriptionID), strings.ToLower(b.SubscriptionID))
}

func byDisplayName(a, b Subscription) int {
	return strings.Compare(strings.ToLower(a.DisplayName), strings.ToLower(b.DisplayName))
}

func byCreated(a, b Subscription) int { return a.CreatedAt.Compare(b.CreatedAt) }

func byUpdated(a, b Subscription) int { return a.UpdatedAt.Compare(b.UpdatedAt) }

// sortKeys maps every accepted spelling to its comparison.
var sortKeys = map[string]func(a, b Subscription) int{
	"subscriptionId": bySubscriptionID, "subscription_id": bySubscriptionID,
	"displayName": byDisplayName, "name": byDisplayName,
	"createdAt": byCreated, "created_at": byCreated,
	"updatedAt": byUpdated, "updated_at": byUpdated,
}

// ValidSort reports whether s is an accepted sort.
func ValidSort(s string) bool {
	_, ok := sortKeys[strings.TrimPrefix(s, "-")]
	return s == "" || ok
}

// SubscriptionPage is one page of stored subscriptions.
type SubscriptionPage struct {
	Skip      int            `json:"skip"`
	Limit     int            `json:"limit"`
	Total     int            `json:"total"`
	Resources []Subscription `json:"resources"`
}

// Subscriptions lists the stored subscriptions: one pass over the bucket
// (its size is the number of subscriptions discovery has seen), filtered,
// sorted and paged.
func (s *Service) Subscriptions(ctx context.Context, q SubscriptionQuery) (SubscriptionPage, error) {
	switch {
	case q.Skip < 0:
		return SubscriptionPage{}, invalidf("skip must not be negative")
	case q.Limit < events.LimitAll:
		return SubscriptionPage{}, invalidf("limit must be -1 (all) or positive")
	case !ValidSort(q.Sort):
		return SubscriptionPage{}, invalidf("sort must be one of %s, optionally with a leading '-'", strings.Join(SubscriptionSorts, ", "))
	}
	limit := q.Limit
	if limit == 0 {
		limit = events.DefaultLimit
	}
	if limit < 0 || limit > MaxListLimit {
		limit = MaxListLimit
	}
	sortBy := q.Sort
	if sortBy == "" {
		sortBy = "-createdAt"
	}
	cmp := sortKeys[strings.TrimPrefix(sortBy, "-")]
	desc := strings.HasPrefix(sortBy, "-")
	order := func(a, b Subscription) int {
		c := cmp(a, b)
		if desc {
			c = -c
		}
		if c == 0 {
			c = strings.Compare(a.ID, b.ID)
		}
		return c
	}
	var match []Subscription
	err := s.each(ctx, func(rec Subscription) {
		switch {
		case q.ID != "" && !strings.EqualFold(rec.ID, q.ID):
		case q.SubscriptionID != "" && !strings.EqualFold(rec.SubscriptionID, q.SubscriptionID):
		case q.DisplayName != "" && !strings.EqualFold(rec.DisplayName, q.DisplayName):
		default:
			match = append(match, rec)
		}
	})
	if err != nil {
		return SubscriptionPage{}, err
	}
	slices.SortFunc(match, order)
	total := len(match)
	page := events.PageOf(match, q.Skip, limit)
	if page == nil {
		page = []Subscription{}
	}
	return SubscriptionPage{Skip: q.Skip, Limit: limit, Total: total, Resources: page}, nil
}

// each calls fn with every stored subscription, in one pass.
func (s *Service) each(ctx context.Context, fn func(Subscription)) error {
	w, err := s.kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return unavailable("list subscriptions", err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return unavailable("list subscriptions", errors.New("watcher closed"))
			}
			if e == nil {
				return nil
			}
			var rec Subscription
			if json.Unmarshal(e.Value(), &rec) == nil && rec.ID != "" {
				fn(rec)
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// lookup finds a stored subscription by its record id or by its Azure
// subscription id.
func (s *Service) lookup(ctx context.Context, ref string) (Subscription, uint64, error) {
	if ref == "" || len(ref) > MaxFieldLen || !arm.ValidSubscriptionID(ref) {
		return Subscription{}, 0, notFoundf("subscription %q not found", ref)
	}
	keys := []string{strings.ToLower(ref), RecordID(ref)}
	for _, key := range keys {
		e, err := s.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
			continue
		}
		if err != nil {
			return Subscription{}, 0, unavailable("read subscription", err)
		}
		var rec Subscription
		if err := json.Unmarshal(e.Value(), &rec); err != nil {
			return Subscription{}, 0, fmt.Errorf("discovery: decode subscription %s: %w", key, err)
		}
		return rec, e.Revision(), nil
	}
	return Subscription{}, 0, notFoundf("subscription %q not found", ref)
}

// Subscription returns the stored subscription with the given record id
// or Azure subscription id.
func (s *Service) Subscription(ctx context.Context, ref string) (Subscription, error) {
	rec, _, err := s.lookup(ctx, ref)
	return rec, err
}

// DeleteSubscription deletes the stored subscription with the given
// record id or Azure subscription id and returns it. Vaults of the
// subscription are not touched; a later get-subscriptions stores it again.
func (s *Service) DeleteSubscription(ctx context.Context, ref string) (Subscription, error) {
	rec, rev, err := s.lookup(ctx, ref)
	if err != nil {
		return Subscription{}, err
	}
	if err := s.kv.Delete(ctx, rec.ID, jetstream.LastRevision(rev)); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return Subscription{}, apierr.Wrap(ErrUnavailable, err, "subscription %s changed while being deleted; retry", rec.SubscriptionID)
		}
		return Subscription{}, unavailable("delete subscription", err)
	}
	s.cfg.Logger.Info().Str("subscription_id", rec.SubscriptionID).Str("id", rec.ID).Msg("stored subscription deleted")
	return rec, nil
}
