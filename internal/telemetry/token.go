package telemetry

import (
	"bytes"
	"errors"
	"fmt"
	"os"
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
