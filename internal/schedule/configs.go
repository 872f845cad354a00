// Package schedule is akvsync's scheduler: CCKM's job configs
// (/api/v1/scheduler/job-configs), stored in the job-configs bucket, armed
// as JetStream message schedules on the schedules stream, and fired into
// sync jobs by a durable consumer every replica shares (see Run).
package schedule

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/robfig/cron/v3"
	"github.com/rs/zerolog"

	"github.com/akvsync/akvsync/internal/control"
	"github.com/akvsync/akvsync/pkg/events"
)

// Operation is the only job config operation akvsync runs.
const Operation = "cckm_synchronization"

// RunOnAny is the only run_on akvsync accepts: a tick fires on whichever
// replica receives it.
const RunOnAny = "any"

// CloudName is the only cloud_name of the synchronization params.
const CloudName = "AzureCloud"

// MaxNameLength bounds a job config's name and description.
const (
	MaxNameLength        = 256
	MaxDescriptionLength = 4096
)

// Defaults of [Config].
const (
	DefaultSource       = "akvsync/scheduler"
	DefaultCatchUpEvery = time.Minute
	DefaultCASRetries   = 20
)

// Config configures a [Scheduler].
type Config struct {
	// Source is the CloudEvents source of the schedule events.
	Source string
	// ClaimLease is how long a replica's claim of a tick stands before
	// another replica may take the tick over; the consumer's ack wait.
	// Default events.DefaultScheduleAckWait.
	ClaimLease time.Duration
	// CatchUpEvery is how often Run fires the ticks missed while no
	// schedule fired (at start, then at this period). Default 1 minute.
	CatchUpEvery time.Duration
	// Pattern turns a run_at (5-field cron) into the 6-field pattern
	// (seconds first) of the message schedule and of the tick computation.
	// Default: "0 " + run_at. Tests set a seconds-resolution pattern.
	Pattern func(runAt string) string
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Log receives the scheduler's logs.
	Log zerolog.Logger
}

// WithDefaults returns c with zero fields replaced by defaults.
func (c Config) WithDefaults() Config {
	if c.Source == "" {
		c.Source = DefaultSource
	}
	if c.ClaimLease == 0 {
		c.ClaimLease = events.DefaultScheduleAckWait
	}
	if c.CatchUpEvery == 0 {
		c.CatchUpEvery = DefaultCatchUpEvery
	}
	if c.Pattern == nil {
		c.Pattern = func(runAt string) string { return "0 " + runAt }
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports a configuration the scheduler cannot run with.
func (c Config) Validate() error {
	c = c.WithDefaults()
	if c.ClaimLease < time.Second {
		return fmt.Errorf("schedule: claim lease must be at least 1s, got %s", c.ClaimLease)
	}
	if c.CatchUpEvery < time.Second {
		return fmt.Errorf("schedule: catch-up period must be at least 1s, got %s", c.CatchUpEvery)
	}
	return nil
}

// SyncParams are a config's cckm_synchronization_params: what each tick's
// job syncs (exactly one of KeyVaults and SynchronizeAll).
type SyncParams struct {
	CloudName      string   `json:"cloud_name"`
	KeyVaults      []string `json:"key_vaults,omitempty"`
	SynchronizeAll bool     `json:"synchronize_all"`
}

// JobConfig is a scheduler job config as the API shows it.
type JobConfig struct {
	ID          string     `json:"id"`
	Name        string     `json:"name"`
	Description string     `json:"description"`
	Operation   string     `json:"operation"`
	RunAt       string     `json:"run_at"`
	RunOn       string     `json:"run_on"`
	StartDate   *time.Time `json:"start_date,omitempty"`
	EndDate     *time.Time `json:"end_date,omitempty"`
	Disabled    bool       `json:"disabled"`
	Params      SyncParams `json:"cckm_synchronization_params"`
	CreatedAt   time.Time  `json:"createdAt"`
	UpdatedAt   time.Time  `json:"updatedAt"`
}

// active reports whether a tick of c may start a job: c is enabled and
// the tick lies within its start and end dates.
func (c *JobConfig) active(tick time.Time) bool {
	return !c.Disabled && (c.StartDate == nil || !tick.Before(*c.StartDate)) && (c.EndDate == nil || !tick.After(*c.EndDate))
}

// record is a config as stored: the API fields and when its schedule was
// last (re)armed by a user's write (catch-up never fires a tick before).
type record struct {
	JobConfig
	ArmedAt time.Time `json:"armed_at"`
}

// Request is the body of a create (every field) or a patch (the fields
// given). Dates are RFC 3339; an empty date clears it in a patch.
type Request struct {
	Name        *string     `json:"name"`
	Description *string     `json:"description"`
	Operation   *string     `json:"operation"`
	RunAt       *string     `json:"run_at"`
	RunOn       *string     `json:"run_on"`
	StartDate   *string     `json:"start_date"`
	EndDate     *string     `json:"end_date"`
	Disabled    *bool       `json:"disabled"`
	Params      *SyncParams `json:"cckm_synchronization_params"`
}

// Query filters and pages the list of job configs.
type Query struct {
	// Name matches a config's name (case-insensitively, exactly).
	Name string
	// Operation matches the operation.
	Operation string
	// Disabled, when set, matches the disabled flag.
	Disabled *bool
	Skip     int
	// Limit is the page size; -1 means all.
	Limit int
}

// Page is a CCKM list envelope of job configs.
type Page struct {
	Skip      int         `json:"skip"`
	Limit     int         `json:"limit"`
	Total     int         `json:"total"`
	Resources []JobConfig `json:"resources"`
}

// Scheduler stores the job configs, arms their schedules and fires them.
// It is safe for concurrent use, also by several processes.
type Scheduler struct {
	kv     jetstream.KeyValue
	js     jetstream.JetStream
	jobs   *control.Jobs
	cfg    Config
	parser cron.Parser
	// hook, when set (tests), is called at the named stages of a fire.
	hook func(stage string)
}

// New opens the job-configs bucket and the schedules stream (which
// [events.Topology.EnsureStreams] created) and returns the scheduler.
func New(ctx context.Context, js jetstream.JetStream, jobs *control.Jobs, cfg Config) (*Scheduler, error) {
	if js == nil || jobs == nil {
		return nil, errors.New("schedule: nil JetStream or jobs")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	kv, err := events.Bucket(ctx, js, events.BucketJobConfigs)
	if err != nil {
		return nil, fmt.Errorf("schedule: %w", err)
	}
	if _, err := js.Stream(ctx, events.StreamSchedules); err != nil {
		return nil, fmt.Errorf("schedule: stream %s: %w", events.StreamSchedules, err)
	}
	return &Scheduler{
		kv: kv, js: js, jobs: jobs, cfg: cfg.WithDefaults(),
		parser: cron.NewParser(cron.Second | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow),
	}, nil
}

func configKey(id string) string { return "config." + id }
func stateKey(id string) string  { return "state." + id }
func nameKey(name string) string {
	return "name." + hex.EncodeToString([]byte(strings.ToLower(name)))
}

// Create validates and stores a config, reserves its name and arms its
// schedule. On any error nothing is left behind.
func (s *Scheduler) Create(ctx context.Context, req Request) (JobConfig, error) {
	now := s.cfg.Now().UTC().Truncate(time.Microsecond)
	c := JobConfig{ID: events.NewID(), Operation: Operation, RunOn: RunOnAny, CreatedAt: now, UpdatedAt: now}
	if req.Name == nil || req.RunAt == nil || req.Params == nil {
		return JobConfig{}, invalidf("name, run_at and cckm_synchronization_params are required")
	}
	if err := s.apply(&c, req); err != nil {
		return JobConfig{}, err
	}
	raw, err := json.Marshal(record{JobConfig: c, ArmedAt: now})
	if err != nil {
		return JobConfig{}, fmt.Errorf("schedule: %w", err)
	}
	if _, err := s.kv.Create(ctx, nameKey(c.Name), []byte(c.ID)); errors.Is(err, jetstream.ErrKeyExists) {
		return JobConfig{}, conflictf("a job config named %q exists", c.Name)
	} else if err != nil {
		return JobConfig{}, unavailable("reserve name", err)
	}
	undo := func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = s.disarm(cctx, c.ID)
		_ = s.kv.Delete(cctx, configKey(c.ID))
		_ = s.kv.Delete(cctx, nameKey(c.Name))
	}
	if _, err := s.kv.Create(ctx, configKey(c.ID), raw); err != nil {
		undo()
		return JobConfig{}, unavailable("store job config", err)
	}
	if err := s.arm(ctx, &c); err != nil {
		undo()
		return JobConfig{}, err
	}
	return c, nil
}

// apply sets the fields req gives on c and validates the result.
func (s *Scheduler) apply(c *JobConfig, req Request) error {
	if req.Name != nil {
		c.Name = strings.TrimSpace(*req.Name)
	}
	if req.Description != nil {
		c.Description = *req.Description
	}
	if req.Operation != nil {
		c.Operation = *req.Operation
	}
	if req.RunAt != nil {
		c.RunAt = strings.Join(strings.Fields(*req.RunAt), " ")
	}
	if req.RunOn != nil {
		c.RunOn = *req.RunOn
		if c.RunOn == "" {
			c.RunOn = RunOnAny
		}
	}
	for _, d := range []struct {
		name string
		in   *string
		out  **time.Time
	}{{"start_date", req.StartDate, &c.StartDate}, {"end_date", req.EndDate, &c.EndDate}} {
		switch {
		case d.in == nil:
		case *d.in == "":
			*d.out = nil
		default:
			t, err := time.Parse(time.RFC3339Nano, *d.in)
			if err != nil {
				return invalidf("%s must be an RFC 3339 time, not %q", d.name, *d.in)
			}
			t = t.UTC().Truncate(time.Microsecond)
			*d.out = &t
		}
	}
	if req.Disabled != nil {
		c.Disabled = *req.Disabled
	}
	if req.Params != nil {
		p := *req.Params
		if p.CloudName == "" {
			p.CloudName = CloudName
		}
		if p.KeyVaults != nil {
			p.KeyVaults = slices.Clone(p.KeyVaults)
		}
		c.Params = p
	}
	return s.validate(c)
}

// validate checks a config: a name, the one operation, a 5-field cron
// run_at, run_on "any", ordered dates, and sync params as a sync job's
// create request would need them.
func (s *Scheduler) validate(c *JobConfig) error {
	switch {
	case c.Name == "":
		return invalidf("name is required")
	case len(c.Name) > MaxNameLength:
		return invalidf("name is longer than %d bytes", MaxNameLength)
	case len(c.Description) > MaxDescriptionLength:
		return invalidf("description is longer than %d bytes", MaxDescriptionLength)
	case c.Operation != Operation:
		return unprocessablef("operation must be %q, not %q", Operation, c.Operation)
	case c.RunOn != RunOnAny:
		return unprocessablef("run_on must be %q (a tick runs on whichever replica receives it), not %q", RunOnAny, c.RunOn)
	case c.StartDate != nil && c.EndDate != nil && !c.EndDate.After(*c.StartDate):
		return invalidf("end_date must be after start_date")
	case c.Params.CloudName != CloudName:
		return unprocessablef("cckm_synchronization_params.cloud_name must be %q, not %q", CloudName, c.Params.CloudName)
	}
	if err := checkRunAt(c.RunAt); err != nil {
		return err
	}
	if _, err := s.schedule(c.RunAt); err != nil {
		return invalidf("run_at %q: %v", c.RunAt, err)
	}
	req := control.CreateJobRequest{KeyVaults: c.Params.KeyVaults, SynchronizeAll: c.Params.SynchronizeAll}
	if err := req.Validate(); err != nil {
		return invalidf("cckm_synchronization_params: %v", err)
	}
	return nil
}

// checkRunAt accepts a standard 5-field cron expression (minute hour
// day-of-month month day-of-week, with names such as "sat"): no
// descriptors, no seconds.
func checkRunAt(runAt string) error {
	if n := len(strings.Fields(runAt)); n != 5 {
		return invalidf("run_at must be a 5-field cron expression (minute hour day-of-month month day-of-week), got %d fields in %q", n, runAt)
	}
	if _, err := cron.ParseStandard(runAt); err != nil {
		return invalidf("run_at %q: %v", runAt, err)
	}
	return nil
}

// schedule parses the 6-field pattern of a run_at.
func (s *Scheduler) schedule(runAt string) (cron.Schedule, error) {
	return s.parser.Parse(s.cfg.Pattern(runAt))
}

// Get returns a config.
func (s *Scheduler) Get(ctx context.Context, id string) (JobConfig, error) {
	r, _, err := s.get(ctx, id)
	return r.JobConfig, err
}

func (s *Scheduler) get(ctx context.Context, id string) (record, uint64, error) {
	norm, ok := events.NormalizeID(id)
	if !ok {
		return record{}, 0, notFoundf("job config %q not found", id)
	}
	e, err := s.kv.Get(ctx, configKey(norm))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return record{}, 0, notFoundf("job config %q not found", id)
	}
	if err != nil {
		return record{}, 0, unavailable("read job config", err)
	}
	var r record
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return record{}, 0, fmt.Errorf("schedule: job config %s: %w", norm, err)
	}
	return r, e.Revision(), nil
}

// all returns every stored config.
func (s *Scheduler) all(ctx context.Context) ([]record, error) {
	lister, err := s.kv.ListKeysFiltered(ctx, configKey("*"))
	if err != nil {
		return nil, unavailable("list job configs", err)
	}
	var ids []string
	for k := range lister.Keys() {
		ids = append(ids, strings.TrimPrefix(k, "config."))
	}
	var out []record
	for _, id := range ids {
		r, _, err := s.get(ctx, id)
		if errors.Is(err, control.ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// List returns one page of the configs matching q, newest first.
func (s *Scheduler) List(ctx context.Context, q Query) (Page, error) {
	if q.Skip < 0 || q.Limit < -1 {
		return Page{}, invalidf("skip must be >= 0 and limit >= -1")
	}
	rs, err := s.all(ctx)
	if err != nil {
		return Page{}, err
	}
	page := Page{Skip: q.Skip, Limit: q.Limit, Resources: []JobConfig{}}
	var match []JobConfig
	for _, r := range rs {
		c := r.JobConfig
		if q.Name != "" && !strings.EqualFold(c.Name, q.Name) || q.Operation != "" && c.Operation != q.Operation ||
			q.Disabled != nil && c.Disabled != *q.Disabled {
			continue
		}
		match = append(match, c)
	}
	slices.SortFunc(match, func(a, b JobConfig) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	page.Total = len(match)
	for i := q.Skip; i < len(match) && (q.Limit < 0 || len(page.Resources) < q.Limit); i++ {
		page.Resources = append(page.Resources, match[i])
	}
	return page, nil
}

// Update applies a patch (compare-and-set), moves the name reservation
// when the name changes, and re-arms the schedule when run_at, disabled or
// the dates changed. A new name is reserved before the record is written,
// and the write checks that the name it replaces is still the record's.
func (s *Scheduler) Update(ctx context.Context, id string, req Request) (JobConfig, error) {
	for range DefaultCASRetries {
		r, _, err := s.get(ctx, id)
		if err != nil {
			return JobConfig{}, err
		}
		c, err := s.patched(r.JobConfig, req)
		if err != nil {
			return JobConfig{}, err
		}
		renamed := !strings.EqualFold(c.Name, r.Name)
		if renamed {
			if _, err := s.kv.Create(ctx, nameKey(c.Name), []byte(c.ID)); errors.Is(err, jetstream.ErrKeyExists) {
				return JobConfig{}, conflictf("a job config named %q exists", c.Name)
			} else if err != nil {
				return JobConfig{}, unavailable("reserve name", err)
			}
		}
		rearm := false
		_, _, _, err = events.UpdateRecord(ctx, s.kv, configKey(r.ID), events.CAS{Attempts: DefaultCASRetries}, func(cur *record, _ bool) error {
			if cur.Name != r.Name {
				return errRenamedMeanwhile
			}
			old := cur.JobConfig
			next, err := s.patched(old, req)
			if err != nil {
				return err
			}
			now := s.cfg.Now().UTC().Truncate(time.Microsecond)
			next.UpdatedAt = now
			rearm = next.RunAt != old.RunAt || next.Disabled != old.Disabled || !sameTime(next.StartDate, old.StartDate) || !sameTime(next.EndDate, old.EndDate)
			if rearm {
				cur.ArmedAt = now
			}
			cur.JobConfig, c = next, next
			return nil
		})
		if err != nil && renamed {
			_ = s.kv.Delete(context.WithoutCancel(ctx), nameKey(c.Name))
		}
		switch {
		case errors.Is(err, errRenamedMeanwhile):
			continue
		case errors.Is(err, jetstream.ErrKeyNotFound):
			return JobConfig{}, notFoundf("job config %q not found", id)
		case errors.Is(err, events.ErrContended):
			return JobConfig{}, conflictf("job config %s is being updated too often; retry", id)
		case errors.Is(err, events.ErrKV):
			return JobConfig{}, unavailable("update job config", err)
		case err != nil:
			return JobConfig{}, err
		}
		if renamed {
			_ = s.kv.Delete(ctx, nameKey(r.Name))
		}
		if rearm {
			if err := s.arm(ctx, &c); err != nil {
				return c, err
			}
		}
		return c, nil
	}
	return JobConfig{}, conflictf("job config %s is being updated too often; retry", id)
}

// errRenamedMeanwhile: the config was renamed since its name reservation
// was decided; Update starts again.
var errRenamedMeanwhile = errors.New("schedule: renamed meanwhile")

// patched returns c with req applied (no I/O).
func (s *Scheduler) patched(c JobConfig, req Request) (JobConfig, error) {
	c.Params.KeyVaults = slices.Clone(c.Params.KeyVaults)
	if err := s.apply(&c, req); err != nil {
		return JobConfig{}, err
	}
	return c, nil
}

// Delete removes a config's schedule, then its records.
func (s *Scheduler) Delete(ctx context.Context, id string) error {
	r, _, err := s.get(ctx, id)
	if err != nil {
		return err
	}
	if err := s.disarm(ctx, r.ID); err != nil {
		return err
	}
	if err := s.kv.Delete(ctx, configKey(r.ID)); err != nil {
		return unavailable("delete job config", err)
	}
	_ = s.kv.Delete(ctx, nameKey(r.Name))
	_ = s.kv.Delete(ctx, stateKey(r.ID))
	return nil
}

// arm publishes c's schedule message (replacing the previous one), or
// removes it when c is disabled or past its end date.
func (s *Scheduler) arm(ctx context.Context, c *JobConfig) error {
	if c.Disabled || c.EndDate != nil && c.EndDate.Before(s.cfg.Now()) {
		return s.disarm(ctx, c.ID)
	}
	body, err := json.Marshal(map[string]string{"job_config_id": c.ID})
	if err != nil {
		return fmt.Errorf("schedule: %w", err)
	}
	_, err = s.js.Publish(ctx, events.ScheduleArmSubject(c.ID), body,
		jetstream.WithScheduleCron(s.cfg.Pattern(c.RunAt)),
		jetstream.WithScheduleTarget(events.ScheduleFireSubject(c.ID)))
	if err != nil {
		return unavailable("arm schedule", err)
	}
	return nil
}

// DisarmMarkerTTL is how long the marker that disarms a schedule stays.
const DisarmMarkerTTL = time.Minute

// disarm stops a config's schedule: a plain message on its arm subject
// replaces the schedule message (the stream keeps one per subject, and the
// server drops the schedule of a subject whose last message has none);
// the marker itself expires after DisarmMarkerTTL. No stream purge, which
// the API's NATS user may not do. A fire already published is dropped by
// the firing replica (the config is disabled or gone).
func (s *Scheduler) disarm(ctx context.Context, id string) error {
	body, err := json.Marshal(map[string]any{"job_config_id": id, "disarmed": true})
	if err != nil {
		return fmt.Errorf("schedule: %w", err)
	}
	if _, err := s.js.Publish(ctx, events.ScheduleArmSubject(id), body, jetstream.WithMsgTTL(DisarmMarkerTTL)); err != nil {
		return unavailable("disarm schedule", err)
	}
	return nil
}

func sameTime(a, b *time.Time) bool {
	return a == nil && b == nil || a != nil && b != nil && a.Equal(*b)
}
