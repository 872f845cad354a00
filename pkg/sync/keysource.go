package sync

import (
	"context"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
)

// KeySource opens the Key Vault client of a vault. The syncer calls it once
// per vault sync; internal/azure implements it over the connection registry
// and the Azure SDK, and any implementation that returns a working azkeys
// client will do (a test can point one at pkg/akvemu).
//
// connection is the vault's connection name (events.Vault.Connection) and
// vaultURI its URI. The client must pace every HTTP attempt it sends,
// retries included, with throttle: Wait before sending, Observe with the
// answer's status. The syncer's throttle is also an AttemptObserver (the
// vault's request statistics come from it) and a RetryAfterObserver; a
// client should tell it each attempt and each 429's Retry-After. A client
// that sends a request whose context carries an api-version
// (WithAPIVersion) with that api-version learns the size of symmetric
// keys; one that does not leaves them unknown.
//
// KeysClient may return a client it built before for the same vault, with
// another throttle: the syncer puts its throttle in the context of every
// request it sends (WithThrottle), and a shared client must pace and tell
// that one instead of its own.
//
// An error wrapping ErrUnknownConnection or ErrPermanent fails the vault;
// a transient NATS error (IsTransient) is retried; any other error fails
// this attempt of the vault's task, which is redelivered.
type KeySource interface {
	KeysClient(ctx context.Context, connection, vaultURI string, throttle Throttle) (*azkeys.Client, error)
}

// Throttle paces the requests to one vault. Wait blocks until a request
// may be sent; Observe is told every response status (429 slows it down).
type Throttle interface {
	Wait(ctx context.Context) error
	Observe(status int)
}

// AttemptObserver is an optional extension of Throttle: it is told every
// attempt once it has been answered (or has failed).
type AttemptObserver interface {
	ObserveAttempt(a Attempt)
}

// RetryAfterObserver is an optional extension of Throttle: it is told the
// delay a 429 answer asked for (Retry-After, retry-after-ms or
// x-ms-retry-after-ms), so it can hold other requests that long too. The
// client's retry policy already waits that long before retrying the
// request that was throttled.
type RetryAfterObserver interface {
	ObserveRetryAfter(d time.Duration)
}

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

// Attempt is one HTTP attempt of a Key Vault request as the client's
// throttle saw it: every attempt, retries and the authentication
// challenge's unauthenticated first request included.
type Attempt struct {
	Operation Operation
	// Status is the answer's HTTP status; 0 when there was none (a
	// transport error, a timeout, a cancelled request).
	Status int
	// Retry is set for an attempt that follows a throttled (429), failed
	// (5xx) or unanswered attempt of the same request: a retry by the
	// client's retry policy.
	Retry bool
	// Wait is how long the throttle held the attempt before it was sent.
	Wait time.Duration
	// Duration is from sending the attempt to its answer's headers.
	Duration time.Duration
}

// KeySizeAPIVersion is the first Key Vault api-version whose JWK of a
// symmetric (oct-HSM) key carries key_size. Earlier versions, the SDK's
// default among them, return no size for symmetric keys: their material is
// never returned.
const KeySizeAPIVersion = "2026-01-01-preview"

type apiVersionKey struct{}

// WithAPIVersion makes the Key Vault requests sent with ctx (by a
// KeySource's client) use api-version v instead of the SDK's.
func WithAPIVersion(ctx context.Context, v string) context.Context {
	return context.WithValue(ctx, apiVersionKey{}, v)
}

// APIVersion is the api-version WithAPIVersion put in ctx, or "".
func APIVersion(ctx context.Context) string {
	v, _ := ctx.Value(apiVersionKey{}).(string)
	return v
}

// throttleKey is the context key of WithThrottle.
type throttleKey struct{}

// WithThrottle makes the Key Vault requests sent with ctx (by a
// KeySource's client) use t instead of the throttle the client was built
// with.
func WithThrottle(ctx context.Context, t Throttle) context.Context {
	return context.WithValue(ctx, throttleKey{}, t)
}

// ThrottleFrom is the throttle WithThrottle put in ctx, if any.
func ThrottleFrom(ctx context.Context) (Throttle, bool) {
	t, ok := ctx.Value(throttleKey{}).(Throttle)
	return t, ok && t != nil
}
