package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/akvsync/akvsync/pkg/events"
)

// keysFlushEvery is how many rendered keys the keys list writes between
// flushes (and write deadline extensions) of a streamed response.
const keysFlushEvery = 256

// keysWriteWindow is how long a streamed keys list may take to write the
// next keysFlushEvery keys: a long export outlives the server's write
// timeout, a stalled client does not hold the stream forever.
const keysWriteWindow = time.Minute

// listKeys handles GET /cckm/azure/keys (from the workers' inventory; 503
// when no worker answers). The response is written as the records arrive:
// the envelope's skip, limit and total first, then each rendered key, so
// limit=-1 over any number of keys holds at most a few chunks of them in
// memory. An error after the first byte cuts the response short (the
// connection is aborted, so the client sees incomplete JSON, never a
// wrong list).
func (a *api) listKeys(w http.ResponseWriter, r *http.Request) {
	q, err := ParseKeyQuery(r.URL.Query())
	if err != nil {
		fail(w, r, err)
		return
	}
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	started, n := false, 0
	err = a.d.Queries.StreamKeys(r.Context(), q, func(h events.KeyPage) error {
		started = true
		_ = rc.SetWriteDeadline(time.Now().Add(keysWriteWindow))
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusOK)
		_, err := fmt.Fprintf(w, `{"skip":%d,"limit":%d,"total":%d,"resources":[`, h.Skip, h.Limit, h.Total)
		return err
	}, func(k events.KeyRecord) error {
		if n > 0 {
			if _, err := w.Write([]byte{','}); err != nil {
				return err
			}
		}
		if n++; n%keysFlushEvery == 0 {
			_ = rc.Flush()
			_ = rc.SetWriteDeadline(time.Now().Add(keysWriteWindow))
		}
		return enc.Encode(RenderKey(k))
	})
	switch {
	case err == nil:
		_, _ = w.Write([]byte("]}\n"))
	case !started:
		fail(w, r, err)
	default:
		a.d.Log.Warn().Err(err).Str("request_id", w.Header().Get(RequestIDHeader)).Int("written", n).
			Msg("keys list cut short")
		panic(http.ErrAbortHandler)
	}
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
