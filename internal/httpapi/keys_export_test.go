package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/akvsync/akvsync/internal/httpapi"
	"github.com/akvsync/akvsync/internal/inventory"
	"github.com/akvsync/akvsync/internal/natstest"
	"github.com/akvsync/akvsync/internal/store"
	"github.com/akvsync/akvsync/pkg/events"
)

// msgSizes records the largest message and the bytes seen on some
// subjects.
type msgSizes struct {
	mu         sync.Mutex
	max, total int
	count      int
}

func (m *msgSizes) record(msg *nats.Msg) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.max = max(m.max, len(msg.Data))
	m.total += len(msg.Data)
	m.count++
}

func (m *msgSizes) snapshot() (maxSize, total, count int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.max, m.total, m.count
}

// startInventory runs a worker's inventory (projector and query
// service) over its own store on the env's NATS server and publishes n
// key records of a few vaults to the KEYS stream. It returns the ids.
func (e *env) startInventory(t *testing.T, n int) map[string]bool {
	t.Helper()
	ctx := testCtx(t)
	nc, js := natstest.Connect(t, e.ns)
	st, err := store.Open(store.Config{Path: filepath.Join(t.TempDir(), "inv.db"), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	proj, err := inventory.NewProjector(st, js, 0, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	pctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- proj.Run(pctx) }()
	qs, err := inventory.StartQueryService(nc, st, proj, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = qs.Stop()
		cancel()
		<-done
		_ = st.Close()
	})
	modulus := strings.Repeat("sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDX", 5)[:342]
	ids := map[string]bool{}
	vaults := []string{events.NewID(), events.NewID(), events.NewID()}
	now := time.Now().UTC()
	for i := range n {
		vid := vaults[i%len(vaults)]
		name := fmt.Sprintf("key-%05d", i)
		version := fmt.Sprintf("%032x", i)
		r := events.KeyRecord{
			ID: events.KeyID(vid, name), VaultID: vid, VaultName: fmt.Sprintf("kv-%d", i%len(vaults)), SubscriptionID: testSub,
			Cloud: "AzureCloud", Name: name, Version: version, Kty: "RSA", KeySize: 2048,
			Kid:    fmt.Sprintf("https://kv-%d.vault.azure.net/keys/%s/%s", i%len(vaults), name, version),
			KeyOps: []string{"sign", "verify", "wrapKey", "unwrapKey"}, N: modulus, E: "AQAB", Enabled: i%4 != 0,
			Created: now.Unix(), Updated: now.Unix(), RecoveryLevel: "Recoverable+Purgeable", RecoverableDays: 90,
			Tags: map[string]string{"env": "prod"}, JobID: events.NewID(),
			FirstSeenAt: now.Add(time.Duration(i) * time.Millisecond), ChangedAt: now, SyncedAt: now,
		}
		raw, _ := json.Marshal(r)
		if _, err := js.PublishAsync(events.KeySubject(vid, name), raw); err != nil {
			t.Fatal(err)
		}
		ids[r.ID] = true
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		t.Fatal("publishing the keys timed out")
	}
	return ids
}

// TestKeysExportStreamsEveryKeyInBoundedMessages lists more keys than
// one NATS message can hold (limit=-1 and a long page): the API answers
// the whole list, every key once, and no NATS message of the query
// exceeds the chunk budget.
func TestKeysExportStreamsEveryKeyInBoundedMessages(t *testing.T) {
	const n = 2500 // ~3.5 MB of CCKM JSON: more than the 1 MiB max_payload
	e := setup(t)
	ids := e.startInventory(t, n)

	var sizes msgSizes
	spy, _ := natstest.Connect(t, e.ns)
	for _, subj := range []string{events.QueryGroup + ".>", nats.InboxPrefix + ">"} {
		if _, err := spy.Subscribe(subj, sizes.record); err != nil {
			t.Fatal(err)
		}
	}
	if err := spy.Flush(); err != nil {
		t.Fatal(err)
	}

	r := e.as(t, "victor", "GET", keysPath+"?limit=-1", "")
	r.wantStatus(t, http.StatusOK)
	var page httpapi.Page[httpapi.KeyJSON]
	r.decode(t, &page)
	if page.Total != n || page.Limit != events.LimitAll || page.Skip != 0 || len(page.Resources) != n {
		t.Fatalf("limit=-1: skip %d limit %d total %d, %d resources; want total and resources %d",
			page.Skip, page.Limit, page.Total, len(page.Resources), n)
	}
	seen := map[string]bool{}
	for i, k := range page.Resources {
		if !ids[k.ID] || seen[k.ID] {
			t.Fatalf("resource %d: key %s unknown or listed twice", i, k.ID)
		}
		seen[k.ID] = true
		if i > 0 && k.CreatedAt > page.Resources[i-1].CreatedAt {
			t.Fatalf("resource %d is out of the default -createdAt order", i)
		}
	}

	maxSize, total, count := sizes.snapshot()
	t.Logf("limit=-1 over %d keys: %d NATS messages, %d bytes, largest %d", n, count, total, maxSize)
	if maxSize > events.MaxChunkBytes {
		t.Fatalf("a query message of %d bytes exceeds the %d-byte chunk budget", maxSize, events.MaxChunkBytes)
	}
	if total <= int(spy.MaxPayload()) {
		t.Fatalf("the export moved only %d bytes: it does not test more than one max_payload", total)
	}

	t.Run("a long page is streamed too", func(t *testing.T) {
		r := e.as(t, "victor", "GET", keysPath+"?limit=700&skip=1000&enabled=true", "")
		r.wantStatus(t, http.StatusOK)
		var p httpapi.Page[httpapi.KeyJSON]
		r.decode(t, &p)
		if p.Total != n*3/4 || p.Limit != 700 || p.Skip != 1000 || len(p.Resources) != 700 {
			t.Fatalf("skip %d limit %d total %d, %d resources", p.Skip, p.Limit, p.Total, len(p.Resources))
		}
	})
	t.Run("a short page is one reply", func(t *testing.T) {
		r := e.as(t, "victor", "GET", keysPath+"?limit=5&sort=key_name", "")
		r.wantStatus(t, http.StatusOK)
		var p httpapi.Page[httpapi.KeyJSON]
		r.decode(t, &p)
		if p.Total != n || len(p.Resources) != 5 || p.Resources[0].KeyName != "key-00000" {
			t.Fatalf("total %d, %d resources", p.Total, len(p.Resources))
		}
	})
	t.Run("a bad query is refused before streaming", func(t *testing.T) {
		e.as(t, "victor", "GET", keysPath+"?limit=-1&sort=bogus", "").
			wantError(t, http.StatusBadRequest, "NCERRInvalidParamValue", "sort")
	})
}
