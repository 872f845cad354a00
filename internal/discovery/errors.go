package discovery

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error of this package wraps one of them, an
// Azure failure of package arm, or a context error.
var (
	// ErrInvalid: the request is malformed or names an unknown connection;
	// the message names the field.
	ErrInvalid = errors.New("invalid discovery request")
	// ErrNotFound: no stored subscription has that id.
	ErrNotFound = errors.New("subscription not found")
	// ErrUnprocessable: the request is well formed but cannot be carried
	// out (a connection without a resource manager, or whose secrets
	// cannot be opened).
	ErrUnprocessable = errors.New("unprocessable discovery request")
	// ErrUnavailable: NATS, JetStream or the connection registry did not
	// answer; retry.
	ErrUnavailable = errors.New("discovery unavailable")
)

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

func newErr(sentinel error, cause error, format string, args ...any) error {
	return &wrapped{sentinel: sentinel, msg: fmt.Sprintf(format, args...), cause: cause}
}

func invalidf(format string, args ...any) error { return newErr(ErrInvalid, nil, format, args...) }

func notFoundf(format string, args ...any) error { return newErr(ErrNotFound, nil, format, args...) }

// unavailable wraps a NATS error as ErrUnavailable, saying what failed.
func unavailable(what string, err error) error {
	return newErr(ErrUnavailable, err, "%s: %v", what, err)
}
