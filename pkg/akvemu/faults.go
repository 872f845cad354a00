package akvemu

import (
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/time/rate"
)

// Faults are a vault's injected failures and limits. They can be changed at run time
// (Emulator.SetFaults, admin API). Rates are fractions in [0,1], decided
// deterministically from the vault seed and the request sequence number.
type Faults struct {
	// Latency is added to every request, plus a uniform share of LatencyJitter.
	Latency       time.Duration `json:"latency"`
	LatencyJitter time.Duration `json:"latency_jitter"`
	// ErrorRate of requests are answered ErrorStatus (500, 503, or 0 for a mix of both).
	ErrorRate   float64 `json:"error_rate"`
	ErrorStatus int     `json:"error_status"`
	// DropRate of requests get their connection reset without an answer.
	DropRate float64 `json:"drop_rate"`
	// Unreachable closes the vault's listener (connection refused) and its open
	// connections; in host-routing mode its connections are reset.
	Unreachable bool `json:"unreachable"`
	// ThrottleLimit is the vault's token bucket in requests per 10 s: 0 means the
	// service limit for the SKU (4,000 standard, 2,000 premium), negative means none.
	ThrottleLimit int `json:"throttle_limit"`
	// ThrottleRate of requests are answered 429 whatever the bucket holds.
	ThrottleRate float64 `json:"throttle_rate"`
	// ThrottleNext answers the next N requests 429 (counted down).
	ThrottleNext int `json:"throttle_next"`
	// OmitRetryAfter sends 429 answers without a Retry-After header.
	OmitRetryAfter bool `json:"omit_retry_after"`
	// RetryAfterSeconds fixes the Retry-After value; 0 derives it from the bucket (at least 1).
	RetryAfterSeconds int `json:"retry_after_seconds"`
	// IrregularPages makes list pages vary in size, including empty pages that still
	// carry a nextLink.
	IrregularPages bool `json:"irregular_pages"`
}

// Validate reports an out-of-range knob.
func (f Faults) Validate() error {
	for name, r := range map[string]float64{"error_rate": f.ErrorRate, "drop_rate": f.DropRate, "throttle_rate": f.ThrottleRate} {
		if r < 0 || r > 1 || math.IsNaN(r) {
			return badParam(fmt.Sprintf("%s must be between 0 and 1", name))
		}
	}
	if f.ErrorStatus != 0 && f.ErrorStatus != 500 && f.ErrorStatus != 503 {
		return badParam("error_status must be 500, 503 or 0")
	}
	if f.Latency < 0 || f.LatencyJitter < 0 {
		return badParam("latency must not be negative")
	}
	if f.ThrottleNext < 0 || f.RetryAfterSeconds < 0 {
		return badParam("throttle_next and retry_after_seconds must not be negative")
	}
	return nil
}

// UnmarshalJSON accepts durations as Go duration strings ("50ms") or milliseconds.
func (f *Faults) UnmarshalJSON(b []byte) error {
	type plain Faults
	aux := struct {
		*plain
		Latency       json.RawMessage `json:"latency"`
		LatencyJitter json.RawMessage `json:"latency_jitter"`
	}{plain: (*plain)(f)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	var err error
	if f.Latency, err = parseDuration(aux.Latency); err != nil {
		return fmt.Errorf("latency: %w", err)
	}
	if f.LatencyJitter, err = parseDuration(aux.LatencyJitter); err != nil {
		return fmt.Errorf("latency_jitter: %w", err)
	}
	return nil
}

// MarshalJSON writes durations as Go duration strings.
func (f Faults) MarshalJSON() ([]byte, error) {
	type plain Faults
	return json.Marshal(struct {
		plain
		Latency       string `json:"latency"`
		LatencyJitter string `json:"latency_jitter"`
	}{plain(f), f.Latency.String(), f.LatencyJitter.String()})
}

// parseDuration reads a JSON duration: a Go duration string or a number of milliseconds.
func parseDuration(raw json.RawMessage) (time.Duration, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return time.ParseDuration(s)
	}
	var ms float64
	if err := json.Unmarshal(raw, &ms); err != nil {
		return 0, fmt.Errorf("want a duration string or milliseconds: %w", err)
	}
	return time.Duration(ms * float64(time.Millisecond)), nil
}

// faultState is the immutable, atomically swapped fault configuration of a vault.
type faultState struct {
	f       Faults
	limit   int           // effective requests per window; 0 = unlimited
	limiter *rate.Limiter // nil = unlimited
}

func newLimiter(perWindow int) *rate.Limiter {
	if perWindow <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(float64(perWindow)/ThrottleWindow.Seconds()), perWindow)
}

// Fault salts keep the independent decisions uncorrelated.
const (
	saltDrop     = 0x64726f70
	saltError    = 0x6572726f
	saltStatus   = 0x73746174
	saltJitter   = 0x6a697474
	saltThrottle = 0x7468726f
	saltPage     = 0x70616765
)

// mix is splitmix64 over two words.
func mix(a, b uint64) uint64 {
	z := a ^ (b * 0x9e3779b97f4a7c15)
	z += 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// chance returns a deterministic value in [0,1) for a seed, sequence number and salt.
func chance(seed, seq, salt uint64) float64 {
	return float64(mix(seed^salt, seq)>>11) / (1 << 53)
}

// sleepCtx waits d or until the request is cancelled.
func sleepCtx(r *http.Request, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
	}
}

// dropConnection hijacks the connection and resets it (RST, no answer).
func dropConnection(w http.ResponseWriter) bool {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return false
	}
	resetConn(conn)
	return true
}

// resetConn closes a connection abruptly, with a TCP reset when possible.
func resetConn(conn net.Conn) {
	type netConner interface{ NetConn() net.Conn }
	raw := conn
	if nc, ok := conn.(netConner); ok {
		raw = nc.NetConn()
	}
	if tc, ok := raw.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
		_ = tc.Close()
		return
	}
	_ = conn.Close()
}

// retryAfterValue is the Retry-After header value for a throttled request.
func retryAfterValue(fs *faultState) string {
	if fs.f.RetryAfterSeconds > 0 {
		return strconv.Itoa(fs.f.RetryAfterSeconds)
	}
	secs := 1
	if fs.limiter != nil {
		missing := 1 - fs.limiter.Tokens()
		if missing > 0 {
			secs = int(math.Ceil(missing / float64(fs.limiter.Limit())))
		}
	}
	if secs < 1 {
		secs = 1
	}
	return strconv.Itoa(secs)
}
