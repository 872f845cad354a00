package auth

import (
	"errors"
	"fmt"
	"time"
)

// ErrInvalidCredentials is returned by [Service.IssueToken] when the
// username/password pair is wrong. The same error is returned for an unknown
// user and for a wrong password so that callers cannot probe usernames.
var ErrInvalidCredentials = errors.New("invalid username or password")

// ErrInvalidToken is the parent of every access- or refresh-token rejection.
// The concrete reason is one of the ErrToken* errors below, which wrap it, so
// errors.Is(err, ErrInvalidToken) holds for all of them and the message says
// which check failed (for example "invalid token: token is expired").
var ErrInvalidToken = errors.New("invalid token")

// Reasons a token is rejected. Each wraps [ErrInvalidToken].
var (
	// ErrTokenMissing: no Authorization: Bearer header was sent.
	ErrTokenMissing = fmt.Errorf("%w: token is missing", ErrInvalidToken)
	// ErrTokenMalformed: the token is not a well-formed JWT of ours.
	ErrTokenMalformed = fmt.Errorf("%w: token is malformed", ErrInvalidToken)
	// ErrTokenAlgorithm: the header names an algorithm other than HS256 (for
	// example "none").
	ErrTokenAlgorithm = fmt.Errorf("%w: signing method is invalid", ErrInvalidToken)
	// ErrTokenUnknownKey: the kid header names no key in the verification ring.
	ErrTokenUnknownKey = fmt.Errorf("%w: token signing key is unknown", ErrInvalidToken)
	// ErrTokenSignature: the signature does not match.
	ErrTokenSignature = fmt.Errorf("%w: signature is invalid", ErrInvalidToken)
	// ErrTokenExpired: exp (plus the allowed clock skew) is in the past.
	ErrTokenExpired = fmt.Errorf("%w: token is expired", ErrInvalidToken)
	// ErrTokenNotYetValid: nbf or iat (minus the allowed clock skew) is in the
	// future.
	ErrTokenNotYetValid = fmt.Errorf("%w: token is not valid yet", ErrInvalidToken)
	// ErrTokenIssuer: iss is not the configured issuer.
	ErrTokenIssuer = fmt.Errorf("%w: token issuer is invalid", ErrInvalidToken)
	// ErrTokenRevoked: the token's user no longer exists, or the refresh token
	// was revoked, already used, or issued before a password change.
	ErrTokenRevoked = fmt.Errorf("%w: token is revoked", ErrInvalidToken)
	// ErrTicketInvalid: an event-stream ticket is unknown, already used or
	// expired (see [TicketStore]).
	ErrTicketInvalid = fmt.Errorf("%w: ticket is unknown, used or expired", ErrInvalidToken)
)

// ErrForbidden is returned (wrapped, naming the role and the permission) when
// an authenticated principal lacks a permission, e.g.
// "forbidden: role viewer lacks permission jobs:write".
var ErrForbidden = errors.New("forbidden")

// ErrRateLimited is returned by [Service.IssueToken] when the client exceeded
// the token endpoint's rate limit. The returned error also carries the
// suggested wait; see [RetryAfter].
var ErrRateLimited = errors.New("too many requests")

// ErrBadRequest is returned (wrapped with the detail) for a token request that
// is not valid JSON, has unknown fields or wrong types, or misses fields.
var ErrBadRequest = errors.New("bad request")

// ErrBodyTooLarge wraps [ErrBadRequest] for a request body larger than the
// limit given to [ParseTokenRequest]; the HTTP layer may answer 413.
var ErrBodyTooLarge = fmt.Errorf("%w: request body too large", ErrBadRequest)

// ErrRefreshNotFound is returned by a [RefreshStore] when no (live) record
// exists for a refresh-token id.
var ErrRefreshNotFound = errors.New("refresh token not found")

// ErrRefreshReused is returned by [RefreshStore.Use] for a refresh token
// that was already exchanged: a replay, which revokes its family.
var ErrRefreshReused = errors.New("refresh token reused")

// ErrInvalidConfig is returned (wrapped with the detail) by [Config.Validate]
// and by loaders of users files and key rings.
var ErrInvalidConfig = errors.New("invalid auth configuration")

// rateLimitError carries the suggested Retry-After of a rate-limited request.
type rateLimitError struct {
	retryAfter time.Duration
}

func (e *rateLimitError) Error() string {
	return fmt.Sprintf("%s: retry after %s", ErrRateLimited, e.retryAfter)
}

func (e *rateLimitError) Unwrap() error { return ErrRateLimited }

// RetryAfter reports how long a rate-limited client should wait, rounded up
// to whole seconds (at least one) for a Retry-After header. ok is false when
// err is not a rate-limit error.
func RetryAfter(err error) (seconds int, ok bool) {
	var rl *rateLimitError
	if !errors.As(err, &rl) {
		return 0, false
	}
	s := int((rl.retryAfter + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return s, true
}

// UnauthorizedMessage renders a token error the way CCKM words it, e.g.
// "Unauthorized: Bearer token malformed: Token is expired", for the message
// field of a 401 body. Other errors give "Unauthorized: " plus their text.
func UnauthorizedMessage(err error) string {
	reasons := []struct {
		err  error
		text string
	}{
		{ErrTokenMissing, "Bearer token is missing"},
		{ErrTokenExpired, "Bearer token malformed: Token is expired"},
		{ErrTokenNotYetValid, "Bearer token malformed: Token is not valid yet"},
		{ErrTokenUnknownKey, "Bearer token malformed: Token signing key is unknown"},
		{ErrTokenAlgorithm, "Bearer token malformed: Signing method is invalid"},
		{ErrTokenSignature, "Bearer token malformed: Signature is invalid"},
		{ErrTokenIssuer, "Bearer token malformed: Token issuer is invalid"},
		{ErrTokenRevoked, "Bearer token malformed: Token is revoked"},
		{ErrTokenMalformed, "Bearer token malformed: Token is malformed"},
		{ErrInvalidCredentials, "Invalid username or password"},
		{ErrTicketInvalid, "Ticket is unknown, used or expired"},
	}
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return "Unauthorized: " + r.text
		}
	}
	if err == nil {
		return "Unauthorized"
	}
	return "Unauthorized: " + err.Error()
}
