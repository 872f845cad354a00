// Package events is akvsync's contract on NATS: every subject name, every
// message and record type, the CloudEvents 1.0 envelope, and the idempotent
// creation of the streams, consumers and key-value buckets the pipeline uses.
//
// Nothing outside this package spells a subject or a stream name. The API
// process publishes [SyncRequested] events and writes [Job] and [Vault]
// records; workers consume them, publish [VaultTask]s, [KeyRecord]s and
// [VaultResult]s, and answer [KeyQuery]/[JobQuery] requests from their local
// inventory. See docs/architecture.md for the flow.
package events
