package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"

	"github.com/akvsync/akvsync/internal/connections"
)

// ConnectionService is the Azure connection registry;
// *connections.Registry implements it.
type ConnectionService interface {
	Create(ctx context.Context, req connections.CreateRequest) (connections.Connection, error)
	List(ctx context.Context, q connections.Query) (connections.Page, error)
	Get(ctx context.Context, ref string) (connections.Connection, error)
	Patch(ctx context.Context, ref string, req connections.PatchRequest) (connections.Connection, error)
	Delete(ctx context.Context, ref string) (connections.Connection, error)
	Test(ctx context.Context, ref string, req connections.TestRequest) (connections.TestResult, error)
}

// ConnectionJSON is a connection as the API returns it: the registry's
// view with CCKM's timestamps, account and resource_url, labels and meta
// always objects (meta: any JSON the client stored, else {}), and
// last_connection_at absent until the connection is first tested.
type ConnectionJSON struct {
	connections.Connection
	Account          string            `json:"account"`
	ResourceURL      string            `json:"resource_url"`
	Labels           map[string]string `json:"labels"`
	Meta             json.RawMessage   `json:"meta"`
	LastConnectionAt string            `json:"last_connection_at,omitempty"`
	CreatedAt        string            `json:"createdAt"`
	UpdatedAt        string            `json:"updatedAt"`
}

// RenderConnection renders a connection for the API.
func RenderConnection(c connections.Connection) ConnectionJSON {
	labels := c.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	meta := c.Meta
	if len(meta) == 0 {
		meta = json.RawMessage("{}")
	}
	out := ConnectionJSON{
		Connection: c, Account: Account, ResourceURL: ConnectionsPath + "/" + c.ID,
		Labels: labels, Meta: meta, CreatedAt: formatTime(c.CreatedAt), UpdatedAt: formatTime(c.UpdatedAt),
	}
	if c.LastConnectionAt != nil {
		out.LastConnectionAt = formatTime(*c.LastConnectionAt)
	}
	return out
}

// ConnectionsPath is the prefix of the connection management routes.
const ConnectionsPath = APIPrefix + "/connectionmgmt/services/azure/connections"

// ConnectionParams are the query parameters of GET …/connections.
var ConnectionParams = []string{"name", "skip", "limit"}

// errNoConnections answers the connection routes of a process built
// without a registry.
var errNoConnections = errors.New("the connection registry is not configured on this server")

// ParseConnectionQuery parses the query of GET …/connections.
func ParseConnectionQuery(v url.Values) (connections.Query, error) {
	p, err := newParams(v, ConnectionParams...)
	if err != nil {
		return connections.Query{}, err
	}
	var q connections.Query
	if q.Name, err = p.str("name"); err != nil {
		return connections.Query{}, err
	}
	if q.Skip, q.Limit, err = p.paging(); err != nil {
		return connections.Query{}, err
	}
	return q, nil
}

func (a *api) connections(w http.ResponseWriter, r *http.Request) (ConnectionService, bool) {
	if a.d.Connections == nil {
		writeError(w, http.StatusServiceUnavailable, errNoConnections.Error())
		return nil, false
	}
	return a.d.Connections, true
}

// createConnection handles POST …/connections: 201 with the connection
// (never its secret).
func (a *api) createConnection(w http.ResponseWriter, r *http.Request) {
	svc, ok := a.connections(w, r)
	if !ok {
		return
	}
	req, err := connections.ParseCreate(http.MaxBytesReader(w, r.Body, a.cfg.MaxBodyBytes), a.cfg.MaxBodyBytes)
	if err != nil {
		fail(w, r, err)
		return
	}
	c, err := svc.Create(r.Context(), req)
	if err != nil {
		fail(w, r, err)
		return
	}
	w.Header().Set("Location", ConnectionsPath+"/"+c.ID)
	writeJSON(w, http.StatusCreated, RenderConnection(c))
}

// listConnections handles GET …/connections.
func (a *api) listConnections(w http.ResponseWriter, r *http.Request) {
	svc, ok := a.connections(w, r)
	if !ok {
		return
	}
	q, err := ParseConnectionQuery(r.URL.Query())
	if err != nil {
		fail(w, r, err)
		return
	}
	page, err := svc.List(r.Context(), q)
	if err != nil {
		fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, Page[ConnectionJSON]{
		Skip: page.Skip, Limit: page.Limit, Total: page.Total,
		Resources: renderAll(page.Resources, RenderConnection),
	})
}

// getConnection handles GET …/connections/{id} (id or name).
func (a *api) getConnection(w http.ResponseWriter, r *http.Request) {
	svc, ok := a.connections(w, r)
	if !ok {
		return
	}
	c, err := svc.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, RenderConnection(c))
}

// patchConnection handles PATCH …/connections/{id}.
func (a *api) patchConnection(w http.ResponseWriter, r *http.Request) {
	svc, ok := a.connections(w, r)
	if !ok {
		return
	}
	req, err := connections.ParsePatch(http.MaxBytesReader(w, r.Body, a.cfg.MaxBodyBytes), a.cfg.MaxBodyBytes)
	if err != nil {
		fail(w, r, err)
		return
	}
	c, err := svc.Patch(r.Context(), r.PathValue("id"), req)
	if err != nil {
		fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, RenderConnection(c))
}

// deleteConnection handles DELETE …/connections/{id}: 204, or 409 naming
// the vaults that still use it.
func (a *api) deleteConnection(w http.ResponseWriter, r *http.Request) {
	svc, ok := a.connections(w, r)
	if !ok {
		return
	}
	if _, err := svc.Delete(r.Context(), r.PathValue("id")); err != nil {
		fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// testConnection handles POST …/connections/{id}/test: 200 with the
// outcome; a failed Azure call is reported in the body, verbatim.
func (a *api) testConnection(w http.ResponseWriter, r *http.Request) {
	svc, ok := a.connections(w, r)
	if !ok {
		return
	}
	req, err := connections.ParseTest(http.MaxBytesReader(w, r.Body, a.cfg.MaxBodyBytes), a.cfg.MaxBodyBytes)
	if err != nil {
		fail(w, r, err)
		return
	}
	res, err := svc.Test(r.Context(), r.PathValue("id"), req)
	if err != nil {
		fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}
