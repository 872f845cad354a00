package schedule

import (
	"fmt"

	"github.com/akvsync/akvsync/internal/control"
)

// Errors wrap the control plane's sentinels (control.ErrInvalid,
// ErrNotFound, ErrConflict, ErrUnprocessable, ErrUnavailable), so the API
// maps them to statuses as it does the other resources'.
type wrapped struct {
	sentinel error
	msg      string
	cause    error
}

func (e *wrapped) Error() string { return e.msg }

func (e *wrapped) Unwrap() []error {
	if e.cause != nil {
		return []error{e.sentinel, e.cause}
	}
	return []error{e.sentinel}
}

func invalidf(format string, args ...any) error {
	return &wrapped{sentinel: control.ErrInvalid, msg: fmt.Sprintf(format, args...)}
}

func unprocessablef(format string, args ...any) error {
	return &wrapped{sentinel: control.ErrUnprocessable, msg: fmt.Sprintf(format, args...)}
}

func conflictf(format string, args ...any) error {
	return &wrapped{sentinel: control.ErrConflict, msg: fmt.Sprintf(format, args...)}
}

func notFoundf(format string, args ...any) error {
	return &wrapped{sentinel: control.ErrNotFound, msg: fmt.Sprintf(format, args...)}
}

func unavailable(what string, err error) error {
	return &wrapped{sentinel: control.ErrUnavailable, msg: what + ": " + err.Error(), cause: err}
}
