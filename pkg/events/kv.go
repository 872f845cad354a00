package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Errors of [UpdateValue] and [UpdateRecord].
var (
	// ErrNoChange is returned by a mutate callback to leave the record as
	// it is: the update then succeeds without writing.
	ErrNoChange = errors.New("events: no change")
	// ErrContended is returned when a compare-and-set lost to concurrent
	// writers on every attempt.
	ErrContended = errors.New("events: record updated concurrently too often")
	// ErrKV is wrapped by every failure to read or write a record (NATS or
	// JetStream did not answer, or refused), beside the cause itself, so a
	// caller tells it from its own mutate errors. A missing record is
	// jetstream.ErrKeyNotFound instead.
	ErrKV = errors.New("events: key-value access failed")
	// ErrBadRecord is returned for a stored record that does not decode.
	ErrBadRecord = errors.New("events: malformed record")
)

// CAS says how [UpdateValue] and [UpdateRecord] go about one record.
type CAS struct {
	// Attempts bounds the read-mutate-write rounds (at least 1).
	Attempts int
	// Create lets a missing record be created: mutate is then called
	// with no value (exists false). Without it a missing record is an
	// error wrapping jetstream.ErrKeyNotFound.
	Create bool
}

// casBackoff is the unit of the jittered wait between compare-and-set
// attempts: up to attempt × casBackoff, capped at 8 units, so racing
// writers spread out.
const casBackoff = 500 * time.Microsecond

// UpdateValue is the one compare-and-set loop over a key-value record: it
// reads the record at key, calls mutate with its value, and writes what
// mutate returns if the record is still at the revision read (or creates
// it, when c.Create allows, if it is still missing). When another writer
// came first it waits a moment and starts again from the read, up to
// c.Attempts rounds ([ErrContended]) or until ctx ends.
//
// mutate must do no I/O: it may run several times, and anything it learnt
// elsewhere may be stale by the time of the write. It returns
// [ErrNoChange] to leave the record as it is; any other error ends the
// update and is returned as it is. Read and write failures wrap [ErrKV].
//
// It returns the value as written (or as found, when nothing was written),
// its revision, and whether it wrote.
func UpdateValue(ctx context.Context, kv jetstream.KeyValue, key string, c CAS, mutate func(old []byte, exists bool) ([]byte, error)) ([]byte, uint64, bool, error) {
	for attempt := 0; ; attempt++ {
		var old []byte
		var rev uint64
		e, err := kv.Get(ctx, key)
		switch {
		case err == nil:
			old, rev = e.Value(), e.Revision()
		case errors.Is(err, jetstream.ErrKeyNotFound) && c.Create:
		case errors.Is(err, jetstream.ErrKeyNotFound):
			return nil, 0, false, fmt.Errorf("%s: %w", key, err)
		default:
			return nil, 0, false, &kvError{op: "read", key: key, err: err}
		}
		exists := err == nil
		next, err := mutate(old, exists)
		if errors.Is(err, ErrNoChange) {
			return old, rev, false, nil
		}
		if err != nil {
			return old, rev, false, err
		}
		if exists {
			rev, err = kv.Update(ctx, key, next, rev)
		} else {
			rev, err = kv.Create(ctx, key, next)
		}
		if err == nil {
			return next, rev, true, nil
		}
		if !RevisionMismatch(err) {
			return old, 0, false, &kvError{op: "write", key: key, err: err}
		}
		if attempt+1 >= c.Attempts {
			return old, 0, false, fmt.Errorf("%w: %s", ErrContended, key)
		}
		t := time.NewTimer(time.Duration(rand.Int64N(int64(casBackoff) * int64(min(attempt+1, 8))))) // #nosec G404 -- backoff jitter, not a secret
		select {
		case <-ctx.Done():
			t.Stop()
			return old, 0, false, ctx.Err()
		case <-t.C:
		}
	}
}

// UpdateRecord is [UpdateValue] for a JSON record of type T: mutate
// changes the decoded record in place (a zero T when exists is false). A
// stored value that does not decode fails the update with an error
// wrapping [ErrBadRecord].
func UpdateRecord[T any](ctx context.Context, kv jetstream.KeyValue, key string, c CAS, mutate func(v *T, exists bool) error) (T, uint64, bool, error) {
	var v T
	_, rev, wrote, err := UpdateValue(ctx, kv, key, c, func(old []byte, exists bool) ([]byte, error) {
		v = *new(T)
		if exists {
			if err := json.Unmarshal(old, &v); err != nil {
				return nil, fmt.Errorf("%w: %s: %v", ErrBadRecord, key, err)
			}
		}
		if err := mutate(&v, exists); err != nil {
			return nil, err
		}
		raw, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("events: encode %s: %w", key, err)
		}
		return raw, nil
	})
	return v, rev, wrote, err
}

// RevisionMismatch reports a compare-and-set conflict on a key-value
// bucket (or a stream write with an expected last sequence), whichever
// code the stream used (R1 and R3 streams differ).
func RevisionMismatch(err error) bool {
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// kvError is a failed read or write of a record: it wraps ErrKV and the
// cause.
type kvError struct {
	op, key string
	err     error
}

func (e *kvError) Error() string   { return e.op + " " + e.key + ": " + e.err.Error() }
func (e *kvError) Unwrap() []error { return []error{ErrKV, e.err} }

// ErrTaken is returned by [ClaimKey] for a key that another record holds.
var ErrTaken = errors.New("events: key taken")

// ClaimKey creates key with the value id: a uniqueness index entry (a name
// → the id of the record that has it), written before the record itself.
// An entry that names a record that does not exist and was created more
// than staleAfter before now was left by a process that died between the
// two writes: it is deleted and the key claimed again, once. It returns the
// entry's revision; a key held by another record is [ErrTaken], with the
// holder's id when it could be read ("" otherwise). Read and write
// failures wrap [ErrKV].
func ClaimKey(ctx context.Context, kv jetstream.KeyValue, key, id string, staleAfter time.Duration, now time.Time) (rev uint64, holder string, err error) {
	for attempt := 0; ; attempt++ {
		rev, err := kv.Create(ctx, key, []byte(id))
		if err == nil {
			return rev, "", nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return 0, "", &kvError{op: "create", key: key, err: err}
		}
		e, gerr := kv.Get(ctx, key)
		if errors.Is(gerr, jetstream.ErrKeyNotFound) && attempt == 0 {
			continue // deleted meanwhile: claim it again
		}
		if gerr != nil {
			return 0, "", ErrTaken
		}
		holder := string(e.Value())
		_, verr := kv.Get(ctx, holder)
		stale := errors.Is(verr, jetstream.ErrKeyNotFound) && now.Sub(e.Created()) > staleAfter
		if !stale || attempt > 0 {
			return 0, holder, ErrTaken
		}
		if err := kv.Delete(ctx, key, jetstream.LastRevision(e.Revision())); err != nil && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return 0, "", &kvError{op: "repair", key: key, err: err}
		}
	}
}
