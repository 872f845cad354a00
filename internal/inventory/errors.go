package inventory

import "errors"

// ErrStalled is returned by waits on the store (WaitKeys) when the store
// applied nothing for the wait's stall timeout: its projection is stuck,
// not merely behind.
var ErrStalled = errors.New("the inventory is not applying the streams")
