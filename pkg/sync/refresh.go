package sync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/akvsync/akvsync/pkg/events"
)

// DefaultRefreshParallelism is how many key refreshes one worker runs at
// once.
const DefaultRefreshParallelism = 32

// RefreshTimeout bounds one key refresh (rate-limiter waits and the SDK's
// retries included); it stays well under the refresh consumer's ack wait
// (events.DefaultRefreshAckWait), so a request is never worked on by two
// workers at once. A refresh that runs out of time is retried.
const RefreshTimeout = events.DefaultRefreshAckWait * 2 / 3

// maxRefreshConflicts bounds the re-reads of a refresh whose key record
// another writer changed between the read and the publish.
const maxRefreshConflicts = 3

// RunRefresher consumes key refresh requests ([events.KeyRefresh]) from
// cons until ctx ends. It runs beside Run, whose setup (the registry and
// the subscription budget) it waits for.
//
// Ack semantics: a request is acked once the key's record is published
// (or nothing had to change) and its key refreshed event is stored; it is
// nacked with a growing delay on a transient failure (throttling, Azure
// or NATS unreachable) until its last delivery, which gives up with a
// failed event (the vault's next sync covers the key); an undecodable
// request is terminated.
func (s *Syncer) RunRefresher(ctx context.Context, cons jetstream.Consumer) error {
	select {
	case <-s.ready:
	case <-ctx.Done():
		return nil
	}
	keys, err := s.js.Stream(ctx, events.StreamKeys)
	if err != nil {
		return fmt.Errorf("key refresher: %w", err)
	}
	s.keyStream = keys
	return consume(ctx, cons, s.cfg.RefreshParallelism, func(ctx context.Context, msg jetstream.Msg, _ func()) {
		s.handleRefresh(ctx, msg)
	})
}

// handleRefresh runs one refresh request and acks it.
func (s *Syncer) handleRefresh(ctx context.Context, msg jetstream.Msg) {
	var req events.KeyRefresh
	if err := json.Unmarshal(msg.Data(), &req); err != nil || req.Validate() != nil {
		s.log.Error().Err(err).Str("subject", msg.Subject()).Msg("dropping undecodable key refresh")
		_ = msg.Term()
		return
	}
	attempt := 1
	if md, err := msg.Metadata(); err == nil {
		attempt = deliveryCount(md.NumDelivered)
	}
	log := s.log.With().Str("component", "refresher").Str("vault_id", req.VaultID).Str("key", req.KeyName).
		Str("event_id", req.EventID).Int("attempt", attempt).Logger()
	res := events.KeyRefreshed{VaultID: req.VaultID, KeyName: req.KeyName, Version: req.Version, EventID: req.EventID,
		EventType: req.EventType, EventTime: req.EventTime, Attempt: attempt}
	// A message nacked on its last delivery would stay in the work queue
	// (until the stream's max age) without being delivered again: the last
	// delivery ends it either way.
	last := attempt >= refreshMaxDeliver
	retry := func(delay time.Duration) {
		if last {
			_ = msg.Term()
			return
		}
		_ = msg.NakWithDelay(delay)
	}
	// Bounded well within the consumer's ack wait, so no other worker
	// takes the request over while this one still works on it.
	rctx, cancel := context.WithTimeout(ctx, RefreshTimeout)
	err := s.refreshKey(rctx, req, &res, log)
	cancel()
	switch {
	case err == nil:
	case ctx.Err() != nil:
		retry(0) // this worker is stopping
		return
	case !errors.Is(err, ErrPermanent) && !last:
		delay := s.cfg.RetryDelay * time.Duration(attempt)
		log.Warn().Err(err).Dur("retry_in", delay).Msg("key refresh failed transiently; will retry")
		_ = msg.NakWithDelay(delay)
		return
	default:
		res.Outcome, res.Error = events.RefreshFailed, errorText(err)
		log.Warn().Err(err).Msg("key refresh failed; the vault's next sync covers the key")
	}
	res.RefreshedAt = time.Now().UTC()
	s.cfg.Metrics.KeyRefreshed(res.Outcome)
	err = Retry(ctx, log, RetryPolicy{}, "publish key refreshed", func(ctx context.Context) error {
		_, err := publishEvent(ctx, s.js, s.cfg.Source, events.KeyEventSubject(req.VaultID, req.KeyName, events.KindKeyRefreshed),
			events.KindKeyRefreshed.Type(events.EventScopeKey), req.VaultID+"/"+req.KeyName, "refreshed/"+req.EventID, res)
		return err
	})
	if err != nil {
		log.Warn().Err(err).Msg("cannot publish key refreshed; will retry the refresh")
		retry(s.cfg.RetryDelay)
		return
	}
	log.Debug().Str("outcome", res.Outcome).Int64("azure_calls", res.AzureCalls).Msg("key refreshed")
	_ = msg.Ack()
}

// refreshMaxDeliver must equal the refresh consumer's MaxDeliver.
const refreshMaxDeliver = events.DefaultRefreshMaxDeliver

// refreshKey reads the key again and publishes its record, filling res.
func (s *Syncer) refreshKey(ctx context.Context, req events.KeyRefresh, res *events.KeyRefreshed, log zerolog.Logger) error {
	v, err := s.registeredVault(ctx, req.VaultID)
	if errors.Is(err, ErrVaultRemoved) {
		res.Outcome = events.RefreshVaultRemoved
		return nil
	}
	if err != nil {
		return err
	}
	res.Vault = v.QualifiedName()
	for conflicts := 0; ; conflicts++ {
		prev, seq, err := s.currentKey(ctx, req.VaultID, req.KeyName)
		if err != nil {
			return err
		}
		had := seq > 0
		// A repeated delivery (or one overtaken by a sync): the
		// inventory already holds the event's version, read after it.
		if had && !prev.Gone && req.Version != "" && strings.EqualFold(prev.Version, req.Version) && !prev.SyncedAt.Before(req.EventTime) {
			res.Outcome = events.RefreshCurrent
			return nil
		}
		rec, found, err := s.readKey(ctx, v, req.KeyName, res, log)
		if err != nil {
			return err
		}
		if !found {
			res.Outcome = events.RefreshNotFound
			return nil
		}
		if rec.Name != req.KeyName {
			// The event spelled the name in another case than Azure's
			// canonical one, which the record's subject uses.
			if prev, seq, err = s.currentKey(ctx, req.VaultID, rec.Name); err != nil {
				return err
			}
			had = seq > 0
		}
		res.Version = rec.Version
		res.Outcome = events.RefreshUpdated
		if had {
			rec.FirstSeenAt = prev.FirstSeenAt
			// Delta sync's rule: a key whose version and updated time
			// are as recorded has not changed.
			if !prev.Gone && prev.Version == rec.Version && prev.Updated == rec.Updated {
				rec.ChangedAt, rec.JobID = prev.ChangedAt, prev.JobID
				res.Outcome = events.RefreshUnchanged
			}
		}
		raw, err := json.Marshal(rec)
		if err != nil {
			return fmt.Errorf("%w: encode key record: %w", ErrPermanent, err)
		}
		ack, err := s.js.Publish(ctx, events.KeySubject(rec.VaultID, rec.Name), raw, jetstream.WithExpectLastSequencePerSubject(seq))
		if wrongLastSequence(err) && conflicts < maxRefreshConflicts {
			log.Debug().Msg("the key's record changed during the refresh; reading again")
			continue
		}
		if err != nil {
			return fmt.Errorf("store key record: %w", err)
		}
		if err := s.inventory.WaitKeys(ctx, ack.Sequence); err != nil && ctx.Err() == nil {
			log.Debug().Err(err).Msg("key refreshed before this worker's inventory holds it")
		}
		return nil
	}
}

// registeredVault reads a vault's registry record; a vault gone or being
// removed is ErrVaultRemoved.
func (s *Syncer) registeredVault(ctx context.Context, vaultID string) (events.Vault, error) {
	e, err := s.vaults.Get(ctx, vaultID)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return events.Vault{}, ErrVaultRemoved
	}
	if err != nil {
		return events.Vault{}, fmt.Errorf("read vault: %w", err)
	}
	var v events.Vault
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		return events.Vault{}, fmt.Errorf("%w: vault record: %w", ErrPermanent, err)
	}
	if v.Removing || v.VaultURI == "" {
		return events.Vault{}, ErrVaultRemoved
	}
	return v, nil
}

// currentKey reads the key's record on the KEYS stream and its sequence
// (0: none).
func (s *Syncer) currentKey(ctx context.Context, vaultID, name string) (events.KeyRecord, uint64, error) {
	m, err := s.keyStream.GetLastMsgForSubject(ctx, events.KeySubject(vaultID, name))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return events.KeyRecord{}, 0, nil
	}
	if err != nil {
		return events.KeyRecord{}, 0, fmt.Errorf("read key record: %w", err)
	}
	var rec events.KeyRecord
	if err := json.Unmarshal(m.Data, &rec); err != nil {
		// Overwritten by the refresh.
		return events.KeyRecord{}, m.Sequence, nil
	}
	return rec, m.Sequence, nil
}

// readKey reads the key from Azure under the vault's and subscription's
// rate limits; found is false when Azure has no such key.
func (s *Syncer) readKey(ctx context.Context, v events.Vault, name string, res *events.KeyRefreshed, log zerolog.Logger) (rec events.KeyRecord, found bool, err error) {
	subLim, release, err := s.budget.Acquire(ctx, v.SubscriptionID)
	if err != nil {
		return rec, false, err
	}
	defer release()
	usage := &usageCounter{managedHSM: v.IsManagedHSM()}
	defer func() { res.AzureCalls += usage.snapshot().Calls() }()
	th := &throttles{vaultID: v.ID, vault: s.vaultLim.get(v.ID), subscription: subLim, usage: usage, metrics: s.cfg.Metrics}
	client, err := s.keys.KeysClient(ctx, v.Connection, v.VaultURI, th)
	switch {
	case errors.Is(err, ErrPermanent):
		return rec, false, err
	case errors.Is(err, ErrUnknownConnection):
		return rec, false, fmt.Errorf("%w: %w", ErrPermanent, err)
	case err != nil:
		return rec, false, fmt.Errorf("read connection %q: %w", v.Connection, err)
	}
	var noKeySizeAPI atomic.Bool
	rec, err = getKey(WithThrottle(ctx, th), client, events.VaultTask{Vault: v}, name, time.Now().UTC(), &noKeySizeAPI, log)
	var re *azcore.ResponseError
	if errors.As(err, &re) && re.StatusCode == http.StatusNotFound {
		return rec, false, nil
	}
	if err != nil {
		return rec, false, classify(err)
	}
	if strings.HasSuffix(rec.Kty, "-HSM") {
		usage.hsmKeyRead()
	}
	return rec, true, nil
}

// wrongLastSequence reports a publish refused because the subject's last
// sequence was not the expected one.
func wrongLastSequence(err error) bool {
	var ae *jetstream.APIError
	return errors.As(err, &ae) && (ae.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		ae.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}
