package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/akvsync/akvsync/pkg/events"
)

// VaultBatches streams the vaults of a new job, a batch at a time: it
// calls yield with each batch and stops at yield's first error.
type VaultBatches func(ctx context.Context, yield func([]events.Vault) error) error

// VerifyVaults checks, after their locks are taken, vaults whose lock
// changed between the scan of the locks and the creation's own lock (or
// that were locked without a scan): a removal of the vault may have
// completed in that window. It returns an error to fail the creation.
type VerifyVaults func(ctx context.Context, vaultIDs []string) error

// Create records a new job: it locks every vault the batches name for the
// job (pipelined, a window at a time), writes the job's plan in bounded
// chunks with each lock's revision, and finally creates the header with
// the vault total and chunk count: the job exists once its header does.
// job.VaultTotal, when set, is an estimate used to choose how conflicts
// are found (one scan of the locks bucket from DefaultScanThreshold
// vaults); Create sets it to the real count.
//
// A vault locked by another holder fails the creation with a
// *LockConflictError; a job that names no vault fails with ErrInvalid;
// verify, when set, is called with the vaults whose lock was not as the
// scan saw it, before any of the job's records is written. On any error
// Create undoes what it wrote (locks released at their revisions, plan and
// header purged), so nothing is half-created.
func (s *Store) Create(ctx context.Context, job events.Job, batches VaultBatches, verify VerifyVaults) (_ events.Job, err error) {
	if job.ID == "" || !events.ValidToken(job.ID) {
		return job, fmt.Errorf("%w: job id %q", ErrInvalid, job.ID)
	}
	revs := map[string]uint64{}
	wrote := false
	defer func() {
		if err == nil {
			return
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = s.releaseLocks(cctx, revs)
		if wrote {
			_ = s.Delete(cctx, job.ID)
		}
	}()
	var known map[string]lockState
	if job.VaultTotal >= s.cfg.ScanThreshold {
		if known, err = s.scanLocks(ctx); err != nil {
			return job, err
		}
	}
	// A chunk is written as the JSON of an events.JobPlanChunk, built
	// from each vault's encoding (encoded once, also to bound the size).
	var chunk [][]byte
	chunkBytes := 0
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		raw := fmt.Appendf(nil, `{"job_id":%q,"index":%d,"vaults":[`, job.ID, job.PlanChunks)
		for i, v := range chunk {
			if i > 0 {
				raw = append(raw, ',')
			}
			raw = append(raw, v...)
		}
		raw = append(raw, "]}"...)
		wrote = true
		if _, err := s.jobs.Create(ctx, PlanKey(job.ID, job.PlanChunks), raw); err != nil {
			return fmt.Errorf("jobs: write plan chunk %d: %w", job.PlanChunks, err)
		}
		job.PlanChunks++
		chunk, chunkBytes = chunk[:0], 0
		return nil
	}
	total := 0
	seen := map[string]bool{}
	err = batches(ctx, func(vs []events.Vault) error {
		ids := make([]string, 0, len(vs))
		for _, v := range vs {
			if seen[v.ID] {
				return fmt.Errorf("%w: vault %s named twice", ErrInvalid, v.ID)
			}
			seen[v.ID] = true
			ids = append(ids, v.ID)
		}
		suspect, err := s.lockBatch(ctx, ids, job.ID, known, revs)
		if err != nil {
			return err
		}
		if verify != nil && len(suspect) > 0 {
			if err := verify(ctx, suspect); err != nil {
				return err
			}
		}
		for _, v := range vs {
			raw, err := json.Marshal(events.PlannedVault{Vault: v.ForTask(), LockRev: revs[v.ID]})
			if err != nil {
				return fmt.Errorf("jobs: encode plan: %w", err)
			}
			if len(chunk) >= s.cfg.PlanChunkVaults || (chunkBytes > 0 && chunkBytes+len(raw) > s.cfg.PlanChunkBytes) {
				if err := flush(); err != nil {
					return err
				}
			}
			chunk = append(chunk, raw)
			chunkBytes += len(raw) + 1
			total++
		}
		return nil
	})
	if err != nil {
		return job, err
	}
	if err = flush(); err != nil {
		return job, err
	}
	if total == 0 {
		return job, fmt.Errorf("%w: the job names no vault", ErrInvalid)
	}
	job.VaultTotal = total
	raw, err := json.Marshal(job)
	if err != nil {
		return job, fmt.Errorf("jobs: encode job: %w", err)
	}
	wrote = true
	if _, err = s.jobs.Create(ctx, HeaderKey(job.ID), raw); err != nil {
		return job, fmt.Errorf("jobs: write job: %w", err)
	}
	return job, nil
}

// Delete removes a job: its plan and vault records (one purge of the
// job's subjects in the bucket's stream, however many vaults it has), then
// its header with a purge marker, which tells every inventory to drop the
// job. It is idempotent. It does not touch locks: a job is deleted when it
// is finished (retention) or never existed (undo of a failed creation).
func (s *Store) Delete(ctx context.Context, jobID string) error {
	st, err := s.js.Stream(ctx, streamName(s.jobs))
	if err != nil {
		return fmt.Errorf("jobs: delete %s: %w", jobID, err)
	}
	if err := st.Purge(ctx, jetstream.WithPurgeSubject(subject(s.jobs, JobKeysFilter(jobID)))); err != nil {
		return fmt.Errorf("jobs: delete %s: %w", jobID, err)
	}
	if err := s.jobs.Purge(ctx, HeaderKey(jobID)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("jobs: delete %s: %w", jobID, err)
	}
	return nil
}
