package auth

import (
	"fmt"
	"net/http"
	"strings"
)

// maxTokenLen bounds the size of a bearer token we are willing to parse.
const maxTokenLen = 4096

// FromRequest extracts the token of an "Authorization: Bearer <token>"
// header. The scheme is matched case-insensitively. It returns
// [ErrTokenMissing] when no bearer token is present and [ErrTokenMalformed]
// for a header that cannot carry one of our tokens (several Authorization
// headers, another scheme, characters outside the JWT alphabet, too long).
func FromRequest(r *http.Request) (string, error) {
	values := r.Header.Values("Authorization")
	switch len(values) {
	case 0:
		return "", ErrTokenMissing
	case 1:
	default:
		return "", fmt.Errorf("%w: several Authorization headers", ErrTokenMalformed)
	}
	scheme, token, found := strings.Cut(strings.TrimSpace(values[0]), " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		if strings.EqualFold(strings.TrimSpace(values[0]), "Bearer") {
			return "", ErrTokenMissing
		}
		return "", fmt.Errorf("%w: Authorization scheme is not Bearer", ErrTokenMalformed)
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return "", ErrTokenMissing
	}
	if len(token) > maxTokenLen {
		return "", fmt.Errorf("%w: token too long", ErrTokenMalformed)
	}
	for i := 0; i < len(token); i++ {
		if !isJWTChar(token[i]) {
			return "", fmt.Errorf("%w: invalid character in token", ErrTokenMalformed)
		}
	}
	return token, nil
}

// isJWTChar reports whether c belongs to the base64url alphabet or is '.'.
func isJWTChar(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' ||
		c == '-' || c == '_' || c == '.'
}
