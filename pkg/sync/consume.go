package sync

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// fetchWait bounds one pull so a consumer notices ctx ending promptly.
const fetchWait = 2 * time.Second

// trailingFactor bounds the handlers that released their slot (see
// consume) but have not returned: at most trailingFactor × parallel of
// them, so work that waits on something downstream still holds back the
// intake when the wait grows.
const trailingFactor = 3

// consume runs handle on messages of cons with at most parallel handlers
// doing their main work at once. One message is pulled only when a slot is
// free, so no message waits in a local buffer while its ack timer runs. A
// handler may call release when its main work is done and it only waits
// (e.g. for a downstream store to catch up) before it acks: its slot then
// goes to the next message. At most trailingFactor × parallel released
// handlers may still be running; past that, pulling waits for them. It
// returns when ctx ends, after every handler returned.
func consume(ctx context.Context, cons jetstream.Consumer, parallel int, handle func(ctx context.Context, msg jetstream.Msg, release func())) error {
	slots := make(chan struct{}, parallel)
	inFlight := make(chan struct{}, parallel*(1+trailingFactor))
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		select {
		case inFlight <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		msg, err := next(ctx, cons)
		if err != nil {
			<-slots
			<-inFlight
			if ctx.Err() != nil {
				return nil
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-inFlight }()
			var once sync.Once
			release := func() { once.Do(func() { <-slots }) }
			defer release()
			handle(ctx, msg, release)
		}()
	}
}

// next pulls one message, waiting at most fetchWait. Connection trouble
// backs off briefly before the error is returned.
func next(ctx context.Context, cons jetstream.Consumer) (jetstream.Msg, error) {
	msg, err := cons.Next(jetstream.FetchMaxWait(fetchWait))
	if err == nil {
		return msg, nil
	}
	if errors.Is(err, jetstream.ErrNoMessages) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, jetstream.ErrNoHeartbeat) || ctx.Err() != nil {
		return nil, err
	}
	select {
	case <-ctx.Done():
	case <-time.After(fetchWait / 4):
	}
	return nil, err
}
