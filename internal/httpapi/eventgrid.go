package httpapi

import (
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/akvsync/akvsync/internal/control"
	"github.com/akvsync/akvsync/internal/eventgrid"
	"github.com/akvsync/akvsync/pkg/events"
)

// EventGridPath is the Event Grid webhook.
const EventGridPath = APIPrefix + "/cckm/azure/event-grid"

// EventGridMaxBodyBytes bounds a delivery: Event Grid's largest batch
// (1 MB) with room to spare.
const EventGridMaxBodyBytes = 1<<20 + 64<<10

// EventGridService resolves the vaults Event Grid events name and queues
// their key refreshes; *control.Refreshes implements it.
type EventGridService interface {
	Vault(ctx context.Context, subscriptionID, name string) (events.Vault, error)
	Request(ctx context.Context, reqs []events.KeyRefresh) (duplicates int, err error)
}

// EventGridWebhook authenticates and paces deliveries; *eventgrid.Webhook
// implements it.
type EventGridWebhook interface {
	Authenticate(r *http.Request) (string, error)
	Allow(n int) (retryAfter time.Duration, ok bool)
	Rate() float64
}

// Outcomes of the events of a delivery (akvsync_eventgrid_events_total).
const (
	egQueued       = "queued"
	egDuplicate    = "duplicate"
	egUnknownVault = "unknown_vault"
	egIgnored      = "ignored_type"
	egMalformed    = "malformed"
)

// eventGridHandshakeMaxBytes bounds the body of a delivery read without
// credentials: only a validation event is answered then, and it is small.
const eventGridHandshakeMaxBytes = 16 << 10

// eventGridOptions answers the CloudEvents abuse-protection handshake
// (OPTIONS with WebHook-Request-Origin). It needs no credentials: the
// answer grants nothing and reads nothing (Event Grid may not send a
// subscription's delivery headers on it).
func (a *api) eventGridOptions(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("WebHook-Request-Origin")
	if origin == "" {
		writeError(w, http.StatusBadRequest, "a CloudEvents validation request carries WebHook-Request-Origin")
		return
	}
	rate := eventgrid.DefaultRate
	if a.d.EventGridWebhook != nil {
		rate = a.d.EventGridWebhook.Rate()
	}
	w.Header().Set("WebHook-Allowed-Origin", origin)
	w.Header().Set("WebHook-Allowed-Rate", strconv.Itoa(max(1, int(rate))))
	w.Header().Set("Allow", "OPTIONS, POST")
	w.WriteHeader(http.StatusOK)
}

// eventGridCaller authenticates a delivery: the caller, or an error
// (without a webhook configured no delivery is authenticated).
func (a *api) eventGridCaller(r *http.Request) (string, error) {
	if a.d.EventGridWebhook == nil {
		return "", eventgrid.ErrUnauthenticated
	}
	return a.d.EventGridWebhook.Authenticate(r)
}

// eventGridUnauthorized answers 401 for a delivery without credentials.
func eventGridUnauthorized(w http.ResponseWriter, r *http.Request, err error) {
	if info := infoFrom(r.Context()); info != nil {
		info.err = err
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="akvsync-event-grid"`)
	writeError(w, http.StatusUnauthorized, "the delivery carries no valid webhook secret or Entra ID token")
}

// eventGrid handles POST /cckm/azure/event-grid: an Event Grid delivery
// of Key Vault events (Event Grid schema or CloudEvents 1.0). A
// subscription validation event is answered with its code. Each key
// event of a registered vault queues a refresh of that one key; events
// of unknown vaults, of other types and malformed ones are counted and
// dropped. 200 means every event was queued or dropped; 400 (no event of
// the schema at all) and 401 are not retried by Event Grid; 429 and 503
// are, later.
func (a *api) eventGrid(w http.ResponseWriter, r *http.Request) {
	who, authErr := a.eventGridCaller(r)
	limit := int64(EventGridMaxBodyBytes)
	if authErr != nil {
		limit = eventGridHandshakeMaxBytes
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		switch {
		case authErr != nil:
			eventGridUnauthorized(w, r, authErr)
		case errors.As(err, &mbe):
			writeError(w, http.StatusRequestEntityTooLarge, "the delivery exceeds "+strconv.Itoa(EventGridMaxBodyBytes)+" bytes")
		default:
			fail(w, r, control.ErrUnavailable)
		}
		return
	}
	d, err := eventgrid.Parse(body)
	if err == nil && d.Validation != nil {
		// The handshake needs no credentials: echoing the code Event Grid
		// sent proves nothing but that this endpoint answers.
		a.d.Log.Info().Str("schema", string(d.Schema)).Bool("authenticated", authErr == nil).Msg("Event Grid subscription validated")
		writeJSON(w, http.StatusOK, map[string]string{"validationResponse": d.Validation.Code})
		return
	}
	if authErr != nil {
		eventGridUnauthorized(w, r, authErr)
		return
	}
	if info := infoFrom(r.Context()); info != nil {
		info.user = who
	}
	if a.d.EventGrid == nil {
		writeError(w, http.StatusServiceUnavailable, "the Event Grid webhook is not configured on this server")
		return
	}
	if err != nil {
		fail(w, r, invalid("%s", err.Error()))
		return
	}
	if wait, ok := a.d.EventGridWebhook.Allow(len(d.Events)); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(wait.Seconds())))))
		writeError(w, http.StatusTooManyRequests, "Too many events; retry later")
		return
	}
	now := a.d.Now().UTC()
	outcomes := map[string]int{egMalformed: d.Malformed}
	type vaultRef struct{ subscription, name string }
	type resolved struct {
		v   events.Vault
		err error
	}
	vaults := map[vaultRef]resolved{}
	var reqs []events.KeyRefresh
	for _, ev := range d.Events {
		if !slices.Contains(events.RefreshEventTypes(), ev.Type) {
			outcomes[egIgnored]++
			continue
		}
		ke, err := ev.KeyEvent()
		if err == nil && !events.ValidKeyName(ke.KeyName) {
			err = invalid("key name %q is not an Azure key name", ke.KeyName)
		}
		if err != nil {
			// Dropped alone: Event Grid would never redeliver the batch.
			outcomes[egMalformed]++
			a.d.Log.Debug().Str("event_id", ev.ID).Err(err).Msg("malformed Event Grid key event; dropped")
			continue
		}
		// A batch usually names few vaults: each is resolved once.
		ref := vaultRef{ke.SubscriptionID, strings.ToLower(ke.VaultName)}
		got, ok := vaults[ref]
		if !ok {
			got.v, got.err = a.d.EventGrid.Vault(r.Context(), ke.SubscriptionID, ke.VaultName)
			vaults[ref] = got
		}
		v, err := got.v, got.err
		if errors.Is(err, control.ErrNotFound) {
			outcomes[egUnknownVault]++
			a.d.Log.Debug().Str("event_id", ev.ID).Str("vault", ke.VaultName).Msg("Event Grid event of an unregistered vault; dropped")
			continue
		}
		if err != nil {
			fail(w, r, err)
			return
		}
		t := ev.Time
		if t.IsZero() {
			t = now
		}
		reqs = append(reqs, events.KeyRefresh{VaultID: v.ID, KeyName: ke.KeyName, Version: ke.Version,
			EventID: ev.ID, EventType: ev.Type, EventTime: t, ReceivedAt: now})
	}
	if len(reqs) > 0 {
		dups, err := a.d.EventGrid.Request(r.Context(), reqs)
		if err != nil {
			fail(w, r, err)
			return
		}
		outcomes[egDuplicate] += dups
		outcomes[egQueued] += len(reqs) - dups
	}
	for o, n := range outcomes {
		if n > 0 {
			a.d.Metrics.ObserveEventGrid(o, n)
		}
	}
	w.WriteHeader(http.StatusOK)
}
