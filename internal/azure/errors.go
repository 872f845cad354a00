package azure

import "errors"

var (
	// ErrInvalidConnection is returned for a connection whose settings are
	// incomplete or contradictory; nothing is contacted.
	ErrInvalidConnection = errors.New("azure: invalid connection")

	// ErrInvalidVaultURI is returned for a vault URI that is not an
	// absolute https URL with no path.
	ErrInvalidVaultURI = errors.New("azure: invalid vault URI")
)
