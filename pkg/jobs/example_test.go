package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/akvsync/akvsync/pkg/events"
	"github.com/akvsync/akvsync/pkg/jobs"
)

// A job's life through the Store, against an in-process NATS server with
// JetStream: the API creates the job (locking its vaults), a tracker
// records a vault's result with a compare-and-set on that vault's record
// alone, and a second job that names a locked vault is refused, naming the
// holder.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir, err := os.MkdirTemp("", "jobs-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() { _ = os.RemoveAll(dir) }()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: dir, NoSigs: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(10 * time.Second) {
		fmt.Println("NATS not ready")
		return
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		fmt.Println(err)
		return
	}

	// The buckets, as every akvsync process creates them.
	if err := (events.Topology{Storage: jetstream.MemoryStorage}).EnsureStreams(ctx, js); err != nil {
		fmt.Println(err)
		return
	}
	jobsKV, err := events.Bucket(ctx, js, events.BucketJobs)
	if err != nil {
		fmt.Println(err)
		return
	}
	locksKV, err := events.Bucket(ctx, js, events.BucketLocks)
	if err != nil {
		fmt.Println(err)
		return
	}
	store, err := jobs.New(js, jobsKV, locksKV, jobs.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}

	vault := events.Vault{ID: "vault-1", Name: "kv-prod", SubscriptionID: "sub-1",
		VaultURI: "https://kv-prod.vault.azure.net", Connection: "prod", Cloud: "AzureCloud"}
	oneVault := func(ctx context.Context, yield func([]events.Vault) error) error { return yield([]events.Vault{vault}) }
	now := time.Now().UTC()
	job, err := store.Create(ctx, events.Job{ID: "job-1", CreatedAt: now, UpdatedAt: now, OverallStatus: events.JobInProgress}, oneVault, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(job.ID, job.OverallStatus, "vaults:", job.VaultTotal)

	// A tracker's write: mutate runs again on a concurrent write, so it
	// does no I/O.
	jv, wrote, _, err := store.UpdateVault(ctx, job.ID, vault.ID, func(v *events.JobVault, exists bool) error {
		v.Status = events.VaultCompleted
		return nil
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(vault.Name, jv.Status, "written:", wrote)

	_, err = store.Create(ctx, events.Job{ID: "job-2", CreatedAt: now, UpdatedAt: now, OverallStatus: events.JobInProgress}, oneVault, nil)
	var conflict *jobs.LockConflictError
	if errors.As(err, &conflict) {
		fmt.Println("job-2 refused: vault", conflict.VaultID, "held by", conflict.Holder)
	}
	// Output:
	// job-1 in_progress vaults: 1
	// kv-prod completed written: true
	// job-2 refused: vault vault-1 held by job-1
}
