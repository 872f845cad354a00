package control

import (
	"errors"
	"fmt"

	"github.com/akvsync/akvsync/internal/apierr"
)

// Sentinel errors. Every error returned by this package wraps one of them
// (or is a context error).
var (
	// ErrNotFound: the job, vault or key does not exist (or its id is
	// malformed).
	ErrNotFound = errors.New("not found")
	// ErrInvalid: the request is malformed or names something unknown.
	ErrInvalid = errors.New("invalid request")
	// ErrConflict: the request conflicts with the current state (a vault
	// locked by an active job, a vault that already exists, a job that is
	// no longer in progress). See [ConflictError] for the job involved.
	ErrConflict = errors.New("conflict")
	// ErrUnprocessable: the request is well formed but cannot be carried
	// out (synchronize_all with no registered vault, an unsupported option).
	ErrUnprocessable = errors.New("unprocessable request")
	// ErrUnavailable: NATS, JetStream or the workers' query service did not
	// answer; the request may be retried.
	ErrUnavailable = errors.New("service unavailable")
)

// ConflictError reports that a vault is held by another job (or is being
// removed). It wraps [ErrConflict].
type ConflictError struct {
	// Vault is the vault's qualified name ("name::subscription").
	Vault string
	// JobID is the id of the job holding the vault, or "" when the vault is
	// held by a removal.
	JobID string
}

// Error implements error, e.g. "vault v1::sub is being synchronized by job 1234".
func (e *ConflictError) Error() string {
	if e.JobID == "" {
		return fmt.Sprintf("vault %s is being removed", e.Vault)
	}
	return fmt.Sprintf("vault %s is being synchronized by job %s", e.Vault, e.JobID)
}

// Unwrap makes errors.Is(err, ErrConflict) hold.
func (e *ConflictError) Unwrap() error { return ErrConflict }

// invalidf returns an error wrapping ErrInvalid whose text is the message
// alone (the sentinel's text is not repeated), for use as a client message.
func invalidf(format string, args ...any) error { return apierr.New(ErrInvalid, format, args...) }

// conflictf is invalidf for ErrConflict.
func conflictf(format string, args ...any) error { return apierr.New(ErrConflict, format, args...) }

// unprocessablef is invalidf for ErrUnprocessable.
func unprocessablef(format string, args ...any) error {
	return apierr.New(ErrUnprocessable, format, args...)
}

// notFoundf is invalidf for ErrNotFound.
func notFoundf(format string, args ...any) error { return apierr.New(ErrNotFound, format, args...) }

// unavailable wraps a NATS error as ErrUnavailable, saying what failed.
func unavailable(what string, err error) error { return apierr.Unavailable(ErrUnavailable, what, err) }
