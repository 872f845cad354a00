package eventgrid_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/akvsync/akvsync/internal/auth"
	"github.com/akvsync/akvsync/internal/eventgrid"
	"github.com/akvsync/akvsync/pkg/akvemu"
)

const topic = "/subscriptions/0b1f6471-1bf0-4dda-aec3-cb9272f09590/resourceGroups/rg-keys/providers/Microsoft.KeyVault/vaults/kv-0001"

// egBatch is a delivery as Azure documents it, PascalCase data and NBF/EXP
// as strings.
const egBatch = `[{"id":"00eccf70-95a7-4e7c-8299-2eb17ee9ad64","topic":"` + topic + `","subject":"key-1",
 "eventType":"Microsoft.KeyVault.KeyNewVersionCreated","eventTime":"2026-12-02T10:08:33.1036736Z",
 "data":{"Id":"https://kv-0001.vault.azure.net/keys/key-1/ee059b2bb5bc48398a53b168c6cdcb10","VaultName":"kv-0001","ObjectType":"Key",
  "ObjectName":"key-1","Version":"ee059b2bb5bc48398a53b168c6cdcb10","NBF":"1559081980","EXP":null},
 "dataVersion":"1","metadataVersion":"1"},
 {"id":"11","topic":"` + topic + `","subject":"s","eventType":"Microsoft.KeyVault.SecretNewVersionCreated","eventTime":"2026-12-02T10:08:34Z",
 "data":{"VaultName":"kv-0001","ObjectType":"Secret","ObjectName":"s"},"dataVersion":"1","metadataVersion":"1"}]`

func TestParse(t *testing.T) {
	t.Parallel()
	t.Run("an Event Grid schema batch", func(t *testing.T) {
		d, err := eventgrid.Parse([]byte(egBatch))
		if err != nil {
			t.Fatal(err)
		}
		if d.Schema != eventgrid.SchemaEventGrid || d.Validation != nil || len(d.Events) != 2 {
			t.Fatalf("delivery %+v", d)
		}
		ev := d.Events[0]
		if ev.Type != "Microsoft.KeyVault.KeyNewVersionCreated" || ev.Topic != topic || !ev.Time.Equal(time.Date(2026, 12, 2, 10, 8, 33, 103673600, time.UTC)) {
			t.Fatalf("event %+v", ev)
		}
		ke, err := ev.KeyEvent()
		if err != nil {
			t.Fatal(err)
		}
		want := eventgrid.KeyEvent{SubscriptionID: "0b1f6471-1bf0-4dda-aec3-cb9272f09590", ResourceGroup: "rg-keys", VaultName: "kv-0001",
			KeyName: "key-1", Version: "ee059b2bb5bc48398a53b168c6cdcb10"}
		if ke != want {
			t.Fatalf("key event %+v, want %+v", ke, want)
		}
		if _, err := d.Events[1].KeyEvent(); !errors.Is(err, eventgrid.ErrMalformed) {
			t.Fatalf("a secret event read as a key event: %v", err)
		}
	})
	t.Run("one CloudEvent and a CloudEvents batch", func(t *testing.T) {
		one := `{"specversion":"1.0","id":"e1","source":"` + topic + `","subject":"key-2","type":"Microsoft.KeyVault.KeyNearExpiry",
			"time":"2026-12-02T10:00:00Z","data":{"VaultName":"kv-0001","ObjectType":"Key","ObjectName":"key-2","Version":"v2","NBF":1,"EXP":2}}`
		for _, body := range []string{one, "[" + one + "," + strings.Replace(one, `"e1"`, `"e2"`, 1) + "]"} {
			d, err := eventgrid.Parse([]byte(body))
			if err != nil {
				t.Fatal(err)
			}
			if d.Schema != eventgrid.SchemaCloudEvents || len(d.Events) == 0 || d.Events[0].Topic != topic {
				t.Fatalf("delivery %+v", d)
			}
			ke, err := d.Events[0].KeyEvent()
			if err != nil || ke.KeyName != "key-2" || ke.Version != "v2" {
				t.Fatalf("key event %+v, %v", ke, err)
			}
		}
	})
	t.Run("a validation event", func(t *testing.T) {
		d, err := eventgrid.Parse([]byte(`[{"id":"v","topic":"` + topic + `","subject":"","eventType":"Microsoft.EventGrid.SubscriptionValidationEvent",
			"eventTime":"2026-12-02T10:00:00Z","data":{"validationCode":"512d38b6-c7b8-40c8-89fe-f46f9e9622b6","validationUrl":"https://example.invalid/v"},"dataVersion":"1"}]`))
		if err != nil {
			t.Fatal(err)
		}
		if d.Validation == nil || d.Validation.Code != "512d38b6-c7b8-40c8-89fe-f46f9e9622b6" || d.Validation.URL != "https://example.invalid/v" {
			t.Fatalf("validation %+v", d.Validation)
		}
	})
	for name, body := range map[string]string{
		"empty":                       ``,
		"not JSON":                    `id=1`,
		"an Event Grid event alone":   `{"id":"1","eventType":"x","topic":"t"}`,
		"no events":                   `[]`,
		"an event without an id":      `[{"eventType":"x","topic":"t"}]`,
		"an event without a type":     `[{"id":"1","topic":"t"}]`,
		"a bad time":                  `[{"id":"1","eventType":"x","eventTime":"yesterday"}]`,
		"mixed schemas":               `[{"id":"1","eventType":"x"},{"specversion":"1.0","id":"2","type":"x"}]`,
		"a CloudEvent of version 0.3": `{"specversion":"0.3","id":"1","type":"x"}`,
		"validation without a code":   `[{"id":"v","eventType":"Microsoft.EventGrid.SubscriptionValidationEvent","data":{}}]`,
	} {
		t.Run("refuses "+name, func(t *testing.T) {
			if _, err := eventgrid.Parse([]byte(body)); !errors.Is(err, eventgrid.ErrMalformed) {
				t.Fatalf("err %v, want ErrMalformed", err)
			}
		})
	}
	t.Run("leaves out a bad event of a batch, not the batch", func(t *testing.T) {
		d, err := eventgrid.Parse([]byte(`[{"id":"1","eventType":"x","eventTime":"yesterday"},{"id":"2","eventType":"x"},{"eventType":"x"}]`))
		if err != nil || len(d.Events) != 1 || d.Events[0].ID != "2" || d.Malformed != 2 {
			t.Fatalf("delivery %+v, %v", d, err)
		}
	})
	t.Run("refuses more than MaxEvents without decoding them all", func(t *testing.T) {
		body := "[" + strings.Repeat(`{"id":"1","eventType":"x"},`, eventgrid.MaxEvents) + `{"id":"1","eventType":"x"}]`
		if _, err := eventgrid.Parse([]byte(body)); !errors.Is(err, eventgrid.ErrMalformed) || !strings.Contains(err.Error(), "more than") {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("refuses a key event whose data names another vault or a bad time", func(t *testing.T) {
		for _, data := range []string{`{"VaultName":"other","ObjectName":"k"}`, `{"ObjectName":"k","EXP":"soon"}`} {
			ev := eventgrid.Event{ID: "1", Type: "Microsoft.KeyVault.KeyExpired", Topic: topic, Data: []byte(data)}
			if _, err := ev.KeyEvent(); !errors.Is(err, eventgrid.ErrMalformed) {
				t.Fatalf("%s: err %v", data, err)
			}
		}
	})
}

func TestParseVaultResourceID(t *testing.T) {
	t.Parallel()
	sub, rg, vault, err := eventgrid.ParseVaultResourceID(strings.ToUpper(topic[:15]) + topic[15:])
	if err != nil || sub != "0b1f6471-1bf0-4dda-aec3-cb9272f09590" || rg != "rg-keys" || vault != "kv-0001" {
		t.Fatalf("%q %q %q %v", sub, rg, vault, err)
	}
	for _, id := range []string{"", "/subscriptions/x", strings.Replace(topic, "vaults", "managedHSMs", 1), topic + "/keys/k"} {
		if _, _, _, err := eventgrid.ParseVaultResourceID(id); !errors.Is(err, eventgrid.ErrMalformed) {
			t.Errorf("%q: err %v", id, err)
		}
	}
}

func TestConfig(t *testing.T) {
	t.Parallel()
	secrets, err := eventgrid.ParseSecrets(strings.NewReader("# Event Grid subscriptions\n\nprod-keys 0123456789abcdef0123\n  dev  fedcba9876543210fedc  \n"))
	if err != nil || len(secrets) != 2 || secrets[1] != (eventgrid.Secret{Name: "dev", Value: "fedcba9876543210fedc"}) {
		t.Fatalf("%+v %v", secrets, err)
	}
	if _, err := eventgrid.ParseSecrets(strings.NewReader("only-a-name\n")); !errors.Is(err, eventgrid.ErrInvalidConfig) {
		t.Fatalf("err %v", err)
	}
	for name, cfg := range map[string]eventgrid.Config{
		"a short secret":    {Secrets: []eventgrid.Secret{{Name: "a", Value: "short"}}},
		"an unnamed secret": {Secrets: []eventgrid.Secret{{Value: "0123456789abcdef0123"}}},
		"a name twice":      {Secrets: []eventgrid.Secret{{Name: "a", Value: "0123456789abcdef0123"}, {Name: "a", Value: "0123456789abcdef0124"}}},
		"a negative rate":   {Rate: -1},
		"a negative burst":  {Burst: -1},
	} {
		if _, err := eventgrid.New(cfg); !errors.Is(err, eventgrid.ErrInvalidConfig) {
			t.Errorf("%s: err %v", name, err)
		}
	}
}

func TestAuthenticateSecret(t *testing.T) {
	t.Parallel()
	w, err := eventgrid.New(eventgrid.Config{Secrets: []eventgrid.Secret{{Name: "prod", Value: "0123456789abcdef0123"}}})
	if err != nil {
		t.Fatal(err)
	}
	req := func(h map[string]string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/", nil)
		for k, v := range h {
			r.Header.Set(k, v)
		}
		return r
	}
	if who, err := w.Authenticate(req(map[string]string{eventgrid.SecretHeader: "0123456789abcdef0123"})); err != nil || who != "secret:prod" {
		t.Fatalf("%q %v", who, err)
	}
	for _, h := range []map[string]string{
		{},
		{eventgrid.SecretHeader: "0123456789abcdef0124"},
		// No identity provider configured: a token is not enough.
		{"Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.e30.x"},
	} {
		if _, err := w.Authenticate(req(h)); !errors.Is(err, eventgrid.ErrUnauthenticated) {
			t.Errorf("%v: err %v", h, err)
		}
	}
}

func TestAllow(t *testing.T) {
	t.Parallel()
	w, err := eventgrid.New(eventgrid.Config{Rate: 1, Burst: 10})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := w.Allow(8); !ok {
		t.Fatal("8 events of a burst of 10 refused")
	}
	wait, ok := w.Allow(8)
	if ok || wait <= 0 || wait > 10*time.Second {
		t.Fatalf("8 more: ok %v, retry after %s", ok, wait)
	}
	// A refusal takes nothing: 2 still fit.
	if _, ok := w.Allow(2); !ok {
		t.Fatal("the refused batch consumed the bucket")
	}
	if w.Rate() != 1 {
		t.Fatalf("rate %v", w.Rate())
	}
}

// TestEntraDelivery has the emulator deliver events with Event Grid's
// Microsoft Entra authentication, to a webhook that verifies the tokens
// against the emulator's own OpenID discovery and keys.
func TestEntraDelivery(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	emu, err := akvemu.Start(ctx, akvemu.Config{Seed: akvemu.SeedSpec{Vaults: 1, KeysPerVault: 1, Seed: 1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emu.Close() })
	const audience = "api://akvsync-event-grid"
	newHook := func(t *testing.T, appIDs []string) (*eventgrid.Webhook, chan error, string) {
		v, err := auth.NewOIDCVerifier(ctx, auth.OIDCConfig{
			DiscoveryURL: emu.AuthorityHost() + emu.TenantID() + "/v2.0/.well-known/openid-configuration",
			Issuers:      []string{"https://sts.windows.net/" + emu.TenantID() + "/"},
			Audience:     audience, AppIDs: appIDs, IdentityOnly: true, HTTPClient: emu.HTTPClient(),
		})
		if err != nil {
			t.Fatal(err)
		}
		w, err := eventgrid.New(eventgrid.Config{Tokens: v})
		if err != nil {
			t.Fatal(err)
		}
		results := make(chan error, 16)
		srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			_, err := w.Authenticate(r)
			results <- err
			if err != nil {
				rw.WriteHeader(http.StatusUnauthorized)
				return
			}
			body, _ := io.ReadAll(r.Body)
			d, err := eventgrid.Parse(body)
			if err == nil && d.Validation != nil {
				rw.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(rw, `{"validationResponse":"`+d.Validation.Code+`"}`)
				return
			}
			rw.WriteHeader(http.StatusOK)
		}))
		t.Cleanup(srv.Close)
		return w, results, srv.URL
	}
	t.Run("tokens of Event Grid's application pass", func(t *testing.T) {
		_, results, url := newHook(t, []string{akvemu.EventGridAppID})
		if err := emu.AddEventSubscription(ctx, akvemu.EventSubscription{Name: "entra-ok", Endpoint: url, AADAudience: audience}); err != nil {
			t.Fatal(err)
		}
		if err := <-results; err != nil {
			t.Fatalf("handshake: %v", err)
		}
	})
	t.Run("another audience or application is refused", func(t *testing.T) {
		_, results, url := newHook(t, []string{"11111111-2222-3333-4444-555555555555"})
		err := emu.AddEventSubscription(ctx, akvemu.EventSubscription{Name: "entra-app", Endpoint: url, AADAudience: audience})
		if !errors.Is(err, akvemu.ErrEventSubscriptionFailed) {
			t.Fatalf("handshake with a foreign application: %v", err)
		}
		if err := <-results; !errors.Is(err, eventgrid.ErrUnauthenticated) {
			t.Fatalf("err %v", err)
		}
		_, results, url = newHook(t, nil)
		err = emu.AddEventSubscription(ctx, akvemu.EventSubscription{Name: "entra-aud", Endpoint: url, AADAudience: "api://someone-else"})
		if !errors.Is(err, akvemu.ErrEventSubscriptionFailed) {
			t.Fatalf("handshake with another audience: %v", err)
		}
		if err := <-results; !errors.Is(err, eventgrid.ErrUnauthenticated) {
			t.Fatalf("err %v", err)
		}
	})
}
