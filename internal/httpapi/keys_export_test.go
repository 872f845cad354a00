package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
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

// runInventory runs a worker's inventory (projector and query service)
// over its own store on the env's NATS server.
func (e *env) runInventory(t *testing.T) (*store.Store, jetstream.JetStream, *inventory.Projector) {
	t.Helper()
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
	return st, js, proj
}

// testKey is a realistic 2048-bit RSA key record, the i-th of vault vid.
func testKey(vid string, vault, i int, now time.Time) events.KeyRecord {
	name := fmt.Sprintf("key-%05d", i)
	version := fmt.Sprintf("%032x", i)
	return events.KeyRecord{
		ID: events.KeyID(vid, name), VaultID: vid, VaultName: fmt.Sprintf("kv-%d", vault), SubscriptionID: testSub,
		Cloud: "AzureCloud", Name: name, Version: version, Kty: "RSA", KeySize: 2048,
		Kid:    fmt.Sprintf("https://kv-%d.vault.azure.net/keys/%s/%s", vault, name, version),
		KeyOps: []string{"sign", "verify", "wrapKey", "unwrapKey"}, N: testModulus, E: "AQAB", Enabled: i%4 != 0,
		Created: now.Unix(), Updated: now.Unix(), RecoveryLevel: "Recoverable+Purgeable", RecoverableDays: 90,
		Tags: map[string]string{"env": "prod"}, JobID: "0b6f3f9e-7a51-4c1e-9d55-0c1b2f0e9a11",
		FirstSeenAt: now.Add(time.Duration(i) * time.Millisecond), ChangedAt: now, SyncedAt: now,
	}
}

var testModulus = strings.Repeat("sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDX", 5)[:342]

// startInventory runs an inventory and publishes n key records of a few
// vaults to the KEYS stream. It returns the ids.
func (e *env) startInventory(t *testing.T, n int) map[string]bool {
	t.Helper()
	ctx := testCtx(t)
	_, js, proj := e.runInventory(t)
	ids := map[string]bool{}
	vaults := []string{events.NewID(), events.NewID(), events.NewID()}
	now := time.Now().UTC()
	for i := range n {
		vid := vaults[i%len(vaults)]
		r := testKey(vid, i%len(vaults), i, now)
		raw, _ := json.Marshal(r)
		if _, err := js.PublishAsync(events.KeySubject(vid, r.Name), raw); err != nil {
			t.Fatal(err)
		}
		ids[r.ID] = true
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		t.Fatal("publishing the keys timed out")
	}
	// The inventory holds them all before the test asks: on a loaded
	// machine applying 2,500 keys can outlast a query's catch-up wait.
	st, err := js.Stream(ctx, events.StreamKeys)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := proj.WaitAdvancing(ctx, inventory.SourceKeys, info.State.LastSeq, 30*time.Second); err != nil {
		t.Fatalf("inventory: %v", err)
	}
	return ids
}

// TestKeysExportStreamsEveryKeyInBoundedMessages lists more keys than
// one NATS message can hold (limit=-1 and a long page): the API answers
// the whole list, every key once, and no NATS message of the query
// exceeds the chunk budget.
func TestKeysExportStreamsEveryKeyInBoundedMessages(t *testing.T) {
	t.Parallel()
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
	t.Run("keys.list refuses pages longer than MaxPageLimit", func(t *testing.T) {
		for _, limit := range []int{events.LimitAll, events.MaxPageLimit + 1} {
			body, _ := json.Marshal(events.KeyQuery{Limit: limit})
			msg, err := spy.Request(events.QuerySubject(events.QueryKeysList), body, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			var reply events.QueryReply[events.KeyPage]
			if err := json.Unmarshal(msg.Data, &reply); err != nil {
				t.Fatal(err)
			}
			if reply.Error == nil || reply.Error.Code != events.QueryErrBadRequest {
				t.Fatalf("keys.list with limit %d answered %d bytes without a bad_request error", limit, len(msg.Data))
			}
		}
	})
	t.Run("a bad query is refused before streaming", func(t *testing.T) {
		e.as(t, "victor", "GET", keysPath+"?limit=-1&sort=bogus", "").
			wantError(t, http.StatusBadRequest, "NCERRInvalidParamValue", "sort")
	})
}

// TestKeysExportAtScale is the P5 export figure: limit=-1 over
// AKVSYNC_EXPORT_KEYS keys (e.g. 1000000; skipped when unset), loaded
// straight into the worker's store, read by a streaming client. It
// reports the time, the bytes and the peak Go heap of the process that
// runs both the API and the worker side, and checks every key arrives
// once (strictly decreasing createdAt, as each key has its own).
//
//	AKVSYNC_EXPORT_KEYS=1000000 go test ./internal/httpapi -run TestKeysExportAtScale -v -timeout 30m
func TestKeysExportAtScale(t *testing.T) {
	t.Parallel()
	n, _ := strconv.Atoi(os.Getenv("AKVSYNC_EXPORT_KEYS"))
	if n <= 0 {
		t.Skip("set AKVSYNC_EXPORT_KEYS to run")
	}
	e := setup(t)
	st, _, _ := e.runInventory(t)
	vaults := make([]string, (n+999)/1000)
	for i := range vaults {
		vaults[i] = events.NewID()
	}
	now := time.Now().UTC()
	start := time.Now()
	var b store.Batch
	for i := range n {
		b.Keys = append(b.Keys, testKey(vaults[i/1000], i/1000, i, now))
		if len(b.Keys) == 5000 || i == n-1 {
			if err := st.Apply(context.Background(), b); err != nil {
				t.Fatal(err)
			}
			b.Keys = b.Keys[:0]
		}
	}
	b.Keys = nil
	t.Logf("loaded %d keys in %s", n, time.Since(start).Round(time.Millisecond))
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()

	start = time.Now()
	req, _ := http.NewRequest("GET", e.srv.URL+keysPath+"?limit=-1", nil)
	req.Header.Set("Authorization", "Bearer "+e.tokens["victor"])
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	cr := &countingReader{r: resp.Body}
	dec := json.NewDecoder(cr)
	var head struct{ Skip, Limit, Total int }
	count, last := 0, ""
	for {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		if key, ok := tok.(string); ok {
			switch key {
			case "skip", "limit", "total":
				var v int
				if err := dec.Decode(&v); err != nil {
					t.Fatal(err)
				}
				switch key {
				case "skip":
					head.Skip = v
				case "limit":
					head.Limit = v
				default:
					head.Total = v
				}
				continue
			case "resources":
			default:
				t.Fatalf("unexpected field %q", key)
			}
			if _, err := dec.Token(); err != nil { // [
				t.Fatal(err)
			}
			for dec.More() {
				var k struct {
					CreatedAt string `json:"createdAt"`
				}
				if err := dec.Decode(&k); err != nil {
					t.Fatal(err)
				}
				if last != "" && k.CreatedAt >= last {
					t.Fatalf("resource %d: createdAt %s not below %s: a key repeated or out of order", count, k.CreatedAt, last)
				}
				last = k.CreatedAt
				count++
			}
			break
		}
	}
	took := time.Since(start)
	close(stop)
	<-sampled
	if head.Total != n || head.Limit != events.LimitAll || count != n {
		t.Fatalf("limit=-1: total %d limit %d, %d resources; want %d", head.Total, head.Limit, count, n)
	}
	t.Logf("limit=-1 over %d keys: %d resources, %.1f MB in %s (%.0f keys/s); Go heap in use: %.1f MB before, peak %.1f MB during",
		n, count, float64(cr.n)/1e6, took.Round(time.Millisecond), float64(n)/took.Seconds(),
		float64(base)/1e6, float64(peak.Load())/1e6)

	// The P5 key lists through HTTPS and NATS: p50 of 50 runs each.
	vault := vaults[len(vaults)/2]
	for _, c := range []struct{ name, query string }{
		{"default page", ""},
		{"by vault", "key_vault_id=" + vault},
		{"by vault name", fmt.Sprintf("key_vault=kv-%d::%s", len(vaults)/2, testSub)},
		{"by key name", "key_name=key-00500"},
		{"enabled=false", "enabled=false"},
		{"key_size=2048", "key_size=2048"},
		{"deep skip", fmt.Sprintf("skip=%d", n/2)},
		{"sort=key_name", "sort=key_name&skip=1000"},
		{"sort=-syncedAt", "sort=-syncedAt"},
		{"all 1,000 keys of one vault", "key_vault_id=" + vault + "&limit=-1"},
	} {
		var times []time.Duration
		for range 50 {
			start := time.Now()
			r := e.as(t, "victor", "GET", keysPath+"?"+c.query, "")
			times = append(times, time.Since(start))
			r.wantStatus(t, http.StatusOK)
		}
		slices.Sort(times)
		t.Logf("HTTP %-28s p50 %s", c.name, times[len(times)/2].Round(10*time.Microsecond))
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
