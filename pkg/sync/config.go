package sync

import (
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/akvsync/akvsync/pkg/events"
)

// Defaults of [Config].
const (
	// DefaultVaultParallelism is how many vaults one worker syncs at once.
	DefaultVaultParallelism = 16
	// DefaultGetConcurrency is how many GetKey calls run at once per vault.
	DefaultGetConcurrency = 16
	// DefaultGlobalGetConcurrency bounds GetKey calls across all vaults of
	// one worker.
	DefaultGlobalGetConcurrency = 256
	// DefaultVaultRate is the request rate per vault: 90% of Key Vault's
	// 4,000 requests per 10 s for software-key vaults, so that the rate
	// and a bucket of one second of it (VaultBurst) fit one 10-s window.
	DefaultVaultRate = 360.0
	// DefaultSubscriptionRate is each subscription's request budget,
	// shared by every worker (see Budget): Azure's subscription-wide
	// limit, 5 × 4,000 requests per 10 s. There is no safety margin: the
	// adaptive limiter backs off on the first 429 instead.
	DefaultSubscriptionRate = 2000.0
	// DefaultHeartbeat is how often a running vault task tells JetStream
	// it is still in progress; it must be well under the task AckWait.
	DefaultHeartbeat = 5 * time.Second
	// DefaultRetryDelay is the base delay before a vault task that failed
	// transiently (throttled or unreachable after the SDK's retries) is
	// delivered again; it grows with each attempt.
	DefaultRetryDelay = 5 * time.Second
	// DefaultCASRetries bounds compare-and-set retries on a job record.
	DefaultCASRetries = 50
)

// Config tunes the planner, the syncer and the tracker. Zero fields take
// the defaults above.
type Config struct {
	// Source names this process in the CloudEvents it publishes.
	Source string
	// VaultParallelism, GetConcurrency and GlobalGetConcurrency bound the
	// work in flight; see the defaults.
	VaultParallelism     int
	GetConcurrency       int
	GlobalGetConcurrency int
	// VaultRate is each vault's request rate per second, paced by the
	// worker syncing it (one at a time, under the vault lock).
	// SubscriptionRate is each subscription's budget per second, shared
	// by every worker syncing vaults of it through the budget bucket.
	// Both adapt below their ceiling on 429 answers; negative disables.
	VaultRate        float64
	SubscriptionRate float64
	// BudgetLinger is how long a worker keeps its share of a subscription
	// after its last vault sync there (default DefaultBudgetLinger;
	// negative: none).
	BudgetLinger time.Duration
	// RefreshParallelism bounds the key refreshes one worker runs at once
	// (default DefaultRefreshParallelism).
	RefreshParallelism int
	// Heartbeat is the interval of InProgress acks on a running task.
	Heartbeat time.Duration
	// RetryDelay is the base redelivery delay of a transiently failed task.
	RetryDelay time.Duration
	// MaxDeliver must equal the task consumer's MaxDeliver: the last
	// delivery of a failing task fails the vault instead of retrying.
	MaxDeliver int
	// Logger receives structured logs (job_id, vault, attempt).
	Logger zerolog.Logger
	// Metrics, when set, records sync and Azure request metrics.
	Metrics Metrics
	// Prices price the Azure operations in the statistics of a job's
	// finished event (zero: events.DefaultPrices).
	Prices events.Prices
}

// WithDefaults returns c with zero fields replaced by defaults.
func (c Config) WithDefaults() Config {
	if c.Source == "" {
		c.Source = "akvsync/worker"
	}
	if c.VaultParallelism == 0 {
		c.VaultParallelism = DefaultVaultParallelism
	}
	if c.GetConcurrency == 0 {
		c.GetConcurrency = DefaultGetConcurrency
	}
	if c.GlobalGetConcurrency == 0 {
		c.GlobalGetConcurrency = DefaultGlobalGetConcurrency
	}
	if c.VaultRate == 0 {
		c.VaultRate = DefaultVaultRate
	}
	if c.SubscriptionRate == 0 {
		c.SubscriptionRate = DefaultSubscriptionRate
	}
	if c.BudgetLinger == 0 {
		c.BudgetLinger = DefaultBudgetLinger
	}
	if c.RefreshParallelism == 0 {
		c.RefreshParallelism = DefaultRefreshParallelism
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.RetryDelay == 0 {
		c.RetryDelay = DefaultRetryDelay
	}
	if c.MaxDeliver == 0 {
		c.MaxDeliver = 5
	}
	if c.Metrics == nil {
		c.Metrics = noMetrics{}
	}
	c.Prices = c.Prices.WithDefaults()
	return c
}

// CASRetries bounds compare-and-set retries on a job record.
func (c Config) CASRetries() int { return DefaultCASRetries }

// Validate reports settings that cannot work.
func (c Config) Validate() error {
	c = c.WithDefaults()
	switch {
	case c.VaultParallelism < 1, c.GetConcurrency < 1, c.GlobalGetConcurrency < 1, c.RefreshParallelism < 1:
		return fmt.Errorf("%w: concurrency settings must be at least 1", ErrInvalidConfig)
	case c.Heartbeat < 10*time.Millisecond:
		return fmt.Errorf("%w: heartbeat %s is too short", ErrInvalidConfig, c.Heartbeat)
	case c.RetryDelay < 0:
		return fmt.Errorf("%w: negative retry delay", ErrInvalidConfig)
	case c.MaxDeliver < 1:
		return fmt.Errorf("%w: max deliver must be at least 1", ErrInvalidConfig)
	}
	if err := c.Prices.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return nil
}
