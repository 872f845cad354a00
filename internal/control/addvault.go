package control

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/akvsync/akvsync/internal/azure"
	"github.com/akvsync/akvsync/pkg/events"
)

// Limits of the Azure vault object add-vaults accepts.
const (
	// MaxVaultPropertiesBytes bounds a vault's stored properties (the ARM
	// object's "properties", compacted): a vault with hundreds of access
	// policies fits.
	MaxVaultPropertiesBytes = 32 << 10
	// MaxCloudKeyBackupLimit bounds cloud_key_backup_limit (CCKM's range).
	MaxCloudKeyBackupLimit = 65535
)

// AddVaultsRequest is the body of CCKM's POST /cckm/azure/add-vaults: the
// vaults (or Managed HSM pools) as Azure Resource Manager describes them —
// what get-vaults and get-managed-hsms return, unmodified.
type AddVaultsRequest struct {
	Connection     string     `json:"connection"`
	SubscriptionID string     `json:"subscription_id"`
	Vaults         []AddVault `json:"vaults"`
	// Azure is Vaults under the name Thales' Terraform provider
	// (ciphertrust_azure_vault) sends it; give one or the other.
	Azure []AddVault `json:"azure"`
	// CloudKeyBackupLimit is CCKM's cloud_key_backup_limit, recorded on
	// every vault added: 1 to [MaxCloudKeyBackupLimit]; null or 0 is no
	// limit. akvsync keeps no backups; it stores and echoes the value.
	CloudKeyBackupLimit *int `json:"cloud_key_backup_limit"`
}

// list is the vaults of the request, from vaults or azure.
func (r AddVaultsRequest) list() ([]AddVault, string, error) {
	switch {
	case len(r.Vaults) > 0 && len(r.Azure) > 0:
		return nil, "", invalidf("vaults and azure name the same list; give one of them")
	case len(r.Azure) > 0:
		return r.Azure, "azure", nil
	}
	return r.Vaults, "vaults", nil
}

// AddVault is one vault of an [AddVaultsRequest]: Azure Resource
// Manager's Microsoft.KeyVault/vaults or Microsoft.KeyVault/managedHSMs
// resource, with CCKM's azure_vault_id for its resource id. Null members
// are absent.
type AddVault struct {
	// Name is the vault's (or pool's) name in Azure.
	Name string `json:"name"`
	// ID is the ARM resource id, as ARM spells it; AzureVaultID is CCKM's
	// name for it. Either or both (then equal) may be given.
	ID           string `json:"id,omitempty"`
	AzureVaultID string `json:"azure_vault_id,omitempty"`
	// Type is Microsoft.KeyVault/vaults (the default) or
	// Microsoft.KeyVault/managedHSMs, in any case.
	Type     string            `json:"type,omitempty"`
	Location string            `json:"location,omitempty"`
	Tags     map[string]string `json:"tags,omitempty"`
	// SKU (Managed HSM), SystemData and Identity are accepted as ARM
	// returns them and not stored.
	SKU        *AzureSKU        `json:"sku,omitempty"`
	SystemData *AzureSystemData `json:"systemData,omitempty"`
	Identity   map[string]any   `json:"identity,omitempty"`
	// Properties are the resource's properties: vaultUri for a vault,
	// hsmUri for a Managed HSM pool, and the others Azure documents.
	Properties VaultProperties `json:"properties"`
}

// AzureSKU is an ARM sku object.
type AzureSKU struct {
	Family string `json:"family,omitempty"`
	Name   string `json:"name,omitempty"`
}

// AzureSystemData is ARM's systemData object.
type AzureSystemData struct {
	CreatedBy          string `json:"createdBy,omitempty"`
	CreatedByType      string `json:"createdByType,omitempty"`
	CreatedAt          string `json:"createdAt,omitempty"`
	LastModifiedBy     string `json:"lastModifiedBy,omitempty"`
	LastModifiedByType string `json:"lastModifiedByType,omitempty"`
	LastModifiedAt     string `json:"lastModifiedAt,omitempty"`
}

// VaultProperties are the properties of an Azure vault or Managed HSM
// pool: every property Azure's REST API documents for either resource type
// (Microsoft.KeyVault, API 2023-07-01 and later). An undocumented property
// is refused, naming it. The object is stored as received (null and empty
// members dropped, compacted, at most [MaxVaultPropertiesBytes]); only the
// URI is used.
type VaultProperties struct {
	TenantID                     string           `json:"tenantId,omitempty"`
	SKU                          *AzureSKU        `json:"sku,omitempty"`
	VaultURI                     string           `json:"vaultUri,omitempty"`
	HsmURI                       string           `json:"hsmUri,omitempty"`
	AccessPolicies               []map[string]any `json:"accessPolicies,omitempty"`
	CreateMode                   string           `json:"createMode,omitempty"`
	EnabledForDeployment         *bool            `json:"enabledForDeployment,omitempty"`
	EnabledForDiskEncryption     *bool            `json:"enabledForDiskEncryption,omitempty"`
	EnabledForTemplateDeployment *bool            `json:"enabledForTemplateDeployment,omitempty"`
	EnableSoftDelete             *bool            `json:"enableSoftDelete,omitempty"`
	SoftDeleteRetentionInDays    *int             `json:"softDeleteRetentionInDays,omitempty"`
	EnableRbacAuthorization      *bool            `json:"enableRbacAuthorization,omitempty"`
	EnablePurgeProtection        *bool            `json:"enablePurgeProtection,omitempty"`
	NetworkACLs                  map[string]any   `json:"networkAcls,omitempty"`
	ProvisioningState            string           `json:"provisioningState,omitempty"`
	PublicNetworkAccess          string           `json:"publicNetworkAccess,omitempty"`
	HsmPoolResourceID            string           `json:"hsmPoolResourceId,omitempty"`
	PrivateEndpointConnections   []map[string]any `json:"privateEndpointConnections,omitempty"`
	InitialAdminObjectIDs        []string         `json:"initialAdminObjectIds,omitempty"`
	Regions                      []map[string]any `json:"regions,omitempty"`
	ScheduledPurgeDate           string           `json:"scheduledPurgeDate,omitempty"`
	SecurityDomainProperties     map[string]any   `json:"securityDomainProperties,omitempty"`
	StatusMessage                string           `json:"statusMessage,omitempty"`

	// raw is the object as received (nil when built in Go).
	raw json.RawMessage
}

// vaultPropertiesFields is VaultProperties without its methods.
type vaultPropertiesFields VaultProperties

// UnmarshalJSON decodes the properties strictly (an undocumented property
// is an error naming it) and keeps the object as received.
func (p *VaultProperties) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var v vaultPropertiesFields
	if err := dec.Decode(&v); err != nil {
		return err
	}
	*p = VaultProperties(v)
	p.raw = nil
	if !emptyJSON(b) {
		p.raw = bytes.Clone(b)
	}
	return nil
}

// MarshalJSON encodes the properties as received, or from the fields when
// they were built in Go.
func (p VaultProperties) MarshalJSON() ([]byte, error) {
	if len(p.raw) > 0 {
		return p.raw, nil
	}
	return json.Marshal(vaultPropertiesFields(p))
}

// uri is the vault's URI: hsmUri for a Managed HSM pool (or its vaultUri,
// which must then agree), vaultUri for a vault.
func (p VaultProperties) uri(field, vaultType string) (string, error) {
	if vaultType != events.VaultTypeManagedHSM {
		if p.HsmURI != "" {
			return "", invalidf("%s.properties.hsmUri is a property of %s; this vault's type is %s", field, events.VaultTypeManagedHSM, vaultType)
		}
		if err := validateVaultURI(p.VaultURI); err != nil {
			return "", invalidf("%s.properties.vaultUri %v", field, err)
		}
		return p.VaultURI, nil
	}
	u := p.HsmURI
	name := "hsmUri"
	if u == "" {
		u, name = p.VaultURI, "vaultUri"
	} else if p.VaultURI != "" && !sameURI(p.VaultURI, p.HsmURI) {
		return "", invalidf("%s.properties.vaultUri and hsmUri name different pools", field)
	}
	if u == "" {
		return "", invalidf("%s.properties.hsmUri is required for a Managed HSM pool", field)
	}
	if err := validateVaultURI(u); err != nil {
		return "", invalidf("%s.properties.%s %v", field, name, err)
	}
	return u, nil
}

// stored is the properties as a vault record keeps them: the received
// object without its null or empty members, compacted; nil when empty.
func (p VaultProperties) stored(field string) (json.RawMessage, error) {
	src, err := p.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("control: encode properties: %w", err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(src, &m); err != nil {
		return nil, invalidf("%s.properties must be an object", field)
	}
	for k, v := range m {
		if emptyJSON(v) {
			delete(m, k)
		}
	}
	if len(m) == 0 {
		return nil, nil
	}
	out, err := json.Marshal(m) // compact, members sorted
	if err != nil {
		return nil, fmt.Errorf("control: encode properties: %w", err)
	}
	if len(out) > MaxVaultPropertiesBytes {
		return nil, invalidf("%s.properties is %d bytes; at most %d are stored", field, len(out), MaxVaultPropertiesBytes)
	}
	return out, nil
}

// emptyJSON reports an absent JSON value: null, {}, [] or "".
func emptyJSON(b []byte) bool {
	switch string(bytes.TrimSpace(b)) {
	case "", "null", "{}", "[]", `""`:
		return true
	}
	return false
}

// sameURI compares two vault URIs, ignoring case and a trailing slash.
func sameURI(a, b string) bool {
	return strings.EqualFold(strings.TrimSuffix(a, "/"), strings.TrimSuffix(b, "/"))
}

// CanonicalVaultType returns the canonical spelling of an Azure vault
// resource type given in any case ("" is a vault), and false for any
// other type.
func CanonicalVaultType(t string) (string, bool) {
	switch {
	case t == "", strings.EqualFold(t, events.VaultTypeVault):
		return events.VaultTypeVault, true
	case strings.EqualFold(t, events.VaultTypeManagedHSM):
		return events.VaultTypeManagedHSM, true
	}
	return "", false
}

// armIDRE is the shape of a vault's or pool's ARM resource id.
var armIDRE = regexp.MustCompile(`(?i)^/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/Microsoft\.KeyVault/(vaults|managedHSMs)/([^/]+)$`)

// checkARMID checks an ARM resource id against the vault it names.
func checkARMID(field, id, name, subscriptionID, vaultType string) error {
	m := armIDRE.FindStringSubmatch(id)
	if m == nil {
		return invalidf("%s %q is not an Azure Key Vault resource id (/subscriptions/…/resourceGroups/…/providers/Microsoft.KeyVault/vaults/<name>)", field, id)
	}
	switch {
	case !strings.EqualFold(m[1], subscriptionID):
		return invalidf("%s names subscription %s, not %s", field, m[1], subscriptionID)
	case !strings.EqualFold("Microsoft.KeyVault/"+m[3], vaultType):
		return invalidf("%s names a Microsoft.KeyVault/%s resource, not %s", field, m[3], vaultType)
	case !strings.EqualFold(m[4], name):
		return invalidf("%s names %s, not %s", field, m[4], name)
	}
	return nil
}

// knownSuffixes are the public clouds' DNS suffixes of vaults and of
// Managed HSM pools.
var (
	vaultSuffixes = []string{"vault.azure.net", "vault.azure.cn", "vault.usgovcloudapi.net"}
	hsmSuffixes   = []string{azure.ManagedHSMSuffixPublic, azure.ManagedHSMSuffixChina, azure.ManagedHSMSuffixGovernment}
)

// checkURIType refuses a URI under a public cloud's Managed HSM suffix for
// a vault, and one under a vault suffix for a pool. Other hosts
// (emulators, Azure Stack, private endpoints) are not judged.
func checkURIType(field, uri, vaultType string) error {
	u, err := url.Parse(uri)
	if err != nil {
		return nil // validateVaultURI has refused it
	}
	host := strings.ToLower(u.Hostname())
	under := func(suffixes []string) bool {
		for _, s := range suffixes {
			if strings.HasSuffix(host, "."+s) {
				return true
			}
		}
		return false
	}
	switch {
	case vaultType == events.VaultTypeVault && under(hsmSuffixes):
		return invalidf("%s: %s is a Managed HSM pool's URI; give type %s", field, uri, events.VaultTypeManagedHSM)
	case vaultType == events.VaultTypeManagedHSM && under(vaultSuffixes):
		return invalidf("%s: %s is a key vault's URI; give type %s", field, uri, events.VaultTypeVault)
	}
	return nil
}

// validateAddVault checks one vault of an add-vaults request and returns
// its canonical type, URI, ARM id and stored properties.
func validateAddVault(field string, v AddVault, subscriptionID string) (vaultType, uri, armID string, props json.RawMessage, err error) {
	var ok bool
	if vaultType, ok = CanonicalVaultType(v.Type); !ok {
		return "", "", "", nil, invalidf("%s.type %q must be %s or %s", field, v.Type, events.VaultTypeVault, events.VaultTypeManagedHSM)
	}
	if v.Name == "" {
		return "", "", "", nil, invalidf("%s.name is required", field)
	}
	if !ValidVaultName(v.Name) {
		what := "vault"
		if vaultType == events.VaultTypeManagedHSM {
			what = "Managed HSM pool"
		}
		return "", "", "", nil, invalidf("%s.name %q is not a valid %s name (3 to 24 letters, digits and hyphens)", field, v.Name, what)
	}
	if len(v.ID) > MaxFieldLen || len(v.AzureVaultID) > MaxFieldLen || len(v.Location) > MaxFieldLen {
		return "", "", "", nil, invalidf("%s: id, azure_vault_id and location must be at most %d bytes", field, MaxFieldLen)
	}
	armID = v.AzureVaultID
	switch {
	case v.ID != "" && v.AzureVaultID != "" && !strings.EqualFold(v.ID, v.AzureVaultID):
		return "", "", "", nil, invalidf("%s.id and %s.azure_vault_id differ; they name the same ARM resource id", field, field)
	case armID == "":
		armID = v.ID
	}
	if armID != "" {
		name := field + ".azure_vault_id"
		if v.AzureVaultID == "" {
			name = field + ".id"
		}
		if err := checkARMID(name, armID, v.Name, subscriptionID, vaultType); err != nil {
			return "", "", "", nil, err
		}
	}
	if uri, err = v.Properties.uri(field, vaultType); err != nil {
		return "", "", "", nil, err
	}
	if err := checkURIType(field, uri, vaultType); err != nil {
		return "", "", "", nil, err
	}
	if len(v.Tags) > MaxTags {
		return "", "", "", nil, invalidf("%s.tags has %d tags; at most %d are allowed", field, len(v.Tags), MaxTags)
	}
	for k, val := range v.Tags {
		if k == "" || len(k) > MaxTagKeyLen || len(val) > MaxTagValueLen {
			return "", "", "", nil, invalidf("%s.tags: tag %q: keys must be 1 to %d bytes and values at most %d bytes", field, k, MaxTagKeyLen, MaxTagValueLen)
		}
	}
	if props, err = v.Properties.stored(field); err != nil {
		return "", "", "", nil, err
	}
	return vaultType, uri, armID, props, nil
}

// checkBackupLimit validates cloud_key_backup_limit: nil or 0 is none.
func checkBackupLimit(n *int) (int, error) {
	if n == nil || *n == 0 {
		return 0, nil
	}
	if *n < 0 || *n > MaxCloudKeyBackupLimit {
		return 0, invalidf("cloud_key_backup_limit must be from 1 to %d (0 or null: no limit), not %d", MaxCloudKeyBackupLimit, *n)
	}
	return *n, nil
}

// validateVaultURI checks that s is an absolute https URL of a host.
func validateVaultURI(s string) error {
	if s == "" {
		return errors.New("is required")
	}
	if len(s) > MaxFieldLen {
		return fmt.Errorf("is longer than %d bytes", MaxFieldLen)
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q is not a URL", s)
	}
	if u.Scheme != "https" || u.Host == "" || u.Hostname() == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return fmt.Errorf("%q is not an absolute https URL", s)
	}
	return nil
}
