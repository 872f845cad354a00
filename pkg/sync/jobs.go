package sync

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/akvsync/akvsync/pkg/events"
)

// publishEvent publishes a CloudEvent to JetStream. msgID, when set,
// deduplicates redelivered work within the stream's duplicate window.
func publishEvent(ctx context.Context, js jetstream.JetStream, source, subject, typ, ceSubject, msgID string, data any) (*jetstream.PubAck, error) {
	raw, err := events.MarshalEvent(source, typ, ceSubject, data)
	if err != nil {
		return nil, err
	}
	var opts []jetstream.PublishOpt
	if msgID != "" {
		opts = append(opts, jetstream.WithMsgID(msgID))
	}
	ack, err := js.Publish(ctx, subject, raw, opts...)
	if err != nil {
		return nil, fmt.Errorf("publish %s: %w", subject, err)
	}
	return ack, nil
}
