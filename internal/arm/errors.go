package arm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/akvsync/akvsync/internal/apierr"
	"github.com/akvsync/akvsync/internal/azure"
)

// Sentinel errors. Every error of this package wraps one of them, a
// sentinel of package azure (an unusable connection) or a context error.
var (
	// ErrInvalid: an argument is malformed (a nextLink that is not a
	// continuation of the same list, a bad subscription id or page size).
	ErrInvalid = errors.New("arm: invalid request")
	// ErrAzure: Azure refused the request, Entra ID refused the token, or
	// Azure could not be reached; [*Error] says which.
	ErrAzure = errors.New("arm: Azure refused the request")
	// ErrThrottled: Azure answered 429 or 503 and asked to come back
	// later ([*Error].RetryAfter), later than the request's deadline
	// allowed to wait. It also wraps ErrAzure.
	ErrThrottled = errors.New("arm: Azure is throttling requests")
)

// MaxMessageLen bounds the Azure message an [*Error] carries.
const MaxMessageLen = 512

// Error is a failed Azure call, as Azure reported it.
type Error struct {
	// Op says what was asked: "list subscriptions",
	// "list Microsoft.KeyVault/vaults of subscription …", "get a token".
	Op string
	// Status is the HTTP status of Azure's answer, 0 without one.
	Status int
	// Code is Azure's error code: ARM's error.code (AuthorizationFailed,
	// SubscriptionNotFound, …) or Entra ID's error (invalid_client, …).
	Code string
	// Message is Azure's message, on one line, at most MaxMessageLen
	// bytes; for a transport failure, the error text.
	Message string
	// RetryAfter is how long Azure asked to wait (429/503), or zero.
	RetryAfter time.Duration

	throttled bool
	cause     error
}

// Error implements error, e.g. "list subscriptions: Azure answered 403
// AuthorizationFailed: The client … does not have authorization …".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Op)
	b.WriteString(": ")
	switch {
	case e.Status == 0:
		b.WriteString("Azure could not be reached")
	case e.Code != "":
		fmt.Fprintf(&b, "Azure answered %d %s", e.Status, e.Code)
	default:
		fmt.Fprintf(&b, "Azure answered %d %s", e.Status, http.StatusText(e.Status))
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter.Round(time.Millisecond))
	}
	return b.String()
}

// Unwrap makes errors.Is(err, ErrAzure) (and ErrThrottled) hold, and
// reaches the SDK's error.
func (e *Error) Unwrap() []error {
	errs := []error{ErrAzure}
	if e.throttled {
		errs = append(errs, ErrThrottled)
	}
	if e.cause != nil {
		errs = append(errs, e.cause)
	}
	return errs
}

// invalidf returns an error wrapping ErrInvalid whose text is the message
// alone, for clients.
func invalidf(format string, args ...any) error { return apierr.New(ErrInvalid, format, args...) }

// describe turns an SDK error into an [*Error]. Context errors and this
// package's own errors are returned as they are.
func describe(op string, err error) error {
	if err == nil {
		return nil
	}
	var own *Error
	if errors.As(err, &own) || errors.Is(err, ErrInvalid) {
		return err
	}
	var afe *azidentity.AuthenticationFailedError
	if errors.As(err, &afe) {
		e := &Error{Op: "get a token for " + op, Code: "AuthenticationFailed", Message: "Entra ID refused the connection's credential", cause: err}
		if afe.RawResponse != nil {
			e.Status = afe.RawResponse.StatusCode
			var body struct {
				Error       string `json:"error"`
				Description string `json:"error_description"`
			}
			if b, perr := runtime.Payload(afe.RawResponse); perr == nil && json.Unmarshal(b, &body) == nil && body.Error != "" {
				e.Code = body.Error
				if body.Description != "" {
					e.Message = body.Description
				}
			}
		}
		e.Message = oneLine(e.Message)
		return e
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		e := &Error{Op: op, Status: re.StatusCode, Code: re.ErrorCode, cause: err}
		if re.RawResponse != nil {
			var body struct {
				Error struct {
					Code    string `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			}
			if b, perr := runtime.Payload(re.RawResponse); perr == nil && json.Unmarshal(b, &body) == nil {
				if body.Error.Code != "" {
					e.Code = body.Error.Code
				}
				e.Message = oneLine(body.Error.Message)
			}
			if e.Status == http.StatusTooManyRequests || e.Status == http.StatusServiceUnavailable {
				e.throttled = true
				e.RetryAfter = azure.RetryAfter(re.RawResponse.Header, time.Now())
			}
		}
		return e
	}
	if isContextError(err) {
		return err
	}
	// No answer: DNS, TLS, a refused connection, a per-try timeout, or a
	// credential that could not even ask (managed identity unavailable).
	return &Error{Op: op, Message: oneLine(err.Error()), cause: err}
}

func isContextError(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// oneLine keeps the first line of s, at most MaxMessageLen bytes.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = strings.TrimSpace(s[:i])
	}
	if len(s) > MaxMessageLen {
		cut := MaxMessageLen
		for cut > 0 && !utf8RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }
