package akvemu

import (
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
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
	// DefaultHSMPrefix prefixes generated managed HSM pool names ("hsm-0001").
	DefaultHSMPrefix = "hsm"
	// DefaultResourceGroup is the Azure Resource Manager resource group of vaults and
	// pools created without one.
	DefaultResourceGroup = "rg-akvsync"
	// DefaultManagedHSMLimit is the emulated limit of a managed HSM pool per
	// ThrottleWindow (the emulator applies the premium vault limit).
	DefaultManagedHSMLimit = DefaultHSMVaultLimit
)

// DefaultEpoch is the reference time seeded data is laid out around: creation times
// fall in the year before it, so a seed always yields the same keys.
var DefaultEpoch = time.Date(2025, time.January, 1, 0, 0, 0, 0, time.UTC)

// SKU is a vault pricing tier. Premium vaults hold HSM-backed keys.
type SKU string

// Vault SKUs, and the SKU of managed HSM pools.
const (
	SKUStandard SKU = "standard"
	SKUPremium  SKU = "premium"
	// SKUStandardB1 is the SKU of a managed HSM pool (ARM: family B, Standard_B1).
	SKUStandardB1 SKU = "Standard_B1"
)

// Kind says whether a VaultSpec describes a key vault or a managed HSM pool.
type Kind string

// Kinds of emulated key stores.
const (
	// KindVault is a key vault (Microsoft.KeyVault/vaults, <name>.vault.azure.net).
	KindVault Kind = "vault"
	// KindManagedHSM is a managed HSM pool (Microsoft.KeyVault/managedHSMs,
	// <name>.managedhsm.azure.net): HSM key types only, oct-HSM included.
	KindManagedHSM Kind = "managedhsm"
)

// ARMType returns the Azure Resource Manager resource type of the kind.
func (k Kind) ARMType() string {
	if k == KindManagedHSM {
		return "Microsoft.KeyVault/managedHSMs"
	}
	return "Microsoft.KeyVault/vaults"
}

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
	// Audiences are application id URIs (e.g. api://akvsync) the emulated
	// Entra ID issues access tokens for, besides the Azure services': an
	// application that accepts Entra ID tokens (OIDC) can be tested.
	Audiences []string
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

	// Region is reported in messages and headers, and is the ARM location of
	// vaults created without one (default DefaultRegion).
	Region string
	// ResourceGroup is the ARM resource group of vaults and pools created without
	// one (default DefaultResourceGroup).
	ResourceGroup string
	// Subscriptions are listed by Azure Resource Manager in addition to those of the
	// vaults, or name a vault's subscription.
	Subscriptions []SubscriptionSpec
	// ARMReadBucket is the Azure Resource Manager read bucket per subscription (and
	// one for the tenant): requests beyond it are answered 429. 0 means
	// DefaultARMReadBucket (none with DisableThrottling), negative means none.
	ARMReadBucket int
	// ARMReadRefill is how many read requests per second refill that bucket
	// (default DefaultARMReadRefill).
	ARMReadRefill float64
	// ARMPageSize is the page size of Resource Manager listings without $top
	// (default DefaultARMPageSize, at most MaxARMPageSize).
	ARMPageSize int
	// APIVersions are the data-plane api-versions vaults and pools accept (default
	// SupportedAPIVersions): leave out KeySizeAPIVersion to emulate a service (a
	// sovereign cloud, Azure Stack) without it.
	APIVersions []string
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

	// EventSubscriptions are Event Grid subscriptions to the vaults' key events,
	// validated (handshake) at the end of Start, after seeding: seeding emits nothing.
	// A failed handshake is logged and leaves the subscription Failed.
	EventSubscriptions []EventSubscription
	// EventDelivery tunes event delivery (default: Azure Event Grid's retry schedule,
	// attempts, time to live and timeout).
	EventDelivery EventDeliveryConfig

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
	// ManagedHSMs is the number of managed HSM pools to generate (<HSMPrefix>-0001…),
	// each with KeysPerVault keys of HSM types, spread over the subscriptions.
	ManagedHSMs int `json:"managed_hsms" yaml:"managed_hsms"`
	// HSMPrefix prefixes generated pool names (default DefaultHSMPrefix).
	HSMPrefix string `json:"hsm_prefix" yaml:"hsm_prefix"`
}

// SubscriptionSpec describes a subscription that Azure Resource Manager lists.
type SubscriptionSpec struct {
	// ID is the subscription id (a GUID in Azure).
	ID string `json:"id" yaml:"id"`
	// DisplayName defaults to "akvemu subscription <first 8 characters of the id>".
	DisplayName string `json:"display_name" yaml:"display_name"`
	// State is Enabled (default), Disabled, Warned, PastDue or Deleted.
	State string `json:"state" yaml:"state"`
}

// VaultSpec describes one vault or managed HSM pool.
type VaultSpec struct {
	// Name of the vault: 3–24 letters, digits and hyphens.
	Name string `json:"name" yaml:"name"`
	// Kind is vault (default) or managedhsm.
	Kind Kind `json:"kind,omitempty" yaml:"kind"`
	// SubscriptionID groups vaults for the subscription throttle and for Azure
	// Resource Manager; generated when empty.
	SubscriptionID string `json:"subscription_id" yaml:"subscription_id"`
	// ResourceGroup is the ARM resource group (default Config.ResourceGroup).
	ResourceGroup string `json:"resource_group,omitempty" yaml:"resource_group"`
	// Location is the ARM location (default Config.Region).
	Location string `json:"location,omitempty" yaml:"location"`
	// Tags are the ARM resource tags.
	Tags map[string]string `json:"tags,omitempty" yaml:"tags"`
	// SKU is standard (default) or premium for vaults, only premium vaults accept
	// -HSM key types; Standard_B1 (the default) for managed HSM pools.
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
	// Roles are the application roles assigned to the principal: the
	// `roles` claim of its access tokens.
	Roles []string `json:"roles,omitempty" yaml:"roles,omitempty"`
}

var (
	vaultNameRE = regexp.MustCompile(`^[0-9a-zA-Z-]{3,24}$`)
	keyNameRE   = regexp.MustCompile(`^[0-9a-zA-Z-]{1,127}$`)
	// rgNameRE is ARM's resource group name rule (no trailing period).
	rgNameRE = regexp.MustCompile(`^[-\w._()]{0,89}[-\w_()]$`)
	// locationRE accepts ARM location names (westeurope, eastus2, …).
	locationRE = regexp.MustCompile(`^[a-z0-9]{1,40}$`)
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
	if c.ResourceGroup == "" {
		c.ResourceGroup = DefaultResourceGroup
	}
	if len(c.APIVersions) == 0 {
		c.APIVersions = SupportedAPIVersions
	}
	if c.ARMReadBucket == 0 && !c.DisableThrottling {
		c.ARMReadBucket = DefaultARMReadBucket
	}
	if c.ARMReadRefill == 0 {
		c.ARMReadRefill = DefaultARMReadRefill
	}
	if c.ARMPageSize == 0 {
		c.ARMPageSize = DefaultARMPageSize
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
	if s.HSMPrefix == "" {
		s.HSMPrefix = DefaultHSMPrefix
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
	if c.Seed.Vaults < 0 || c.Seed.ManagedHSMs < 0 || c.Seed.KeysPerVault < 0 || c.Seed.Subscriptions < 0 || c.Seed.VersionsPerKey < 0 {
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
	if !rgNameRE.MatchString(c.ResourceGroup) {
		return bad("resource group %q must be 1-90 letters, digits, '-', '_', '.', '(' or ')', not ending in '.'", c.ResourceGroup)
	}
	if !locationRE.MatchString(c.Region) {
		return bad("region %q must be an ARM location name such as westeurope", c.Region)
	}
	if c.ARMReadRefill < 0 || c.ARMPageSize < 0 || c.ARMPageSize > MaxARMPageSize {
		return bad("ARM read refill must not be negative and the ARM page size must be 0-%d", MaxARMPageSize)
	}
	for _, v := range c.APIVersions {
		if !slices.Contains(SupportedAPIVersions, v) {
			return bad("api-version %q is not one the emulator serves (%s)", v, strings.Join(SupportedAPIVersions, ", "))
		}
	}
	subs := map[string]bool{}
	for _, s := range c.Subscriptions {
		if err := s.Validate(); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
		if subs[lower(s.ID)] {
			return bad("subscription %q listed twice", s.ID)
		}
		subs[lower(s.ID)] = true
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
	if err := c.EventDelivery.Validate(); err != nil {
		return err
	}
	if len(c.EventSubscriptions) > MaxEventSubscriptions {
		return bad("at most %d event subscriptions", MaxEventSubscriptions)
	}
	subNames := map[string]bool{}
	for _, es := range c.EventSubscriptions {
		if err := es.Validate(); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
		if subNames[lower(es.Name)] {
			return bad("event subscription %q listed twice", es.Name)
		}
		subNames[lower(es.Name)] = true
	}
	return nil
}

// subscriptionStates are the states ARM reports for subscriptions.
var subscriptionStates = map[string]bool{"Enabled": true, "Disabled": true, "Warned": true, "PastDue": true, "Deleted": true}

// Validate reports whether the subscription spec is usable.
func (s SubscriptionSpec) Validate() error {
	if s.ID == "" || strings.ContainsAny(s.ID, "/?#& ") {
		return badParam(fmt.Sprintf("subscription id %q must be non-empty without '/', '?', '#', '&' or spaces", s.ID))
	}
	if s.State != "" && !subscriptionStates[s.State] {
		return badParam(fmt.Sprintf("subscription %s: state %q must be Enabled, Disabled, Warned, PastDue or Deleted", s.ID, s.State))
	}
	return nil
}

// Validate reports whether the vault spec is usable.
func (s VaultSpec) Validate() error {
	if !vaultNameRE.MatchString(s.Name) {
		return badParam(fmt.Sprintf("vault name %q must be 3-24 letters, digits and hyphens", s.Name))
	}
	switch s.Kind {
	case "", KindVault:
		switch s.SKU {
		case "", SKUStandard, SKUPremium:
		default:
			return badParam(fmt.Sprintf("unknown sku %q (vaults are standard or premium)", s.SKU))
		}
	case KindManagedHSM:
		switch s.SKU {
		case "", SKUStandardB1:
		default:
			return badParam(fmt.Sprintf("unknown sku %q (managed HSM pools are %s)", s.SKU, SKUStandardB1))
		}
	default:
		return badParam(fmt.Sprintf("unknown kind %q (vault or managedhsm)", s.Kind))
	}
	if s.SubscriptionID != "" {
		if err := (SubscriptionSpec{ID: s.SubscriptionID}).Validate(); err != nil {
			return err
		}
	}
	if s.ResourceGroup != "" && !rgNameRE.MatchString(s.ResourceGroup) {
		return badParam(fmt.Sprintf("resource group %q must be 1-90 letters, digits, '-', '_', '.', '(' or ')', not ending in '.'", s.ResourceGroup))
	}
	if s.Location != "" && !locationRE.MatchString(s.Location) {
		return badParam(fmt.Sprintf("location %q must be an ARM location name such as westeurope", s.Location))
	}
	if len(s.Tags) > 50 {
		return badParam("at most 50 resource tags")
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
