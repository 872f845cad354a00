package httpapi

import "net/http"

// listKeys handles GET /cckm/azure/keys (from the workers' inventory; 503
// when no worker answers).
func (a *api) listKeys(w http.ResponseWriter, r *http.Request) {
	q, err := ParseKeyQuery(r.URL.Query())
	if err != nil {
		fail(w, r, err)
		return
	}
	page, err := a.d.Queries.Keys(r.Context(), q)
	if err != nil {
		fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, Page[KeyJSON]{
		Skip: page.Skip, Limit: page.Limit, Total: page.Total,
		Resources: renderAll(page.Resources, RenderKey),
	})
}

// getKey handles GET /cckm/azure/keys/{id}.
func (a *api) getKey(w http.ResponseWriter, r *http.Request) {
	k, err := a.d.Queries.Key(r.Context(), r.PathValue("id"))
	if err != nil {
		fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, RenderKey(k))
}
