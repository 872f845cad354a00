package httpapi

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"

	"github.com/akvsync/akvsync/docs"
)

// UIPath is where the web dashboard is served. Its files hold no data and
// are served without authentication; every call the page makes to the API
// carries the signed-in user's bearer token.
const UIPath = "/ui/"

// OpenAPIPath serves docs/openapi.yaml, without authentication.
const OpenAPIPath = "/openapi.yaml"

// UIContentSecurityPolicy is the Content-Security-Policy of the dashboard's
// files: scripts, styles and connections to this origin only, no inline
// script or style, no framing, no form posted anywhere (the sign-in form is
// handled by the page's script).
const UIContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

//go:embed ui
var uiFiles embed.FS

// uiContentTypes are the content types of the dashboard's files by
// extension.
var uiContentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

// serveOpenAPI handles GET /openapi.yaml: the bytes of docs/openapi.yaml.
func (a *api) serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/yaml; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(docs.OpenAPI)
}

// serveUI handles GET /ui/…: the dashboard's embedded files, index.html for
// /ui/ itself, with a strict Content-Security-Policy.
func (a *api) serveUI(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, UIPath)
	if name == "" {
		name = "index.html"
	}
	ctype, ok := uiContentTypes[path.Ext(name)]
	var body []byte
	var err error
	if ok && fs.ValidPath(name) && !strings.Contains(name, "/") {
		body, err = uiFiles.ReadFile("ui/" + name)
	}
	if !ok || body == nil || err != nil {
		writeError(w, http.StatusNotFound, "Resource not found")
		return
	}
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("Cache-Control", "no-cache")
	h.Set("Content-Security-Policy", UIContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	_, _ = w.Write(body) // #nosec G705 -- body is an embedded dashboard file chosen from a fixed allowlist of names and types, served with a strict CSP and nosniff; no request data
}
