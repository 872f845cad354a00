package events

import (
	"fmt"
	"strings"
	"time"
)

// Key refresh: a change Azure pushed (an Event Grid delivery to the API's
// webhook) asks the workers to read that one key again, instead of
// syncing its vault. The API publishes a [KeyRefresh] on
// KeyRefreshSubject to the [StreamRefresh] work queue, with the Event Grid
// event id as Nats-Msg-Id, so a delivery Event Grid repeats within the
// stream's duplicate window is stored once. The stream keeps one pending
// request per key (a newer one replaces it), so a burst of changes to one
// key costs one refresh. A worker takes it from the [ConsumerKeyRefresher]
// durable, reads the key (at most two Azure calls), publishes its record
// to the KEYS stream and a [KindKeyRefreshed] event.

// Key refresh event types (Azure Key Vault's Event Grid event types that
// trigger a refresh).
const (
	// EventGridKeyNewVersionCreated: a key was created, imported or
	// rotated (a new version).
	EventGridKeyNewVersionCreated = "Microsoft.KeyVault.KeyNewVersionCreated"
	// EventGridKeyNearExpiry: a key version expires within 30 days.
	EventGridKeyNearExpiry = "Microsoft.KeyVault.KeyNearExpiry"
	// EventGridKeyExpired: a key version expired.
	EventGridKeyExpired = "Microsoft.KeyVault.KeyExpired"
)

// RefreshEventTypes are the Event Grid event types that trigger a key
// refresh.
func RefreshEventTypes() []string {
	return []string{EventGridKeyNewVersionCreated, EventGridKeyNearExpiry, EventGridKeyExpired}
}

// KeyRefresh asks a worker to read one key of a registered vault again.
type KeyRefresh struct {
	// VaultID is the registered vault (resolved by the API).
	VaultID string `json:"vault_id"`
	// KeyName is the key's name in Azure.
	KeyName string `json:"key_name"`
	// Version is the key version the event is about ("" if unknown).
	Version string `json:"version,omitempty"`
	// EventID and EventType are the Event Grid event's id and type.
	EventID   string `json:"event_id"`
	EventType string `json:"event_type"`
	// EventTime is when Azure raised the event; ReceivedAt when the API
	// accepted the delivery.
	EventTime  time.Time `json:"event_time"`
	ReceivedAt time.Time `json:"received_at"`
}

// Validate reports a request a worker could not act on.
func (r KeyRefresh) Validate() error {
	switch {
	case !ValidToken(r.VaultID):
		return fmt.Errorf("%w: key refresh: bad vault id %q", ErrBadEvent, r.VaultID)
	case !ValidKeyName(r.KeyName):
		return fmt.Errorf("%w: key refresh: bad key name %q", ErrBadEvent, r.KeyName)
	case r.EventID == "":
		return fmt.Errorf("%w: key refresh: no event id", ErrBadEvent)
	}
	return nil
}

// ValidKeyName reports whether s is an Azure key name
// (^[0-9a-zA-Z-]{1,127}$), which is also a valid subject token.
func ValidKeyName(s string) bool {
	return len(s) <= 127 && ValidToken(s) && !strings.Contains(s, "_")
}

// KeyRefreshSubject is the subject of a refresh request of one key. Key
// names are case-insensitive in Azure: the token is lower-cased, so two
// events naming a key differently coalesce.
func KeyRefreshSubject(vaultID, keyName string) string {
	return subjRefreshKey + "." + vaultID + "." + strings.ToLower(keyName)
}

// The outcomes of a key refresh (KeyRefreshed.Outcome).
const (
	// RefreshUpdated: the key was read and its record changed.
	RefreshUpdated = "updated"
	// RefreshUnchanged: the key was read and its record is as it was
	// (only synced_at moved).
	RefreshUnchanged = "unchanged"
	// RefreshCurrent: the inventory already held the event's version,
	// synced after the event: no Azure call (a repeated delivery).
	RefreshCurrent = "current"
	// RefreshNotFound: Azure has no such key (deleted since): nothing
	// changes; the vault's next completed sync marks it gone.
	RefreshNotFound = "not_found"
	// RefreshVaultRemoved: the vault left the registry meanwhile.
	RefreshVaultRemoved = "vault_removed"
	// RefreshFailed: the refresh gave up (its last delivery failed).
	RefreshFailed = "failed"
)

// KeyRefreshed is the data of a key refreshed event
// (io.akvsync.key.refreshed).
type KeyRefreshed struct {
	VaultID   string `json:"vault_id"`
	Vault     string `json:"vault"`
	KeyName   string `json:"key_name"`
	Version   string `json:"version,omitempty"`
	EventID   string `json:"event_id"`
	EventType string `json:"event_type"`
	// Outcome is one of the Refresh* constants.
	Outcome string `json:"outcome"`
	// Error says why a refresh failed.
	Error string `json:"error,omitempty"`
	// AzureCalls is how many Key Vault requests the refresh made (0-2,
	// more only with retries).
	AzureCalls int64 `json:"azure_calls"`
	// EventTime is when Azure raised the event; RefreshedAt when the
	// record was published: their difference is the inventory's lag.
	EventTime   time.Time `json:"event_time"`
	RefreshedAt time.Time `json:"refreshed_at"`
	Attempt     int       `json:"attempt"`
}

// EventScopeKey is the CloudEvents type scope of key events.
const EventScopeKey = "key"

// KeyEventSubject is the subject of an event about one key.
func KeyEventSubject(vaultID, keyName string, kind EventKind) string {
	return subjEventKey + "." + vaultID + "." + strings.ToLower(keyName) + "." + string(kind)
}
