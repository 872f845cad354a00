package azure

import (
	"net/http"
	"testing"

	akvsync "github.com/akvsync/akvsync/pkg/sync"
)

func TestOperationOf(t *testing.T) {
	for _, c := range []struct {
		method, path string
		want         akvsync.Operation
	}{
		{"GET", "/keys", akvsync.OpListKeys},
		{"GET", "/keys/", akvsync.OpListKeys},
		{"GET", "/keys/k1", akvsync.OpGetKey},
		{"GET", "/keys/k1/0123abcd", akvsync.OpGetKey},
		{"GET", "/keys/k1/versions", akvsync.OpListKeyVersions},
		{"GET", "/keys/keys", akvsync.OpGetKey},
		{"GET", "/keys/keys/versions", akvsync.OpListKeyVersions},
		{"GET", "/vaults/kv-1/keys", akvsync.OpListKeys},
		{"GET", "/vaults/kv-1/keys/k1/v1", akvsync.OpGetKey},
		{"POST", "/keys/k1/create", akvsync.OpOther},
		{"GET", "/deletedkeys", akvsync.OpOther},
		{"GET", "/secrets/s1", akvsync.OpOther},
		{"GET", "/", akvsync.OpOther},
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
