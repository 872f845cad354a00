package auth

import (
	"bytes"
	"context"
	"encoding/json"
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

// FuzzVerify checks that Verify never panics, only fails with
// ErrInvalidToken, and accepts only the exact bytes our signer produces: an
// accepted token must equal signJWT applied to its own decoded header and
// claims (so no alternative encoding, header or signature is accepted).
// Each fuzz worker process builds its own service, so this property is
// checked by re-signing rather than by remembering issued tokens.
func FuzzVerify(f *testing.F) {
	env := newTestEnv(f, nil)
	for _, u := range defaultTestUsers[:3] {
		tok := env.login(f, u.name, u.password).JWT
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
		parts := strings.Split(tok, ".")
		var h jwtHeader
		var c claims
		hb, _ := b64.DecodeString(parts[0])
		cb, _ := b64.DecodeString(parts[1])
		if json.Unmarshal(hb, &h) != nil || json.Unmarshal(cb, &c) != nil {
			t.Fatalf("accepted token does not decode: %q", tok)
		}
		again, err := signJWT(h.Kid, testKey(1), c)
		if err != nil || again != tok {
			t.Fatalf("accepted a token the signer never produced: %q (%+v)", tok, p)
		}
	})
}
