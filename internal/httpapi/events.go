package httpapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/akvsync/akvsync/internal/auth"
	"github.com/akvsync/akvsync/internal/control"
	"github.com/akvsync/akvsync/pkg/events"
)

// EventService follows the events stream; *control.Events implements it.
type EventService interface {
	Follow(ctx context.Context, f control.EventFilter, fn func(control.Event) error) error
}

// EventsPath is the Server-Sent Events stream of job and vault events.
const EventsPath = APIPrefix + "/cckm/azure/events"

// TicketsPath issues the single-use tickets a browser's EventSource, which
// cannot send an Authorization header, opens EventsPath with.
const TicketsPath = EventsPath + "/tickets"

// EventParams are the query parameters of GET …/events: job_id filters,
// ticket authenticates a browser (instead of a bearer token) and
// last_event_id resumes like the Last-Event-ID header, for a page that
// reconnects with a new ticket.
var EventParams = []string{"job_id", "ticket", "last_event_id"}

// DefaultSSEKeepAlive is how often an idle event stream sends a comment,
// so proxies and clients see the connection alive.
const DefaultSSEKeepAlive = 15 * time.Second

// EventName is the SSE event name of an event published on subject: its
// CloudEvents type without the "io.akvsync." prefix, "<scope>.<kind>",
// e.g. "job.finished" or "vault.completed"; "message" for a subject that
// is not an akvsync event.
func EventName(subject string) string {
	rest, ok := strings.CutPrefix(subject, events.SubjectRoot+".event.")
	scope, _, _ := strings.Cut(rest, ".")
	kind := rest[strings.LastIndexByte(rest, '.')+1:]
	if !ok || scope == "" || kind == "" || scope == rest {
		return "message"
	}
	return scope + "." + kind
}

// issueTicket handles POST …/events/tickets: 201 with a ticket that opens
// the event stream once, within its lifetime, as the caller.
func (a *api) issueTicket(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if a.d.Tickets == nil {
		writeError(w, http.StatusServiceUnavailable, "event stream tickets are not configured on this server")
		return
	}
	p, _ := auth.PrincipalFrom(r.Context())
	t, err := a.d.Tickets.Issue(r.Context(), p)
	if err != nil {
		fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, t)
}

// streamEvents handles GET /cckm/azure/events: the CloudEvents of every
// job (or of ?job_id=) as Server-Sent Events, from now on or after the
// Last-Event-ID a reconnecting client sends (or ?last_event_id=). Each
// event's name is [EventName], its id its stream sequence, its data the
// CloudEvents JSON.
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
	last := r.Header.Get("Last-Event-ID")
	if last == "" {
		if last, err = p.str("last_event_id"); err != nil {
			fail(w, r, err)
			return
		}
	}
	if last != "" {
		if f.AfterSeq, err = strconv.ParseUint(last, 10, 64); err != nil {
			fail(w, r, invalid("Last-Event-ID (or last_event_id) must be an event id from this stream"))
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
	var maxAge <-chan time.Time
	if a.cfg.SSEMaxDuration > 0 {
		t := time.NewTimer(a.cfg.SSEMaxDuration)
		defer t.Stop()
		maxAge = t.C
	}
	var buf bytes.Buffer
	for {
		buf.Reset()
		select {
		case <-ctx.Done():
			return
		case <-maxAge:
			// The client reconnects, resuming after its last event.
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
			fmt.Fprintf(&buf, "event: %s\nid: %d\ndata: %s\n\n", EventName(e.Subject), e.Seq, e.Data)
		}
		if _, err := w.Write(buf.Bytes()); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}
