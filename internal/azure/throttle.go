package azure

import (
	"net/http"
	"strconv"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	akvsync "github.com/akvsync/akvsync/pkg/sync"
)

// throttlePolicy runs once per attempt (a per-retry policy), so retries are
// paced like first tries and every 429 reaches the throttle.
type throttlePolicy struct{ t akvsync.Throttle }

func (p throttlePolicy) Do(req *policy.Request) (*http.Response, error) {
	if t, ok := akvsync.ThrottleFrom(req.Raw().Context()); ok {
		p.t = t
	}
	start := time.Now()
	if err := p.t.Wait(req.Raw().Context()); err != nil {
		return nil, err
	}
	sent := time.Now()
	resp, err := req.Next()
	if ao, ok := p.t.(akvsync.AttemptObserver); ok {
		a := akvsync.Attempt{Operation: OperationOf(req.Raw().Method, req.Raw().URL.Path), Wait: sent.Sub(start), Duration: time.Since(sent)}
		if resp != nil {
			a.Status = resp.StatusCode
		}
		var st *attemptState
		if req.OperationValue(&st) && st != nil {
			a.Retry = st.retryNext
			st.retryNext = retryable(a.Status, err)
		}
		ao.ObserveAttempt(a)
	}
	if resp != nil {
		p.t.Observe(resp.StatusCode)
		if ro, ok := p.t.(akvsync.RetryAfterObserver); ok && resp.StatusCode == http.StatusTooManyRequests {
			if d := RetryAfter(resp.Header, time.Now()); d > 0 {
				ro.ObserveRetryAfter(d)
			}
		}
	}
	return resp, err
}

// RetryAfter is the delay a throttled answer's headers ask for, or zero:
// retry-after-ms and x-ms-retry-after-ms in milliseconds, else
// Retry-After in seconds or as an HTTP date (relative to now).
func RetryAfter(h http.Header, now time.Time) time.Duration {
	for _, name := range []string{"Retry-After-Ms", "X-Ms-Retry-After-Ms"} {
		if ms, err := strconv.ParseFloat(h.Get(name), 64); err == nil && ms > 0 {
			return time.Duration(ms * float64(time.Millisecond))
		}
	}
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
