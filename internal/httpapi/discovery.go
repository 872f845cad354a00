package httpapi

import (
	"context"
	"io"
	"net/http"
	"net/url"

	"github.com/akvsync/akvsync/internal/arm"
	"github.com/akvsync/akvsync/internal/discovery"
)

// DiscoveryService is CCKM's Azure discovery; *discovery.Service
// implements it.
type DiscoveryService interface {
	GetSubscriptions(ctx context.Context, req discovery.GetSubscriptionsRequest) (discovery.SubscriptionList, error)
	GetVaults(ctx context.Context, kind arm.Kind, req discovery.GetVaultsRequest) (discovery.VaultList, error)
	Subscriptions(ctx context.Context, q discovery.SubscriptionQuery) (discovery.SubscriptionPage, error)
	Subscription(ctx context.Context, ref string) (discovery.Subscription, error)
	DeleteSubscription(ctx context.Context, ref string) (discovery.Subscription, error)
}

// SubscriptionURIPrefix prefixes the CCKM uri of a stored subscription;
// the id follows.
const SubscriptionURIPrefix = "kylo:kylo:cckm:azure-subscription:"

// TruncatedHeader is set to "true" on a get-subscriptions answer that
// holds only the first subscriptions Azure listed (see
// arm.Config.MaxSubscriptions).
const TruncatedHeader = "X-Akvsync-Truncated"

// SubscriptionJSON is a stored subscription in CCKM's shape.
type SubscriptionJSON struct {
	ID                  string `json:"id"`
	URI                 string `json:"uri"`
	Account             string `json:"account"`
	CreatedAt           string `json:"created_at"`
	UpdatedAt           string `json:"updated_at"`
	SubscriptionID      string `json:"subscriptionId"`
	SubscriptionURI     string `json:"subscriptionUri"`
	DisplayName         string `json:"displayName"`
	State               string `json:"state"`
	AuthorizationSource string `json:"authorizationSource"`
	TenantID            string `json:"tenantId"`
	// Connection is the connection that last listed the subscription.
	Connection string `json:"connection"`
}

// RenderSubscription renders a stored subscription for the API.
func RenderSubscription(s discovery.Subscription) SubscriptionJSON {
	return SubscriptionJSON{
		ID: s.ID, URI: SubscriptionURIPrefix + s.ID, Account: Account,
		CreatedAt: formatTime(s.CreatedAt), UpdatedAt: formatTime(s.UpdatedAt),
		SubscriptionID: s.SubscriptionID, SubscriptionURI: s.SubscriptionURI, DisplayName: s.DisplayName,
		State: s.State, AuthorizationSource: s.AuthorizationSource, TenantID: s.TenantID, Connection: s.Connection,
	}
}

// SubscriptionParams are the query parameters of GET …/subscriptions.
// subscription_id and name are accepted for subscriptionId and
// displayName.
var SubscriptionParams = []string{"id", "subscriptionId", "subscription_id", "displayName", "name", "sort", "skip", "limit"}

// ParseSubscriptionQuery parses the query of GET /cckm/azure/subscriptions.
func ParseSubscriptionQuery(v url.Values) (discovery.SubscriptionQuery, error) {
	p, err := newParams(v, SubscriptionParams...)
	if err != nil {
		return discovery.SubscriptionQuery{}, err
	}
	var q discovery.SubscriptionQuery
	// one reads the first of two spellings of a parameter, refusing both.
	one := func(a, b string) (string, error) {
		x, err := p.str(a)
		if err != nil {
			return "", err
		}
		y, err := p.str(b)
		if err != nil {
			return "", err
		}
		if x != "" && y != "" {
			return "", invalid("query parameters %s and %s are the same filter; give one", a, b)
		}
		return x + y, nil
	}
	if q.ID, err = p.str("id"); err != nil {
		return discovery.SubscriptionQuery{}, err
	}
	if q.SubscriptionID, err = one("subscriptionId", "subscription_id"); err != nil {
		return discovery.SubscriptionQuery{}, err
	}
	if q.DisplayName, err = one("displayName", "name"); err != nil {
		return discovery.SubscriptionQuery{}, err
	}
	if q.Sort, err = p.str("sort"); err != nil {
		return discovery.SubscriptionQuery{}, err
	}
	if !discovery.ValidSort(q.Sort) {
		return discovery.SubscriptionQuery{}, invalid("query parameter sort must be subscriptionId, displayName, createdAt or updatedAt, optionally with a leading '-', not %q", q.Sort)
	}
	if q.Skip, q.Limit, err = p.paging(); err != nil {
		return discovery.SubscriptionQuery{}, err
	}
	return q, nil
}

// ParseGetSubscriptions decodes the body of POST …/get-subscriptions:
// {"connection"}, strictly.
func ParseGetSubscriptions(r io.Reader, max int64) (discovery.GetSubscriptionsRequest, error) {
	var req discovery.GetSubscriptionsRequest
	if err := decodeBody(r, max, &req); err != nil {
		return discovery.GetSubscriptionsRequest{}, err
	}
	return req, nil
}

// ParseGetVaults decodes the body of POST …/get-vaults and
// …/get-managed-hsms: {"connection","subscription_id","limit","nextLink"},
// strictly; null fields are absent. The service validates the values.
func ParseGetVaults(r io.Reader, max int64) (discovery.GetVaultsRequest, error) {
	var req discovery.GetVaultsRequest
	if err := decodeBody(r, max, &req); err != nil {
		return discovery.GetVaultsRequest{}, err
	}
	return req, nil
}

// noDiscovery answers the discovery routes of a process built without the
// discovery service.
const noDiscovery = "Azure discovery is not configured on this server"

func (a *api) discovery(w http.ResponseWriter) (DiscoveryService, bool) {
	if a.d.Discovery == nil {
		writeError(w, http.StatusServiceUnavailable, noDiscovery)
		return nil, false
	}
	return a.d.Discovery, true
}

// getSubscriptions handles POST …/get-subscriptions: 200 with the
// subscriptions the connection sees, live from Azure, as a JSON array
// (what CCKM's clients decode); each is also stored.
func (a *api) getSubscriptions(w http.ResponseWriter, r *http.Request) {
	svc, ok := a.discovery(w)
	if !ok {
		return
	}
	req, err := ParseGetSubscriptions(http.MaxBytesReader(w, r.Body, a.cfg.MaxBodyBytes), a.cfg.MaxBodyBytes)
	if err != nil {
		fail(w, r, err)
		return
	}
	list, err := svc.GetSubscriptions(r.Context(), req)
	if err != nil {
		fail(w, r, err)
		return
	}
	subs := list.Subscriptions
	if subs == nil {
		subs = []arm.Subscription{}
	}
	if list.Truncated {
		w.Header().Set(TruncatedHeader, "true")
	}
	writeJSON(w, http.StatusOK, subs)
}

// getVaults handles POST …/get-vaults.
func (a *api) getVaults(w http.ResponseWriter, r *http.Request) { a.discover(w, r, arm.KindVaults) }

// getManagedHSMs handles POST …/get-managed-hsms.
func (a *api) getManagedHSMs(w http.ResponseWriter, r *http.Request) {
	a.discover(w, r, arm.KindManagedHSMs)
}

// discover answers one page of vaults or pools of a subscription, live
// from Azure.
func (a *api) discover(w http.ResponseWriter, r *http.Request, kind arm.Kind) {
	svc, ok := a.discovery(w)
	if !ok {
		return
	}
	req, err := ParseGetVaults(http.MaxBytesReader(w, r.Body, a.cfg.MaxBodyBytes), a.cfg.MaxBodyBytes)
	if err != nil {
		fail(w, r, err)
		return
	}
	page, err := svc.GetVaults(r.Context(), kind, req)
	if err != nil {
		fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

// listSubscriptions handles GET …/subscriptions: the stored ones.
func (a *api) listSubscriptions(w http.ResponseWriter, r *http.Request) {
	svc, ok := a.discovery(w)
	if !ok {
		return
	}
	q, err := ParseSubscriptionQuery(r.URL.Query())
	if err != nil {
		fail(w, r, err)
		return
	}
	page, err := svc.Subscriptions(r.Context(), q)
	if err != nil {
		fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, Page[SubscriptionJSON]{
		Skip: page.Skip, Limit: page.Limit, Total: page.Total,
		Resources: renderAll(page.Resources, RenderSubscription),
	})
}

// getSubscription handles GET …/subscriptions/{id} (record id or Azure
// subscription id).
func (a *api) getSubscription(w http.ResponseWriter, r *http.Request) {
	svc, ok := a.discovery(w)
	if !ok {
		return
	}
	s, err := svc.Subscription(r.Context(), r.PathValue("id"))
	if err != nil {
		fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, RenderSubscription(s))
}

// deleteSubscription handles DELETE …/subscriptions/{id}: 204.
func (a *api) deleteSubscription(w http.ResponseWriter, r *http.Request) {
	svc, ok := a.discovery(w)
	if !ok {
		return
	}
	if _, err := svc.DeleteSubscription(r.Context(), r.PathValue("id")); err != nil {
		fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
