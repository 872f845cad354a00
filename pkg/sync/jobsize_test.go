package sync_test

import (
	"strings"
	"testing"
	"time"

	"github.com/akvsync/akvsync/internal/control"
	"github.com/akvsync/akvsync/pkg/events"
	"github.com/akvsync/akvsync/pkg/sync"
)

// TestLargestJobRecordFitsInOneMessage: a job of the most vaults the API
// accepts for a NATS message limit, every vault failed with the longest
// error text and the largest counts, is still one message once wrapped in
// its CloudEvent (else the tracker could never write it and the job would
// never finish).
func TestLargestJobRecordFitsInOneMessage(t *testing.T) {
	for _, maxPayload := range []int64{1 << 20, 8 << 20} {
		n := control.MaxJobVaultsFor(maxPayload)
		if maxPayload == 1<<20 && n < control.DefaultMaxJobVaults {
			t.Fatalf("a 1 MiB server allows %d vaults, below the default %d", n, control.DefaultMaxJobVaults)
		}
		now := time.Now().UTC()
		job := events.Job{ID: events.NewID(), CreatedAt: now, UpdatedAt: now, CompletedAt: &now, OverallStatus: events.JobFailed,
			SynchronizeAll: true, Cloud: "AzureUSGovernment", CreatedBy: strings.Repeat("u", 64)}
		for range n {
			job.Vaults = append(job.Vaults, events.JobVault{
				VaultID: events.NewID(), Name: strings.Repeat("v", 24), SubscriptionID: events.NewID(), Status: events.VaultFailed,
				Error:  strings.Repeat("é", sync.MaxErrorText/2) + "…",
				Listed: 1_000_000, Fetched: 1_000_000, Unchanged: 1_000_000, Gone: 1_000_000, StartedAt: &now, FinishedAt: &now,
			})
		}
		raw, err := events.MarshalEvent(strings.Repeat("s", 64), events.KindJobFinished.Type("job"), job.ID, job)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(raw)) >= maxPayload {
			t.Fatalf("%d vaults: the finished event is %d bytes, NATS takes %d", n, len(raw), maxPayload)
		}
		t.Logf("max payload %d: %d vaults, largest finished event %d bytes", maxPayload, n, len(raw))
	}
}
