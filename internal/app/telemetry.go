package app

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"github.com/akvsync/akvsync/pkg/events"
)

// MinMetricsTokenLen is the shortest static metrics token accepted.
const MinMetricsTokenLen = 32

// ErrMetricsToken reports an unusable --metrics-token-file.
var ErrMetricsToken = errors.New("metrics token file")

// LoadMetricsToken reads the static bearer token of /metrics from path
// (nil for ""): the file's content without surrounding white space, at
// least MinMetricsTokenLen bytes. The token itself never appears in an
// error.
func LoadMetricsToken(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	raw, err := os.ReadFile(path) // #nosec G304 -- path from the operator's own --metrics-token-file flag
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMetricsToken, err)
	}
	tok := bytes.TrimSpace(raw)
	if len(tok) < MinMetricsTokenLen {
		return nil, fmt.Errorf("%w %s: the token must be at least %d characters", ErrMetricsToken, path, MinMetricsTokenLen)
	}
	if bytes.ContainsAny(tok, " \t\r\n") {
		return nil, fmt.Errorf("%w %s: the token must be one line without spaces", ErrMetricsToken, path)
	}
	return tok, nil
}

// LoadPrices reads the Azure price table from a JSON file (see
// events.ParsePrices); "" gives events.DefaultPrices.
func LoadPrices(path string) (events.Prices, error) {
	if path == "" {
		return events.DefaultPrices(), nil
	}
	f, err := os.Open(path) // #nosec G304 -- path from the operator's own --azure-prices flag
	if err != nil {
		return events.Prices{}, fmt.Errorf("azure prices: %w", err)
	}
	defer func() { _ = f.Close() }()
	p, err := events.ParsePrices(f)
	if err != nil {
		return events.Prices{}, fmt.Errorf("azure prices %s: %w", path, err)
	}
	return p, nil
}
