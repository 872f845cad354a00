package azure

import (
	"net/http"
	"testing"
)

func TestOperationOf(t *testing.T) {
	for _, c := range []struct {
		method, path string
		want         Operation
	}{
		{"GET", "/keys", OpListKeys},
		{"GET", "/keys/", OpListKeys},
		{"GET", "/keys/k1", OpGetKey},
		{"GET", "/keys/k1/0123abcd", OpGetKey},
		{"GET", "/keys/k1/versions", OpListKeyVersions},
		{"GET", "/keys/keys", OpGetKey},
		{"GET", "/keys/keys/versions", OpListKeyVersions},
		{"GET", "/vaults/kv-1/keys", OpListKeys},
		{"GET", "/vaults/kv-1/keys/k1/v1", OpGetKey},
		{"POST", "/keys/k1/create", OpOther},
		{"GET", "/deletedkeys", OpOther},
		{"GET", "/secrets/s1", OpOther},
		{"GET", "/", OpOther},
	} {
		if got := OperationOf(c.method, c.path); got != c.want {
			t.Errorf("OperationOf(%s %s) = %s, want %s", c.method, c.path, got, c.want)
		}
	}
}

func TestRetryable(t *testing.T) {
	for status, want := range map[int]bool{200: false, 401: false, 404: false, 429: true, 500: true, 503: true} {
		if got := retryable(status, nil); got != want {
			t.Errorf("retryable(%d) = %v", status, got)
		}
	}
	if !retryable(0, http.ErrHandlerTimeout) {
		t.Error("an unanswered attempt is retried")
	}
}
