package httpapi_test

import (
	"net/http"
	"testing"

	"github.com/akvsync/akvsync/pkg/events"
)

func TestKeysWithoutWorkersAreUnavailable(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for _, path := range []string{
		keysPath,
		keysPath + "/?key_vault=vault-a&enabled=true&gone=false&key_size=2048&sort=-createdAt&limit=-1",
		keysPath + "/" + events.NewID(),
	} {
		t.Run(path, func(t *testing.T) {
			r := e.as(t, "victor", "GET", path, "")
			r.wantError(t, http.StatusServiceUnavailable, "NCERRServiceUnavailable", "no worker is answering")
		})
	}
}

func TestKeysBadFilters(t *testing.T) {
	t.Parallel()
	e := setup(t)
	tests := []struct{ query, param string }{
		{"enabled=maybe", "enabled"},
		{"gone=1", "gone"},
		{"key_size=abc", "key_size"},
		{"key_size=-1", "key_size"},
		{"limit=-5", "limit"},
		{"limit=0", "limit"},
		{"skip=-1", "skip"},
		{"sort=bogus", "sort"},
		{"key_name=a&key_name=b", "key_name"},
		{"algorithm=RSA", "algorithm"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			e.as(t, "victor", "GET", keysPath+"?"+tt.query, "").
				wantError(t, http.StatusBadRequest, "NCERRInvalidParamValue", tt.param)
		})
	}
}

func TestKeyMalformedIDIsNotFound(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.as(t, "victor", "GET", keysPath+"/not-an-id", "").wantError(t, http.StatusNotFound, "NCERRResourceNotFound", "Resource not found")
}
