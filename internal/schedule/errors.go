package schedule

import (
	"github.com/akvsync/akvsync/internal/apierr"
	"github.com/akvsync/akvsync/internal/control"
)

// Errors wrap the control plane's sentinels (control.ErrInvalid,
// ErrNotFound, ErrConflict, ErrUnprocessable, ErrUnavailable), so the API
// maps them to statuses as it does the other resources'.

func invalidf(format string, args ...any) error {
	return apierr.New(control.ErrInvalid, format, args...)
}

func unprocessablef(format string, args ...any) error {
	return apierr.New(control.ErrUnprocessable, format, args...)
}

func conflictf(format string, args ...any) error {
	return apierr.New(control.ErrConflict, format, args...)
}

func notFoundf(format string, args ...any) error {
	return apierr.New(control.ErrNotFound, format, args...)
}

func unavailable(what string, err error) error {
	return apierr.Unavailable(control.ErrUnavailable, what, err)
}
