package httpapi_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/akvsync/akvsync/internal/auth"
	"github.com/akvsync/akvsync/internal/httpapi"
)

// hardCfg is the HTTP configuration of the hardening tests: small limits
// and a short header timeout so the tests are quick.
var hardCfg = httpapi.Config{
	MaxBodyBytes:      4 << 10,
	ReadHeaderTimeout: 300 * time.Millisecond,
	ReadTimeout:       3 * time.Second,
	WriteTimeout:      10 * time.Second,
	IdleTimeout:       10 * time.Second,
	MaxHeaderBytes:    8 << 10,
}

// hardSetup is the harness's setup, but serving the API over a listener
// configured like production: the http.Server settings of
// httpapi.NewServer(hardCfg, handler) copied into the test server.
func hardSetup(t *testing.T) *env {
	t.Helper()
	e := setup(t, func(o *options) { o.http = hardCfg })
	handler := e.srv.Config.Handler
	prod := httpapi.NewServer(hardCfg, handler)
	ts := httptest.NewUnstartedServer(handler)
	ts.Config.ReadHeaderTimeout = prod.ReadHeaderTimeout
	ts.Config.ReadTimeout = prod.ReadTimeout
	ts.Config.WriteTimeout = prod.WriteTimeout
	ts.Config.IdleTimeout = prod.IdleTimeout
	ts.Config.MaxHeaderBytes = prod.MaxHeaderBytes
	if ts.Config.ReadHeaderTimeout != hardCfg.ReadHeaderTimeout || ts.Config.MaxHeaderBytes != httpapi.HeaderHardLimitFactor*hardCfg.MaxHeaderBytes {
		t.Fatalf("NewServer did not apply the config: %+v", prod)
	}
	ts.Start()
	t.Cleanup(ts.Close)
	e.srv.Close() // the harness's plain server is not used
	e.srv = ts
	return e
}

// TestHardening sends bad input of every kind to one server and then
// checks that it still serves and that none of it created anything.
func TestHardening(t *testing.T) {
	t.Parallel()
	e := hardSetup(t)
	e.addVaults(t, testSub, "vault-a")
	validJob := `{"key_vaults":["vault-a"]}`

	t.Run("a client sending headers slower than ReadHeaderTimeout is disconnected", func(t *testing.T) {
		// Timed from before the dial: the server's header deadline starts
		// when it accepts, which is after the dial began.
		start := time.Now()
		conn, err := net.Dial("tcp", e.srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		// The writer trickles a header that never ends, one byte every
		// 20 ms, until the server hangs up (a write fails) or we stop it.
		stop := make(chan struct{})
		writerDone := make(chan int)
		go func() {
			sent := 0
			defer func() { writerDone <- sent }()
			if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "); err != nil {
				return
			}
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				if _, err := conn.Write([]byte{'a'}); err != nil {
					return
				}
				sent++
			}
		}()
		// The server must close the connection (EOF or reset) by the header
		// timeout, well before ReadTimeout (which would also end it) and our
		// own read deadline; a deadline hit means it kept it open.
		deadline := hardCfg.ReadTimeout + 2*time.Second
		if err := conn.SetReadDeadline(time.Now().Add(deadline)); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(conn)
		elapsed := time.Since(start)
		close(stop)
		sent := <-writerDone
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("connection still open after %s (sent %d slow bytes)", elapsed, sent)
		}
		if bytes.HasPrefix(got, []byte("HTTP/1.1 200")) {
			t.Fatalf("the slow request was served: %q", got)
		}
		if elapsed < hardCfg.ReadHeaderTimeout {
			t.Fatalf("closed after %s, before the header timeout %s: %v %q", elapsed, hardCfg.ReadHeaderTimeout, err, got)
		}
		if elapsed >= hardCfg.ReadTimeout {
			t.Fatalf("closed after %s: by ReadTimeout %s, not ReadHeaderTimeout %s", elapsed, hardCfg.ReadTimeout, hardCfg.ReadHeaderTimeout)
		}
		if sent == 0 {
			t.Fatalf("no slow byte was sent before the close")
		}
		t.Logf("disconnected after %s, %d slow bytes, read %q, err %v", elapsed, sent, got, err)
	})

	t.Run("a slow client does not block others", func(t *testing.T) {
		conn, err := net.Dial("tcp", e.srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: a"); err != nil {
			t.Fatal(err)
		}
		e.do(t, "GET", "/healthz", "", "").wantStatus(t, http.StatusOK)
	})

	t.Run("a client that stalls in its body is cut off by ReadTimeout", func(t *testing.T) {
		conn, err := net.Dial("tcp", e.srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		start := time.Now()
		if _, err := io.WriteString(conn, "POST "+tokensPath+" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"username\":"); err != nil {
			t.Fatal(err)
		}
		if err := conn.SetReadDeadline(time.Now().Add(hardCfg.ReadTimeout + 5*time.Second)); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(conn)
		elapsed := time.Since(start)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("connection still open after %s", elapsed)
		}
		if bytes.HasPrefix(got, []byte("HTTP/1.1 200")) {
			t.Fatalf("the stalled request was served: %q", got)
		}
		if host, _, _ := net.SplitHostPort(e.srv.Listener.Addr().String()); bytes.Contains(got, []byte(host+":")) {
			t.Fatalf("the answer reveals the server's socket address: %q", got)
		}
		t.Logf("cut off after %s: %q %v", elapsed, got, err)
	})

	t.Run("oversized headers are 431", func(t *testing.T) {
		for name, set := range map[string]func(h http.Header){
			"one huge header": func(h http.Header) { h.Set("X-Big", strings.Repeat("a", 3*hardCfg.MaxHeaderBytes)) },
			"many headers": func(h http.Header) {
				for i := range 2 * hardCfg.MaxHeaderBytes / 64 {
					h.Set(fmt.Sprintf("X-H-%d", i), strings.Repeat("b", 64))
				}
			},
			"huge authorization": func(h http.Header) {
				h.Set("Authorization", "Bearer "+strings.Repeat("c", 3*hardCfg.MaxHeaderBytes))
			},
		} {
			t.Run(name, func(t *testing.T) {
				before := e.state(t)
				req, err := http.NewRequestWithContext(testCtx(t), "POST", e.srv.URL+jobsPath, strings.NewReader(validJob))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Authorization", "Bearer "+e.tokens["alice"])
				set(req.Header)
				resp, err := e.srv.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				// Issue 12, finding 4: in CCKM's error shape.
				r := response{status: resp.StatusCode, header: resp.Header, body: readAll(t, resp)}
				r.wantError(t, http.StatusRequestHeaderFieldsTooLarge, "NCERRHeadersTooLarge", "exceed")
				if after := e.state(t); after != before {
					t.Errorf("state changed: %+v → %+v", before, after)
				}
			})
		}
	})

	t.Run("oversized bodies are 413 and create nothing", func(t *testing.T) {
		// Each body is valid and would succeed but for its size: the
		// padding is JSON whitespace inside the object.
		pad := func(n int) string { return strings.Repeat(" ", n) }
		tests := []struct {
			name, path, token, body string
		}{
			{"start a sync", jobsPath, e.tokens["alice"], `{"key_vaults":` + pad(2*int(hardCfg.MaxBodyBytes)) + `["vault-a"]}`},
			{"register vaults", addPath, e.tokens["alice"], strings.Replace(addBody(testSub, "vault-big"), `"vaults":`, `"vaults":`+pad(2*int(hardCfg.MaxBodyBytes)), 1)},
			{"log in", tokensPath, "", `{"username":"alice",` + pad(2*auth.DefaultMaxTokenRequestBytes) + `"password":"alice-password-1"}`},
			{"log in with a 1 MiB body", tokensPath, "", `{"username":"alice",` + pad(1<<20) + `"password":"alice-password-1"}`},
		}
		for _, tt := range tests {
			for _, chunked := range []bool{false, true} {
				name := tt.name + " with Content-Length"
				if chunked {
					name = tt.name + " chunked"
				}
				t.Run(name, func(t *testing.T) {
					before := e.state(t)
					var body io.Reader = strings.NewReader(tt.body)
					if chunked {
						body = io.MultiReader(body) // hides the length: chunked encoding
					}
					req, err := http.NewRequestWithContext(testCtx(t), "POST", e.srv.URL+tt.path, body)
					if err != nil {
						t.Fatal(err)
					}
					req.Header.Set("Content-Type", "application/json")
					if tt.token != "" {
						req.Header.Set("Authorization", "Bearer "+tt.token)
					}
					resp, err := e.srv.Client().Do(req)
					if err != nil {
						t.Fatal(err)
					}
					defer resp.Body.Close()
					r := response{status: resp.StatusCode, header: resp.Header, body: readAll(t, resp)}
					r.wantError(t, http.StatusRequestEntityTooLarge, "NCERRRequestTooLarge", "too large")
					if bytes.Contains(r.body, []byte(`"jwt"`)) {
						t.Errorf("a token was issued: %s", r.body)
					}
					if after := e.state(t); after != before {
						t.Errorf("state changed: %+v → %+v", before, after)
					}
				})
			}
		}
		r := e.as(t, "alice", "GET", vaultsPath+"?name=vault-big", "")
		r.wantStatus(t, http.StatusOK)
		var page httpapi.Page[httpapi.VaultJSON]
		r.decode(t, &page)
		if page.Total != 0 {
			t.Errorf("an oversized add-vaults registered %d vaults", page.Total)
		}
	})

	t.Run("forged and broken tokens are 401 naming the reason", func(t *testing.T) {
		now := e.clock.Now()
		good := hardClaims("alice", "admin", now)
		rightKey := bytes.Repeat([]byte{7}, 32) // the harness's signing key k1
		wrongKey := bytes.Repeat([]byte{8}, 32)
		skew := int64(auth.DefaultClockSkew / time.Second)

		// The forger itself must be right, or every case below passes for
		// the wrong reason: a hand-made token with the right key works.
		t.Run("a hand-made token with the right key is accepted", func(t *testing.T) {
			tok := hardJWT(t, map[string]any{"alg": "HS256", "typ": "JWT", "kid": "k1"}, good, rightKey)
			e.do(t, "GET", vaultsPath, tok, "").wantStatus(t, http.StatusOK)
		})

		with := func(mod func(c map[string]any)) map[string]any {
			c := map[string]any{}
			for k, v := range good {
				c[k] = v
			}
			mod(c)
			return c
		}
		hs := map[string]any{"alg": "HS256", "typ": "JWT", "kid": "k1"}
		tests := []struct {
			name, token, msg string
		}{
			{"alg none", hardJWTUnsigned(map[string]any{"alg": "none", "typ": "JWT", "kid": "k1"}, good), "Signing method is invalid"},
			{"alg None without kid", hardJWTUnsigned(map[string]any{"alg": "None", "typ": "JWT"}, good), "Signing method is invalid"},
			{"alg HS512", hardJWT(t, map[string]any{"alg": "HS512", "typ": "JWT", "kid": "k1"}, good, rightKey), "Signing method is invalid"},
			{"unknown kid", hardJWT(t, map[string]any{"alg": "HS256", "typ": "JWT", "kid": "k9"}, good, wrongKey), "Token signing key is unknown"},
			{"right kid, wrong key", hardJWT(t, hs, good, wrongKey), "Signature is invalid"},
			{"role raised in the payload", hardResign(t, hardJWT(t, hs, hardClaims("victor", "viewer", now), rightKey), with(func(c map[string]any) { c["sub"] = "victor" })), "Signature is invalid"},
			{"expired", hardJWT(t, hs, with(func(c map[string]any) {
				c["iat"], c["nbf"], c["exp"] = now.Unix()-600, now.Unix()-600, now.Unix()-skew-5
			}), rightKey), "Token is expired"},
			{"not yet valid", hardJWT(t, hs, with(func(c map[string]any) {
				c["nbf"] = now.Unix() + skew + 60
				c["exp"] = now.Unix() + 600
			}), rightKey), "Token is not valid yet"},
			{"issued in the future", hardJWT(t, hs, with(func(c map[string]any) {
				c["iat"], c["nbf"], c["exp"] = now.Unix()+skew+60, now.Unix()+skew+60, now.Unix()+900
			}), rightKey), "Token is not valid yet"},
			{"wrong issuer", hardJWT(t, hs, with(func(c map[string]any) { c["iss"] = "evil" }), rightKey), "Token issuer is invalid"},
			{"two segments", hardTwoSegments(hardJWT(t, hs, good, rightKey)), "Token is malformed"},
			{"bad base64 header", "e" + hardJWT(t, hs, good, rightKey), "Token is malformed"},
			{"bad base64 signature", hardJWT(t, hs, good, rightKey) + "A", "Token is malformed"},
			{"padded base64", hardPadded(hardJWT(t, hs, good, rightKey)), "Token is malformed"},
			{"huge token", strings.Repeat("a", 2000) + "." + strings.Repeat("b", 2000) + "." + strings.Repeat("c", 2000), "Token is malformed"},
			{"empty segments", "..", "Token is malformed"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				before := e.state(t)
				for _, req := range []struct{ method, path, body string }{
					{"POST", jobsPath, validJob},
					{"GET", vaultsPath, ""},
				} {
					r := e.do(t, req.method, req.path, tt.token, req.body)
					ae := r.wantError(t, http.StatusUnauthorized, "NCERRUnauthorized", "Unauthorized: Bearer token malformed: "+tt.msg)
					if t.Failed() {
						t.Logf("%s %s: %+v", req.method, req.path, ae)
					}
					if got := r.header.Get("WWW-Authenticate"); got != `Bearer realm="akvsync"` {
						t.Errorf("WWW-Authenticate %q", got)
					}
				}
				if after := e.state(t); after != before {
					t.Errorf("state changed: %+v → %+v", before, after)
				}
			})
		}
	})

	t.Run("the server still serves after all of it", func(t *testing.T) {
		if got := e.state(t); got != (state{}) {
			t.Fatalf("bad input changed state: %+v", got)
		}
		e.do(t, "GET", "/healthz", "", "").wantStatus(t, http.StatusOK)
		e.do(t, "GET", "/readyz", "", "").wantStatus(t, http.StatusOK)
		tok := e.login(t, "alice", "alice-password-1")
		r := e.do(t, "POST", jobsPath, tok, validJob)
		r.wantStatus(t, http.StatusCreated)
		if got := e.state(t); got.jobs != 1 || got.locks != 1 || got.requests != 1 {
			t.Fatalf("state after one valid job: %+v", got)
		}
	})
}

// hardClaims are valid claims for user/role at now.
func hardClaims(user, role string, now time.Time) map[string]any {
	return map[string]any{
		"sub": user, "role": role, "iss": auth.DefaultIssuer,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
		"jti": fmt.Sprintf("hand-made-%d", now.UnixNano()),
	}
}

var hardB64 = base64.RawURLEncoding

// hardJWT builds a compact JWT by hand: base64url JSON + HMAC-SHA256.
func hardJWT(t *testing.T, header, claims map[string]any, key []byte) string {
	t.Helper()
	input := hardSigningInput(t, header, claims)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(input))
	return input + "." + hardB64.EncodeToString(mac.Sum(nil))
}

// hardJWTUnsigned builds an "alg: none" style token: empty signature.
func hardJWTUnsigned(header, claims map[string]any) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	return hardB64.EncodeToString(h) + "." + hardB64.EncodeToString(c) + "."
}

func hardSigningInput(t *testing.T, header, claims map[string]any) string {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return hardB64.EncodeToString(h) + "." + hardB64.EncodeToString(c)
}

// hardResign keeps token's header and signature but swaps in other claims
// (a payload edited after signing).
func hardResign(t *testing.T, token string, claims map[string]any) string {
	t.Helper()
	parts := strings.Split(token, ".")
	c, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return parts[0] + "." + hardB64.EncodeToString(c) + "." + parts[2]
}

// hardTwoSegments drops the signature segment and its dot.
func hardTwoSegments(token string) string {
	return token[:strings.LastIndex(token, ".")]
}

// hardPadded spells the signature non-canonically: the same bytes, but the
// unused low bits of the last base64 character set. A strict decoder must
// refuse it, so a token has a single accepted spelling.
func hardPadded(token string) string {
	parts := strings.Split(token, ".")
	sig, _ := hardB64.DecodeString(parts[2])
	// 32 bytes encode to 43 characters whose last one carries 2 unused
	// bits; setting them gives a non-canonical spelling of the same bytes.
	enc := []byte(hardB64.EncodeToString(sig))
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, enc[len(enc)-1])
	enc[len(enc)-1] = alphabet[i|3]
	return parts[0] + "." + parts[1] + "." + string(enc)
}
