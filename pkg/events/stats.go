package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"time"
)

// AzureUsage is a vault sync's own accounting of its Key Vault requests,
// kept in the vault's job record and summed into the job's progress the
// same way as the key counts. Every HTTP attempt is counted, retries and
// the authentication challenge's unauthenticated first request included,
// so the calls match what Key Vault itself counts.
type AzureUsage struct {
	// Calls by operation.
	ListKeys        int64 `json:"list_keys,omitempty"`
	ListKeyVersions int64 `json:"list_key_versions,omitempty"`
	GetKey          int64 `json:"get_key,omitempty"`
	Other           int64 `json:"other,omitempty"`
	// Throttled counts 429 answers; Retries the attempts that retried a
	// throttled, failed or unanswered one; Unauthenticated the 401
	// answers (the challenge that starts every client's first request).
	Throttled       int64 `json:"throttled,omitempty"`
	Retries         int64 `json:"retries,omitempty"`
	Unauthenticated int64 `json:"unauthenticated,omitempty"`
	// LimiterWait is the time the attempts spent waiting for akvsync's
	// own rate limiters.
	LimiterWait time.Duration `json:"limiter_wait_ns,omitempty"`
	// Billable operations by price class: answered requests other than
	// 401 and 429. HSMKeyOps are reads of HSM-protected keys in a Key
	// Vault; ManagedHSMOps every billable request to a Managed HSM pool;
	// StandardOps the rest.
	StandardOps   int64 `json:"standard_ops,omitempty"`
	HSMKeyOps     int64 `json:"hsm_key_ops,omitempty"`
	ManagedHSMOps int64 `json:"managed_hsm_ops,omitempty"`
}

// Calls is the number of requests of every operation.
func (u AzureUsage) Calls() int64 { return u.ListKeys + u.ListKeyVersions + u.GetKey + u.Other }

// Add adds o to u (sign 1) or takes it out (sign -1).
func (u *AzureUsage) Add(o AzureUsage, sign int) {
	n := int64(sign)
	u.ListKeys += n * o.ListKeys
	u.ListKeyVersions += n * o.ListKeyVersions
	u.GetKey += n * o.GetKey
	u.Other += n * o.Other
	u.Throttled += n * o.Throttled
	u.Retries += n * o.Retries
	u.Unauthenticated += n * o.Unauthenticated
	u.LimiterWait += time.Duration(n) * o.LimiterWait
	u.StandardOps += n * o.StandardOps
	u.HSMKeyOps += n * o.HSMKeyOps
	u.ManagedHSMOps += n * o.ManagedHSMOps
}

// Defaults of [Prices]: published Azure Key Vault pricing (pay-as-you-go,
// USD, per 10,000 operations). See docs/operations.md.
const (
	// DefaultCurrency is the currency of the default prices.
	DefaultCurrency = "USD"
	// DefaultStandardPer10k is the price of 10,000 operations on
	// software-protected keys (Key Vault Standard and Premium), listing
	// included.
	DefaultStandardPer10k = 0.03
	// DefaultHSMKeyPer10k is the price of 10,000 operations on
	// HSM-protected keys in a Premium vault (the rate of the advanced key
	// types: RSA 3072/4096 and EC).
	DefaultHSMKeyPer10k = 0.15
	// DefaultManagedHSMPer10k is 0: a Managed HSM pool is billed by the
	// hour, not per operation. Its operations are still counted.
	DefaultManagedHSMPer10k = 0
)

// ErrInvalidPrices reports an unusable price table.
var ErrInvalidPrices = errors.New("invalid Azure price table")

// Prices is the table an estimated Azure cost is computed from, per
// 10,000 billable operations of each class (see [AzureUsage]). The zero
// value means [DefaultPrices].
type Prices struct {
	Currency         string  `json:"currency"`
	StandardPer10k   float64 `json:"standard_per_10k"`
	HSMKeyPer10k     float64 `json:"hsm_key_per_10k"`
	ManagedHSMPer10k float64 `json:"managed_hsm_per_10k"`
}

// DefaultPrices is the default price table.
func DefaultPrices() Prices {
	return Prices{Currency: DefaultCurrency, StandardPer10k: DefaultStandardPer10k,
		HSMKeyPer10k: DefaultHSMKeyPer10k, ManagedHSMPer10k: DefaultManagedHSMPer10k}
}

// WithDefaults returns DefaultPrices for the zero table, else p.
func (p Prices) WithDefaults() Prices {
	if p == (Prices{}) {
		return DefaultPrices()
	}
	return p
}

// Validate reports a table with a negative or non-finite price or a
// currency that is not a three-letter code.
func (p Prices) Validate() error {
	p = p.WithDefaults()
	if len(p.Currency) != 3 {
		return fmt.Errorf("%w: currency %q is not a three-letter code", ErrInvalidPrices, p.Currency)
	}
	for name, v := range map[string]float64{"standard_per_10k": p.StandardPer10k, "hsm_key_per_10k": p.HSMKeyPer10k, "managed_hsm_per_10k": p.ManagedHSMPer10k} {
		if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("%w: %s must be a non-negative number", ErrInvalidPrices, name)
		}
	}
	return nil
}

// ParsePrices reads a JSON price table; fields it leaves out keep their
// defaults, unknown fields are an error.
func ParsePrices(r io.Reader) (Prices, error) {
	p := DefaultPrices()
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return Prices{}, fmt.Errorf("%w: %w", ErrInvalidPrices, err)
	}
	if err := p.Validate(); err != nil {
		return Prices{}, err
	}
	return p, nil
}

// LoadPrices reads the price table from a JSON file (see ParsePrices); ""
// gives DefaultPrices.
func LoadPrices(path string) (Prices, error) {
	if path == "" {
		return DefaultPrices(), nil
	}
	f, err := os.Open(path) // #nosec G304 -- path from the operator's own --azure-prices flag
	if err != nil {
		return Prices{}, fmt.Errorf("azure prices: %w", err)
	}
	defer func() { _ = f.Close() }()
	p, err := ParsePrices(f)
	if err != nil {
		return Prices{}, fmt.Errorf("azure prices %s: %w", path, err)
	}
	return p, nil
}

// JobStats is a job's progress and cost as the API, its events and the
// dashboard show them: an extension beside CCKM's fields.
type JobStats struct {
	Keys   KeyStats   `json:"keys"`
	Vaults VaultStats `json:"vaults"`
	// ElapsedSeconds runs from the job's creation to its end (or now).
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	// KeysPerSecond is keys seen over the elapsed time.
	KeysPerSecond float64 `json:"keys_per_second"`
	// ETASeconds estimates the time left from the vaults done so far: 0
	// for a finished job, null while no vault has finished.
	ETASeconds *float64     `json:"eta_seconds"`
	Azure      AzureStats   `json:"azure"`
	Cost       CostEstimate `json:"cost"`
}

// KeyStats counts a job's keys. Seen is every key the listings
// returned: New + Changed + Unchanged (plus keys deleted between the
// listing and their read).
type KeyStats struct {
	Seen      int64 `json:"seen"`
	New       int64 `json:"new"`
	Changed   int64 `json:"changed"`
	Unchanged int64 `json:"unchanged"`
	Gone      int64 `json:"gone"`
}

// VaultStats counts a job's vaults by status.
type VaultStats struct {
	Total      int `json:"total"`
	Pending    int `json:"pending"`
	InProgress int `json:"in_progress"`
	Completed  int `json:"completed"`
	Failed     int `json:"failed"`
	Aborted    int `json:"aborted"`
}

// AzureStats are a job's Key Vault requests.
type AzureStats struct {
	// Calls counts requests by operation (list_keys, list_key_versions,
	// get_key, other).
	Calls              map[string]int64 `json:"calls"`
	Requests           int64            `json:"requests"`
	Throttled          int64            `json:"throttled"`
	Retries            int64            `json:"retries"`
	LimiterWaitSeconds float64          `json:"limiter_wait_seconds"`
}

// CostEstimate is a job's estimated Azure cost: billable operations by
// price class times the price table. It leaves out what is not per
// operation (monthly key charges, Managed HSM hours).
type CostEstimate struct {
	Currency   string         `json:"currency"`
	Estimated  float64        `json:"estimated"`
	Operations CostOperations `json:"operations"`
	Prices     Prices         `json:"prices"`
}

// CostOperations counts a job's billable operations by price class.
type CostOperations struct {
	Standard   int64 `json:"standard"`
	HSMKey     int64 `json:"hsm_key"`
	ManagedHSM int64 `json:"managed_hsm"`
}

// NewJobStats derives a job's statistics from its header and progress,
// pricing its operations with prices (zero: the defaults), at time now.
func NewJobStats(j Job, p JobProgress, prices Prices, now time.Time) JobStats {
	prices = prices.WithDefaults()
	u := p.Azure
	s := JobStats{
		Keys: KeyStats{Seen: p.Listed, New: p.New, Changed: p.Changed, Unchanged: p.Unchanged, Gone: p.Gone},
		Vaults: VaultStats{Total: max(j.VaultTotal, p.Pending+p.Running+p.Terminal()), Pending: p.Pending, InProgress: p.Running,
			Completed: p.Completed, Failed: p.Failed, Aborted: p.Aborted},
		Azure: AzureStats{
			Calls:    map[string]int64{"list_keys": u.ListKeys, "list_key_versions": u.ListKeyVersions, "get_key": u.GetKey, "other": u.Other},
			Requests: u.Calls(), Throttled: u.Throttled, Retries: u.Retries, LimiterWaitSeconds: u.LimiterWait.Seconds(),
		},
		Cost: CostEstimate{Currency: prices.Currency, Prices: prices,
			Operations: CostOperations{Standard: u.StandardOps, HSMKey: u.HSMKeyOps, ManagedHSM: u.ManagedHSMOps}},
	}
	s.Cost.Estimated = (float64(u.StandardOps)*prices.StandardPer10k + float64(u.HSMKeyOps)*prices.HSMKeyPer10k +
		float64(u.ManagedHSMOps)*prices.ManagedHSMPer10k) / 10000
	end := now
	if j.Finished() && j.CompletedAt != nil {
		end = *j.CompletedAt
	}
	if !j.CreatedAt.IsZero() && end.After(j.CreatedAt) {
		s.ElapsedSeconds = end.Sub(j.CreatedAt).Seconds()
		s.KeysPerSecond = float64(p.Listed) / s.ElapsedSeconds
	}
	done := p.Terminal()
	switch {
	case j.Finished():
		s.ETASeconds = new(float64)
	case done > 0 && s.ElapsedSeconds > 0:
		eta := s.ElapsedSeconds * float64(max(s.Vaults.Total-done, 0)) / float64(done)
		s.ETASeconds = &eta
	}
	return s
}
