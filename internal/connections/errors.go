package connections

import (
	"errors"
	"fmt"
	"strings"

	"github.com/akvsync/akvsync/internal/apierr"
)

// Sentinel errors. Every error returned by this package wraps one of them
// (or is a context error).
var (
	// ErrNotFound: no connection has that id or name.
	ErrNotFound = errors.New("connection not found")
	// ErrInvalid: the request is malformed or a value is not acceptable;
	// the message names the field.
	ErrInvalid = errors.New("invalid connection request")
	// ErrConflict: the name is taken, the connection is in use by vaults
	// (see [InUseError]) or it changed concurrently too often.
	ErrConflict = errors.New("connection conflict")
	// ErrUnprocessable: the request is well formed but cannot be carried
	// out (a test without a vault to list).
	ErrUnprocessable = errors.New("unprocessable connection request")
	// ErrTooLarge: a request body is over the size limit.
	ErrTooLarge = errors.New("request body too large")
	// ErrUnavailable: NATS or JetStream did not answer; retry.
	ErrUnavailable = errors.New("connection registry unavailable")
	// ErrCorrupt: a stored record cannot be decoded or its secrets cannot
	// be opened (wrong or retired master key, tampering).
	ErrCorrupt = errors.New("connection record unreadable")
)

// InUseError reports that a connection cannot be deleted because vaults
// refer to it. It wraps [ErrConflict].
type InUseError struct {
	// Connection is the connection's name.
	Connection string
	// Vaults are the qualified names ("name::subscription") of the vaults
	// that use it, sorted.
	Vaults []string
}

// Error implements error.
func (e *InUseError) Error() string {
	return fmt.Sprintf("connection %s is used by %d vault(s): %s; remove them first",
		e.Connection, len(e.Vaults), strings.Join(e.Vaults, ", "))
}

// Unwrap makes errors.Is(err, ErrConflict) hold.
func (e *InUseError) Unwrap() error { return ErrConflict }

func invalidf(format string, args ...any) error { return apierr.New(ErrInvalid, format, args...) }

func notFoundf(format string, args ...any) error { return apierr.New(ErrNotFound, format, args...) }

func conflictf(format string, args ...any) error { return apierr.New(ErrConflict, format, args...) }

// unavailable wraps a NATS error as ErrUnavailable, saying what failed.
func unavailable(what string, err error) error { return apierr.Unavailable(ErrUnavailable, what, err) }

// corrupt wraps a decoding or unsealing error as ErrCorrupt. The message
// names the record and field but never a secret.
func corrupt(id, what string, err error) error {
	return apierr.Wrap(ErrCorrupt, err, "connection %s: %s: %v", id, what, err)
}
