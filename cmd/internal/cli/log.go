package cli

import (
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"
)

// NewLogger returns a JSON zerolog logger at level ("debug", "info",
// "warn", "error"); console makes it human-readable instead.
func NewLogger(w io.Writer, level string, console bool, service string) (zerolog.Logger, error) {
	if w == nil {
		w = os.Stderr
	}
	lvl, err := zerolog.ParseLevel(level)
	if err != nil {
		return zerolog.Nop(), err
	}
	if console {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Str("service", service).Logger(), nil
}
