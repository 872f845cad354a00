package jobs

import (
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

var (
	// ErrNotFound is returned for a job or vault record that does not
	// exist. It wraps nothing; check it with errors.Is.
	ErrNotFound = errors.New("jobs: not found")
	// ErrNoChange is returned by an update function to leave the record
	// as it is: the update then succeeds without writing.
	ErrNoChange = errors.New("jobs: no change")
	// ErrContended is returned when a compare-and-set kept losing to
	// concurrent writers for all its retries.
	ErrContended = errors.New("jobs: record updated concurrently too often")
	// ErrBadRecord is returned for a record that does not decode.
	ErrBadRecord = errors.New("jobs: malformed record")
	// ErrInvalid is returned for an invalid argument or configuration.
	ErrInvalid = errors.New("jobs: invalid")
)

// LockConflictError reports a vault that another holder has locked.
type LockConflictError struct {
	// VaultID is the locked vault.
	VaultID string
	// Holder is the value of the lock: a job id, or another holder such
	// as a vault removal's marker. Empty when the lock kept changing.
	Holder string
}

func (e *LockConflictError) Error() string {
	if e.Holder == "" {
		return fmt.Sprintf("jobs: vault %s: lock contended", e.VaultID)
	}
	return fmt.Sprintf("jobs: vault %s is locked by %s", e.VaultID, e.Holder)
}

// RevisionMismatch reports a compare-and-set conflict on a key-value
// bucket, whichever code the stream used (R1 and R3 streams differ).
func RevisionMismatch(err error) bool {
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}
