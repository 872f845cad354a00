package sync

import (
	"context"
	"net/http"
	gosync "sync"
	"time"

	"golang.org/x/time/rate"
)

// Adaptive rate control: additive increase, multiplicative decrease.
const (
	// throttleDecrease multiplies the rate on a 429.
	throttleDecrease = 0.5
	// throttleFloor is the lowest fraction of the configured rate.
	throttleFloor = 0.05
	// throttleRecovery is the fraction of the configured rate regained per
	// second without a 429.
	throttleRecovery = 0.1
)

// AdaptiveLimiter is a token bucket whose rate halves on every 429 answer
// and climbs back linearly while Azure stops throttling. It implements
// azure.Throttle. A nil *AdaptiveLimiter never waits.
type AdaptiveLimiter struct {
	max float64
	lim *rate.Limiter

	mu       gosync.Mutex
	cur      float64
	lastTick time.Time
}

// NewAdaptiveLimiter returns a limiter of perSecond requests per second,
// or nil (no limit) when perSecond <= 0.
func NewAdaptiveLimiter(perSecond float64) *AdaptiveLimiter {
	if perSecond <= 0 {
		return nil
	}
	burst := int(perSecond)
	if burst < 1 {
		burst = 1
	}
	return &AdaptiveLimiter{max: perSecond, cur: perSecond, lim: rate.NewLimiter(rate.Limit(perSecond), burst), lastTick: time.Now()}
}

// Wait blocks until a request may be sent or ctx ends.
func (l *AdaptiveLimiter) Wait(ctx context.Context) error {
	if l == nil {
		return nil
	}
	l.recover()
	return l.lim.Wait(ctx)
}

// Observe adapts the rate to a response status.
func (l *AdaptiveLimiter) Observe(status int) {
	if l == nil || status != http.StatusTooManyRequests {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cur = max(l.cur*throttleDecrease, l.max*throttleFloor)
	l.lastTick = time.Now()
	l.lim.SetLimit(rate.Limit(l.cur))
	l.lim.SetBurst(max(1, int(l.cur/10)))
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

func (l *AdaptiveLimiter) recover() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cur >= l.max {
		return
	}
	now := time.Now()
	l.cur = min(l.max, l.cur+l.max*throttleRecovery*now.Sub(l.lastTick).Seconds())
	l.lastTick = now
	l.lim.SetLimit(rate.Limit(l.cur))
	if l.cur >= l.max {
		l.lim.SetBurst(max(1, int(l.max)))
	}
}

// throttles paces one vault under its own and its subscription's limits,
// and counts every answer.
type throttles struct {
	limiters []*AdaptiveLimiter
	metrics  *Metrics
}

func (t throttles) Wait(ctx context.Context) error {
	for _, l := range t.limiters {
		if err := l.Wait(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (t throttles) Observe(status int) {
	for _, l := range t.limiters {
		l.Observe(status)
	}
	t.metrics.azureResponse(status)
}

// limiterSet hands out one adaptive limiter per key, kept across syncs so
// what a vault taught us about its limit is not forgotten.
type limiterSet struct {
	rate float64
	mu   gosync.Mutex
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
		l = NewAdaptiveLimiter(s.rate)
		s.m[key] = l
	}
	return l
}
