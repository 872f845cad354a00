package events_test

import (
	"fmt"

	"github.com/akvsync/akvsync/pkg/events"
)

// A worker reports a vault's sync on the events stream as a CloudEvents
// JSON message; a dashboard subscribed to SubjectAllEvents (with any NATS
// client) reads the subject and decodes the data with the same types.
func Example() {
	res := events.VaultResult{JobID: "job-1", VaultID: "vault-1", Vault: "kv-prod::sub-1",
		Status: events.VaultCompleted, Listed: 120, Fetched: 3, Unchanged: 117}

	// The worker's side: the subject and the message it publishes.
	subject := events.VaultEventSubject(res.JobID, res.VaultID, events.KindVaultCompleted)
	msg, err := events.MarshalEvent("akvsync/worker/host-1", events.KindVaultCompleted.Type("vault"), res.VaultID, res)
	if err != nil {
		fmt.Println(err)
		return
	}

	// The dashboard's side.
	jobID, vaultID, kind, err := events.ParseVaultEventSubject(subject)
	if err != nil {
		fmt.Println(err)
		return
	}
	var got events.VaultResult
	ev, err := events.DecodeEvent(msg, &got)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("subscribe:", events.SubjectAllEvents)
	fmt.Println("subject:", subject)
	fmt.Println("job", jobID, "vault", vaultID, "kind", kind)
	fmt.Println("type:", ev.Type)
	fmt.Printf("%s %s: listed %d, fetched %d\n", got.Vault, got.Status, got.Listed, got.Fetched)
	// Output:
	// subscribe: akvsync.event.>
	// subject: akvsync.event.vault.job-1.vault-1.completed
	// job job-1 vault vault-1 kind completed
	// type: io.akvsync.vault.completed
	// kv-prod::sub-1 completed: listed 120, fetched 3
}
