package auth

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
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

// The claims are read by github.com/golang-jwt/jwt/v5 through these
// methods (jwt.Claims).

// GetExpirationTime implements jwt.Claims.
func (c claims) GetExpirationTime() (*jwt.NumericDate, error) { return numericDate(c.Exp), nil }

// GetIssuedAt implements jwt.Claims.
func (c claims) GetIssuedAt() (*jwt.NumericDate, error) { return numericDate(c.Iat), nil }

// GetNotBefore implements jwt.Claims.
func (c claims) GetNotBefore() (*jwt.NumericDate, error) { return numericDate(c.Nbf), nil }

// GetIssuer implements jwt.Claims.
func (c claims) GetIssuer() (string, error) { return c.Iss, nil }

// GetSubject implements jwt.Claims.
func (c claims) GetSubject() (string, error) { return c.Sub, nil }

// GetAudience implements jwt.Claims (akvsync's tokens have none).
func (c claims) GetAudience() (jwt.ClaimStrings, error) { return nil, nil }

func numericDate(sec int64) *jwt.NumericDate {
	if sec == 0 {
		return nil
	}
	return jwt.NewNumericDate(time.Unix(sec, 0))
}

// signJWT returns the compact serialization of c signed with key under kid
// (HS256, by github.com/golang-jwt/jwt/v5).
func signJWT(kid string, key []byte, c claims) (string, error) {
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
	t.Header["kid"] = kid
	s, err := t.SignedString(key)
	if err != nil {
		return "", fmt.Errorf("sign jwt: %w", err)
	}
	return s, nil
}

// verifyJWT checks the token's form (one spelling: length, alphabet, three
// parts, a header of exactly alg, typ and kid) and algorithm before any
// key is touched; github.com/golang-jwt/jwt/v5 then checks the key and
// signature, and the time and issuer claims; last, the authenticated
// payload is decoded strictly. keys maps kid → secret.
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
	if sig, err := b64.DecodeString(parts[2]); err != nil || len(sig) != sha256.Size {
		return claims{}, fmt.Errorf("%w: signature is not a base64url HMAC-SHA256", ErrTokenMalformed)
	}
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{jwtAlg}),
		jwt.WithIssuer(issuer),
		jwt.WithLeeway(skew),
		jwt.WithTimeFunc(func() time.Time { return now }),
		jwt.WithIssuedAt(),
		jwt.WithExpirationRequired(),
		jwt.WithStrictDecoding(),
	)
	var c claims
	_, err = parser.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) {
		key, ok := keys(h.Kid)
		if !ok {
			return nil, ErrTokenUnknownKey
		}
		return key, nil
	})
	if err != nil {
		return claims{}, jwtError(err)
	}
	// Authenticated: now the payload must be exactly our claims.
	pb, err := b64.DecodeString(parts[1])
	if err != nil {
		return claims{}, fmt.Errorf("%w: payload is not base64url", ErrTokenMalformed)
	}
	var strict claims
	if err := strictJSON(pb, &strict); err != nil {
		return claims{}, fmt.Errorf("%w: claims: %w", ErrTokenMalformed, err)
	}
	if strict.Sub == "" || strict.Jti == "" || strict.Exp == 0 || strict.Iat == 0 || !strict.Role.Valid() {
		return claims{}, fmt.Errorf("%w: missing or invalid claims", ErrTokenMalformed)
	}
	return strict, nil
}

// jwtError maps a golang-jwt error to this package's reasons.
func jwtError(err error) error {
	for _, own := range []error{ErrTokenUnknownKey, ErrTokenAlgorithm, ErrTokenMalformed} {
		if errors.Is(err, own) {
			return own
		}
	}
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return fmt.Errorf("%w: %w", ErrTokenMalformed, err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return ErrTokenSignature
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return ErrTokenIssuer
	case errors.Is(err, jwt.ErrTokenExpired):
		return ErrTokenExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return ErrTokenNotYetValid
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing), errors.Is(err, jwt.ErrTokenInvalidClaims):
		return fmt.Errorf("%w: %w", ErrTokenMalformed, err)
	}
	return fmt.Errorf("%w: %w", ErrTokenMalformed, err)
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
