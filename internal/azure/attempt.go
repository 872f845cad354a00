package azure

import (
	"net/http"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// Operation names a Key Vault data-plane operation in metrics and job
// statistics. The set is closed, so metric label values stay bounded.
type Operation string

// The operations akvsync tells apart; anything else is OpOther.
const (
	OpListKeys        Operation = "list_keys"
	OpListKeyVersions Operation = "list_key_versions"
	OpGetKey          Operation = "get_key"
	OpOther           Operation = "other"
)

// Operations lists every Operation.
var Operations = []Operation{OpListKeys, OpListKeyVersions, OpGetKey, OpOther}

// OperationOf classifies a Key Vault request by method and URL path. The
// path may carry a prefix before the vault's /keys collection (an emulator
// serving vaults under paths): the first "keys" segment followed by at
// most two segments is the collection.
func OperationOf(method, path string) Operation {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	for i, s := range segs {
		rest := segs[i+1:]
		if s != "keys" || len(rest) > 2 {
			continue
		}
		if method != http.MethodGet {
			return OpOther
		}
		switch {
		case len(rest) == 0:
			return OpListKeys
		case len(rest) == 2 && rest[1] == "versions":
			return OpListKeyVersions
		default:
			return OpGetKey
		}
	}
	return OpOther
}

// Attempt is one HTTP attempt of a Key Vault request as the throttle
// policy saw it: every attempt, retries and the authentication
// challenge's unauthenticated first request included.
type Attempt struct {
	Operation Operation
	// Status is the answer's HTTP status; 0 when there was none (a
	// transport error, a timeout, a cancelled request).
	Status int
	// Retry is set for an attempt that follows a throttled (429), failed
	// (5xx) or unanswered attempt of the same request: a retry by the
	// SDK's retry policy.
	Retry bool
	// Wait is how long the throttle held the attempt before it was sent.
	Wait time.Duration
	// Duration is from sending the attempt to its answer's headers.
	Duration time.Duration
}

// AttemptObserver is an optional extension of Throttle: it is told every
// attempt once it has been answered (or has failed).
type AttemptObserver interface {
	ObserveAttempt(a Attempt)
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
