package connections

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
)

// DefaultMaxBodyBytes bounds a request body when the caller gives no
// limit. A certificate with its key and a CA fit comfortably.
const DefaultMaxBodyBytes = 256 << 10

// ParseCreate decodes and validates the body of a create request, of at
// most max bytes (max <= 0: [DefaultMaxBodyBytes]). The body must be one
// JSON object with only the connection fields, of the right types; then
// the defaults are filled (credential type inferred, cloud AzureCloud,
// products ["cckm"]) and every field is validated. Errors wrap
// [ErrTooLarge] or [ErrInvalid] and never quote a secret.
func ParseCreate(r io.Reader, max int64) (CreateRequest, error) {
	var req CreateRequest
	if err := decodeBody(r, max, &req, false); err != nil {
		return CreateRequest{}, err
	}
	req = req.normalized()
	if err := validate(req.Settings, req.secrets()); err != nil {
		return CreateRequest{}, err
	}
	return req, nil
}

// ParsePatch decodes the body of a patch request, of at most max bytes,
// strictly, and checks what can be checked without the stored connection
// (at least one field; the name's shape; no empty secret). The registry
// validates the patched connection as a whole.
func ParsePatch(r io.Reader, max int64) (PatchRequest, error) {
	var req PatchRequest
	if err := decodeBody(r, max, &req, false); err != nil {
		return PatchRequest{}, err
	}
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

// decodeBody reads at most max bytes of one JSON object into v, strictly.
func decodeBody(r io.Reader, max int64, v any, emptyOK bool) error {
	if max <= 0 {
		max = DefaultMaxBodyBytes
	}
	body, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return newErr(ErrTooLarge, "request body too large: the limit is %d bytes", max)
		}
		// The read error names the server's socket addresses: say what
		// happened without it.
		return invalidf("the request body could not be read (the client stopped sending, or the read timed out)")
	}
	if int64(len(body)) > max {
		return newErr(ErrTooLarge, "request body too large: the limit is %d bytes", max)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if emptyOK {
			return nil
		}
		return invalidf("a JSON request body is required")
	}
	if body = bytes.TrimSpace(body); body[0] != '{' {
		return invalidf("the request body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return invalidf("%s", describeJSONError(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return invalidf("the request body must be a single JSON object")
	}
	return nil
}

// describeJSONError turns a decoding error into a message naming the
// field, never quoting a value.
func describeJSONError(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("the request body is not valid JSON (at byte %d)", syn.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "the request body is truncated JSON"
	case errors.As(err, &typ):
		if typ.Field == "" {
			return "the request body must be a JSON object"
		}
		return fmt.Sprintf("%s must be %s, not %s", typ.Field, jsonTypeName(typ.Type), typ.Value)
	}
	msg := err.Error()
	if _, field, ok := strings.Cut(msg, "unknown field "); ok {
		return "unknown field " + field
	}
	return "the request body is not valid JSON"
}

// jsonTypeName names a Go type the way a JSON client thinks of it.
func jsonTypeName(t reflect.Type) string {
	if t == nil {
		return "a value of another type"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Bool:
		return "a boolean"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "an array of " + strings.TrimPrefix(strings.TrimPrefix(jsonTypeName(t.Elem()), "a "), "an ") + "s"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "a " + t.String()
}
