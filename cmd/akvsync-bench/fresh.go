package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/akvsync/akvsync/internal/eventgrid"
	"github.com/akvsync/akvsync/internal/httpapi"
	"github.com/akvsync/akvsync/pkg/akvemu"
)

// The freshness figure (issue 11): how long a key change in the emulator
// takes to show through the API with Event Grid push and with a sync
// scheduled every minute, and what each costs in Azure calls.
const (
	// freshSchedulePoll is the schedule run's keys list poll interval:
	// its changes take about half a minute to show, and dozens are
	// watched at once.
	freshSchedulePoll = 250 * time.Millisecond
	// The fleet of the per-day projection: 100 vaults × 1,000
	// keys, 1 % of the keys changing a day, and a sync every minute.
	freshTargetVaults = 100
	freshTargetKeys   = 1000
	freshDailyChurn   = 0.01
	freshSyncsPerDay  = 24 * 60
	// freshPushGapMin and freshPushGapMax bound the pause between two
	// changes of the push run (uniformly drawn): a steady trickle, not a
	// burst.
	freshPushGapMin = 200 * time.Millisecond
	freshPushGapMax = 500 * time.Millisecond
	// freshPushGoalMs is the push p95 goal: "within seconds" (issue 11).
	freshPushGoalMs = 5000
	// freshMaxCallsPerChange is issue 11's bound on a targeted refresh.
	freshMaxCallsPerChange = 2
	// The names of the benchmark's event subscription, webhook secret
	// and job config.
	freshSubscription = "akvsync-bench"
	freshSecretName   = "akvsync-bench"
	freshConfigName   = "akvsync-bench-fresh"
	// freshDrainTimeout bounds the wait for the emulator's last event
	// deliveries once every change is visible.
	freshDrainTimeout = time.Minute
)

// keyChange is one key created or rotated through the emulator's admin
// API, and when the API showed its new version.
type keyChange struct {
	vault, key string
	create     bool
	version    string
	start      time.Time
	// admin is the admin call's own time (part of latency).
	admin time.Duration
	// latency runs from the admin request to the first keys list
	// answer showing the new version.
	latency time.Duration
}

// freshRun is one run of changes and the Azure calls it caused.
type freshRun struct {
	changes []*keyChange
	calls   callCounts
	tokens  int64
	// Push run: the event subscription's delivery counters.
	delivery akvemu.EventDeliveryCounters
	// Schedule run: the jobs the config started.
	syncs, syncsCompleted int
	syncTime              time.Duration // mean, of the completed jobs
}

func (r *freshRun) latenciesMs() []float64 {
	out := make([]float64, 0, len(r.changes))
	for _, c := range r.changes {
		if c.latency > 0 {
			out = append(out, float64(c.latency.Microseconds())/1000)
		}
	}
	return out
}

func (r *freshRun) vaults() int {
	seen := map[string]bool{}
	for _, c := range r.changes {
		seen[c.vault] = true
	}
	return len(seen)
}

func (r *freshRun) describe() string {
	creates := 0
	var admin []float64
	for _, c := range r.changes {
		if c.create {
			creates++
		}
		admin = append(admin, float64(c.admin.Microseconds())/1000)
	}
	return fmt.Sprintf("%d changes (%d creates, %d rotations) in %d vaults; admin call p50 %.1f ms (included)",
		len(r.changes), creates, len(r.changes)-creates, r.vaults(), percentile(admin, 50))
}

// figFresh: key change → visible through the API, with Event Grid push
// and with a sync-all scheduled every minute, and the Azure calls of each
// projected to a day of the fleet.
func (e *env) figFresh(ctx context.Context, f *figureResult) error {
	o := e.o
	s := emuSpec{vaults: o.frVaults, keys: o.frKeys, subscriptions: 1, latency: o.frLatency, limits: true}
	sizes(f, "vaults", s.vaults, "keys_per_vault", s.keys, "latency", s.latency, "subscriptions", 1, "changes", o.frChanges,
		"push_poll", o.frPoll, "schedule", o.frSchedule)
	if o.frSchedule {
		sizes(f, "schedule_span", o.frSpan, "schedule_poll", freshSchedulePoll)
	}
	if e.live != nil {
		e.live.stop()
		e.live = nil
	}
	em, err := e.startEmulator(ctx, "emulator-fresh", s)
	if err != nil {
		return err
	}
	defer em.p.stop()
	secret, secretsFile, err := e.webhookSecret()
	if err != nil {
		return err
	}
	d, err := e.startEmbedded(ctx, "embedded-fresh", em, false, "--event-grid-secrets-file", secretsFile)
	if err != nil {
		return err
	}
	defer d.stop()
	if err := d.register(ctx, em, false); err != nil {
		return err
	}
	e.logf("baseline inventory: sync-all of %d keys …", s.totalKeys())
	base, err := d.syncAll(ctx, s.totalKeys(), 250*time.Millisecond, o.timeout)
	if err != nil {
		return fmt.Errorf("baseline sync: %w", err)
	}
	e.logf("baseline inventory: %d keys queryable in %s", base.Keys, base.Queryable.Round(time.Millisecond))

	pk := newChangePicker(d, em)
	pushChanges, err := pk.plan(ctx, "push", o.frChanges)
	if err != nil {
		return err
	}
	push, err := e.freshPush(ctx, d, em, pushChanges, secret)
	if err != nil {
		return fmt.Errorf("push run: %w", err)
	}
	var sched *freshRun
	var schedErr error
	if o.frSchedule {
		var changes []*keyChange
		if changes, schedErr = pk.plan(ctx, "sched", o.frChanges); schedErr == nil {
			sched, schedErr = e.freshSchedule(ctx, d, em, changes)
		}
		if schedErr != nil {
			schedErr = fmt.Errorf("schedule run: %w", schedErr)
		}
	}
	addFreshRows(f, s, o, push, sched)
	return schedErr
}

// webhookSecret writes a fresh secret to an --event-grid-secrets-file.
func (e *env) webhookSecret() (secret, file string, err error) {
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return "", "", err
	}
	dir, err := e.subdir("fresh-webhook")
	if err != nil {
		return "", "", err
	}
	secret = hex.EncodeToString(raw)
	file = filepath.Join(dir, "event-grid-secrets")
	return secret, file, os.WriteFile(file, []byte(freshSecretName+" "+secret+"\n"), 0o600)
}

// changePicker plans key changes spread over the vaults: even changes
// create a key, odd ones rotate a key of the baseline inventory; no key
// changes twice.
type changePicker struct {
	d      *deployment
	vaults []string
	order  []int
	next   int
	used   map[string]bool
	rng    *mrand.Rand
}

func newChangePicker(d *deployment, em *emulator) *changePicker {
	pk := &changePicker{d: d, used: map[string]bool{}, rng: mrand.New(mrand.NewPCG(11, 1))} // #nosec G404 -- a reproducible choice of benchmark keys, not a secret
	for _, v := range em.m.Vaults {
		pk.vaults = append(pk.vaults, v.Name)
	}
	pk.order = pk.rng.Perm(len(pk.vaults))
	return pk
}

// keyRow is the part of a key record the figure reads.
type keyRow struct {
	KeyName    string `json:"key_name"`
	Version    string `json:"version"`
	AzureParam struct {
		Managed bool `json:"managed"`
	} `json:"azure_param"`
}

type keyRows struct {
	Total     int      `json:"total"`
	Resources []keyRow `json:"resources"`
}

// plan returns n changes, tagged (key names of creates: fresh-<tag>-NNN).
func (pk *changePicker) plan(ctx context.Context, tag string, n int) ([]*keyChange, error) {
	out := make([]*keyChange, 0, n)
	for i := range n {
		v := pk.vaults[pk.order[pk.next%len(pk.order)]]
		pk.next++
		c := &keyChange{vault: v, create: i%2 == 0}
		if c.create {
			c.key = fmt.Sprintf("fresh-%s-%03d", tag, i)
		} else {
			var err error
			if c.key, err = pk.existingKey(ctx, v); err != nil {
				return nil, err
			}
		}
		pk.used[strings.ToLower(v+"/"+c.key)] = true
		out = append(out, c)
	}
	return out, nil
}

// existingKey picks a key of vault v from the inventory that backs no
// certificate and was not changed before.
func (pk *changePicker) existingKey(ctx context.Context, v string) (string, error) {
	var page keyRows
	q := "/api/v1/cckm/azure/keys?sort=key_name&limit=50&key_vault=" + url.QueryEscape(v)
	if err := pk.d.c.call(ctx, http.MethodGet, q, nil, &page); err != nil {
		return "", err
	}
	if page.Total > len(page.Resources) {
		skip := pk.rng.IntN(page.Total - len(page.Resources) + 1)
		if err := pk.d.c.call(ctx, http.MethodGet, fmt.Sprintf("%s&skip=%d", q, skip), nil, &page); err != nil {
			return "", err
		}
	}
	for _, k := range page.Resources {
		if !k.AzureParam.Managed && !strings.HasPrefix(k.KeyName, "fresh-") && !pk.used[strings.ToLower(v+"/"+k.KeyName)] {
			return k.KeyName, nil
		}
	}
	return "", fmt.Errorf("vault %s: no key left to rotate among %d", v, len(page.Resources))
}

// adminJSON calls the emulator's admin API with a JSON body.
func (em *emulator) adminJSON(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		raw, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, em.m.AdminURL+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := em.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("emulator admin %s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func (em *emulator) tokensIssued(ctx context.Context) (int64, error) {
	var st akvemu.TokenStats
	err := em.admin(ctx, http.MethodGet, "/admin/tokens", &st)
	return st.Issued, err
}

// apply makes the change in the emulator.
func (c *keyChange) apply(ctx context.Context, em *emulator) error {
	path := "/admin/vaults/" + url.PathEscape(c.vault) + "/keys/" + url.PathEscape(c.key)
	var k akvemu.Key
	c.start = time.Now()
	var err error
	if c.create {
		err = em.adminJSON(ctx, http.MethodPost, path, map[string]string{"kty": "RSA"}, &k)
	} else {
		err = em.adminJSON(ctx, http.MethodPost, path+"/rotate", nil, &k)
	}
	c.admin = time.Since(c.start)
	if err != nil {
		return err
	}
	if k.Version == "" {
		return fmt.Errorf("emulator admin: %s/%s: no version in the answer", c.vault, c.key)
	}
	c.version = k.Version
	return nil
}

// waitVisible polls the keys list until it shows the change's version.
func (d *deployment) waitVisible(ctx context.Context, em *emulator, c *keyChange, poll, timeout time.Duration) error {
	path := "/api/v1/cckm/azure/keys?key_vault=" + url.QueryEscape(c.vault) + "&key_name=" + url.QueryEscape(c.key)
	err := waitFor(ctx, timeout, poll, func() error {
		for _, p := range []*proc{d.api, em.p} {
			if err := p.exited(); err != nil {
				return fmt.Errorf("%w: %w", errProcessDied, err)
			}
		}
		var page keyRows
		if err := d.c.call(ctx, http.MethodGet, path, nil, &page); err != nil {
			return err
		}
		for _, k := range page.Resources {
			if strings.EqualFold(k.Version, c.version) {
				c.latency = time.Since(c.start)
				return nil
			}
		}
		return fmt.Errorf("version %s not shown yet", c.version)
	})
	if err != nil {
		return fmt.Errorf("%s/%s: %w", c.vault, c.key, err)
	}
	return nil
}

// runChanges applies the changes one after the other, gap(i) before
// change i, each watched by its own poller from the moment it is made,
// and waits until every one is visible (or failed).
func (e *env) runChanges(ctx context.Context, d *deployment, em *emulator, changes []*keyChange, gap func(i int) time.Duration, poll time.Duration) error {
	errs := make([]error, len(changes))
	done := make(chan struct{}, len(changes))
	started := 0
	next := time.Now()
	for i, c := range changes {
		if i > 0 {
			next = next.Add(gap(i))
			if err := pause(ctx, time.Until(next)); err != nil {
				errs[i] = err
				break
			}
		}
		if err := c.apply(ctx, em); err != nil {
			errs[i] = err
			break
		}
		started++
		go func() {
			errs[i] = d.waitVisible(ctx, em, c, poll, e.o.frVisible)
			done <- struct{}{}
		}()
	}
	for range started {
		<-done
	}
	return errors.Join(errs...)
}

// pause paces the changes: it waits d (a rate, not a condition).
func pause(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// freshPush subscribes the API's webhook to the emulator's key events,
// makes the changes at a steady trickle and counts the Azure calls
// they caused.
func (e *env) freshPush(ctx context.Context, d *deployment, em *emulator, changes []*keyChange, secret string) (*freshRun, error) {
	sub := akvemu.EventSubscription{Name: freshSubscription, Endpoint: d.c.base + httpapi.EventGridPath,
		DeliveryHeaders: map[string]string{eventgrid.SecretHeader: secret}}
	var st akvemu.EventSubscriptionStatus
	if err := em.adminJSON(ctx, http.MethodPost, "/admin/event-subscriptions", sub, &st); err != nil {
		return nil, fmt.Errorf("event subscription: %w", err)
	}
	defer func() {
		_ = em.admin(context.WithoutCancel(ctx), http.MethodDelete, "/admin/event-subscriptions/"+freshSubscription, nil)
	}()
	if st.ProvisioningState != akvemu.EventSubscriptionSucceeded {
		return nil, fmt.Errorf("event subscription %s: %s", st.ProvisioningState, st.Reason)
	}
	if err := em.resetCounters(ctx); err != nil {
		return nil, err
	}
	tokens, err := em.tokensIssued(ctx)
	if err != nil {
		return nil, err
	}
	rng := mrand.New(mrand.NewPCG(11, 2)) // #nosec G404 -- reproducible pacing
	gap := func(int) time.Duration {
		return freshPushGapMin + time.Duration(rng.Int64N(int64(freshPushGapMax-freshPushGapMin)+1))
	}
	e.logf("push: %d key changes, one every %s–%s, each polled every %s …", len(changes), freshPushGapMin, freshPushGapMax, e.o.frPoll)
	if err := e.runChanges(ctx, d, em, changes, gap, e.o.frPoll); err != nil {
		return nil, err
	}
	// Every change shows: wait for the last deliveries' answers, so a
	// redelivery would be counted too.
	err = waitFor(ctx, freshDrainTimeout, 50*time.Millisecond, func() error {
		if err := em.admin(ctx, http.MethodGet, "/admin/event-subscriptions/"+freshSubscription, &st); err != nil {
			return err
		}
		if st.Counters.Pending > 0 {
			return fmt.Errorf("%d events pending", st.Counters.Pending)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	r := &freshRun{changes: changes, delivery: st.Counters}
	if r.calls, err = em.counters(ctx); err != nil {
		return nil, err
	}
	after, err := em.tokensIssued(ctx)
	r.tokens = after - tokens
	lat := r.latenciesMs()
	e.logf("push: p50 %.0f ms, p95 %.0f ms; %d Azure calls (+%d challenges) for %d changes", percentile(lat, 50), percentile(lat, 95),
		r.calls.Calls, r.calls.Challenges, len(changes))
	return r, err
}

// jobRow is the part of a job the schedule run reads.
type jobRow struct {
	ID            string `json:"id"`
	OverallStatus string `json:"overall_status"`
	CreatedAt     string `json:"createdAt"`
	CompletedAt   string `json:"completed_at"`
}

// freshSchedule creates a job config syncing every vault every minute,
// makes the changes spread over -fresh.schedule-span, then removes the
// config, waits for its last job and counts the Azure calls of its
// syncs.
func (e *env) freshSchedule(ctx context.Context, d *deployment, em *emulator, changes []*keyChange) (*freshRun, error) {
	if err := em.resetCounters(ctx); err != nil {
		return nil, err
	}
	tokens, err := em.tokensIssued(ctx)
	if err != nil {
		return nil, err
	}
	var cfg struct {
		ID string `json:"id"`
	}
	body := map[string]any{"name": freshConfigName, "operation": "cckm_synchronization", "run_at": "* * * * *",
		"description":                 "akvsync-bench freshness: sync-all every minute",
		"cckm_synchronization_params": map[string]any{"cloud_name": "AzureCloud", "synchronize_all": true}}
	if err := d.c.call(ctx, http.MethodPost, "/api/v1/scheduler/job-configs", body, &cfg); err != nil {
		return nil, fmt.Errorf("job config: %w", err)
	}
	gap := e.o.frSpan / time.Duration(max(1, len(changes)-1))
	e.logf("schedule: sync-all every minute; %d key changes, one every %s, each polled every %s …", len(changes), gap.Round(time.Millisecond), freshSchedulePoll)
	runErr := e.runChanges(ctx, d, em, changes, func(int) time.Duration { return gap }, freshSchedulePoll)
	// Stop the schedule, then let its last job end: the counters then
	// hold whole syncs only.
	if err := d.c.call(context.WithoutCancel(ctx), http.MethodDelete, "/api/v1/scheduler/job-configs/"+cfg.ID, nil, nil); err != nil {
		return nil, errors.Join(runErr, fmt.Errorf("delete job config: %w", err))
	}
	if runErr != nil {
		return nil, runErr
	}
	var jobs struct {
		Total     int      `json:"total"`
		Resources []jobRow `json:"resources"`
	}
	err = waitFor(ctx, e.o.timeout, 500*time.Millisecond, func() error {
		if err := d.c.call(ctx, http.MethodGet, "/api/v1/cckm/azure/synchronization-jobs?limit=100&job_config_id="+url.QueryEscape(cfg.ID), nil, &jobs); err != nil {
			return err
		}
		for _, j := range jobs.Resources {
			if j.OverallStatus == "" || j.OverallStatus == "in_progress" {
				return fmt.Errorf("job %s still running", j.ID)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	r := &freshRun{changes: changes, syncs: jobs.Total}
	var total time.Duration
	for _, j := range jobs.Resources {
		if j.OverallStatus != "completed" {
			continue
		}
		r.syncsCompleted++
		c, err1 := time.Parse(time.RFC3339Nano, j.CreatedAt)
		done, err2 := time.Parse(time.RFC3339Nano, j.CompletedAt)
		if err1 == nil && err2 == nil {
			total += done.Sub(c)
		}
	}
	if r.syncsCompleted > 0 {
		r.syncTime = total / time.Duration(r.syncsCompleted)
	}
	if r.syncs == 0 {
		return nil, errors.New("the job config started no job")
	}
	if r.calls, err = em.counters(ctx); err != nil {
		return nil, err
	}
	after, err := em.tokensIssued(ctx)
	r.tokens = after - tokens
	lat := r.latenciesMs()
	e.logf("schedule: p50 %.1f s, p95 %.1f s; %d syncs (mean %s); %d Azure calls (+%d challenges)", percentile(lat, 50)/1000, percentile(lat, 95)/1000,
		r.syncs, r.syncTime.Round(time.Millisecond), r.calls.Calls, r.calls.Challenges)
	return r, err
}

// listPages is what a listing of vaults × keys costs in pages.
func listPages(vaults, keys int) float64 {
	return float64(vaults) * float64(max(1, (keys+akvemu.MaxPageSize-1)/akvemu.MaxPageSize))
}

// addFreshRows reports the latencies of both runs, their Azure calls, and
// the calls per day of the fleet.
func addFreshRows(f *figureResult, s emuSpec, o options, push, sched *freshRun) {
	pl := push.latenciesMs()
	var sl []float64
	var s50, s95 *float64
	if sched != nil {
		sl = sched.latenciesMs()
		s50, s95 = ptr(percentile(sl, 50)), ptr(percentile(sl, 95))
	}
	f.add(row{Metric: "push: change → visible p50", Value: percentile(pl, 50), Unit: "ms", Baseline: s50, BaselineName: "1-minute schedule",
		Note: fmt.Sprintf("%s; one change every %s–%s; keys list polled every %s from the admin request", push.describe(), freshPushGapMin, freshPushGapMax, o.frPoll)})
	f.add(row{Metric: "push: change → visible p95", Value: percentile(pl, 95), Unit: "ms", Baseline: s95, BaselineName: "1-minute schedule",
		Goal: valueBelow(freshPushGoalMs)})
	f.add(row{Metric: "push: change → visible max", Value: percentile(pl, 100), Unit: "ms"})
	if sched != nil {
		f.add(row{Metric: "1-minute schedule: change → visible p50", Value: *s50, Unit: "ms",
			Note: fmt.Sprintf("%s; spread over %s; polled every %s; %d scheduled syncs (%d completed, mean %s each)", sched.describe(), o.frSpan,
				freshSchedulePoll, sched.syncs, sched.syncsCompleted, sched.syncTime.Round(time.Millisecond))})
		f.add(row{Metric: "1-minute schedule: change → visible p95", Value: *s95, Unit: "ms"})
		f.add(row{Metric: "1-minute schedule: change → visible max", Value: percentile(sl, 100), Unit: "ms"})
	}

	n := float64(len(push.changes))
	perChange := float64(push.calls.Calls) / n
	f.add(row{Metric: "push: Azure calls per change", Value: perChange, Unit: "calls", Goal: valueAtMost(freshMaxCallsPerChange),
		Note: fmt.Sprintf("%d calls for %d changes: GetKey %d, list pages %d, 429 %d, other errors %d; plus %d 401 challenges (a new client's first call, once per vault: %d vaults changed); %d Entra tokens; events published %d, delivered %d in %d attempts",
			push.calls.Calls, len(push.changes), push.calls.GetKeys, push.calls.ListPages, push.calls.Throttled, push.calls.Errors,
			push.calls.Challenges, push.vaults(), push.tokens, push.delivery.Published, push.delivery.Delivered, push.delivery.Attempts)})

	// The day of the fleet.
	churn := freshDailyChurn * freshTargetVaults * freshTargetKeys
	challengesPerVault := float64(push.calls.Challenges) / float64(max(1, push.vaults()))
	pushDay := churn*perChange + freshTargetVaults*challengesPerVault
	scaled := ""
	if s.vaults != freshTargetVaults || s.keys != freshTargetKeys {
		scaled = fmt.Sprintf("; measured at %d × %d and scaled linearly: list pages × %s, challenges × %s", s.vaults, s.keys,
			trimFloat(listPages(freshTargetVaults, freshTargetKeys)/listPages(s.vaults, s.keys)), trimFloat(float64(freshTargetVaults)/float64(s.vaults)))
	}
	pushNote := fmt.Sprintf("%s changes/day (1 %% of %d × %d keys) × %.3f calls per change + %d vaults × %.2f challenges (once per vault per worker process start) = %.0f",
		trimFloat(churn), freshTargetVaults, freshTargetKeys, perChange, freshTargetVaults, challengesPerVault, pushDay)
	if sched == nil {
		f.add(row{Metric: fmt.Sprintf("Azure calls/day at %d × %d, 1 %% churn: push", freshTargetVaults, freshTargetKeys), Value: pushDay, Unit: "calls", Note: pushNote})
		return
	}
	syncs := float64(sched.syncs)
	c := sched.calls
	nonGet := float64(c.Calls - c.GetKeys)
	f.add(row{Metric: "1-minute schedule: Azure calls per sync", Value: (float64(c.Calls) + float64(c.Challenges)) / syncs, Unit: "calls",
		Note: fmt.Sprintf("%d syncs of %d × %d: %.1f list pages, %.1f 401 challenges, %.2f 429, %.2f other errors per sync; GetKey %d in all for %d changes; %d Entra tokens",
			sched.syncs, s.vaults, s.keys, float64(c.ListPages)/syncs, float64(c.Challenges)/syncs, float64(c.Throttled)/syncs, float64(c.Errors)/syncs,
			c.GetKeys, len(sched.changes), sched.tokens)})
	pageScale := listPages(freshTargetVaults, freshTargetKeys) / listPages(s.vaults, s.keys)
	vaultScale := float64(freshTargetVaults) / float64(s.vaults)
	perSync := nonGet/syncs*pageScale + float64(c.Challenges)/syncs*vaultScale
	getPerChange := float64(c.GetKeys) / float64(len(sched.changes))
	schedDay := freshSyncsPerDay*perSync + churn*getPerChange
	f.add(row{Metric: fmt.Sprintf("Azure calls/day at %d × %d, 1 %% churn: push", freshTargetVaults, freshTargetKeys), Value: pushDay, Unit: "calls",
		Baseline: &schedDay, BaselineName: "1-minute schedule", Note: fmt.Sprintf("%s; the schedule makes %.0f× as many%s", pushNote, schedDay/pushDay, scaled)})
	f.add(row{Metric: fmt.Sprintf("Azure calls/day at %d × %d, 1 %% churn: 1-minute schedule", freshTargetVaults, freshTargetKeys), Value: schedDay, Unit: "calls",
		Note: fmt.Sprintf("%d syncs/day × %.1f calls per sync without GetKeys (list pages, 429s, errors, challenges) + %s changes/day × %.3f GetKey per change = %.0f%s",
			freshSyncsPerDay, perSync, trimFloat(churn), getPerChange, schedDay, scaled)})
}
