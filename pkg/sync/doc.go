// Package sync is akvsync's domain: the planner that expands a job into
// vault tasks, the vault syncer that pages through a vault with azkeys and
// publishes its keys, the job tracker that folds vault results into the job
// record, abort, and the rate control that keeps a sync inside Azure's
// limits.
//
// Its name collides with the standard library's sync, so import it as
// akvsync, as every package of this module does:
//
//	import akvsync "github.com/akvsync/akvsync/pkg/sync"
//
// The package reaches Key Vault only through a [KeySource], which opens
// a vault's azkeys client for it; it depends on nothing of this module
// outside pkg/.
//
// Ack semantics, stated once for every consumer here: a message is acked
// only after everything it causes is durably published (tasks, key records,
// result events) or found to be already done; it is nacked (redelivered)
// when the cause is transient; it is terminated only when it can never be
// processed (it does not decode). Every handler is idempotent, so a
// redelivery after a crash is harmless.
package sync
