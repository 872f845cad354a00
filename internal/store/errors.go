package store

import "errors"

var (
	// ErrNotFound is returned when a key or job id is not in the store.
	ErrNotFound = errors.New("store: not found")

	// ErrBadQuery is returned for a query with an unknown sort field, a
	// negative skip or a limit below events.LimitAll.
	ErrBadQuery = errors.New("store: bad query")

	// ErrClosed is returned by every method of a closed Store.
	ErrClosed = errors.New("store: closed")

	// ErrBadConfig is returned by Config.Validate and Open for an invalid
	// configuration.
	ErrBadConfig = errors.New("store: bad config")

	// ErrBadRecord is returned by Apply for a record it cannot store (a
	// key id that is not a UUID, an empty job id); nothing of the batch
	// is applied.
	ErrBadRecord = errors.New("store: bad record")

	// ErrCorrupt is returned when stored bytes do not decode.
	ErrCorrupt = errors.New("store: corrupt data")
)
