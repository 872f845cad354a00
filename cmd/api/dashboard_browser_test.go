package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/akvsync/akvsync/internal/natstest"
)

// chromiumPath is the browser the dashboard test drives: $AKVSYNC_CHROMIUM,
// or Debian's chromium on the PATH.
func chromiumPath() string {
	if p := os.Getenv("AKVSYNC_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// TestDashboardInBrowser drives the web dashboard in a real headless
// chromium against a serving demo (embedded NATS, worker, emulator): sign
// in through the form, see a new job's row appear and complete through the
// event stream, open a job's detail, cancel a running (slowed) job, and
// search the inventory. With AKVSYNC_SCREENSHOTS=<dir> it writes
// dashboard-jobs.png and dashboard-job.png there (docs/ has them).
//
// Without chromium it skips, unless $CI is set (.ci/run installs it).
// azureCallsCell is a job row's Azure cell drawn from the job's stats:
// some calls, no 429 from the unthrottled emulator, and a cost estimate.
var azureCallsCell = regexp.MustCompile(`^[1-9][\d,]* / 0 · ≈\d+\.\d{4} [A-Z]{3}$`)

func TestDashboardInBrowser(t *testing.T) {
	t.Parallel()
	chromium := chromiumPath()
	if chromium == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("chromium is not installed, and CI is set: the dashboard must be tested in a browser (apt-get install -y chromium)")
		}
		t.Skip("chromium is not installed (apt-get install -y chromium, or set AKVSYNC_CHROMIUM); skipping the browser test")
	}

	// A demo: 3 vaults of 8 keys, no Managed HSM pool, whose event streams
	// end every 2 s: the page must reconnect with a new ticket and resume
	// after its last event to see the jobs finish.
	facts, m, _ := serveDemo(t, "--demo-vaults", "3", "--demo-keys", "8", "--demo-hsms", "0", "--sse-max-duration", "2s", "--log-level", "error")
	w := &walker{t: t, base: facts.APIURL, token: facts.Token, admin: m.AdminURL, client: &http.Client{Timeout: 30 * time.Second}}
	// The demo's first job is done before the browser comes.
	if job := w.waitJob(t, facts.FirstJobID); job.OverallStatus != "completed" {
		t.Fatalf("the demo's first job: %+v", job)
	}

	// The browser: headless chromium with a fresh profile.
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 860),
	}
	actx, acancel := chromedp.NewExecAllocator(t.Context(), opts...)
	t.Cleanup(acancel)
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(bcancel)
	// Everything the page logs as an error or throws fails the test (a
	// Content-Security-Policy violation shows up here too).
	var mu sync.Mutex
	var pageErrors []string
	if err := chromedp.Listen(bctx, func(ev any) {
		var msg string
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			msg = ev.ExceptionDetails.Text
			if ex := ev.ExceptionDetails.Exception; ex != nil {
				msg += " " + ex.Description
			}
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError {
				for _, a := range ev.Args {
					msg += string(a.Value) + " " + a.Description
				}
			}
		}
		if msg != "" {
			mu.Lock()
			pageErrors = append(pageErrors, msg)
			mu.Unlock()
		}
	}); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range pageErrors {
			t.Errorf("page error: %s", e)
		}
	})
	// browse runs steps with a deadline, failing the test with what.
	browse := func(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		c, cancel := context.WithTimeout(bctx, 60*time.Second)
		defer cancel()
		if err := chromedp.Do(c, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	// text is the text of the first element sel matches.
	text := func(t *testing.T, sel string) string {
		t.Helper()
		c, cancel := context.WithTimeout(bctx, 60*time.Second)
		defer cancel()
		s, err := chromedp.Run(c, chromedp.Text(sel))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	// eval evaluates a JavaScript expression in the page.
	eval := func(t *testing.T, expr string) any {
		t.Helper()
		c, cancel := context.WithTimeout(bctx, 60*time.Second)
		defer cancel()
		v, err := chromedp.Run(c, chromedp.Evaluate[any](expr))
		if err != nil {
			t.Fatalf("evaluate %s: %v", expr, err)
		}
		return v
	}
	count := func(t *testing.T, sel string) int {
		t.Helper()
		n, ok := eval(t, "document.querySelectorAll('"+sel+"').length").(float64)
		if !ok {
			t.Fatalf("count %s: not a number", sel)
		}
		return int(n)
	}
	shots := os.Getenv("AKVSYNC_SCREENSHOTS")
	screenshot := func(t *testing.T, name string) {
		if shots == "" {
			return
		}
		c, cancel := context.WithTimeout(bctx, 60*time.Second)
		defer cancel()
		png, err := chromedp.Run(c, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(shots, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	row := func(id string) string { return `#jobs tr[data-job-id="` + id + `"]` }
	createJob := func(t *testing.T) string {
		var job struct {
			ID string `json:"id"`
		}
		w.decode(t, w.call(t, "POST", "/api/v1/cckm/azure/synchronization-jobs", `{"synchronize_all":true}`, http.StatusCreated), &job)
		return job.ID
	}

	t.Run("sign in through the form", func(t *testing.T) {
		browse(t, "a wrong password",
			chromedp.Navigate(facts.APIURL+"/ui/"),
			chromedp.WaitVisible(`#signin-form input[name="username"]`),
			chromedp.SendKeys(`#signin-form input[name="username"]`, facts.Username),
			chromedp.SendKeys(`#signin-form input[name="password"]`, "not-the-password"),
			chromedp.Click(`#signin-form button[type="submit"]`),
		)
		natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
			if msg := text(t, `#signin-error`); !strings.Contains(msg, "Invalid username or password") {
				return fmt.Errorf("sign-in error %q", msg)
			}
			return nil
		})
		if hidden := eval(t, `document.getElementById('app').hidden`); hidden != true {
			t.Fatal("the app shows after a wrong password")
		}
		eval(t, `document.querySelector('#signin-form input[name="password"]').value = ''`)
		browse(t, "sign in",
			chromedp.SendKeys(`#signin-form input[name="password"]`, facts.Password),
			chromedp.Click(`#signin-form button[type="submit"]`),
			chromedp.WaitVisible(`#app`),
			// The event stream is open (with a ticket).
			chromedp.WaitVisible(`#live.on`),
			chromedp.WaitVisible(row(facts.FirstJobID)),
		)
	})

	t.Run("the page reconnects with a new ticket when its stream ends", func(t *testing.T) {
		// Two more tickets than the first: the page reconnected twice.
		first := ticketsIssued(t, w)
		natstest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
			if n := ticketsIssued(t, w); n < first+2 {
				return fmt.Errorf("%d tickets issued, want %d", n, first+2)
			}
			return nil
		})
		browse(t, "live again", chromedp.WaitVisible(`#live.on`))
	})

	var liveJob string
	t.Run("a new job's row appears and completes live", func(t *testing.T) {
		liveJob = createJob(t)
		browse(t, "watch the job",
			chromedp.WaitVisible(row(liveJob)),
			chromedp.WaitVisible(row(liveJob)+`[data-status="completed"]`),
			chromedp.WaitVisible(`#live.on`), // no fallback polling
		)
		if text := text(t, row(liveJob)); !strings.Contains(text, "3 / 3 vaults") || !strings.Contains(text, "24") {
			t.Fatalf("the completed row reads %q, want 3 / 3 vaults and 24 keys", text)
		}
		// The job's stats: Key Vault calls, 429s and the cost estimate.
		if calls := text(t, row(liveJob)+" td.azure-calls"); !azureCallsCell.MatchString(calls) {
			t.Fatalf("the Azure calls cell reads %q, want calls / 429s · ≈cost", calls)
		}
	})

	t.Run("the job detail pages its vaults", func(t *testing.T) {
		browse(t, "open the detail",
			chromedp.Click(row(liveJob)),
			chromedp.WaitVisible(`#job-view[data-job-id="`+liveJob+`"][data-status="completed"]`),
			chromedp.WaitVisible(`#vaults tbody tr[data-status="completed"]`),
		)
		if n := count(t, `#vaults tbody tr[data-status="completed"]`); n != 3 {
			t.Fatalf("%d completed vault rows, want 3", n)
		}
		if hidden := eval(t, `document.getElementById('cancel').hidden`); hidden != true {
			t.Fatal("a finished job shows a cancel button")
		}
		screenshot(t, "dashboard-job.png")
		browse(t, "back", chromedp.Click(`#back`), chromedp.WaitVisible(`#jobs-view`))
	})

	t.Run("cancel a running job", func(t *testing.T) {
		// Slow Azure down so the job is still running when it is cancelled.
		if code, body := w.do(t, "PUT", w.admin+"/admin/faults", `{"latency":"1s"}`, false); code != http.StatusOK {
			t.Fatalf("slow the emulator down: %d %s", code, body)
		}
		t.Cleanup(func() { w.do(t, "DELETE", w.admin+"/admin/faults", "", false) })
		id := createJob(t)
		browse(t, "open the running job",
			chromedp.WaitVisible(row(id)+`[data-status="in_progress"]`),
			chromedp.Click(row(id)),
			chromedp.WaitVisible(`#job-view[data-job-id="`+id+`"]`),
			chromedp.WaitVisible(`#cancel`),
		)
		browse(t, "cancel it",
			chromedp.Click(`#cancel`),
			chromedp.WaitVisible(`#cancel.confirm`),
			chromedp.Click(`#cancel`),
		)
		defer func() {
			if t.Failed() {
				t.Logf("job view: %v", eval(t, `document.getElementById('job-view').outerHTML`))
			}
		}()
		// The job finishes (job.finished over SSE) with its vaults aborted.
		browse(t, "see it finish",
			chromedp.WaitVisible(`#job-view[data-job-id="`+id+`"]:not([data-status="in_progress"])`),
			chromedp.WaitVisible(`#vaults tbody tr[data-status="aborted"]`),
			chromedp.WaitNotVisible(`#cancel`),
		)
		var job struct {
			Abort bool `json:"abort"`
		}
		w.get(t, "/api/v1/cckm/azure/synchronization-jobs/"+id, http.StatusOK, &job)
		if !job.Abort {
			t.Fatal("the job is not marked cancelled")
		}
		browse(t, "back to the list",
			chromedp.Click(`#back`),
			chromedp.WaitVisible(row(id)+`:not([data-status="in_progress"])`),
		)
		screenshot(t, "dashboard-jobs.png")
	})

	t.Run("search the inventory", func(t *testing.T) {
		var some keyList
		w.get(t, "/api/v1/cckm/azure/keys?limit=1", http.StatusOK, &some)
		if len(some.Resources) == 0 {
			t.Fatal("the inventory is empty")
		}
		name := some.Resources[0].KeyName
		var want keyList
		w.get(t, "/api/v1/cckm/azure/keys?limit=50&key_name="+url.QueryEscape(name), http.StatusOK, &want)
		browse(t, "search",
			chromedp.Click(`nav .tab[data-view="keys-view"]`),
			chromedp.WaitVisible(`#keys-form`),
			chromedp.SendKeys(`#keys-form input[name="key_name"]`, name),
			chromedp.Click(`#keys-form button[type="submit"]`),
			chromedp.WaitVisible(`#keys tbody tr[data-key-id]`),
		)
		n, text := count(t, `#keys tbody tr[data-key-id]`), text(t, `#keys tbody`)
		if n != len(want.Resources) || n == 0 || !strings.Contains(text, name) {
			t.Fatalf("the page lists %d keys (%q), the API %d named %s", n, text, len(want.Resources), name)
		}
	})
}

// ticketsIssued reads from the API's metrics how many event-stream tickets
// it issued.
func ticketsIssued(t *testing.T, w *walker) int {
	t.Helper()
	code, raw := w.do(t, "GET", w.base+"/metrics", "", true)
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d", code)
	}
	n := 0
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, "akvsync_http_requests_total{") && strings.Contains(line, `route="POST /api/v1/cckm/azure/events/tickets"`) && strings.Contains(line, `code="201"`) {
			var v float64
			if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v); err != nil {
				t.Fatalf("metrics line %q: %v", line, err)
			}
			n += int(v)
		}
	}
	return n
}
