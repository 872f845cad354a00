package eventgrid

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Schema is an Event Grid delivery schema.
type Schema string

// The delivery schemas of an Event Grid subscription.
const (
	// SchemaEventGrid: a JSON array of Event Grid events.
	SchemaEventGrid Schema = "EventGridSchema"
	// SchemaCloudEvents: one CloudEvents 1.0 event in structured mode, or
	// a batch (a JSON array of them).
	SchemaCloudEvents Schema = "CloudEventSchemaV1_0"
)

// ValidationEventType is the event type of the Event Grid schema's
// subscription validation handshake.
const ValidationEventType = "Microsoft.EventGrid.SubscriptionValidationEvent"

// MaxEvents bounds the events of one delivery (Event Grid's own batch
// limit).
const MaxEvents = 5000

// Event is one delivered event, whichever the schema.
type Event struct {
	ID string
	// Type is the event type, e.g. Microsoft.KeyVault.KeyNewVersionCreated.
	Type string
	// Topic is the Event Grid topic, the CloudEvents source: the vault's
	// resource id.
	Topic   string
	Subject string
	Time    time.Time
	Data    json.RawMessage
}

// Validation is the Event Grid schema's subscription validation request:
// answer Code in the response, or GET URL (manual validation).
type Validation struct {
	Code string
	URL  string
}

// Delivery is one parsed webhook request body.
type Delivery struct {
	Schema Schema
	// Validation is set for a subscription validation event (then Events
	// is empty).
	Validation *Validation
	Events     []Event
	// Malformed counts the events left out because they are not events
	// of the schema (no id or type, an unreadable time).
	Malformed int
}

// wireEvent holds the fields of both schemas (encoding/json matches
// names without regard to case).
type wireEvent struct {
	// Event Grid schema.
	ID              string          `json:"id"`
	Topic           string          `json:"topic"`
	Subject         string          `json:"subject"`
	EventType       string          `json:"eventType"`
	EventTime       string          `json:"eventTime"`
	Data            json.RawMessage `json:"data"`
	DataVersion     string          `json:"dataVersion"`
	MetadataVersion string          `json:"metadataVersion"`
	// CloudEvents.
	SpecVersion string `json:"specversion"`
	Source      string `json:"source"`
	Type        string `json:"type"`
	Time        string `json:"time"`
}

// Parse reads a delivery body. A JSON array is a batch (of Event Grid
// events, or of CloudEvents when its events carry specversion); a JSON
// object is one CloudEvent. The array is decoded one event at a time and
// refused past MaxEvents, so a body's cost is bounded by its size and
// MaxEvents, not by what it claims. An event that is not an event of the
// batch's schema (no id or type, a bad time) is counted in
// Delivery.Malformed and left out: one bad event does not refuse the
// others, which Event Grid would never deliver again.
func Parse(body []byte) (Delivery, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return Delivery{}, fmt.Errorf("%w: empty body", ErrMalformed)
	}
	var raw []wireEvent
	switch body[0] {
	case '[':
		dec := json.NewDecoder(bytes.NewReader(body))
		if _, err := dec.Token(); err != nil {
			return Delivery{}, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		for dec.More() {
			if len(raw) == MaxEvents {
				return Delivery{}, fmt.Errorf("%w: more than %d events", ErrMalformed, MaxEvents)
			}
			var w wireEvent
			if err := dec.Decode(&w); err != nil {
				return Delivery{}, fmt.Errorf("%w: event %d: %w", ErrMalformed, len(raw), err)
			}
			raw = append(raw, w)
		}
		if _, err := dec.Token(); err != nil {
			return Delivery{}, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		if dec.More() {
			return Delivery{}, fmt.Errorf("%w: data after the array", ErrMalformed)
		}
	case '{':
		var one wireEvent
		if err := json.Unmarshal(body, &one); err != nil {
			return Delivery{}, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		if one.SpecVersion == "" {
			return Delivery{}, fmt.Errorf("%w: an Event Grid schema delivery is a JSON array of events", ErrMalformed)
		}
		raw = []wireEvent{one}
	default:
		return Delivery{}, fmt.Errorf("%w: not JSON", ErrMalformed)
	}
	if len(raw) == 0 {
		return Delivery{}, fmt.Errorf("%w: no events", ErrMalformed)
	}
	d := Delivery{Schema: SchemaEventGrid}
	if raw[0].SpecVersion != "" {
		d.Schema = SchemaCloudEvents
	}
	for _, w := range raw {
		if (w.SpecVersion != "") != (d.Schema == SchemaCloudEvents) {
			return Delivery{}, fmt.Errorf("%w: a batch mixes schemas", ErrMalformed)
		}
	}
	for _, w := range raw {
		ev, err := w.event(d.Schema)
		if err != nil {
			d.Malformed++
			continue
		}
		if ev.Type == ValidationEventType {
			if len(raw) != 1 || d.Schema != SchemaEventGrid {
				return Delivery{}, fmt.Errorf("%w: a validation event comes alone, in the Event Grid schema", ErrMalformed)
			}
			var v struct {
				ValidationCode string `json:"validationCode"`
				ValidationURL  string `json:"validationUrl"`
			}
			if err := json.Unmarshal(ev.Data, &v); err != nil || v.ValidationCode == "" {
				return Delivery{}, fmt.Errorf("%w: validation event without a validationCode", ErrMalformed)
			}
			d.Validation = &Validation{Code: v.ValidationCode, URL: v.ValidationURL}
			return d, nil
		}
		d.Events = append(d.Events, ev)
	}
	if len(d.Events) == 0 {
		return Delivery{}, fmt.Errorf("%w: no event of the %s schema in %d", ErrMalformed, d.Schema, d.Malformed)
	}
	return d, nil
}

// event checks one event of the schema and normalizes it.
func (w wireEvent) event(schema Schema) (Event, error) {
	ev := Event{ID: w.ID, Subject: w.Subject, Data: w.Data}
	var when string
	switch schema {
	case SchemaCloudEvents:
		if w.SpecVersion != "1.0" {
			return Event{}, fmt.Errorf("specversion %q, want 1.0", w.SpecVersion)
		}
		ev.Type, ev.Topic, when = w.Type, w.Source, w.Time
		if ev.Topic == "" {
			ev.Topic = w.Topic
		}
	default:
		if w.SpecVersion != "" {
			return Event{}, fmt.Errorf("a batch mixes schemas")
		}
		ev.Type, ev.Topic, when = w.EventType, w.Topic, w.EventTime
	}
	switch {
	case ev.ID == "":
		return Event{}, fmt.Errorf("no id")
	case len(ev.ID) > 128:
		return Event{}, fmt.Errorf("id longer than 128 bytes")
	case ev.Type == "":
		return Event{}, fmt.Errorf("no event type")
	}
	if when != "" {
		t, err := time.Parse(time.RFC3339Nano, when)
		if err != nil {
			return Event{}, fmt.Errorf("time %q: %w", when, err)
		}
		ev.Time = t.UTC()
	}
	return ev, nil
}

// KeyEvent is what a Key Vault key event says.
type KeyEvent struct {
	SubscriptionID string
	ResourceGroup  string
	VaultName      string
	KeyName        string
	// Version is the key version the event is about ("" if not given).
	Version string
}

// keyVaultData is the data of Key Vault's events (Azure sends PascalCase
// names; NBF and EXP as numbers, strings or null).
type keyVaultData struct {
	ID         string          `json:"Id"`
	VaultName  string          `json:"VaultName"`
	ObjectType string          `json:"ObjectType"`
	ObjectName string          `json:"ObjectName"`
	Version    string          `json:"Version"`
	NBF        json.RawMessage `json:"NBF"`
	EXP        json.RawMessage `json:"EXP"`
}

// KeyEvent reads a Key Vault key event: its vault from the topic (a
// vault's resource id), its key from the data (or the subject).
func (e Event) KeyEvent() (KeyEvent, error) {
	sub, rg, vault, err := ParseVaultResourceID(e.Topic)
	if err != nil {
		return KeyEvent{}, err
	}
	var d keyVaultData
	if len(e.Data) > 0 && string(e.Data) != "null" {
		if err := json.Unmarshal(e.Data, &d); err != nil {
			return KeyEvent{}, fmt.Errorf("%w: data: %w", ErrMalformed, err)
		}
	}
	if d.ObjectType != "" && !strings.EqualFold(d.ObjectType, "Key") {
		return KeyEvent{}, fmt.Errorf("%w: object type %q is not a key", ErrMalformed, d.ObjectType)
	}
	if d.VaultName != "" && !strings.EqualFold(d.VaultName, vault) {
		return KeyEvent{}, fmt.Errorf("%w: data names vault %q, topic %q", ErrMalformed, d.VaultName, vault)
	}
	name := strings.TrimSpace(d.ObjectName)
	if name == "" {
		name = e.Subject
	}
	for _, f := range []json.RawMessage{d.NBF, d.EXP} {
		if !validTime(f) {
			return KeyEvent{}, fmt.Errorf("%w: NBF/EXP %s is not a Unix time", ErrMalformed, f)
		}
	}
	return KeyEvent{SubscriptionID: sub, ResourceGroup: rg, VaultName: vault, KeyName: name, Version: strings.TrimSpace(d.Version)}, nil
}

// validTime accepts what Azure sends for NBF and EXP: absent, null, a
// number or a numeric string.
func validTime(raw json.RawMessage) bool {
	s := strings.Trim(string(bytes.TrimSpace(raw)), `"`)
	if len(raw) == 0 || s == "null" || s == "" {
		return true
	}
	_, err := strconv.ParseFloat(s, 64)
	return err == nil
}

// ParseVaultResourceID splits a Key Vault's resource id,
// /subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.KeyVault/vaults/<name>
// (segment names in any case).
func ParseVaultResourceID(id string) (subscriptionID, resourceGroup, vault string, err error) {
	p := strings.Split(strings.Trim(id, "/"), "/")
	if len(p) != 8 || !strings.EqualFold(p[0], "subscriptions") || !strings.EqualFold(p[2], "resourceGroups") ||
		!strings.EqualFold(p[4], "providers") || !strings.EqualFold(p[5], "Microsoft.KeyVault") || !strings.EqualFold(p[6], "vaults") ||
		p[1] == "" || p[3] == "" || p[7] == "" {
		return "", "", "", fmt.Errorf("%w: topic %q is not a Key Vault resource id", ErrMalformed, id)
	}
	return strings.ToLower(p[1]), p[3], p[7], nil
}
