package events

import (
	"sort"
	"time"
)

// JobStatus is a job's overall_status, spelled as CCKM spells it.
type JobStatus string

// The job statuses. An aborted job ends JobCompleted with Abort set; there
// is no "cancelled" status.
const (
	JobInProgress JobStatus = "in_progress"
	JobCompleted  JobStatus = "completed"
	JobFailed     JobStatus = "failed"
)

// VaultStatus is the state of one vault within a job.
type VaultStatus string

// The vault statuses within a job. Pending and running are active;
// completed, failed and aborted are terminal.
const (
	VaultPending   VaultStatus = "pending"
	VaultRunning   VaultStatus = "in_progress"
	VaultCompleted VaultStatus = "completed"
	VaultFailed    VaultStatus = "failed"
	VaultAborted   VaultStatus = "aborted"
)

// Terminal reports whether s is a final vault status.
func (s VaultStatus) Terminal() bool {
	return s == VaultCompleted || s == VaultFailed || s == VaultAborted
}

// Job is the write model of a synchronization job, stored in the jobs
// bucket under its id and updated only with compare-and-set. The HTTP API
// renders it in CCKM's shape.
type Job struct {
	ID                 string     `json:"id"`
	CreatedAt          time.Time  `json:"createdAt"`
	UpdatedAt          time.Time  `json:"updatedAt"`
	CompletedAt        *time.Time `json:"completed_at,omitempty"`
	OverallStatus      JobStatus  `json:"overall_status"`
	Abort              bool       `json:"abort"`
	SynchronizeAll     bool       `json:"synchronize_all"`
	TakeCloudKeyBackup bool       `json:"take_cloud_key_backup"`
	Cloud              string     `json:"cloud"`
	CreatedBy          string     `json:"created_by,omitempty"`
	Vaults             []JobVault `json:"vaults"`
}

// JobVault is one vault's part in a job.
type JobVault struct {
	VaultID        string      `json:"vault_id"`
	Name           string      `json:"name"`
	SubscriptionID string      `json:"subscription_id"`
	Status         VaultStatus `json:"status"`
	Error          string      `json:"error,omitempty"`
	Listed         int         `json:"listed"`
	Fetched        int         `json:"fetched"`
	Unchanged      int         `json:"unchanged"`
	Gone           int         `json:"gone"`
	StartedAt      *time.Time  `json:"started_at,omitempty"`
	FinishedAt     *time.Time  `json:"finished_at,omitempty"`
}

// QualifiedName is the vault's CCKM name, "name::subscription".
func (v JobVault) QualifiedName() string { return QualifiedVaultName(v.Name, v.SubscriptionID) }

// KeyVaults lists the job's vaults as "name::subscription", in job order.
func (j *Job) KeyVaults() []string {
	out := make([]string, len(j.Vaults))
	for i, v := range j.Vaults {
		out[i] = v.QualifiedName()
	}
	return out
}

// DetailedStatus maps each vault ("name::subscription") to its status text:
// the status, or "failed: <error>" for a failed vault.
func (j *Job) DetailedStatus() map[string]string {
	out := make(map[string]string, len(j.Vaults))
	for _, v := range j.Vaults {
		s := string(v.Status)
		if v.Status == VaultFailed && v.Error != "" {
			s += ": " + v.Error
		}
		out[v.QualifiedName()] = s
	}
	return out
}

// Vault returns the job's entry for a vault id, or nil.
func (j *Job) Vault(vaultID string) *JobVault {
	for i := range j.Vaults {
		if j.Vaults[i].VaultID == vaultID {
			return &j.Vaults[i]
		}
	}
	return nil
}

// AllTerminal reports whether every vault of the job is in a final state.
func (j *Job) AllTerminal() bool {
	for _, v := range j.Vaults {
		if !v.Status.Terminal() {
			return false
		}
	}
	return true
}

// Finish sets the job's overall status from its vaults once all are
// terminal: failed if any vault failed, else completed (with Abort as it
// is). It reports whether the job changed.
func (j *Job) Finish(now time.Time) bool {
	if j.OverallStatus != JobInProgress || !j.AllTerminal() {
		return false
	}
	j.OverallStatus = JobCompleted
	for _, v := range j.Vaults {
		if v.Status == VaultFailed {
			j.OverallStatus = JobFailed
		}
	}
	t := now.UTC()
	j.CompletedAt = &t
	j.UpdatedAt = t
	return true
}

// SortVaults orders the job's vaults by qualified name, the order the API
// shows them in.
func (j *Job) SortVaults() {
	sort.Slice(j.Vaults, func(a, b int) bool { return j.Vaults[a].QualifiedName() < j.Vaults[b].QualifiedName() })
}
