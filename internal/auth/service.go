package auth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Service issues and verifies tokens. Create it with [NewService]; it is safe
// for concurrent use.
type Service struct {
	cfg     Config
	users   *UserStore
	store   RefreshStore
	log     zerolog.Logger
	limiter *clientLimiter
	hashSem chan struct{}

	keyMu      sync.RWMutex
	signingKID string
	keys       map[string][]byte
}

// NewService validates cfg, loads the users file, adds the bootstrap admin
// if configured, and returns a Service storing refresh tokens in store
// ([NewMemoryRefreshStore] or [NewKVRefreshStore]).
func NewService(cfg Config, store RefreshStore, log zerolog.Logger) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if store == nil {
		return nil, fmt.Errorf("%w: nil refresh store", ErrInvalidConfig)
	}
	cfg = cfg.withDefaults()
	users, err := LoadUsers(cfg.UsersFile)
	if err != nil {
		return nil, err
	}
	if cfg.BootstrapAdminPassword != "" {
		if err := users.SetBootstrapAdmin(cfg.BootstrapAdminUsername, cfg.BootstrapAdminPassword); err != nil {
			return nil, err
		}
		log.Info().Str("username", cfg.BootstrapAdminUsername).Msg("bootstrap admin configured")
	}
	cfg.BootstrapAdminPassword = "" // not kept around
	if users.Len() == 0 {
		return nil, fmt.Errorf("%w: the users file has no users and no bootstrap admin is set", ErrInvalidConfig)
	}
	s := &Service{
		cfg:     cfg,
		users:   users,
		store:   store,
		log:     log.With().Str("component", "auth").Logger(),
		limiter: newClientLimiter(cfg.RateLimit, cfg.RateBurst),
		hashSem: make(chan struct{}, cfg.MaxConcurrentHashes),
	}
	s.setKeys(cfg.SigningKeyID, cfg.Keys)
	s.cfg.Keys = nil
	return s, nil
}

// Users returns the service's user store (for [UserStore.Reload] on SIGHUP,
// or for lookups by an admin endpoint).
func (s *Service) Users() *UserStore { return s.users }

// ReloadUsers re-reads the users file; see [UserStore.Reload].
func (s *Service) ReloadUsers(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.users.Reload(); err != nil {
		s.log.Error().Err(err).Msg("users file reload failed; keeping the previous users")
		return err
	}
	s.log.Info().Int("users", s.users.Len()).Msg("users reloaded")
	return nil
}

// RotateKeys replaces the key ring at run time: new tokens are signed with
// signingKID, and tokens signed with any key of keys verify. Keys are copied.
func (s *Service) RotateKeys(signingKID string, keys map[string][]byte) error {
	if err := validateKeyRing(signingKID, keys); err != nil {
		return err
	}
	s.setKeys(signingKID, keys)
	s.log.Info().Str("kid", signingKID).Int("keys", len(keys)).Msg("token signing keys rotated")
	return nil
}

func (s *Service) setKeys(signingKID string, keys map[string][]byte) {
	ring := make(map[string][]byte, len(keys))
	for kid, k := range maps.All(keys) {
		ring[kid] = append([]byte(nil), k...)
	}
	s.keyMu.Lock()
	old := s.keys
	s.signingKID, s.keys = signingKID, ring
	s.keyMu.Unlock()
	for _, k := range old {
		clear(k)
	}
}

func (s *Service) verificationKey(kid string) ([]byte, bool) {
	s.keyMu.RLock()
	defer s.keyMu.RUnlock()
	k, ok := s.keys[kid]
	return k, ok
}

func (s *Service) signingKey() (string, []byte) {
	s.keyMu.RLock()
	defer s.keyMu.RUnlock()
	return s.signingKID, s.keys[s.signingKID]
}

// IssueToken serves the token endpoint: the password grant (also when
// grant_type is empty) and the refresh_token grant. clientAddr is the
// caller's address (http.Request.RemoteAddr, or the client IP taken from a
// trusted proxy header) and keys the rate limiter.
//
// Errors: [ErrRateLimited] (see [RetryAfter]), [ErrBadRequest],
// [ErrInvalidCredentials] for a wrong password or unknown user (the same
// error and about the same time for both), an [ErrInvalidToken] reason for a
// bad refresh token, or a wrapped store error.
func (s *Service) IssueToken(ctx context.Context, req TokenRequest, clientAddr string) (TokenResponse, error) {
	client := clientKey(clientAddr)
	if ok, wait := s.limiter.allow(client, s.cfg.Now()); !ok {
		s.log.Warn().Str("client", client).Str("username", req.Username).Str("outcome", "rate_limited").Msg("token request refused")
		return TokenResponse{}, &rateLimitError{retryAfter: wait}
	}
	if err := req.Validate(); err != nil {
		return TokenResponse{}, err
	}
	if req.GrantType == GrantRefreshToken {
		return s.refreshGrant(ctx, req.RefreshToken, client)
	}
	return s.passwordGrant(ctx, req.Username, req.Password, client)
}

func (s *Service) passwordGrant(ctx context.Context, username, password, client string) (TokenResponse, error) {
	acct, found := s.users.lookup(username)
	h := acct.hash
	if !found {
		// Spend the same work as for a real user so that timing does not
		// tell whether the username exists.
		h = s.users.dummyHash()
	}
	select {
	case s.hashSem <- struct{}{}:
	case <-ctx.Done():
		return TokenResponse{}, ctx.Err()
	}
	match := h.verify(password)
	<-s.hashSem
	if !found || !match {
		// A refused username may be a password typed in the wrong field:
		// log only a known user's name (nothing derived from an unknown
		// one, not even a digest a weak password could be guessed from).
		logged := username
		if !found {
			logged = "(unknown user)"
		}
		s.log.Warn().Str("client", client).Str("username", logged).Str("grant", GrantPassword).
			Str("outcome", "invalid_credentials").Msg("token request refused")
		return TokenResponse{}, ErrInvalidCredentials
	}
	return s.issue(ctx, acct, GrantPassword, client)
}

func (s *Service) refreshGrant(ctx context.Context, refreshToken, client string) (TokenResponse, error) {
	id := RefreshTokenID(refreshToken)
	refuse := func(err error, username, outcome string) (TokenResponse, error) {
		s.log.Warn().Str("client", client).Str("username", username).Str("grant", GrantRefreshToken).
			Str("outcome", outcome).Msg("token request refused")
		return TokenResponse{}, err
	}
	rec, err := s.store.Get(ctx, id)
	if errors.Is(err, ErrRefreshNotFound) {
		return refuse(fmt.Errorf("%w: refresh token is unknown, used or revoked", ErrTokenRevoked), "", "refresh_unknown")
	}
	if err != nil {
		return TokenResponse{}, fmt.Errorf("refresh grant: %w", err)
	}
	// Single use: whoever revokes it first proceeds.
	if err := s.store.Revoke(ctx, id); errors.Is(err, ErrRefreshNotFound) {
		return refuse(fmt.Errorf("%w: refresh token was already used", ErrTokenRevoked), rec.Username, "refresh_reused")
	} else if err != nil {
		return TokenResponse{}, fmt.Errorf("refresh grant: %w", err)
	}
	if s.cfg.Now().After(rec.ExpiresAt) {
		return refuse(fmt.Errorf("%w: refresh token expired", ErrTokenExpired), rec.Username, "refresh_expired")
	}
	acct, found := s.users.lookup(rec.Username)
	if !found || acct.credID != rec.CredID {
		// Removed user, or changed password or role: every session of the
		// user ends; they must log in again (with their new role).
		if err := s.store.RevokeAllForUser(ctx, rec.Username); err != nil {
			s.log.Error().Err(err).Str("username", rec.Username).Msg("revoking refresh tokens failed")
		}
		return refuse(fmt.Errorf("%w: user removed or credentials changed; log in again", ErrTokenRevoked), rec.Username, "refresh_user_changed")
	}
	return s.issue(ctx, acct, GrantRefreshToken, client)
}

// issue mints an access token and a refresh token for acct.
func (s *Service) issue(ctx context.Context, acct account, grant, client string) (TokenResponse, error) {
	now := s.cfg.Now()
	jti, err := randomHex(16)
	if err != nil {
		return TokenResponse{}, err
	}
	kid, key := s.signingKey()
	c := claims{
		Sub:  acct.user.Username,
		Role: acct.user.Role,
		Iss:  s.cfg.Issuer,
		Iat:  now.Unix(),
		Nbf:  now.Unix(),
		Exp:  now.Add(s.cfg.TokenLifetime).Unix(),
		Jti:  jti,
	}
	jwt, err := signJWT(kid, key, c)
	if err != nil {
		return TokenResponse{}, err
	}
	rt, err := newRefreshToken()
	if err != nil {
		return TokenResponse{}, err
	}
	rec := RefreshRecord{
		Username:  acct.user.Username,
		Role:      acct.user.Role,
		CredID:    acct.credID,
		IssuedAt:  now.UTC(),
		ExpiresAt: now.Add(s.cfg.RefreshLifetime).UTC(),
	}
	if err := s.store.Put(ctx, RefreshTokenID(rt), rec); err != nil {
		return TokenResponse{}, fmt.Errorf("store refresh token: %w", err)
	}
	s.log.Info().Str("client", client).Str("username", acct.user.Username).Str("role", string(acct.user.Role)).
		Str("grant", grant).Str("jti", jti).Str("kid", kid).Str("outcome", "issued").Msg("token issued")
	return TokenResponse{
		JWT:          jwt,
		Duration:     int64(s.cfg.TokenLifetime / time.Second),
		TokenType:    "Bearer",
		RefreshToken: rt,
	}, nil
}

// Verify checks an access token (as returned by [FromRequest]) and returns
// its principal. It rejects, with an [ErrInvalidToken] reason: malformed
// tokens, algorithms other than HS256 (including "none"), unknown kid, bad
// signature, expired or not-yet-valid tokens (with [Config.ClockSkew]
// leeway), a wrong issuer, and tokens of users that were removed or whose
// role changed since issue.
func (s *Service) Verify(ctx context.Context, token string) (Principal, error) {
	if err := ctx.Err(); err != nil {
		return Principal{}, err
	}
	c, err := verifyJWT(token, s.verificationKey, s.cfg.Issuer, s.cfg.Now(), s.cfg.ClockSkew)
	if err != nil {
		return Principal{}, err
	}
	acct, found := s.users.lookup(c.Sub)
	if !found {
		return Principal{}, fmt.Errorf("%w: user no longer exists", ErrTokenRevoked)
	}
	if acct.user.Role != c.Role {
		return Principal{}, fmt.Errorf("%w: role changed; log in again", ErrTokenRevoked)
	}
	return Principal{Username: c.Sub, Role: c.Role}, nil
}

// Revoke invalidates a refresh token (logout). Revoking an unknown or
// already revoked token is not an error.
func (s *Service) Revoke(ctx context.Context, refreshToken string) error {
	err := s.store.Revoke(ctx, RefreshTokenID(refreshToken))
	if err != nil && !errors.Is(err, ErrRefreshNotFound) {
		return fmt.Errorf("revoke refresh token: %w", err)
	}
	s.log.Info().Str("outcome", "refresh_revoked").Msg("refresh token revoked")
	return nil
}

// RevokeUser invalidates every refresh token of username. Access tokens
// already issued stay valid until they expire (at most TokenLifetime) unless
// the user is also removed or their role changed.
func (s *Service) RevokeUser(ctx context.Context, username string) error {
	if err := s.store.RevokeAllForUser(ctx, username); err != nil {
		return fmt.Errorf("revoke refresh tokens of %q: %w", username, err)
	}
	s.log.Info().Str("username", username).Str("outcome", "user_sessions_revoked").Msg("refresh tokens revoked")
	return nil
}

// TokenLifetime returns the configured access-token lifetime.
func (s *Service) TokenLifetime() time.Duration { return s.cfg.TokenLifetime }

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random: %w", err)
	}
	return hex.EncodeToString(b), nil
}
