package events

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Stream names.
const (
	StreamRequests = "AKVSYNC_REQUESTS"
	StreamTasks    = "AKVSYNC_TASKS"
	StreamEvents   = "AKVSYNC_EVENTS"
	StreamKeys     = "AKVSYNC_KEYS"
	// StreamSchedules holds one schedule message per enabled scheduler
	// job config (the server fires it at each cron tick) and the fire
	// messages the server publishes from them.
	StreamSchedules = "AKVSYNC_SCHEDULES"
	// StreamRefresh is the work queue of key refresh requests (see
	// [KeyRefresh]): one pending request per key.
	StreamRefresh = "AKVSYNC_REFRESH"
)

// Durable consumer names. Every worker process binds to the same durable,
// so the work is shared.
const (
	ConsumerPlanner     = "planner"
	ConsumerVaultSyncer = "vault-syncer"
	ConsumerJobTracker  = "job-tracker"
	// ConsumerScheduleFirer turns schedule fire messages into sync jobs.
	ConsumerScheduleFirer = "schedule-firer"
	// ConsumerKeyRefresher reads the keys Event Grid said changed.
	ConsumerKeyRefresher = "key-refresher"
)

// Key-value bucket names.
const (
	BucketJobs          = "akvsync-jobs"
	BucketVaults        = "akvsync-vaults"
	BucketConnections   = "akvsync-connections"
	BucketLocks         = "akvsync-locks"
	BucketRefreshTokens = "akvsync-refresh-tokens" // #nosec G101 -- a NATS KV bucket name, not a credential
	// BucketSubscriptions holds the Azure subscriptions discovery has seen
	// (CCKM's stored subscriptions), one record per subscription under a
	// UUID derived from its subscription id; written by the API only.
	BucketSubscriptions = "akvsync-subscriptions"
	// BucketBudget holds one lease per worker process and subscription it
	// is syncing, keyed "<subscription>.<worker id>-<n>", renewed well within
	// the bucket's TTL (Topology.BudgetLeaseTTL). Each worker paces its
	// Azure requests in the subscription at the budget divided by the
	// live leases (pkg/sync.Budget).
	BucketBudget = "akvsync-budget"
	// BucketJobConfigs holds the scheduler's job configs ("config.<id>"),
	// their unique names ("name.<hex of the lower-cased name>" -> id) and
	// their firing state ("state.<id>": last tick, last job, claim).
	BucketJobConfigs = "akvsync-job-configs"
	// BucketTickets holds the API's single-use event-stream tickets (under
	// a hash of the ticket), so any API replica redeems a ticket another
	// issued; records expire with the bucket's TTL (Topology.TicketTTL).
	BucketTickets = "akvsync-tickets"
	// BucketRevokedTokens is the API's access-token denylist, written and
	// watched by every API process: "jti.<jti>" (one revoked token, valued
	// with its expiry) and "sub.<digest of a username>" (every token of
	// the user issued up to a moment). Its TTL (Topology.RevokedTokenTTL)
	// outlives any access token.
	BucketRevokedTokens = "akvsync-revoked-tokens" // #nosec G101 -- a NATS KV bucket name, not a credential
)

// Defaults of [Topology].
const (
	DefaultReplicas        = 1
	DefaultDuplicateWindow = 10 * time.Minute
	DefaultEventsMaxAge    = 7 * 24 * time.Hour
	DefaultRequestsMaxAge  = 7 * 24 * time.Hour
	DefaultTaskAckWait     = 30 * time.Second
	DefaultTaskMaxDeliver  = 5
	DefaultRefreshTokenTTL = 24 * time.Hour
	DefaultMaxAckPending   = 4096
	// DefaultTrackerAckWait is the job tracker's ack wait: short, so an
	// event whose delivery was lost (its consumer's leader died) comes
	// back soon; a tracker that needs longer (finishing a job) extends it.
	DefaultTrackerAckWait = 10 * time.Second
	DefaultBudgetLeaseTTL = 10 * time.Second
	// DefaultScheduleAckWait is how long a schedule fire may go without
	// an ack or a heartbeat before another replica takes it over.
	DefaultScheduleAckWait = 30 * time.Second
	// DefaultTicketTTL is the TTL of the tickets bucket: at least an
	// event-stream ticket's lifetime (30 s in the API).
	DefaultTicketTTL = time.Minute
	// DefaultRevokedTokenTTL outlives the longest access token the API
	// issues (24h) plus its clock-skew leeway.
	DefaultRevokedTokenTTL = 25 * time.Hour
	// DefaultRefreshMaxPending bounds the pending key refresh requests;
	// past it the API answers Event Grid 503 and Event Grid retries.
	DefaultRefreshMaxPending = 100_000
	// DefaultRefreshMaxAge bounds how long a key refresh request waits in
	// its queue: an older one is dropped (the vault's next sync covers
	// the key), so nothing stays queued for good.
	DefaultRefreshMaxAge = time.Hour
	// DefaultRefreshAckWait is how long one key refresh may run.
	DefaultRefreshAckWait = 30 * time.Second
	// DefaultRefreshMaxDeliver bounds the attempts of one key refresh;
	// the vault's next sync covers a key whose refresh gave up.
	DefaultRefreshMaxDeliver = 5
)

// Topology is the configuration of akvsync's streams, consumers and
// buckets. The zero value is replaced by the defaults above.
type Topology struct {
	// Replicas of every stream and bucket: 1 embedded, 3 in a cluster.
	Replicas int
	// Storage of every stream and bucket (file by default; memory for
	// throwaway test servers).
	Storage jetstream.StorageType
	// DuplicateWindow is the dedupe window of the requests and tasks
	// streams (Nats-Msg-Id); at least 2 minutes.
	DuplicateWindow time.Duration
	// EventsMaxAge is how long dashboards can replay events.
	EventsMaxAge time.Duration
	// RequestsMaxAge is how long sync-requested events are kept.
	RequestsMaxAge time.Duration
	// TaskAckWait is how long a vault task may go without an ack or a
	// heartbeat before it is redelivered to another worker.
	TaskAckWait time.Duration
	// TaskMaxDeliver bounds the deliveries of one vault task; the job
	// tracker fails a vault whose task ran out of deliveries.
	TaskMaxDeliver int
	// RefreshTokenTTL bounds the life of an API refresh token.
	RefreshTokenTTL time.Duration
	// BudgetLeaseTTL is how long a worker's subscription-budget lease
	// lives unrenewed: a worker that died stops counting after it.
	BudgetLeaseTTL time.Duration
	// ScheduleAckWait is how long a schedule fire may go unacked (no
	// heartbeat) before it is redelivered to another replica.
	ScheduleAckWait time.Duration
	// TicketTTL is how long an event-stream ticket record stays in its
	// bucket; it must be at least the API's ticket lifetime.
	TicketTTL time.Duration
	// RevokedTokenTTL is how long an access-token revocation is kept: at
	// least the access-token lifetime plus clock skew.
	RevokedTokenTTL time.Duration
	// RefreshMaxPending bounds the key refresh queue (one per key).
	RefreshMaxPending int64
}

// WithDefaults returns t with zero fields replaced by defaults.
func (t Topology) WithDefaults() Topology {
	if t.Replicas == 0 {
		t.Replicas = DefaultReplicas
	}
	if t.DuplicateWindow == 0 {
		t.DuplicateWindow = DefaultDuplicateWindow
	}
	if t.EventsMaxAge == 0 {
		t.EventsMaxAge = DefaultEventsMaxAge
	}
	if t.RequestsMaxAge == 0 {
		t.RequestsMaxAge = DefaultRequestsMaxAge
	}
	if t.TaskAckWait == 0 {
		t.TaskAckWait = DefaultTaskAckWait
	}
	if t.TaskMaxDeliver == 0 {
		t.TaskMaxDeliver = DefaultTaskMaxDeliver
	}
	if t.RefreshTokenTTL == 0 {
		t.RefreshTokenTTL = DefaultRefreshTokenTTL
	}
	if t.BudgetLeaseTTL == 0 {
		t.BudgetLeaseTTL = DefaultBudgetLeaseTTL
	}
	if t.ScheduleAckWait == 0 {
		t.ScheduleAckWait = DefaultScheduleAckWait
	}
	if t.TicketTTL == 0 {
		t.TicketTTL = DefaultTicketTTL
	}
	if t.RevokedTokenTTL == 0 {
		t.RevokedTokenTTL = DefaultRevokedTokenTTL
	}
	if t.RefreshMaxPending == 0 {
		t.RefreshMaxPending = DefaultRefreshMaxPending
	}
	return t
}

// Validate reports a configuration JetStream would refuse or that breaks
// the pipeline's guarantees.
func (t Topology) Validate() error {
	t = t.WithDefaults()
	switch {
	case t.Replicas < 1 || t.Replicas > 5:
		return fmt.Errorf("%w: replicas must be 1 to 5, got %d", ErrTopology, t.Replicas)
	case t.DuplicateWindow < 2*time.Minute:
		return fmt.Errorf("%w: duplicate window must be at least 2m, got %s", ErrTopology, t.DuplicateWindow)
	case t.TaskAckWait < time.Second:
		return fmt.Errorf("%w: task ack wait must be at least 1s, got %s", ErrTopology, t.TaskAckWait)
	case t.TaskMaxDeliver < 1:
		return fmt.Errorf("%w: task max deliver must be at least 1, got %d", ErrTopology, t.TaskMaxDeliver)
	case t.BudgetLeaseTTL < time.Second:
		return fmt.Errorf("%w: budget lease TTL must be at least 1s, got %s", ErrTopology, t.BudgetLeaseTTL)
	case t.ScheduleAckWait < time.Second:
		return fmt.Errorf("%w: schedule ack wait must be at least 1s, got %s", ErrTopology, t.ScheduleAckWait)
	case t.TicketTTL < time.Second:
		return fmt.Errorf("%w: ticket TTL must be at least 1s, got %s", ErrTopology, t.TicketTTL)
	case t.RefreshMaxPending < 1:
		return fmt.Errorf("%w: refresh max pending must be at least 1, got %d", ErrTopology, t.RefreshMaxPending)
	}
	return nil
}

// Streams returns the configurations of akvsync's streams.
func (t Topology) Streams() []jetstream.StreamConfig {
	t = t.WithDefaults()
	return []jetstream.StreamConfig{
		{
			Name:        StreamRequests,
			Description: "akvsync: accepted sync jobs (sync-requested events)",
			Subjects:    []string{subjSyncRequested + ".*"},
			Retention:   jetstream.LimitsPolicy,
			MaxAge:      t.RequestsMaxAge,
			Duplicates:  t.DuplicateWindow,
			Storage:     t.Storage,
			Replicas:    t.Replicas,
		},
		{
			Name:        StreamTasks,
			Description: "akvsync: one task per vault to sync (work queue)",
			Subjects:    []string{subjTaskVault + ".*.*"},
			Retention:   jetstream.WorkQueuePolicy,
			Duplicates:  t.DuplicateWindow,
			Storage:     t.Storage,
			Replicas:    t.Replicas,
		},
		{
			Name:        StreamEvents,
			Description: "akvsync: job and vault events (CloudEvents 1.0 JSON)",
			Subjects:    []string{subjEventJob + ".*.*", subjEventVault + ".*.*.*", subjEventSchedule + ".*.*", subjEventKey + ".*.*.*"},
			Retention:   jetstream.LimitsPolicy,
			MaxAge:      t.EventsMaxAge,
			Storage:     t.Storage,
			Replicas:    t.Replicas,
		},
		{
			Name:              StreamKeys,
			Description:       "akvsync: the key inventory, latest record per key",
			Subjects:          []string{subjKey + ".*.*"},
			Retention:         jetstream.LimitsPolicy,
			MaxMsgsPerSubject: 1,
			Storage:           t.Storage,
			Replicas:          t.Replicas,
		},
		{
			Name:              StreamSchedules,
			Description:       "akvsync: scheduler job config schedules and their fires",
			Subjects:          []string{subjScheduleArm + ".*", subjScheduleFire + ".*"},
			Retention:         jetstream.LimitsPolicy,
			MaxMsgsPerSubject: 1,
			AllowMsgSchedules: true,
			AllowMsgTTL:       true, // disarm markers expire
			Storage:           t.Storage,
			Replicas:          t.Replicas,
		},
		{
			Name:        StreamRefresh,
			Description: "akvsync: keys to read again, from Event Grid events (work queue, one per key)",
			Subjects:    []string{subjRefreshKey + ".*.*"},
			Retention:   jetstream.WorkQueuePolicy,
			// A newer request for a key replaces the pending one; a full
			// queue refuses new keys (on a cluster, whose pre-check counts
			// no replacement, any request) and the API answers 503: Event
			// Grid retries.
			MaxMsgsPerSubject: 1,
			MaxMsgs:           t.RefreshMaxPending,
			MaxAge:            DefaultRefreshMaxAge,
			Discard:           jetstream.DiscardNew,
			Duplicates:        t.DuplicateWindow,
			Storage:           t.Storage,
			Replicas:          t.Replicas,
		},
	}
}

// Buckets returns the configurations of akvsync's key-value buckets.
func (t Topology) Buckets() []jetstream.KeyValueConfig {
	t = t.WithDefaults()
	kv := func(name, desc string, ttl time.Duration) jetstream.KeyValueConfig {
		return jetstream.KeyValueConfig{
			Bucket: name, Description: desc, History: 1, TTL: ttl,
			Storage: t.Storage, Replicas: t.Replicas,
		}
	}
	return []jetstream.KeyValueConfig{
		kv(BucketJobs, "akvsync: job records (CAS-updated write model)", 0),
		kv(BucketVaults, "akvsync: registered vaults", 0),
		kv(BucketConnections, "akvsync: Azure connections (secrets sealed)", 0),
		kv(BucketLocks, "akvsync: vault id -> job id holding the vault", 0),
		kv(BucketRefreshTokens, "akvsync: API refresh tokens (hashed)", t.RefreshTokenTTL),
		kv(BucketSubscriptions, "akvsync: Azure subscriptions seen by discovery", 0),
		kv(BucketBudget, "akvsync: subscription budget leases, <subscription>.<worker>-<n>", t.BudgetLeaseTTL),
		kv(BucketJobConfigs, "akvsync: scheduler job configs, names and firing state", 0),
		kv(BucketTickets, "akvsync: API event-stream tickets (hashed, single use)", t.TicketTTL),
		kv(BucketRevokedTokens, "akvsync: revoked API access tokens (jti.<jti>, sub.<user digest>)", t.RevokedTokenTTL),
	}
}

// Consumers returns the durable consumers of each stream, by stream name.
func (t Topology) Consumers() map[string]jetstream.ConsumerConfig {
	t = t.WithDefaults()
	return map[string]jetstream.ConsumerConfig{
		StreamRequests: {
			Durable:       ConsumerPlanner,
			Description:   "akvsync: expands a job into vault tasks",
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       t.TaskAckWait,
			MaxDeliver:    -1,
			MaxAckPending: DefaultMaxAckPending,
		},
		StreamTasks: {
			Durable:       ConsumerVaultSyncer,
			Description:   "akvsync: syncs one vault per task",
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       t.TaskAckWait,
			MaxDeliver:    t.TaskMaxDeliver,
			MaxAckPending: DefaultMaxAckPending,
		},
		StreamEvents: {
			Durable:        ConsumerJobTracker,
			Description:    "akvsync: folds vault events into the vaults' job records",
			AckPolicy:      jetstream.AckExplicitPolicy,
			AckWait:        DefaultTrackerAckWait,
			MaxDeliver:     -1,
			FilterSubjects: TrackerFilters(),
			MaxAckPending:  DefaultMaxAckPending,
		},
		StreamSchedules: {
			Durable:       ConsumerScheduleFirer,
			Description:   "akvsync: starts the sync job of each schedule tick",
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       t.ScheduleAckWait,
			MaxDeliver:    -1,
			FilterSubject: subjScheduleFire + ".*",
			MaxAckPending: DefaultMaxAckPending,
		},
		StreamRefresh: {
			Durable:       ConsumerKeyRefresher,
			Description:   "akvsync: reads one key again per request",
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       DefaultRefreshAckWait,
			MaxDeliver:    DefaultRefreshMaxDeliver,
			MaxAckPending: DefaultMaxAckPending,
		},
	}
}

// EnsureStreams creates or updates every stream and bucket. It is
// idempotent and safe to call from every process at start.
func (t Topology) EnsureStreams(ctx context.Context, js jetstream.JetStream) error {
	if err := t.Validate(); err != nil {
		return err
	}
	for _, sc := range t.Streams() {
		if err := ensureOnce(ctx, func(ctx context.Context) error {
			_, err := js.CreateOrUpdateStream(ctx, sc)
			return err
		}); err != nil {
			return fmt.Errorf("%w: stream %s: %w", ErrTopology, sc.Name, err)
		}
	}
	for _, kc := range t.Buckets() {
		if err := ensureOnce(ctx, func(ctx context.Context) error {
			_, err := js.CreateOrUpdateKeyValue(ctx, kc)
			return err
		}); err != nil {
			return fmt.Errorf("%w: bucket %s: %w", ErrTopology, kc.Bucket, err)
		}
	}
	return nil
}

// EnsureRequestTimeout bounds one create-or-update request of
// EnsureStreams and EnsureConsumer. A nats-server cluster leaves a stream
// create unanswered when another process creates the same stream at the
// same moment (every process ensures the topology at start); the next
// request finds the stream and is answered, so the request is repeated
// after this long while ctx lives.
const EnsureRequestTimeout = 3 * time.Second

// ensureOnce runs one idempotent create-or-update call, repeating it when
// it went unanswered for EnsureRequestTimeout, until ctx ends.
func ensureOnce(ctx context.Context, call func(ctx context.Context) error) error {
	for {
		actx, cancel := context.WithTimeout(ctx, EnsureRequestTimeout)
		err := call(actx)
		cancel()
		if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
	}
}

// EnsureConsumer creates or updates the durable consumer of stream and
// returns it. Workers call it for the consumers they run.
func (t Topology) EnsureConsumer(ctx context.Context, js jetstream.JetStream, stream string) (jetstream.Consumer, error) {
	cc, ok := t.Consumers()[stream]
	if !ok {
		return nil, fmt.Errorf("%w: stream %s has no durable consumer", ErrTopology, stream)
	}
	var c jetstream.Consumer
	err := ensureOnce(ctx, func(ctx context.Context) (err error) {
		c, err = js.CreateOrUpdateConsumer(ctx, stream, cc)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%w: consumer %s on %s: %w", ErrTopology, cc.Durable, stream, err)
	}
	return c, nil
}

// Init creates or updates every stream, bucket and durable consumer: the
// init step, run with the admin NATS identity ([RoleAdmin]); services
// then only bind to them ([Topology.Require], [BindConsumer]). Embedded
// mode, whose in-process connection holds every permission, runs it at
// start.
func (t Topology) Init(ctx context.Context, js jetstream.JetStream) error {
	if err := t.EnsureStreams(ctx, js); err != nil {
		return err
	}
	for _, s := range []string{StreamRequests, StreamTasks, StreamEvents, StreamSchedules, StreamRefresh} {
		if _, err := t.EnsureConsumer(ctx, js, s); err != nil {
			return err
		}
	}
	return nil
}

// Require checks that every stream and bucket role uses exists, with
// lookups only (the role's own permissions suffice). A missing one is
// [ErrTopologyMissing].
func Require(ctx context.Context, js jetstream.JetStream, role Role) error {
	for _, name := range role.Streams() {
		if _, err := js.Stream(ctx, name); err != nil {
			if errors.Is(err, jetstream.ErrStreamNotFound) {
				return fmt.Errorf("%w: stream %s: %w", ErrTopologyMissing, name, err)
			}
			return fmt.Errorf("%w: stream %s: %w", ErrTopology, name, err)
		}
	}
	return nil
}

// BindConsumer looks up the durable consumer of stream, which the init
// step created, without changing it. A missing one is [ErrTopologyMissing].
func (t Topology) BindConsumer(ctx context.Context, js jetstream.JetStream, stream string) (jetstream.Consumer, error) {
	cc, ok := t.Consumers()[stream]
	if !ok {
		return nil, fmt.Errorf("%w: stream %s has no durable consumer", ErrTopology, stream)
	}
	c, err := js.Consumer(ctx, stream, cc.Durable)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound), errors.Is(err, jetstream.ErrStreamNotFound):
		return nil, fmt.Errorf("%w: consumer %s on %s: %w", ErrTopologyMissing, cc.Durable, stream, err)
	case err != nil:
		return nil, fmt.Errorf("%w: consumer %s on %s: %w", ErrTopology, cc.Durable, stream, err)
	}
	return c, nil
}

// Bucket opens one of akvsync's buckets, which the init step created. A
// missing one is [ErrTopologyMissing].
func Bucket(ctx context.Context, js jetstream.JetStream, name string) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, name)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("%w: bucket %s: %w", ErrTopologyMissing, name, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: bucket %s: %w", ErrTopology, name, err)
	}
	return kv, nil
}
