package akvemu

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// adminHandler serves the admin API (plain HTTP on loopback). Every answer is JSON;
// errors are {"error":"…"}.
func (e *Emulator) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /admin/manifest", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, e.Manifest())
	})
	mux.HandleFunc("GET /admin/tokens", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, e.TokenStats())
	})
	mux.HandleFunc("POST /admin/principals", func(w http.ResponseWriter, r *http.Request) {
		var p Principal
		if !readAdminJSON(w, r, &p) {
			return
		}
		if err := e.AddPrincipal(p); err != nil {
			adminError(w, err)
			return
		}
		writeJSON(w, http.StatusCreated, map[string]string{"client_id": p.ClientID})
	})
	mux.HandleFunc("GET /admin/vaults", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, e.Manifest().Vaults)
	})
	mux.HandleFunc("POST /admin/vaults", func(w http.ResponseWriter, r *http.Request) {
		var spec VaultSpec
		if !readAdminJSON(w, r, &spec) {
			return
		}
		mv, err := e.AddVault(r.Context(), spec)
		if err != nil {
			adminError(w, err)
			return
		}
		writeJSON(w, http.StatusCreated, mv)
	})
	mux.HandleFunc("GET /admin/vaults/{vault}", e.withVault(func(w http.ResponseWriter, r *http.Request, v *Vault) {
		writeJSON(w, http.StatusOK, map[string]any{
			"vault": v.manifestEntry(), "keys": v.Len(), "deleted_keys": len(v.DeletedKeys()),
			"faults": v.Faults(), "access": v.Access(), "counters": v.Counters(),
		})
	}))
	mux.HandleFunc("DELETE /admin/vaults/{vault}", func(w http.ResponseWriter, r *http.Request) {
		if err := e.RemoveVault(r.PathValue("vault")); err != nil {
			adminError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /admin/vaults/{vault}/keys", e.withVault(func(w http.ResponseWriter, r *http.Request, v *Vault) {
		writeJSON(w, http.StatusOK, v.Keys())
	}))
	mux.HandleFunc("GET /admin/vaults/{vault}/keys/{name}", e.withVault(func(w http.ResponseWriter, r *http.Request, v *Vault) {
		k, err := v.GetKey(r.PathValue("name"), r.URL.Query().Get("version"))
		adminResult(w, http.StatusOK, k, err)
	}))
	mux.HandleFunc("POST /admin/vaults/{vault}/keys/{name}", e.withVault(func(w http.ResponseWriter, r *http.Request, v *Vault) {
		var spec KeySpec
		if !readAdminJSON(w, r, &spec) {
			return
		}
		k, err := v.CreateKey(r.PathValue("name"), spec)
		adminResult(w, http.StatusCreated, k, err)
	}))
	mux.HandleFunc("PATCH /admin/vaults/{vault}/keys/{name}", e.withVault(func(w http.ResponseWriter, r *http.Request, v *Vault) {
		var upd KeyUpdate
		if !readAdminJSON(w, r, &upd) {
			return
		}
		k, err := v.UpdateKey(r.PathValue("name"), r.URL.Query().Get("version"), upd)
		adminResult(w, http.StatusOK, k, err)
	}))
	mux.HandleFunc("POST /admin/vaults/{vault}/keys/{name}/rotate", e.withVault(func(w http.ResponseWriter, r *http.Request, v *Vault) {
		k, err := v.RotateKey(r.PathValue("name"))
		adminResult(w, http.StatusOK, k, err)
	}))
	mux.HandleFunc("DELETE /admin/vaults/{vault}/keys/{name}", e.withVault(func(w http.ResponseWriter, r *http.Request, v *Vault) {
		name := r.PathValue("name")
		d, err := v.DeleteKey(name)
		if err == nil && r.URL.Query().Get("purge") == "true" {
			err = v.PurgeKey(name)
		}
		adminResult(w, http.StatusOK, d, err)
	}))
	mux.HandleFunc("GET /admin/vaults/{vault}/deletedkeys", e.withVault(func(w http.ResponseWriter, r *http.Request, v *Vault) {
		writeJSON(w, http.StatusOK, v.DeletedKeys())
	}))
	mux.HandleFunc("POST /admin/vaults/{vault}/deletedkeys/{name}/recover", e.withVault(func(w http.ResponseWriter, r *http.Request, v *Vault) {
		k, err := v.RecoverKey(r.PathValue("name"))
		adminResult(w, http.StatusOK, k, err)
	}))
	mux.HandleFunc("DELETE /admin/vaults/{vault}/deletedkeys/{name}", e.withVault(func(w http.ResponseWriter, r *http.Request, v *Vault) {
		if err := v.PurgeKey(r.PathValue("name")); err != nil {
			adminError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.HandleFunc("GET /admin/vaults/{vault}/faults", e.withVault(func(w http.ResponseWriter, r *http.Request, v *Vault) {
		writeJSON(w, http.StatusOK, v.Faults())
	}))
	mux.HandleFunc("PUT /admin/vaults/{vault}/faults", e.withVault(func(w http.ResponseWriter, r *http.Request, v *Vault) {
		var f Faults
		if !readAdminJSON(w, r, &f) {
			return
		}
		adminResult(w, http.StatusOK, f, v.SetFaults(f))
	}))
	mux.HandleFunc("DELETE /admin/vaults/{vault}/faults", e.withVault(func(w http.ResponseWriter, r *http.Request, v *Vault) {
		adminResult(w, http.StatusOK, Faults{}, v.SetFaults(Faults{}))
	}))
	mux.HandleFunc("PUT /admin/faults", func(w http.ResponseWriter, r *http.Request) {
		var f Faults
		if !readAdminJSON(w, r, &f) {
			return
		}
		for _, v := range e.Vaults() {
			if err := v.SetFaults(f); err != nil {
				adminError(w, err)
				return
			}
		}
		writeJSON(w, http.StatusOK, f)
	})
	mux.HandleFunc("DELETE /admin/faults", func(w http.ResponseWriter, r *http.Request) {
		for _, v := range e.Vaults() {
			if err := v.SetFaults(Faults{}); err != nil {
				adminError(w, err)
				return
			}
		}
		writeJSON(w, http.StatusOK, Faults{})
	})
	mux.HandleFunc("GET /admin/vaults/{vault}/access", e.withVault(func(w http.ResponseWriter, r *http.Request, v *Vault) {
		writeJSON(w, http.StatusOK, v.Access())
	}))
	mux.HandleFunc("PUT /admin/vaults/{vault}/access/{principal}", e.withVault(func(w http.ResponseWriter, r *http.Request, v *Vault) {
		var body struct {
			Deny []Permission `json:"deny"`
		}
		if !readAdminJSON(w, r, &body) {
			return
		}
		adminResult(w, http.StatusOK, v.Access(), v.SetAccess(r.PathValue("principal"), body.Deny...))
	}))
	mux.HandleFunc("DELETE /admin/vaults/{vault}/access/{principal}", e.withVault(func(w http.ResponseWriter, r *http.Request, v *Vault) {
		adminResult(w, http.StatusOK, v.Access(), v.SetAccess(r.PathValue("principal")))
	}))
	mux.HandleFunc("GET /admin/vaults/{vault}/counters", e.withVault(func(w http.ResponseWriter, r *http.Request, v *Vault) {
		writeJSON(w, http.StatusOK, v.Counters())
	}))
	mux.HandleFunc("DELETE /admin/vaults/{vault}/counters", e.withVault(func(w http.ResponseWriter, r *http.Request, v *Vault) {
		v.ResetCounters()
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.HandleFunc("GET /admin/counters", func(w http.ResponseWriter, r *http.Request) {
		vaults := e.Vaults()
		out := make([]Counters, 0, len(vaults))
		for _, v := range vaults {
			out = append(out, v.Counters())
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("DELETE /admin/counters", func(w http.ResponseWriter, r *http.Request) {
		_ = e.ResetCounters("")
		w.WriteHeader(http.StatusNoContent)
	})
	e.eventAdminRoutes(mux)
	return mux
}

// eventAdminRoutes serves the event subscriptions and the key event trigger.
func (e *Emulator) eventAdminRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /admin/event-subscriptions", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, e.EventSubscriptions())
	})
	mux.HandleFunc("POST /admin/event-subscriptions", func(w http.ResponseWriter, r *http.Request) {
		var spec EventSubscription
		if !readAdminJSON(w, r, &spec) {
			return
		}
		s, err := e.events.add(r.Context(), spec)
		if err != nil {
			adminError(w, err)
			return
		}
		st := s.status()
		switch st.ProvisioningState {
		case EventSubscriptionSucceeded:
			writeJSON(w, http.StatusCreated, st)
		case EventSubscriptionAwaitingManualAction:
			writeJSON(w, http.StatusAccepted, st)
		default:
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": ErrEventSubscriptionFailed.Error() + ": " + st.Reason, "status": "400", "subscription": st})
		}
	})
	mux.HandleFunc("GET /admin/event-subscriptions/{name}", func(w http.ResponseWriter, r *http.Request) {
		st, ok := e.EventSubscription(r.PathValue("name"))
		if !ok {
			adminError(w, fmt.Errorf("%w: %s", ErrEventSubscriptionNotFound, r.PathValue("name")))
			return
		}
		writeJSON(w, http.StatusOK, st)
	})
	mux.HandleFunc("DELETE /admin/event-subscriptions/{name}", func(w http.ResponseWriter, r *http.Request) {
		if err := e.RemoveEventSubscription(r.PathValue("name")); err != nil {
			adminError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	// The manual validation URL handed to Event Grid schema webhooks.
	mux.HandleFunc("GET /admin/event-subscriptions/{name}/validate", func(w http.ResponseWriter, r *http.Request) {
		s := e.events.get(r.PathValue("name"))
		if s == nil {
			adminError(w, fmt.Errorf("%w: %s", ErrEventSubscriptionNotFound, r.PathValue("name")))
			return
		}
		if err := s.validateManually(r.URL.Query().Get("token")); err != nil {
			adminError(w, err)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, validationSuccessAnswer)
	})
	mux.HandleFunc("POST /admin/vaults/{vault}/keys/{name}/events/{type}", func(w http.ResponseWriter, r *http.Request) {
		typ := EventType(r.PathValue("type"))
		if !strings.HasPrefix(string(typ), "Microsoft.KeyVault.") {
			typ = "Microsoft.KeyVault." + typ
		}
		n, err := e.PublishKeyEvent(r.PathValue("vault"), r.PathValue("name"), r.URL.Query().Get("version"), typ)
		adminResult(w, http.StatusAccepted, map[string]any{"event_type": typ, "subscriptions": n}, err)
	})
}

func (e *Emulator) withVault(h func(http.ResponseWriter, *http.Request, *Vault)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, err := e.vault(r.PathValue("vault"))
		if err != nil {
			adminError(w, err)
			return
		}
		h(w, r, v)
	}
}

func readAdminJSON(w http.ResponseWriter, r *http.Request, dst any) bool {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes))
	if err == nil && len(body) > 0 {
		err = json.Unmarshal(body, dst)
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid JSON body: " + err.Error()})
		return false
	}
	return true
}

func adminResult(w http.ResponseWriter, status int, v any, err error) {
	if err != nil {
		adminError(w, err)
		return
	}
	writeJSON(w, status, v)
}

func adminError(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrVaultNotFound), errors.Is(err, ErrKeyNotFound), errors.Is(err, ErrDeletedKeyNotFound),
		errors.Is(err, ErrEventSubscriptionNotFound):
		status = http.StatusNotFound
	case errors.Is(err, ErrVaultExists), errors.Is(err, ErrKeyExists), errors.Is(err, ErrKeyDeletedButRecoverable):
		status = http.StatusConflict
	case errors.Is(err, ErrBadParameter), errors.Is(err, ErrInvalidConfig), errors.Is(err, ErrEventSubscriptionFailed):
		status = http.StatusBadRequest
	case errors.Is(err, ErrPurgeNotAllowed):
		status = http.StatusForbidden
	case errors.Is(err, ErrClosed):
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, map[string]string{"error": err.Error(), "status": strconv.Itoa(status)})
}
