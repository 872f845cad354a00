package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// runFigures runs the selected figures in figureOrder.
func (e *env) runFigures(ctx context.Context) *report {
	rep := &report{Started: time.Now(), Machine: describeMachine(), Command: "akvsync-bench " + strings.Join(os.Args[1:], " ")}
	fns := map[string]func(context.Context, *figureResult) error{
		figP1: e.figP1, figP2: e.figP2, figP4: e.figP4, figFlat: e.figFlat, figP5: e.figP5,
		figStorage: e.figStorage, figP6: e.figP6, figFanout: e.figFanout, figFresh: e.figFresh,
	}
	for _, name := range figureOrder {
		if !e.o.figures[name] || ctx.Err() != nil {
			continue
		}
		f := &figureResult{Figure: name, Sizes: map[string]string{}}
		e.logf("figure %s …", name)
		start := time.Now()
		if err := fns[name](ctx, f); err != nil {
			f.Error = err.Error()
			e.logf("figure %s failed: %v", name, err)
		}
		f.Seconds = time.Since(start).Seconds()
		rep.Figures = append(rep.Figures, f)
	}
	if e.live != nil {
		e.live.stop()
		e.live = nil
	}
	return rep
}

func sizes(f *figureResult, kv ...any) {
	for i := 0; i+1 < len(kv); i += 2 {
		f.Sizes[fmt.Sprint(kv[i])] = fmt.Sprint(kv[i+1])
	}
}

// figP1: sync-all at Azure's default limits (one subscription) and a
// fixed latency; the wall time against the time Azure's subscription
// limit allows for the calls made.
func (e *env) figP1(ctx context.Context, f *figureResult) error {
	s := emuSpec{vaults: e.o.p1Vaults, keys: e.o.p1Keys, subscriptions: 1, latency: e.o.p1Latency, limits: true}
	sizes(f, "vaults", s.vaults, "keys_per_vault", s.keys, "latency", s.latency, "subscriptions", 1)
	em, err := e.startEmulator(ctx, "emulator-p1", s)
	if err != nil {
		return err
	}
	defer em.p.stop()
	d, err := e.startEmbedded(ctx, "embedded-p1", em, false)
	if err != nil {
		return err
	}
	defer d.stop()
	if err := d.register(ctx, em, false); err != nil {
		return err
	}
	if err := em.resetCounters(ctx); err != nil {
		return err
	}
	res, err := d.syncAll(ctx, s.totalKeys(), 100*time.Millisecond, e.o.timeout)
	if err != nil {
		return err
	}
	c, err := em.counters(ctx)
	if err != nil {
		return err
	}
	e.addLimitRows(f, res, c, s, "")
	return nil
}

// addLimitRows reports a sync at Azure's limits: wall time against calls
// ÷ 2,000/s, the share of 429 answers, and the calls against the minimum.
func (e *env) addLimitRows(f *figureResult, res syncResult, c callCounts, s emuSpec, prefix string) {
	wall := res.Completed.Seconds()
	ideal := float64(c.Calls) / AzureSubscriptionRate
	f.add(row{Metric: prefix + "wall time ÷ (calls ÷ 2,000/s)", Value: wall, Unit: "s", Baseline: &ideal, BaselineName: "calls ÷ 2,000/s", Goal: atMost(1.05),
		Note: fmt.Sprintf("%d keys, job completed in %s, queryable in %s (%.0f keys/s)", res.Keys,
			res.Completed.Round(time.Millisecond), res.Queryable.Round(time.Millisecond), res.keysPerSecond())})
	pct := 0.0
	if c.Calls > 0 {
		pct = 100 * float64(c.Throttled) / float64(c.Calls)
	}
	f.add(row{Metric: prefix + "429 answers", Value: pct, Unit: "%", Goal: valueAtMost(0.1),
		Note: fmt.Sprintf("%d of %d calls", c.Throttled, c.Calls)})
	minimum := float64(s.minimumCalls())
	f.add(row{Metric: prefix + "calls ÷ (list pages + keys)", Value: float64(c.Calls), Unit: "calls", Baseline: &minimum, BaselineName: "list pages + keys",
		Goal: atMost(1.001), Note: fmt.Sprintf("list pages %d, GetKey %d, 429 %d, other errors %d; %d 401 challenge probes not counted",
			c.ListPages, c.GetKeys, c.Throttled, c.Errors, c.Challenges)})
}

// figP2: zero-latency embedded keys/s against a direct azkeys→bbolt loop
// over the same vaults of the same emulator.
func (e *env) figP2(ctx context.Context, f *figureResult) error {
	sizes(f, "vaults", e.o.p2Vaults, "keys_per_vault", e.o.p2Keys, "latency", 0, "throttling", "off")
	fx, err := e.fixture(ctx, e.o.p2Vaults, e.o.p2Keys)
	if err != nil {
		return err
	}
	// The loop runs before and after the embedded sync, and the two runs
	// are averaged, so a machine whose load drifts during the figure
	// biases neither side.
	loop := func() (time.Duration, error) {
		dir, err := e.subdir("baseline")
		if err != nil {
			return 0, err
		}
		e.logf("baseline: azkeys→bbolt loop over %d vaults × %d keys …", fx.vaults, fx.keys)
		n, took, err := runBaseline(ctx, fx.em, dir)
		if err != nil {
			return 0, fmt.Errorf("baseline: %w", err)
		}
		if n != fx.vaults*fx.keys {
			return 0, fmt.Errorf("baseline wrote %d keys, want %d", n, fx.vaults*fx.keys)
		}
		e.logf("baseline: %d keys in %s (%.0f keys/s)", n, took.Round(time.Millisecond), float64(n)/took.Seconds())
		return took, nil
	}
	before, err := loop()
	if err != nil {
		return err
	}
	if fx, err = e.ensureSynced(ctx, e.o.p2Vaults, e.o.p2Keys); err != nil {
		return err
	}
	after, err := loop()
	if err != nil {
		return err
	}
	base := float64(fx.vaults*fx.keys) / ((before + after).Seconds() / 2)
	f.add(row{Metric: "embedded keys/s ÷ azkeys→bbolt loop", Value: fx.sync.keysPerSecond(), Unit: "keys/s", Baseline: &base, BaselineName: "loop",
		Goal: atLeast(0.85), Note: fmt.Sprintf("embedded: %d keys queryable in %s; loop (mean of the runs before and after): %s and %s",
			fx.sync.Keys, fx.sync.Queryable.Round(time.Millisecond), before.Round(time.Millisecond), after.Round(time.Millisecond))})
	return nil
}

// figFlat: keys/s of the big inventory against the smaller one.
func (e *env) figFlat(ctx context.Context, f *figureResult) error {
	sizes(f, "small", fmt.Sprintf("%d×%d", e.o.p2Vaults, e.o.p2Keys), "big", fmt.Sprintf("%d×%d", e.o.bigVaults, e.o.bigKeys), "latency", 0, "throttling", "off")
	small, err := e.ensureSynced(ctx, e.o.p2Vaults, e.o.p2Keys)
	if err != nil {
		return err
	}
	big, err := e.ensureSynced(ctx, e.o.bigVaults, e.o.bigKeys)
	if err != nil {
		return err
	}
	base := small.sync.keysPerSecond()
	f.add(row{Metric: fmt.Sprintf("keys/s at %d×%d ÷ at %d×%d", big.vaults, big.keys, small.vaults, small.keys), Value: big.sync.keysPerSecond(), Unit: "keys/s",
		Baseline: &base, BaselineName: fmt.Sprintf("%d×%d", small.vaults, small.keys), Goal: atLeast(0.9),
		Note: fmt.Sprintf("%d keys queryable in %s; %d keys in %s", big.sync.Keys, big.sync.Queryable.Round(time.Millisecond), small.sync.Keys, small.sync.Queryable.Round(time.Millisecond))})
	return nil
}

// liveSynced returns the synced fixture with its processes running.
func (e *env) liveSynced(ctx context.Context, vaults, keys int) (*fixture, error) {
	fx, err := e.ensureSynced(ctx, vaults, keys)
	if err != nil {
		return nil, err
	}
	if fx.d == nil { // stopped by another figure: start and sync again
		fx.synced = false
		return e.ensureSynced(ctx, vaults, keys)
	}
	return fx, nil
}

// figP5: p50 of filtered key lists through the HTTP API over the big
// inventory, and a full export with limit=-1.
func (e *env) figP5(ctx context.Context, f *figureResult) error {
	sizes(f, "vaults", e.o.bigVaults, "keys_per_vault", e.o.bigKeys, "repeat", e.o.p5Repeat)
	fx, err := e.liveSynced(ctx, e.o.bigVaults, e.o.bigKeys)
	if err != nil {
		return err
	}
	c := fx.d.c
	total := fx.sync.Keys
	var vaults struct {
		Resources []struct {
			Name string `json:"name"`
		} `json:"resources"`
	}
	if err := c.call(ctx, http.MethodGet, fmt.Sprintf("/api/v1/cckm/azure/vaults?limit=1&skip=%d", fx.vaults/2), nil, &vaults); err != nil {
		return err
	}
	var keys struct {
		Resources []struct {
			KeyName string `json:"key_name"`
		} `json:"resources"`
	}
	if err := c.call(ctx, http.MethodGet, fmt.Sprintf("/api/v1/cckm/azure/keys?limit=1&skip=%d", total/3), nil, &keys); err != nil {
		return err
	}
	if len(vaults.Resources) == 0 || len(keys.Resources) == 0 {
		return errors.New("no vault or key to query")
	}
	vault := url.QueryEscape(vaults.Resources[0].Name)
	for _, q := range []struct {
		metric, query string
		goalMs        float64
	}{
		{"by vault (page of 10)", "key_vault=" + vault + "&limit=10", 10},
		{"by key name", "key_name=" + url.QueryEscape(keys.Resources[0].KeyName), 10},
		{"enabled=false", "enabled=false&limit=10", 10},
		{"key_size=4096", "key_size=4096&limit=10", 10},
		{"gone=true", "gone=true&limit=10", 10},
		{"deep skip", fmt.Sprintf("skip=%d&limit=10", total*9/10), 10},
		{"sort=key_name", "sort=key_name&limit=10", 10},
		{"newest (sort=-updatedAt)", "sort=-updatedAt&limit=10", 10},
		{fmt.Sprintf("one vault, all %d keys", fx.keys), fmt.Sprintf("key_vault=%s&limit=%d", vault, fx.keys), 50},
	} {
		lat, err := repeatGet(ctx, c, "/api/v1/cckm/azure/keys?"+q.query, e.o.p5Repeat)
		if err != nil {
			return fmt.Errorf("%s: %w", q.metric, err)
		}
		f.add(row{Metric: "p50 " + q.metric, Value: percentile(lat, 50), Unit: "ms", Goal: valueBelow(q.goalMs),
			Note: fmt.Sprintf("p90 %.2f ms over %d requests: ?%s", percentile(lat, 90), len(lat), q.query)})
	}
	ex, err := export(ctx, c, fx.d.api.pid())
	if err != nil && ex.status == 0 {
		return err
	}
	note := fmt.Sprintf("%.2f s, %.1f MB, status %d", ex.took.Seconds(), float64(ex.bytes)/mb, ex.status)
	if err != nil { // an answer, but not the export: a measured failure
		note = err.Error()
	}
	f.add(row{Metric: "export limit=-1: keys", Value: float64(ex.keys), Unit: "keys", Baseline: ptr(float64(total)), BaselineName: "synced", Goal: atLeast(1), Note: note})
	if err != nil {
		return nil
	}
	f.add(row{Metric: "export limit=-1: time", Value: ex.took.Seconds(), Unit: "s"})
	f.add(row{Metric: "export limit=-1: embedded RSS peak", Value: float64(ex.peakRSS) / mb, Unit: "MB",
		Note: fmt.Sprintf("RSS %.0f MB before the export", float64(ex.before)/mb)})
	return nil
}

// repeatGet times n GETs of path (after one that must answer 200) and
// returns their latencies in ms.
func repeatGet(ctx context.Context, c *apiClient, path string, n int) ([]float64, error) {
	if _, code, _, err := c.timedGet(ctx, path); err != nil || code != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %d %v", path, code, err)
	}
	out := make([]float64, 0, n)
	for range n {
		d, code, _, err := c.timedGet(ctx, path)
		if err != nil {
			return nil, err
		}
		if code != http.StatusOK {
			return nil, fmt.Errorf("GET %s: %d", path, code)
		}
		out = append(out, float64(d.Microseconds())/1000)
	}
	return out, nil
}

// percentile returns the p-th percentile (nearest rank) of xs.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.5) - 1
	return s[max(0, min(len(s)-1, i))]
}

// exportResult is one GET /keys?limit=-1.
type exportResult struct {
	keys          int
	bytes         int64
	took          time.Duration
	status        int
	before        int64
	peakRSS, hwm  int64
	firstByteTook time.Duration
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// export streams GET /keys?limit=-1, counting the resources without
// holding them, while sampling the serving process's memory.
func export(ctx context.Context, c *apiClient, pid int) (exportResult, error) {
	var ex exportResult
	m, _ := readMemory(pid)
	ex.before = m.RSS
	s := sampleMemory(pid, 100*time.Millisecond)
	start := time.Now()
	resp, err := c.stream(ctx, "/api/v1/cckm/azure/keys?limit=-1")
	if err != nil {
		s.stop()
		return ex, err
	}
	defer resp.Body.Close()
	ex.firstByteTook = time.Since(start)
	ex.status = resp.StatusCode
	cr := &countingReader{r: resp.Body}
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(io.LimitReader(cr, 300))
		ex.took = time.Since(start)
		ex.peakRSS, ex.hwm = s.stop()
		return ex, fmt.Errorf("export: %d %s", resp.StatusCode, raw)
	}
	n, err := countResources(json.NewDecoder(cr))
	ex.took = time.Since(start)
	ex.peakRSS, ex.hwm = s.stop()
	ex.keys, ex.bytes = n, cr.n
	return ex, err
}

// countResources walks a list envelope and counts its resources.
func countResources(dec *json.Decoder) (int, error) {
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return 0, fmt.Errorf("export: not an object (%v)", err)
	}
	n := 0
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return n, err
		}
		if t != "resources" {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return n, err
			}
			continue
		}
		if t, err := dec.Token(); err != nil || t != json.Delim('[') {
			return n, fmt.Errorf("export: resources is not an array (%v)", err)
		}
		for dec.More() {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return n, err
			}
			n++
		}
		if _, err := dec.Token(); err != nil {
			return n, err
		}
	}
	return n, nil
}

// figStorage: bbolt bytes in use per key (every bucket, indexes included)
// against the key's CCKM JSON record.
func (e *env) figStorage(ctx context.Context, f *figureResult) error {
	sizes(f, "vaults", e.o.bigVaults, "keys_per_vault", e.o.bigKeys)
	fx, err := e.liveSynced(ctx, e.o.bigVaults, e.o.bigKeys)
	if err != nil {
		return err
	}
	var page struct {
		Resources []json.RawMessage `json:"resources"`
	}
	if err := fx.d.c.call(ctx, http.MethodGet, fmt.Sprintf("/api/v1/cckm/azure/keys?limit=%d", min(fx.sync.Keys, 1000)), nil, &page); err != nil {
		return err
	}
	if len(page.Resources) == 0 {
		return errors.New("no key records")
	}
	jsonBytes := 0
	for _, r := range page.Resources {
		jsonBytes += len(r)
	}
	avgJSON := float64(jsonBytes) / float64(len(page.Resources))
	// bbolt locks its file: stop the embedded process to read it.
	fx.stop()
	e.live = nil
	st, err := boltUsage(fx.inventory)
	if err != nil {
		return err
	}
	keys := float64(fx.sync.Keys)
	f.add(row{Metric: "bbolt bytes in use per key ÷ CCKM JSON record", Value: float64(st.inuse) / keys, Unit: "bytes/key", Baseline: &avgJSON, BaselineName: "JSON record",
		Goal: atMost(1.5), Note: fmt.Sprintf("%d keys; %d buckets; JSON record averaged over %d keys", fx.sync.Keys, st.buckets, len(page.Resources))})
	f.add(row{Metric: "bbolt bytes allocated per key ÷ CCKM JSON record", Value: float64(st.alloc) / keys, Unit: "bytes/key", Baseline: &avgJSON, BaselineName: "JSON record"})
	f.add(row{Metric: "bbolt file per key", Value: float64(st.file) / keys, Unit: "bytes/key", Note: fmt.Sprintf("file %.1f MB", float64(st.file)/mb)})
	return nil
}

type boltStats struct {
	inuse, alloc, file int64
	buckets            int
}

// boltUsage sums the page usage of every top-level bucket (bbolt's
// bucket stats include nested buckets).
func boltUsage(path string) (boltStats, error) {
	var st boltStats
	db, err := bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true, Timeout: 10 * time.Second})
	if err != nil {
		return st, fmt.Errorf("open inventory: %w", err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		st.file = tx.Size()
		return tx.ForEach(func(_ []byte, b *bolt.Bucket) error {
			s := b.Stats()
			st.inuse += int64(s.BranchInuse + s.LeafInuse)
			st.alloc += int64(s.BranchAlloc + s.LeafAlloc)
			st.buckets += s.BucketN
			return nil
		})
	})
	return st, err
}

// figP6: memory. A worker process syncing the P6 inventory (distributed:
// nats-server, API, one worker), the embedded process syncing the same,
// and the API process serving the limit=-1 export.
func (e *env) figP6(ctx context.Context, f *figureResult) error {
	sizes(f, "vaults", e.o.p6Vaults, "keys_per_vault", e.o.p6Keys, "latency", 0, "throttling", "off")
	if e.o.p6Embedded {
		fx, err := e.ensureSynced(ctx, e.o.p6Vaults, e.o.p6Keys)
		if err != nil {
			return err
		}
		f.add(row{Metric: fmt.Sprintf("embedded process RSS syncing %d keys", fx.sync.Keys), Value: float64(max(fx.peakRSS, fx.hwm)) / mb, Unit: "MB",
			Note: fmt.Sprintf("peak sampled VmRSS %.0f MB, VmHWM %.0f MB", float64(fx.peakRSS)/mb, float64(fx.hwm)/mb)})
	}
	if e.live != nil {
		e.live.stop()
		e.live = nil
	}
	s := emuSpec{vaults: e.o.p6Vaults, keys: e.o.p6Keys, subscriptions: fixtureSubscriptions}
	em, err := e.startEmulator(ctx, "emulator-p6", s)
	if err != nil {
		return err
	}
	defer em.p.stop()
	d, err := e.startDistributed(ctx, "distributed-p6", em, 1, "--vault-rate", "-1", "--subscription-rate", "-1")
	if err != nil {
		return err
	}
	defer d.stop()
	if err := d.register(ctx, em, false); err != nil {
		return err
	}
	e.logf("distributed sync-all of %d keys, one worker …", s.totalKeys())
	w := sampleMemory(d.workers[0].pid(), 250*time.Millisecond)
	res, err := d.syncAll(ctx, s.totalKeys(), 100*time.Millisecond, e.o.timeout)
	peak, hwm := w.stop()
	if err != nil {
		return err
	}
	f.add(row{Metric: fmt.Sprintf("worker process RSS syncing %d keys", res.Keys), Value: float64(max(peak, hwm)) / mb, Unit: "MB", Goal: valueBelow(250),
		Note: fmt.Sprintf("VmHWM %.0f MB, peak sampled VmRSS %.0f MB; %d keys queryable in %s (%.0f keys/s)",
			float64(hwm)/mb, float64(peak)/mb, res.Keys, res.Queryable.Round(time.Millisecond), res.keysPerSecond())})
	f.add(row{Metric: "worker process anonymous memory (RssAnon peak)", Value: float64(w.peakAnon()) / mb, Unit: "MB",
		Note: "heap and stacks; the rest of the RSS above is the worker's mapped bbolt file (RssFile), pages the kernel can reclaim"})
	ex, err := export(ctx, d.c, d.api.pid())
	if err != nil && ex.status == 0 {
		return err
	}
	note := fmt.Sprintf("%.0f MB before; %d keys, %.1f MB in %.2f s", float64(ex.before)/mb, ex.keys, float64(ex.bytes)/mb, ex.took.Seconds())
	if err != nil {
		note = fmt.Sprintf("%.0f MB before; the export failed: %v", float64(ex.before)/mb, err)
	}
	f.add(row{Metric: "API process RSS serving the limit=-1 export", Value: float64(ex.peakRSS) / mb, Unit: "MB", Note: note})
	return nil
}

// figP4: horizontal scale on the nats-server binary, and N workers on one
// subscription at Azure's limits.
func (e *env) figP4(ctx context.Context, f *figureResult) error {
	n := e.o.p4Workers
	s := emuSpec{vaults: e.o.p4Vaults, keys: e.o.p4Keys, subscriptions: 1, latency: e.o.p4Latency, limits: true}
	sl := emuSpec{vaults: e.o.p4LVaults, keys: e.o.p4LKeys, subscriptions: 1, latency: e.o.p4LLatency, limits: true}
	sizes(f, "vaults", s.vaults, "keys_per_vault", s.keys, "latency", s.latency, "workers", n,
		"limits_vaults", sl.vaults, "limits_keys_per_vault", sl.keys, "limits_latency", sl.latency)
	var workerArgs []string
	if e.o.p4VaultPar > 0 {
		workerArgs = []string{"--vault-parallelism", strconv.Itoa(e.o.p4VaultPar)}
		sizes(f, "vault_parallelism", e.o.p4VaultPar)
	}
	em, err := e.startEmulator(ctx, "emulator-p4", s)
	if err != nil {
		return err
	}
	results := map[int]syncResult{}
	for _, workers := range []int{1, n} {
		if _, done := results[workers]; done {
			continue
		}
		d, err := e.startDistributed(ctx, fmt.Sprintf("p4-%dworkers", workers), em, workers, workerArgs...)
		if err != nil {
			_ = em.p.stop()
			return err
		}
		if err = d.register(ctx, em, false); err == nil {
			e.logf("distributed sync-all, %d worker(s) …", workers)
			results[workers], err = d.syncAll(ctx, s.totalKeys(), 100*time.Millisecond, e.o.timeout)
		}
		d.stop()
		if err != nil {
			_ = em.p.stop()
			return err
		}
		e.logf("%d worker(s): completed in %s", workers, results[workers].Completed.Round(time.Millisecond))
	}
	_ = em.p.stop()
	one, many := results[1], results[n]
	base := 1 / one.Completed.Seconds()
	f.add(row{Metric: fmt.Sprintf("%d workers ÷ 1 (syncs per second)", n), Value: 1 / many.Completed.Seconds(), Unit: "syncs/s", Baseline: &base, BaselineName: "1 worker",
		Goal: atLeast(0.875 * float64(n)), Note: fmt.Sprintf("1 worker %s, %d workers %s", one.Completed.Round(time.Millisecond), n, many.Completed.Round(time.Millisecond))})

	em, err = e.startEmulator(ctx, "emulator-p4-limits", sl)
	if err != nil {
		return err
	}
	defer em.p.stop()
	d, err := e.startDistributed(ctx, fmt.Sprintf("p4-limits-%dworkers", n), em, n, workerArgs...)
	if err != nil {
		return err
	}
	defer d.stop()
	if err := d.register(ctx, em, false); err != nil {
		return err
	}
	if err := em.resetCounters(ctx); err != nil {
		return err
	}
	e.logf("distributed sync-all at Azure's limits, %d workers on one subscription …", n)
	res, syncErr := d.syncAll(ctx, sl.totalKeys(), 100*time.Millisecond, e.o.timeout)
	c, err := em.counters(ctx)
	if err != nil {
		return err
	}
	f.add(row{Metric: fmt.Sprintf("429 answers, %d workers on one subscription", n), Value: float64(c.Throttled), Unit: "answers", Goal: valueAtMost(0),
		Note: fmt.Sprintf("%d calls (minimum %d)", c.Calls, sl.minimumCalls())})
	if syncErr != nil {
		return syncErr
	}
	e.addLimitRows(f, res, c, sl, fmt.Sprintf("%d workers: ", n))
	return nil
}

// figFanout: sync-all over many vaults on one machine; job GET and jobs
// list latency while it runs.
func (e *env) figFanout(ctx context.Context, f *figureResult) error {
	s := emuSpec{vaults: e.o.fanVaults, keys: e.o.fanKeys, subscriptions: fixtureSubscriptions, hostRouting: e.o.fanHostRouting}
	sizes(f, "vaults", s.vaults, "keys_per_vault", s.keys, "host_routing", s.hostRouting, "extra_workers", e.o.fanWorkers, "throttling", "off")
	if e.live != nil {
		e.live.stop()
		e.live = nil
	}
	em, err := e.startEmulator(ctx, "emulator-fanout", s)
	if err != nil {
		return err
	}
	defer em.p.stop()
	d, err := e.startEmbedded(ctx, "embedded-fanout", em, e.o.fanWorkers > 0, "--vault-rate", "-1", "--subscription-rate", "-1")
	if err != nil {
		return err
	}
	defer d.stop()
	for i := range e.o.fanWorkers {
		if err := d.startWorker(e, em, i+1, "--vault-rate", "-1", "--subscription-rate", "-1"); err != nil {
			return err
		}
	}
	regStart := time.Now()
	if err := d.register(ctx, em, s.hostRouting); err != nil {
		return err
	}
	e.logf("registered %d vaults in %s", s.vaults, time.Since(regStart).Round(time.Millisecond))
	start := time.Now()
	job, accepted, err := d.startSyncAll(ctx)
	if err != nil {
		return err
	}
	f.add(row{Metric: fmt.Sprintf("sync-all of %d vaults accepted", s.vaults), Value: float64(accepted.Microseconds()) / 1000, Unit: "ms", Goal: valueBelow(5000)})
	var jobLat, listLat []float64
	failures := map[string]int{}
	status := ""
	jobPath := "/api/v1/cckm/azure/synchronization-jobs/" + job.ID
	err = waitFor(ctx, e.o.timeout, 250*time.Millisecond, func() error {
		for _, p := range append([]*proc{d.api}, d.workers...) {
			if err := p.exited(); err != nil {
				return fmt.Errorf("%w: %w", errProcessDied, err)
			}
		}
		t0 := time.Now()
		code, raw, err := d.c.raw(ctx, http.MethodGet, jobPath, nil, true)
		if err != nil {
			return err
		}
		if code == http.StatusUnauthorized {
			return d.c.login(ctx)
		}
		if code != http.StatusOK {
			failures["job GET "+strconv.Itoa(code)]++
		} else {
			jobLat = append(jobLat, float64(time.Since(t0).Microseconds())/1000)
			var j jobView
			if err := json.Unmarshal(raw, &j); err != nil {
				return err
			}
			status = j.OverallStatus
		}
		lt, lcode, _, err := d.c.timedGet(ctx, "/api/v1/cckm/azure/synchronization-jobs?limit=10")
		if err != nil {
			return err
		}
		if lcode != http.StatusOK {
			failures["jobs list "+strconv.Itoa(lcode)]++
		} else {
			listLat = append(listLat, float64(lt.Microseconds())/1000)
		}
		if status == "" || status == "in_progress" {
			return fmt.Errorf("job %s", status)
		}
		return nil
	})
	completed := time.Since(start)
	done := 0.0
	if err == nil && status == "completed" {
		done = 1
	}
	note := fmt.Sprintf("job %s after %s", orNone(status), completed.Round(time.Millisecond))
	if s.hostRouting && status != "completed" {
		note += "; host routing needs akvsync to dial *.vault.localhost to the emulator (issue 8 item 7): see the workers' logs, or run with -fanout.host-routing=false"
	}
	if err == nil && status == "completed" {
		if kerr := d.waitKeys(ctx, s.totalKeys(), time.Second, e.o.timeout); kerr != nil {
			err = kerr
		} else {
			note += fmt.Sprintf(", %d keys queryable after %s", s.totalKeys(), time.Since(start).Round(time.Millisecond))
		}
	}
	f.add(row{Metric: fmt.Sprintf("sync-all of %d × %d completed", s.vaults, s.keys), Value: done, Unit: "", Goal: &goal{Op: ">=", Limit: 1, On: "value"}, Note: note})
	fail := ""
	if len(failures) > 0 {
		fail = fmt.Sprintf("; non-200 answers: %v", failures)
	}
	f.add(row{Metric: "job GET p50 during the sync", Value: percentile(jobLat, 50), Unit: "ms", Goal: valueBelow(50),
		Note: fmt.Sprintf("p90 %.1f ms over %d requests%s", percentile(jobLat, 90), len(jobLat), fail)})
	f.add(row{Metric: "jobs list p50 during the sync", Value: percentile(listLat, 50), Unit: "ms", Goal: valueBelow(50),
		Note: fmt.Sprintf("p90 %.1f ms over %d requests", percentile(listLat, 90), len(listLat))})
	if err != nil {
		return err
	}
	if status != "completed" {
		return fmt.Errorf("job ended %s", status)
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "(no status)"
	}
	return s
}
