package azure

import (
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// Retry is azcore's retry policy for Azure calls: 429, 5xx and transport
// errors are retried, honouring Retry-After. It is embedded in the
// configs of the Key Vault and Resource Manager clients.
type Retry struct {
	// MaxRetries, RetryDelay and MaxRetryDelay bound the retries and the
	// waits between them.
	MaxRetries    int32
	RetryDelay    time.Duration
	MaxRetryDelay time.Duration
	// TryTimeout bounds one HTTP attempt.
	TryTimeout time.Duration
}

// WithDefaults returns r with its zero fields taken from d.
func (r Retry) WithDefaults(d Retry) Retry {
	if r.MaxRetries == 0 {
		r.MaxRetries = d.MaxRetries
	}
	if r.RetryDelay == 0 {
		r.RetryDelay = d.RetryDelay
	}
	if r.MaxRetryDelay == 0 {
		r.MaxRetryDelay = d.MaxRetryDelay
	}
	if r.TryTimeout == 0 {
		r.TryTimeout = d.TryTimeout
	}
	return r
}

// Valid reports whether the policy can work: nothing negative, and the
// longest wait at least the first.
func (r Retry) Valid() bool {
	return r.MaxRetries >= 0 && r.RetryDelay >= 0 && r.MaxRetryDelay >= r.RetryDelay && r.TryTimeout >= 0
}

// Options is the policy as azcore takes it.
func (r Retry) Options() policy.RetryOptions {
	return policy.RetryOptions{MaxRetries: r.MaxRetries, RetryDelay: r.RetryDelay, MaxRetryDelay: r.MaxRetryDelay, TryTimeout: r.TryTimeout}
}
