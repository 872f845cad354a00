package testbin

import (
	"errors"
	"testing"
)

func TestUnknownBinary(t *testing.T) {
	if _, _, err := build([]string{API, "no-such-command"}); !errors.Is(err, ErrUnknown) {
		t.Fatalf("err = %v, want ErrUnknown", err)
	}
}
