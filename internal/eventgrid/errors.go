package eventgrid

import "errors"

var (
	// ErrMalformed: the body is not an Event Grid or CloudEvents delivery,
	// or an event in it lacks what a Key Vault event carries. The webhook
	// answers 400, which Event Grid does not retry.
	ErrMalformed = errors.New("eventgrid: malformed delivery")
	// ErrUnauthenticated: the delivery carries no valid secret or token
	// (401).
	ErrUnauthenticated = errors.New("eventgrid: delivery not authenticated")
	// ErrInvalidConfig: the webhook's configuration cannot work.
	ErrInvalidConfig = errors.New("eventgrid: invalid configuration")
)
