package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/akvsync/akvsync/pkg/events"
)

// Defaults of [Config].
const (
	// DefaultCASRetries bounds the retries of one compare-and-set.
	DefaultCASRetries = 50
	// DefaultPlanChunkVaults bounds the vaults of one plan chunk.
	DefaultPlanChunkVaults = 1000
	// DefaultPlanChunkBytes bounds the encoded size of one plan chunk,
	// far under NATS's default 1 MiB message limit.
	DefaultPlanChunkBytes = 256 << 10
	// DefaultPublishWindow is how many asynchronous publishes (locks,
	// releases) are in flight before their acks are awaited.
	DefaultPublishWindow = 1000
	// DefaultScanThreshold is the vault count from which creating a job
	// reads the whole locks bucket once (one streamed pass) instead of
	// resolving lock conflicts vault by vault.
	DefaultScanThreshold = 256
)

// Config configures a [Store]. The zero value takes the defaults.
type Config struct {
	// CASRetries bounds compare-and-set retries (DefaultCASRetries).
	CASRetries int
	// PlanChunkVaults and PlanChunkBytes bound one plan chunk.
	PlanChunkVaults int
	PlanChunkBytes  int
	// PublishWindow bounds asynchronous publishes in flight.
	PublishWindow int
	// ScanThreshold: see DefaultScanThreshold.
	ScanThreshold int
}

// WithDefaults returns c with zero fields replaced by the defaults.
func (c Config) WithDefaults() Config {
	if c.CASRetries == 0 {
		c.CASRetries = DefaultCASRetries
	}
	if c.PlanChunkVaults == 0 {
		c.PlanChunkVaults = DefaultPlanChunkVaults
	}
	if c.PlanChunkBytes == 0 {
		c.PlanChunkBytes = DefaultPlanChunkBytes
	}
	if c.PublishWindow == 0 {
		c.PublishWindow = DefaultPublishWindow
	}
	if c.ScanThreshold == 0 {
		c.ScanThreshold = DefaultScanThreshold
	}
	return c
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	c = c.WithDefaults()
	switch {
	case c.CASRetries < 1:
		return fmt.Errorf("%w: CAS retries must be at least 1", ErrInvalid)
	case c.PlanChunkVaults < 1:
		return fmt.Errorf("%w: plan chunk vaults must be at least 1", ErrInvalid)
	case c.PlanChunkBytes < 4<<10:
		return fmt.Errorf("%w: plan chunk bytes must be at least 4 KiB", ErrInvalid)
	case c.PublishWindow < 1:
		return fmt.Errorf("%w: publish window must be at least 1", ErrInvalid)
	}
	return nil
}

// Store reads and writes job records in the jobs bucket and vault locks
// in the locks bucket. It is safe for concurrent use, also by several
// processes: every write is a create or a compare-and-set.
type Store struct {
	js    jetstream.JetStream
	jobs  jetstream.KeyValue
	locks jetstream.KeyValue
	cfg   Config
}

// New returns a store over the jobs and locks buckets.
func New(js jetstream.JetStream, jobs, locks jetstream.KeyValue, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if js == nil || jobs == nil || locks == nil {
		return nil, fmt.Errorf("%w: jetstream and both buckets are required", ErrInvalid)
	}
	return &Store{js: js, jobs: jobs, locks: locks, cfg: cfg.WithDefaults()}, nil
}

// Config returns the store's configuration with defaults applied.
func (s *Store) Config() Config { return s.cfg }

// get reads and decodes one record and its revision.
func get[T any](ctx context.Context, kv jetstream.KeyValue, key string) (T, uint64, error) {
	var v T
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return v, 0, fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	if err != nil {
		return v, 0, fmt.Errorf("jobs: read %s: %w", key, err)
	}
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		return v, 0, fmt.Errorf("%w: %s: %v", ErrBadRecord, key, err)
	}
	return v, e.Revision(), nil
}

// Get returns a job's header and its revision, or ErrNotFound.
func (s *Store) Get(ctx context.Context, jobID string) (events.Job, uint64, error) {
	return get[events.Job](ctx, s.jobs, HeaderKey(jobID))
}

// Vault returns a vault's status record in a job and its revision, or
// ErrNotFound when the vault has none (it is pending, or not in the job).
func (s *Store) Vault(ctx context.Context, jobID, vaultID string) (events.JobVault, uint64, error) {
	return get[events.JobVault](ctx, s.jobs, VaultKey(jobID, vaultID))
}

// Plan returns chunk n of a job's plan.
func (s *Store) Plan(ctx context.Context, jobID string, n int) (events.JobPlanChunk, error) {
	c, _, err := get[events.JobPlanChunk](ctx, s.jobs, PlanKey(jobID, n))
	return c, err
}

// EachPlanned calls fn with each chunk of the job's plan in order; only one
// chunk is in memory at a time.
func (s *Store) EachPlanned(ctx context.Context, job events.Job, fn func(events.JobPlanChunk) error) error {
	for n := range job.PlanChunks {
		c, err := s.Plan(ctx, job.ID, n)
		if err != nil {
			return err
		}
		if err := fn(c); err != nil {
			return err
		}
	}
	return nil
}

// Update applies mutate to the job's header with compare-and-set, retrying
// on a concurrent write up to the configured retries. mutate must be pure
// (no I/O): it may run several times. It returns ErrNoChange to skip the
// write. Update returns the header as written (or as found when unchanged)
// and whether it wrote.
func (s *Store) Update(ctx context.Context, jobID string, mutate func(*events.Job) error) (events.Job, bool, error) {
	j, _, changed, err := update(ctx, s.jobs, HeaderKey(jobID), events.CAS{Attempts: s.cfg.CASRetries}, func(j *events.Job, _ bool) error { return mutate(j) })
	return j, changed, err
}

// UpdateVault applies mutate to a vault's status record in a job with
// compare-and-set, creating the record when it has none (exists false;
// mutate then fills a zero record). It returns the record as written or
// found, whether it wrote, and the record's revision (the jobs stream
// sequence of its last write): an inventory that applied that sequence
// reflects it.
func (s *Store) UpdateVault(ctx context.Context, jobID, vaultID string, mutate func(v *events.JobVault, exists bool) error) (events.JobVault, bool, uint64, error) {
	v, rev, changed, err := update(ctx, s.jobs, VaultKey(jobID, vaultID), events.CAS{Attempts: s.cfg.CASRetries, Create: true}, mutate)
	return v, changed, rev, err
}

// detailParallelism bounds the vault records Detail reads at once.
const detailParallelism = 16

// update is events.UpdateRecord with this package's errors: ErrNotFound for
// a missing record, "jobs: write" for a failed access.
func update[T any](ctx context.Context, kv jetstream.KeyValue, key string, c events.CAS, mutate func(*T, bool) error) (T, uint64, bool, error) {
	v, rev, changed, err := events.UpdateRecord(ctx, kv, key, c, mutate)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		err = fmt.Errorf("%s: %w", key, ErrNotFound)
	case errors.Is(err, events.ErrKV):
		err = fmt.Errorf("jobs: %w", err)
	}
	return v, rev, changed, err
}

// Detail reads a job's whole detail from its own records: its plan and
// every vault's record, counting the progress. It costs a read per vault,
// so it is for small jobs (the inventory answers for big ones).
func (s *Store) Detail(ctx context.Context, job events.Job) (events.JobDetail, error) {
	d := events.JobDetail{Job: job}
	var planned []events.PlannedVault
	if err := s.EachPlanned(ctx, job, func(c events.JobPlanChunk) error {
		planned = append(planned, c.Vaults...)
		return nil
	}); err != nil {
		return d, err
	}
	d.Vaults = make([]events.JobVault, len(planned))
	errs := make([]error, len(planned))
	sem := make(chan struct{}, detailParallelism)
	var wg sync.WaitGroup
	for i, pv := range planned {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			v, _, err := s.Vault(ctx, job.ID, pv.ID)
			if errors.Is(err, ErrNotFound) {
				v, err = events.JobVault{JobID: job.ID, VaultID: pv.ID, Name: pv.Name, SubscriptionID: pv.SubscriptionID, Status: events.VaultPending}, nil
			}
			d.Vaults[i], errs[i] = v, err
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return d, err
	}
	for _, v := range d.Vaults {
		d.Progress.AddVault(v, 1)
		d.Progress.KeysSeq = max(d.Progress.KeysSeq, v.KeysSeq)
	}
	events.SortJobVaults(d.Vaults)
	return d, nil
}
