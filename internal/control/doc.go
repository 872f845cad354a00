// Package control is the API process's control plane over NATS: the vault
// registry (the akvsync-vaults bucket), the creation, reading and
// cancellation of synchronization jobs (the akvsync-jobs and akvsync-locks
// buckets and the AKVSYNC_REQUESTS stream), and a client for the workers'
// inventory query service. It never calls Azure.
//
// Every write is all-or-nothing: an operation that fails part-way undoes
// what it did (vault index entries, vault records, locks, job records)
// before it returns, so a failed request leaves nothing half-created.
//
// Errors wrap one of the sentinels in errors.go ([ErrNotFound],
// [ErrInvalid], [ErrConflict], [ErrUnprocessable], [ErrUnavailable]) so the
// HTTP layer can map them to status codes with errors.Is.
//
// # Bucket layout
//
// akvsync-vaults holds each vault record ([events.Vault] JSON) under its id
// (a UUID, so a single subject token), and a uniqueness index entry
// "byname.<subscription>.<name>" (both lower-cased) whose value is the
// vault id. Readers that list vault records must skip keys containing a
// '.'. akvsync-locks holds vault id → id of the job holding the vault (or
// [RemoveLockHolder] while a vault is being removed). akvsync-jobs holds
// job id → [events.Job] JSON.
package control
