package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/time/rate"
)

// Issue 12, finding 4: failed logins lock a username out whatever the
// client address, and rate-limited logins log a digest of the username,
// not the username.
func TestUsernameLockoutAndDigestLogs(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, nil, func(c *Config) { c.UserFailureLimit, c.UserFailureBurst = rate.Limit(1e-6), 3 })
	ctx := context.Background()
	for i := range 3 {
		_, err := env.svc.IssueToken(ctx, TokenRequest{Username: "oscar", Password: "wrong"}, fmt.Sprintf("198.51.100.%d:1", i+1))
		if !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("attempt %d: %v", i+1, err)
		}
	}
	_, err := env.svc.IssueToken(ctx, TokenRequest{Username: "oscar", Password: "oscar-password-1"}, "203.0.113.9:1")
	if sec, ok := RetryAfter(err); !errors.Is(err, ErrRateLimited) || !ok || sec <= 0 {
		t.Fatalf("login from a fresh address after the username's failures: %v", err)
	}
	env.login(t, "alice", "alice-password-1") // another user is not locked out

	// The client limiter's refusal logs the digest only.
	lim := newTestEnv(t, nil, withRate(rate.Limit(1e-6), 1))
	lim.login(t, "alice", "alice-password-1")
	if _, err := lim.svc.IssueToken(ctx, TokenRequest{Username: "Secret-Passw0rd", Password: "x"}, "192.0.2.1:5555"); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("err = %v", err)
	}
	for _, logs := range []string{env.logs.String(), lim.logs.String()} {
		for _, line := range strings.Split(logs, "\n") {
			if !strings.Contains(line, "rate_limited") && !strings.Contains(line, "user_locked_out") {
				continue
			}
			if strings.Contains(line, "oscar") || strings.Contains(line, "Secret-Passw0rd") || !strings.Contains(line, `"user_digest"`) {
				t.Errorf("a refusal log line names the username or lacks its digest: %s", line)
			}
		}
	}
	if !strings.Contains(lim.logs.String(), UsernameDigest("Secret-Passw0rd")) {
		t.Error("the rate-limited line does not carry the username's digest")
	}
}
