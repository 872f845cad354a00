package sync_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/akvsync/akvsync/internal/control"
	"github.com/akvsync/akvsync/pkg/events"
	"github.com/akvsync/akvsync/pkg/sync"
)

// natsMaxPayload is NATS's default message size limit.
const natsMaxPayload = 1 << 20

// TestLargestJobRecordFitsInOneMessage: a job of the most vaults the API
// accepts, every vault failed with the longest error text, is still one
// NATS message (else the tracker could never write it and the job would
// never finish).
func TestLargestJobRecordFitsInOneMessage(t *testing.T) {
	now := time.Now().UTC()
	job := events.Job{ID: events.NewID(), CreatedAt: now, UpdatedAt: now, CompletedAt: &now, OverallStatus: events.JobFailed,
		SynchronizeAll: true, Cloud: "AzureUSGovernment", CreatedBy: strings.Repeat("u", 64)}
	for range control.DefaultMaxJobVaults {
		job.Vaults = append(job.Vaults, events.JobVault{
			VaultID: events.NewID(), Name: strings.Repeat("v", 24), SubscriptionID: events.NewID(), Status: events.VaultFailed,
			Error:  strings.Repeat("é", sync.MaxErrorText/2) + "…",
			Listed: 1_000_000, Fetched: 1_000_000, Unchanged: 1_000_000, Gone: 1_000_000, StartedAt: &now, FinishedAt: &now,
		})
	}
	raw, err := json.Marshal(job)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) >= natsMaxPayload {
		t.Fatalf("the largest job record is %d bytes, NATS takes %d", len(raw), natsMaxPayload)
	}
	t.Logf("largest job record: %d bytes", len(raw))
}
