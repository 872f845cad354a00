// Package jobs owns the synchronization job record: its header, the plan
// that lists its vaults, one status record per vault, the vault locks it
// holds, and the compare-and-set every writer uses (over
// events.UpdateRecord, the module's one loop). The API (create, cancel),
// the job trackers (vault progress, finish) and the janitor
// (stale locks, retention) all go through it.
//
// # Layout
//
// In the jobs bucket ([events.BucketJobs]), for a job id J:
//
//	J                 the header ([events.Job]): status, abort, timestamps,
//	                  vault total; a few hundred bytes whatever the job's size
//	J.plan.N          plan chunk N ([events.JobPlanChunk]): up to
//	                  DefaultPlanChunkVaults vaults with their lock revisions,
//	                  written once at creation
//	J.vault.V         the status record of vault V ([events.JobVault]),
//	                  written by the trackers; a vault without one is pending
//
// In the locks bucket ([events.BucketLocks]), vault id → the id of the job
// holding the vault.
//
// Every write is O(1) in the job's size: a vault event touches only its
// vault's record, a cancel only the header. Creating and finishing a job
// (taking and releasing its locks, writing its plan) are pipelined
// asynchronous publishes, a window at a time, so a job of 100,000 vaults
// takes a few seconds, not 100,000 round trips.
//
// Counting vaults by status is the inventory's job (it applies the jobs
// bucket's stream): see [events.JobProgress].
package jobs
