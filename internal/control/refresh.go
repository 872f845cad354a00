package control

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/akvsync/akvsync/pkg/events"
)

// Refreshes queues key refreshes: the API's side of an Event Grid
// delivery. Each request goes to the key refresh work queue with the
// Event Grid event id as Nats-Msg-Id, so a delivery Event Grid repeats
// within the stream's duplicate window is stored once.
type Refreshes struct {
	js  jetstream.JetStream
	reg *Registry
}

// Vault resolves the registered vault an Event Grid event names, by its
// Azure subscription id and vault name. An unknown vault is [ErrNotFound].
func (r *Refreshes) Vault(ctx context.Context, subscriptionID, name string) (events.Vault, error) {
	if !ValidVaultName(name) || !validSubscription(subscriptionID) {
		return events.Vault{}, notFoundf("vault %q not found", name)
	}
	v, err := r.reg.byIndex(ctx, nameKey(name, subscriptionID), name+"::"+subscriptionID)
	if err == nil && v.Removing {
		return events.Vault{}, notFoundf("vault %q is being removed", name)
	}
	return v, err
}

// Request queues the refreshes and waits until JetStream stored each. It
// returns how many were duplicates (an event id seen within the duplicate
// window). A full queue or an unreachable stream is [ErrUnavailable]:
// nothing is lost, since Event Grid delivers the batch again.
func (r *Refreshes) Request(ctx context.Context, reqs []events.KeyRefresh) (duplicates int, err error) {
	futures := make([]jetstream.PubAckFuture, 0, len(reqs))
	for _, req := range reqs {
		if err := req.Validate(); err != nil {
			return 0, invalidf("%s", err.Error())
		}
		raw, err := json.Marshal(req)
		if err != nil {
			return 0, fmt.Errorf("encode key refresh: %w", err)
		}
		f, err := r.js.PublishAsync(events.KeyRefreshSubject(req.VaultID, req.KeyName), raw, jetstream.WithMsgID(req.EventID))
		if err != nil {
			return 0, unavailable("queue key refresh", err)
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case ack := <-f.Ok():
			if ack.Duplicate {
				duplicates++
			}
		case err := <-f.Err():
			return duplicates, unavailable("queue key refresh", err)
		case <-ctx.Done():
			return duplicates, unavailable("queue key refresh", ctx.Err())
		}
	}
	return duplicates, nil
}
