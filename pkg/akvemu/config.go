package akvemu

import (
	"fmt"
	"net"
	"regexp"
	"time"

	"github.com/rs/zerolog"
)

// Defaults used when a Config or SeedSpec field is left zero.
const (
	// DefaultListenHost is the address every vault, the token endpoint and the
	// host-routing listener bind to.
	DefaultListenHost = "127.0.0.1"
	// DefaultAdminListen is the admin API address (plain HTTP, loopback only).
	DefaultAdminListen = "127.0.0.1:0"
	// DefaultTokenLifetime is the lifetime of issued access tokens.
	DefaultTokenLifetime = time.Hour
	// MinTokenLifetime is the shortest accepted token lifetime (expires_in is in seconds).
	MinTokenLifetime = time.Second
	// DefaultRegion is written into 403 messages (";location=…") and x-ms-keyvault-region.
	DefaultRegion = "westeurope"
	// DefaultSoftwareVaultLimit is the service limit for a vault with software keys:
	// requests per ThrottleWindow.
	DefaultSoftwareVaultLimit = 4000
	// DefaultHSMVaultLimit is the service limit for a premium (HSM) vault per ThrottleWindow.
	DefaultHSMVaultLimit = 2000
	// ThrottleWindow is the window the vault limits are expressed in.
	ThrottleWindow = 10 * time.Second
	// DefaultSubscriptionLimitFactor multiplies the software vault limit to give the
	// per-subscription limit shared by all vaults of a subscription.
	DefaultSubscriptionLimitFactor = 5
	// MaxPageSize is the largest page the service returns (and the largest maxresults).
	MaxPageSize = 25
	// DefaultRecoverableDays is the soft-delete retention of a vault.
	DefaultRecoverableDays = 90
	// DefaultKeysPerVault is the number of keys seeded per generated vault when
	// SeedSpec.Vaults > 0 and KeysPerVault is zero.
	DefaultKeysPerVault = 100
	// DefaultVersionsPerKey is the largest number of versions a seeded key gets.
	DefaultVersionsPerKey = 3
	// DefaultSubscriptions is the number of subscriptions generated vaults are spread over.
	DefaultSubscriptions = 1
	// DefaultVaultPrefix prefixes generated vault names ("kv-0001").
	DefaultVaultPrefix = "kv"
	// DefaultHSMVaultFraction is the share of generated vaults with the premium SKU.
	DefaultHSMVaultFraction = 0.25
	// DefaultDisabledFraction is the share of seeded keys that are disabled.
	DefaultDisabledFraction = 0.05
	// DefaultExpiredFraction is the share of seeded keys whose exp lies in the past.
	DefaultExpiredFraction = 0.05
	// DefaultManagedFraction is the share of seeded keys that back a certificate (managed).
	DefaultManagedFraction = 0.03
	// DefaultTaggedFraction is the share of seeded keys carrying tags.
	DefaultTaggedFraction = 0.6
)

// DefaultEpoch is the reference time seeded data is laid out around: creation times
// fall in the year before it, so a seed always yields the same keys.
var DefaultEpoch = time.Date(2025, time.January, 1, 0, 0, 0, 0, time.UTC)

// SKU is a vault pricing tier. Premium vaults hold HSM-backed keys.
type SKU string

// Vault SKUs.
const (
	SKUStandard SKU = "standard"
	SKUPremium  SKU = "premium"
)

// Config configures an emulator. The zero value is usable: one tenant and client are
// generated, no vaults exist until seeded or added.
type Config struct {
	// Seed generates vaults and keys deterministically.
	Seed SeedSpec
	// Vaults are created in addition to the generated ones.
	Vaults []VaultSpec
	// DefaultFaults apply to every vault created without its own Faults.
	DefaultFaults Faults

	// TenantID of the emulated directory; derived from Seed.Seed when empty.
	TenantID string
	// ClientID of the default principal; derived from Seed.Seed when empty.
	ClientID string
	// ClientSecret of the default principal; random when empty.
	ClientSecret string
	// Principals are registered in addition to the default one.
	Principals []Principal
	// TokenLifetime of issued access tokens (default DefaultTokenLifetime, at least MinTokenLifetime).
	TokenLifetime time.Duration

	// ListenHost is the IP every HTTPS listener binds to (default DefaultListenHost).
	ListenHost string
	// AdminListen is the admin API address, plain HTTP on a loopback address
	// (default DefaultAdminListen).
	AdminListen string
	// DisableAdmin turns the admin API off.
	DisableAdmin bool
	// HostRouting adds one shared listener where vaults are addressed by host name
	// (<vault>.vault.localhost:PORT), so challenge resource verification can stay on.
	HostRouting bool
	// HostRoutingOnly (implies HostRouting) gives vaults no listener of their own:
	// the host-routing listener serves them all and their URL is the host URL. One
	// process then holds 100,000 vaults (a listener per vault stops near the file
	// descriptor limit, about 9,000 vaults). Unreachable faults reset the vault's
	// open connections but cannot refuse new ones.
	HostRoutingOnly bool

	// DataDir receives the CA certificate; a temporary directory, removed by Close,
	// is used when empty.
	DataDir string
	// CAFile is where the CA certificate PEM is written (default DataDir/ca.pem).
	CAFile string

	// Region is reported in messages and headers (default DefaultRegion).
	Region string
	// DisableThrottling turns every token bucket off (benchmarks).
	DisableThrottling bool
	// SubscriptionLimitFactor multiplies the software vault limit for the
	// per-subscription bucket (default DefaultSubscriptionLimitFactor).
	SubscriptionLimitFactor int
	// SubscriptionLimit, when positive, is the per-subscription bucket's
	// rate in requests per ThrottleWindow instead of the factor's (tests
	// scale the limit down with it).
	SubscriptionLimit int
	// SubscriptionBurst, when positive, is the per-subscription bucket's
	// size in requests (default: one ThrottleWindow's worth). A small
	// burst makes over-pacing show as 429s within a short test.
	SubscriptionBurst int

	// Logger receives the emulator's logs; the zero value logs nothing.
	Logger zerolog.Logger
}

// SeedSpec describes generated vaults and keys. The same spec and seed always yield
// the same vault names, key names, versions, attributes, tags and key material.
type SeedSpec struct {
	// Vaults is the number of vaults to generate.
	Vaults int `json:"vaults" yaml:"vaults"`
	// KeysPerVault is the number of keys per generated vault (default DefaultKeysPerVault).
	KeysPerVault int `json:"keys_per_vault" yaml:"keys_per_vault"`
	// Seed makes generation deterministic.
	Seed int64 `json:"seed" yaml:"seed"`
	// Subscriptions spreads generated vaults over this many subscriptions
	// (default DefaultSubscriptions).
	Subscriptions int `json:"subscriptions" yaml:"subscriptions"`
	// VersionsPerKey is the largest number of versions a key gets (default DefaultVersionsPerKey).
	VersionsPerKey int `json:"versions_per_key" yaml:"versions_per_key"`
	// VaultPrefix prefixes generated vault names (default DefaultVaultPrefix).
	VaultPrefix string `json:"vault_prefix" yaml:"vault_prefix"`
	// HSMVaultFraction is the share of premium vaults (default DefaultHSMVaultFraction;
	// negative for none).
	HSMVaultFraction float64 `json:"hsm_vault_fraction" yaml:"hsm_vault_fraction"`
	// DisabledFraction of keys are disabled (default DefaultDisabledFraction; negative for none).
	DisabledFraction float64 `json:"disabled_fraction" yaml:"disabled_fraction"`
	// ExpiredFraction of keys have exp in the past (default DefaultExpiredFraction; negative for none).
	ExpiredFraction float64 `json:"expired_fraction" yaml:"expired_fraction"`
	// ManagedFraction of keys are managed (default DefaultManagedFraction; negative for none).
	ManagedFraction float64 `json:"managed_fraction" yaml:"managed_fraction"`
	// TaggedFraction of keys carry tags (default DefaultTaggedFraction; negative for none).
	TaggedFraction float64 `json:"tagged_fraction" yaml:"tagged_fraction"`
	// Epoch anchors generated times (default DefaultEpoch).
	Epoch time.Time `json:"epoch" yaml:"epoch"`
}

// VaultSpec describes one vault.
type VaultSpec struct {
	// Name of the vault: 3–24 letters, digits and hyphens.
	Name string `json:"name" yaml:"name"`
	// SubscriptionID groups vaults for the subscription throttle; generated when empty.
	SubscriptionID string `json:"subscription_id" yaml:"subscription_id"`
	// SKU is standard (default) or premium; only premium vaults accept -HSM key types.
	SKU SKU `json:"sku" yaml:"sku"`
	// RecoverableDays is the soft-delete retention, 7–90 (default DefaultRecoverableDays).
	RecoverableDays int `json:"recoverable_days" yaml:"recoverable_days"`
	// PurgeProtection forbids purging deleted keys.
	PurgeProtection bool `json:"purge_protection" yaml:"purge_protection"`
	// RBAC makes 403 answers use the role-based access control wording.
	RBAC bool `json:"rbac" yaml:"rbac"`
	// Keys is the number of keys generated into the vault (realistic mix).
	Keys int `json:"keys" yaml:"keys"`
	// Seed for the generated keys and version ids; derived from the name when zero.
	Seed int64 `json:"seed" yaml:"seed"`
	// KeySpecs are explicit keys created after the generated ones.
	KeySpecs []NamedKeySpec `json:"key_specs" yaml:"key_specs"`
	// Faults of the vault; Config.DefaultFaults when nil.
	Faults *Faults `json:"faults" yaml:"faults"`
	// Access denies permissions to principals.
	Access []AccessRule `json:"access" yaml:"access"`
}

// NamedKeySpec is a KeySpec with the key's name, used in VaultSpec.KeySpecs.
type NamedKeySpec struct {
	Name    string `json:"name" yaml:"name"` // key name
	KeySpec `yaml:",inline"`
}

// Principal is an application registered in the emulated directory.
type Principal struct {
	// ClientID (application id) of the principal.
	ClientID string `json:"client_id" yaml:"client_id"`
	// ClientSecret accepted for client_credentials with client_secret; empty for none.
	ClientSecret string `json:"client_secret" yaml:"client_secret"`
	// CertificatesPEM are PEM certificates accepted for client assertions.
	CertificatesPEM string `json:"certificates_pem" yaml:"certificates_pem"`
}

var (
	vaultNameRE = regexp.MustCompile(`^[0-9a-zA-Z-]{3,24}$`)
	keyNameRE   = regexp.MustCompile(`^[0-9a-zA-Z-]{1,127}$`)
)

// withDefaults returns a copy with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.HostRoutingOnly {
		c.HostRouting = true
	}
	if c.TokenLifetime == 0 {
		c.TokenLifetime = DefaultTokenLifetime
	}
	if c.ListenHost == "" {
		c.ListenHost = DefaultListenHost
	}
	if c.AdminListen == "" {
		c.AdminListen = DefaultAdminListen
	}
	if c.Region == "" {
		c.Region = DefaultRegion
	}
	if c.SubscriptionLimitFactor == 0 {
		c.SubscriptionLimitFactor = DefaultSubscriptionLimitFactor
	}
	c.Seed = c.Seed.withDefaults()
	return c
}

func (s SeedSpec) withDefaults() SeedSpec {
	if s.KeysPerVault == 0 {
		s.KeysPerVault = DefaultKeysPerVault
	}
	if s.Subscriptions == 0 {
		s.Subscriptions = DefaultSubscriptions
	}
	if s.VersionsPerKey == 0 {
		s.VersionsPerKey = DefaultVersionsPerKey
	}
	if s.VaultPrefix == "" {
		s.VaultPrefix = DefaultVaultPrefix
	}
	def := func(f *float64, d float64) {
		if *f == 0 {
			*f = d
		} else if *f < 0 {
			*f = 0
		}
	}
	def(&s.HSMVaultFraction, DefaultHSMVaultFraction)
	def(&s.DisabledFraction, DefaultDisabledFraction)
	def(&s.ExpiredFraction, DefaultExpiredFraction)
	def(&s.ManagedFraction, DefaultManagedFraction)
	def(&s.TaggedFraction, DefaultTaggedFraction)
	if s.Epoch.IsZero() {
		s.Epoch = DefaultEpoch
	}
	return s
}

// Validate reports the first unusable setting, wrapping ErrInvalidConfig.
func (c Config) Validate() error {
	c = c.withDefaults()
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, a...))
	}
	if c.TokenLifetime < MinTokenLifetime {
		return bad("token lifetime %s is shorter than %s", c.TokenLifetime, MinTokenLifetime)
	}
	if net.ParseIP(c.ListenHost) == nil {
		return bad("listen host %q is not an IP address", c.ListenHost)
	}
	if !c.DisableAdmin {
		host, _, err := net.SplitHostPort(c.AdminListen)
		if err != nil {
			return bad("admin listen %q: %v", c.AdminListen, err)
		}
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return bad("admin listen %q must be a loopback address (the admin API has no authentication)", c.AdminListen)
		}
	}
	if c.Seed.Vaults < 0 || c.Seed.KeysPerVault < 0 || c.Seed.Subscriptions < 0 || c.Seed.VersionsPerKey < 0 {
		return bad("seed counts must not be negative")
	}
	for _, f := range []float64{c.Seed.HSMVaultFraction, c.Seed.DisabledFraction, c.Seed.ExpiredFraction, c.Seed.ManagedFraction, c.Seed.TaggedFraction} {
		if f > 1 {
			return bad("seed fractions must be at most 1")
		}
	}
	if c.SubscriptionLimitFactor < 0 || c.SubscriptionLimit < 0 || c.SubscriptionBurst < 0 {
		return bad("subscription limit factor, limit and burst must not be negative")
	}
	if err := c.DefaultFaults.Validate(); err != nil {
		return fmt.Errorf("%w: default faults: %w", ErrInvalidConfig, err)
	}
	seen := map[string]bool{}
	for _, v := range c.Vaults {
		if err := v.Validate(); err != nil {
			return fmt.Errorf("%w: vault %q: %w", ErrInvalidConfig, v.Name, err)
		}
		if seen[lower(v.Name)] {
			return bad("vault %q listed twice", v.Name)
		}
		seen[lower(v.Name)] = true
	}
	for _, p := range c.Principals {
		if p.ClientID == "" {
			return bad("principal without client_id")
		}
	}
	return nil
}

// Validate reports whether the vault spec is usable.
func (s VaultSpec) Validate() error {
	if !vaultNameRE.MatchString(s.Name) {
		return badParam(fmt.Sprintf("vault name %q must be 3-24 letters, digits and hyphens", s.Name))
	}
	switch s.SKU {
	case "", SKUStandard, SKUPremium:
	default:
		return badParam(fmt.Sprintf("unknown sku %q", s.SKU))
	}
	if s.RecoverableDays != 0 && (s.RecoverableDays < 7 || s.RecoverableDays > 90) {
		return badParam("recoverable_days must be between 7 and 90")
	}
	if s.Keys < 0 {
		return badParam("keys must not be negative")
	}
	if s.Faults != nil {
		if err := s.Faults.Validate(); err != nil {
			return err
		}
	}
	for _, r := range s.Access {
		if err := r.Validate(); err != nil {
			return err
		}
	}
	return nil
}
