package sync

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// Defaults of [RetryPolicy].
const (
	// DefaultRetryInitial is the first wait after a transient NATS error.
	DefaultRetryInitial = 100 * time.Millisecond
	// DefaultRetryMax caps the wait between two attempts: the waits double
	// from DefaultRetryInitial up to it.
	DefaultRetryMax = 2 * time.Second
	// DefaultRetryBudget bounds the time one call keeps retrying: long
	// enough to ride out a JetStream leader election or a node restart
	// (seconds), short enough that a task held by a worker cut off from
	// NATS goes back to the others.
	DefaultRetryBudget = 2 * time.Minute
)

// RetryPolicy bounds the retries of one NATS call that failed transiently.
// Zero fields take the defaults above; the zero value is ready to use.
type RetryPolicy struct {
	// Initial is the first wait; each next wait doubles, up to Max.
	Initial, Max time.Duration
	// Budget is how long the call keeps being retried, measured from the
	// first attempt; negative: while the context lives.
	Budget time.Duration
	// Attempts caps the number of attempts; 0: no cap.
	Attempts int
	// Retryable tells the errors worth another attempt; nil: IsTransient.
	Retryable func(error) bool
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.Initial <= 0 {
		p.Initial = DefaultRetryInitial
	}
	if p.Max <= 0 {
		p.Max = DefaultRetryMax
	}
	if p.Budget == 0 {
		p.Budget = DefaultRetryBudget
	}
	if p.Retryable == nil {
		p.Retryable = IsTransient
	}
	return p
}

// IsTransient reports whether err is a NATS or JetStream failure that a
// later attempt of the same call may not meet: the stream or consumer had
// no leader for a moment (leader election after a node loss: "no response
// from stream", no responders, timeouts, a 503 from the JetStream API), or
// the connection is being re-established. Context cancellation is not
// transient; a timeout is, as long as the caller's context lives (retry
// checks that).
func IsTransient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	for _, t := range transientErrors {
		if errors.Is(err, t) {
			return true
		}
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		// 503: "JetStream system temporarily unavailable", "insufficient
		// resources" while peers are missing; 408: request timeout.
		return apiErr.Code == 503 || apiErr.Code == 408
	}
	return false
}

// JetStream API error codes a cluster answers while it forms.
const (
	jsErrNoSuitablePeers      = 10005 // "no suitable peers for placement": peers missing
	jsErrReplicasNotSupported = 10074 // R>1 on a server that is not clustered: never passes
	jsServerSideCode          = 500   // lowest status of a server-side condition
)

// WhileForming reports whether err may pass once a NATS cluster that is
// still forming (or a server still starting) is ready: a transient error,
// a network or timeout error, a JetStream server-side condition (no
// leader yet, insufficient resources, no suitable peers). A JetStream
// error that names a bad request (a conflicting stream configuration, R3
// on a single server) is not. Use it as the Retryable of the topology
// setup at start.
func WhileForming(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	if IsTransient(err) {
		return true
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch {
		case apiErr.ErrorCode == jsErrReplicasNotSupported:
			return false
		case apiErr.ErrorCode == jsErrNoSuitablePeers:
			return true
		default:
			return apiErr.Code >= jsServerSideCode
		}
	}
	for _, e := range [...]error{nats.ErrAuthorization, nats.ErrAuthExpired, nats.ErrAuthRevoked, nats.ErrPermissionViolation, nats.ErrBadSubject} {
		if errors.Is(err, e) {
			return false
		}
	}
	return true
}

// transientErrors are the sentinels IsTransient matches.
var transientErrors = []error{
	jetstream.ErrNoStreamResponse,
	jetstream.ErrAsyncPublishTimeout,
	jetstream.ErrTooManyStalledMsgs,
	jetstream.ErrConsumerLeadershipChanged,
	jetstream.ErrJetStreamNotEnabled, // a server that has not joined the meta group yet
	nats.ErrTimeout,
	nats.ErrNoResponders,
	nats.ErrConnectionReconnecting,
	nats.ErrDisconnected,
	nats.ErrStaleConnection,
	context.DeadlineExceeded,
}

// Retry calls fn until it returns nil or an error that is not retryable
// (by default: not [IsTransient]), the policy's budget or attempts run out, or ctx ends.
// Between attempts it waits with a doubling, capped backoff and logs a
// warning (op names the call; attempt counts from 1). It returns fn's last
// error, joined with ctx's when ctx ended while waiting. Use it only for
// calls that are safe to repeat: JetStream publishes with a Nats-Msg-Id or
// to a subject that keeps one message, reads, acks.
func Retry(ctx context.Context, log zerolog.Logger, p RetryPolicy, op string, fn func(ctx context.Context) error) error {
	p = p.withDefaults()
	start := time.Now()
	wait := p.Initial
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if err == nil || !p.Retryable(err) || ctx.Err() != nil {
			return err
		}
		if p.Attempts > 0 && attempt >= p.Attempts {
			return err
		}
		if p.Budget > 0 && time.Since(start)+wait > p.Budget {
			return fmt.Errorf("%s: gave up after %d attempts in %s: %w", op, attempt, time.Since(start).Round(time.Millisecond), err)
		}
		log.Warn().Err(err).Str("op", op).Int("attempt", attempt).Dur("retry_in", wait).Msg("transient NATS error; retrying")
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, p.Max)
	}
}
