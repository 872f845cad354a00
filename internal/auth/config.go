package auth

import (
	"fmt"
	"time"

	"golang.org/x/time/rate"
)

// Defaults of [Config].
const (
	// DefaultTokenLifetime is how long an access token (JWT) lives; CCKM's
	// default is 5 minutes.
	DefaultTokenLifetime = 5 * time.Minute
	// DefaultRefreshLifetime is how long an unused refresh token lives.
	// Every refresh rotates it and starts a new lifetime.
	DefaultRefreshLifetime = 24 * time.Hour
	// DefaultIssuer is the iss claim of our tokens.
	DefaultIssuer = "akvsync"
	// DefaultClockSkew is the leeway applied to exp, nbf and iat when
	// verifying, for API processes whose clocks differ slightly.
	DefaultClockSkew = 30 * time.Second
	// DefaultRateLimit is the sustained rate of token requests allowed per
	// client address (per second).
	DefaultRateLimit rate.Limit = 5
	// DefaultRateBurst is the burst of token requests allowed per client.
	DefaultRateBurst = 10
	// DefaultUserFailureLimit is the sustained rate of failed password
	// attempts allowed per username, whatever the client address: after
	// DefaultUserFailureBurst failures the username is locked out until
	// the bucket refills (one attempt per 6 seconds).
	DefaultUserFailureLimit = rate.Limit(1.0 / 6)
	// DefaultUserFailureBurst is the burst of failed password attempts
	// allowed per username.
	DefaultUserFailureBurst = 10
	// DefaultMaxConcurrentHashes bounds password checks running at once
	// (each argon2id check uses 64 MiB by default).
	DefaultMaxConcurrentHashes = 4
	// DefaultMaxTokenRequestBytes is the body limit to pass to
	// [ParseTokenRequest].
	DefaultMaxTokenRequestBytes = 8 << 10
	// MinKeyBytes is the minimum size of a JWT signing key.
	MinKeyBytes = 32
	// MaxClockSkew is the largest accepted [Config.ClockSkew].
	MaxClockSkew = 5 * time.Minute
)

// Config configures a [Service]. The zero value of each optional field means
// its default; [Config.Validate] reports what is wrong.
type Config struct {
	// TokenLifetime is the lifetime of access tokens (the JWT exp - iat and
	// the response's duration). Default [DefaultTokenLifetime].
	TokenLifetime time.Duration
	// RefreshLifetime is the lifetime of a refresh token from its issue.
	// Default [DefaultRefreshLifetime].
	RefreshLifetime time.Duration
	// Issuer is the iss claim written and required. Default [DefaultIssuer].
	Issuer string
	// ClockSkew is the leeway for exp/nbf/iat checks. Default
	// [DefaultClockSkew]; at most [MaxClockSkew]. Set a negative value for
	// no leeway.
	ClockSkew time.Duration

	// SigningKeyID is the kid of the key that signs new tokens. It must be in
	// Keys.
	SigningKeyID string
	// Keys is the key ring: kid → HMAC-SHA256 secret of at least
	// [MinKeyBytes] random bytes. Every key verifies; only SigningKeyID signs.
	// See [ParseKeyRing] and [GenerateKey]. Rotation: add the new key, make it
	// the signing key on every API process, and remove the old one after
	// TokenLifetime + ClockSkew.
	Keys map[string][]byte

	// UsersFile is the YAML or JSON users file (see [ParseUsers]). It may be
	// empty when a bootstrap admin is configured.
	UsersFile string
	// BootstrapAdminUsername and BootstrapAdminPassword, when the password is
	// set, add an admin (see [UserStore.SetBootstrapAdmin]). The username
	// defaults to "admin". The password is never logged.
	BootstrapAdminUsername string
	// BootstrapAdminPassword: see BootstrapAdminUsername.
	BootstrapAdminPassword string

	// RateLimit and RateBurst limit token requests per client address.
	// Defaults [DefaultRateLimit] and [DefaultRateBurst]. Set RateLimit to
	// rate.Inf to disable (tests only).
	RateLimit rate.Limit
	// RateBurst: see RateLimit.
	RateBurst int
	// UserFailureLimit and UserFailureBurst limit failed password attempts
	// per username (across every client address). Defaults
	// [DefaultUserFailureLimit] and [DefaultUserFailureBurst]; rate.Inf
	// disables the lockout.
	UserFailureLimit rate.Limit
	// UserFailureBurst: see UserFailureLimit.
	UserFailureBurst int
	// MaxConcurrentHashes bounds concurrent password checks. Default
	// [DefaultMaxConcurrentHashes].
	MaxConcurrentHashes int

	// Now is the clock. Default time.Now. Tests inject a fake clock.
	// Revocations is the access-token denylist; nil means an in-process
	// one ([NewMemoryRevocations]), enough for a single API process. API
	// replicas share a [KVRevocations].
	Revocations Revocations

	// OIDC, when set, also accepts an OpenID Connect provider's access
	// tokens (Entra ID), recognized by an algorithm other than HS256.
	OIDC *OIDCVerifier

	Now func() time.Time
}

// DefaultBootstrapAdminUsername is the bootstrap admin's default name.
const DefaultBootstrapAdminUsername = "admin"

// withDefaults returns c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.TokenLifetime == 0 {
		c.TokenLifetime = DefaultTokenLifetime
	}
	if c.RefreshLifetime == 0 {
		c.RefreshLifetime = DefaultRefreshLifetime
	}
	if c.Issuer == "" {
		c.Issuer = DefaultIssuer
	}
	if c.ClockSkew == 0 {
		c.ClockSkew = DefaultClockSkew
	} else if c.ClockSkew < 0 {
		c.ClockSkew = 0
	}
	if c.RateLimit == 0 {
		c.RateLimit = DefaultRateLimit
	}
	if c.RateBurst == 0 {
		c.RateBurst = DefaultRateBurst
	}
	if c.UserFailureLimit == 0 {
		c.UserFailureLimit = DefaultUserFailureLimit
	}
	if c.UserFailureBurst == 0 {
		c.UserFailureBurst = DefaultUserFailureBurst
	}
	if c.MaxConcurrentHashes == 0 {
		c.MaxConcurrentHashes = DefaultMaxConcurrentHashes
	}
	if c.BootstrapAdminUsername == "" {
		c.BootstrapAdminUsername = DefaultBootstrapAdminUsername
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports the first problem of c (after defaults are applied), as
// an error wrapping [ErrInvalidConfig].
func (c Config) Validate() error {
	c = c.withDefaults()
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	switch {
	case c.TokenLifetime < time.Second || c.TokenLifetime > 24*time.Hour:
		return bad("token lifetime %s must be between 1s and 24h", c.TokenLifetime)
	case c.RefreshLifetime < c.TokenLifetime:
		return bad("refresh lifetime %s is shorter than the token lifetime %s", c.RefreshLifetime, c.TokenLifetime)
	case c.RefreshLifetime > 90*24*time.Hour:
		return bad("refresh lifetime %s exceeds 90 days", c.RefreshLifetime)
	case c.ClockSkew > MaxClockSkew:
		return bad("clock skew %s exceeds %s", c.ClockSkew, MaxClockSkew)
	case c.RateLimit < 0 || c.RateBurst < 1:
		return bad("rate limit must be positive with a burst of at least 1")
	case c.UserFailureLimit < 0 || c.UserFailureBurst < 1:
		return bad("user failure limit must be positive with a burst of at least 1")
	case c.MaxConcurrentHashes < 1:
		return bad("max concurrent hashes must be at least 1")
	case c.UsersFile == "" && c.BootstrapAdminPassword == "":
		return bad("no users: set a users file or a bootstrap admin password")
	}
	return validateKeyRing(c.SigningKeyID, c.Keys)
}
