package sync

import "errors"

var (
	// ErrAborted is the cancellation cause of a vault sync whose job was
	// cancelled.
	ErrAborted = errors.New("sync: job aborted")

	// ErrPermanent marks a vault failure that retrying cannot fix (access
	// denied, vault not found, bad configuration).
	ErrPermanent = errors.New("sync: permanent failure")

	// ErrUnknownConnection is returned when a vault names a connection the
	// worker does not know.
	ErrUnknownConnection = errors.New("sync: unknown connection")

	// ErrInvalidConfig is returned by Validate for unusable settings.
	ErrInvalidConfig = errors.New("sync: invalid config")
)
