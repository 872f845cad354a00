// Package auth authenticates and authorizes callers of the akvsync REST API.
//
// It implements the CCKM-compatible token endpoint (POST /api/v1/auth/tokens):
// the password grant and the refresh_token grant, short-lived HS256 JWT access
// tokens with a kid header selecting a key from a rotatable key ring, opaque
// single-use refresh tokens that are stored only as hashes in a [RefreshStore],
// a per-client rate limiter against brute force, users loaded from a YAML/JSON
// file with bcrypt or argon2id password hashes, and role-based permissions.
//
// The HTTP layer typically:
//
//   - on POST /api/v1/auth/tokens: [ParseTokenRequest] the body, call
//     [Service.IssueToken] with r.RemoteAddr, and write the [TokenResponse]
//     as JSON (or map the error to a status; [RetryAfter] says how long to wait);
//   - on every other endpoint (but health): [FromRequest], [Service.Verify],
//     [WithPrincipal] on the request context, then [Principal.Require] with the
//     endpoint's [Perm].
//
// Secrets (passwords, tokens, keys) are never logged; usernames, client
// addresses and outcomes are.
package auth
