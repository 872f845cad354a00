package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"
)

// Service issues and verifies tokens. Create it with [NewService]; it is safe
// for concurrent use.
type Service struct {
	cfg     Config
	users   *UserStore
	store   RefreshStore
	revoked Revocations
	log     zerolog.Logger
	limiter *clientLimiter
	// userFailures limits failed password attempts per username digest.
	userFailures *clientLimiter
	hashSem      chan struct{}

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
	revoked := cfg.Revocations
	if revoked == nil {
		revoked = NewMemoryRevocations(cfg.Now)
	}
	s := &Service{
		cfg:          cfg,
		users:        users,
		store:        store,
		revoked:      revoked,
		log:          log.With().Str("component", "auth").Logger(),
		limiter:      newClientLimiter(cfg.RateLimit, cfg.RateBurst),
		userFailures: newClientLimiter(cfg.UserFailureLimit, cfg.UserFailureBurst),
		hashSem:      make(chan struct{}, cfg.MaxConcurrentHashes),
	}
	s.setKeys(cfg.SigningKeyID, cfg.Keys)
	s.cfg.Keys = nil
	return s, nil
}

// Users returns the service's user store (for [UserStore.Reload] on SIGHUP,
// or for lookups by an admin endpoint).
func (s *Service) Users() *UserStore { return s.users }

// ReloadUsers re-reads the users file (on SIGHUP, or when the file
// changes; see [Service.WatchUsersFile]); see [UserStore.Reload]. The
// sessions of users removed, disabled, or whose password or role changed
// end: their refresh tokens are revoked and their access tokens denied on
// every replica.
func (s *Service) ReloadUsers(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	changed, err := s.users.reload()
	if err != nil {
		s.log.Error().Err(err).Msg("users file reload failed; keeping the previous users")
		return err
	}
	var errs []error
	for _, u := range changed {
		if err := s.RevokeUser(ctx, u); err != nil {
			errs = append(errs, err)
		}
	}
	s.log.Info().Int("users", s.users.Len()).Int("sessions_ended_for", len(changed)).Msg("users reloaded")
	return errors.Join(errs...)
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
		// A refused "username" may be a password typed in the wrong
		// field: only its digest is logged.
		s.log.Warn().Str("client", client).Str("user_digest", UsernameDigest(req.Username)).Str("outcome", "rate_limited").Msg("token request refused")
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
	// Per username too, whatever the address: a guesser spreading over
	// many addresses is stopped after a few failures.
	digest := UsernameDigest(username)
	if locked, wait := s.userFailures.blocked(digest, s.cfg.Now()); locked {
		s.log.Warn().Str("client", client).Str("user_digest", digest).Str("grant", GrantPassword).
			Str("outcome", "user_locked_out").Msg("token request refused")
		return TokenResponse{}, &rateLimitError{retryAfter: wait}
	}
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
		s.userFailures.allow(digest, s.cfg.Now()) // count the failure
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
	return s.issue(ctx, acct, GrantPassword, client, "")
}

func (s *Service) refreshGrant(ctx context.Context, refreshToken, client string) (TokenResponse, error) {
	id := RefreshTokenID(refreshToken)
	refuse := func(err error, userDigest, outcome string) (TokenResponse, error) {
		s.log.Warn().Str("client", client).Str("user_digest", userDigest).Str("grant", GrantRefreshToken).
			Str("outcome", outcome).Msg("token request refused")
		return TokenResponse{}, err
	}
	// Single use: whoever marks it used first proceeds.
	rec, err := s.store.Use(ctx, id)
	switch {
	case errors.Is(err, ErrRefreshReused):
		// A replay: the token was stolen, or the client is confused;
		// either way the session (every token rotated from its login)
		// ends.
		s.revokeFamily(ctx, rec.Family)
		return refuse(fmt.Errorf("%w: refresh token was already used; the session is revoked", ErrTokenRevoked), UsernameDigest(rec.Username), "refresh_replayed")
	case errors.Is(err, ErrRefreshNotFound):
		return refuse(fmt.Errorf("%w: refresh token is unknown, used or revoked", ErrTokenRevoked), "", "refresh_unknown")
	case err != nil:
		return TokenResponse{}, fmt.Errorf("refresh grant: %w", err)
	}
	if s.cfg.Now().After(rec.ExpiresAt) {
		return refuse(fmt.Errorf("%w: refresh token expired", ErrTokenExpired), UsernameDigest(rec.Username), "refresh_expired")
	}
	acct, found := s.users.lookup(rec.Username)
	if !found || acct.credID != rec.CredID {
		// Removed user, or changed password or role: every session of the
		// user ends; they must log in again (with their new role).
		if err := s.store.RevokeAllForUser(ctx, rec.Username); err != nil {
			s.log.Error().Err(err).Str("username", rec.Username).Msg("revoking refresh tokens failed")
		}
		return refuse(fmt.Errorf("%w: user removed or credentials changed; log in again", ErrTokenRevoked), UsernameDigest(rec.Username), "refresh_user_changed")
	}
	return s.issue(ctx, acct, GrantRefreshToken, client, rec.Family)
}

// issue mints an access token and a refresh token for acct, the refresh
// token in family (a new one when empty: a login).
func (s *Service) issue(ctx context.Context, acct account, grant, client, family string) (TokenResponse, error) {
	now := s.cfg.Now()
	jti := newID()
	if family == "" {
		family = newID()
	}
	iat := now.Unix()
	// The user's sessions were ended this very second: a token issued
	// after that must not fall under the denial (iat <= at).
	if at, ok := s.revoked.SubjectRevokedAt(acct.user.Username); ok && iat <= at {
		iat = at + 1
	}
	kid, key := s.signingKey()
	c := claims{
		Sub:  acct.user.Username,
		Role: acct.user.Role,
		Iss:  s.cfg.Issuer,
		Iat:  iat,
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
		Family:    family,
		AccessJTI: jti, AccessExpiresAt: time.Unix(c.Exp, 0).UTC(),
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
	if s.cfg.OIDC != nil && headerAlg(token) != jwtAlg {
		return s.cfg.OIDC.Verify(ctx, token)
	}
	c, err := verifyJWT(token, s.verificationKey, s.cfg.Issuer, s.cfg.Now(), s.cfg.ClockSkew)
	if err != nil {
		return Principal{}, err
	}
	if s.revoked.Revoked(c.Jti, c.Sub, c.Iat) {
		return Principal{}, fmt.Errorf("%w: access token revoked", ErrTokenRevoked)
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

// Revoke ends the session of a refresh token (logout): every refresh
// token of its family, and the access tokens issued with them, are
// revoked. Revoking an unknown or already revoked token is not an error.
func (s *Service) Revoke(ctx context.Context, refreshToken string) error {
	rec, err := s.store.Get(ctx, RefreshTokenID(refreshToken))
	if errors.Is(err, ErrRefreshNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("revoke refresh token: %w", err)
	}
	if rec.Family == "" { // a record from before families
		if err := s.store.Revoke(ctx, RefreshTokenID(refreshToken)); err != nil && !errors.Is(err, ErrRefreshNotFound) {
			return fmt.Errorf("revoke refresh token: %w", err)
		}
		rec.Family = "-"
	}
	if err := s.revokeFamily(ctx, rec.Family); err != nil {
		return err
	}
	if rec.AccessJTI != "" {
		if err := s.revoked.RevokeAccess(ctx, rec.AccessJTI, rec.AccessExpiresAt); err != nil {
			return fmt.Errorf("revoke access token: %w", err)
		}
	}
	s.log.Info().Str("outcome", "session_revoked").Msg("refresh token family revoked")
	return nil
}

// revokeFamily revokes every refresh token of family and denies the
// access tokens issued with them.
func (s *Service) revokeFamily(ctx context.Context, family string) error {
	recs, err := s.store.RevokeFamily(ctx, family)
	var errs []error
	if err != nil {
		errs = append(errs, fmt.Errorf("revoke refresh family: %w", err))
	}
	for _, r := range recs {
		if r.AccessJTI == "" {
			continue
		}
		if err := s.revoked.RevokeAccess(ctx, r.AccessJTI, r.AccessExpiresAt); err != nil {
			errs = append(errs, fmt.Errorf("revoke access token: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		s.log.Error().Err(err).Msg("revoking a session failed")
		return err
	}
	return nil
}

// RevokeUser ends every session of username: its refresh tokens are
// revoked and the access tokens issued to it so far are denied.
func (s *Service) RevokeUser(ctx context.Context, username string) error {
	if err := s.store.RevokeAllForUser(ctx, username); err != nil {
		return fmt.Errorf("revoke refresh tokens of a user: %w", err)
	}
	now := s.cfg.Now()
	if err := s.revoked.RevokeSubject(ctx, username, now, now.Add(s.cfg.TokenLifetime+s.cfg.ClockSkew)); err != nil {
		return fmt.Errorf("revoke access tokens of a user: %w", err)
	}
	s.log.Info().Str("user_digest", UsernameDigest(username)).Str("outcome", "user_sessions_revoked").Msg("sessions revoked")
	return nil
}

// TokenLifetime returns the configured access-token lifetime.
func (s *Service) TokenLifetime() time.Duration { return s.cfg.TokenLifetime }

// headerAlg returns the alg of a JWT's header, or "" when it has none.
func headerAlg(token string) string {
	head, _, _ := strings.Cut(token, ".")
	b, err := b64.DecodeString(head)
	if err != nil {
		return ""
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if json.Unmarshal(b, &h) != nil {
		return ""
	}
	return h.Alg
}

// newID returns a random (version 4) UUID: a token id or session family.
func newID() string { return uuid.NewString() }
