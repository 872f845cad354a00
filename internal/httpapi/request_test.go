package httpapi

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/akvsync/akvsync/pkg/events"
)

// SendTestRequest sends one request with an optional bearer token and JSON
// body ("" for none) and returns the status, headers and body. The body of
// an event stream, which never ends, is not read. Shared by this package's
// tests and the external test package's.
func SendTestRequest(ctx context.Context, t *testing.T, c *http.Client, method, url, token, body string) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return resp.StatusCode, resp.Header, nil
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// CountRecords counts a bucket's records for the tests' state checks: in
// the jobs bucket only job headers (plan chunks and vault records have
// dotted keys).
func CountRecords(bucket string, keys []string) int {
	if bucket != events.BucketJobs {
		return len(keys)
	}
	n := 0
	for _, k := range keys {
		if !strings.Contains(k, ".") {
			n++
		}
	}
	return n
}
