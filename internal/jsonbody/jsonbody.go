// Package jsonbody decodes HTTP request bodies strictly: one JSON object,
// known fields only, within a size limit, with error messages that name the
// offending field but never echo a value or the server's socket addresses.
package jsonbody

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"
)

var (
	// ErrTooLarge: the body is over the limit.
	ErrTooLarge = errors.New("request body too large")
	// ErrInvalid: the body is empty, not JSON, not one object, has an
	// unknown field or a value of the wrong type.
	ErrInvalid = errors.New("invalid request body")
	// ErrMediaType: the request's Content-Type is not JSON.
	ErrMediaType = errors.New("unsupported media type")
)

// CheckContentType accepts a JSON Content-Type (application/json, or any
// application/*+json, with parameters) or none, and refuses any other
// with an error wrapping [ErrMediaType].
func CheckContentType(ct string) error {
	if strings.TrimSpace(ct) == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && (mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")) {
		return nil
	}
	return fmt.Errorf("%w: the request body must be JSON: send Content-Type: application/json", ErrMediaType)
}

// CheckDuplicates refuses (with an [Error] of kind [ErrInvalid]) a JSON
// document with an object that names a member twice; for decoders other
// than [Decode], which checks it itself. Syntax errors are left to the
// decoder.
func CheckDuplicates(body []byte) error { return checkDuplicates(body) }

// checkDuplicates refuses an object, at any depth, that names a member
// twice: decoders disagree on which one wins, so a body means one thing.
func checkDuplicates(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	type frame struct {
		object bool
		keys   map[string]bool
		expect bool // the next token of an object is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return nil // the decoder proper reports syntax errors
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && top.expect {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				continue
			}
			key, _ := tok.(string)
			if top.keys[key] {
				return invalid("the request body names %q twice in one object", key)
			}
			top.keys[key] = true
			top.expect = false
			continue
		}
		if top != nil && top.object {
			top.expect = true // a value was read; a key comes next
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{object: true, keys: map[string]bool{}, expect: true})
		case json.Delim('['):
			stack = append(stack, &frame{})
		case json.Delim(']'):
			stack = stack[:len(stack)-1]
			if len(stack) > 0 && stack[len(stack)-1].object {
				stack[len(stack)-1].expect = true
			}
		}
	}
}

// Error is a decoding failure: Kind is ErrTooLarge or ErrInvalid, Msg the
// client-facing message (no values, no addresses).
type Error struct {
	Kind error
	Msg  string
	// Limit is the size limit, for ErrTooLarge.
	Limit int64
}

func (e *Error) Error() string { return e.Msg }

// Unwrap makes errors.Is(err, ErrTooLarge/ErrInvalid) hold.
func (e *Error) Unwrap() error { return e.Kind }

func invalid(format string, a ...any) error {
	return &Error{Kind: ErrInvalid, Msg: fmt.Sprintf(format, a...)}
}

// Decode reads at most max bytes of r and decodes exactly one JSON object
// into v, rejecting unknown fields. An empty body is an error unless
// emptyOK, when v is left as it is. r may be an http.MaxBytesReader.
func Decode(r io.Reader, max int64, v any, emptyOK bool) error {
	body, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &Error{Kind: ErrTooLarge, Msg: fmt.Sprintf("the limit is %d bytes", mbe.Limit), Limit: mbe.Limit}
		}
		// The read error names the server's socket addresses: say what
		// happened without it.
		return invalid("the request body could not be read (the client stopped sending, or the read timed out)")
	}
	if int64(len(body)) > max {
		return &Error{Kind: ErrTooLarge, Msg: fmt.Sprintf("the limit is %d bytes", max), Limit: max}
	}
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		if emptyOK {
			return nil
		}
		return invalid("a JSON request body is required")
	}
	if body[0] != '{' {
		if json.Valid(body) {
			return invalid("the request body must be a JSON object")
		}
		return invalid("the request body is not valid JSON")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return invalid("%s", Describe(err))
	}
	if err := checkDuplicates(body); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return invalid("the request body must be a single JSON object")
	}
	return nil
}

// Describe turns a JSON decoding error into a message naming the field,
// never quoting a value.
func Describe(err error) string {
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
		return fmt.Sprintf("%s must be %s, not %s", typ.Field, TypeName(typ.Type), typ.Value)
	}
	if _, field, ok := strings.Cut(err.Error(), "unknown field "); ok {
		return "unknown field " + field
	}
	return "the request body is not valid JSON"
}

// TypeName names a Go type the way a JSON client thinks of it.
func TypeName(t reflect.Type) string {
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
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array of " + strings.TrimPrefix(strings.TrimPrefix(TypeName(t.Elem()), "a "), "an ") + "s"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "a " + t.String()
}
