package jobs

import (
	"strconv"
	"strings"
)

// Key kinds under a job id in the jobs bucket.
const (
	planToken  = "plan"
	vaultToken = "vault"
)

// HeaderKey is the jobs-bucket key of a job's header.
func HeaderKey(jobID string) string { return jobID }

// PlanKey is the jobs-bucket key of a job's plan chunk n.
func PlanKey(jobID string, n int) string { return jobID + "." + planToken + "." + strconv.Itoa(n) }

// VaultKey is the jobs-bucket key of a vault's status record in a job.
func VaultKey(jobID, vaultID string) string { return jobID + "." + vaultToken + "." + vaultID }

// JobKeysFilter matches every key of one job but its header.
func JobKeysFilter(jobID string) string { return jobID + ".>" }

// KeyKind is what a jobs-bucket key holds.
type KeyKind int

// The kinds of jobs-bucket keys.
const (
	KindUnknown KeyKind = iota
	KindHeader
	KindPlan
	KindVault
)

// ParseKey splits a jobs-bucket key into its job id, its kind and, for a
// plan chunk or a vault record, the chunk number or vault id.
func ParseKey(key string) (jobID string, kind KeyKind, rest string) {
	parts := strings.Split(key, ".")
	switch {
	case len(parts) == 1 && parts[0] != "":
		return parts[0], KindHeader, ""
	case len(parts) == 3 && parts[1] == planToken:
		return parts[0], KindPlan, parts[2]
	case len(parts) == 3 && parts[1] == vaultToken:
		return parts[0], KindVault, parts[2]
	}
	return "", KindUnknown, ""
}
