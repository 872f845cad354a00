package sync

import (
	"net/http"
	"sync/atomic"
	"time"

	"github.com/akvsync/akvsync/pkg/events"
)

// Metrics receives what a worker measures. internal/telemetry implements
// it with Prometheus; pkg/sync itself depends on no metrics library.
// Implementations must be safe for concurrent use. A nil Metrics in
// Config records nothing.
type Metrics interface {
	// VaultSyncStarted is called when this worker starts syncing a vault
	// of jobID, VaultSyncStopped when that sync's Azure work and its wait
	// for the inventory are over (whatever its outcome).
	VaultSyncStarted(jobID string)
	VaultSyncStopped(jobID string)
	// VaultSyncFinished is called when a vault's terminal result has been
	// published (res.Status is completed, failed or aborted).
	VaultSyncFinished(res events.VaultResult, took time.Duration)
	// AzureAttempt is called for every Key Vault HTTP attempt.
	AzureAttempt(a Attempt)
	// KeyRefreshed is called when a key refresh ended, with its outcome
	// (one of the events.Refresh* constants).
	KeyRefreshed(outcome string)
}

// noMetrics records nothing.
type noMetrics struct{}

func (noMetrics) VaultSyncStarted(string)                             {}
func (noMetrics) VaultSyncStopped(string)                             {}
func (noMetrics) VaultSyncFinished(events.VaultResult, time.Duration) {}
func (noMetrics) AzureAttempt(Attempt)                                {}
func (noMetrics) KeyRefreshed(string)                                 {}

// usageCounter is one vault sync's accounting of its Azure requests
// (events.AzureUsage), updated concurrently by its requests.
type usageCounter struct {
	managedHSM bool

	listKeys, listKeyVersions, getKey, other atomic.Int64
	throttled, retries, unauthenticated      atomic.Int64
	wait                                     atomic.Int64 // nanoseconds
	standardOps, hsmKeyOps, managedHSMOps    atomic.Int64
}

// observe counts one attempt.
func (u *usageCounter) observe(a Attempt) {
	switch a.Operation {
	case OpListKeys:
		u.listKeys.Add(1)
	case OpListKeyVersions:
		u.listKeyVersions.Add(1)
	case OpGetKey:
		u.getKey.Add(1)
	default:
		u.other.Add(1)
	}
	if a.Retry {
		u.retries.Add(1)
	}
	u.wait.Add(int64(a.Wait))
	switch a.Status {
	case 0:
		// Unanswered: nothing billed.
	case http.StatusTooManyRequests:
		u.throttled.Add(1)
	case http.StatusUnauthorized:
		u.unauthenticated.Add(1)
	default:
		if u.managedHSM {
			u.managedHSMOps.Add(1)
		} else {
			u.standardOps.Add(1)
		}
	}
}

// hsmKeyRead moves one billable read from the standard class to the
// HSM-protected key class (a Key Vault's HSM key was read).
func (u *usageCounter) hsmKeyRead() {
	if u.managedHSM {
		return
	}
	u.standardOps.Add(-1)
	u.hsmKeyOps.Add(1)
}

func (u *usageCounter) snapshot() events.AzureUsage {
	return events.AzureUsage{
		ListKeys: u.listKeys.Load(), ListKeyVersions: u.listKeyVersions.Load(), GetKey: u.getKey.Load(), Other: u.other.Load(),
		Throttled: u.throttled.Load(), Retries: u.retries.Load(), Unauthenticated: u.unauthenticated.Load(),
		LimiterWait: time.Duration(u.wait.Load()),
		StandardOps: u.standardOps.Load(), HSMKeyOps: u.hsmKeyOps.Load(), ManagedHSMOps: u.managedHSMOps.Load(),
	}
}
