package control

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// RemoveLockHolder is the value of a vault lock taken by a vault removal
// instead of a job id; the lock is held only while the removal runs.
const RemoveLockHolder = "remove-vault"

// lockAttempts bounds the retries of a lock whose holder vanished between
// our create and our read.
const lockAttempts = 3

// heldLock is a lock this process took, with the revision that proves it.
type heldLock struct {
	vaultID string
	rev     uint64
}

// takeLock creates the lock of vaultID with value holder. When the lock
// is held by someone else it returns ok false and the holder's value.
func takeLock(ctx context.Context, locks jetstream.KeyValue, vaultID, holder string) (lock heldLock, owner string, ok bool, err error) {
	for range lockAttempts {
		rev, err := locks.Create(ctx, vaultID, []byte(holder))
		if err == nil {
			return heldLock{vaultID: vaultID, rev: rev}, "", true, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return heldLock{}, "", false, unavailable("take vault lock", err)
		}
		e, err := locks.Get(ctx, vaultID)
		switch {
		case err == nil:
			return heldLock{}, string(e.Value()), false, nil
		case errors.Is(err, jetstream.ErrKeyNotFound):
			continue // released meanwhile: try again
		default:
			return heldLock{}, "", false, unavailable("read vault lock", err)
		}
	}
	return heldLock{}, "", false, conflictf("vault lock %s is contended; retry", vaultID)
}

// releaseLocks deletes the locks this process holds (only if they are still
// at the revision it wrote), newest first. Errors are ignored: the caller
// is already returning an error, and a lock left behind (NATS unreachable
// during the undo) names a job that does not exist, which an operator can
// find and delete.
func releaseLocks(ctx context.Context, locks jetstream.KeyValue, held []heldLock) {
	for i := len(held) - 1; i >= 0; i-- {
		_ = locks.Delete(ctx, held[i].vaultID, jetstream.LastRevision(held[i].rev))
	}
}

// cleanupContext returns a context for undoing a failed request: it keeps
// ctx's values but not its cancellation, bounded by timeout.
func cleanupContext(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), timeout)
}
