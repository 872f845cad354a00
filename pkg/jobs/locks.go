package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/akvsync/akvsync/pkg/events"
)

// KV protocol headers (as nats.go's key-value store writes them).
const (
	kvOperationHeader = "KV-Operation"
	kvOpDelete        = "DEL"
	kvOpPurge         = "PURGE"
)

// lockState is a vault lock's last message as a scan found it.
type lockState struct {
	rev    uint64
	live   bool
	holder string
}

// subject is the stream subject of a key in a bucket.
func subject(kv jetstream.KeyValue, key string) string { return "$KV." + kv.Bucket() + "." + key }

// streamName is the name of a bucket's stream.
func streamName(kv jetstream.KeyValue) string { return "KV_" + kv.Bucket() }

// scanLocks reads the last message of every vault lock in one streamed
// pass (delete markers included: their revision is what a new lock must
// expect).
func (s *Store) scanLocks(ctx context.Context) (map[string]lockState, error) {
	w, err := s.locks.WatchAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("jobs: scan locks: %w", err)
	}
	defer func() { _ = w.Stop() }()
	out := map[string]lockState{}
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return nil, errors.New("jobs: scan locks: watcher stopped")
			}
			if e == nil {
				return out, nil
			}
			st := lockState{rev: e.Revision(), live: e.Operation() == jetstream.KeyValuePut}
			if st.live {
				st.holder = string(e.Value())
			}
			out[e.Key()] = st
		}
	}
}

// pending is one asynchronous publish awaiting its ack.
type pending struct {
	vaultID string
	fut     jetstream.PubAckFuture
}

// await waits for the acks of a window of publishes and calls done with
// each vault's revision or error.
func await(ctx context.Context, win []pending, done func(vaultID string, rev uint64, err error) error) error {
	var first error
	for _, p := range win {
		var rev uint64
		var err error
		select {
		case ack := <-p.fut.Ok():
			rev = ack.Sequence
		case err = <-p.fut.Err():
		case <-ctx.Done():
			return ctx.Err()
		}
		if e := done(p.vaultID, rev, err); e != nil && first == nil {
			first = e
		}
	}
	return first
}

// lockBatch takes the locks of ids for holder: pipelined creates that
// expect the lock's last revision as scanned (0 when unknown); a create
// refused because the lock changed is retried with a plain create, which
// copes with delete markers. It records each vault's lock revision in
// revs and returns the vaults taken by that slower path (their lock
// changed since the scan, or there was none), or a *LockConflictError for
// the first vault held by someone else; the locks it took are in revs
// even then.
func (s *Store) lockBatch(ctx context.Context, ids []string, holder string, known map[string]lockState, revs map[string]uint64) ([]string, error) {
	var conflict error
	var slow []string
	for start := 0; start < len(ids); start += s.cfg.PublishWindow {
		win := make([]pending, 0, min(s.cfg.PublishWindow, len(ids)-start))
		for _, id := range ids[start:min(len(ids), start+s.cfg.PublishWindow)] {
			st := known[id]
			if st.live {
				if st.holder == holder {
					revs[id] = st.rev
					continue
				}
				if conflict == nil {
					conflict = &LockConflictError{VaultID: id, Holder: st.holder}
				}
				continue
			}
			m := nats.NewMsg(subject(s.locks, id))
			m.Data = []byte(holder)
			fut, err := s.js.PublishMsgAsync(m, jetstream.WithExpectLastSequencePerSubject(st.rev))
			if err != nil {
				return nil, errors.Join(fmt.Errorf("jobs: take lock %s: %w", id, err), await(ctx, win, func(string, uint64, error) error { return nil }))
			}
			win = append(win, pending{vaultID: id, fut: fut})
		}
		err := await(ctx, win, func(id string, rev uint64, err error) error {
			switch {
			case err == nil:
				revs[id] = rev
			case events.RevisionMismatch(err):
				slow = append(slow, id)
			default:
				return fmt.Errorf("jobs: take lock %s: %w", id, err)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if conflict != nil {
			return nil, conflict
		}
	}
	for _, id := range slow {
		rev, err := s.locks.Create(ctx, id, []byte(holder))
		if err == nil {
			revs[id] = rev
			continue
		}
		if !events.RevisionMismatch(err) {
			return nil, fmt.Errorf("jobs: take lock %s: %w", id, err)
		}
		e, gerr := s.locks.Get(ctx, id)
		switch {
		case gerr == nil && string(e.Value()) == holder:
			revs[id] = e.Revision()
			continue
		case gerr == nil:
			return nil, &LockConflictError{VaultID: id, Holder: string(e.Value())}
		default:
			return nil, &LockConflictError{VaultID: id}
		}
	}
	return slow, nil
}

// releaseLocks deletes locks at the revisions given (pipelined), skipping
// any that changed since: they are not the caller's any more.
func (s *Store) releaseLocks(ctx context.Context, revs map[string]uint64) error {
	ids := make([]string, 0, len(revs))
	for id := range revs {
		ids = append(ids, id)
	}
	for start := 0; start < len(ids); start += s.cfg.PublishWindow {
		win := make([]pending, 0, s.cfg.PublishWindow)
		for _, id := range ids[start:min(len(ids), start+s.cfg.PublishWindow)] {
			m := nats.NewMsg(subject(s.locks, id))
			m.Header.Set(kvOperationHeader, kvOpDelete)
			fut, err := s.js.PublishMsgAsync(m, jetstream.WithExpectLastSequencePerSubject(revs[id]))
			if err != nil {
				return errors.Join(fmt.Errorf("jobs: release lock %s: %w", id, err), await(ctx, win, func(string, uint64, error) error { return nil }))
			}
			win = append(win, pending{vaultID: id, fut: fut})
		}
		if err := await(ctx, win, func(id string, _ uint64, err error) error {
			if err != nil && !events.RevisionMismatch(err) {
				return fmt.Errorf("jobs: release lock %s: %w", id, err)
			}
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}

// TakeLock takes one vault's lock for holder (not a job: e.g. a vault
// removal). It returns the lock's revision, or a *LockConflictError.
func (s *Store) TakeLock(ctx context.Context, vaultID, holder string) (uint64, error) {
	revs := map[string]uint64{}
	if _, err := s.lockBatch(ctx, []string{vaultID}, holder, nil, revs); err != nil {
		return 0, err
	}
	return revs[vaultID], nil
}

// ReleaseLock deletes a vault's lock if it is still at revision rev.
func (s *Store) ReleaseLock(ctx context.Context, vaultID string, rev uint64) error {
	return s.releaseLocks(ctx, map[string]uint64{vaultID: rev})
}

// ReleaseJobLocks deletes the locks a job took (read from its plan, at the
// revisions it recorded), skipping any that another holder has since. It
// is idempotent, so a finish that is retried may repeat it.
func (s *Store) ReleaseJobLocks(ctx context.Context, job events.Job) error {
	return s.EachPlanned(ctx, job, func(c events.JobPlanChunk) error {
		revs := make(map[string]uint64, len(c.Vaults))
		for _, v := range c.Vaults {
			if v.LockRev != 0 {
				revs[v.ID] = v.LockRev
			}
		}
		return s.releaseLocks(ctx, revs)
	})
}

// StaleLock is a lock the sweep found: a vault, its holder, the lock's
// revision and when it was taken.
type StaleLock struct {
	VaultID string
	Holder  string
	Rev     uint64
	Created time.Time
}

// SweepLocks releases every lock older than grace whose holder is not a
// live job (isLive reports that, called once per distinct holder). It
// reads each lock once, in one streamed pass: its cost is the number of
// locks held, which is the live work. It returns the locks it released.
func (s *Store) SweepLocks(ctx context.Context, grace time.Duration, isLive func(ctx context.Context, holder string) (bool, error)) ([]StaleLock, error) {
	w, err := s.locks.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("jobs: sweep locks: %w", err)
	}
	defer func() { _ = w.Stop() }()
	live := map[string]bool{}
	var stale []StaleLock
	for done := false; !done; {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return nil, errors.New("jobs: sweep locks: watcher stopped")
			}
			if e == nil {
				done = true
				break
			}
			if time.Since(e.Created()) < grace {
				continue
			}
			holder := string(e.Value())
			l, seen := live[holder]
			if !seen {
				var err error
				if l, err = isLive(ctx, holder); err != nil {
					continue // unreadable now: the next sweep tries again
				}
				live[holder] = l
			}
			if !l {
				stale = append(stale, StaleLock{VaultID: e.Key(), Holder: holder, Rev: e.Revision(), Created: e.Created()})
			}
		}
	}
	revs := make(map[string]uint64, len(stale))
	for _, l := range stale {
		revs[l.VaultID] = l.Rev
	}
	if err := s.releaseLocks(ctx, revs); err != nil {
		return nil, err
	}
	return stale, nil
}
