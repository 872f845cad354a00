package httpapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/akvsync/akvsync/internal/control"
)

// EventService follows the events stream; *control.Events implements it.
type EventService interface {
	Follow(ctx context.Context, f control.EventFilter, fn func(control.Event) error) error
}

// EventsPath is the Server-Sent Events stream of job and vault events.
const EventsPath = APIPrefix + "/cckm/azure/events"

// EventParams are the query parameters of GET …/events.
var EventParams = []string{"job_id"}

// DefaultSSEKeepAlive is how often an idle event stream sends a comment,
// so proxies and clients see the connection alive.
const DefaultSSEKeepAlive = 15 * time.Second

// streamEvents handles GET /cckm/azure/events: the CloudEvents of every
// job (or of ?job_id=) as Server-Sent Events, from now on or after the
// Last-Event-ID a reconnecting client sends. Each event's id is its
// stream sequence; its data is the CloudEvents JSON.
func (a *api) streamEvents(w http.ResponseWriter, r *http.Request) {
	if a.d.Events == nil {
		writeError(w, http.StatusServiceUnavailable, "the event stream is not configured on this server")
		return
	}
	p, err := newParams(r.URL.Query(), EventParams...)
	if err != nil {
		fail(w, r, err)
		return
	}
	var f control.EventFilter
	if f.JobID, err = p.str("job_id"); err != nil {
		fail(w, r, err)
		return
	}
	if f.JobID != "" && !control.IsID(f.JobID) {
		fail(w, r, invalid("job_id must be a job id"))
		return
	}
	if last := r.Header.Get("Last-Event-ID"); last != "" {
		if f.AfterSeq, err = strconv.ParseUint(last, 10, 64); err != nil {
			fail(w, r, invalid("Last-Event-ID must be an event id from this stream"))
			return
		}
	}
	rc := http.NewResponseController(w)
	// The stream outlives the server's write timeout by design.
	_ = rc.SetWriteDeadline(time.Time{})
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush()

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	evs := make(chan control.Event, 64)
	errc := make(chan error, 1)
	go func() {
		errc <- a.d.Events.Follow(ctx, f, func(e control.Event) error {
			select {
			case evs <- e:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	keepAlive := time.NewTicker(DefaultSSEKeepAlive)
	defer keepAlive.Stop()
	var buf bytes.Buffer
	for {
		buf.Reset()
		select {
		case <-ctx.Done():
			return
		case err := <-errc:
			if err != nil && !errors.Is(err, context.Canceled) {
				fmt.Fprintf(&buf, "event: error\ndata: %q\n\n", "the event stream stopped; reconnect")
				_, _ = w.Write(buf.Bytes())
				_ = rc.Flush()
			}
			return
		case <-keepAlive.C:
			buf.WriteString(": keep-alive\n\n")
		case e := <-evs:
			fmt.Fprintf(&buf, "id: %d\ndata: %s\n\n", e.Seq, e.Data)
		}
		if _, err := w.Write(buf.Bytes()); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}
