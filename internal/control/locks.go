package control

import (
	"context"
	"time"
)

// RemoveLockHolder is the value of a vault lock taken by a vault removal
// instead of a job id; the lock is held only while the removal runs.
const RemoveLockHolder = "remove-vault"

// cleanupContext returns a context for undoing a failed request: it keeps
// ctx's values but not its cancellation, bounded by timeout.
func cleanupContext(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), timeout)
}
