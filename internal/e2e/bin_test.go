package e2e

import (
	"testing"

	"github.com/akvsync/akvsync/internal/testbin"
)

// bin returns the directory of the binaries these tests run, up to date
// (testbin; the test is skipped under -short).
func bin(t *testing.T) string {
	t.Helper()
	return testbin.Dir(t, testbin.API, testbin.Worker, testbin.NATSServer)
}
