package sync

import (
	"context"
	"errors"
	gosync "sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// fetchWait bounds one pull so a consumer notices ctx ending promptly.
const fetchWait = 2 * time.Second

// consume runs handle on messages of cons with at most parallel handlers at
// once. Each handler slot pulls one message at a time, so no message waits
// in a local buffer while its ack timer runs. It returns when ctx ends,
// after the running handlers finish.
func consume(ctx context.Context, cons jetstream.Consumer, parallel int, handle func(context.Context, jetstream.Msg)) error {
	var wg gosync.WaitGroup
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				msg, err := cons.Next(jetstream.FetchMaxWait(fetchWait))
				if err != nil {
					if errors.Is(err, jetstream.ErrNoMessages) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, jetstream.ErrNoHeartbeat) {
						continue
					}
					if ctx.Err() != nil {
						return
					}
					// Connection trouble: back off briefly and try again.
					select {
					case <-ctx.Done():
					case <-time.After(fetchWait / 4):
					}
					continue
				}
				handle(ctx, msg)
			}
		}()
	}
	wg.Wait()
	return nil
}
