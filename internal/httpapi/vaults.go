package httpapi

import (
	"net/http"
)

// addVaults handles POST /cckm/azure/add-vaults: 201 with the created
// vaults in the list envelope.
func (a *api) addVaults(w http.ResponseWriter, r *http.Request) {
	req, err := ParseAddVaults(http.MaxBytesReader(w, r.Body, a.cfg.MaxBodyBytes), a.cfg.MaxBodyBytes)
	if err != nil {
		fail(w, r, err)
		return
	}
	vaults, err := a.d.Vaults.AddVaults(r.Context(), req)
	if err != nil {
		fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, Page[VaultJSON]{
		Skip: 0, Limit: len(vaults), Total: len(vaults),
		Resources: renderAll(vaults, RenderVault),
	})
}

// listVaults handles GET /cckm/azure/vaults.
func (a *api) listVaults(w http.ResponseWriter, r *http.Request) {
	q, err := ParseVaultQuery(r.URL.Query())
	if err != nil {
		fail(w, r, err)
		return
	}
	page, err := a.d.Vaults.List(r.Context(), q)
	if err != nil {
		fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, Page[VaultJSON]{
		Skip: page.Skip, Limit: page.Limit, Total: page.Total,
		Resources: renderAll(page.Resources, RenderVault),
	})
}

// getVault handles GET /cckm/azure/vaults/{id}.
func (a *api) getVault(w http.ResponseWriter, r *http.Request) {
	v, err := a.d.Vaults.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, RenderVault(v))
}

// patchVault handles PATCH /cckm/azure/vaults/{id}: 200 with the vault.
func (a *api) patchVault(w http.ResponseWriter, r *http.Request) {
	p, err := ParseVaultPatch(http.MaxBytesReader(w, r.Body, a.cfg.MaxBodyBytes), a.cfg.MaxBodyBytes)
	if err != nil {
		fail(w, r, err)
		return
	}
	v, err := a.d.Vaults.Patch(r.Context(), r.PathValue("id"), p)
	if err != nil {
		fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, RenderVault(v))
}

// removeVault handles POST (or DELETE) /cckm/azure/vaults/{id}/remove-vault:
// 200 with the removed vault. Its body, if any, is ignored.
func (a *api) removeVault(w http.ResponseWriter, r *http.Request) {
	v, err := a.d.Vaults.Remove(r.Context(), r.PathValue("id"))
	if err != nil {
		fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, RenderVault(v))
}
