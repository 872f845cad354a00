package jsonbody_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/akvsync/akvsync/internal/jsonbody"
)

type body struct {
	Name  string   `json:"name"`
	Count int      `json:"count"`
	Tags  []string `json:"tags"`
	Flag  *bool    `json:"flag"`
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name, in string
		emptyOK  bool
		kind     error
		msg      string
	}{
		{name: "valid", in: `{"name":"a","count":2}`},
		{name: "empty allowed", in: " ", emptyOK: true},
		{name: "empty refused", in: "", kind: jsonbody.ErrInvalid, msg: "a JSON request body is required"},
		{name: "array", in: `["a"]`, kind: jsonbody.ErrInvalid, msg: "must be a JSON object"},
		{name: "not json", in: `name=a`, kind: jsonbody.ErrInvalid, msg: "not valid JSON"},
		{name: "syntax", in: `{"name":}`, kind: jsonbody.ErrInvalid, msg: "not valid JSON (at byte"},
		{name: "truncated", in: `{"name":"a"`, kind: jsonbody.ErrInvalid, msg: "truncated"},
		{name: "unknown field", in: `{"nme":"a"}`, kind: jsonbody.ErrInvalid, msg: `unknown field "nme"`},
		{name: "wrong type names the field, not the value", in: `{"count":"seven-secret"}`, kind: jsonbody.ErrInvalid, msg: "count must be a number, not string"},
		{name: "pointer field", in: `{"flag":"yes"}`, kind: jsonbody.ErrInvalid, msg: "flag must be a boolean"},
		{name: "array field", in: `{"tags":"x"}`, kind: jsonbody.ErrInvalid, msg: "tags must be an array of strings"},
		{name: "two objects", in: `{"name":"a"}{"name":"b"}`, kind: jsonbody.ErrInvalid, msg: "single JSON object"},
		{name: "too large", in: `{"name":"` + strings.Repeat("a", 100) + `"}`, kind: jsonbody.ErrTooLarge, msg: "the limit is 64 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v body
			err := jsonbody.Decode(strings.NewReader(tt.in), 64, &v, tt.emptyOK)
			if tt.kind == nil {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if !errors.Is(err, tt.kind) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("err = %v, want %v containing %q", err, tt.kind, tt.msg)
			}
			if strings.Contains(err.Error(), "seven-secret") {
				t.Fatal("the message echoes a value")
			}
		})
	}
}

func TestDecodeMaxBytesReader(t *testing.T) {
	rec := httptest.NewRecorder()
	r := http.MaxBytesReader(rec, httptestBody(`{"name":"`+strings.Repeat("a", 100)+`"}`), 32)
	var v body
	err := jsonbody.Decode(r, 1<<20, &v, false)
	var je *jsonbody.Error
	if !errors.Is(err, jsonbody.ErrTooLarge) || !errors.As(err, &je) || je.Limit != 32 || je.Msg != "the limit is 32 bytes" {
		t.Fatalf("err = %#v", err)
	}
}

func httptestBody(s string) *readCloser { return &readCloser{strings.NewReader(s)} }

type readCloser struct{ *strings.Reader }

func (readCloser) Close() error { return nil }

// Issue 12, finding 4: a member named twice is refused, at any depth.
func TestDuplicateKeys(t *testing.T) {
	type inner struct {
		B int `json:"b"`
	}
	type body struct {
		A      string            `json:"a"`
		Inner  inner             `json:"inner"`
		Labels map[string]string `json:"labels"`
		List   []inner           `json:"list"`
	}
	for _, in := range []string{
		`{"a":"x","a":"y"}`,
		`{"inner":{"b":1,"b":2}}`,
		`{"labels":{"k":"1","k":"2"}}`,
		`{"list":[{"b":1},{"b":1,"b":2}]}`,
		`{"inner":{"b":1},"a":"x","inner":{"b":2}}`,
	} {
		var v body
		err := jsonbody.Decode(strings.NewReader(in), 1<<10, &v, false)
		if !errors.Is(err, jsonbody.ErrInvalid) || !strings.Contains(err.Error(), "twice") {
			t.Errorf("%s: %v", in, err)
		}
	}
	for _, in := range []string{
		`{"a":"x","inner":{"b":1},"labels":{"k":"1","K":"2"},"list":[{"b":1},{"b":1}]}`,
		`{"list":[],"inner":{}}`,
	} {
		var v body
		if err := jsonbody.Decode(strings.NewReader(in), 1<<10, &v, false); err != nil {
			t.Errorf("%s: %v", in, err)
		}
	}
}

func TestCheckContentType(t *testing.T) {
	for _, ok := range []string{"", "application/json", "application/json; charset=utf-8", "Application/JSON", "application/merge-patch+json"} {
		if err := jsonbody.CheckContentType(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/xml", "json", "application/jsonx"} {
		if err := jsonbody.CheckContentType(bad); !errors.Is(err, jsonbody.ErrMediaType) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
