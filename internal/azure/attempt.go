package azure

import (
	"net/http"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	akvsync "github.com/akvsync/akvsync/pkg/sync"
)

// OperationOf classifies a Key Vault request by method and URL path. The
// path may carry a prefix before the vault's /keys collection (an emulator
// serving vaults under paths): the first "keys" segment followed by at
// most two segments is the collection.
func OperationOf(method, path string) akvsync.Operation {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	for i, s := range segs {
		rest := segs[i+1:]
		if s != "keys" || len(rest) > 2 {
			continue
		}
		if method != http.MethodGet {
			return akvsync.OpOther
		}
		switch {
		case len(rest) == 0:
			return akvsync.OpListKeys
		case len(rest) == 2 && rest[1] == "versions":
			return akvsync.OpListKeyVersions
		default:
			return akvsync.OpGetKey
		}
	}
	return akvsync.OpOther
}

// attemptState is shared by the attempts of one request (a per-call
// operation value), so an attempt knows whether it retries.
type attemptState struct {
	retryNext bool
}

// attemptPolicy runs once per call, before the retry policy: it gives the
// call its attemptState.
type attemptPolicy struct{}

func (attemptPolicy) Do(req *policy.Request) (*http.Response, error) {
	req.SetOperationValue(&attemptState{})
	return req.Next()
}

// retryable reports an attempt the SDK's retry policy retries.
func retryable(status int, err error) bool {
	return err != nil || status == http.StatusTooManyRequests || status >= 500
}
