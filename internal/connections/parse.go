package connections

import (
	"errors"
	"io"

	"github.com/akvsync/akvsync/internal/apierr"
	"github.com/akvsync/akvsync/internal/jsonbody"
)

// DefaultMaxBodyBytes bounds a request body when the caller gives no
// limit. A certificate with its key and a CA fit comfortably.
const DefaultMaxBodyBytes = 256 << 10

// ParseCreate decodes and validates the body of a create request, of at
// most max bytes (max <= 0: [DefaultMaxBodyBytes]). The body must be one
// JSON object with only the connection fields (read-only ones are
// accepted and ignored), of the right types; null and empty values are
// absent; then the defaults are filled (credential type inferred, cloud
// AzureCloud, products ["cckm"], cert_duration 730) and every field is
// validated. Errors wrap
// [ErrTooLarge] or [ErrInvalid] and never quote a secret.
func ParseCreate(r io.Reader, max int64) (CreateRequest, error) {
	var req CreateRequest
	if err := decodeBody(r, max, &req, false); err != nil {
		return CreateRequest{}, err
	}
	req = req.normalized()
	if err := req.check(); err != nil {
		return CreateRequest{}, err
	}
	if err := validate(req.Settings, req.secrets(), req.generates()); err != nil {
		return CreateRequest{}, err
	}
	return req, nil
}

// ParsePatch decodes the body of a patch request, of at most max bytes,
// strictly, drops the empty values that mean "unchanged" (see
// [PatchRequest]) and checks what can be checked without the stored
// connection (at least one field; the name's shape; no contradiction). The registry
// validates the patched connection as a whole.
func ParsePatch(r io.Reader, max int64) (PatchRequest, error) {
	var req PatchRequest
	if err := decodeBody(r, max, &req, false); err != nil {
		return PatchRequest{}, err
	}
	req = req.normalized()
	if err := req.checkShape(); err != nil {
		return PatchRequest{}, err
	}
	return req, nil
}

// ParseTest decodes the optional body of a test request: empty, or
// {"vault_uri": "https://…"}.
func ParseTest(r io.Reader, max int64) (TestRequest, error) {
	var req TestRequest
	if err := decodeBody(r, max, &req, true); err != nil {
		return TestRequest{}, err
	}
	return req, nil
}

// decodeBody reads at most max bytes of one JSON object into v, strictly
// (see jsonbody.Decode), mapping its errors to this package's.
func decodeBody(r io.Reader, max int64, v any, emptyOK bool) error {
	if max <= 0 {
		max = DefaultMaxBodyBytes
	}
	var je *jsonbody.Error
	switch err := jsonbody.Decode(r, max, v, emptyOK); {
	case err == nil:
		return nil
	case errors.As(err, &je) && errors.Is(err, jsonbody.ErrTooLarge):
		return apierr.New(ErrTooLarge, "request body too large: %s", je.Msg)
	case je != nil:
		return invalidf("%s", je.Msg)
	default:
		return invalidf("the request body is not valid JSON")
	}
}
