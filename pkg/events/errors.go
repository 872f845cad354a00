package events

import "errors"

var (
	// ErrBadSubject is returned when a subject does not have the shape this
	// package gives it.
	ErrBadSubject = errors.New("events: malformed subject")

	// ErrBadEvent is returned when a message is not a CloudEvents 1.0 JSON
	// event of a known type, or its data does not decode.
	ErrBadEvent = errors.New("events: malformed event")

	// ErrTopology is returned when a stream, consumer or bucket cannot be
	// created or exists with a configuration that cannot be updated to ours.
	ErrTopology = errors.New("events: cannot ensure topology")

	// ErrTopologyMissing is returned when a stream, consumer or bucket a
	// service binds to does not exist yet: the init step (worker
	// --init-topology, as the admin NATS user) has not run. Services wait
	// for it.
	ErrTopologyMissing = errors.New("events: topology missing (run the init step: worker --init-topology as the admin NATS user)")
)
