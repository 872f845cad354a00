package sync

import "errors"

var (
	// ErrAborted is the cancellation cause of a vault sync whose job was
	// cancelled.
	ErrAborted = errors.New("sync: job aborted")

	// ErrVaultRemoved is the cancellation cause of a vault sync whose vault
	// was removed from the inventory (remove-vault) while its job ran: the
	// vault ends aborted with this text as its error.
	ErrVaultRemoved = errors.New("vault removed from the inventory")

	// ErrPermanent marks a vault failure that retrying cannot fix (access
	// denied, vault not found, bad configuration).
	ErrPermanent = errors.New("sync: permanent failure")

	// ErrUnknownConnection is returned when a vault names a connection the
	// worker does not know.
	ErrUnknownConnection = errors.New("sync: unknown connection")

	// ErrInvalidConfig is returned by Validate for unusable settings.
	ErrInvalidConfig = errors.New("sync: invalid config")
)
