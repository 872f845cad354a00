package auth

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestParseTokenRequest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		body    string
		max     int64
		want    TokenRequest
		wantErr error
		msg     string // substring of the error
	}{
		{name: "password grant", body: `{"grant_type":"password","username":"a","password":"p"}`, want: TokenRequest{GrantType: "password", Username: "a", Password: "p"}},
		{name: "no grant_type is a password grant", body: `{"username":"a","password":"p"}`, want: TokenRequest{Username: "a", Password: "p"}},
		{name: "refresh grant", body: `{"grant_type":"refresh_token","refresh_token":"r"}`, want: TokenRequest{GrantType: "refresh_token", RefreshToken: "r"}},
		{name: "CipherTrust root domain accepted", body: `{"username":"a","password":"p","domain":"root","auth_domain":"root","renew_refresh_token":true}`, want: TokenRequest{Username: "a", Password: "p", Domain: "root", AuthDomain: "root", RenewRefreshToken: true}},
		{name: "other domain refused", body: `{"username":"a","password":"p","domain":"sales"}`, wantErr: ErrBadRequest, msg: "root"},
		{name: "unknown field", body: `{"username":"a","password":"p","admin":true}`, wantErr: ErrBadRequest, msg: `unknown field "admin"`},
		{name: "wrong type", body: `{"username":1,"password":"p"}`, wantErr: ErrBadRequest, msg: "field username must be a string, not number"},
		{name: "wrong type bool", body: `{"username":"a","password":"p","renew_refresh_token":"yes"}`, wantErr: ErrBadRequest, msg: "renew_refresh_token must be a boolean"},
		{name: "array body", body: `[]`, wantErr: ErrBadRequest, msg: "JSON object"},
		{name: "string body", body: `"x"`, wantErr: ErrBadRequest, msg: "JSON object"},
		{name: "syntax error", body: `{"username":`, wantErr: ErrBadRequest, msg: "truncated"},
		{name: "garbage", body: `{x}`, wantErr: ErrBadRequest, msg: "invalid JSON"},
		{name: "trailing data", body: `{"username":"a","password":"p"} {}`, wantErr: ErrBadRequest, msg: "trailing"},
		{name: "empty body", body: ``, wantErr: ErrBadRequest, msg: "empty"},
		{name: "too large", body: `{"username":"a","password":"` + strings.Repeat("x", 100) + `"}`, max: 64, wantErr: ErrBodyTooLarge},
		{name: "missing password", body: `{"username":"a"}`, wantErr: ErrBadRequest, msg: "required"},
		{name: "missing refresh token", body: `{"grant_type":"refresh_token"}`, wantErr: ErrBadRequest, msg: "refresh_token is required"},
		{name: "mixed grants", body: `{"grant_type":"refresh_token","refresh_token":"r","username":"a"}`, wantErr: ErrBadRequest, msg: "not allowed"},
		{name: "refresh token in password grant", body: `{"username":"a","password":"p","refresh_token":"r"}`, wantErr: ErrBadRequest, msg: "not allowed"},
		{name: "unsupported grant", body: `{"grant_type":"client_credentials"}`, wantErr: ErrBadRequest, msg: "grant_type"},
		{name: "null values are absent", body: `{"username":null,"password":"p"}`, wantErr: ErrBadRequest, msg: "required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			max := tt.max
			if max == 0 {
				max = DefaultMaxTokenRequestBytes
			}
			got, err := ParseTokenRequest(strings.NewReader(tt.body), max)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.msg) {
					t.Fatalf("err %q lacks %q", err, tt.msg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseTokenRequestBehindMaxBytesReader(t *testing.T) {
	t.Parallel()
	body := `{"username":"a","password":"` + strings.Repeat("x", 200) + `"}`
	rec := httptest.NewRecorder()
	r := http.MaxBytesReader(rec, io.NopCloser(strings.NewReader(body)), 64)
	_, err := ParseTokenRequest(r, 64)
	if !errors.Is(err, ErrBodyTooLarge) {
		t.Fatalf("err = %v, want ErrBodyTooLarge", err)
	}
}

func TestParseTokenRequestErrorsDoNotEchoSecrets(t *testing.T) {
	t.Parallel()
	_, err := ParseTokenRequest(strings.NewReader(`{"username":"a","password":"hunter2-secret","x":1}`), 1024)
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("err = %v", err)
	}
}
