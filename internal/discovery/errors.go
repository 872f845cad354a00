package discovery

import (
	"errors"

	"github.com/akvsync/akvsync/internal/apierr"
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

func invalidf(format string, args ...any) error { return apierr.New(ErrInvalid, format, args...) }

func notFoundf(format string, args ...any) error { return apierr.New(ErrNotFound, format, args...) }

// unavailable wraps a NATS error as ErrUnavailable, saying what failed.
func unavailable(what string, err error) error { return apierr.Unavailable(ErrUnavailable, what, err) }
