package httpapi

import (
	"net/http"

	"github.com/akvsync/akvsync/internal/auth"
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
	if info := infoFrom(r.Context()); info != nil && req.Username != "" {
		info.user = req.Username
	}
	resp, err := a.d.Auth.IssueToken(r.Context(), req, r.RemoteAddr)
	if err != nil {
		fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}
