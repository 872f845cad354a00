package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/akvsync/akvsync/internal/jsonbody"
)

// Grant types of the token endpoint.
const (
	// GrantPassword exchanges a username and password for tokens. A request
	// without grant_type is a password grant.
	GrantPassword = "password"
	// GrantRefreshToken exchanges a refresh token for new tokens (and a new
	// refresh token: the old one stops working).
	GrantRefreshToken = "refresh_token"
)

// TokenRequest is the body of POST /api/v1/auth/tokens.
type TokenRequest struct {
	// GrantType is "password" (also when empty) or "refresh_token".
	GrantType string `json:"grant_type"`
	// Username and Password are required for the password grant.
	Username string `json:"username"`
	// Password: see Username. Never logged.
	Password string `json:"password"`
	// RefreshToken is required for the refresh_token grant. Never logged.
	RefreshToken string `json:"refresh_token"`
	// Domain and AuthDomain are accepted for CipherTrust client
	// compatibility; akvsync has a single domain, so only "" and "root" are
	// allowed.
	Domain string `json:"domain"`
	// AuthDomain: see Domain.
	AuthDomain string `json:"auth_domain"`
	// RenewRefreshToken is accepted for CipherTrust client compatibility and
	// ignored: refresh tokens are always rotated.
	RenewRefreshToken bool `json:"renew_refresh_token"`
}

// TokenResponse is the answer of the token endpoint, in CCKM's shape.
type TokenResponse struct {
	// JWT is the access token for "Authorization: Bearer".
	JWT string `json:"jwt"`
	// Duration is the access token's lifetime in seconds.
	Duration int64 `json:"duration"`
	// TokenType is always "Bearer".
	TokenType string `json:"token_type"`
	// RefreshToken is an opaque single-use token for the refresh_token
	// grant.
	RefreshToken string `json:"refresh_token"`
}

// ParseTokenRequest decodes and validates a token request body of at most
// maxBytes bytes (use [DefaultMaxTokenRequestBytes] when unsure). The JSON
// must be a single object with known fields of the right types. Errors wrap
// [ErrBadRequest] (or [ErrBodyTooLarge], also when r is an
// http.MaxBytesReader that hit its limit) and say what is wrong without
// echoing secrets.
func ParseTokenRequest(r io.Reader, maxBytes int64) (TokenRequest, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxTokenRequestBytes
	}
	body, err := io.ReadAll(io.LimitReader(r, maxBytes+1))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		// The caller wrapped the body in http.MaxBytesReader.
		return TokenRequest{}, fmt.Errorf("%w (limit %d bytes)", ErrBodyTooLarge, tooLarge.Limit)
	}
	if err != nil {
		// The read error names the server's socket addresses: say what
		// happened without it.
		return TokenRequest{}, fmt.Errorf("%w: the request body could not be read (the client stopped sending, or the read timed out)", ErrBadRequest)
	}
	if int64(len(body)) > maxBytes {
		return TokenRequest{}, fmt.Errorf("%w (limit %d bytes)", ErrBodyTooLarge, maxBytes)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return TokenRequest{}, fmt.Errorf("%w: empty body", ErrBadRequest)
	}
	var req TokenRequest
	if err := strictJSON(body, &req); err != nil {
		return TokenRequest{}, fmt.Errorf("%w: %s", ErrBadRequest, describeJSONError(err))
	}
	if err := jsonbody.CheckDuplicates(body); err != nil {
		return TokenRequest{}, fmt.Errorf("%w: %s", ErrBadRequest, err.Error())
	}
	if err := req.Validate(); err != nil {
		return TokenRequest{}, err
	}
	return req, nil
}

// Validate checks the fields required by the grant type.
func (q TokenRequest) Validate() error {
	bad := func(msg string) error { return fmt.Errorf("%w: %s", ErrBadRequest, msg) }
	if q.Domain != "" && q.Domain != "root" || q.AuthDomain != "" && q.AuthDomain != "root" {
		return bad(`only the "root" domain exists`)
	}
	switch q.GrantType {
	case "", GrantPassword:
		if q.Username == "" || q.Password == "" {
			return bad("username and password are required for the password grant")
		}
		if q.RefreshToken != "" {
			return bad("refresh_token is not allowed in a password grant")
		}
		if len(q.Username) > maxUsernameLen || len(q.Password) > MaxPasswordLen {
			return bad("username or password too long")
		}
	case GrantRefreshToken:
		if q.RefreshToken == "" {
			return bad("refresh_token is required for the refresh_token grant")
		}
		if q.Username != "" || q.Password != "" {
			return bad("username and password are not allowed in a refresh_token grant")
		}
		if len(q.RefreshToken) > maxTokenLen {
			return bad("refresh_token too long")
		}
	default:
		return bad(`grant_type must be "password" or "refresh_token"`)
	}
	return nil
}

// describeJSONError turns decoder errors into messages for clients. It never
// includes field values.
func describeJSONError(err error) string {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return "body must be a JSON object"
		}
		return fmt.Sprintf("field %s must be a %s, not %s", typeErr.Field, jsonKind(typeErr.Type.Kind().String()), typeErr.Value)
	case errors.As(err, &syntaxErr):
		return fmt.Sprintf("invalid JSON at byte %d", syntaxErr.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "truncated JSON"
	default:
		// Unknown field ("json: unknown field \"x\"") and trailing data.
		return strings.TrimPrefix(err.Error(), "json: ")
	}
}

func jsonKind(k string) string {
	switch k {
	case "bool":
		return "boolean"
	case "struct":
		return "object"
	default:
		return k
	}
}
