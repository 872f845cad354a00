// Package apierr is the one error scaffolding of the packages behind the
// REST API (internal/control, internal/connections, internal/discovery,
// internal/schedule): an error whose message is meant for API clients and
// that wraps its package's sentinel (ErrInvalid, ErrNotFound, …), which
// says what kind of failure it is and which internal/httpapi maps to a
// status, and optionally the underlying cause. The sentinels stay in the
// packages that own them.
package apierr

import "fmt"

// New returns an error wrapping sentinel whose message is the formatted
// text alone (the sentinel's own text is not repeated), so the API can show
// it to clients as it is.
func New(sentinel error, format string, args ...any) error {
	return &wrapped{sentinel: sentinel, msg: fmt.Sprintf(format, args...)}
}

// Wrap is New that also wraps cause, so errors.Is and errors.As see it; the
// message says of cause only what format does.
func Wrap(sentinel, cause error, format string, args ...any) error {
	return &wrapped{sentinel: sentinel, msg: fmt.Sprintf(format, args...), cause: cause}
}

// Unavailable wraps the failure of a dependency (NATS, JetStream, a
// registry) as sentinel, saying what failed: "what: cause".
func Unavailable(sentinel error, what string, cause error) error {
	return Wrap(sentinel, cause, "%s: %v", what, cause)
}

// wrapped is an error whose message is meant for clients and which wraps a
// sentinel (and optionally the underlying cause).
type wrapped struct {
	sentinel error
	msg      string
	cause    error
}

func (e *wrapped) Error() string { return e.msg }

func (e *wrapped) Unwrap() []error {
	if e.cause != nil {
		return []error{e.sentinel, e.cause}
	}
	return []error{e.sentinel}
}
