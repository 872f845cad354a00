package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/akvsync/akvsync/pkg/events"
)

// sseEvent is one Server-Sent Event.
type sseEvent struct {
	name string
	id   string
	data string
}

// openStream opens the event stream as user (none: "", for a ticket in
// query) and returns a channel of its
// events; the stream closes when the test ends.
func openStream(t *testing.T, e *env, user, query string, lastID string) (int, <-chan sseEvent) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/api/v1/cckm/azure/events"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.Header.Set("Authorization", "Bearer "+e.tokens[user])
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	out := make(chan sseEvent, 16)
	if resp.StatusCode != http.StatusOK {
		close(out)
		return resp.StatusCode, out
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	go func() {
		defer close(out)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.data != "" {
					out <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "id: "):
				ev.id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "data: "):
				ev.data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return resp.StatusCode, out
}

// next waits for the next event of the stream.
func next(t *testing.T, evs <-chan sseEvent) (sseEvent, events.Event) {
	t.Helper()
	select {
	case ev, ok := <-evs:
		if !ok {
			t.Fatal("the event stream ended")
		}
		var ce events.Event
		if err := json.Unmarshal([]byte(ev.data), &ce); err != nil {
			t.Fatalf("event data is not a CloudEvent: %q", ev.data)
		}
		return ev, ce
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
	}
	panic("unreachable")
}

func TestEventStream(t *testing.T) {
	t.Parallel()
	e := setup(t)
	vaults := e.addVaults(t, testSub, "vault-a", "vault-b")

	// Follow vault-a's job only, as the viewer.
	var jobA struct {
		ID string `json:"id"`
	}
	e.as(t, "oscar", "POST", jobsPath, `{"key_vaults":["vault-a"]}`).decode(t, &jobA)
	status, evs := openStream(t, e, "victor", "?job_id="+jobA.ID, "")
	if status != http.StatusOK {
		t.Fatalf("stream status %d", status)
	}
	// Another job's event must not show; this job's cancel must.
	var jobB struct {
		ID string `json:"id"`
	}
	e.as(t, "oscar", "POST", jobsPath, `{"key_vaults":["`+vaults[1].ID+`"]}`).decode(t, &jobB)
	e.as(t, "oscar", "POST", jobsPath+"/"+jobB.ID+"/cancel", "").wantStatus(t, http.StatusOK)
	e.as(t, "oscar", "POST", jobsPath+"/"+jobA.ID+"/cancel", "").wantStatus(t, http.StatusOK)
	first, ce := next(t, evs)
	if ce.Type != "io.akvsync.job.abort_requested" || ce.Subject != jobA.ID || first.id == "" || first.name != "job.abort_requested" {
		t.Fatalf("first event = %+v (id %q, event %q), want job A's abort_requested", ce, first.id, first.name)
	}

	t.Run("AReconnectResumesAfterLastEventID", func(t *testing.T) {
		// Unfiltered, after the event before job A's abort: the next event
		// is job A's abort again, with the same id.
		seq, err := strconv.ParseUint(first.id, 10, 64)
		if err != nil || seq < 2 {
			t.Fatalf("event id %q", first.id)
		}
		_, all := openStream(t, e, "victor", "", strconv.FormatUint(seq-1, 10))
		again, ce := next(t, all)
		if again.id != first.id || ce.Subject != jobA.ID || ce.Type != "io.akvsync.job.abort_requested" {
			t.Fatalf("after reconnect: id %s %+v, want id %s (job A's abort)", again.id, ce, first.id)
		}
	})

	t.Run("BadParametersAre400", func(t *testing.T) {
		if status, _ := openStream(t, e, "victor", "?job_id=nope", ""); status != http.StatusBadRequest {
			t.Fatalf("status %d for a bad job id", status)
		}
		if status, _ := openStream(t, e, "victor", "?colour=red", ""); status != http.StatusBadRequest {
			t.Fatalf("status %d for an unknown parameter", status)
		}
	})
}
