package akvemu

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1" // #nosec G505 -- only to look certificates up by the SHA-1 thumbprint (x5t) Entra ID client assertions carry
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// Audiences (resources) of the access tokens the emulated services accept.
const (
	// VaultAudience is the audience of Key Vault access tokens.
	VaultAudience = "https://vault.azure.net"
	// ManagedHSMAudience is the audience of managed HSM access tokens, named by a
	// pool's 401 challenge.
	ManagedHSMAudience = "https://managedhsm.azure.net"
	// ResourceManagerAudience is the audience of Azure Resource Manager tokens
	// (scope https://management.azure.com/.default), azcore's default for ARM.
	ResourceManagerAudience = "https://management.azure.com"
	// ResourceManagerClassicAudience is ARM's other accepted audience
	// (scope https://management.core.windows.net/.default).
	ResourceManagerClassicAudience = "https://management.core.windows.net"
)

// clientAssertionType is the only client_assertion_type Entra ID accepts.
const clientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// TokenStats counts token endpoint requests.
type TokenStats struct {
	// Issued is the number of access tokens issued.
	Issued int64 `json:"issued"`
	// Failed is the number of rejected token requests.
	Failed int64 `json:"failed"`
}

// principalRec is a registered application.
type principalRec struct {
	clientID string
	secret   string
	oid      string
	certs    map[string]*x509.Certificate // by x5t#S256 and x5t (standard base64)
	roles    []string
}

// tokenInfo is what a vault needs from a verified access token.
type tokenInfo struct {
	exp   int64
	tid   string
	appid string
	oid   string
	aud   string
}

// accessClaims are the claims of an issued access token (v1 shape, as Key Vault gets).
type accessClaims struct {
	Aud      string `json:"aud"`
	Iss      string `json:"iss"`
	Iat      int64  `json:"iat"`
	Nbf      int64  `json:"nbf"`
	Exp      int64  `json:"exp"`
	Appid    string `json:"appid"`
	Appidacr string `json:"appidacr"`
	Azp      string `json:"azp"`
	Idp      string `json:"idp"`
	Idtyp    string `json:"idtyp"`
	Oid      string `json:"oid"`
	Sub      string `json:"sub"`
	Tid      string `json:"tid"`
	Uti      string `json:"uti"`
	Ver      string `json:"ver"`
	// Roles are the principal's application roles (absent when none).
	Roles []string `json:"roles,omitempty"`
}

// accessClaims are read by github.com/golang-jwt/jwt/v5 through these
// methods (jwt.Claims).

func (c accessClaims) GetExpirationTime() (*jwt.NumericDate, error) {
	return jwt.NewNumericDate(time.Unix(c.Exp, 0)), nil
}
func (c accessClaims) GetIssuedAt() (*jwt.NumericDate, error) {
	return jwt.NewNumericDate(time.Unix(c.Iat, 0)), nil
}
func (c accessClaims) GetNotBefore() (*jwt.NumericDate, error) {
	return jwt.NewNumericDate(time.Unix(c.Nbf, 0)), nil
}
func (c accessClaims) GetIssuer() (string, error)             { return c.Iss, nil }
func (c accessClaims) GetSubject() (string, error)            { return c.Sub, nil }
func (c accessClaims) GetAudience() (jwt.ClaimStrings, error) { return jwt.ClaimStrings{c.Aud}, nil }

// tokenService is the emulated Entra ID: it registers principals, issues ES256 access
// tokens and verifies them for the vaults.
type tokenService struct {
	key       *ecdsa.PrivateKey
	kid       string
	tenant    string
	lifetime  time.Duration
	authority string // https://127.0.0.1:PORT (no trailing slash)

	mu         sync.RWMutex
	principals map[string]*principalRec
	audiences  map[string]bool

	cache      sync.Map // token string -> *tokenInfo
	cacheSize  atomic.Int64
	issued     atomic.Int64
	failed     atomic.Int64
	issueCount atomic.Uint64
}

func newTokenService(tenant string, lifetime time.Duration) (*tokenService, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate token signing key: %w", err)
	}
	kidSum := sha256.Sum256(keyID(&key.PublicKey))
	kid := base64.RawURLEncoding.EncodeToString(kidSum[:12])
	return &tokenService{
		key: key, kid: kid,
		tenant: tenant, lifetime: lifetime,
		principals: map[string]*principalRec{},
		audiences: map[string]bool{VaultAudience: true, ManagedHSMAudience: true,
			ResourceManagerAudience: true, ResourceManagerClassicAudience: true},
	}, nil
}

func (ts *tokenService) stats() TokenStats {
	return TokenStats{Issued: ts.issued.Load(), Failed: ts.failed.Load()}
}

// addPrincipal registers or extends a principal.
func (ts *tokenService) addPrincipal(p Principal) error {
	var certs []*x509.Certificate
	rest := []byte(p.CertificatesPEM)
	for len(rest) > 0 {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return fmt.Errorf("principal %s: parse certificate: %w", p.ClientID, err)
		}
		certs = append(certs, c)
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	rec := ts.principals[lower(p.ClientID)]
	if rec == nil {
		rec = &principalRec{clientID: p.ClientID, oid: derivedUUID("oid", p.ClientID), certs: map[string]*x509.Certificate{}}
		ts.principals[lower(p.ClientID)] = rec
	}
	if p.ClientSecret != "" {
		rec.secret = p.ClientSecret
	}
	if len(p.Roles) > 0 {
		rec.roles = append([]string(nil), p.Roles...)
	}
	for _, c := range certs {
		rec.addCert(c)
	}
	return nil
}

func (r *principalRec) addCert(c *x509.Certificate) {
	s256 := sha256.Sum256(c.Raw)
	s1 := sha1.Sum(c.Raw) // #nosec G401 -- SHA-1 is the certificate thumbprint (x5t) Entra ID client assertions name; a lookup key, not a signature
	r.certs[base64.StdEncoding.EncodeToString(s256[:])] = c
	r.certs[base64.StdEncoding.EncodeToString(s1[:])] = c
}

func (ts *tokenService) principal(clientID string) *principalRec {
	ts.mu.RLock()
	defer ts.mu.RUnlock()
	return ts.principals[lower(clientID)]
}

func (ts *tokenService) addAudience(aud string) {
	ts.mu.Lock()
	ts.audiences[aud] = true
	ts.mu.Unlock()
}

func (ts *tokenService) knownAudience(aud string) bool {
	ts.mu.RLock()
	defer ts.mu.RUnlock()
	return ts.audiences[strings.TrimSuffix(aud, "/")]
}

func (ts *tokenService) issuer() string { return "https://sts.windows.net/" + ts.tenant + "/" }

// issue signs an access token for a principal and audience.
func (ts *tokenService) issue(rec *principalRec, aud string, acr string, lifetime time.Duration) (string, error) {
	now := time.Now()
	n := ts.issueCount.Add(1)
	claims := accessClaims{
		Aud: aud, Iss: ts.issuer(), Iat: now.Unix(), Nbf: now.Unix() - 300, Exp: now.Add(lifetime).Unix(),
		Appid: rec.clientID, Appidacr: acr, Azp: rec.clientID, Idp: ts.issuer(), Idtyp: "app",
		Oid: rec.oid, Sub: rec.oid, Tid: ts.tenant, Ver: "1.0",
		Uti:   base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatUint(n, 36) + "akvemu")),
		Roles: rec.roles,
	}
	t := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	t.Header["kid"] = ts.kid
	tok, err := t.SignedString(ts.key)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return tok, nil
}

//lint:file-ignore ST1005 the token errors below are Key Vault's own messages, verbatim.

// mintAppToken signs an access token of the tenant for a first-party application
// (Event Grid's webhook deliveries) with the same key and claims as issued tokens,
// so it verifies against the JWKS. It is not counted in TokenStats.
func (ts *tokenService) mintAppToken(appID, aud string) (string, error) {
	return ts.issue(&principalRec{clientID: appID, oid: derivedUUID("oid", appID)}, aud, "2", ts.lifetime)
}

// Token verification failures, answered 401 by the vaults.
var (
	errTokenMalformed = errors.New("AKV10001: Token is malformed or has an invalid format.")
	errTokenSignature = errors.New("AKV10046: Unable to resolve the key used for signature validation.")
	errTokenExpired   = errors.New("[TokenExpired] Error validating token: 'S2S12086'.")
)

// TokenClockSkew is how long past its exp claim a vault still honours a token. The
// service allows minutes; the emulator keeps it short so expiry can be tested with
// short lifetimes, yet long enough that a client refreshing at expires_in never races.
const TokenClockSkew = 2 * time.Second

// maxCachedTokens bounds the verified-token cache.
const maxCachedTokens = 4096

// verify checks signature and expiry, caching verified tokens so that the hot path
// is one map lookup. Audience and tenant are checked by the caller.
func (ts *tokenService) verify(tok string, now int64) (*tokenInfo, error) {
	if v, ok := ts.cache.Load(tok); ok {
		ti := v.(*tokenInfo)
		if now > ti.exp+int64(TokenClockSkew/time.Second) {
			return nil, errTokenExpired
		}
		return ti, nil
	}
	var c accessClaims
	_, err := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodES256.Alg()}),
		jwt.WithTimeFunc(func() time.Time { return time.Unix(now, 0) }),
		jwt.WithLeeway(TokenClockSkew),
		jwt.WithExpirationRequired(),
	).ParseWithClaims(tok, &c, func(t *jwt.Token) (any, error) {
		if kid, _ := t.Header["kid"].(string); kid != ts.kid {
			return nil, errTokenSignature
		}
		return &ts.key.PublicKey, nil
	})
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, errTokenExpired
	case errors.Is(err, errTokenSignature), errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return nil, errTokenSignature
	case err != nil:
		return nil, errTokenMalformed
	}
	ti := &tokenInfo{exp: c.Exp, tid: c.Tid, appid: c.Appid, oid: c.Oid, aud: c.Aud}
	if now > ti.exp+int64(TokenClockSkew/time.Second) {
		return nil, errTokenExpired
	}
	if ts.cacheSize.Add(1) > maxCachedTokens {
		ts.cache.Range(func(k, v any) bool {
			if now > v.(*tokenInfo).exp+int64(TokenClockSkew/time.Second) || ts.cacheSize.Load() > maxCachedTokens {
				ts.cache.Delete(k)
				ts.cacheSize.Add(-1)
			}
			return true
		})
	}
	ts.cache.Store(tok, ti)
	return ti, nil
}

// ---- Entra ID endpoints ----

// aadError is an OAuth error answer in Entra ID's shape.
type aadError struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
	ErrorCodes       []int  `json:"error_codes"`
	Timestamp        string `json:"timestamp"`
	TraceID          string `json:"trace_id"`
	CorrelationID    string `json:"correlation_id"`
	ErrorURI         string `json:"error_uri"`
}

func (ts *tokenService) writeAADError(w http.ResponseWriter, status int, errCode string, aadsts int, desc string) {
	ts.failed.Add(1)
	now := time.Now().UTC()
	trace := derivedUUID("trace", strconv.FormatInt(now.UnixNano(), 10))
	body := aadError{
		Error:            errCode,
		ErrorDescription: fmt.Sprintf("AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s", aadsts, desc, trace, trace, now.Format("2006-01-02 15:04:05Z")),
		ErrorCodes:       []int{aadsts},
		Timestamp:        now.Format("2006-01-02 15:04:05Z"),
		TraceID:          trace,
		CorrelationID:    trace,
		ErrorURI:         ts.authority + "/error?code=" + strconv.Itoa(aadsts),
	}
	writeJSON(w, status, body)
}

// handler serves the token, discovery and key endpoints under /{tenant}/…
func (ts *tokenService) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", ts.serveToken)
	mux.HandleFunc("GET /{tenant}/v2.0/.well-known/openid-configuration", ts.serveDiscovery)
	mux.HandleFunc("GET /{tenant}/.well-known/openid-configuration", ts.serveDiscovery)
	mux.HandleFunc("GET /{tenant}/discovery/v2.0/keys", ts.serveKeys)
	mux.HandleFunc("GET /{tenant}/discovery/keys", ts.serveKeys)
	mux.HandleFunc("GET /common/discovery/instance", ts.serveInstanceDiscovery)
	return mux
}

func (ts *tokenService) tenantOK(w http.ResponseWriter, r *http.Request) bool {
	t := r.PathValue("tenant")
	if strings.EqualFold(t, ts.tenant) {
		return true
	}
	ts.writeAADError(w, http.StatusBadRequest, "invalid_tenant", 90002,
		fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", t))
	return false
}

func (ts *tokenService) serveDiscovery(w http.ResponseWriter, r *http.Request) {
	if !ts.tenantOK(w, r) {
		return
	}
	base := ts.authority + "/" + ts.tenant
	writeJSON(w, http.StatusOK, map[string]any{
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"jwks_uri":                              base + "/discovery/v2.0/keys",
		"response_modes_supported":              []string{"query", "fragment", "form_post"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"ES256"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"issuer":                                base + "/v2.0",
		"request_uri_parameter_supported":       false,
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"device_authorization_endpoint":         base + "/oauth2/v2.0/devicecode",
		"end_session_endpoint":                  base + "/oauth2/v2.0/logout",
		"tenant_region_scope":                   "EU",
		"cloud_instance_name":                   "akvemu",
		"cloud_graph_host_name":                 "graph.windows.net",
		"msgraph_host":                          "graph.microsoft.com",
	})
}

func (ts *tokenService) serveInstanceDiscovery(w http.ResponseWriter, r *http.Request) {
	host := strings.TrimPrefix(ts.authority, "https://")
	writeJSON(w, http.StatusOK, map[string]any{
		"tenant_discovery_endpoint": ts.authority + "/" + ts.tenant + "/v2.0/.well-known/openid-configuration",
		"api-version":               "1.1",
		"metadata":                  []map[string]any{{"preferred_network": host, "preferred_cache": host, "aliases": []string{host}}},
	})
}

func (ts *tokenService) serveKeys(w http.ResponseWriter, r *http.Request) {
	if !ts.tenantOK(w, r) {
		return
	}
	pt, err := ts.key.PublicKey.Bytes() // 0x04 || X || Y, 32 bytes each for P-256
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "server_error"})
		return
	}
	x, y := pt[1:33], pt[33:65]
	writeJSON(w, http.StatusOK, map[string]any{"keys": []map[string]string{{
		"kty": "EC", "use": "sig", "kid": ts.kid, "crv": "P-256", "x": b64(x), "y": b64(y), "alg": "ES256",
	}}})
}

func (ts *tokenService) serveToken(w http.ResponseWriter, r *http.Request) {
	if !ts.tenantOK(w, r) {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		ts.writeAADError(w, http.StatusBadRequest, "invalid_request", 900144, "The request body must be application/x-www-form-urlencoded.")
		return
	}
	form := r.PostForm
	if gt := form.Get("grant_type"); gt != "client_credentials" {
		ts.writeAADError(w, http.StatusBadRequest, "unsupported_grant_type", 70003,
			fmt.Sprintf("The app requested an unsupported grant type '%s'.", gt))
		return
	}
	clientID := form.Get("client_id")
	if clientID == "" {
		ts.writeAADError(w, http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'client_id'.")
		return
	}
	aud, ok := ts.audienceFromScope(w, form.Get("scope"))
	if !ok {
		return
	}
	rec := ts.principal(clientID)
	if rec == nil {
		ts.writeAADError(w, http.StatusBadRequest, "unauthorized_client", 700016,
			fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.", clientID, ts.tenant))
		return
	}
	acr := "1"
	switch {
	case form.Get("client_assertion") != "":
		if form.Get("client_assertion_type") != clientAssertionType {
			ts.writeAADError(w, http.StatusBadRequest, "invalid_request", 50027, "Invalid client_assertion_type.")
			return
		}
		if code, desc := ts.verifyAssertion(rec, form.Get("client_assertion")); code != 0 {
			ts.writeAADError(w, http.StatusUnauthorized, "invalid_client", code, desc)
			return
		}
		acr = "2"
	case form.Get("client_secret") != "":
		if rec.secret == "" || subtle.ConstantTimeCompare([]byte(rec.secret), []byte(form.Get("client_secret"))) != 1 {
			ts.writeAADError(w, http.StatusUnauthorized, "invalid_client", 7000215,
				fmt.Sprintf("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", clientID))
			return
		}
	default:
		ts.writeAADError(w, http.StatusUnauthorized, "invalid_client", 7000218,
			"The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
		return
	}
	tok, err := ts.issue(rec, aud, acr, ts.lifetime)
	if err != nil {
		ts.writeAADError(w, http.StatusInternalServerError, "server_error", 90100, "Failed to issue a token.")
		return
	}
	ts.issued.Add(1)
	secs := int64(ts.lifetime / time.Second)
	w.Header().Set("Cache-Control", "no-store, no-cache")
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type": "Bearer", "expires_in": secs, "ext_expires_in": secs, "access_token": tok,
	})
}

// audienceFromScope maps "<resource>/.default" (plus OIDC scopes) to a known audience.
func (ts *tokenService) audienceFromScope(w http.ResponseWriter, scope string) (string, bool) {
	var resource string
	for _, s := range strings.Fields(scope) {
		switch s {
		case "openid", "offline_access", "profile", "email":
			continue
		}
		if !strings.HasSuffix(s, "/.default") {
			ts.writeAADError(w, http.StatusBadRequest, "invalid_scope", 1002012,
				fmt.Sprintf("The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", s))
			return "", false
		}
		resource = strings.TrimSuffix(s, "/.default")
	}
	if resource == "" {
		ts.writeAADError(w, http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'scope'.")
		return "", false
	}
	if !ts.knownAudience(resource) {
		ts.writeAADError(w, http.StatusBadRequest, "invalid_resource", 500011,
			fmt.Sprintf("The resource principal named %s was not found in the tenant named %s. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.", resource, ts.tenant))
		return "", false
	}
	return strings.TrimSuffix(resource, "/"), true
}

// verifyAssertion checks a client assertion JWT signed with a registered certificate.
// It returns an AADSTS code and description on failure, 0 on success.
func (ts *tokenService) verifyAssertion(rec *principalRec, assertion string) (int, string) {
	var claims struct {
		Aud any    `json:"aud"`
		Iss string `json:"iss"`
		Sub string `json:"sub"`
		jwt.RegisteredClaims
	}
	var thumb string
	errUnknownCert := errors.New("certificate not registered")
	_, err := jwt.NewParser(
		jwt.WithValidMethods([]string{"PS256", "RS256", "ES256"}),
		jwt.WithLeeway(300*time.Second),
	).ParseWithClaims(assertion, &claims, func(t *jwt.Token) (any, error) {
		x5t, _ := t.Header["x5t"].(string)
		x5tS256, _ := t.Header["x5t#S256"].(string)
		thumb = x5tS256 + x5t
		ts.mu.RLock()
		cert := rec.certs[x5tS256]
		if cert == nil && x5t != "" {
			cert = rec.certs[x5t]
		}
		ts.mu.RUnlock()
		if cert == nil {
			return nil, errUnknownCert
		}
		return cert.PublicKey, nil
	})
	switch {
	case errors.Is(err, errUnknownCert):
		return 700027, fmt.Sprintf("The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '%s']", thumb)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return 700027, "Client assertion failed signature validation."
	case errors.Is(err, jwt.ErrTokenExpired), errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return 700024, "Client assertion is not within its valid time range."
	case err != nil:
		return 50027, "JWT token is invalid or malformed."
	}
	if claims.Iss != rec.clientID || claims.Sub != rec.clientID {
		return 700021, "Client assertion application identifier doesn't match 'client_id' parameter."
	}
	tokenEndpoint := ts.authority + "/" + ts.tenant + "/oauth2/v2.0/token"
	audOK := false
	check := func(a string) {
		if strings.EqualFold(strings.TrimSuffix(a, "/"), tokenEndpoint) || strings.EqualFold(strings.TrimSuffix(a, "/"), ts.authority+"/"+ts.tenant+"/v2.0") {
			audOK = true
		}
	}
	switch a := claims.Aud.(type) {
	case string:
		check(a)
	case []any:
		for _, x := range a {
			if s, ok := x.(string); ok {
				check(s)
			}
		}
	}
	if !audOK {
		return 700016, "Client assertion contains an invalid audience."
	}
	return 0, ""
}

// derivedUUID returns a stable UUID-formatted id for a namespace and value.
func derivedUUID(ns, value string) string {
	sum := sha256.Sum256([]byte(ns + "\x00" + value))
	var u uuid.UUID
	copy(u[:], sum[:16])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return u.String()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":"encoding failed"}`)
	}
	w.Header().Set("Content-Type", contentTypeJSON)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
