package azure

import "errors"

var (
	// ErrInvalidConnection is returned for a connection whose settings are
	// incomplete or contradictory; nothing is contacted.
	ErrInvalidConnection = errors.New("azure: invalid connection")

	// ErrNoResourceManager is returned for a connection whose cloud has no
	// default Azure Resource Manager endpoint (AzureStack) and that sets
	// none.
	ErrNoResourceManager = errors.New("azure: no resource manager endpoint")

	// ErrInvalidVaultURI is returned for a vault URI that is not an
	// absolute https URL with no path.
	ErrInvalidVaultURI = errors.New("azure: invalid vault URI")
)
