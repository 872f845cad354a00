// Package store is a worker's materialized inventory: the key records of the
// KEYS stream and the job records of the jobs bucket, applied in batches to a
// bbolt file, with the last applied stream sequence of each source committed
// in the same transaction as the data (exactly-once application across
// restarts). It answers the API's key and job list/get queries from secondary
// indexes so that a filtered page does not scan every key.
//
// The model is etcd's server/storage/backend: JetStream replicates the log,
// bbolt holds each node's materialized state, and writes are committed in
// batches (see [Store.Apply]; the inventory projector sizes them).
package store
