package akvemu

import (
	"bytes"
	"container/heap"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/bits"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// Content types of deliveries.
const (
	contentTypeEventGrid    = "application/json"
	contentTypeCloudEvent   = "application/cloudevents+json; charset=utf-8"
	contentTypeCloudEvents  = "application/cloudevents-batch+json; charset=utf-8"
	webhookRequestOrigin    = "eventgrid.azure.net"
	maxWebhookAnswerBytes   = 64 << 10
	validationSuccessAnswer = "Webhook successfully validated as a subscription endpoint."
)

// eventRecord is one published event, shared by the subscriptions it matches.
type eventRecord struct {
	id      string
	typ     EventType
	time    time.Time
	topic   string // ARM id of the vault
	subject string // key name
	data    json.RawMessage
}

// keyEventData is the data of a Key Vault event (Azure's field names).
type keyEventData struct {
	ID         string `json:"Id"`
	VaultName  string `json:"VaultName"`
	ObjectType string `json:"ObjectType"`
	ObjectName string `json:"ObjectName"`
	Version    string `json:"Version"`
	NBF        *int64 `json:"NBF"`
	EXP        *int64 `json:"EXP"`
}

// eventGridEvent is an event in Event Grid's schema.
type eventGridEvent struct {
	ID              string          `json:"id"`
	Topic           string          `json:"topic"`
	Subject         string          `json:"subject"`
	EventType       string          `json:"eventType"`
	EventTime       string          `json:"eventTime"`
	Data            json.RawMessage `json:"data"`
	DataVersion     string          `json:"dataVersion"`
	MetadataVersion string          `json:"metadataVersion"`
}

// cloudEvent is an event in CloudEvents 1.0 structured mode.
type cloudEvent struct {
	SpecVersion string          `json:"specversion"`
	ID          string          `json:"id"`
	Source      string          `json:"source"`
	Subject     string          `json:"subject"`
	Type        string          `json:"type"`
	Time        string          `json:"time"`
	Data        json.RawMessage `json:"data"`
}

// eventHub publishes Key Vault events to the event subscriptions.
type eventHub struct {
	e      *Emulator
	cfg    EventDeliveryConfig // with defaults
	client *http.Client
	own    *http.Transport // closed with the hub when the hub built it
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	subs   map[string]*eventSub // by lower-case name
	closed bool
	list   atomic.Pointer[[]*eventSub] // snapshot for publish

	expiry *expiryTracker
}

func newEventHub(e *Emulator, cfg EventDeliveryConfig) *eventHub {
	cfg = cfg.withDefaults()
	h := &eventHub{e: e, cfg: cfg, subs: map[string]*eventSub{}}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	h.client = cfg.HTTPClient
	if h.client == nil {
		pool := cfg.RootCAs
		if pool == nil {
			if sys, err := x509.SystemCertPool(); err == nil {
				pool = sys
			} else {
				pool = x509.NewCertPool()
			}
			pool.AppendCertsFromPEM(e.ca.caPEM)
		}
		h.own = &http.Transport{
			TLSClientConfig:       &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout:   10 * time.Second,
			MaxIdleConnsPerHost:   cfg.Workers,
			IdleConnTimeout:       90 * time.Second,
			ResponseHeaderTimeout: cfg.Timeout,
		}
		h.client = &http.Client{
			Transport:     h.own,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	h.expiry = newExpiryTracker(h)
	return h
}

// close stops every subscription and the expiry timer and waits for their goroutines.
func (h *eventHub) close() {
	if h == nil {
		return
	}
	h.mu.Lock()
	h.closed = true
	subs := make([]*eventSub, 0, len(h.subs))
	for _, s := range h.subs {
		subs = append(subs, s)
	}
	h.subs = map[string]*eventSub{}
	h.list.Store(nil)
	h.mu.Unlock()
	h.cancel()
	for _, s := range subs {
		s.close()
	}
	h.expiry.stop()
	if h.own != nil {
		h.own.CloseIdleConnections()
	}
}

// storeListLocked refreshes the publish snapshot; the caller holds h.mu.
func (h *eventHub) storeListLocked() {
	l := make([]*eventSub, 0, len(h.subs))
	for _, s := range h.subs {
		l = append(l, s)
	}
	h.list.Store(&l)
}

// add registers a subscription (replacing one of the same name) and runs its
// validation handshake. It returns once the handshake answered: the subscription
// may still await manual validation.
func (h *eventHub) add(ctx context.Context, spec EventSubscription) (*eventSub, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	s, err := h.newSub(spec.normalized())
	if err != nil {
		return nil, err
	}
	ln := lower(spec.Name)
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, ErrClosed
	}
	old := h.subs[ln]
	if old == nil && len(h.subs) >= MaxEventSubscriptions {
		h.mu.Unlock()
		return nil, badParam(fmt.Sprintf("at most %d event subscriptions", MaxEventSubscriptions))
	}
	h.subs[ln] = s
	h.storeListLocked()
	h.mu.Unlock()
	if old != nil {
		old.close()
	}
	h.expiry.activate()
	s.handshake(ctx)
	return s, nil
}

// remove stops and forgets a subscription.
func (h *eventHub) remove(name string) error {
	ln := lower(name)
	h.mu.Lock()
	s := h.subs[ln]
	if s != nil {
		delete(h.subs, ln)
		h.storeListLocked()
	}
	h.mu.Unlock()
	if s == nil {
		return fmt.Errorf("%w: %s", ErrEventSubscriptionNotFound, name)
	}
	s.close()
	return nil
}

func (h *eventHub) get(name string) *eventSub {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.subs[lower(name)]
}

func (h *eventHub) statuses() []EventSubscriptionStatus {
	l := h.list.Load()
	if l == nil {
		return []EventSubscriptionStatus{}
	}
	out := make([]EventSubscriptionStatus, 0, len(*l))
	for _, s := range *l {
		out = append(out, s.status())
	}
	slices.SortFunc(out, func(a, b EventSubscriptionStatus) int { return strings.Compare(lower(a.Name), lower(b.Name)) })
	return out
}

// keyCreated publishes KeyNewVersionCreated for a version created at run time (not
// by seeding) and schedules its expiry events.
func (h *eventHub) keyCreated(v *Vault, kv *keyVersion) {
	if h == nil {
		return
	}
	h.publish(v, kv, EventKeyNewVersionCreated)
	if kv.exp != 0 {
		h.expiry.schedule(v, kv)
	}
}

// expiryChanged schedules the expiry events of a version whose exp may have changed
// (an update) or that came back (a recovery).
func (h *eventHub) expiryChanged(v *Vault, kv *keyVersion) {
	if h == nil || kv.exp == 0 {
		return
	}
	h.expiry.schedule(v, kv)
}

// publish queues an event for every matching subscription and returns how many
// took it. Managed HSM pools publish nothing.
func (h *eventHub) publish(v *Vault, kv *keyVersion, typ EventType) int {
	if h == nil || v.kind != KindVault {
		return 0
	}
	l := h.list.Load()
	if l == nil || len(*l) == 0 {
		return 0
	}
	var rec *eventRecord
	n := 0
	for _, s := range *l {
		if !s.accepts(v.lname, typ) {
			continue
		}
		if rec == nil {
			rec = newEventRecord(v, kv, typ)
		}
		if s.enqueue(rec) {
			n++
		}
	}
	return n
}

func newEventRecord(v *Vault, kv *keyVersion, typ EventType) *eventRecord {
	d := keyEventData{
		ID: v.url + "/keys/" + kv.name + "/" + kv.version, VaultName: v.name, ObjectType: "Key",
		ObjectName: kv.name, Version: kv.version,
	}
	if kv.nbf != 0 {
		n := kv.nbf
		d.NBF = &n
	}
	if kv.exp != 0 {
		x := kv.exp
		d.EXP = &x
	}
	b, _ := json.Marshal(d) // plain strings and integers: cannot fail
	return &eventRecord{id: uuid.NewString(), typ: typ, time: time.Now().UTC(), topic: v.ResourceID(), subject: kv.name, data: b}
}

// retryDelay is the wait after the attempt-th failed attempt: the schedule's entry
// with ±10 % jitter, at least retryAfter.
func (h *eventHub) retryDelay(attempt int, retryAfter time.Duration) time.Duration {
	sched := h.cfg.RetrySchedule
	base := sched[min(attempt, len(sched))-1]
	d := time.Duration(float64(base) * (1 + eventRetryJitter*(2*mrand.Float64()-1))) // #nosec G404 -- retry jitter, not a secret
	return max(d, retryAfter)
}

// ---- subscriptions ----

const (
	typeBitNewVersion = 1 << iota
	typeBitNearExpiry
	typeBitExpired
)

func typeBit(t EventType) uint8 {
	switch t {
	case EventKeyNewVersionCreated:
		return typeBitNewVersion
	case EventKeyNearExpiry:
		return typeBitNearExpiry
	case EventKeyExpired:
		return typeBitExpired
	}
	return 0
}

// delivery is a batch of events delivered (and retried) together.
type delivery struct {
	events   []*eventRecord
	attempt  int       // failed attempts so far: the aeg-delivery-count of the next try
	first    time.Time // publication of the oldest event (EventTTL)
	due      time.Time // next try (retries)
	heapSlot           // in the retry heap
}

// dueAt implements dueItem.
func (d *delivery) dueAt() time.Time { return d.due }

// eventSub is a running event subscription: its handshake state, its bounded queue
// (events ready to send plus deliveries waiting for a retry), one scheduler and a
// fixed number of delivery workers, started once validated.
type eventSub struct {
	hub     *eventHub
	spec    EventSubscription // normalized; never mutated
	types   uint8
	vaults  map[string]bool // lower-case names; nil = every vault
	created time.Time
	code    string // validationCode
	token   string // validation URL token
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	wake    chan struct{}
	work    chan *delivery
	active  atomic.Bool // Succeeded and not closed

	mu      sync.Mutex
	state   ProvisioningState
	reason  string
	manual  bool // the validation URL was visited during the handshake
	settled chan struct{}
	vtimer  *time.Timer
	ready   []*eventRecord
	retry   dueHeap[*delivery]

	published, delivered, attempts, failed, retried, dropped, overflow, pending atomic.Int64
}

func (h *eventHub) newSub(spec EventSubscription) (*eventSub, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("validation code: %w", err)
	}
	s := &eventSub{
		hub: h, spec: spec, created: time.Now().UTC(),
		code: uuid.NewString(), token: hex.EncodeToString(raw),
		wake: make(chan struct{}, 1), work: make(chan *delivery),
		state: EventSubscriptionCreating, settled: make(chan struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(h.ctx)
	for _, t := range spec.IncludedEventTypes {
		s.types |= typeBit(t)
	}
	if len(spec.Vaults) > 0 {
		s.vaults = make(map[string]bool, len(spec.Vaults))
		for _, v := range spec.Vaults {
			s.vaults[lower(v)] = true
		}
	}
	return s, nil
}

func (s *eventSub) accepts(vault string, typ EventType) bool {
	return s.active.Load() && s.types&typeBit(typ) != 0 && (s.vaults == nil || s.vaults[vault])
}

// enqueue queues an event unless the queue is full (counted as dropped).
func (s *eventSub) enqueue(rec *eventRecord) bool {
	s.published.Add(1)
	if s.pending.Add(1) > int64(s.hub.cfg.QueueSize) {
		s.pending.Add(-1)
		s.dropped.Add(1)
		if n := s.overflow.Add(1); n&(n-1) == 0 { // at 1, 2, 4, 8, …: bounded logging
			s.hub.e.log.Warn().Str("event_subscription", s.spec.Name).Int64("overflowed", n).
				Int("queue_size", s.hub.cfg.QueueSize).Msg("event queue full: event dropped")
		}
		return false
	}
	s.mu.Lock()
	s.ready = append(s.ready, rec)
	s.mu.Unlock()
	s.poke()
	return true
}

func (s *eventSub) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// close stops the goroutines and forgets pending events; it waits for the workers.
func (s *eventSub) close() {
	s.mu.Lock()
	s.active.Store(false)
	s.cancel()
	if s.vtimer != nil {
		s.vtimer.Stop()
	}
	if s.state == EventSubscriptionCreating || s.state == EventSubscriptionAwaitingManualAction {
		s.settleLocked(EventSubscriptionFailed, "event subscription removed")
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// settleLocked ends the handshake; Succeeded starts delivery. The caller holds s.mu.
func (s *eventSub) settleLocked(state ProvisioningState, reason string) {
	if s.state == EventSubscriptionSucceeded || s.state == EventSubscriptionFailed {
		return
	}
	s.state, s.reason = state, reason
	if s.vtimer != nil {
		s.vtimer.Stop()
	}
	close(s.settled)
	log := s.hub.e.log
	if state == EventSubscriptionFailed {
		log.Warn().Str("event_subscription", s.spec.Name).Str("endpoint", redactURL(s.spec.Endpoint)).Str("reason", reason).Msg("event subscription validation failed")
		return
	}
	if s.ctx.Err() != nil {
		return
	}
	s.active.Store(true)
	s.wg.Add(1 + s.hub.cfg.Workers)
	go s.schedule()
	for i := 0; i < s.hub.cfg.Workers; i++ {
		go s.worker()
	}
	log.Info().Str("event_subscription", s.spec.Name).Str("endpoint", redactURL(s.spec.Endpoint)).Str("schema", string(s.spec.Schema)).Msg("event subscription validated")
}

func (s *eventSub) status() EventSubscriptionStatus {
	s.mu.Lock()
	st := EventSubscriptionStatus{
		EventSubscription: s.spec.masked(), ProvisioningState: s.state, Reason: s.reason, CreatedAt: s.created,
	}
	if s.state == EventSubscriptionAwaitingManualAction {
		st.ValidationURL = s.validationURL()
	}
	s.mu.Unlock()
	st.Counters = EventDeliveryCounters{
		Published: s.published.Load(), Delivered: s.delivered.Load(), Attempts: s.attempts.Load(),
		FailedAttempts: s.failed.Load(), Retried: s.retried.Load(), Dropped: s.dropped.Load(),
		QueueOverflow: s.overflow.Load(), Pending: s.pending.Load(),
	}
	return st
}

// validationURL is the manual validation URL on the admin API ("" without one).
func (s *eventSub) validationURL() string {
	if s.hub.e.adminURL == "" {
		return ""
	}
	return s.hub.e.adminURL + "/admin/event-subscriptions/" + url.PathEscape(s.spec.Name) + "/validate?token=" + s.token
}

// validateManually completes the handshake through the validation URL.
func (s *eventSub) validateManually(token string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if subtle.ConstantTimeCompare([]byte(token), []byte(s.token)) != 1 {
		return badParam("invalid validation token")
	}
	if time.Since(s.created) > s.hub.cfg.ValidationTimeout && s.state != EventSubscriptionSucceeded {
		s.settleLocked(EventSubscriptionFailed, "the validation URL expired")
	}
	switch s.state {
	case EventSubscriptionCreating:
		s.manual = true
	case EventSubscriptionAwaitingManualAction:
		s.settleLocked(EventSubscriptionSucceeded, "")
	case EventSubscriptionFailed:
		return badParam("event subscription " + s.spec.Name + " is Failed: " + s.reason)
	}
	return nil
}

// setHeaders adds the delivery headers and the Entra ID token.
func (s *eventSub) setHeaders(req *http.Request) error {
	for k, v := range s.spec.DeliveryHeaders {
		req.Header.Set(k, v)
	}
	if s.spec.AADAudience != "" {
		tok, err := s.hub.e.tokens.mintAppToken(EventGridAppID, s.spec.AADAudience)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	return nil
}

// handshake runs the validation handshake and settles the state (or leaves it
// AwaitingManualAction).
func (s *eventSub) handshake(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, s.hub.cfg.Timeout)
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel)
	defer stop()
	var err error
	var answer string
	ok := false
	if s.spec.Schema == SchemaCloudEvents {
		ok, answer, err = s.cloudEventsHandshake(ctx)
	} else {
		ok, answer, err = s.eventGridHandshake(ctx)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != EventSubscriptionCreating {
		return // removed (Failed) meanwhile
	}
	switch {
	case ok || s.manual:
		s.settleLocked(EventSubscriptionSucceeded, "")
	case err != nil:
		s.settleLocked(EventSubscriptionFailed, "validation handshake: "+err.Error())
	case answer != "":
		s.settleLocked(EventSubscriptionFailed, "validation handshake: "+answer)
	default: // acknowledged without the code: manual validation
		left := s.hub.cfg.ValidationTimeout - time.Since(s.created)
		if left <= 0 || s.validationURL() == "" {
			s.settleLocked(EventSubscriptionFailed, "validation handshake: the webhook did not return the validation code")
			return
		}
		s.state = EventSubscriptionAwaitingManualAction
		s.reason = "the webhook acknowledged the validation event without the validation code: GET the validation URL within " + left.Round(time.Second).String()
		s.vtimer = time.AfterFunc(left, func() {
			s.mu.Lock()
			s.settleLocked(EventSubscriptionFailed, "the validation URL expired")
			s.mu.Unlock()
		})
	}
}

// eventGridHandshake posts the SubscriptionValidationEvent. ok: validated by the
// answer; answer non-empty: refused; both zero: acknowledged without the code.
func (s *eventSub) eventGridHandshake(ctx context.Context) (ok bool, answer string, err error) {
	topic := ""
	for _, v := range s.hub.e.Vaults() {
		if v.kind == KindVault && (s.vaults == nil || s.vaults[v.lname]) {
			topic = v.ResourceID()
			break
		}
	}
	data, _ := json.Marshal(map[string]string{"validationCode": s.code, "validationUrl": s.validationURL()})
	body, _ := json.Marshal([]eventGridEvent{{
		ID: uuid.NewString(), Topic: topic, Subject: "", EventType: subscriptionValidationEventType,
		EventTime: time.Now().UTC().Format(time.RFC3339Nano), Data: data, DataVersion: "1", MetadataVersion: "1",
	}})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.spec.Endpoint, bytes.NewReader(body))
	if err != nil {
		return false, "", err
	}
	req.Header.Set("Content-Type", contentTypeEventGrid)
	req.Header.Set("aeg-event-type", "SubscriptionValidation")
	req.Header.Set("aeg-subscription-name", s.spec.Name)
	req.Header.Set("aeg-delivery-count", "0")
	req.Header.Set("aeg-data-version", "1")
	req.Header.Set("aeg-metadata-version", "1")
	if err := s.setHeaders(req); err != nil {
		return false, "", err
	}
	resp, err := s.hub.client.Do(req)
	if err != nil {
		return false, "", fmt.Errorf("POST %s: %w", redactURL(s.spec.Endpoint), unwrapURLError(err))
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxWebhookAnswerBytes))
	_ = resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		var r struct {
			ValidationResponse string `json:"validationResponse"`
		}
		if json.Unmarshal(b, &r) == nil && r.ValidationResponse != "" {
			if subtle.ConstantTimeCompare([]byte(r.ValidationResponse), []byte(s.code)) == 1 {
				return true, "", nil
			}
			return false, "the webhook returned a wrong validationResponse", nil
		}
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return false, "", nil
	}
	return false, fmt.Sprintf("the webhook answered %d %s", resp.StatusCode, snippet(b)), nil
}

// cloudEventsHandshake sends the CloudEvents abuse-protection OPTIONS request.
func (s *eventSub) cloudEventsHandshake(ctx context.Context) (ok bool, answer string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodOptions, s.spec.Endpoint, nil)
	if err != nil {
		return false, "", err
	}
	req.Header.Set("WebHook-Request-Origin", webhookRequestOrigin)
	if err := s.setHeaders(req); err != nil {
		return false, "", err
	}
	resp, err := s.hub.client.Do(req)
	if err != nil {
		return false, "", fmt.Errorf("OPTIONS %s: %w", redactURL(s.spec.Endpoint), unwrapURLError(err))
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxWebhookAnswerBytes))
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		return false, fmt.Sprintf("the webhook answered OPTIONS with %d %s", resp.StatusCode, snippet(b)), nil
	}
	allowed := strings.TrimSpace(resp.Header.Get("WebHook-Allowed-Origin"))
	if allowed != "*" && !strings.EqualFold(allowed, webhookRequestOrigin) {
		return false, fmt.Sprintf("the webhook answered OPTIONS with %d but WebHook-Allowed-Origin %q (want %s or *)", resp.StatusCode, allowed, webhookRequestOrigin), nil
	}
	return true, "", nil
}

// schedule hands ready events (in batches) and due retries to the workers.
func (s *eventSub) schedule() {
	defer s.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	maxBatch := s.spec.MaxEventsPerBatch
	for {
		s.mu.Lock()
		now := time.Now()
		var next *delivery
		fromReady := 0
		wait := time.Duration(-1)
		switch {
		case len(s.retry) > 0 && !s.retry[0].due.After(now):
			next = s.retry[0]
		case len(s.ready) > 0:
			fromReady = min(len(s.ready), maxBatch)
			next = &delivery{events: slices.Clone(s.ready[:fromReady]), first: s.ready[0].time, heapSlot: heapSlot{index: -1}}
		}
		if next == nil && len(s.retry) > 0 {
			wait = s.retry[0].due.Sub(now)
		}
		s.mu.Unlock()
		var out chan<- *delivery
		if next != nil {
			out = s.work
		}
		var tc <-chan time.Time
		if wait >= 0 {
			timer.Reset(wait)
			tc = timer.C
		}
		select {
		case out <- next:
			s.mu.Lock()
			if fromReady > 0 {
				clear(s.ready[:fromReady])
				s.ready = s.ready[fromReady:]
				if len(s.ready) == 0 {
					s.ready = nil // let the backing array go
				}
			} else if next.index >= 0 {
				heap.Remove(&s.retry, next.index)
			}
			s.mu.Unlock()
		case <-s.wake:
		case <-tc:
		case <-s.ctx.Done():
			return
		}
		timer.Stop()
	}
}

func (s *eventSub) worker() {
	defer s.wg.Done()
	for {
		select {
		case d := <-s.work:
			s.deliver(d)
		case <-s.ctx.Done():
			return
		}
	}
}

// noRetryStatus reports the statuses Event Grid drops (or dead-letters) at once.
func noRetryStatus(status int) bool {
	switch status {
	case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusRequestEntityTooLarge:
		return true
	}
	return false
}

// deliver sends one batch and counts, retries or drops it.
func (s *eventSub) deliver(d *delivery) {
	status, retryAfter, err := s.send(d)
	if s.ctx.Err() != nil {
		return // removed or closing: pending events go with the subscription
	}
	s.attempts.Add(1)
	n := int64(len(d.events))
	if err == nil && status >= 200 && status <= 204 {
		s.delivered.Add(n)
		s.pending.Add(-n)
		return
	}
	s.failed.Add(1)
	why := ""
	if err != nil {
		why = err.Error()
	} else {
		why = "status " + strconv.Itoa(status)
	}
	if err == nil && noRetryStatus(status) {
		s.drop(d, why+" is not retried")
		return
	}
	d.attempt++
	if d.attempt >= s.hub.cfg.MaxAttempts {
		s.drop(d, why+": max attempts reached")
		return
	}
	due := time.Now().Add(s.hub.retryDelay(d.attempt, retryAfter))
	if due.Sub(d.first) > s.hub.cfg.EventTTL {
		s.drop(d, why+": event time to live reached")
		return
	}
	d.due = due
	s.retried.Add(n)
	s.hub.e.log.Debug().Str("event_subscription", s.spec.Name).Int("attempt", d.attempt).Str("error", why).
		Time("next_attempt", due).Msg("event delivery failed: retrying")
	s.mu.Lock()
	heap.Push(&s.retry, d)
	s.mu.Unlock()
	s.poke()
}

func (s *eventSub) drop(d *delivery, why string) {
	n := int64(len(d.events))
	s.pending.Add(-n)
	total := s.dropped.Add(n)
	if bits.Len64(uint64(total-n)) != bits.Len64(uint64(total)) { // crossed a power of two: bounded logging
		s.hub.e.log.Warn().Str("event_subscription", s.spec.Name).Int("events", len(d.events)).Int64("dropped", total).
			Int("attempts", d.attempt+1).Str("reason", why).Msg("event delivery given up: events dropped")
	}
}

// send makes one delivery request: the HTTP status (0 on error) and the Retry-After
// of a 429 or 503.
func (s *eventSub) send(d *delivery) (int, time.Duration, error) {
	body, ctype, err := s.body(d)
	if err != nil {
		return 0, 0, err
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.hub.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.spec.Endpoint, bytes.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("aeg-event-type", "Notification")
	req.Header.Set("aeg-subscription-name", s.spec.Name)
	req.Header.Set("aeg-delivery-count", strconv.Itoa(d.attempt))
	if s.spec.Schema == SchemaCloudEvents {
		req.Header.Set("aeg-metadata-version", "1.0")
	} else {
		req.Header.Set("aeg-data-version", "1")
		req.Header.Set("aeg-metadata-version", "1")
	}
	if len(d.events) == 1 {
		req.Header.Set("aeg-output-event-id", d.events[0].id)
	}
	if err := s.setHeaders(req); err != nil {
		return 0, 0, err
	}
	resp, err := s.hub.client.Do(req)
	if err != nil {
		return 0, 0, unwrapURLError(err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxWebhookAnswerBytes))
	_ = resp.Body.Close()
	var ra time.Duration
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		ra = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return resp.StatusCode, ra, nil
}

// body renders a batch in the subscription's schema.
func (s *eventSub) body(d *delivery) ([]byte, string, error) {
	if s.spec.Schema == SchemaCloudEvents {
		evs := make([]cloudEvent, len(d.events))
		for i, r := range d.events {
			evs[i] = cloudEvent{SpecVersion: "1.0", ID: r.id, Source: r.topic, Subject: r.subject, Type: string(r.typ),
				Time: r.time.Format(time.RFC3339Nano), Data: r.data}
		}
		if s.spec.MaxEventsPerBatch == 1 {
			b, err := json.Marshal(evs[0])
			return b, contentTypeCloudEvent, err
		}
		b, err := json.Marshal(evs)
		return b, contentTypeCloudEvents, err
	}
	evs := make([]eventGridEvent, len(d.events))
	for i, r := range d.events {
		evs[i] = eventGridEvent{ID: r.id, Topic: r.topic, Subject: r.subject, EventType: string(r.typ),
			EventTime: r.time.Format(time.RFC3339Nano), Data: r.data, DataVersion: "1", MetadataVersion: "1"}
	}
	b, err := json.Marshal(evs)
	return b, contentTypeEventGrid, err
}

// parseRetryAfter reads delay-seconds or an HTTP date; 0 when absent or invalid.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil {
		if n < 0 {
			return 0
		}
		return time.Duration(min(n, 86400)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), 24*time.Hour)
	}
	return 0
}

// unwrapURLError drops *url.Error's "Post <url>:" prefix (the URL may carry secrets).
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// redactURL drops the query and user info of a webhook URL for logs (they may
// carry a code or a secret).
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid URL)"
	}
	u.User = nil
	if u.RawQuery != "" {
		u.RawQuery = "redacted"
	}
	return u.String()
}

// snippet returns the start of a webhook's answer for messages.
func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	if s == "" {
		return "(empty body)"
	}
	return strconv.Quote(s)
}

// ---- Go API ----

// AddEventSubscription adds (or replaces) an event subscription and runs Event
// Grid's validation handshake with its endpoint. It returns nil once the subscription
// is validated and delivering; an error wrapping ErrEventSubscriptionFailed with the
// webhook's answer when the handshake fails (the subscription then stays, Failed,
// and delivers nothing); ErrBadParameter for an invalid spec. When the webhook
// acknowledges the Event Grid validation event without the code, it waits until the
// validation URL is visited, the validation timeout passes or ctx is done.
func (e *Emulator) AddEventSubscription(ctx context.Context, spec EventSubscription) error {
	if e.closed.Load() {
		return ErrClosed
	}
	s, err := e.events.add(ctx, spec)
	if err != nil {
		return fmt.Errorf("add event subscription: %w", err)
	}
	select {
	case <-s.settled:
	case <-ctx.Done():
		return fmt.Errorf("add event subscription %s: awaiting manual validation: %w", spec.Name, ctx.Err())
	}
	if st := s.status(); st.ProvisioningState != EventSubscriptionSucceeded {
		return fmt.Errorf("add event subscription %s: %w: %s", spec.Name, ErrEventSubscriptionFailed, st.Reason)
	}
	return nil
}

// EventSubscription returns an event subscription's state and counters.
func (e *Emulator) EventSubscription(name string) (EventSubscriptionStatus, bool) {
	s := e.events.get(name)
	if s == nil {
		return EventSubscriptionStatus{}, false
	}
	return s.status(), true
}

// EventSubscriptions returns every event subscription by name.
func (e *Emulator) EventSubscriptions() []EventSubscriptionStatus { return e.events.statuses() }

// RemoveEventSubscription stops an event subscription; its pending events are
// discarded.
func (e *Emulator) RemoveEventSubscription(name string) error { return e.events.remove(name) }

// PublishKeyEvent publishes a key event now for a key version (empty: the latest),
// whatever its dates: tests trigger KeyNearExpiry or KeyExpired with it instead of
// waiting. It returns the number of subscriptions that queued the event.
func (e *Emulator) PublishKeyEvent(vault, key, version string, typ EventType) (int, error) {
	if typeBit(typ) == 0 {
		return 0, badParam(fmt.Sprintf("event type %q is not a Key Vault key event", typ))
	}
	v, err := e.vault(vault)
	if err != nil {
		return 0, err
	}
	kv, err := v.getVersion(key, version)
	if err != nil {
		return 0, err
	}
	switch typ {
	case EventKeyNearExpiry:
		kv.markSent(sentNearExpiry)
	case EventKeyExpired:
		kv.markSent(sentExpired)
	}
	return e.events.publish(v, kv, typ), nil
}
