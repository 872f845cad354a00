package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// jwtAlg is the only algorithm we sign with and accept.
const jwtAlg = "HS256"

// b64 is strict unpadded base64url: non-canonical encodings are rejected so
// a token has exactly one textual form.
var b64 = base64.RawURLEncoding.Strict()

// jwtHeader is the JOSE header we write and accept (no other members).
type jwtHeader struct {
	Alg string `json:"alg"`
	Typ string `json:"typ,omitempty"`
	Kid string `json:"kid"`
}

// claims are the JWT claims of an access token.
type claims struct {
	Sub  string `json:"sub"`
	Role Role   `json:"role"`
	Iss  string `json:"iss"`
	Iat  int64  `json:"iat"`
	Nbf  int64  `json:"nbf"`
	Exp  int64  `json:"exp"`
	Jti  string `json:"jti"`
}

// signJWT returns the compact serialization of c signed with key under kid.
func signJWT(kid string, key []byte, c claims) (string, error) {
	h, err := json.Marshal(jwtHeader{Alg: jwtAlg, Typ: "JWT", Kid: kid})
	if err != nil {
		return "", fmt.Errorf("encode jwt header: %w", err)
	}
	p, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("encode jwt claims: %w", err)
	}
	signingInput := b64.EncodeToString(h) + "." + b64.EncodeToString(p)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(signingInput))
	return signingInput + "." + b64.EncodeToString(mac.Sum(nil)), nil
}

// verifyJWT checks the token's form, algorithm, key and signature, then its
// time and issuer claims, and returns the claims. keys maps kid → secret.
func verifyJWT(token string, keys func(kid string) ([]byte, bool), issuer string, now time.Time, skew time.Duration) (claims, error) {
	if len(token) > maxTokenLen {
		return claims{}, fmt.Errorf("%w: token too long", ErrTokenMalformed)
	}
	// base64 decoders skip '\r' and '\n'; refuse anything outside the JWT
	// alphabet so a token has a single accepted spelling.
	for i := 0; i < len(token); i++ {
		if !isJWTChar(token[i]) {
			return claims{}, fmt.Errorf("%w: invalid character in token", ErrTokenMalformed)
		}
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return claims{}, fmt.Errorf("%w: want 3 dot-separated parts", ErrTokenMalformed)
	}
	hb, err := b64.DecodeString(parts[0])
	if err != nil {
		return claims{}, fmt.Errorf("%w: header is not base64url", ErrTokenMalformed)
	}
	var h jwtHeader
	if err := strictJSON(hb, &h); err != nil {
		return claims{}, fmt.Errorf("%w: header: %w", ErrTokenMalformed, err)
	}
	// Compare the algorithm before touching keys: "none", RS256 (key
	// confusion) and anything else are refused outright.
	if h.Alg != jwtAlg {
		return claims{}, fmt.Errorf("%w: %q", ErrTokenAlgorithm, h.Alg)
	}
	if h.Typ != "" && h.Typ != "JWT" {
		return claims{}, fmt.Errorf("%w: typ %q", ErrTokenMalformed, h.Typ)
	}
	key, ok := keys(h.Kid)
	if !ok {
		return claims{}, ErrTokenUnknownKey
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil || len(sig) != sha256.Size {
		return claims{}, fmt.Errorf("%w: signature is not a base64url HMAC-SHA256", ErrTokenMalformed)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(token[:len(parts[0])+1+len(parts[1])]))
	if !hmac.Equal(mac.Sum(nil), sig) {
		return claims{}, ErrTokenSignature
	}
	// Only now, authenticated, is the payload parsed.
	pb, err := b64.DecodeString(parts[1])
	if err != nil {
		return claims{}, fmt.Errorf("%w: payload is not base64url", ErrTokenMalformed)
	}
	var c claims
	if err := strictJSON(pb, &c); err != nil {
		return claims{}, fmt.Errorf("%w: claims: %w", ErrTokenMalformed, err)
	}
	if c.Sub == "" || c.Jti == "" || c.Exp == 0 || c.Iat == 0 || !c.Role.Valid() {
		return claims{}, fmt.Errorf("%w: missing or invalid claims", ErrTokenMalformed)
	}
	if subtle.ConstantTimeCompare([]byte(c.Iss), []byte(issuer)) != 1 {
		return claims{}, ErrTokenIssuer
	}
	t := now.Unix()
	s := int64(skew / time.Second)
	if t > c.Exp+s {
		return claims{}, ErrTokenExpired
	}
	if t+s < c.Nbf || t+s < c.Iat {
		return claims{}, ErrTokenNotYetValid
	}
	return c, nil
}

// strictJSON decodes exactly one JSON object into v, rejecting unknown
// fields and trailing data.
func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if len(bytes.TrimSpace(b[dec.InputOffset():])) != 0 {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}
