package discovery_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/akvsync/akvsync/internal/arm"
	"github.com/akvsync/akvsync/internal/azure"
	"github.com/akvsync/akvsync/internal/connections"
	"github.com/akvsync/akvsync/internal/discovery"
	"github.com/akvsync/akvsync/internal/natstest"
	"github.com/akvsync/akvsync/internal/secrets"
	"github.com/akvsync/akvsync/pkg/akvemu"
	"github.com/akvsync/akvsync/pkg/events"
)

const (
	subA = "aaaaaaaa-1111-2222-3333-444444444444"
	subB = "bbbbbbbb-1111-2222-3333-444444444444"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// env is a JetStream server with akvsync's topology, a connection
// registry with the connection "emu" to an emulator, and a clock.
type env struct {
	js    jetstream.JetStream
	conns *connections.Registry
	emu   *akvemu.Emulator
	clock *clock
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func setup(t *testing.T, subs []akvemu.SubscriptionSpec) *env {
	t.Helper()
	ctx := testCtx(t)
	ns := natstest.RunServer(t, natstest.Options{})
	_, js := natstest.Connect(t, ns)
	if err := (events.Topology{Storage: jetstream.MemoryStorage}).EnsureStreams(ctx, js); err != nil {
		t.Fatal(err)
	}
	key, err := secrets.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := secrets.NewSealer(secrets.KeyRing{Current: "k", Keys: map[string][]byte{"k": key}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sealer.Close() })
	conns, err := connections.New(ctx, js, sealer, connections.Config{Endpoints: azure.EndpointPolicy{AllowPrivate: true}})
	if err != nil {
		t.Fatal(err)
	}
	emu, err := akvemu.Start(ctx, akvemu.Config{DataDir: t.TempDir(), Subscriptions: subs,
		Vaults: []akvemu.VaultSpec{{Name: "kv-a-01", SubscriptionID: subA}, {Name: "kv-a-02", SubscriptionID: subA}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emu.Close() })
	e := &env{js: js, conns: conns, emu: emu, clock: &clock{t: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}}
	e.createConnection(t, "emu", connections.Settings{ResourceManagerURL: emu.ResourceManagerURL()})
	return e
}

func (e *env) createConnection(t *testing.T, name string, s connections.Settings) {
	t.Helper()
	s.Name, s.TenantID, s.ClientID, s.CredentialType = name, e.emu.TenantID(), e.emu.ClientID(), azure.CredentialClientSecret
	if s.ActiveDirectoryEndpoint == "" {
		s.ActiveDirectoryEndpoint = e.emu.AuthorityHost()
	}
	s.AzureStackServerCert = string(e.emu.CACertPEM())
	if _, err := e.conns.Create(testCtx(t), connections.CreateRequest{Settings: s, ClientSecret: e.emu.ClientSecret()}); err != nil {
		t.Fatalf("create connection %s: %v", name, err)
	}
}

func (e *env) service(t *testing.T) *discovery.Service {
	t.Helper()
	s, err := discovery.New(testCtx(t), e.js, e.conns, discovery.Config{Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func ids(subs []discovery.Subscription) []string {
	out := make([]string, len(subs))
	for i, s := range subs {
		out[i] = s.SubscriptionID
	}
	return out
}

func TestStoredSubscriptions(t *testing.T) {
	t.Parallel()
	e := setup(t, []akvemu.SubscriptionSpec{{ID: subB, DisplayName: "Bravo"}})
	s := e.service(t)
	ctx := testCtx(t)

	t.Run("get-subscriptions stores each subscription once", func(t *testing.T) {
		list, err := s.GetSubscriptions(ctx, discovery.GetSubscriptionsRequest{Connection: "emu"})
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Subscriptions) != 2 || list.Truncated {
			t.Fatalf("listed %+v", list)
		}
		page, err := s.Subscriptions(ctx, discovery.SubscriptionQuery{Sort: "subscriptionId"})
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(page.Resources); !slices.Equal(got, []string{subA, subB}) || page.Total != 2 {
			t.Fatalf("stored %v", got)
		}
		b := page.Resources[1]
		if b.ID != discovery.RecordID(subB) || b.DisplayName != "Bravo" || b.Connection != "emu" || !b.CreatedAt.Equal(e.clock.Now()) {
			t.Fatalf("stored %+v", b)
		}
	})
	t.Run("listing again later keeps created_at and touches nothing unchanged", func(t *testing.T) {
		e.clock.Advance(time.Hour)
		if _, err := s.GetSubscriptions(ctx, discovery.GetSubscriptionsRequest{Connection: "emu"}); err != nil {
			t.Fatal(err)
		}
		b, err := s.Subscription(ctx, subB)
		if err != nil {
			t.Fatal(err)
		}
		if !b.UpdatedAt.Equal(b.CreatedAt) || b.CreatedAt.Equal(e.clock.Now()) {
			t.Fatalf("an unchanged subscription was rewritten: %+v", b)
		}
	})
	t.Run("a change is stored with a new updated_at", func(t *testing.T) {
		// The same subscriptions seen through another connection.
		e.createConnection(t, "emu2", connections.Settings{ResourceManagerURL: e.emu.ResourceManagerURL()})
		if _, err := s.GetSubscriptions(ctx, discovery.GetSubscriptionsRequest{Connection: "emu2"}); err != nil {
			t.Fatal(err)
		}
		b, err := s.Subscription(ctx, discovery.RecordID(subB))
		if err != nil {
			t.Fatal(err)
		}
		if b.Connection != "emu2" || !b.UpdatedAt.Equal(e.clock.Now()) || b.CreatedAt.Equal(b.UpdatedAt) {
			t.Fatalf("after the change: %+v", b)
		}
	})
	t.Run("two processes storing at once leave one record each", func(t *testing.T) {
		others := []*discovery.Service{e.service(t), e.service(t), e.service(t)}
		var wg sync.WaitGroup
		errs := make(chan error, len(others))
		for i, o := range others {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := o.GetSubscriptions(ctx, discovery.GetSubscriptionsRequest{Connection: []string{"emu", "emu2", "emu"}[i]})
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		page, err := s.Subscriptions(ctx, discovery.SubscriptionQuery{Limit: events.LimitAll})
		if err != nil || page.Total != 2 {
			t.Fatalf("after concurrent listings: %+v (%v)", page, err)
		}
	})
	t.Run("filters, sorts and pages", func(t *testing.T) {
		for _, c := range []struct {
			name string
			q    discovery.SubscriptionQuery
			want []string
		}{
			{"newest first by default", discovery.SubscriptionQuery{}, []string{subA, subB}},
			{"by subscription id, any case", discovery.SubscriptionQuery{SubscriptionID: "BBBBBBBB-1111-2222-3333-444444444444"}, []string{subB}},
			{"by display name, any case", discovery.SubscriptionQuery{DisplayName: "bravo"}, []string{subB}},
			{"by record id", discovery.SubscriptionQuery{ID: discovery.RecordID(subA)}, []string{subA}},
			{"descending", discovery.SubscriptionQuery{Sort: "-subscription_id"}, []string{subB, subA}},
			{"a page", discovery.SubscriptionQuery{Sort: "subscriptionId", Skip: 1, Limit: 1}, []string{subB}},
			{"past the end", discovery.SubscriptionQuery{Skip: 5}, []string{}},
			{"no match", discovery.SubscriptionQuery{DisplayName: "nope"}, []string{}},
		} {
			t.Run(c.name, func(t *testing.T) {
				page, err := s.Subscriptions(ctx, c.q)
				if err != nil {
					t.Fatal(err)
				}
				if got := ids(page.Resources); !slices.Equal(got, c.want) {
					t.Fatalf("got %v, want %v", got, c.want)
				}
			})
		}
		for _, q := range []discovery.SubscriptionQuery{{Skip: -1}, {Limit: -2}, {Sort: "state"}} {
			if _, err := s.Subscriptions(ctx, q); !errors.Is(err, discovery.ErrInvalid) {
				t.Errorf("%+v: err = %v, want ErrInvalid", q, err)
			}
		}
	})
	t.Run("delete by either id, then not found", func(t *testing.T) {
		if _, err := s.DeleteSubscription(ctx, subA); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Subscription(ctx, discovery.RecordID(subA)); !errors.Is(err, discovery.ErrNotFound) {
			t.Fatalf("after delete: err = %v", err)
		}
		if _, err := s.DeleteSubscription(ctx, discovery.RecordID(subA)); !errors.Is(err, discovery.ErrNotFound) {
			t.Fatalf("second delete: err = %v", err)
		}
		for _, ref := range []string{"", "a.b", "../x"} {
			if _, err := s.Subscription(ctx, ref); !errors.Is(err, discovery.ErrNotFound) {
				t.Errorf("%q: err = %v, want ErrNotFound", ref, err)
			}
		}
	})
}

func TestGetVaultsRequests(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	s := e.service(t)
	ctx := testCtx(t)
	limit := func(n int) *int { return &n }
	str := func(s string) *string { return &s }

	t.Run("a connection by id works as by name and is echoed as given", func(t *testing.T) {
		c, err := e.conns.Get(ctx, "emu")
		if err != nil {
			t.Fatal(err)
		}
		page, err := s.GetVaults(ctx, arm.KindVaults, discovery.GetVaultsRequest{Connection: c.ID, SubscriptionID: subA, Limit: limit(1)})
		if err != nil {
			t.Fatal(err)
		}
		if page.Connection != c.ID || len(page.Vaults) != 1 || page.NextLink == nil {
			t.Fatalf("page %+v", page)
		}
		next, err := s.GetVaults(ctx, arm.KindVaults, discovery.GetVaultsRequest{Connection: "emu", SubscriptionID: subA, Limit: limit(1), NextLink: page.NextLink})
		if err != nil || len(next.Vaults) != 1 || next.Vaults[0].Name != "kv-a-02" || next.NextLink != nil {
			t.Fatalf("second page %+v (%v)", next, err)
		}
	})
	t.Run("an empty subscription is an empty list, not null", func(t *testing.T) {
		page, err := s.GetVaults(ctx, arm.KindManagedHSMs, discovery.GetVaultsRequest{Connection: "emu", SubscriptionID: subA})
		if err != nil || page.Vaults == nil || len(page.Vaults) != 0 || page.NextLink != nil {
			t.Fatalf("page %+v (%v)", page, err)
		}
	})
	for _, c := range []struct {
		name string
		req  discovery.GetVaultsRequest
		want error
	}{
		{"no connection", discovery.GetVaultsRequest{SubscriptionID: subA}, discovery.ErrInvalid},
		{"an unknown connection", discovery.GetVaultsRequest{Connection: "nope", SubscriptionID: subA}, discovery.ErrInvalid},
		{"no subscription", discovery.GetVaultsRequest{Connection: "emu"}, discovery.ErrInvalid},
		{"a limit above 1000", discovery.GetVaultsRequest{Connection: "emu", SubscriptionID: subA, Limit: limit(1001)}, discovery.ErrInvalid},
		{"a negative limit", discovery.GetVaultsRequest{Connection: "emu", SubscriptionID: subA, Limit: limit(-3)}, discovery.ErrInvalid},
		{"a foreign nextLink", discovery.GetVaultsRequest{Connection: "emu", SubscriptionID: subA, NextLink: str("https://example.test/subscriptions/" + subA + "/providers/Microsoft.KeyVault/vaults")}, discovery.ErrInvalid},
	} {
		t.Run("refuses "+c.name, func(t *testing.T) {
			if _, err := s.GetVaults(ctx, arm.KindVaults, c.req); !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
	t.Run("nothing is stored by get-vaults", func(t *testing.T) {
		page, err := s.Subscriptions(ctx, discovery.SubscriptionQuery{})
		if err != nil || page.Total != 0 {
			t.Fatalf("stored %+v (%v)", page, err)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []discovery.Config{{RequestTimeout: time.Millisecond}, {StoreConcurrency: -1}, {CASRetries: -1}} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: valid", c)
		}
	}
	if err := (discovery.Config{}).Validate(); err != nil {
		t.Fatal(err)
	}
}
