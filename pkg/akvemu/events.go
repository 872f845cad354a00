package akvemu

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// EventSchema is the schema an event subscription delivers in.
type EventSchema string

// Event schemas of an event subscription.
const (
	// SchemaEventGrid is Event Grid's own schema (EventGridSchema, the default): a
	// JSON array of events per request.
	SchemaEventGrid EventSchema = "EventGridSchema"
	// SchemaCloudEvents is CloudEvents 1.0 in structured mode (CloudEventSchemaV1_0):
	// one event per request, or a JSON array when MaxEventsPerBatch > 1.
	SchemaCloudEvents EventSchema = "CloudEventSchemaV1_0"
)

// EventType is the type of a Key Vault event.
type EventType string

// The Key Vault key events the emulator publishes. Key Vault sends no event for a
// deletion.
const (
	// EventKeyNewVersionCreated: a key or a new version of it was created (create,
	// import, rotate).
	EventKeyNewVersionCreated EventType = "Microsoft.KeyVault.KeyNewVersionCreated"
	// EventKeyNearExpiry: the current version of a key expires within
	// EventDeliveryConfig.NearExpiryWindow (30 days in Azure).
	EventKeyNearExpiry EventType = "Microsoft.KeyVault.KeyNearExpiry"
	// EventKeyExpired: the current version of a key reached its exp.
	EventKeyExpired EventType = "Microsoft.KeyVault.KeyExpired"
)

// eventTypes are every key event type, the default of IncludedEventTypes.
var eventTypes = []EventType{EventKeyNewVersionCreated, EventKeyNearExpiry, EventKeyExpired}

// subscriptionValidationEventType is the type of Event Grid's validation handshake event.
const subscriptionValidationEventType = "Microsoft.EventGrid.SubscriptionValidationEvent"

// EventGridAppID is Event Grid's well-known application id: the appid claim of the
// Entra ID tokens it sends to a webhook with AADAudience.
const EventGridAppID = "4962773b-9cdb-44cf-a8bf-237846a00ab7"

// ProvisioningState is the state of an event subscription.
type ProvisioningState string

// Provisioning states of an event subscription (Azure's names).
const (
	// EventSubscriptionCreating: the validation handshake is under way.
	EventSubscriptionCreating ProvisioningState = "Creating"
	// EventSubscriptionAwaitingManualAction: the webhook acknowledged the validation
	// event without the code; a GET of the validation URL completes it.
	EventSubscriptionAwaitingManualAction ProvisioningState = "AwaitingManualAction"
	// EventSubscriptionSucceeded: validated; events are delivered.
	EventSubscriptionSucceeded ProvisioningState = "Succeeded"
	// EventSubscriptionFailed: the handshake failed; nothing is delivered.
	EventSubscriptionFailed ProvisioningState = "Failed"
)

// Defaults and limits of event delivery (Azure Event Grid's).
const (
	// DefaultEventMaxAttempts is the number of delivery attempts of an event.
	DefaultEventMaxAttempts = 30
	// DefaultEventTTL is how long an event is retried after it was published.
	DefaultEventTTL = 24 * time.Hour
	// DefaultEventDeliveryTimeout is how long a delivery (or handshake) request may take.
	DefaultEventDeliveryTimeout = 30 * time.Second
	// DefaultEventQueueSize bounds the events a subscription holds (queued, in flight
	// or waiting for a retry); more are dropped and counted.
	DefaultEventQueueSize = 10000
	// DefaultEventDeliveryWorkers is the number of delivery goroutines per subscription.
	DefaultEventDeliveryWorkers = 4
	// DefaultEventValidationTimeout is how long a manual validation URL stays valid.
	DefaultEventValidationTimeout = 10 * time.Minute
	// DefaultNearExpiryWindow is how long before exp KeyNearExpiry is sent.
	DefaultNearExpiryWindow = 30 * 24 * time.Hour
	// MaxEventsPerBatchLimit is the largest MaxEventsPerBatch (Azure's limit).
	MaxEventsPerBatchLimit = 5000
	// MaxEventAttemptsLimit is the largest MaxAttempts (Azure's limit).
	MaxEventAttemptsLimit = 30
	// MaxEventDeliveryWorkers bounds Workers.
	MaxEventDeliveryWorkers = 256
	// MaxEventSubscriptions bounds the event subscriptions of an emulator (Azure
	// allows 500 per topic).
	MaxEventSubscriptions = 500
	// maxDeliveryHeaders is Azure's limit of delivery attributes per subscription.
	maxDeliveryHeaders = 10
	// eventRetryJitter is the ± share of randomization added to every retry delay.
	eventRetryJitter = 0.1
)

// DefaultEventRetrySchedule is Event Grid's retry schedule for webhooks: the delay
// after the first failed attempt, after the second, …; the last entry repeats.
var DefaultEventRetrySchedule = []time.Duration{
	10 * time.Second, 30 * time.Second, time.Minute, 5 * time.Minute, 10 * time.Minute,
	30 * time.Minute, time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour,
}

// EventSubscription is an Event Grid subscription to the emulator's Key Vault events:
// where they are delivered, in which schema, which of them, and how the webhook
// authenticates the deliveries. One subscription covers every vault (or the Vaults
// named); managed HSM pools publish no events.
type EventSubscription struct {
	// Name of the subscription: 3–64 letters, digits and hyphens. It is sent in the
	// aeg-subscription-name header.
	Name string `json:"name" yaml:"name"`
	// Endpoint is the webhook URL (https, or http for local use).
	Endpoint string `json:"endpoint" yaml:"endpoint"`
	// Schema is SchemaEventGrid (default) or SchemaCloudEvents.
	Schema EventSchema `json:"schema,omitempty" yaml:"schema"`
	// IncludedEventTypes filters the event types (default: all three key events).
	IncludedEventTypes []EventType `json:"included_event_types,omitempty" yaml:"included_event_types"`
	// Vaults filters the vaults by name (default: every vault, also those added later).
	Vaults []string `json:"vaults,omitempty" yaml:"vaults"`
	// MaxEventsPerBatch is the largest number of events per request (default 1, at
	// most MaxEventsPerBatchLimit). Event Grid never waits to fill a batch.
	MaxEventsPerBatch int `json:"max_events_per_batch,omitempty" yaml:"max_events_per_batch"`
	// DeliveryHeaders are sent with every delivery and the handshake (at most 10).
	// Their values are treated as secrets: status answers show "***".
	DeliveryHeaders map[string]string `json:"delivery_headers,omitempty" yaml:"delivery_headers"`
	// AADAudience, when set, makes every delivery and the handshake carry
	// "Authorization: Bearer <token>": an access token of the emulated tenant for
	// this audience with appid EventGridAppID, verifiable with the emulator's OpenID
	// discovery document and JWKS.
	AADAudience string `json:"aad_audience,omitempty" yaml:"aad_audience"`
}

// EventDeliveryCounters count an event subscription's deliveries. Events count once
// however many requests they took; requests are counted in Attempts.
type EventDeliveryCounters struct {
	// Published is the number of events queued for the subscription.
	Published int64 `json:"published"`
	// Delivered is the number of events the webhook acknowledged (200–204).
	Delivered int64 `json:"delivered"`
	// Attempts is the number of delivery requests sent (first tries and retries).
	Attempts int64 `json:"attempts"`
	// FailedAttempts is the number of requests not acknowledged (any other status,
	// a connection error or a timeout).
	FailedAttempts int64 `json:"failed_attempts"`
	// Retried is the number of events scheduled for another attempt (once per retry).
	Retried int64 `json:"retried"`
	// Dropped is the number of events given up: a status that is not retried (400,
	// 401, 403, 413), MaxAttempts or EventTTL reached, or a full queue. Azure would
	// dead-letter them when a dead-letter destination is configured.
	Dropped int64 `json:"dropped"`
	// QueueOverflow is the part of Dropped that never got queued (full queue).
	QueueOverflow int64 `json:"queue_overflow"`
	// Pending is the number of events queued, in flight or waiting for a retry.
	Pending int64 `json:"pending"`
}

// EventSubscriptionStatus is an event subscription with its state and counters.
// DeliveryHeaders values are masked as "***".
type EventSubscriptionStatus struct {
	EventSubscription
	// ProvisioningState is Creating, AwaitingManualAction, Succeeded or Failed.
	ProvisioningState ProvisioningState `json:"provisioning_state"`
	// Reason says why the handshake failed (or what it awaits).
	Reason string `json:"reason,omitempty"`
	// ValidationURL is the manual validation URL while AwaitingManualAction.
	ValidationURL string `json:"validation_url,omitempty"`
	// CreatedAt is when the subscription was added.
	CreatedAt time.Time `json:"created_at"`
	// Counters are the delivery counters.
	Counters EventDeliveryCounters `json:"counters"`
}

// EventDeliveryConfig tunes event delivery. Zero fields take Azure Event Grid's
// values; tests shrink RetrySchedule (or set RetryScale) to see retries quickly.
type EventDeliveryConfig struct {
	// RetrySchedule is the delay before the 2nd, 3rd, … attempt; the last entry
	// repeats (default DefaultEventRetrySchedule). A ±10 % jitter is added, and a
	// Retry-After answered with 429 or 503 is honoured as a minimum.
	RetrySchedule []time.Duration `json:"-" yaml:"-"`
	// RetryScale multiplies every retry delay and EventTTL (default 1): 0.001 turns
	// Azure's 10 s, 30 s, 1 min, … into 10 ms, 30 ms, 60 ms, … with the same number
	// of attempts before an event expires.
	RetryScale float64 `json:"retry_scale" yaml:"retry_scale"`
	// MaxAttempts per event (default DefaultEventMaxAttempts, at most 30).
	MaxAttempts int `json:"max_attempts" yaml:"max_attempts"`
	// EventTTL is how long after publication an event is retried (default
	// DefaultEventTTL, scaled by RetryScale).
	EventTTL time.Duration `json:"-" yaml:"-"`
	// Timeout of a delivery or handshake request (default DefaultEventDeliveryTimeout).
	Timeout time.Duration `json:"-" yaml:"-"`
	// QueueSize bounds each subscription's pending events (default DefaultEventQueueSize).
	QueueSize int `json:"queue_size" yaml:"queue_size"`
	// Workers is the number of delivery goroutines per subscription (default
	// DefaultEventDeliveryWorkers).
	Workers int `json:"workers" yaml:"workers"`
	// ValidationTimeout is how long a manual validation URL is valid (default
	// DefaultEventValidationTimeout).
	ValidationTimeout time.Duration `json:"-" yaml:"-"`
	// NearExpiryWindow is how long before a key's exp KeyNearExpiry is sent
	// (default DefaultNearExpiryWindow).
	NearExpiryWindow time.Duration `json:"-" yaml:"-"`
	// RootCAs, when set, are the certificate authorities webhooks' HTTPS
	// certificates are checked against (default: the system's and the emulator's CA).
	RootCAs *x509.CertPool `json:"-" yaml:"-"`
	// HTTPClient, when set, sends every delivery and handshake (RootCAs is then
	// unused). Redirects should not be followed: Event Grid does not.
	HTTPClient *http.Client `json:"-" yaml:"-"`
}

// UnmarshalJSON reads the spec file form: durations as Go duration strings ("10s")
// or milliseconds, retry_schedule as a list of them. Unknown fields are rejected.
func (c *EventDeliveryConfig) UnmarshalJSON(b []byte) error {
	type plain EventDeliveryConfig
	aux := struct {
		*plain
		RetrySchedule     []json.RawMessage `json:"retry_schedule"`
		EventTTL          json.RawMessage   `json:"event_ttl"`
		Timeout           json.RawMessage   `json:"timeout"`
		ValidationTimeout json.RawMessage   `json:"validation_timeout"`
		NearExpiryWindow  json.RawMessage   `json:"near_expiry_window"`
	}{plain: (*plain)(c)}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&aux); err != nil {
		return err
	}
	c.RetrySchedule = nil
	for i, raw := range aux.RetrySchedule {
		d, err := parseDuration(raw)
		if err != nil {
			return fmt.Errorf("retry_schedule[%d]: %w", i, err)
		}
		c.RetrySchedule = append(c.RetrySchedule, d)
	}
	for _, f := range []struct {
		name string
		raw  json.RawMessage
		dst  *time.Duration
	}{
		{"event_ttl", aux.EventTTL, &c.EventTTL}, {"timeout", aux.Timeout, &c.Timeout},
		{"validation_timeout", aux.ValidationTimeout, &c.ValidationTimeout},
		{"near_expiry_window", aux.NearExpiryWindow, &c.NearExpiryWindow},
	} {
		d, err := parseDuration(f.raw)
		if err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
		*f.dst = d
	}
	return nil
}

// withDefaults fills zero fields and applies RetryScale.
func (c EventDeliveryConfig) withDefaults() EventDeliveryConfig {
	if len(c.RetrySchedule) == 0 {
		c.RetrySchedule = DefaultEventRetrySchedule
	}
	if c.RetryScale == 0 {
		c.RetryScale = 1
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultEventMaxAttempts
	}
	if c.EventTTL == 0 {
		c.EventTTL = DefaultEventTTL
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultEventDeliveryTimeout
	}
	if c.QueueSize == 0 {
		c.QueueSize = DefaultEventQueueSize
	}
	if c.Workers == 0 {
		c.Workers = DefaultEventDeliveryWorkers
	}
	if c.ValidationTimeout == 0 {
		c.ValidationTimeout = DefaultEventValidationTimeout
	}
	if c.NearExpiryWindow == 0 {
		c.NearExpiryWindow = DefaultNearExpiryWindow
	}
	if c.RetryScale != 1 {
		sched := make([]time.Duration, len(c.RetrySchedule))
		for i, d := range c.RetrySchedule {
			sched[i] = time.Duration(float64(d) * c.RetryScale)
		}
		c.RetrySchedule = sched
		c.EventTTL = time.Duration(float64(c.EventTTL) * c.RetryScale)
		c.RetryScale = 1
	}
	return c
}

// Validate reports the first unusable setting, wrapping ErrInvalidConfig.
func (c EventDeliveryConfig) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: event delivery: %s", ErrInvalidConfig, fmt.Sprintf(format, a...))
	}
	if c.RetryScale < 0 || math.IsNaN(c.RetryScale) || math.IsInf(c.RetryScale, 0) {
		return bad("retry scale must not be negative")
	}
	for _, d := range c.RetrySchedule {
		if d < 0 {
			return bad("retry delays must not be negative")
		}
	}
	if c.MaxAttempts < 0 || c.MaxAttempts > MaxEventAttemptsLimit {
		return bad("max attempts must be 1-%d (0 for the default)", MaxEventAttemptsLimit)
	}
	if c.EventTTL < 0 || c.Timeout < 0 || c.ValidationTimeout < 0 || c.NearExpiryWindow < 0 {
		return bad("durations must not be negative")
	}
	if c.QueueSize < 0 || c.Workers < 0 || c.Workers > MaxEventDeliveryWorkers {
		return bad("queue size must not be negative and workers must be 0-%d", MaxEventDeliveryWorkers)
	}
	return nil
}

var (
	eventSubNameRE = regexp.MustCompile(`^[0-9A-Za-z-]{3,64}$`)
	headerNameRE   = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")
)

// reservedDeliveryHeaders are headers a subscription may not set (lower case).
var reservedDeliveryHeaders = []string{"content-type", "content-length", "host", "transfer-encoding", "connection", "webhook-request-origin", "webhook-request-rate"}

// Validate reports whether the subscription spec is usable (ErrBadParameter).
func (s EventSubscription) Validate() error {
	if !eventSubNameRE.MatchString(s.Name) {
		return badParam(fmt.Sprintf("event subscription name %q must be 3-64 letters, digits and hyphens", s.Name))
	}
	u, err := url.Parse(s.Endpoint)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return badParam(fmt.Sprintf("event subscription %s: endpoint %q must be an absolute https (or http) URL", s.Name, s.Endpoint))
	}
	switch s.Schema {
	case "", SchemaEventGrid, SchemaCloudEvents:
	default:
		return badParam(fmt.Sprintf("event subscription %s: schema %q must be %s or %s", s.Name, s.Schema, SchemaEventGrid, SchemaCloudEvents))
	}
	for _, t := range s.IncludedEventTypes {
		if !slices.Contains(eventTypes, t) {
			return badParam(fmt.Sprintf("event subscription %s: event type %q is not a Key Vault key event (%s, %s, %s)", s.Name, t, EventKeyNewVersionCreated, EventKeyNearExpiry, EventKeyExpired))
		}
	}
	for _, v := range s.Vaults {
		if !vaultNameRE.MatchString(v) {
			return badParam(fmt.Sprintf("event subscription %s: vault name %q must be 3-24 letters, digits and hyphens", s.Name, v))
		}
	}
	if s.MaxEventsPerBatch < 0 || s.MaxEventsPerBatch > MaxEventsPerBatchLimit {
		return badParam(fmt.Sprintf("event subscription %s: max_events_per_batch must be 1-%d", s.Name, MaxEventsPerBatchLimit))
	}
	if len(s.DeliveryHeaders) > maxDeliveryHeaders {
		return badParam(fmt.Sprintf("event subscription %s: at most %d delivery headers", s.Name, maxDeliveryHeaders))
	}
	for k, v := range s.DeliveryHeaders {
		lk := lower(k)
		switch {
		case !headerNameRE.MatchString(k):
			return badParam(fmt.Sprintf("event subscription %s: delivery header %q is not a valid header name", s.Name, k))
		case strings.HasPrefix(lk, "aeg-") || slices.Contains(reservedDeliveryHeaders, lk):
			return badParam(fmt.Sprintf("event subscription %s: delivery header %q is reserved", s.Name, k))
		case lk == "authorization" && s.AADAudience != "":
			return badParam(fmt.Sprintf("event subscription %s: delivery header Authorization cannot be combined with aad_audience", s.Name))
		case strings.ContainsAny(v, "\r\n\x00") || len(v) > 4096:
			return badParam(fmt.Sprintf("event subscription %s: delivery header %q has an invalid value", s.Name, k))
		}
	}
	if strings.ContainsAny(s.AADAudience, " \t\r\n") {
		return badParam(fmt.Sprintf("event subscription %s: aad_audience must not contain spaces", s.Name))
	}
	return nil
}

// normalized returns a copy with defaults applied and slices/maps cloned.
func (s EventSubscription) normalized() EventSubscription {
	if s.Schema == "" {
		s.Schema = SchemaEventGrid
	}
	if len(s.IncludedEventTypes) == 0 {
		s.IncludedEventTypes = eventTypes
	}
	s.IncludedEventTypes = slices.Clone(s.IncludedEventTypes)
	s.Vaults = slices.Clone(s.Vaults)
	if s.MaxEventsPerBatch == 0 {
		s.MaxEventsPerBatch = 1
	}
	h := make(map[string]string, len(s.DeliveryHeaders))
	for k, v := range s.DeliveryHeaders {
		h[k] = v
	}
	s.DeliveryHeaders = h
	return s
}

// masked returns a copy whose delivery header values are "***".
func (s EventSubscription) masked() EventSubscription {
	h := make(map[string]string, len(s.DeliveryHeaders))
	for k := range s.DeliveryHeaders {
		h[k] = "***"
	}
	s.DeliveryHeaders = h
	s.IncludedEventTypes = slices.Clone(s.IncludedEventTypes)
	s.Vaults = slices.Clone(s.Vaults)
	return s
}
