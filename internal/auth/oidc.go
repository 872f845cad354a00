package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ErrTokenNoRole: an identity provider's token is valid but maps to no
// akvsync role.
var ErrTokenNoRole = fmt.Errorf("%w: the identity has no akvsync role", ErrInvalidToken)

// jwksRefreshEvery bounds JWKS refetches on an unknown kid.
const jwksRefreshEvery = time.Minute

// maxJWKSBytes bounds a discovery document or key set.
const maxJWKSBytes = 1 << 20

// OIDCConfig configures sign-in with an OpenID Connect provider such as
// Entra ID: its access tokens for Audience are accepted as bearer tokens.
type OIDCConfig struct {
	// DiscoveryURL is the provider's OpenID configuration, e.g.
	// https://login.microsoftonline.com/<tenant>/v2.0/.well-known/openid-configuration;
	// its jwks_uri gives the signing keys.
	DiscoveryURL string
	// Issuers are the accepted iss values; empty: the discovery document's
	// issuer. (Entra ID's v1 access tokens say https://sts.windows.net/<tenant>/.)
	Issuers []string
	// Audience is the aud the tokens must carry (the app's id URI or id).
	Audience string
	// RoleMap maps a value of the token's roles (app roles) or groups claim
	// to an akvsync role; the highest mapped role wins. Required unless
	// IdentityOnly.
	RoleMap map[string]Role
	// IdentityOnly builds a verifier for [OIDCVerifier.Identity] only (a
	// service caller such as Event Grid, not a user): no role map.
	IdentityOnly bool
	// AppIDs, when set, are the only callers accepted: the token's appid
	// (v1) or azp (v2) claim must be one of them.
	AppIDs []string
	// HTTPClient fetches the discovery document and keys; default
	// http.DefaultClient.
	HTTPClient *http.Client
	// Now is the clock; default time.Now.
	Now func() time.Time
	// ClockSkew is the leeway on exp and nbf; default [DefaultClockSkew].
	ClockSkew time.Duration
}

// OIDCVerifier verifies a provider's access tokens (RS256 or ES256,
// keys from the provider's JWKS, refetched on an unknown kid at most once
// a minute) with github.com/golang-jwt/jwt/v5.
type OIDCVerifier struct {
	cfg     OIDCConfig
	jwksURI string

	mu        sync.RWMutex
	keys      map[string]any
	lastFetch time.Time
}

// NewOIDCVerifier reads the discovery document and the keys.
func NewOIDCVerifier(ctx context.Context, cfg OIDCConfig) (*OIDCVerifier, error) {
	if cfg.DiscoveryURL == "" || cfg.Audience == "" || len(cfg.RoleMap) == 0 && !cfg.IdentityOnly {
		return nil, fmt.Errorf("%w: OIDC needs a discovery URL, an audience and a role map", ErrInvalidConfig)
	}
	for v, r := range cfg.RoleMap {
		if !r.Valid() {
			return nil, fmt.Errorf("%w: OIDC role map: %q maps to unknown role %q", ErrInvalidConfig, v, r)
		}
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ClockSkew == 0 {
		cfg.ClockSkew = DefaultClockSkew
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := getJSON(ctx, cfg.HTTPClient, cfg.DiscoveryURL, &doc); err != nil {
		return nil, fmt.Errorf("oidc discovery: %w", err)
	}
	if doc.JWKSURI == "" {
		return nil, errors.New("oidc discovery: no jwks_uri")
	}
	if len(cfg.Issuers) == 0 {
		if doc.Issuer == "" {
			return nil, errors.New("oidc discovery: no issuer")
		}
		cfg.Issuers = []string{doc.Issuer}
	}
	v := &OIDCVerifier{cfg: cfg, jwksURI: doc.JWKSURI}
	if err := v.fetchKeys(ctx); err != nil {
		return nil, err
	}
	return v, nil
}

func getJSON(ctx context.Context, c *http.Client, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes))
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// fetchKeys replaces the key set with the provider's.
func (v *OIDCVerifier) fetchKeys(ctx context.Context) error {
	var set struct {
		Keys []struct {
			Kty string `json:"kty"`
			Kid string `json:"kid"`
			Crv string `json:"crv"`
			X   string `json:"x"`
			Y   string `json:"y"`
			N   string `json:"n"`
			E   string `json:"e"`
		} `json:"keys"`
	}
	if err := getJSON(ctx, v.cfg.HTTPClient, v.jwksURI, &set); err != nil {
		return fmt.Errorf("oidc keys: %w", err)
	}
	keys := map[string]any{}
	b := base64.RawURLEncoding
	for _, k := range set.Keys {
		switch k.Kty {
		case "EC":
			x, err1 := b.DecodeString(k.X)
			y, err2 := b.DecodeString(k.Y)
			if k.Crv != "P-256" || err1 != nil || err2 != nil || len(x) > 32 || len(y) > 32 {
				continue
			}
			// The uncompressed point 0x04 || X || Y, each coordinate 32 bytes.
			pt := make([]byte, 65)
			pt[0] = 4
			copy(pt[33-len(x):33], x)
			copy(pt[65-len(y):], y)
			pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), pt)
			if err != nil {
				continue // not a point of the curve
			}
			keys[k.Kid] = pub
		case "RSA":
			n, err1 := b.DecodeString(k.N)
			e, err2 := b.DecodeString(k.E)
			if err1 != nil || err2 != nil || len(e) > 4 {
				continue
			}
			keys[k.Kid] = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		}
	}
	v.mu.Lock()
	v.keys, v.lastFetch = keys, v.cfg.Now()
	v.mu.Unlock()
	return nil
}

// key returns the key of kid, refetching the set once a minute at most
// when it is unknown.
func (v *OIDCVerifier) key(ctx context.Context, kid string) (any, bool) {
	v.mu.RLock()
	k, ok := v.keys[kid]
	stale := v.cfg.Now().Sub(v.lastFetch) > jwksRefreshEvery
	v.mu.RUnlock()
	if ok || !stale {
		return k, ok
	}
	if err := v.fetchKeys(ctx); err != nil {
		return nil, false
	}
	v.mu.RLock()
	defer v.mu.RUnlock()
	k, ok = v.keys[kid]
	return k, ok
}

// oidcClaims are the claims akvsync reads of a provider's token.
type oidcClaims struct {
	jwt.RegisteredClaims
	Roles             []string `json:"roles"`
	Groups            []string `json:"groups"`
	PreferredUsername string   `json:"preferred_username"`
	Appid             string   `json:"appid"`
	Azp               string   `json:"azp"`
	Oid               string   `json:"oid"`
}

// Verify checks a provider's access token: algorithm (RS256, ES256), key,
// signature, issuer, audience and times; then maps its roles and groups
// to the highest akvsync role. The principal's username is
// "oidc:<preferred_username, appid, azp, oid or sub>".
func (v *OIDCVerifier) Verify(ctx context.Context, token string) (Principal, error) {
	c, err := v.claims(ctx, token)
	if err != nil {
		return Principal{}, err
	}
	role := Role("")
	for _, claim := range [][]string{c.Roles, c.Groups} {
		for _, val := range claim {
			if r, ok := v.cfg.RoleMap[val]; ok && roleRank(r) > roleRank(role) {
				role = r
			}
		}
	}
	if role == "" {
		return Principal{}, ErrTokenNoRole
	}
	return Principal{Username: "oidc:" + c.name(), Role: role}, nil
}

// Identity checks a service's access token as Verify does, without
// roles, and returns the caller: "oidc:<appid, azp, oid or sub>".
func (v *OIDCVerifier) Identity(ctx context.Context, token string) (string, error) {
	c, err := v.claims(ctx, token)
	if err != nil {
		return "", err
	}
	return "oidc:" + c.name(), nil
}

// name is the most specific name a token gives its holder.
func (c oidcClaims) name() string {
	name := c.Subject
	for _, n := range []string{c.Oid, c.Azp, c.Appid, c.PreferredUsername} {
		if n != "" {
			name = n
		}
	}
	return name
}

// claims verifies a token and returns its claims.
func (v *OIDCVerifier) claims(ctx context.Context, token string) (oidcClaims, error) {
	if len(token) > 16*maxTokenLen {
		return oidcClaims{}, fmt.Errorf("%w: token too long", ErrTokenMalformed)
	}
	var c oidcClaims
	_, err := jwt.NewParser(
		jwt.WithValidMethods([]string{"RS256", "ES256"}),
		jwt.WithAudience(v.cfg.Audience),
		jwt.WithLeeway(v.cfg.ClockSkew),
		jwt.WithTimeFunc(v.cfg.Now),
		jwt.WithExpirationRequired(),
	).ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		k, ok := v.key(ctx, kid)
		if !ok {
			return nil, ErrTokenUnknownKey
		}
		return k, nil
	})
	if err != nil {
		if errors.Is(err, jwt.ErrTokenInvalidAudience) {
			return oidcClaims{}, fmt.Errorf("%w: wrong audience", ErrTokenMalformed)
		}
		return oidcClaims{}, jwtError(err)
	}
	if !slices.Contains(v.cfg.Issuers, c.Issuer) {
		return oidcClaims{}, ErrTokenIssuer
	}
	if len(v.cfg.AppIDs) > 0 && !slices.Contains(v.cfg.AppIDs, c.Appid) && !slices.Contains(v.cfg.AppIDs, c.Azp) {
		return oidcClaims{}, fmt.Errorf("%w: the token's application is not accepted", ErrTokenMalformed)
	}
	return c, nil
}

// roleRank orders roles: admin > operator > viewer > none.
func roleRank(r Role) int {
	switch r {
	case RoleAdmin:
		return 3
	case RoleOperator:
		return 2
	case RoleViewer:
		return 1
	}
	return 0
}
