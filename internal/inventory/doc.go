// Package inventory is a worker's materialized view: the [Projector]
// applies the KEYS stream and the jobs bucket to the worker's bbolt store in
// batched transactions, exactly once (the stream positions are committed
// with the data), and the [QueryService] answers the API's key and job
// queries from that store over NATS request/reply, after catching up with
// the streams so a reader sees every write that preceded its query.
package inventory
