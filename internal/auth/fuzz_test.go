package auth

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

func FuzzParseTokenRequest(f *testing.F) {
	for _, s := range []string{
		`{"grant_type":"password","username":"a","password":"p"}`,
		`{"username":"a","password":"p"}`,
		`{"grant_type":"refresh_token","refresh_token":"r"}`,
		`{"username":"a","password":"p","domain":"root","renew_refresh_token":true}`,
		`{"username":1}`, `[]`, `null`, `{"a":` + strings.Repeat("[", 100), "{\"username\":\"\\u0000\"}",
		`{"username":"a","password":"p"}{}`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := ParseTokenRequest(bytes.NewReader(body), 1024)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("error not wrapping ErrBadRequest: %v", err)
			}
			return
		}
		if len(body) > 1024 {
			t.Fatal("oversized body accepted")
		}
		if err := req.Validate(); err != nil {
			t.Fatalf("accepted request fails Validate: %v", err)
		}
	})
}

func FuzzVerify(f *testing.F) {
	env := newTestEnv(f, nil)
	signed := map[string]bool{}
	for _, u := range defaultTestUsers[:3] {
		tok := env.login(f, u.name, u.password).JWT
		signed[tok] = true
		f.Add(tok)
		parts := strings.Split(tok, ".")
		f.Add(parts[0] + "." + parts[1] + ".")
		f.Add(parts[0] + "." + parts[1] + "." + parts[2] + "A")
		f.Add(strings.ToUpper(tok))
		f.Add(b64.EncodeToString([]byte(`{"alg":"none","kid":"k1"}`)) + "." + parts[1] + ".")
	}
	f.Add("")
	f.Add("..")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, tok string) {
		p, err := env.svc.Verify(context.Background(), tok)
		if err != nil {
			if !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("error not wrapping ErrInvalidToken: %v", err)
			}
			return
		}
		if !signed[tok] {
			t.Fatalf("accepted a token the signer never produced: %q (%+v)", tok, p)
		}
	})
}
