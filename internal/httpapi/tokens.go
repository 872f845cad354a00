package httpapi

import (
	"errors"
	"net/http"

	"github.com/akvsync/akvsync/internal/auth"
	"github.com/akvsync/akvsync/internal/jsonbody"
)

// issueToken handles POST /api/v1/auth/tokens: 200 with CCKM's token
// response; 400/413 for a bad body, 401 for bad credentials or a bad
// refresh token, 429 with Retry-After when the client is rate limited.
func (a *api) issueToken(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	req, err := auth.ParseTokenRequest(http.MaxBytesReader(w, r.Body, auth.DefaultMaxTokenRequestBytes), auth.DefaultMaxTokenRequestBytes)
	if err != nil {
		fail(w, r, err)
		return
	}
	resp, err := a.d.Auth.IssueToken(r.Context(), req, r.RemoteAddr)
	if err != nil {
		fail(w, r, err)
		return
	}
	// Only a successful login names its user in the request log: a refused
	// "username" may be a password typed in the wrong field.
	if info := infoFrom(r.Context()); info != nil && req.Username != "" {
		info.user = req.Username
	}
	writeJSON(w, http.StatusOK, resp)
}

// revokeRequest is the body of POST /api/v1/auth/revoke.
type revokeRequest struct {
	RefreshToken string `json:"refresh_token"`
}

// revokeToken handles POST /api/v1/auth/revoke (log out): the refresh
// token in the body can no longer be used. The refresh token is the
// credential, so no bearer token is needed; the answer is 204 whether or
// not the token existed, so the endpoint reveals nothing (RFC 7009).
func (a *api) revokeToken(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	var req revokeRequest
	max := int64(auth.DefaultMaxTokenRequestBytes)
	if err := jsonbody.Decode(http.MaxBytesReader(w, r.Body, max), max, &req, false); err != nil {
		var je *jsonbody.Error
		if errors.As(err, &je) && errors.Is(err, jsonbody.ErrTooLarge) {
			fail(w, r, auth.ErrBodyTooLarge)
			return
		}
		fail(w, r, invalid("%s", err.Error()))
		return
	}
	if req.RefreshToken == "" {
		fail(w, r, invalid("refresh_token is required"))
		return
	}
	if err := a.d.Auth.Revoke(r.Context(), req.RefreshToken); err != nil {
		fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// SelfPath tells a signed-in user who they are and what they may do.
const SelfPath = APIPrefix + "/auth/self"

// SelfJSON is the body of GET /api/v1/auth/self.
type SelfJSON struct {
	Username    string      `json:"username"`
	Role        auth.Role   `json:"role"`
	Permissions []auth.Perm `json:"permissions"`
}

// self handles GET /api/v1/auth/self: the caller's name, role and
// permissions, so a page shows only the actions the role allows.
func (a *api) self(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	p, _ := auth.PrincipalFrom(r.Context())
	writeJSON(w, http.StatusOK, SelfJSON{Username: p.Username, Role: p.Role, Permissions: p.Role.Permissions()})
}
