package jobs

import (
	"errors"
	"fmt"

	"github.com/akvsync/akvsync/pkg/events"
)

var (
	// ErrNotFound is returned for a job or vault record that does not
	// exist. It wraps nothing; check it with errors.Is.
	ErrNotFound = errors.New("jobs: not found")
	// ErrNoChange is returned by an update function to leave the record
	// as it is: the update then succeeds without writing.
	ErrNoChange = events.ErrNoChange
	// ErrContended is returned when a compare-and-set kept losing to
	// concurrent writers for all its retries.
	ErrContended = events.ErrContended
	// ErrBadRecord is returned for a record that does not decode.
	ErrBadRecord = events.ErrBadRecord
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
