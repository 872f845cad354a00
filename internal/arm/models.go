package arm

import (
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armsubscriptions"
)

// Subscription is a subscription as ARM lists it, in the fields CCKM's
// get-subscriptions returns.
type Subscription struct {
	// ID is ARM's resource id, "/subscriptions/<subscriptionId>".
	ID                   string                `json:"id"`
	SubscriptionID       string                `json:"subscriptionId"`
	DisplayName          string                `json:"displayName"`
	State                string                `json:"state"`
	SubscriptionPolicies *SubscriptionPolicies `json:"subscriptionPolicies,omitempty"`
	AuthorizationSource  string                `json:"authorizationSource,omitempty"`
	TenantID             string                `json:"tenantId,omitempty"`
}

// SubscriptionPolicies are a subscription's policies.
type SubscriptionPolicies struct {
	LocationPlacementID string `json:"locationPlacementId,omitempty"`
	QuotaID             string `json:"quotaId,omitempty"`
	SpendingLimit       string `json:"spendingLimit,omitempty"`
}

// Vault is a Key Vault or Managed HSM pool as ARM lists it, reduced to the
// fields CCKM's get-vaults returns (and add-vaults accepts): ARM's id,
// name, type, location, tags and the scalar properties. Access policies,
// network rules and private endpoint connections are left out: they are
// not used, and they can make one vault's entry hundreds of kilobytes.
type Vault struct {
	Name string `json:"name"`
	// ID is ARM's resource id; AzureVaultID repeats it under CCKM's name.
	ID           string            `json:"id"`
	AzureVaultID string            `json:"azure_vault_id"`
	Type         string            `json:"type"`
	Location     string            `json:"location"`
	Tags         map[string]string `json:"tags"`
	Properties   VaultProperties   `json:"properties"`
}

// VaultProperties are the properties of a [Vault]. For a Managed HSM
// pool, vaultUri repeats hsmUri (so add-vaults finds the URI where it
// looks for a vault's) and sku is the pool's (ARM has it at the top
// level).
type VaultProperties struct {
	TenantID                     string `json:"tenantId,omitempty"`
	SKU                          *SKU   `json:"sku,omitempty"`
	VaultURI                     string `json:"vaultUri,omitempty"`
	HsmURI                       string `json:"hsmUri,omitempty"`
	EnabledForDeployment         *bool  `json:"enabledForDeployment,omitempty"`
	EnabledForDiskEncryption     *bool  `json:"enabledForDiskEncryption,omitempty"`
	EnabledForTemplateDeployment *bool  `json:"enabledForTemplateDeployment,omitempty"`
	EnableSoftDelete             *bool  `json:"enableSoftDelete,omitempty"`
	CreateMode                   string `json:"createMode,omitempty"`
	EnablePurgeProtection        *bool  `json:"enablePurgeProtection,omitempty"`
	SoftDeleteRetentionInDays    *int32 `json:"softDeleteRetentionInDays,omitempty"`
	EnableRbacAuthorization      *bool  `json:"enableRbacAuthorization,omitempty"`
	PublicNetworkAccess          string `json:"publicNetworkAccess,omitempty"`
	ProvisioningState            string `json:"provisioningState,omitempty"`
}

// SKU is a vault's or pool's SKU.
type SKU struct {
	Family string `json:"family,omitempty"`
	Name   string `json:"name,omitempty"`
}

func fromSubscription(s *armsubscriptions.Subscription) Subscription {
	out := Subscription{
		ID:                  deref(s.ID),
		SubscriptionID:      deref(s.SubscriptionID),
		DisplayName:         deref(s.DisplayName),
		State:               string(deref(s.State)),
		AuthorizationSource: deref(s.AuthorizationSource),
		TenantID:            deref(s.TenantID),
	}
	if p := s.SubscriptionPolicies; p != nil {
		out.SubscriptionPolicies = &SubscriptionPolicies{
			LocationPlacementID: deref(p.LocationPlacementID),
			QuotaID:             deref(p.QuotaID),
			SpendingLimit:       string(deref(p.SpendingLimit)),
		}
	}
	if out.ID == "" && out.SubscriptionID != "" {
		out.ID = "/subscriptions/" + out.SubscriptionID
	}
	return out
}

func tags(m map[string]*string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = deref(v)
	}
	return out
}

func fromVault(v *armkeyvault.Vault) Vault {
	out := Vault{
		Name: deref(v.Name), ID: deref(v.ID), AzureVaultID: deref(v.ID),
		Type: deref(v.Type), Location: deref(v.Location), Tags: tags(v.Tags),
	}
	if out.Type == "" {
		out.Type = string(KindVaults)
	}
	if p := v.Properties; p != nil {
		out.Properties = VaultProperties{
			TenantID:                     deref(p.TenantID),
			VaultURI:                     deref(p.VaultURI),
			EnabledForDeployment:         p.EnabledForDeployment,
			EnabledForDiskEncryption:     p.EnabledForDiskEncryption,
			EnabledForTemplateDeployment: p.EnabledForTemplateDeployment,
			EnableSoftDelete:             p.EnableSoftDelete,
			CreateMode:                   string(deref(p.CreateMode)),
			EnablePurgeProtection:        p.EnablePurgeProtection,
			SoftDeleteRetentionInDays:    p.SoftDeleteRetentionInDays,
			EnableRbacAuthorization:      p.EnableRbacAuthorization,
			PublicNetworkAccess:          deref(p.PublicNetworkAccess),
			ProvisioningState:            string(deref(p.ProvisioningState)),
		}
		if s := p.SKU; s != nil {
			out.Properties.SKU = &SKU{Family: string(deref(s.Family)), Name: string(deref(s.Name))}
		}
	}
	return out
}

func fromManagedHSM(h *armkeyvault.ManagedHsm) Vault {
	out := Vault{
		Name: deref(h.Name), ID: deref(h.ID), AzureVaultID: deref(h.ID),
		Type: deref(h.Type), Location: deref(h.Location), Tags: tags(h.Tags),
	}
	if out.Type == "" {
		out.Type = string(KindManagedHSMs)
	}
	if p := h.Properties; p != nil {
		uri := deref(p.HsmURI)
		out.Properties = VaultProperties{
			TenantID:                  deref(p.TenantID),
			VaultURI:                  uri,
			HsmURI:                    uri,
			EnableSoftDelete:          p.EnableSoftDelete,
			CreateMode:                string(deref(p.CreateMode)),
			EnablePurgeProtection:     p.EnablePurgeProtection,
			SoftDeleteRetentionInDays: p.SoftDeleteRetentionInDays,
			PublicNetworkAccess:       string(deref(p.PublicNetworkAccess)),
			ProvisioningState:         string(deref(p.ProvisioningState)),
		}
	}
	if s := h.SKU; s != nil {
		out.Properties.SKU = &SKU{Family: string(deref(s.Family)), Name: string(deref(s.Name))}
	}
	return out
}
