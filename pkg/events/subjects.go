package events

import (
	"fmt"
	"strings"
)

// Subject prefixes and names. Tokens such as job and vault ids are UUIDs and
// key names match ^[0-9a-zA-Z-]{1,127}$, so none of them contains a '.', '*'
// or '>' and every subject below is a valid literal subject.
const (
	// SubjectRoot is the first token of every akvsync subject.
	SubjectRoot = "akvsync"

	subjSyncRequested = "akvsync.sync.requested"
	subjTaskVault     = "akvsync.task.vault"
	subjEventJob      = "akvsync.event.job"
	subjEventVault    = "akvsync.event.vault"
	subjKey           = "akvsync.key"
	subjEventSchedule = "akvsync.event.schedule"
	subjScheduleArm   = "akvsync.schedule.arm"
	subjScheduleFire  = "akvsync.schedule.fire"
	subjRefreshKey    = "akvsync.refresh.key"
	subjEventKey      = "akvsync.event.key"

	// SubjectAllEvents matches every event dashboards may subscribe to.
	SubjectAllEvents = "akvsync.event.>"

	// QueryServiceName is the name of the NATS micro service that answers
	// inventory queries; QueryGroup is its subject prefix.
	QueryServiceName = "akvsync-query"
	QueryGroup       = "akvsync.query"
	// Query endpoint names under QueryGroup.
	QueryKeysList = "keys.list"
	QueryKeysGet  = "keys.get"
	// QueryKeysExport streams a key list of any length in chunks (see
	// KeyExportRequest).
	QueryKeysExport = "keys.export"
	QueryJobsList   = "jobs.list"
	QueryJobsGet    = "jobs.get"
	// QueryJobVaults pages the vaults of one job.
	QueryJobVaults = "jobs.vaults"
	// QueryQueueGroup is the queue group every worker's query service joins.
	QueryQueueGroup = "akvsync-query"
)

// MaxDeliveriesAdvisorySubject is where JetStream announces a vault task
// that ran out of deliveries without being acked (its worker died on the
// last one): the janitor fails that vault so its job can finish.
const MaxDeliveriesAdvisorySubject = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + StreamTasks + "." + ConsumerVaultSyncer

// SyncRequestedSubject is the subject of the sync-requested event of a job.
func SyncRequestedSubject(jobID string) string { return subjSyncRequested + "." + jobID }

// VaultTaskSubject is the subject of the task that syncs one vault for a job.
func VaultTaskSubject(jobID, vaultID string) string {
	return subjTaskVault + "." + jobID + "." + vaultID
}

// JobEventSubject is the subject of a job-level event of the given kind.
func JobEventSubject(jobID string, kind EventKind) string {
	return subjEventJob + "." + jobID + "." + string(kind)
}

// JobEventsFilters match every event of one job: its own and its vaults'.
func JobEventsFilters(jobID string) []string {
	return []string{subjEventJob + "." + jobID + ".*", subjEventVault + "." + jobID + ".*.*"}
}

// JobEventFilter matches the job events of one kind for every job.
func JobEventFilter(kind EventKind) string { return subjEventJob + ".*." + string(kind) }

// ParseJobEventSubject splits a job event subject into its job id and kind.
func ParseJobEventSubject(subject string) (jobID string, kind EventKind, err error) {
	rest, ok := strings.CutPrefix(subject, subjEventJob+".")
	parts := strings.Split(rest, ".")
	if !ok || len(parts) != 2 {
		return "", "", fmt.Errorf("%w: not a job event subject: %q", ErrBadSubject, subject)
	}
	return parts[0], EventKind(parts[1]), nil
}

// VaultEventSubject is the subject of a vault-level event of the given kind.
func VaultEventSubject(jobID, vaultID string, kind EventKind) string {
	return subjEventVault + "." + jobID + "." + vaultID + "." + string(kind)
}

// TrackerFilters matches the vault events that move a job's state (started
// and the terminal ones) for every job: the job tracker consumes exactly
// these.
func TrackerFilters() []string {
	return []string{
		subjEventVault + ".*.*." + string(KindVaultStarted),
		subjEventVault + ".*.*." + string(KindVaultCompleted),
		subjEventVault + ".*.*." + string(KindVaultFailed),
		subjEventVault + ".*.*." + string(KindVaultAborted),
	}
}

// KeySubject is the subject of the inventory record of one key. The KEYS
// stream keeps one message per subject, so the stream is a compacted log of
// the latest state of every key.
func KeySubject(vaultID, keyName string) string {
	return subjKey + "." + vaultID + "." + keyName
}

// VaultKeysFilter matches the key records of one vault (and its
// VaultRemovedSubject marker).
func VaultKeysFilter(vaultID string) string { return subjKey + "." + vaultID + ".*" }

// VaultRemovedToken is the last token of a vault-removed marker on the
// KEYS stream. Key names match ^[0-9a-zA-Z-]{1,127}$, so no key subject
// ends with it.
const VaultRemovedToken = "_removed"

// VaultRemovedSubject is the subject of the marker that removing a vault
// publishes on the KEYS stream after purging the vault's key records:
// every inventory that applies it deletes the vault's keys (a body of
// [VaultRemoved]).
func VaultRemovedSubject(vaultID string) string {
	return subjKey + "." + vaultID + "." + VaultRemovedToken
}

// VaultRemovedFilter matches the vault-removed markers of every vault.
func VaultRemovedFilter() string { return subjKey + ".*." + VaultRemovedToken }

// ParseVaultRemovedSubject returns the vault id of a vault-removed marker
// subject; ok is false for any other subject.
func ParseVaultRemovedSubject(subject string) (vaultID string, ok bool) {
	rest, found := strings.CutPrefix(subject, subjKey+".")
	if !found {
		return "", false
	}
	vaultID, token, found := strings.Cut(rest, ".")
	if !found || token != VaultRemovedToken || vaultID == "" {
		return "", false
	}
	return vaultID, true
}

// ScheduleArmSubject is the subject of the schedule message of a
// scheduler job config (one per config: the stream keeps the last).
func ScheduleArmSubject(configID string) string { return subjScheduleArm + "." + configID }

// ScheduleFireSubject is where the server publishes a config's fires.
func ScheduleFireSubject(configID string) string { return subjScheduleFire + "." + configID }

// ParseScheduleFireSubject returns the config id of a fire subject.
func ParseScheduleFireSubject(subject string) (configID string, ok bool) {
	id, found := strings.CutPrefix(subject, subjScheduleFire+".")
	if !found || !ValidToken(id) {
		return "", false
	}
	return id, true
}

// ScheduleEventSubject is the subject of a scheduler event of a config.
func ScheduleEventSubject(configID string, kind EventKind) string {
	return subjEventSchedule + "." + configID + "." + string(kind)
}

// QuerySubject is the full subject of a query endpoint.
func QuerySubject(endpoint string) string { return QueryGroup + "." + endpoint }

// ParseVaultEventSubject splits a vault event subject into its job id, vault
// id and kind.
func ParseVaultEventSubject(subject string) (jobID, vaultID string, kind EventKind, err error) {
	rest, ok := strings.CutPrefix(subject, subjEventVault+".")
	parts := strings.Split(rest, ".")
	if !ok || len(parts) != 3 {
		return "", "", "", fmt.Errorf("%w: not a vault event subject: %q", ErrBadSubject, subject)
	}
	return parts[0], parts[1], EventKind(parts[2]), nil
}

// ValidToken reports whether s can be used as one subject token.
func ValidToken(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		switch {
		case r == '-' || r == '_':
		case r >= '0' && r <= '9', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		default:
			return false
		}
	}
	return true
}
