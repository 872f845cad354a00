package akvemu_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/akvsync/akvsync/pkg/akvemu"
)

// hookReq is one request a webhook received.
type hookReq struct {
	Method string
	Header http.Header
	Body   []byte
	At     time.Time
}

func (r hookReq) notification() bool {
	return r.Method == http.MethodPost && r.Header.Get("aeg-event-type") == "Notification"
}

// hook is a real HTTPS webhook (the subscriber) that records every request. By
// default it answers the Event Grid validation event with the code, the
// CloudEvents OPTIONS request with the origin, and notifications with 200.
type hook struct {
	t   testing.TB
	srv *httptest.Server

	mu   sync.Mutex
	reqs []hookReq
	// validate answers the validation event (code, url): status and body.
	validate func(code, url string) (int, string)
	// allowOrigin is the WebHook-Allowed-Origin answer ("" for none).
	allowOrigin func(origin string) string
	// answer decides a notification's status and headers; n counts notifications from 0.
	answer func(n int, r hookReq) (int, http.Header)
	// hold, when set, makes notifications wait until it is closed.
	hold chan struct{}
	n    int
}

// newHook starts a webhook; opts adjust its answers before it serves.
func newHook(t testing.TB, opts ...func(*hook)) *hook {
	h := &hook{t: t,
		validate: func(code, _ string) (int, string) {
			b, _ := json.Marshal(map[string]string{"validationResponse": code})
			return http.StatusOK, string(b)
		},
		allowOrigin: func(origin string) string { return origin },
		answer:      func(int, hookReq) (int, http.Header) { return http.StatusOK, nil },
	}
	for _, o := range opts {
		o(h)
	}
	h.srv = httptest.NewTLSServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hook) serve(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	req := hookReq{Method: r.Method, Header: r.Header.Clone(), Body: b, At: time.Now()}
	h.mu.Lock()
	h.reqs = append(h.reqs, req)
	validate, allow, answer, hold := h.validate, h.allowOrigin, h.answer, h.hold
	n := -1
	if req.notification() {
		n = h.n
		h.n++
	}
	h.mu.Unlock()
	switch {
	case r.Method == http.MethodOptions:
		if o := allow(r.Header.Get("WebHook-Request-Origin")); o != "" {
			w.Header().Set("WebHook-Allowed-Origin", o)
		}
		w.WriteHeader(http.StatusOK)
	case r.Header.Get("aeg-event-type") == "SubscriptionValidation":
		var evs []struct {
			EventType string `json:"eventType"`
			Data      struct {
				ValidationCode string `json:"validationCode"`
				ValidationURL  string `json:"validationUrl"`
			} `json:"data"`
		}
		if err := json.Unmarshal(b, &evs); err != nil || len(evs) != 1 {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		status, body := validate(evs[0].Data.ValidationCode, evs[0].Data.ValidationURL)
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	default:
		if hold != nil {
			select {
			case <-hold:
			case <-r.Context().Done():
				return
			}
		}
		status, hdr := answer(n, req)
		for k, v := range hdr {
			w.Header()[k] = v
		}
		w.WriteHeader(status)
	}
}

// set changes the hook's answers while it serves.
func (h *hook) set(fn func(*hook)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	fn(h)
}

func (h *hook) url() string { return h.srv.URL + "/api/v1/cckm/azure/event-grid" }

func (h *hook) all() []hookReq {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.reqs)
}

func (h *hook) notifications() []hookReq {
	var out []hookReq
	for _, r := range h.all() {
		if r.notification() {
			out = append(out, r)
		}
	}
	return out
}

// waitNotifications waits until at least n notifications arrived.
func (h *hook) waitNotifications(n int) []hookReq {
	h.t.Helper()
	eventually(h.t, 15*time.Second, strconv.Itoa(n)+" notifications", func() bool { return len(h.notifications()) >= n })
	return h.notifications()
}

// egEvent is an Event Grid schema event as a subscriber decodes it.
type egEvent struct {
	ID              string      `json:"id"`
	Topic           string      `json:"topic"`
	Subject         string      `json:"subject"`
	EventType       string      `json:"eventType"`
	EventTime       string      `json:"eventTime"`
	Data            kvEventData `json:"data"`
	DataVersion     string      `json:"dataVersion"`
	MetadataVersion string      `json:"metadataVersion"`
}

type kvEventData struct {
	ID         string `json:"Id"`
	VaultName  string `json:"VaultName"`
	ObjectType string `json:"ObjectType"`
	ObjectName string `json:"ObjectName"`
	Version    string `json:"Version"`
	NBF        *int64 `json:"NBF"`
	EXP        *int64 `json:"EXP"`
}

// ceEvent is a CloudEvents 1.0 event.
type ceEvent struct {
	SpecVersion string      `json:"specversion"`
	ID          string      `json:"id"`
	Source      string      `json:"source"`
	Subject     string      `json:"subject"`
	Type        string      `json:"type"`
	Time        string      `json:"time"`
	Data        kvEventData `json:"data"`
}

func decodeEG(t testing.TB, r hookReq) []egEvent {
	t.Helper()
	var evs []egEvent
	if err := json.Unmarshal(r.Body, &evs); err != nil {
		t.Fatalf("Event Grid body %s: %v", r.Body, err)
	}
	return evs
}

func allEG(t testing.TB, reqs []hookReq) []egEvent {
	t.Helper()
	var out []egEvent
	for _, r := range reqs {
		out = append(out, decodeEG(t, r)...)
	}
	return out
}

// hookPool trusts every httptest TLS server (they share one certificate).
func hookPool(h *hook) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(h.srv.Certificate())
	return p
}

// setupEvents starts an emulator whose deliveries trust the hook's certificate and
// retry after 20 ms and 40 ms.
func setupEvents(t *testing.T, h *hook, mutate ...func(*akvemu.Config)) *akvemu.Emulator {
	t.Helper()
	return setup(t, append([]func(*akvemu.Config){func(c *akvemu.Config) {
		c.EventDelivery = akvemu.EventDeliveryConfig{
			RootCAs:       hookPool(h),
			RetrySchedule: []time.Duration{20 * time.Millisecond, 40 * time.Millisecond},
		}
	}}, mutate...)...)
}

func subStatus(t testing.TB, e *akvemu.Emulator, name string) akvemu.EventSubscriptionStatus {
	t.Helper()
	st, ok := e.EventSubscription(name)
	if !ok {
		t.Fatalf("event subscription %s missing", name)
	}
	return st
}

func TestEventGridSchemaNewVersions(t *testing.T) {
	h := newHook(t)
	e := setupEvents(t, h)
	v := addVault(t, e, akvemu.VaultSpec{Name: "evt", Keys: 40, ResourceGroup: "rg-events",
		KeySpecs: []akvemu.NamedKeySpec{{Name: "seeded", KeySpec: akvemu.KeySpec{Kty: akvemu.KtyEC}}}})
	other := addVault(t, e, akvemu.VaultSpec{Name: "evt-other"})
	pool := addVault(t, e, akvemu.VaultSpec{Name: "evt-pool", Kind: akvemu.KindManagedHSM})
	ctx := context.Background()

	secret := "s3cr3t-webhook-value"
	err := e.AddEventSubscription(ctx, akvemu.EventSubscription{
		Name: "akvsync", Endpoint: h.url(), Schema: akvemu.SchemaEventGrid,
		Vaults:          []string{"EVT", "evt-pool"},
		DeliveryHeaders: map[string]string{"X-Akvsync-Webhook-Secret": secret},
	})
	if err != nil {
		t.Fatalf("add subscription: %v", err)
	}
	st := subStatus(t, e, "akvsync")
	if st.ProvisioningState != akvemu.EventSubscriptionSucceeded || st.Schema != akvemu.SchemaEventGrid ||
		len(st.IncludedEventTypes) != 3 || st.MaxEventsPerBatch != 1 {
		t.Fatalf("status %+v", st)
	}

	t.Run("the handshake is a validation event with the delivery headers", func(t *testing.T) {
		reqs := h.all()
		if len(reqs) != 1 {
			t.Fatalf("%d requests before any key change, want the handshake only", len(reqs))
		}
		r := reqs[0]
		if r.Method != http.MethodPost || r.Header.Get("aeg-event-type") != "SubscriptionValidation" ||
			r.Header.Get("aeg-subscription-name") != "akvsync" || r.Header.Get("aeg-delivery-count") != "0" ||
			r.Header.Get("X-Akvsync-Webhook-Secret") != secret || r.Header.Get("Authorization") != "" {
			t.Errorf("handshake %s headers %v", r.Method, r.Header)
		}
		var evs []struct {
			Topic, EventType string
			Data             map[string]string
		}
		if err := json.Unmarshal(r.Body, &evs); err != nil || len(evs) != 1 {
			t.Fatalf("validation body %s: %v", r.Body, err)
		}
		if evs[0].EventType != "Microsoft.EventGrid.SubscriptionValidationEvent" || evs[0].Topic != v.ResourceID() ||
			evs[0].Data["validationCode"] == "" || !strings.HasPrefix(evs[0].Data["validationUrl"], e.AdminURL()+"/admin/event-subscriptions/akvsync/validate?token=") {
			t.Errorf("validation event %+v", evs[0])
		}
	})

	c := newClient(t, e, v, nil)
	var created, rotated azkeys.CreateKeyResponse
	t.Run("a key created through azkeys is delivered once with its kid", func(t *testing.T) {
		var err error
		if created, err = c.CreateKey(ctx, "Payments-Key", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeRSA)}, nil); err != nil {
			t.Fatal(err)
		}
		n := h.waitNotifications(1)[0]
		for k, want := range map[string]string{
			"Content-Type": "application/json", "aeg-event-type": "Notification", "aeg-subscription-name": "akvsync",
			"aeg-delivery-count": "0", "aeg-data-version": "1", "aeg-metadata-version": "1", "X-Akvsync-Webhook-Secret": secret,
		} {
			if got := n.Header.Get(k); got != want {
				t.Errorf("header %s = %q, want %q", k, got, want)
			}
		}
		evs := decodeEG(t, n)
		if len(evs) != 1 {
			t.Fatalf("%d events in the array, want 1", len(evs))
		}
		ev := evs[0]
		kid := string(*created.Key.KID)
		if _, err := uuid.Parse(ev.ID); err != nil || n.Header.Get("aeg-output-event-id") != ev.ID {
			t.Errorf("id %q (header %q): %v", ev.ID, n.Header.Get("aeg-output-event-id"), err)
		}
		wantTopic := "/subscriptions/" + v.SubscriptionID() + "/resourceGroups/rg-events/providers/Microsoft.KeyVault/vaults/evt"
		if ev.Topic != wantTopic || ev.Subject != "Payments-Key" || ev.EventType != string(akvemu.EventKeyNewVersionCreated) ||
			ev.DataVersion != "1" || ev.MetadataVersion != "1" {
			t.Errorf("event %+v, want topic %s", ev, wantTopic)
		}
		if tm, err := time.Parse(time.RFC3339Nano, ev.EventTime); err != nil || time.Since(tm) > time.Minute {
			t.Errorf("eventTime %q: %v", ev.EventTime, err)
		}
		d := ev.Data
		if d.ID != kid || !strings.HasPrefix(kid, v.URL()+"/keys/Payments-Key/") || d.VaultName != "evt" || d.ObjectType != "Key" ||
			d.ObjectName != "Payments-Key" || d.Version != created.Key.KID.Version() || d.NBF != nil || d.EXP != nil {
			t.Errorf("data %+v, kid %s", d, kid)
		}
		if !strings.Contains(string(n.Body), `"NBF":null`) || !strings.Contains(string(n.Body), `"EXP":null`) {
			t.Errorf("NBF/EXP must be null when unset: %s", n.Body)
		}
	})

	t.Run("rotate and import publish a new version; update, delete, other vaults and pools do not", func(t *testing.T) {
		r, err := c.RotateKey(ctx, "payments-key", nil)
		if err != nil {
			t.Fatal(err)
		}
		rotated = azkeys.CreateKeyResponse(r)
		if _, err := c.UpdateKey(ctx, "payments-key", "", azkeys.UpdateKeyParameters{Tags: map[string]*string{"a": ptr("b")}}, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := c.DeleteKey(ctx, "payments-key", nil); err != nil {
			t.Fatal(err)
		}
		if _, err := other.CreateKey("elsewhere", akvemu.KeySpec{Kty: akvemu.KtyEC}); err != nil {
			t.Fatal(err)
		}
		if _, err := pool.CreateKey("in-pool", akvemu.KeySpec{Kty: akvemu.KtyRSAHSM}); err != nil {
			t.Fatal(err)
		}
		ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		pub, err := ek.PublicKey.ECDH()
		if err != nil {
			t.Fatal(err)
		}
		raw := pub.Bytes()
		imp, err := c.ImportKey(ctx, "imported", azkeys.ImportKeyParameters{Key: &azkeys.JSONWebKey{
			Kty: ptr(azkeys.KeyTypeEC), Crv: ptr(azkeys.CurveNameP256), X: raw[1:33], Y: raw[33:],
		}}, nil)
		if err != nil {
			t.Fatalf("import: %v", err)
		}
		evs := allEG(t, h.waitNotifications(3))
		if len(evs) != 3 {
			t.Fatalf("%d events, want 3: %+v", len(evs), evs)
		}
		byVersion := map[string]egEvent{}
		for _, ev := range evs {
			byVersion[ev.Data.Version] = ev
			if ev.EventType != string(akvemu.EventKeyNewVersionCreated) || ev.Data.VaultName != "evt" {
				t.Errorf("unexpected event %+v", ev)
			}
		}
		for _, kid := range []*azkeys.ID{created.Key.KID, rotated.Key.KID, imp.Key.KID} {
			ev, ok := byVersion[kid.Version()]
			if !ok || ev.Data.ID != string(*kid) || ev.Subject != kid.Name() {
				t.Errorf("no event for %s (got %+v)", *kid, ev)
			}
		}
		st := subStatus(t, e, "akvsync")
		eventually(t, 5*time.Second, "counters settled", func() bool {
			st = subStatus(t, e, "akvsync")
			return st.Counters.Delivered == 3
		})
		want := akvemu.EventDeliveryCounters{Published: 3, Delivered: 3, Attempts: 3}
		if st.Counters != want {
			t.Errorf("counters %+v, want %+v", st.Counters, want)
		}
	})

	t.Run("events are not Key Vault requests", func(t *testing.T) {
		c := e.Counters("evt")
		if c.Count(akvemu.OpCreateKey, 200) != 1 || c.Total(akvemu.OpRotateKey) != 1 || c.Total(akvemu.OpImportKey) != 1 {
			t.Errorf("counters %+v", c)
		}
	})
}

func TestCloudEventsSchema(t *testing.T) {
	h := newHook(t)
	e := setupEvents(t, h)
	v := addVault(t, e, akvemu.VaultSpec{Name: "ce-vault"})
	ctx := context.Background()
	if err := e.AddEventSubscription(ctx, akvemu.EventSubscription{
		Name: "ce-sub", Endpoint: h.url(), Schema: akvemu.SchemaCloudEvents,
		IncludedEventTypes: []akvemu.EventType{akvemu.EventKeyNewVersionCreated},
		DeliveryHeaders:    map[string]string{"X-Secret": "v"},
	}); err != nil {
		t.Fatal(err)
	}
	reqs := h.all()
	if len(reqs) != 1 || reqs[0].Method != http.MethodOptions || reqs[0].Header.Get("WebHook-Request-Origin") != "eventgrid.azure.net" ||
		reqs[0].Header.Get("X-Secret") != "v" {
		t.Fatalf("handshake %+v", reqs)
	}
	c := newClient(t, e, v, nil)
	exp := time.Now().Add(400 * 24 * time.Hour).Truncate(time.Second)
	nbf := time.Now().Add(-time.Hour).Truncate(time.Second)
	r, err := c.CreateKey(ctx, "ce-key", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeEC),
		KeyAttributes: &azkeys.KeyAttributes{Expires: &exp, NotBefore: &nbf}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := h.waitNotifications(1)[0]
	if ct := n.Header.Get("Content-Type"); ct != "application/cloudevents+json; charset=utf-8" {
		t.Errorf("content type %q", ct)
	}
	if n.Header.Get("aeg-delivery-count") != "0" || n.Header.Get("aeg-subscription-name") != "ce-sub" || n.Header.Get("aeg-metadata-version") != "1.0" {
		t.Errorf("headers %v", n.Header)
	}
	var ev ceEvent
	if err := json.Unmarshal(n.Body, &ev); err != nil {
		t.Fatalf("one CloudEvent object per request: %s: %v", n.Body, err)
	}
	if ev.SpecVersion != "1.0" || ev.Source != v.ResourceID() || ev.Subject != "ce-key" || ev.Type != string(akvemu.EventKeyNewVersionCreated) ||
		ev.ID == "" || ev.Data.ID != string(*r.Key.KID) || ev.Data.Version != r.Key.KID.Version() || ev.Data.ObjectType != "Key" {
		t.Errorf("event %+v", ev)
	}
	if ev.Data.EXP == nil || *ev.Data.EXP != exp.Unix() || ev.Data.NBF == nil || *ev.Data.NBF != nbf.Unix() {
		t.Errorf("NBF/EXP %v/%v, want %d/%d", ev.Data.NBF, ev.Data.EXP, nbf.Unix(), exp.Unix())
	}
	if _, err := time.Parse(time.RFC3339Nano, ev.Time); err != nil {
		t.Errorf("time %q: %v", ev.Time, err)
	}

	t.Run("batches", func(t *testing.T) {
		hb := newHook(t)
		if err := e.AddEventSubscription(ctx, akvemu.EventSubscription{
			Name: "ce-batch", Endpoint: hb.url(), Schema: akvemu.SchemaCloudEvents, MaxEventsPerBatch: 10,
		}); err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			if _, err := v.CreateKey("batch-"+strconv.Itoa(i), akvemu.KeySpec{Kty: akvemu.KtyEC}); err != nil {
				t.Fatal(err)
			}
		}
		var got []ceEvent
		eventually(t, 15*time.Second, "5 batched events", func() bool {
			got = got[:0]
			for _, n := range hb.notifications() {
				var evs []ceEvent
				if err := json.Unmarshal(n.Body, &evs); err != nil {
					t.Fatalf("batch body %s: %v", n.Body, err)
				}
				if ct := n.Header.Get("Content-Type"); ct != "application/cloudevents-batch+json; charset=utf-8" {
					t.Fatalf("batch content type %q", ct)
				}
				got = append(got, evs...)
			}
			return len(got) >= 5
		})
		if len(got) != 5 {
			t.Errorf("%d events, want 5", len(got))
		}
	})
}

func TestEventSubscriptionHandshakeFailures(t *testing.T) {
	h := newHook(t)
	e := setupEvents(t, h)
	v := addVault(t, e, akvemu.VaultSpec{Name: "hs-vault"})
	ctx := context.Background()

	cases := []struct {
		name   string
		schema akvemu.EventSchema
		setup  func(h *hook)
		want   string
	}{
		{"eg-refused", akvemu.SchemaEventGrid, func(h *hook) {
			h.validate = func(string, string) (int, string) { return http.StatusForbidden, "no thanks" }
		}, `403 "no thanks"`},
		{"eg-wrong-code", akvemu.SchemaEventGrid, func(h *hook) {
			h.validate = func(string, string) (int, string) { return http.StatusOK, `{"validationResponse":"nope"}` }
		}, "wrong validationResponse"},
		{"ce-no-origin", akvemu.SchemaCloudEvents, func(h *hook) {
			h.allowOrigin = func(string) string { return "" }
		}, "WebHook-Allowed-Origin"},
		{"ce-other-origin", akvemu.SchemaCloudEvents, func(h *hook) {
			h.allowOrigin = func(string) string { return "example.com" }
		}, "WebHook-Allowed-Origin"},
	}
	var failing []*hook
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fh := newHook(t)
			tc.setup(fh)
			failing = append(failing, fh)
			err := e.AddEventSubscription(ctx, akvemu.EventSubscription{Name: tc.name, Endpoint: fh.url(), Schema: tc.schema})
			if !errors.Is(err, akvemu.ErrEventSubscriptionFailed) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want ErrEventSubscriptionFailed with %q", err, tc.want)
			}
			if st := subStatus(t, e, tc.name); st.ProvisioningState != akvemu.EventSubscriptionFailed || !strings.Contains(st.Reason, tc.want) {
				t.Errorf("status %+v", st)
			}
		})
	}
	t.Run("unreachable endpoint", func(t *testing.T) {
		dead := httptest.NewTLSServer(http.NotFoundHandler())
		url := dead.URL
		dead.Close()
		err := e.AddEventSubscription(ctx, akvemu.EventSubscription{Name: "dead", Endpoint: url})
		if !errors.Is(err, akvemu.ErrEventSubscriptionFailed) {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("invalid specs", func(t *testing.T) {
		for _, spec := range []akvemu.EventSubscription{
			{Name: "x", Endpoint: h.url()},
			{Name: "no-url", Endpoint: "ftp://host/x"},
			{Name: "bad-type", Endpoint: h.url(), IncludedEventTypes: []akvemu.EventType{"Microsoft.KeyVault.KeyDeleted"}},
			{Name: "bad-schema", Endpoint: h.url(), Schema: "CustomInputSchema"},
			{Name: "bad-header", Endpoint: h.url(), DeliveryHeaders: map[string]string{"aeg-event-type": "x"}},
			{Name: "auth-twice", Endpoint: h.url(), AADAudience: "api://x", DeliveryHeaders: map[string]string{"Authorization": "x"}},
			{Name: "batch", Endpoint: h.url(), MaxEventsPerBatch: 5001},
		} {
			if err := e.AddEventSubscription(ctx, spec); !errors.Is(err, akvemu.ErrBadParameter) {
				t.Errorf("%+v: err %v, want ErrBadParameter", spec, err)
			}
		}
	})

	t.Run("failed subscriptions deliver nothing", func(t *testing.T) {
		if err := e.AddEventSubscription(ctx, akvemu.EventSubscription{Name: "good", Endpoint: h.url()}); err != nil {
			t.Fatal(err)
		}
		if _, err := v.CreateKey("after-failures", akvemu.KeySpec{Kty: akvemu.KtyEC}); err != nil {
			t.Fatal(err)
		}
		h.waitNotifications(1) // the working subscription got it, so the event was published
		for _, tc := range cases {
			if st := subStatus(t, e, tc.name); st.Counters != (akvemu.EventDeliveryCounters{}) {
				t.Errorf("%s counters %+v", tc.name, st.Counters)
			}
		}
		for i, fh := range failing {
			if n := len(fh.all()); n != 1 {
				t.Errorf("failing webhook %d got %d requests, want the handshake only", i, n)
			}
		}
	})
}

func TestEventGridManualValidation(t *testing.T) {
	urls := make(chan string, 1)
	h := newHook(t, func(h *hook) {
		h.validate = func(_, url string) (int, string) {
			urls <- url
			return http.StatusAccepted, ""
		}
	})
	e := setupEvents(t, h)
	v := addVault(t, e, akvemu.VaultSpec{Name: "manual"})
	ctx := context.Background()

	done := make(chan error, 1)
	go func() {
		done <- e.AddEventSubscription(ctx, akvemu.EventSubscription{Name: "manual", Endpoint: h.url()})
	}()
	var vurl string
	select {
	case vurl = <-urls:
	case <-time.After(15 * time.Second):
		t.Fatal("no validation event")
	}
	eventually(t, 5*time.Second, "AwaitingManualAction", func() bool {
		return subStatus(t, e, "manual").ProvisioningState == akvemu.EventSubscriptionAwaitingManualAction
	})
	if st := subStatus(t, e, "manual"); st.ValidationURL != vurl {
		t.Errorf("status validation URL %q, want %q", st.ValidationURL, vurl)
	}
	if _, err := v.CreateKey("before-validation", akvemu.KeySpec{Kty: akvemu.KtyEC}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Fatalf("AddEventSubscription returned %v before the manual validation", err)
	default:
	}
	resp, err := http.Get(vurl + "x") // a wrong token is refused
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("wrong token: %d", resp.StatusCode)
	}
	resp, err = http.Get(vurl)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "successfully validated") {
		t.Fatalf("validation URL: %d %s", resp.StatusCode, body)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("AddEventSubscription: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("AddEventSubscription did not return after the manual validation")
	}
	if _, err := v.CreateKey("after-validation", akvemu.KeySpec{Kty: akvemu.KtyEC}); err != nil {
		t.Fatal(err)
	}
	evs := allEG(t, h.waitNotifications(1))
	if len(evs) != 1 || evs[0].Subject != "after-validation" {
		t.Errorf("events %+v: only the key created after validation is delivered", evs)
	}
	if c := subStatus(t, e, "manual").Counters; c.Published != 1 {
		t.Errorf("counters %+v", c)
	}

	t.Run("the validation URL expires", func(t *testing.T) {
		h2 := newHook(t, func(h *hook) { h.validate = func(string, string) (int, string) { return http.StatusOK, "" } })
		e2 := setupEvents(t, h2, func(c *akvemu.Config) { c.EventDelivery.ValidationTimeout = 300 * time.Millisecond })
		err := e2.AddEventSubscription(ctx, akvemu.EventSubscription{Name: "late", Endpoint: h2.url()})
		if !errors.Is(err, akvemu.ErrEventSubscriptionFailed) || !strings.Contains(err.Error(), "expired") {
			t.Fatalf("err %v", err)
		}
	})
}

// retryHook answers notifications from a script (then 200).
func retryHook(t *testing.T, script ...func(hookReq) (int, http.Header)) *hook {
	return newHook(t, func(h *hook) {
		h.answer = func(n int, r hookReq) (int, http.Header) {
			if n < len(script) {
				return script[n](r)
			}
			return http.StatusOK, nil
		}
	})
}

func status(code int, hdr ...string) func(hookReq) (int, http.Header) {
	return func(hookReq) (int, http.Header) {
		h := http.Header{}
		for i := 0; i+1 < len(hdr); i += 2 {
			h.Set(hdr[i], hdr[i+1])
		}
		return code, h
	}
}

func TestEventDeliveryRetries(t *testing.T) {
	ctx := context.Background()
	run := func(t *testing.T, h *hook, mutate ...func(*akvemu.Config)) (*akvemu.Emulator, *akvemu.Vault) {
		t.Helper()
		e := setupEvents(t, h, mutate...)
		v := addVault(t, e, akvemu.VaultSpec{Name: "retry"})
		if err := e.AddEventSubscription(ctx, akvemu.EventSubscription{Name: "retry", Endpoint: h.url()}); err != nil {
			t.Fatal(err)
		}
		if _, err := v.CreateKey("k", akvemu.KeySpec{Kty: akvemu.KtyEC}); err != nil {
			t.Fatal(err)
		}
		return e, v
	}
	settled := func(t *testing.T, e *akvemu.Emulator) akvemu.EventDeliveryCounters {
		t.Helper()
		var c akvemu.EventDeliveryCounters
		eventually(t, 15*time.Second, "no pending events", func() bool {
			c = subStatus(t, e, "retry").Counters
			return c.Published > 0 && c.Pending == 0
		})
		return c
	}
	counts := func(reqs []hookReq) []string {
		var out []string
		for _, r := range reqs {
			out = append(out, r.Header.Get("aeg-delivery-count"))
		}
		return out
	}

	t.Run("503 twice then 200 is delivered on the third attempt", func(t *testing.T) {
		h := retryHook(t, status(503), status(503))
		e, _ := run(t, h)
		c := settled(t, e)
		want := akvemu.EventDeliveryCounters{Published: 1, Delivered: 1, Attempts: 3, FailedAttempts: 2, Retried: 2}
		if c != want {
			t.Errorf("counters %+v, want %+v", c, want)
		}
		reqs := h.notifications()
		if got := counts(reqs); !slices.Equal(got, []string{"0", "1", "2"}) {
			t.Errorf("aeg-delivery-count %v", got)
		}
		ids := map[string]bool{}
		for _, r := range reqs {
			ids[decodeEG(t, r)[0].ID] = true
		}
		if len(ids) != 1 {
			t.Errorf("a retry must resend the same event id: %v", ids)
		}
	})

	for _, code := range []int{400, 401, 403, 413} {
		t.Run(strconv.Itoa(code)+" is dropped without retry", func(t *testing.T) {
			h := retryHook(t, status(code))
			e, _ := run(t, h)
			c := settled(t, e)
			want := akvemu.EventDeliveryCounters{Published: 1, Dropped: 1, Attempts: 1, FailedAttempts: 1}
			if c != want {
				t.Errorf("counters %+v, want %+v", c, want)
			}
			if n := len(h.notifications()); n != 1 {
				t.Errorf("%d attempts", n)
			}
		})
	}

	t.Run("404, 408, 500 and timeouts are retried", func(t *testing.T) {
		release := make(chan struct{})
		h := retryHook(t, status(404), status(408), status(500), func(r hookReq) (int, http.Header) {
			<-release // outlives the 200 ms delivery timeout
			return http.StatusOK, nil
		})
		t.Cleanup(func() { close(release) })
		e, _ := run(t, h, func(c *akvemu.Config) { c.EventDelivery.Timeout = 200 * time.Millisecond })
		c := settled(t, e)
		want := akvemu.EventDeliveryCounters{Published: 1, Delivered: 1, Attempts: 5, FailedAttempts: 4, Retried: 4}
		if c != want {
			t.Errorf("counters %+v, want %+v", c, want)
		}
		if got := counts(h.notifications()); !slices.Equal(got, []string{"0", "1", "2", "3", "4"}) {
			t.Errorf("aeg-delivery-count %v", got)
		}
	})

	t.Run("Retry-After of a 429 is a minimum", func(t *testing.T) {
		h := retryHook(t, status(429, "Retry-After", "1"))
		e, _ := run(t, h)
		settled(t, e)
		reqs := h.notifications()
		if len(reqs) != 2 {
			t.Fatalf("%d attempts", len(reqs))
		}
		if gap := reqs[1].At.Sub(reqs[0].At); gap < 900*time.Millisecond {
			t.Errorf("retried after %s, Retry-After said 1 s (the schedule 20 ms)", gap)
		}
	})

	t.Run("max attempts", func(t *testing.T) {
		h := newHook(t, func(h *hook) {
			h.answer = func(int, hookReq) (int, http.Header) { return http.StatusInternalServerError, nil }
		})
		e, _ := run(t, h, func(c *akvemu.Config) { c.EventDelivery.MaxAttempts = 3 })
		c := settled(t, e)
		want := akvemu.EventDeliveryCounters{Published: 1, Dropped: 1, Attempts: 3, FailedAttempts: 3, Retried: 2}
		if c != want {
			t.Errorf("counters %+v, want %+v", c, want)
		}
	})

	t.Run("event time to live", func(t *testing.T) {
		h := newHook(t, func(h *hook) {
			h.answer = func(int, hookReq) (int, http.Header) { return http.StatusServiceUnavailable, nil }
		})
		// RetryScale 0.001: 10 ms, 30 ms, 60 ms, 300 ms, … with a TTL of 86.4 s; a TTL of 50 ms
		// (scaled from 50 s) ends the event after the second or third attempt.
		e, _ := run(t, h, func(c *akvemu.Config) {
			c.EventDelivery.RetrySchedule = nil
			c.EventDelivery.RetryScale = 0.001
			c.EventDelivery.EventTTL = 50 * time.Second
		})
		c := settled(t, e)
		if c.Dropped != 1 || c.Delivered != 0 || c.Attempts < 2 || c.Attempts > 4 {
			t.Errorf("counters %+v", c)
		}
	})
}

func TestEventQueueBounded(t *testing.T) {
	hold := make(chan struct{})
	h := newHook(t, func(h *hook) { h.hold = hold })
	e := setupEvents(t, h, func(c *akvemu.Config) {
		c.EventDelivery.QueueSize = 2
		c.EventDelivery.Workers = 1
	})
	v := addVault(t, e, akvemu.VaultSpec{Name: "bounded"})
	if err := e.AddEventSubscription(context.Background(), akvemu.EventSubscription{Name: "queue", Endpoint: h.url()}); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := v.CreateKey("k"+strconv.Itoa(i), akvemu.KeySpec{Kty: akvemu.KtyEC}); err != nil {
			t.Fatal(err)
		}
	}
	c := subStatus(t, e, "queue").Counters
	if c.Published != 5 || c.Pending != 2 || c.QueueOverflow != 3 || c.Dropped != 3 {
		t.Errorf("while the webhook holds the first delivery: %+v", c)
	}
	close(hold)
	eventually(t, 15*time.Second, "queue drained", func() bool {
		c = subStatus(t, e, "queue").Counters
		return c.Pending == 0
	})
	if c.Delivered != 2 || c.Dropped != 3 {
		t.Errorf("counters %+v", c)
	}
}

func TestEventDeliveryEntraToken(t *testing.T) {
	h := newHook(t)
	e := setupEvents(t, h)
	v := addVault(t, e, akvemu.VaultSpec{Name: "aad"})
	const aud = "api://akvsync-webhook"
	if err := e.AddEventSubscription(context.Background(), akvemu.EventSubscription{Name: "aad", Endpoint: h.url(), AADAudience: aud}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.CreateKey("k", akvemu.KeySpec{Kty: akvemu.KtyEC}); err != nil {
		t.Fatal(err)
	}
	h.waitNotifications(1)
	reqs := h.all()
	if len(reqs) != 2 {
		t.Fatalf("%d requests", len(reqs))
	}

	// The subscriber's view: OpenID discovery, then the JWKS it names.
	getJSON := func(url string, out any) {
		t.Helper()
		resp, err := e.HTTPClient().Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
	var disc struct {
		JWKSURI string `json:"jwks_uri"`
	}
	getJSON(e.AuthorityHost()+e.TenantID()+"/v2.0/.well-known/openid-configuration", &disc)
	var jwks struct {
		Keys []struct{ Kid, Kty, Crv, X, Y string } `json:"keys"`
	}
	getJSON(disc.JWKSURI, &jwks)
	keys := map[string]*ecdsa.PublicKey{}
	for _, k := range jwks.Keys {
		x, _ := base64.RawURLEncoding.DecodeString(k.X)
		y, _ := base64.RawURLEncoding.DecodeString(k.Y)
		pt := make([]byte, 65)
		pt[0] = 4
		copy(pt[33-len(x):33], x)
		copy(pt[65-len(y):], y)
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), pt)
		if err != nil {
			t.Fatalf("JWKS key %s: %v", k.Kid, err)
		}
		keys[k.Kid] = pub
	}
	for i, r := range reqs {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			t.Fatalf("request %d (%s) without a bearer token", i, r.Header.Get("aeg-event-type"))
		}
		claims := jwt.MapClaims{}
		_, err := jwt.NewParser(jwt.WithValidMethods([]string{"ES256"}), jwt.WithAudience(aud),
			jwt.WithIssuer("https://sts.windows.net/"+e.TenantID()+"/"), jwt.WithExpirationRequired(),
		).ParseWithClaims(tok, claims, func(tk *jwt.Token) (any, error) {
			kid, _ := tk.Header["kid"].(string)
			if k := keys[kid]; k != nil {
				return k, nil
			}
			return nil, errors.New("unknown kid")
		})
		if err != nil {
			t.Fatalf("request %d token: %v", i, err)
		}
		if claims["appid"] != akvemu.EventGridAppID || claims["tid"] != e.TenantID() {
			t.Errorf("claims %v", claims)
		}
	}
}

func TestEventSubscriptionAdminAPI(t *testing.T) {
	h := newHook(t)
	e := setupEvents(t, h)
	v := addVault(t, e, akvemu.VaultSpec{Name: "adm-evt"})
	const secret = "do-not-leak-me"

	var created akvemu.EventSubscriptionStatus
	adminCall(t, e, http.MethodPost, "/admin/event-subscriptions",
		`{"name":"adm","endpoint":"`+h.url()+`","schema":"EventGridSchema","delivery_headers":{"X-Akvsync-Webhook-Secret":"`+secret+`"}}`,
		http.StatusCreated, &created)
	if created.ProvisioningState != akvemu.EventSubscriptionSucceeded || created.DeliveryHeaders["X-Akvsync-Webhook-Secret"] != "***" {
		t.Errorf("created %+v", created)
	}
	for _, path := range []string{"/admin/event-subscriptions", "/admin/event-subscriptions/adm"} {
		resp, err := http.Get(e.AdminURL() + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK || strings.Contains(string(b), secret) || !strings.Contains(string(b), `"***"`) {
			t.Errorf("GET %s: %d %s", path, resp.StatusCode, b)
		}
	}
	if st := subStatus(t, e, "adm"); st.DeliveryHeaders["X-Akvsync-Webhook-Secret"] != "***" {
		t.Errorf("Go status leaks the header: %+v", st.DeliveryHeaders)
	}

	adminCall(t, e, http.MethodPost, "/admin/vaults/adm-evt/keys/via-admin", `{"kty":"EC"}`, http.StatusCreated, nil)
	adminCall(t, e, http.MethodPost, "/admin/vaults/adm-evt/keys/via-admin/rotate", "", http.StatusOK, nil)
	adminCall(t, e, http.MethodPost, "/admin/vaults/adm-evt/keys/via-admin/events/KeyNearExpiry", "", http.StatusAccepted, nil)
	adminCall(t, e, http.MethodPost, "/admin/vaults/adm-evt/keys/nope/events/KeyExpired", "", http.StatusNotFound, nil)
	adminCall(t, e, http.MethodPost, "/admin/vaults/adm-evt/keys/via-admin/events/KeyDeleted", "", http.StatusBadRequest, nil)
	evs := allEG(t, h.waitNotifications(3))
	types := map[string]int{}
	for _, ev := range evs {
		types[ev.EventType]++
		if ev.Subject != "via-admin" {
			t.Errorf("event %+v", ev)
		}
	}
	if types[string(akvemu.EventKeyNewVersionCreated)] != 2 || types[string(akvemu.EventKeyNearExpiry)] != 1 {
		t.Errorf("event types %v", types)
	}
	latest, _ := v.GetKey("via-admin", "")
	for _, ev := range evs {
		if ev.EventType == string(akvemu.EventKeyNearExpiry) && ev.Data.Version != latest.Version {
			t.Errorf("trigger without version must name the latest: %+v", ev)
		}
	}

	var st akvemu.EventSubscriptionStatus
	eventually(t, 5*time.Second, "delivered", func() bool {
		adminCall(t, e, http.MethodGet, "/admin/event-subscriptions/adm", "", http.StatusOK, &st)
		return st.Counters.Delivered == 3
	})
	adminCall(t, e, http.MethodPost, "/admin/event-subscriptions", `{"name":"adm","endpoint":"ftp://x"}`, http.StatusBadRequest, nil)
	adminCall(t, e, http.MethodPost, "/admin/event-subscriptions", `{"name":"another","endpoint":"`+h.srv.URL+`/x"}`, http.StatusCreated, nil)
	h.set(func(h *hook) {
		h.validate = func(string, string) (int, string) { return http.StatusInternalServerError, "" }
	})
	adminCall(t, e, http.MethodPost, "/admin/event-subscriptions", `{"name":"refused2","endpoint":"`+h.url()+`"}`, http.StatusBadRequest, nil)
	var list []akvemu.EventSubscriptionStatus
	adminCall(t, e, http.MethodGet, "/admin/event-subscriptions", "", http.StatusOK, &list)
	if len(list) != 3 || list[0].Name != "adm" || list[2].Name != "refused2" || list[2].ProvisioningState != akvemu.EventSubscriptionFailed {
		t.Errorf("list %+v", list)
	}
	adminCall(t, e, http.MethodDelete, "/admin/event-subscriptions/adm", "", http.StatusNoContent, nil)
	adminCall(t, e, http.MethodGet, "/admin/event-subscriptions/adm", "", http.StatusNotFound, nil)
	adminCall(t, e, http.MethodDelete, "/admin/event-subscriptions/adm", "", http.StatusNotFound, nil)
}

func TestKeyExpiryEvents(t *testing.T) {
	h := newHook(t)
	// A 1 s near-expiry window lets the timer send both events within seconds.
	e := setupEvents(t, h, func(c *akvemu.Config) { c.EventDelivery.NearExpiryWindow = time.Second })
	soon := time.Now().Add(time.Hour)
	v := addVault(t, e, akvemu.VaultSpec{Name: "expiry", Keys: 200, // seeded: expired, near expiry and future keys
		KeySpecs: []akvemu.NamedKeySpec{{Name: "seeded-exp", KeySpec: akvemu.KeySpec{Kty: akvemu.KtyEC, Expires: &soon}}}})
	ctx := context.Background()
	if err := e.AddEventSubscription(ctx, akvemu.EventSubscription{Name: "exp", Endpoint: h.url()}); err != nil {
		t.Fatal(err)
	}
	if c := subStatus(t, e, "exp").Counters; c.Published != 0 {
		t.Fatalf("seeded keys published %+v", c)
	}
	c := newClient(t, e, v, nil)
	exp := time.Now().Add(3 * time.Second).Truncate(time.Second)
	r, err := c.CreateKey(ctx, "short-lived", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeEC), KeyAttributes: &azkeys.KeyAttributes{Expires: &exp}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	byType := func() map[string][]hookReq {
		out := map[string][]hookReq{}
		for _, n := range h.notifications() {
			ev := decodeEG(t, n)[0]
			out[ev.EventType] = append(out[ev.EventType], n)
		}
		return out
	}
	eventually(t, 20*time.Second, "new version, near expiry and expired", func() bool {
		m := byType()
		return len(m[string(akvemu.EventKeyNewVersionCreated)]) > 0 && len(m[string(akvemu.EventKeyNearExpiry)]) > 0 && len(m[string(akvemu.EventKeyExpired)]) > 0
	})
	m := byType()
	expired := m[string(akvemu.EventKeyExpired)][0]
	if expired.At.Before(exp) {
		t.Errorf("KeyExpired at %s, before exp %s", expired.At, exp)
	}
	near := m[string(akvemu.EventKeyNearExpiry)][0]
	if near.At.Before(exp.Add(-time.Second)) {
		t.Errorf("KeyNearExpiry at %s, before exp-1s %s", near.At, exp.Add(-time.Second))
	}
	ev := decodeEG(t, expired)[0]
	if ev.Data.Version != r.Key.KID.Version() || ev.Data.EXP == nil || *ev.Data.EXP != exp.Unix() || ev.Subject != "short-lived" {
		t.Errorf("expired event %+v", ev)
	}

	// An update that keeps exp sends nothing again; a barrier event proves the
	// tracker had its chance.
	if _, err := v.UpdateKey("short-lived", "", akvemu.KeyUpdate{Tags: map[string]string{"touched": "yes"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.CreateKey("barrier", akvemu.KeySpec{Kty: akvemu.KtyEC}); err != nil {
		t.Fatal(err)
	}
	h.waitNotifications(4)
	m = byType()
	if len(m[string(akvemu.EventKeyNearExpiry)]) != 1 || len(m[string(akvemu.EventKeyExpired)]) != 1 || len(m[string(akvemu.EventKeyNewVersionCreated)]) != 2 {
		t.Errorf("events by type: near %d, expired %d, new %d; want 1, 1, 2",
			len(m[string(akvemu.EventKeyNearExpiry)]), len(m[string(akvemu.EventKeyExpired)]), len(m[string(akvemu.EventKeyNewVersionCreated)]))
	}

	t.Run("a new exp in the past is expired at once", func(t *testing.T) {
		past := time.Now().Add(-time.Hour)
		if _, err := c.UpdateKey(ctx, "barrier", "", azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Expires: &past}}, nil); err != nil {
			t.Fatal(err)
		}
		eventually(t, 15*time.Second, "KeyExpired for barrier", func() bool {
			for _, n := range byType()[string(akvemu.EventKeyExpired)] {
				if decodeEG(t, n)[0].Subject == "barrier" {
					return true
				}
			}
			return false
		})
	})
}

func TestEventSpecAndShutdown(t *testing.T) {
	h := newHook(t)
	cfg, err := akvemu.ParseSpec([]byte(`
vaults: [{name: spec-evt}]
event_subscriptions:
  - name: from-spec
    endpoint: `+h.url()+`
    schema: CloudEventSchemaV1_0
    included_event_types: [Microsoft.KeyVault.KeyNewVersionCreated]
    vaults: [spec-evt]
    max_events_per_batch: 1
    delivery_headers: {X-Secret: abc}
    aad_audience: api://akvsync
event_delivery:
  retry_schedule: [20ms, 40]
  retry_scale: 1
  max_attempts: 5
  event_ttl: 1h
  timeout: 5s
  queue_size: 100
  workers: 2
  validation_timeout: 1m
  near_expiry_window: 720h
`), false)
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.EventDelivery
	if len(cfg.EventSubscriptions) != 1 || cfg.EventSubscriptions[0].AADAudience != "api://akvsync" ||
		!slices.Equal(d.RetrySchedule, []time.Duration{20 * time.Millisecond, 40 * time.Millisecond}) || d.MaxAttempts != 5 ||
		d.EventTTL != time.Hour || d.Timeout != 5*time.Second || d.QueueSize != 100 || d.Workers != 2 ||
		d.ValidationTimeout != time.Minute || d.NearExpiryWindow != 720*time.Hour {
		t.Fatalf("parsed %+v %+v", cfg.EventSubscriptions, d)
	}
	if _, err := akvemu.ParseSpec([]byte(`{"event_delivery":{"retries":3}}`), true); !errors.Is(err, akvemu.ErrInvalidConfig) {
		t.Errorf("unknown event_delivery field: %v", err)
	}
	if _, err := akvemu.ParseSpec([]byte(`{"event_subscriptions":[{"name":"a","endpoint":"x"}]}`), true); !errors.Is(err, akvemu.ErrInvalidConfig) {
		t.Errorf("invalid subscription: %v", err)
	}

	// The spec's subscription is validated at start; it delivers, and Close stops every
	// delivery goroutine even with a retry pending.
	h.set(func(h *hook) {
		h.answer = func(int, hookReq) (int, http.Header) { return http.StatusServiceUnavailable, nil }
	})
	cfg.EventDelivery.RootCAs = hookPool(h)
	cfg.EventDelivery.RetrySchedule = []time.Duration{time.Hour}
	cfg.EventDelivery.EventTTL = 24 * time.Hour // beyond the hour (and its jitter)
	e := setup(t, func(c *akvemu.Config) {
		c.Vaults, c.EventSubscriptions, c.EventDelivery = cfg.Vaults, cfg.EventSubscriptions, cfg.EventDelivery
	})
	if st := subStatus(t, e, "from-spec"); st.ProvisioningState != akvemu.EventSubscriptionSucceeded {
		t.Fatalf("spec subscription %+v", st)
	}
	v, _ := e.Vault("spec-evt")
	if _, err := v.CreateKey("k", akvemu.KeySpec{Kty: akvemu.KtyEC}); err != nil {
		t.Fatal(err)
	}
	n := h.waitNotifications(1)[0]
	if n.Header.Get("X-Secret") != "abc" || !strings.HasPrefix(n.Header.Get("Authorization"), "Bearer ") {
		t.Errorf("headers %v", n.Header)
	}
	eventually(t, 5*time.Second, "a retry pending", func() bool { return subStatus(t, e, "from-spec").Counters.Retried == 1 })
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "no event goroutines after Close", func() bool {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		return !strings.Contains(stacks, "akvemu.(*eventSub)") && !strings.Contains(stacks, "akvemu.(*expiryTracker)")
	})
	if err := e.AddEventSubscription(context.Background(), akvemu.EventSubscription{Name: "closed", Endpoint: h.url()}); !errors.Is(err, akvemu.ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
}
