package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/akvsync/akvsync/pkg/events"
)

// RequestIDHeader carries the request id: reused from the request when it
// is sane, generated otherwise, and always echoed in the response.
const RequestIDHeader = "X-Request-Id"

// reqInfo collects what the request log and metrics need; handlers fill it
// in as they learn it.
type reqInfo struct {
	id    string
	route string // the route's "METHOD /path" pattern; "" when unmatched
	user  string
	err   error // the error behind an error answer, for the log
}

type reqInfoKey struct{}

// infoFrom returns the request's info, or nil outside instrument.
func infoFrom(ctx context.Context) *reqInfo {
	info, _ := ctx.Value(reqInfoKey{}).(*reqInfo)
	return info
}

// statusWriter records the status and size of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// instrument is the outermost middleware: request id, panic recovery, one
// log line per request (method, path, route, status, duration, request id,
// username — never headers or bodies) and the HTTP metrics.
func (a *api) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		info := &reqInfo{id: requestID(r)}
		w.Header().Set(RequestIDHeader, info.id)
		sw := &statusWriter{ResponseWriter: w}
		r = r.WithContext(context.WithValue(r.Context(), reqInfoKey{}, info))
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				a.d.Log.Error().Str("request_id", info.id).Interface("panic", p).Msg("handler panicked")
				if sw.status == 0 {
					writeError(sw, http.StatusInternalServerError, "internal error")
				}
			}
			a.done(r, info, sw, time.Since(start))
		}()
		next.ServeHTTP(sw, r)
	})
}

// done logs a finished request and records its metrics.
func (a *api) done(r *http.Request, info *reqInfo, sw *statusWriter, d time.Duration) {
	status := sw.status
	if status == 0 {
		status = http.StatusOK
	}
	route := info.route
	if route == "" {
		route = "unmatched"
	}
	a.d.Metrics.ObserveRequest(route, status, d)
	ev := a.d.Log.Info()
	switch {
	case status >= 500:
		ev = a.d.Log.Error()
	case status >= 400:
		ev = a.d.Log.Warn()
	}
	ev = ev.Str("method", r.Method).
		Str("path", r.URL.Path).
		Str("route", route).
		Int("status", status).
		Dur("duration", d).
		Int64("bytes", sw.bytes).
		Str("request_id", info.id).
		Str("remote", r.RemoteAddr)
	if info.user != "" {
		ev = ev.Str("username", info.user)
	}
	if info.err != nil {
		ev = ev.Str("error", info.err.Error())
	}
	ev.Msg("request")
}

// requestID returns the request's X-Request-Id when it is short and made
// of safe characters, or a new id.
func requestID(r *http.Request) string {
	id := r.Header.Get(RequestIDHeader)
	if id == "" || len(id) > MaxRequestIDLen {
		return events.NewID()
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return events.NewID()
		}
	}
	return id
}
