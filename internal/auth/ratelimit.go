package auth

import (
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Bounds of the per-client limiter table.
const (
	// maxTrackedClients caps the table; beyond it idle entries are swept and,
	// if still full, new clients share one overflow limiter.
	maxTrackedClients = 65536
	// limiterIdle is how long an untouched entry is kept.
	limiterIdle = 10 * time.Minute
)

// clientLimiter is a token-bucket limiter per client address.
type clientLimiter struct {
	limit rate.Limit
	burst int

	mu        sync.Mutex
	clients   map[string]*limiterEntry
	overflow  *rate.Limiter
	lastSweep time.Time
}

type limiterEntry struct {
	lim  *rate.Limiter
	seen time.Time
}

func newClientLimiter(limit rate.Limit, burst int) *clientLimiter {
	return &clientLimiter{
		limit:    limit,
		burst:    burst,
		clients:  map[string]*limiterEntry{},
		overflow: rate.NewLimiter(limit, burst),
	}
}

// allow takes one token for client at now; when none is available it
// returns false and the wait until one will be.
func (c *clientLimiter) allow(client string, now time.Time) (bool, time.Duration) {
	if c.limit == rate.Inf {
		return true, 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if now.Sub(c.lastSweep) > limiterIdle || len(c.clients) >= maxTrackedClients {
		c.sweep(now)
	}
	lim := c.overflow
	if e, ok := c.clients[client]; ok {
		e.seen = now
		lim = e.lim
	} else if len(c.clients) < maxTrackedClients {
		e := &limiterEntry{lim: rate.NewLimiter(c.limit, c.burst), seen: now}
		c.clients[client] = e
		lim = e.lim
	}
	if lim.AllowN(now, 1) {
		return true, 0
	}
	r := lim.ReserveN(now, 1)
	if !r.OK() {
		return false, time.Minute
	}
	d := r.DelayFrom(now)
	r.CancelAt(now)
	return false, d
}

// blocked reports, without taking a token, whether key has none left at
// now, and the wait until it will.
func (c *clientLimiter) blocked(key string, now time.Time) (bool, time.Duration) {
	if c.limit == rate.Inf {
		return false, 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.clients[key]
	if !ok || e.lim.TokensAt(now) >= 1 {
		return false, 0
	}
	r := e.lim.ReserveN(now, 1)
	if !r.OK() {
		return true, time.Minute
	}
	d := r.DelayFrom(now)
	r.CancelAt(now)
	return true, d
}

// sweep drops entries idle for limiterIdle (their bucket is full again by
// then for any sane limit).
func (c *clientLimiter) sweep(now time.Time) {
	c.lastSweep = now
	for k, e := range c.clients {
		if now.Sub(e.seen) > limiterIdle {
			delete(c.clients, k)
		}
	}
}

// clientKey reduces a remote address ("ip:port", "ip", or anything else) to
// the limiter key: the IP for IPv4, the /64 prefix for IPv6 (one host
// usually owns a whole /64), and the raw string otherwise.
func clientKey(remoteAddr string) string {
	host := remoteAddr
	if h, _, err := net.SplitHostPort(remoteAddr); err == nil {
		host = h
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	addr = addr.Unmap()
	if addr.Is6() {
		if p, err := addr.WithZone("").Prefix(64); err == nil {
			return p.String()
		}
	}
	return addr.String()
}
