package akvemu

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
)

// FileSpec is the JSON/YAML spec file format (see docs/emulator.md). Durations are Go
// duration strings ("15m") or milliseconds.
type FileSpec struct {
	TenantID          string             `json:"tenant_id"`          // Config.TenantID
	ClientID          string             `json:"client_id"`          // Config.ClientID
	ClientSecret      string             `json:"client_secret"`      // Config.ClientSecret
	TokenLifetime     json.RawMessage    `json:"token_lifetime"`     // Config.TokenLifetime
	ListenHost        string             `json:"listen_host"`        // Config.ListenHost
	AdminListen       string             `json:"admin_listen"`       // Config.AdminListen
	HostRouting       bool               `json:"host_routing"`       // Config.HostRouting
	HostRoutingOnly   bool               `json:"host_routing_only"`  // Config.HostRoutingOnly
	DisableThrottling bool               `json:"disable_throttling"` // Config.DisableThrottling
	Region            string             `json:"region"`             // Config.Region
	ResourceGroup     string             `json:"resource_group"`     // Config.ResourceGroup
	Subscriptions     []SubscriptionSpec `json:"subscriptions"`      // Config.Subscriptions
	ARMReadBucket     int                `json:"arm_read_bucket"`    // Config.ARMReadBucket
	ARMReadRefill     float64            `json:"arm_read_refill"`    // Config.ARMReadRefill
	ARMPageSize       int                `json:"arm_page_size"`      // Config.ARMPageSize
	Seed              SeedSpec           `json:"seed"`               // Config.Seed
	DefaultFaults     Faults             `json:"default_faults"`     // Config.DefaultFaults
	Vaults            []VaultSpec        `json:"vaults"`             // Config.Vaults
	Principals        []Principal        `json:"principals"`         // Config.Principals
	// EventSubscriptions are Config.EventSubscriptions.
	EventSubscriptions []EventSubscription `json:"event_subscriptions"`
	// EventDelivery is Config.EventDelivery (durations as strings or milliseconds).
	EventDelivery EventDeliveryConfig `json:"event_delivery"`
}

// LoadSpecFile reads a JSON (.json) or YAML (anything else) spec file into a Config.
// Fields the file leaves out keep their zero value (so defaults apply).
func LoadSpecFile(path string) (Config, error) {
	b, err := os.ReadFile(path) // #nosec G304 -- path from the operator's own --spec flag
	if err != nil {
		return Config{}, fmt.Errorf("read spec: %w", err)
	}
	return ParseSpec(b, strings.EqualFold(filepath.Ext(path), ".json"))
}

// ParseSpec parses a spec document; isJSON selects JSON, otherwise YAML (a superset).
func ParseSpec(b []byte, isJSON bool) (Config, error) {
	if !isJSON {
		var doc any
		if err := yaml.Unmarshal(b, &doc); err != nil {
			return Config{}, fmt.Errorf("%w: parse YAML spec: %w", ErrInvalidConfig, err)
		}
		if doc == nil {
			doc = map[string]any{}
		}
		var err error
		if b, err = json.Marshal(doc); err != nil {
			return Config{}, fmt.Errorf("%w: YAML spec is not JSON-compatible: %w", ErrInvalidConfig, err)
		}
	}
	var fs FileSpec
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fs); err != nil {
		return Config{}, fmt.Errorf("%w: parse spec: %w", ErrInvalidConfig, err)
	}
	lifetime, err := parseDuration(fs.TokenLifetime)
	if err != nil {
		return Config{}, fmt.Errorf("%w: token_lifetime: %w", ErrInvalidConfig, err)
	}
	cfg := Config{
		Seed: fs.Seed, Vaults: fs.Vaults, DefaultFaults: fs.DefaultFaults,
		TenantID: fs.TenantID, ClientID: fs.ClientID, ClientSecret: fs.ClientSecret, Principals: fs.Principals,
		TokenLifetime: lifetime, ListenHost: fs.ListenHost, AdminListen: fs.AdminListen, HostRouting: fs.HostRouting,
		HostRoutingOnly:   fs.HostRoutingOnly,
		DisableThrottling: fs.DisableThrottling, Region: fs.Region,
		ResourceGroup: fs.ResourceGroup, Subscriptions: fs.Subscriptions,
		ARMReadBucket: fs.ARMReadBucket, ARMReadRefill: fs.ARMReadRefill, ARMPageSize: fs.ARMPageSize,
		EventSubscriptions: fs.EventSubscriptions, EventDelivery: fs.EventDelivery,
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}
