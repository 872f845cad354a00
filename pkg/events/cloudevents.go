package events

import (
	"encoding/json"
	"fmt"
	"time"
)

// SpecVersion is the CloudEvents version of every event akvsync publishes.
const SpecVersion = "1.0"

// TypePrefix prefixes every CloudEvents type akvsync publishes.
const TypePrefix = "io.akvsync."

// EventKind is the last subject token of an event and, with a prefix, its
// CloudEvents type.
type EventKind string

// The kinds of event akvsync publishes.
const (
	// KindSyncRequested: the API accepted a job (data: [SyncRequested]).
	KindSyncRequested EventKind = "requested"
	// KindJobAbortRequested: a user cancelled a job (data: [Job]).
	KindJobAbortRequested EventKind = "abort_requested"
	// KindJobFinished: every vault of a job is terminal (data: [Job]).
	KindJobFinished EventKind = "finished"
	// KindJobProgress: vaults of a running job finished (data:
	// [JobProgressed]); at most one per job and tracker batch.
	KindJobProgress EventKind = "progress"
	// KindVaultStarted: a worker started syncing a vault (data: [VaultResult]).
	KindVaultStarted EventKind = "started"
	// KindVaultCompleted: a vault's listing completed and every key was
	// published (data: [VaultResult]).
	KindVaultCompleted EventKind = "completed"
	// KindVaultFailed: a vault failed for good (data: [VaultResult]).
	KindVaultFailed EventKind = "failed"
	// KindVaultAborted: a vault sync stopped or was skipped because its job
	// was cancelled (data: [VaultResult]).
	KindVaultAborted EventKind = "aborted"
	// KindScheduleFired: a scheduler job config's tick started a job
	// (type io.akvsync.schedule.fired; data: [ScheduleEvent]).
	KindScheduleFired EventKind = "fired"
	// KindScheduleSkipped: a tick started no job, because the config's
	// previous job still runs or a vault is busy (type
	// io.akvsync.schedule.skipped; data: [ScheduleEvent]).
	KindScheduleSkipped EventKind = "skipped"
	// KindKeyRefreshed: an Event Grid event made a worker read one key
	// again (type io.akvsync.key.refreshed; data: [KeyRefreshed]).
	KindKeyRefreshed EventKind = "refreshed"
)

// EventScopeSchedule is the CloudEvents type scope of scheduler events.
const EventScopeSchedule = "schedule"

// ScheduleEvent is the data of a schedule fired or skipped event.
type ScheduleEvent struct {
	JobConfigID string    `json:"job_config_id"`
	Name        string    `json:"name"`
	Tick        time.Time `json:"tick"`
	// JobID is the job the tick started (fired) or the previous job still
	// running (skipped because of it).
	JobID string `json:"job_id,omitempty"`
	// Reason says why a tick was skipped.
	Reason string `json:"reason,omitempty"`
	// CatchUp marks a tick fired on recovery, after it was missed.
	CatchUp bool `json:"catch_up,omitempty"`
}

// Type is the CloudEvents type of events of this kind, e.g.
// "io.akvsync.vault.completed".
func (k EventKind) Type(scope string) string { return TypePrefix + scope + "." + string(k) }

// Event is a CloudEvents 1.0 event in structured JSON mode.
type Event struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject,omitempty"`
	Time            time.Time       `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	Data            json.RawMessage `json:"data"`
}

// NewEvent builds an event with a fresh id. source identifies the producing
// process (e.g. "akvsync/worker/host-1"); subject is the CloudEvents subject
// (the job or vault id the event is about).
func NewEvent(source, typ, subject string, data any) (Event, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return Event{}, fmt.Errorf("%w: data: %w", ErrBadEvent, err)
	}
	return Event{
		SpecVersion:     SpecVersion,
		ID:              NewID(),
		Source:          source,
		Type:            typ,
		Subject:         subject,
		Time:            time.Now().UTC(),
		DataContentType: "application/json",
		Data:            raw,
	}, nil
}

// MarshalEvent builds an event and encodes it as JSON.
func MarshalEvent(source, typ, subject string, data any) ([]byte, error) {
	ev, err := NewEvent(source, typ, subject, data)
	if err != nil {
		return nil, err
	}
	return json.Marshal(ev)
}

// DecodeEvent decodes a CloudEvents JSON message and its data into v.
func DecodeEvent(msg []byte, v any) (Event, error) {
	var ev Event
	if err := json.Unmarshal(msg, &ev); err != nil {
		return Event{}, fmt.Errorf("%w: %w", ErrBadEvent, err)
	}
	if ev.SpecVersion != SpecVersion || ev.Type == "" || ev.ID == "" {
		return Event{}, fmt.Errorf("%w: not a CloudEvents %s event", ErrBadEvent, SpecVersion)
	}
	if v != nil {
		if err := json.Unmarshal(ev.Data, v); err != nil {
			return Event{}, fmt.Errorf("%w: data of %s: %w", ErrBadEvent, ev.Type, err)
		}
	}
	return ev, nil
}
