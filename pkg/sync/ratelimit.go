package sync

import (
	"context"
	"math"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Adaptive rate control: the rate starts at its ceiling (the configured
// limit, or this worker's share of a subscription budget), drops
// multiplicatively on a 429 and climbs back additively while Azure stops
// throttling. It never goes above the ceiling: Azure's limits are
// documented and the emulator enforces exactly them, so the ceiling is
// the real one and probing past it could only earn 429s.
const (
	// ThrottleDecrease multiplies the rate on a 429 answer (at most once
	// per ThrottleHold: the requests in flight when Azure started
	// throttling come back 429 together and are one signal).
	ThrottleDecrease = 0.7
	// ThrottleHold is how long after a decrease further 429s are taken as
	// the same signal.
	ThrottleHold = time.Second
	// ThrottleFloor is the lowest fraction of the ceiling the rate falls to.
	ThrottleFloor = 0.05
	// ThrottleRecovery is the fraction of the ceiling regained per second
	// without a 429, up to the rate at which the last 429 came.
	ThrottleRecovery = 0.1
	// ThrottleProbe is the slower climb, in fractions of the ceiling per
	// second, above the rate at which the last 429 came: the limiter
	// looks for the ceiling again without hammering it.
	ThrottleProbe = 0.02
	// ThrottleBurst is a subscription limiter's bucket, in seconds of its
	// rate. It is small so that the budget, paced at Azure's limit, never
	// sends much more than the limit in any of Azure's 10-second windows
	// (at most 1% more, after an idle spell).
	ThrottleBurst = 0.1
	// VaultBurst is a vault limiter's bucket, in seconds of its rate: the
	// vault rate (90% of the limit) plus one second of it fits the 10-s
	// window, and the bucket lets the last vaults of a job catch up.
	VaultBurst = 1.0
	// MaxRetryAfter caps the pause a Retry-After header can impose.
	MaxRetryAfter = time.Minute
	// SharedThrottleWindow: a subscription's rate is cut when 429s come
	// from two different vaults within it. A 429 of one vault alone is
	// that vault's own limit (its limiter backs off), not the
	// subscription's, which throttles every vault of it.
	SharedThrottleWindow = 2 * time.Second
)

// AdaptiveLimiter is a token bucket whose rate drops on 429 answers and
// climbs back while Azure stops throttling, below a ceiling that may be
// moved at run time (a worker's share of its subscription's budget). It
// also honours Retry-After by holding every request until then. It
// implements Throttle. A nil *AdaptiveLimiter never waits.
type AdaptiveLimiter struct {
	lim   *rate.Limiter
	burst float64 // bucket, in seconds of the rate

	mu       sync.Mutex
	ceiling  float64   // the most it may send, requests per second
	cur      float64   // current rate, at most ceiling
	knee     float64   // rate when the last 429 came (0: none); recovery slows above it
	lastTick time.Time // last recovery step
	lastCut  time.Time // last decrease
	paused   time.Time // no request before this (Retry-After)
	lastSrc  string    // ObserveFrom: where the last 429 came from
	lastSrcT time.Time // and when
	sharedT  time.Time // when ObserveFrom last saw a shared signal
	gen      uint64    // bumped by every decrease: waiters queued before it queue again
}

// NewAdaptiveLimiter returns a limiter of perSecond requests per second
// with a bucket of ThrottleBurst seconds, or nil (no limit) when
// perSecond <= 0.
func NewAdaptiveLimiter(perSecond float64) *AdaptiveLimiter {
	return newAdaptiveLimiter(perSecond, ThrottleBurst)
}

func newAdaptiveLimiter(perSecond, burst float64) *AdaptiveLimiter {
	if perSecond <= 0 {
		return nil
	}
	l := &AdaptiveLimiter{ceiling: perSecond, cur: perSecond, burst: burst, lastTick: time.Now()}
	l.lim = rate.NewLimiter(rate.Limit(perSecond), l.burstFor(perSecond))
	return l
}

func (l *AdaptiveLimiter) burstFor(perSecond float64) int {
	return max(1, int(math.Ceil(perSecond*l.burst)))
}

// Wait blocks until a request may be sent or ctx ends. A request that
// was waiting when the rate was cut, or a Retry-After came, waits again:
// the token bucket's reservations are made at the rate of their time.
func (l *AdaptiveLimiter) Wait(ctx context.Context) error {
	if l == nil {
		return nil
	}
	for {
		gen, pause := l.step()
		if pause > 0 {
			t := time.NewTimer(pause)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			}
		}
		if err := l.lim.Wait(ctx); err != nil {
			return err
		}
		l.mu.Lock()
		stale := l.gen != gen || time.Now().Before(l.paused)
		l.mu.Unlock()
		if !stale {
			return nil
		}
	}
}

// Observe adapts the rate to a response status: a 429 lowers it.
func (l *AdaptiveLimiter) Observe(status int) {
	if l == nil || status != http.StatusTooManyRequests {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if now.Sub(l.lastCut) < ThrottleHold {
		return
	}
	l.knee = l.cur
	l.cur = max(l.cur*ThrottleDecrease, l.ceiling*ThrottleFloor)
	l.lastCut, l.lastTick = now, now
	l.gen++
	l.apply()
}

// ObserveFrom adapts a limiter shared by several sources (the vaults of a
// subscription) to a response status from one of them: a 429 lowers the
// rate only when another source also got one within
// SharedThrottleWindow.
func (l *AdaptiveLimiter) ObserveFrom(status int, source string) {
	if l == nil || status != http.StatusTooManyRequests {
		return
	}
	l.mu.Lock()
	now := time.Now()
	shared := l.lastSrc != "" && l.lastSrc != source && now.Sub(l.lastSrcT) < SharedThrottleWindow
	l.lastSrc, l.lastSrcT = source, now
	if shared {
		l.sharedT = now
	}
	l.mu.Unlock()
	if shared {
		l.Observe(status)
	}
}

// PauseIfShared is Pause when ObserveFrom saw a shared throttling signal
// within the last ThrottleHold (the subscription's limit was hit).
func (l *AdaptiveLimiter) PauseIfShared(d time.Duration) {
	if l == nil {
		return
	}
	l.mu.Lock()
	shared := time.Since(l.sharedT) < ThrottleHold
	l.mu.Unlock()
	if shared {
		l.Pause(d)
	}
}

// Pause holds every request until d from now (a Retry-After), capped at
// MaxRetryAfter.
func (l *AdaptiveLimiter) Pause(d time.Duration) {
	if l == nil || d <= 0 {
		return
	}
	until := time.Now().Add(min(d, MaxRetryAfter))
	l.mu.Lock()
	defer l.mu.Unlock()
	if until.After(l.paused) {
		l.paused = until
	}
}

// SetCeiling moves the ceiling (a new share of a subscription budget).
// The current rate keeps its fraction of the ceiling, so a limiter that
// backed off stays backed off in proportion.
func (l *AdaptiveLimiter) SetCeiling(perSecond float64) {
	if l == nil || perSecond <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if perSecond == l.ceiling {
		return
	}
	f := perSecond / l.ceiling
	l.ceiling = perSecond
	l.cur = min(perSecond, l.cur*f)
	l.knee *= f
	if f < 1 {
		l.gen++
	}
	l.apply()
}

// Rate is the current rate in requests per second.
func (l *AdaptiveLimiter) Rate() float64 {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cur
}

// Ceiling is the rate the limiter climbs back to, requests per second.
func (l *AdaptiveLimiter) Ceiling() float64 {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ceiling
}

// step recovers the rate for the time since the last step and returns the
// decrease generation and how long a request must still wait for a
// Retry-After pause.
func (l *AdaptiveLimiter) step() (uint64, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if l.cur < l.ceiling {
		dt := now.Sub(l.lastTick).Seconds()
		next := l.cur
		if l.knee > 0 && next < l.knee {
			next = min(l.knee, next+l.ceiling*ThrottleRecovery*dt)
		} else {
			next += l.ceiling * ThrottleProbe * dt
		}
		l.cur = min(l.ceiling, next)
		l.apply()
	}
	l.lastTick = now
	return l.gen, l.paused.Sub(now)
}

// apply hands the current rate to the token bucket; l.mu is held. A
// smaller bucket drops the tokens it can no longer hold (the rate package
// keeps them), so lowering a share never leaves the old burst to spend.
func (l *AdaptiveLimiter) apply() {
	now := time.Now()
	b := l.burstFor(l.cur)
	l.lim.SetLimitAt(now, rate.Limit(l.cur))
	l.lim.SetBurstAt(now, b)
	for excess := int(l.lim.TokensAt(now)) - b; excess > 0; {
		n := min(excess, b)
		if !l.lim.AllowN(now, n) {
			break
		}
		excess -= n
	}
}

// throttles paces one vault under its own limit and its subscription's
// budget share, and counts every answer. A 429 cannot tell whether the
// vault's or the subscription's limit was hit: it cuts the vault's rate
// and pauses the vault for the Retry-After, and cuts and pauses the
// subscription when another vault of it was throttled too (ObserveFrom).
type throttles struct {
	vaultID             string
	vault, subscription *AdaptiveLimiter
	usage               *usageCounter
	metrics             Metrics
}

func (t throttles) Wait(ctx context.Context) error {
	if err := t.vault.Wait(ctx); err != nil {
		return err
	}
	return t.subscription.Wait(ctx)
}

func (t throttles) Observe(status int) {
	t.vault.Observe(status)
	t.subscription.ObserveFrom(status, t.vaultID)
}

// ObserveAttempt implements AttemptObserver: the vault sync's own
// accounting and the worker's metrics.
func (t throttles) ObserveAttempt(a Attempt) {
	if t.usage != nil {
		t.usage.observe(a)
	}
	if t.metrics != nil {
		t.metrics.AzureAttempt(a)
	}
}

// ObserveRetryAfter implements RetryAfterObserver.
func (t throttles) ObserveRetryAfter(d time.Duration) {
	t.vault.Pause(d)
	t.subscription.PauseIfShared(d)
}

// limiterSet hands out one adaptive limiter per vault, kept across syncs
// so what a vault taught us about its limit is not forgotten.
type limiterSet struct {
	rate float64
	mu   sync.Mutex
	m    map[string]*AdaptiveLimiter
}

func newLimiterSet(perSecond float64) *limiterSet {
	return &limiterSet{rate: perSecond, m: map[string]*AdaptiveLimiter{}}
}

func (s *limiterSet) get(key string) *AdaptiveLimiter {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.m[key]
	if !ok {
		l = newAdaptiveLimiter(s.rate, VaultBurst)
		s.m[key] = l
	}
	return l
}
