package apierr

import (
	"errors"
	"io/fs"
	"testing"
)

func TestMessageAloneAndBothWrapped(t *testing.T) {
	errInvalid := errors.New("invalid request")
	errUnavailable := errors.New("unavailable")

	err := New(errInvalid, "key_vaults[%d]: not a vault id", 2)
	if err.Error() != "key_vaults[2]: not a vault id" || !errors.Is(err, errInvalid) {
		t.Fatalf("New: %q, is sentinel %v", err, errors.Is(err, errInvalid))
	}
	cause := &fs.PathError{Op: "open", Path: "x", Err: fs.ErrNotExist}
	err = Unavailable(errUnavailable, "read job", cause)
	var pe *fs.PathError
	if err.Error() != "read job: open x: file does not exist" || !errors.Is(err, errUnavailable) ||
		!errors.Is(err, fs.ErrNotExist) || !errors.As(err, &pe) {
		t.Fatalf("Unavailable: %q does not wrap both", err)
	}
	if errors.Is(New(errInvalid, "x"), errUnavailable) {
		t.Fatal("an error matches a sentinel it does not wrap")
	}
}
