package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/akvsync/akvsync/internal/arm"
	"github.com/akvsync/akvsync/internal/auth"
	"github.com/akvsync/akvsync/internal/connections"
	"github.com/akvsync/akvsync/internal/control"
	"github.com/akvsync/akvsync/internal/discovery"
)

// ErrBodyTooLarge is returned by the body parsers for a body over the size
// limit; the API answers 413.
var ErrBodyTooLarge = errors.New("request body too large")

// APIError is the JSON body of every error response, in CCKM's shape.
// Clients test codeDesc.
type APIError struct {
	Code     int    `json:"code"`
	CodeDesc string `json:"codeDesc"`
	Message  string `json:"message"`
}

// errorKind is the code and codeDesc of an HTTP status.
type errorKind struct {
	code int
	desc string
}

// errorKinds maps statuses to CCKM codes. 4, 14 and 16 are the values
// CipherTrust Manager uses; the others are akvsync's own (clients test the
// codeDesc prefix).
var errorKinds = map[int]errorKind{
	http.StatusMovedPermanently:            {18, "NCERRRedirect: Resource moved"},
	http.StatusTemporaryRedirect:           {18, "NCERRRedirect: Resource moved"},
	http.StatusPermanentRedirect:           {18, "NCERRRedirect: Resource moved"},
	http.StatusUnsupportedMediaType:        {19, "NCERRUnsupportedMediaType: Unsupported media type"},
	http.StatusRequestHeaderFieldsTooLarge: {20, "NCERRHeadersTooLarge: Request header fields too large"},
	http.StatusBadRequest:                  {4, "NCERRInvalidParamValue: Invalid parameter value"},
	http.StatusUnauthorized:                {2, "NCERRUnauthorized: Unauthorized"},
	http.StatusForbidden:                   {3, "NCERRForbidden: Forbidden"},
	http.StatusNotFound:                    {16, "NCERRResourceNotFound: Resource not found"},
	http.StatusMethodNotAllowed:            {5, "NCERRMethodNotAllowed: Method not allowed"},
	http.StatusConflict:                    {7, "NCERRConflict: Conflict"},
	http.StatusRequestEntityTooLarge:       {8, "NCERRRequestTooLarge: Request body too large"},
	http.StatusUnprocessableEntity:         {9, "NCERRUnprocessableEntity: Validation errors"},
	http.StatusTooManyRequests:             {10, "NCERRTooManyRequests: Too many requests"},
	http.StatusInternalServerError:         {14, "NCERRInternalServerError: unexpected error"},
	http.StatusBadGateway:                  {17, "NCERRBadGateway: Azure refused the request"},
	http.StatusServiceUnavailable:          {15, "NCERRServiceUnavailable: Service unavailable"},
}

// writeError writes a CCKM error body with the given status and message.
func writeError(w http.ResponseWriter, status int, message string) {
	k, ok := errorKinds[status]
	if !ok {
		k = errorKinds[http.StatusInternalServerError]
	}
	writeJSON(w, status, APIError{Code: k.code, CodeDesc: k.desc, Message: message})
}

// statusOf maps an error of the control plane, the parsers or auth to an
// HTTP status and the message to show. Internal errors are not shown.
func statusOf(err error) (int, string) {
	switch {
	case errors.Is(err, ErrBodyTooLarge), errors.Is(err, auth.ErrBodyTooLarge), errors.Is(err, connections.ErrTooLarge):
		return http.StatusRequestEntityTooLarge, err.Error()
	case errors.Is(err, control.ErrInvalid), errors.Is(err, auth.ErrBadRequest), errors.Is(err, connections.ErrInvalid),
		errors.Is(err, discovery.ErrInvalid):
		return http.StatusBadRequest, err.Error()
	case errors.Is(err, control.ErrNotFound), errors.Is(err, connections.ErrNotFound), errors.Is(err, discovery.ErrNotFound):
		return http.StatusNotFound, "Resource not found"
	case errors.Is(err, control.ErrConflict), errors.Is(err, connections.ErrConflict):
		return http.StatusConflict, err.Error()
	case errors.Is(err, control.ErrUnprocessable), errors.Is(err, connections.ErrUnprocessable), errors.Is(err, discovery.ErrUnprocessable):
		return http.StatusUnprocessableEntity, err.Error()
	case errors.Is(err, control.ErrUnavailable), errors.Is(err, connections.ErrUnavailable), errors.Is(err, discovery.ErrUnavailable):
		return http.StatusServiceUnavailable, err.Error()
	case errors.Is(err, arm.ErrThrottled):
		// Azure asked to come back later than the request could wait.
		return http.StatusServiceUnavailable, err.Error()
	case errors.Is(err, arm.ErrAzure):
		// Azure (ARM or Entra ID) refused, or could not be reached: the
		// message has its status and error code, never a token.
		return http.StatusBadGateway, err.Error()
	case errors.Is(err, auth.ErrInvalidToken), errors.Is(err, auth.ErrInvalidCredentials):
		return http.StatusUnauthorized, auth.UnauthorizedMessage(err)
	case errors.Is(err, auth.ErrForbidden):
		return http.StatusForbidden, "Forbidden: " + strings.TrimPrefix(err.Error(), auth.ErrForbidden.Error()+": ")
	case errors.Is(err, auth.ErrRateLimited):
		return http.StatusTooManyRequests, "Too many requests; retry later"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return http.StatusServiceUnavailable, "request timed out"
	default:
		return http.StatusInternalServerError, "internal error"
	}
}

// fail writes the error response for err, with Retry-After when the
// error says how long to wait, and records err for the request log.
func fail(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := statusOf(err)
	var ae *arm.Error
	if s, ok := auth.RetryAfter(err); ok {
		w.Header().Set("Retry-After", strconv.Itoa(s))
	} else if errors.As(err, &ae) && ae.RetryAfter > 0 && status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(ae.RetryAfter.Seconds()))))
	} else if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	if info := infoFrom(r.Context()); info != nil {
		info.err = err
	}
	writeError(w, status, msg)
}

// writeJSON writes v as JSON with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}
