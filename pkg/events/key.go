package events

import "time"

// KeyRecord is the inventory's record of one Azure key (its latest
// version), published to the KEYS stream on KeySubject(VaultID, Name).
// Azure times are Unix seconds as Azure gives them (0 = unset).
type KeyRecord struct {
	ID             string `json:"id"`
	VaultID        string `json:"vault_id"`
	VaultName      string `json:"vault_name"`
	SubscriptionID string `json:"subscription_id"`
	Cloud          string `json:"cloud_name"`
	Region         string `json:"region,omitempty"`

	Name    string   `json:"key_name"`
	Version string   `json:"version"`
	Kid     string   `json:"kid"`
	Kty     string   `json:"kty"`
	KeySize int      `json:"key_size,omitempty"`
	Curve   string   `json:"crv,omitempty"`
	KeyOps  []string `json:"key_ops,omitempty"`
	// Public key material, unpadded base64url as Azure returns it.
	N string `json:"n,omitempty"`
	E string `json:"e,omitempty"`
	X string `json:"x,omitempty"`
	Y string `json:"y,omitempty"`

	Enabled         bool              `json:"enabled"`
	NotBefore       int64             `json:"nbf,omitempty"`
	Expires         int64             `json:"exp,omitempty"`
	Created         int64             `json:"created"`
	Updated         int64             `json:"updated"`
	RecoveryLevel   string            `json:"recoveryLevel,omitempty"`
	RecoverableDays int               `json:"recoverableDays,omitempty"`
	Exportable      bool              `json:"exportable"`
	HSMPlatform     string            `json:"hsmPlatform,omitempty"`
	Managed         bool              `json:"managed,omitempty"`
	Tags            map[string]string `json:"tags,omitempty"`

	// Gone is set when a completed listing of the vault no longer returned
	// the key (deleted in Azure).
	Gone bool `json:"gone"`
	// JobID is the job whose sync wrote this record.
	JobID string `json:"job_id"`
	// FirstSeenAt is when akvsync first saw the key (CCKM's createdAt);
	// ChangedAt when the record last changed (updatedAt); SyncedAt when a
	// sync last fetched it (syncedAt).
	FirstSeenAt time.Time `json:"first_seen_at"`
	ChangedAt   time.Time `json:"changed_at"`
	SyncedAt    time.Time `json:"synced_at"`
}

// KeyVault is the key's vault as CCKM names it, "name::subscription".
func (k KeyRecord) KeyVault() string { return QualifiedVaultName(k.VaultName, k.SubscriptionID) }

// VaultRemoved is the body of a vault-removed marker on the KEYS stream
// (see VaultRemovedSubject).
type VaultRemoved struct {
	VaultID   string    `json:"vault_id"`
	RemovedAt time.Time `json:"removed_at"`
}
