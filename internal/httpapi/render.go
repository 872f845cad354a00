package httpapi

import (
	"encoding/json"
	"time"

	"github.com/akvsync/akvsync/pkg/events"
)

// CCKM resource identifiers of the single akvsync account.
const (
	// Account is the account of every resource.
	Account = "kylo:kylo:admin:accounts:kylo"
	// Application and DevAccount are CCKM's fixed values.
	Application = "ncryptify:gemalto:admin:apps:kylo"
	DevAccount  = "ncryptify:gemalto:admin:accounts:gemalto"
	// URI prefixes of jobs, vaults and keys; the id follows.
	JobURIPrefix   = "kylo:kylo:cckm:synchronize:"
	VaultURIPrefix = "kylo:kylo:cckm:azure-vault:"
	KeyURIPrefix   = "kylo:kylo:cckm:azure-key:"
	// KeyMaterialOrigin is the origin of every synced key (created in Azure).
	KeyMaterialOrigin = "native"
)

// TimeFormat is CCKM's timestamp format: RFC 3339, UTC, microseconds.
const TimeFormat = "2006-01-02T15:04:05.000000Z"

// formatTime renders t in [TimeFormat].
func formatTime(t time.Time) string { return t.UTC().Format(TimeFormat) }

// Page is CCKM's list envelope.
type Page[T any] struct {
	Skip      int `json:"skip"`
	Limit     int `json:"limit"`
	Total     int `json:"total"`
	Resources []T `json:"resources"`
}

// JobJSON is a synchronization job in CCKM's shape. key_vaults and
// detailed_status are bounded: a job's GET carries at most
// events.GetDetailVaults vaults and each row of the jobs list at most
// events.ListDetailVaults, failures first, then running, aborted, pending
// and completed vaults; vaults_truncated says more exist, vaults_total
// and progress count them all, and GET …/{id}/vaults pages the rest.
type JobJSON struct {
	ID              string            `json:"id"`
	URI             string            `json:"uri"`
	Account         string            `json:"account"`
	Application     string            `json:"application"`
	DevAccount      string            `json:"devAccount"`
	CreatedAt       string            `json:"createdAt"`
	UpdatedAt       string            `json:"updatedAt"`
	CompletedAt     string            `json:"completed_at,omitempty"`
	OverallStatus   events.JobStatus  `json:"overall_status"`
	DetailedStatus  map[string]string `json:"detailed_status"`
	Cloud           string            `json:"cloud"`
	KeyVaults       []string          `json:"key_vaults"`
	Abort           bool              `json:"abort"`
	SynchronizeAll  bool              `json:"synchronize_all"`
	VaultsTotal     int               `json:"vaults_total"`
	VaultsTruncated bool              `json:"vaults_truncated"`
	// JobConfigID is the scheduler job config that started the job;
	// absent for a job created through the API.
	JobConfigID string `json:"job_config_id,omitempty"`
	// Progress is absent when no worker answered (the header alone).
	Progress *ProgressJSON `json:"progress,omitempty"`
	// Stats is akvsync's extension: keys, vaults, rate, ETA, Azure
	// requests and estimated cost. Absent with Progress.
	Stats *events.JobStats `json:"stats,omitempty"`
}

// ProgressJSON counts a job's vaults by status and sums their keys.
type ProgressJSON struct {
	Pending    int   `json:"pending"`
	InProgress int   `json:"in_progress"`
	Completed  int   `json:"completed"`
	Failed     int   `json:"failed"`
	Aborted    int   `json:"aborted"`
	Listed     int64 `json:"keys_listed"`
	Fetched    int64 `json:"keys_fetched"`
	Unchanged  int64 `json:"keys_unchanged"`
	Gone       int64 `json:"keys_gone"`
}

// RenderJobStats is RenderJob with the job's stats, priced with prices
// at time now (absent when the detail is unavailable).
func RenderJobStats(j events.JobDetail, prices events.Prices, now time.Time) JobJSON {
	out := RenderJob(j)
	if !j.DetailUnavailable {
		st := events.NewJobStats(j.Job, j.Progress, prices, now.UTC())
		out.Stats = &st
	}
	return out
}

// RenderJob converts a job to CCKM's shape.
func RenderJob(j events.JobDetail) JobJSON {
	out := JobJSON{
		ID:              j.ID,
		URI:             JobURIPrefix + j.ID,
		Account:         Account,
		Application:     Application,
		DevAccount:      DevAccount,
		CreatedAt:       formatTime(j.CreatedAt),
		UpdatedAt:       formatTime(j.UpdatedAt),
		OverallStatus:   j.OverallStatus,
		DetailedStatus:  make(map[string]string, len(j.Vaults)),
		Cloud:           j.Cloud,
		KeyVaults:       make([]string, 0, len(j.Vaults)),
		Abort:           j.Abort,
		SynchronizeAll:  j.SynchronizeAll,
		VaultsTotal:     j.VaultTotal,
		VaultsTruncated: j.VaultsTruncated,
		JobConfigID:     j.JobConfigID,
	}
	for _, v := range j.Vaults {
		out.KeyVaults = append(out.KeyVaults, v.QualifiedName())
		out.DetailedStatus[v.QualifiedName()] = v.StatusText()
	}
	if !j.DetailUnavailable {
		p := j.Progress
		out.Progress = &ProgressJSON{Pending: p.Pending, InProgress: p.Running, Completed: p.Completed, Failed: p.Failed,
			Aborted: p.Aborted, Listed: p.Listed, Fetched: p.Fetched, Unchanged: p.Unchanged, Gone: p.Gone}
	}
	if j.CompletedAt != nil && j.OverallStatus != events.JobInProgress {
		out.CompletedAt = formatTime(*j.CompletedAt)
	}
	return out
}

// JobVaultJSON is one vault of a job (GET …/synchronization-jobs/{id}/vaults).
type JobVaultJSON struct {
	VaultID   string             `json:"vault_id"`
	Name      string             `json:"name"`
	Status    events.VaultStatus `json:"status"`
	Error     string             `json:"error,omitempty"`
	Listed    int                `json:"keys_listed"`
	Fetched   int                `json:"keys_fetched"`
	Unchanged int                `json:"keys_unchanged"`
	Gone      int                `json:"keys_gone"`
	New       int                `json:"keys_new"`
	Changed   int                `json:"keys_changed"`
	// AzureRequests and AzureThrottled are the vault sync's Key Vault
	// attempts and 429 answers.
	AzureRequests  int64  `json:"azure_requests"`
	AzureThrottled int64  `json:"azure_throttled"`
	Attempt        int    `json:"attempt,omitempty"`
	StartedAt      string `json:"started_at,omitempty"`
	FinishedAt     string `json:"finished_at,omitempty"`
}

// RenderJobVault converts a job's vault record to its API shape.
func RenderJobVault(v events.JobVault) JobVaultJSON {
	out := JobVaultJSON{VaultID: v.VaultID, Name: v.QualifiedName(), Status: v.Status, Error: v.Error,
		Listed: v.Listed, Fetched: v.Fetched, Unchanged: v.Unchanged, Gone: v.Gone, New: v.New, Changed: v.Changed,
		AzureRequests: v.Azure.Calls(), AzureThrottled: v.Azure.Throttled, Attempt: v.Attempt}
	if v.StartedAt != nil {
		out.StartedAt = formatTime(*v.StartedAt)
	}
	if v.FinishedAt != nil {
		out.FinishedAt = formatTime(*v.FinishedAt)
	}
	return out
}

// VaultJSON is a registered vault (or Managed HSM pool) in CCKM's shape.
type VaultJSON struct {
	ID             string `json:"id"`
	URI            string `json:"uri"`
	Account        string `json:"account"`
	Name           string `json:"name"`
	AzureName      string `json:"azure_name"`
	AzureVaultID   string `json:"azure_vault_id"`
	Type           string `json:"type"`
	CloudName      string `json:"cloud_name"`
	Connection     string `json:"connection"`
	Location       string `json:"location"`
	SubscriptionID string `json:"subscription_id"`
	// Properties are Azure's properties as add-vaults received them.
	Properties          VaultPropsJSON    `json:"properties"`
	CloudKeyBackupLimit int               `json:"cloud_key_backup_limit"`
	CreatedAt           string            `json:"createdAt"`
	UpdatedAt           string            `json:"updatedAt"`
	Tags                map[string]string `json:"tags"`
}

// VaultPropsJSON are a vault's Azure properties: the stored object (every
// property add-vaults received) or, for a vault registered without any,
// just its URI. VaultURI and HsmURI read the URI back.
type VaultPropsJSON struct {
	VaultURI string `json:"vaultUri,omitempty"`
	HsmURI   string `json:"hsmUri,omitempty"`

	raw json.RawMessage
}

// vaultPropsFields is VaultPropsJSON without its methods.
type vaultPropsFields VaultPropsJSON

// MarshalJSON writes the stored properties, or the URI alone.
func (p VaultPropsJSON) MarshalJSON() ([]byte, error) {
	if len(p.raw) > 0 {
		return p.raw, nil
	}
	return json.Marshal(vaultPropsFields(p))
}

// UnmarshalJSON reads the URI back and keeps the whole object.
func (p *VaultPropsJSON) UnmarshalJSON(b []byte) error {
	var v vaultPropsFields
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*p = VaultPropsJSON(v)
	p.raw = append(json.RawMessage(nil), b...)
	return nil
}

// RenderVault converts a vault record to CCKM's shape. name is the
// qualified "name::subscription" (as key_vaults and key_vault show it);
// azure_name is the vault's name in Azure.
func RenderVault(v events.Vault) VaultJSON {
	tags := v.Tags
	if tags == nil {
		tags = map[string]string{}
	}
	props := VaultPropsJSON{raw: v.Properties}
	if v.IsManagedHSM() {
		props.HsmURI = v.VaultURI
	} else {
		props.VaultURI = v.VaultURI
	}
	return VaultJSON{
		ID:                  v.ID,
		URI:                 VaultURIPrefix + v.ID,
		Account:             Account,
		Name:                v.QualifiedName(),
		AzureName:           v.Name,
		AzureVaultID:        v.AzureVaultID,
		Type:                v.ResourceType(),
		CloudName:           v.Cloud,
		Connection:          v.Connection,
		Location:            v.Location,
		SubscriptionID:      v.SubscriptionID,
		Properties:          props,
		CloudKeyBackupLimit: v.CloudKeyBackupLimit,
		CreatedAt:           formatTime(v.CreatedAt),
		UpdatedAt:           formatTime(v.UpdatedAt),
		Tags:                tags,
	}
}

// KeyJSON is an inventory key in CCKM's shape.
type KeyJSON struct {
	ID                string         `json:"id"`
	URI               string         `json:"uri"`
	Account           string         `json:"account"`
	CreatedAt         string         `json:"createdAt"`
	UpdatedAt         string         `json:"updatedAt"`
	SyncedAt          string         `json:"syncedAt"`
	KeyName           string         `json:"key_name"`
	KeyVault          string         `json:"key_vault"`
	KeyVaultID        string         `json:"key_vault_id"`
	CloudName         string         `json:"cloud_name"`
	Region            string         `json:"region"`
	Version           string         `json:"version"`
	KeySize           int            `json:"key_size"`
	KeyMaterialOrigin string         `json:"key_material_origin"`
	Status            string         `json:"status"`
	Gone              bool           `json:"gone"`
	Deleted           bool           `json:"deleted"`
	AzureParam        AzureParamJSON `json:"azure_param"`
}

// AzureParamJSON is a key's Azure side.
type AzureParamJSON struct {
	Key        AzureKeyJSON      `json:"key"`
	Attributes AzureAttrsJSON    `json:"attributes"`
	Tags       map[string]string `json:"tags"`
	Managed    bool              `json:"managed"`
}

// AzureKeyJSON is the key's JSON Web Key (public parts only).
type AzureKeyJSON struct {
	Kid    string   `json:"kid"`
	Kty    string   `json:"kty"`
	KeyOps []string `json:"key_ops"`
	N      string   `json:"n,omitempty"`
	E      string   `json:"e,omitempty"`
	Crv    string   `json:"crv,omitempty"`
	X      string   `json:"x,omitempty"`
	Y      string   `json:"y,omitempty"`
}

// AzureAttrsJSON are the key's attributes; times are Unix seconds (0: unset).
type AzureAttrsJSON struct {
	Enabled         bool   `json:"enabled"`
	NotBefore       int64  `json:"nbf"`
	Expires         int64  `json:"exp"`
	Created         int64  `json:"created"`
	Updated         int64  `json:"updated"`
	RecoveryLevel   string `json:"recoveryLevel,omitempty"`
	RecoverableDays int    `json:"recoverableDays,omitempty"`
	Exportable      bool   `json:"exportable"`
	HSMPlatform     string `json:"hsmPlatform,omitempty"`
}

// Key statuses.
const (
	KeyStatusAvailable = "AVAILABLE"
	KeyStatusDisabled  = "DISABLED"
)

// RenderKey converts an inventory record to CCKM's shape. deleted (CCKM's
// deleted_in_azure) mirrors gone: a key a completed listing no longer
// returned was deleted in Azure.
func RenderKey(k events.KeyRecord) KeyJSON {
	status := KeyStatusDisabled
	if k.Enabled {
		status = KeyStatusAvailable
	}
	tags := k.Tags
	if tags == nil {
		tags = map[string]string{}
	}
	ops := k.KeyOps
	if ops == nil {
		ops = []string{}
	}
	return KeyJSON{
		ID:                k.ID,
		URI:               KeyURIPrefix + k.ID,
		Account:           Account,
		CreatedAt:         formatTime(k.FirstSeenAt),
		UpdatedAt:         formatTime(k.ChangedAt),
		SyncedAt:          formatTime(k.SyncedAt),
		KeyName:           k.Name,
		KeyVault:          k.KeyVault(),
		KeyVaultID:        k.VaultID,
		CloudName:         k.Cloud,
		Region:            k.Region,
		Version:           k.Version,
		KeySize:           k.KeySize,
		KeyMaterialOrigin: KeyMaterialOrigin,
		Status:            status,
		Gone:              k.Gone,
		Deleted:           k.Gone,
		AzureParam: AzureParamJSON{
			Key: AzureKeyJSON{Kid: k.Kid, Kty: k.Kty, KeyOps: ops, N: k.N, E: k.E, Crv: k.Curve, X: k.X, Y: k.Y},
			Attributes: AzureAttrsJSON{
				Enabled: k.Enabled, NotBefore: k.NotBefore, Expires: k.Expires,
				Created: k.Created, Updated: k.Updated,
				RecoveryLevel: k.RecoveryLevel, RecoverableDays: k.RecoverableDays,
				Exportable: k.Exportable, HSMPlatform: k.HSMPlatform,
			},
			Tags:    tags,
			Managed: k.Managed,
		},
	}
}

// renderAll converts a slice with f, never returning nil.
func renderAll[S, T any](in []S, f func(S) T) []T {
	out := make([]T, len(in))
	for i, v := range in {
		out[i] = f(v)
	}
	return out
}
