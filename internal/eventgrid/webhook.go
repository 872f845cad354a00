package eventgrid

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Defaults of [Config].
const (
	// DefaultRate is how many events per second one API process accepts
	// from Event Grid; past it the webhook answers 429 with Retry-After,
	// and Event Grid retries later.
	DefaultRate = 200.0
	// DefaultBurst is how many events may arrive at once above the rate:
	// Event Grid's largest batch, so a full batch is charged in full.
	DefaultBurst = MaxEvents
	// SecretHeader is the delivery header that carries a shared secret
	// (an Event Grid subscription's delivery property, marked secret).
	SecretHeader = "X-Akvsync-Webhook-Secret" // #nosec G101 -- a header name, not a credential
	// MinSecretLen is the shortest shared secret accepted.
	MinSecretLen = 16
)

// TokenVerifier verifies an Entra ID access token of a delivery and
// returns the caller; *auth.OIDCVerifier implements it (Identity).
type TokenVerifier interface {
	Identity(ctx context.Context, token string) (string, error)
}

// Secret is one Event Grid subscription's shared secret.
type Secret struct {
	// Name names the subscription in logs (never the secret).
	Name  string
	Value string
}

// Config configures the webhook. At least one of Secrets and Tokens is
// needed for any delivery to be accepted; without either, every delivery
// is refused (401).
type Config struct {
	// Secrets are the shared secrets deliveries may carry in SecretHeader.
	Secrets []Secret
	// Tokens verifies Entra ID bearer tokens (Event Grid's Microsoft Entra
	// delivery authentication).
	Tokens TokenVerifier
	// Rate and Burst bound the events accepted per second by this process
	// (defaults DefaultRate, DefaultBurst).
	Rate  float64
	Burst int
}

// WithDefaults returns c with zero fields replaced by defaults.
func (c Config) WithDefaults() Config {
	if c.Rate == 0 {
		c.Rate = DefaultRate
	}
	if c.Burst == 0 {
		c.Burst = DefaultBurst
	}
	return c
}

// Validate reports settings that cannot work.
func (c Config) Validate() error {
	c = c.WithDefaults()
	if c.Rate <= 0 || c.Burst < 1 || math.IsInf(c.Rate, 0) || math.IsNaN(c.Rate) {
		return fmt.Errorf("%w: rate must be positive and burst at least 1", ErrInvalidConfig)
	}
	names := map[string]bool{}
	for _, s := range c.Secrets {
		switch {
		case s.Name == "":
			return fmt.Errorf("%w: a webhook secret has no name", ErrInvalidConfig)
		case names[s.Name]:
			return fmt.Errorf("%w: webhook secret %q given twice", ErrInvalidConfig, s.Name)
		case len(s.Value) < MinSecretLen:
			return fmt.Errorf("%w: webhook secret %q is shorter than %d characters", ErrInvalidConfig, s.Name, MinSecretLen)
		}
		names[s.Name] = true
	}
	return nil
}

// ParseSecrets reads a secrets file: one "<name> <secret>" per line;
// blank lines and lines starting with # are skipped.
func ParseSecrets(r io.Reader) ([]Secret, error) {
	var out []Secret
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return nil, fmt.Errorf("%w: secrets line %d: want \"<name> <secret>\"", ErrInvalidConfig, n)
		}
		out = append(out, Secret{Name: f[0], Value: f[1]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: read secrets: %w", ErrInvalidConfig, err)
	}
	return out, nil
}

// Webhook authenticates and paces Event Grid deliveries. It is safe for
// concurrent use.
type Webhook struct {
	cfg     Config
	secrets []hashedSecret
	mu      sync.Mutex
	limiter *rate.Limiter
}

// hashedSecret keeps a secret's digest only; deliveries are compared by
// digest, in constant time.
type hashedSecret struct {
	name   string
	digest [sha256.Size]byte
}

// New returns a webhook for cfg.
func New(cfg Config) (*Webhook, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	w := &Webhook{cfg: cfg, limiter: rate.NewLimiter(rate.Limit(cfg.Rate), cfg.Burst)}
	for _, s := range cfg.Secrets {
		w.secrets = append(w.secrets, hashedSecret{name: s.Name, digest: sha256.Sum256([]byte(s.Value))})
	}
	cfg.Secrets = nil
	w.cfg = cfg
	return w, nil
}

// Authenticate checks a delivery's credential: a shared secret in
// SecretHeader or an Entra ID bearer token. It returns who sent it
// ("secret:<name>" or the token's caller), or [ErrUnauthenticated].
func (w *Webhook) Authenticate(r *http.Request) (string, error) {
	if v := r.Header.Get(SecretHeader); v != "" {
		d := sha256.Sum256([]byte(v))
		match := ""
		for _, s := range w.secrets {
			if subtle.ConstantTimeCompare(d[:], s.digest[:]) == 1 {
				match = s.name
			}
		}
		if match == "" {
			return "", fmt.Errorf("%w: unknown secret", ErrUnauthenticated)
		}
		return "secret:" + match, nil
	}
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && w.cfg.Tokens != nil {
		who, err := w.cfg.Tokens.Identity(r.Context(), strings.TrimSpace(tok))
		if err != nil {
			return "", fmt.Errorf("%w: %w", ErrUnauthenticated, err)
		}
		return who, nil
	}
	return "", fmt.Errorf("%w: no %s header or bearer token", ErrUnauthenticated, SecretHeader)
}

// Allow takes n events from the rate limit. When they do not fit, it
// takes nothing and says how long to wait before retrying.
func (w *Webhook) Allow(n int) (retryAfter time.Duration, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Now()
	if n > w.cfg.Burst {
		// A batch larger than the burst (configured below Event Grid's
		// batch size) passes when the bucket is full.
		n = w.cfg.Burst
	}
	res := w.limiter.ReserveN(now, n)
	if !res.OK() {
		return time.Second, false
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return d, false
	}
	return 0, true
}

// Rate is the events per second this process accepts (the CloudEvents
// handshake's WebHook-Allowed-Rate).
func (w *Webhook) Rate() float64 { return w.cfg.Rate }
