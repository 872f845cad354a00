package events

import (
	"slices"
	"strings"
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

// VaultStatuses lists every vault status, in the order a job's detail
// shows them: failures first, then running, aborted, pending, completed.
var VaultStatuses = []VaultStatus{VaultFailed, VaultRunning, VaultAborted, VaultPending, VaultCompleted}

// Terminal reports whether s is a final vault status.
func (s VaultStatus) Terminal() bool {
	return s == VaultCompleted || s == VaultFailed || s == VaultAborted
}

// Valid reports whether s is one of the vault statuses.
func (s VaultStatus) Valid() bool {
	for _, v := range VaultStatuses {
		if s == v {
			return true
		}
	}
	return false
}

// Job is the header of a synchronization job, stored in the jobs bucket
// under its id and updated only with compare-and-set. Its size does not
// depend on the number of vaults: each vault's part is a [JobVault] record
// of its own, and the vaults the job covers are listed in [JobPlanChunk]
// records written once, when the job is created (see pkg/jobs).
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
	// JobConfigID is the id of the scheduler job config that started the
	// job ("" for a job created through the API).
	JobConfigID string `json:"job_config_id,omitempty"`
	// VaultTotal is the number of vaults the job covers.
	VaultTotal int `json:"vault_total"`
	// PlanChunks is the number of plan records listing the job's vaults.
	PlanChunks int `json:"plan_chunks"`
}

// Finished reports whether the job reached a final overall status.
func (j *Job) Finished() bool { return j.OverallStatus != JobInProgress }

// JobVault is one vault's part in a job: its own record in the jobs
// bucket, written by the job trackers as the vault's events arrive. A vault
// with no record yet is pending.
type JobVault struct {
	JobID          string      `json:"job_id,omitempty"`
	VaultID        string      `json:"vault_id"`
	Name           string      `json:"name"`
	SubscriptionID string      `json:"subscription_id"`
	Status         VaultStatus `json:"status"`
	Error          string      `json:"error,omitempty"`
	Listed         int         `json:"listed"`
	Fetched        int         `json:"fetched"`
	// New and Changed split Fetched: keys not in the inventory before
	// (or gone there), and keys whose updated time changed.
	New       int `json:"new,omitempty"`
	Changed   int `json:"changed,omitempty"`
	Unchanged int `json:"unchanged"`
	Gone      int `json:"gone"`
	// Azure is the vault sync's own accounting of its Azure requests.
	Azure      AzureUsage `json:"azure,omitzero"`
	Attempt    int        `json:"attempt,omitempty"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	// KeysSeq is the KEYS stream sequence of the last key record the
	// vault's sync published (0 if none).
	KeysSeq uint64 `json:"keys_seq,omitempty"`
}

// QualifiedName is the vault's CCKM name, "name::subscription".
func (v JobVault) QualifiedName() string { return QualifiedVaultName(v.Name, v.SubscriptionID) }

// StatusText is the vault's CCKM detailed_status text: the status, or
// "<status>: <error>" for a failed vault, or an aborted one with a reason
// ("aborted: vault removed from the inventory").
func (v JobVault) StatusText() string {
	s := string(v.Status)
	if (v.Status == VaultFailed || v.Status == VaultAborted) && v.Error != "" {
		s += ": " + v.Error
	}
	return s
}

// PlannedVault is one vault of a job's plan: the registry record as the
// job was accepted, and the revision of the vault lock the job took.
type PlannedVault struct {
	Vault
	LockRev uint64 `json:"lock_rev"`
}

// JobPlanChunk is one record of a job's plan: part of the list of vaults
// it covers. Chunks are numbered from 0 and bounded in size, so a job of
// 100,000 vaults is a hundred-odd records of a few hundred kilobytes.
type JobPlanChunk struct {
	JobID  string         `json:"job_id"`
	Index  int            `json:"index"`
	Vaults []PlannedVault `json:"vaults"`
}

// JobProgress counts a job's vaults by status and sums their key counts.
// The inventory derives it from the vault records; it is not stored in
// the job header, so no vault event rewrites a shared record.
type JobProgress struct {
	Pending   int   `json:"pending"`
	Running   int   `json:"in_progress"`
	Completed int   `json:"completed"`
	Failed    int   `json:"failed"`
	Aborted   int   `json:"aborted"`
	Listed    int64 `json:"listed"`
	Fetched   int64 `json:"fetched"`
	New       int64 `json:"new,omitempty"`
	Changed   int64 `json:"changed,omitempty"`
	Unchanged int64 `json:"unchanged"`
	Gone      int64 `json:"gone"`
	// Azure sums the vaults' Azure request accounting.
	Azure AzureUsage `json:"azure,omitzero"`
	// KeysSeq is the largest KEYS stream sequence any vault of the job
	// published: an inventory that applied it holds every key of the job.
	KeysSeq uint64 `json:"keys_seq,omitempty"`
}

// Terminal is the number of vaults in a final state.
func (p JobProgress) Terminal() int { return p.Completed + p.Failed + p.Aborted }

// Count returns the number of vaults with status s.
func (p JobProgress) Count(s VaultStatus) int {
	switch s {
	case VaultPending:
		return p.Pending
	case VaultRunning:
		return p.Running
	case VaultCompleted:
		return p.Completed
	case VaultFailed:
		return p.Failed
	case VaultAborted:
		return p.Aborted
	}
	return 0
}

// Add adds n vaults of status s (n may be negative).
func (p *JobProgress) Add(s VaultStatus, n int) {
	switch s {
	case VaultPending:
		p.Pending += n
	case VaultRunning:
		p.Running += n
	case VaultCompleted:
		p.Completed += n
	case VaultFailed:
		p.Failed += n
	case VaultAborted:
		p.Aborted += n
	}
}

// AddVault adds a vault record's status and counts to p (sign 1), or
// takes them out (sign -1); it does not touch KeysSeq.
func (p *JobProgress) AddVault(v JobVault, sign int) {
	p.Add(v.Status, sign)
	n := int64(sign)
	p.Listed += n * int64(v.Listed)
	p.Fetched += n * int64(v.Fetched)
	p.New += n * int64(v.New)
	p.Changed += n * int64(v.Changed)
	p.Unchanged += n * int64(v.Unchanged)
	p.Gone += n * int64(v.Gone)
	p.Azure.Add(v.Azure, sign)
}

// FinalStatus is the overall status a job whose vaults are all terminal
// ends with: failed if any vault failed, else completed.
func (p JobProgress) FinalStatus() JobStatus {
	if p.Failed > 0 {
		return JobFailed
	}
	return JobCompleted
}

// JobDetail is a job as the API shows it: the header, its progress, and a
// bounded selection of its vaults (failures first; see [VaultStatuses]).
// VaultsTruncated reports that the job has more vaults than Vaults holds;
// the full list is paged separately.
type JobDetail struct {
	Job
	Progress        JobProgress `json:"progress"`
	Vaults          []JobVault  `json:"vaults"`
	VaultsTruncated bool        `json:"vaults_truncated,omitempty"`
	// DetailUnavailable reports that no inventory answered, so Progress
	// and Vaults are empty: only the header is known.
	DetailUnavailable bool `json:"detail_unavailable,omitempty"`
}

// DetailedStatus maps each vault of the detail ("name::subscription") to
// its CCKM status text. It covers Vaults only: see VaultsTruncated.
func (d *JobDetail) DetailedStatus() map[string]string {
	out := make(map[string]string, len(d.Vaults))
	for _, v := range d.Vaults {
		out[v.QualifiedName()] = v.StatusText()
	}
	return out
}

// Vault returns the detail's entry for a vault id, or nil.
func (d *JobDetail) Vault(vaultID string) *JobVault {
	for i := range d.Vaults {
		if d.Vaults[i].VaultID == vaultID {
			return &d.Vaults[i]
		}
	}
	return nil
}

// JobFinished is the data of a job's finished event: the header, its
// final progress, and the statistics derived from them (with the
// finishing worker's price table).
type JobFinished struct {
	Job
	Progress JobProgress `json:"progress"`
	Stats    *JobStats   `json:"stats,omitempty"`
}

// JobProgressed is the data of a running job's progress event: its
// header, its progress once the tracker applied a batch of vault events,
// and the statistics derived from them.
type JobProgressed struct {
	Job
	Progress JobProgress `json:"progress"`
	Stats    JobStats    `json:"stats"`
}

// SortJobVaults orders vaults as a job's detail shows them: by status in
// [VaultStatuses] order (failures first), then by qualified name.
func SortJobVaults(vs []JobVault) {
	rank := func(s VaultStatus) int { return slices.Index(VaultStatuses, s) }
	slices.SortFunc(vs, func(a, b JobVault) int {
		if ra, rb := rank(a.Status), rank(b.Status); ra != rb {
			return ra - rb
		}
		return strings.Compare(strings.ToLower(a.QualifiedName()), strings.ToLower(b.QualifiedName()))
	})
}
