package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// QualifiedVaultName is CCKM's name of a vault: "name::subscription".
func QualifiedVaultName(name, subscriptionID string) string { return name + "::" + subscriptionID }

// The Azure resource types of a registered vault.
const (
	// VaultTypeVault is a Key Vault.
	VaultTypeVault = "Microsoft.KeyVault/vaults"
	// VaultTypeManagedHSM is a Managed HSM pool.
	VaultTypeManagedHSM = "Microsoft.KeyVault/managedHSMs"
)

// Vault is a registered Azure Key Vault or Managed HSM pool, stored in the
// vaults bucket under its id.
type Vault struct {
	ID             string            `json:"id"`
	Name           string            `json:"name"`
	AzureVaultID   string            `json:"azure_vault_id,omitempty"`
	SubscriptionID string            `json:"subscription_id"`
	Location       string            `json:"location,omitempty"`
	VaultURI       string            `json:"vault_uri"`
	Connection     string            `json:"connection"`
	Cloud          string            `json:"cloud_name"`
	Tags           map[string]string `json:"tags,omitempty"`
	// Type is [VaultTypeVault] or [VaultTypeManagedHSM]; "" (a record from
	// before types) is a vault: read it with [Vault.ResourceType].
	Type string `json:"type,omitempty"`
	// Properties are the Azure properties add-vaults received (the ARM
	// object's "properties", null members dropped, compacted, bounded);
	// nil when none were given beyond the URI.
	Properties json.RawMessage `json:"properties,omitempty"`
	// CloudKeyBackupLimit is CCKM's cloud_key_backup_limit (0: no limit).
	CloudKeyBackupLimit int `json:"cloud_key_backup_limit,omitempty"`
	// Removing is set while remove-vault takes the vault out: the vault is
	// not synced or added to a job any more.
	Removing  bool      `json:"removing,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// QualifiedName is the vault's CCKM name, "name::subscription".
func (v Vault) QualifiedName() string { return QualifiedVaultName(v.Name, v.SubscriptionID) }

// ResourceType is the vault's Azure resource type ([VaultTypeVault] when
// the record has none).
func (v Vault) ResourceType() string {
	if v.Type == "" {
		return VaultTypeVault
	}
	return v.Type
}

// IsManagedHSM reports a Managed HSM pool.
func (v Vault) IsManagedHSM() bool { return v.Type == VaultTypeManagedHSM }

// ForTask is the vault as a job's plan and vault task carry it: without
// its Azure properties and tags, which syncing does not use and which
// would make a plan chunk of many vaults large.
func (v Vault) ForTask() Vault {
	v.Properties, v.Tags = nil, nil
	return v
}

// VaultTask asks a vault syncer to sync one vault for one job. It is
// published to the tasks work-queue stream with Nats-Msg-Id "<job>/<vault>".
type VaultTask struct {
	JobID string `json:"job_id"`
	Vault Vault  `json:"vault"`
}

// SyncRequested is the data of the event the API publishes when it accepts
// a job. The job record is already in the jobs bucket with its vaults
// resolved and locked.
type SyncRequested struct {
	Job Job `json:"job"`
}

// VaultResult is the data of a vault event: what a vault syncer did.
type VaultResult struct {
	JobID     string      `json:"job_id"`
	VaultID   string      `json:"vault_id"`
	Vault     string      `json:"vault"` // name::subscription
	Status    VaultStatus `json:"status"`
	Error     string      `json:"error,omitempty"`
	Listed    int         `json:"listed"`
	Fetched   int         `json:"fetched"`
	New       int         `json:"new,omitempty"`
	Changed   int         `json:"changed,omitempty"`
	Unchanged int         `json:"unchanged"`
	Gone      int         `json:"gone"`
	// Azure is this sync's accounting of its Azure requests.
	Azure      AzureUsage `json:"azure,omitzero"`
	Attempt    int        `json:"attempt"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt time.Time  `json:"finished_at,omitzero"`
	// KeysSeq is the KEYS stream sequence of the last key record this sync
	// published (0 if none): a reader whose inventory has applied it sees
	// every key of this sync.
	KeysSeq uint64 `json:"keys_seq,omitempty"`
}

// VaultIndexPrefix prefixes the uniqueness index entries the API keeps in
// the vaults bucket ("byname.<subscription>.<name>" → vault id). Vault
// records themselves are stored under their id, a single-token key.
const VaultIndexPrefix = "byname."

// ListVaults reads every vault record of the vaults bucket (not the index
// entries), in no particular order. Prefer [EachVault], which holds one
// batch in memory, for anything that may be large.
func ListVaults(ctx context.Context, kv jetstream.KeyValue) ([]Vault, error) {
	var out []Vault
	err := EachVault(ctx, kv, 1000, func(vs []Vault) error {
		out = append(out, vs...)
		return nil
	})
	return out, err
}

// EachVault streams every vault record of the vaults bucket (not the index
// entries) in one pass, calling fn with batches of up to batch vaults in
// no particular order; it stops at fn's first error. An entry that is not
// a vault record is skipped.
func EachVault(ctx context.Context, kv jetstream.KeyValue, batch int, fn func([]Vault) error) error {
	if batch < 1 {
		batch = 1
	}
	w, err := kv.WatchFiltered(ctx, []string{"*"}, jetstream.IgnoreDeletes())
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return nil
		}
		return fmt.Errorf("list vaults: %w", err)
	}
	defer func() { _ = w.Stop() }()
	buf := make([]Vault, 0, batch)
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("list vaults: watcher closed")
			}
			if e == nil {
				if len(buf) > 0 {
					return fn(buf)
				}
				return nil
			}
			var v Vault
			if err := json.Unmarshal(e.Value(), &v); err != nil || v.ID == "" {
				continue
			}
			buf = append(buf, v)
			if len(buf) == batch {
				if err := fn(buf); err != nil {
					return err
				}
				buf = make([]Vault, 0, batch)
			}
		case <-ctx.Done():
			return fmt.Errorf("list vaults: %w", ctx.Err())
		}
	}
}
