package httpapi_test

import (
	"bytes"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/akvsync/akvsync/internal/auth"
	"github.com/akvsync/akvsync/internal/httpapi"
)

const ticketsPath = "/api/v1/cckm/azure/events/tickets"

// ticket issues an event-stream ticket as user.
func (e *env) ticket(t *testing.T, user string) auth.Ticket {
	t.Helper()
	r := e.as(t, user, "POST", ticketsPath, "")
	r.wantStatus(t, http.StatusCreated)
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("ticket Cache-Control %q", cc)
	}
	var tk auth.Ticket
	r.decode(t, &tk)
	if len(tk.Ticket) < 40 || tk.Duration != int64(auth.DefaultTicketTTL/time.Second) {
		t.Fatalf("ticket %+v", tk)
	}
	return tk
}

// TestEventStreamTicket: a browser opens the event stream with a ticket
// instead of a bearer token; the ticket works once, expires, is accepted
// by the stream only, and a new ticket resumes with ?last_event_id=.
func TestEventStreamTicket(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.addVaults(t, testSub, "vault-a", "vault-b")
	var job, jobB struct {
		ID string `json:"id"`
	}
	e.as(t, "oscar", "POST", jobsPath, `{"key_vaults":["vault-a"]}`).decode(t, &job)
	e.as(t, "oscar", "POST", jobsPath, `{"key_vaults":["vault-b"]}`).decode(t, &jobB)

	tk := e.ticket(t, "victor")
	status, evs := openStream(t, e, "", "?ticket="+tk.Ticket, "")
	if status != http.StatusOK {
		t.Fatalf("stream with a ticket: status %d", status)
	}
	e.as(t, "oscar", "POST", jobsPath+"/"+job.ID+"/cancel", "").wantStatus(t, http.StatusOK)
	first, ce := next(t, evs)
	if first.name != "job.abort_requested" || ce.Subject != job.ID {
		t.Fatalf("event %q %+v, want job.abort_requested of the job", first.name, ce)
	}
	e.as(t, "oscar", "POST", jobsPath+"/"+jobB.ID+"/cancel", "").wantStatus(t, http.StatusOK)
	second, ce := next(t, evs)
	if second.name != "job.abort_requested" || ce.Subject != jobB.ID {
		t.Fatalf("event %q %+v, want job.abort_requested of job B", second.name, ce)
	}

	t.Run("UsedOnce", func(t *testing.T) {
		if status, _ := openStream(t, e, "", "?ticket="+tk.Ticket, ""); status != http.StatusUnauthorized {
			t.Fatalf("second use of a ticket: status %d, want 401", status)
		}
	})
	t.Run("NewTicketResumesAfterLastEventID", func(t *testing.T) {
		if _, err := strconv.ParseUint(first.id, 10, 64); err != nil {
			t.Fatalf("event id %q", first.id)
		}
		// The page saw the first event and lost the stream: with a new
		// ticket and the first event's id, the next event is the second.
		tk := e.ticket(t, "victor")
		status, evs := openStream(t, e, "", "?ticket="+tk.Ticket+"&last_event_id="+first.id, "")
		if status != http.StatusOK {
			t.Fatalf("status %d", status)
		}
		again, ce := next(t, evs)
		if again.id != second.id || again.name != "job.abort_requested" || ce.Subject != jobB.ID {
			t.Fatalf("resumed at id %s (%s), want id %s", again.id, again.name, second.id)
		}
	})
	t.Run("Expires", func(t *testing.T) {
		tk := e.ticket(t, "victor")
		e.clock.Advance(auth.DefaultTicketTTL + time.Second)
		status, _ := openStream(t, e, "", "?ticket="+tk.Ticket, "")
		if status != http.StatusUnauthorized {
			t.Fatalf("expired ticket: status %d, want 401", status)
		}
	})
	t.Run("GarbageIs401", func(t *testing.T) {
		for _, tk := range []string{"", "x", strings.Repeat("A", 43), strings.Repeat("é", 30)} {
			if status, _ := openStream(t, e, "", "?ticket="+tk, ""); status != http.StatusUnauthorized {
				t.Errorf("ticket %q: status %d, want 401", tk, status)
			}
		}
	})
	t.Run("OnlyTheStreamTakesTickets", func(t *testing.T) {
		tk := e.ticket(t, "alice")
		e.do(t, "GET", jobsPath+"?ticket="+tk.Ticket, "", "").wantStatus(t, http.StatusUnauthorized)
		e.do(t, "POST", ticketsPath+"?ticket="+tk.Ticket, "", "").wantStatus(t, http.StatusUnauthorized)
	})
	t.Run("IssuingNeedsAToken", func(t *testing.T) {
		e.do(t, "POST", ticketsPath, "", "").wantStatus(t, http.StatusUnauthorized)
	})
	t.Run("NeverLogged", func(t *testing.T) {
		if strings.Contains(e.logs.String(), tk.Ticket) {
			t.Fatal("the request log holds a ticket")
		}
	})
}

// TestSelf: a signed-in user learns their name, role and permissions.
func TestSelf(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for _, u := range testUsers {
		var me httpapi.SelfJSON
		r := e.as(t, u.name, "GET", "/api/v1/auth/self", "")
		r.wantStatus(t, http.StatusOK)
		r.decode(t, &me)
		if me.Username != u.name || me.Role != u.role || !slices.Equal(me.Permissions, u.role.Permissions()) {
			t.Errorf("%s: %+v", u.name, me)
		}
		if canCancel := slices.Contains(me.Permissions, auth.PermJobsWrite); canCancel == (u.role == auth.RoleViewer) {
			t.Errorf("%s (%s): jobs:write %v", u.name, u.role, canCancel)
		}
	}
	e.do(t, "GET", "/api/v1/auth/self", "", "").wantStatus(t, http.StatusUnauthorized)
}

// TestOpenAPIServed: GET /openapi.yaml, without a token, is the bytes of
// docs/openapi.yaml.
func TestOpenAPIServed(t *testing.T) {
	t.Parallel()
	e := setup(t, func(o *options) { o.noLogin = true })
	want, err := os.ReadFile("../../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r := e.do(t, "GET", "/openapi.yaml", "", "")
	r.wantStatus(t, http.StatusOK)
	if !bytes.Equal(r.body, want) {
		t.Fatalf("served %d bytes, docs/openapi.yaml has %d, and they differ", len(r.body), len(want))
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/yaml") {
		t.Errorf("Content-Type %q", ct)
	}
}

// TestDashboardFiles: /ui/ serves the embedded page without a token, with
// a strict Content-Security-Policy, and the page has no inline script or
// style the policy would block.
func TestDashboardFiles(t *testing.T) {
	t.Parallel()
	e := setup(t, func(o *options) { o.noLogin = true })
	for path, ctype := range map[string]string{
		"/ui/":           "text/html; charset=utf-8",
		"/ui/index.html": "text/html; charset=utf-8",
		"/ui/app.js":     "text/javascript; charset=utf-8",
		"/ui/style.css":  "text/css; charset=utf-8",
	} {
		r := e.do(t, "GET", path, "", "")
		r.wantStatus(t, http.StatusOK)
		h := r.header
		if h.Get("Content-Type") != ctype || h.Get("X-Content-Type-Options") != "nosniff" ||
			h.Get("Content-Security-Policy") != httpapi.UIContentSecurityPolicy || h.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: headers %v", path, h)
		}
		if path == "/ui/" {
			page := string(r.body)
			for _, want := range []string{`name="username"`, `name="password"`, `<script src="app.js" defer></script>`} {
				if !strings.Contains(page, want) {
					t.Errorf("the page lacks %s", want)
				}
			}
			if regexp.MustCompile(`<script>|<script [^>]*>[^<]|\son[a-z]+=|style=|<style`).MatchString(page) {
				t.Error("the page has inline script or style")
			}
		}
	}
	for _, csp := range []string{"default-src 'none'", "script-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(httpapi.UIContentSecurityPolicy, csp) {
			t.Errorf("CSP lacks %s", csp)
		}
	}
	e.do(t, "GET", "/ui/nothing.js", "", "").wantStatus(t, http.StatusNotFound)
	e.do(t, "GET", "/ui/secret.txt", "", "").wantStatus(t, http.StatusNotFound)
	e.do(t, "GET", "/ui/sub/app.js", "", "").wantStatus(t, http.StatusNotFound)
	c := *e.srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Get(e.srv.URL + "/ui")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 3 || resp.Header.Get("Location") != "/ui/" {
		t.Errorf("/ui: status %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestEventName(t *testing.T) {
	t.Parallel()
	for subject, want := range map[string]string{
		"akvsync.event.job.0b6f.finished":         "job.finished",
		"akvsync.event.job.0b6f.abort_requested":  "job.abort_requested",
		"akvsync.event.vault.0b6f.7c1d.completed": "vault.completed",
		"akvsync.event.vault.0b6f.7c1d.aborted":   "vault.aborted",
		"akvsync.event.job":                       "message",
		"akvsync.event.":                          "message",
		"akvsync.key.0b6f.k1":                     "message",
		"akvsync.event.job.":                      "message",
	} {
		if got := httpapi.EventName(subject); got != want {
			t.Errorf("EventName(%q) = %q, want %q", subject, got, want)
		}
	}
}

// TestEventStreamMaxDuration: with SSEMaxDuration the server ends each
// stream after that long, so clients reconnect.
func TestEventStreamMaxDuration(t *testing.T) {
	t.Parallel()
	e := setup(t, func(o *options) { o.http.SSEMaxDuration = time.Second })
	status, evs := openStream(t, e, "victor", "", "")
	if status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	select {
	case _, open := <-evs:
		if open {
			t.Fatal("an event on an idle stream")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the stream did not end")
	}
	for _, d := range []time.Duration{-time.Second, time.Millisecond} {
		if err := (httpapi.Config{SSEMaxDuration: d}).Validate(); err == nil {
			t.Errorf("SSEMaxDuration %s accepted", d)
		}
	}
}
