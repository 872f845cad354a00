package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/akvsync/akvsync/pkg/events"
)

// testJob returns a job's header and a plan naming vs, as the projector
// reads them from the jobs bucket.
func testJob(id string, created time.Time, st events.JobStatus, vs ...testVault) JobChanges {
	j := events.Job{ID: id, CreatedAt: created, UpdatedAt: created, OverallStatus: st, Cloud: "AzureCloud", VaultTotal: len(vs), PlanChunks: 1}
	if st != events.JobInProgress {
		done := created.Add(time.Minute)
		j.CompletedAt = &done
	}
	plan := events.JobPlanChunk{JobID: id}
	for _, v := range vs {
		plan.Vaults = append(plan.Vaults, events.PlannedVault{Vault: events.Vault{ID: v.id, Name: v.name, SubscriptionID: v.sub}})
	}
	return JobChanges{Headers: []events.Job{j}, Plans: []events.JobPlanChunk{plan}}
}

// merge concatenates job changes.
func merge(cs ...JobChanges) JobChanges {
	var out JobChanges
	for _, c := range cs {
		out.Headers = append(out.Headers, c.Headers...)
		out.Plans = append(out.Plans, c.Plans...)
		out.Vaults = append(out.Vaults, c.Vaults...)
		out.Deleted = append(out.Deleted, c.Deleted...)
	}
	return out
}

func TestJobs(t *testing.T) {
	ctx := context.Background()
	s := setup(t)
	vs := testVaults(6)
	statuses := []events.JobStatus{events.JobInProgress, events.JobCompleted, events.JobFailed}
	var jobs []events.Job
	var changes []JobChanges
	vaultsOf := map[string][]testVault{}
	for i := range 30 {
		// Pairs of jobs share a creation time: ties ordered by id.
		created := baseTime.Add(time.Duration(i/2) * time.Minute)
		id := fmt.Sprintf("job-%02d", 29-i)
		c := testJob(id, created, statuses[i%3], vs[i%6], vs[(i+1)%6])
		changes = append(changes, c)
		jobs = append(jobs, c.Headers[0])
		vaultsOf[id] = []testVault{vs[i%6], vs[(i+1)%6]}
	}
	if err := s.Apply(ctx, Batch{Jobs: merge(changes...)}); err != nil {
		t.Fatal(err)
	}
	ids := func(p events.JobPage) []string {
		var out []string
		for _, j := range p.Resources {
			out = append(out, j.ID)
		}
		return out
	}
	// ref lists the ids of matching jobs newest first, ties by id.
	ref := func(match func(events.Job) bool) []string {
		var ms []events.Job
		for _, j := range jobs {
			if match(j) {
				ms = append(ms, j)
			}
		}
		slices.SortFunc(ms, func(a, b events.Job) int {
			if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
				return c
			}
			if a.ID < b.ID {
				return -1
			}
			return 1
		})
		var out []string
		for _, j := range ms {
			out = append(out, j.ID)
		}
		return out
	}
	list := func(t *testing.T, q events.JobQuery) events.JobPage {
		t.Helper()
		p, err := s.ListJobs(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Run("lists newest first with ties by id", func(t *testing.T) {
		p := list(t, events.JobQuery{Limit: events.MaxJobsLimit})
		if want := ref(func(events.Job) bool { return true }); !slices.Equal(ids(p), want) || p.Total != 30 {
			t.Fatalf("order %v, want %v (total %d)", ids(p), want, p.Total)
		}
	})
	t.Run("pages with skip and limit", func(t *testing.T) {
		p := list(t, events.JobQuery{Skip: 25, Limit: 10})
		all := ref(func(events.Job) bool { return true })
		if !slices.Equal(ids(p), all[25:]) || p.Total != 30 || p.Limit != 10 {
			t.Fatalf("page %v total %d, want %v", ids(p), p.Total, all[25:])
		}
		if p := list(t, events.JobQuery{}); len(p.Resources) != events.DefaultLimit {
			t.Fatalf("default page has %d jobs", len(p.Resources))
		}
	})
	t.Run("filters by status", func(t *testing.T) {
		p := list(t, events.JobQuery{OverallStatus: events.JobFailed, Skip: 2, Limit: 3})
		want := ref(func(j events.Job) bool { return j.OverallStatus == events.JobFailed })
		if !slices.Equal(ids(p), want[2:5]) || p.Total != len(want) {
			t.Fatalf("got %v total %d, want %v total %d", ids(p), p.Total, want[2:5], len(want))
		}
	})
	t.Run("filters by vault id, qualified name or bare name", func(t *testing.T) {
		for _, kv := range [][]string{{vs[2].id}, {events.QualifiedVaultName(vs[3].name, vs[3].sub)}, {vs[4].name}, {"nope", vs[0].id}} {
			p := list(t, events.JobQuery{KeyVaults: kv, Limit: events.LimitAll})
			want := ref(func(j events.Job) bool {
				for _, v := range vaultsOf[j.ID] {
					if slices.Contains(kv, v.id) || slices.Contains(kv, v.name) || slices.Contains(kv, events.QualifiedVaultName(v.name, v.sub)) {
						return true
					}
				}
				return false
			})
			if len(want) == 0 || !slices.Equal(ids(p), want) || p.Total != len(want) {
				t.Fatalf("key_vaults %v: got %v, want %v", kv, ids(p), want)
			}
		}
	})
	t.Run("filters by id", func(t *testing.T) {
		p := list(t, events.JobQuery{ID: "job-07"})
		if !slices.Equal(ids(p), []string{"job-07"}) || p.Total != 1 {
			t.Fatalf("got %v", ids(p))
		}
		if p := list(t, events.JobQuery{ID: "job-07", OverallStatus: events.JobInProgress}); p.Total != 0 || len(p.Resources) != 0 {
			t.Fatalf("id with a non-matching status: %v", ids(p))
		}
		if _, err := s.ListJobs(ctx, events.JobQuery{OverallStatus: "nope"}); !errors.Is(err, ErrBadQuery) {
			t.Fatalf("unknown status: %v", err)
		}
	})
	t.Run("update moves the job in the order and delete removes it", func(t *testing.T) {
		d, err := s.GetJob(ctx, "job-00", 0)
		if err != nil {
			t.Fatal(err)
		}
		j := d.Job
		j.CreatedAt = baseTime.Add(-time.Hour) // now the oldest
		j.OverallStatus = events.JobCompleted
		if err := s.Apply(ctx, Batch{Jobs: JobChanges{Headers: []events.Job{j}, Deleted: []string{"job-01", "missing"}}}); err != nil {
			t.Fatal(err)
		}
		p := list(t, events.JobQuery{Limit: events.LimitAll})
		got := ids(p)
		if p.Total != 29 || len(got) != 29 || got[28] != "job-00" || slices.Contains(got, "job-01") {
			t.Fatalf("after update/delete: %v (total %d)", got, p.Total)
		}
		if _, err := s.GetJob(ctx, "job-01", 0); !errors.Is(err, ErrNotFound) {
			t.Fatalf("GetJob(deleted) = %v", err)
		}
		if st := s.Stats(); st.Jobs != 29 {
			t.Fatalf("Stats.Jobs = %d", st.Jobs)
		}
	})
}

// bigJob applies a job of n vaults, with the given vault records.
func bigJob(t *testing.T, s *Store, id string, n int, created time.Time, records ...events.JobVault) {
	t.Helper()
	vs := make([]testVault, n)
	for i := range vs {
		vs[i] = testVault{id: fmt.Sprintf("%s-v%05d", id, i), name: fmt.Sprintf("kv-%05d", i), sub: "s"}
	}
	c := testJob(id, created, events.JobInProgress, vs...)
	c.Vaults = records
	if err := s.Apply(context.Background(), Batch{Jobs: c}); err != nil {
		t.Fatal(err)
	}
}

func TestJobVaults(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := setup(t)
	const n = 3000
	rec := func(i int, st events.VaultStatus, fetched int) events.JobVault {
		return events.JobVault{JobID: "big", VaultID: fmt.Sprintf("big-v%05d", i), Name: fmt.Sprintf("kv-%05d", i), SubscriptionID: "s",
			Status: st, Fetched: fetched, Error: map[bool]string{true: "403 Forbidden"}[st == events.VaultFailed]}
	}
	bigJob(t, s, "big", n, baseTime,
		rec(10, events.VaultRunning, 0), rec(20, events.VaultCompleted, 7), rec(2999, events.VaultFailed, 0), rec(5, events.VaultFailed, 0))

	t.Run("progress counts every vault", func(t *testing.T) {
		p, err := s.JobProgress(ctx, "big")
		if err != nil {
			t.Fatal(err)
		}
		want := events.JobProgress{Pending: n - 4, Running: 1, Completed: 1, Failed: 2, Fetched: 7}
		if p != want {
			t.Fatalf("progress %+v, want %+v", p, want)
		}
	})
	t.Run("a record update moves the counts", func(t *testing.T) {
		if err := s.Apply(ctx, Batch{Jobs: JobChanges{Vaults: []events.JobVault{rec(10, events.VaultCompleted, 3)}}}); err != nil {
			t.Fatal(err)
		}
		p, _ := s.JobProgress(ctx, "big")
		if p.Running != 0 || p.Completed != 2 || p.Fetched != 10 {
			t.Fatalf("progress %+v", p)
		}
	})
	t.Run("the detail is bounded, failures first", func(t *testing.T) {
		d, err := s.GetJob(ctx, "big", events.GetDetailVaults)
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Vaults) != events.GetDetailVaults || !d.VaultsTruncated {
			t.Fatalf("%d vaults, truncated %v", len(d.Vaults), d.VaultsTruncated)
		}
		if d.Vaults[0].VaultID != "big-v00005" || d.Vaults[1].VaultID != "big-v02999" || d.Vaults[2].Status != events.VaultPending {
			t.Fatalf("order: %+v %+v %+v", d.Vaults[0], d.Vaults[1], d.Vaults[2])
		}
	})
	t.Run("pages by status", func(t *testing.T) {
		p, err := s.ListJobVaults(ctx, events.JobVaultQuery{JobID: "big", Status: events.VaultPending, Skip: 2000, Limit: events.LimitAll})
		if err != nil {
			t.Fatal(err)
		}
		if p.Total != n-4 || len(p.Resources) != n-4-2000 || p.Limit != events.MaxJobVaultsLimit {
			t.Fatalf("total %d, %d resources, limit %d", p.Total, len(p.Resources), p.Limit)
		}
		for _, v := range p.Resources {
			if v.Status != events.VaultPending {
				t.Fatalf("a %s vault in the pending page", v.Status)
			}
		}
		if _, err := s.ListJobVaults(ctx, events.JobVaultQuery{JobID: "nope"}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("unknown job: %v", err)
		}
	})
	t.Run("a jobs list page stays small however big its jobs are", func(t *testing.T) {
		for i := range 9 {
			bigJob(t, s, fmt.Sprintf("big%d", i), n, baseTime.Add(time.Duration(i+1)*time.Minute))
		}
		p, err := s.ListJobs(ctx, events.JobQuery{Limit: events.LimitAll})
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(p)
		// 10 jobs of 3,000 vaults: the old record-per-job list was ~1 MB.
		if len(p.Resources) != 10 || len(raw) > 32<<10 {
			t.Fatalf("%d jobs in %d bytes", len(p.Resources), len(raw))
		}
		for _, j := range p.Resources {
			if len(j.Vaults) > events.ListDetailVaults || !j.VaultsTruncated {
				t.Fatalf("job %s carries %d vaults", j.ID, len(j.Vaults))
			}
		}
	})
	t.Run("deleting a job drops all its records", func(t *testing.T) {
		if err := s.Apply(ctx, Batch{Jobs: JobChanges{Deleted: []string{"big"}}}); err != nil {
			t.Fatal(err)
		}
		if p, _ := s.JobProgress(ctx, "big"); p != (events.JobProgress{}) {
			t.Fatalf("progress left: %+v", p)
		}
		var left int
		_ = s.view(func(tx *bolt.Tx) error {
			for _, b := range [][]byte{bucketJobVaults, bucketJobVaultOrder} {
				c := tx.Bucket(b).Cursor()
				for k, _ := c.Seek([]byte("big/")); k != nil && bytes.HasPrefix(k, []byte("big/")); k, _ = c.Next() {
					left++
				}
			}
			c := tx.Bucket(bucketVaultJobs).Cursor()
			for k, _ := c.First(); k != nil; k, _ = c.Next() {
				if bytes.HasSuffix(k, []byte{0, 'b', 'i', 'g'}) {
					left++
				}
			}
			return nil
		})
		if left != 0 {
			t.Fatalf("%d records of the deleted job left", left)
		}
	})
}

func TestJobRetentionIndexes(t *testing.T) {
	ctx := context.Background()
	s := setup(t)
	var cs []JobChanges
	for i := range 10 {
		st := events.JobCompleted
		switch {
		case i%5 == 0:
			st = events.JobInProgress
		case i%3 == 0:
			st = events.JobFailed
		}
		cs = append(cs, testJob(fmt.Sprintf("job-%02d", i), baseTime.Add(time.Duration(i)*time.Hour), st))
	}
	if err := s.Apply(ctx, Batch{Jobs: merge(cs...)}); err != nil {
		t.Fatal(err)
	}
	t.Run("in progress jobs come from their own index", func(t *testing.T) {
		js, err := s.InProgressJobs(ctx)
		if err != nil || len(js) != 2 || js[0].ID != "job-05" || js[1].ID != "job-00" {
			t.Fatalf("%v (%v)", js, err)
		}
	})
	t.Run("expired jobs are the oldest finished beyond the count or age", func(t *testing.T) {
		// 8 finished jobs; keep 5 → the 3 oldest finished.
		ids, err := s.ExpiredJobs(ctx, baseTime, 5, 100)
		if err != nil || !slices.Equal(ids, []string{"job-01", "job-02", "job-03"}) {
			t.Fatalf("%v (%v)", ids, err)
		}
		// Finished before 06:00 + 1 min: jobs 1-4; the limit bounds it.
		ids, err = s.ExpiredJobs(ctx, baseTime.Add(6*time.Hour), 100, 3)
		if err != nil || !slices.Equal(ids, []string{"job-01", "job-02", "job-03"}) {
			t.Fatalf("%v (%v)", ids, err)
		}
		ids, err = s.ExpiredJobs(ctx, baseTime, 100, 100)
		if err != nil || len(ids) != 0 {
			t.Fatalf("nothing should expire: %v (%v)", ids, err)
		}
	})
}

// TestJobsByConfig: the job_config_id filter lists the jobs a scheduler
// config started, newest first, and forgets a deleted job.
func TestJobsByConfig(t *testing.T) {
	ctx := context.Background()
	s := setup(t)
	vs := testVaults(2)
	var changes []JobChanges
	for i := range 6 {
		c := testJob(fmt.Sprintf("job-%d", i), baseTime.Add(time.Duration(i)*time.Minute), events.JobCompleted, vs[i%2])
		if i%2 == 0 {
			c.Headers[0].JobConfigID = "cfg-a"
		}
		changes = append(changes, c)
	}
	if err := s.Apply(ctx, Batch{Jobs: merge(changes...)}); err != nil {
		t.Fatal(err)
	}
	list := func(q events.JobQuery) []string {
		t.Helper()
		q.Limit = 10
		p, err := s.ListJobs(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, j := range p.Resources {
			out = append(out, j.ID)
		}
		return out
	}
	if got, want := list(events.JobQuery{JobConfigID: "cfg-a"}), []string{"job-4", "job-2", "job-0"}; !slices.Equal(got, want) {
		t.Fatalf("by config = %v, want %v", got, want)
	}
	if got := list(events.JobQuery{JobConfigID: "cfg-b"}); len(got) != 0 {
		t.Fatalf("unknown config = %v, want none", got)
	}
	if got, want := list(events.JobQuery{JobConfigID: "cfg-a", KeyVaults: []string{vs[0].id}}), []string{"job-4", "job-2", "job-0"}; !slices.Equal(got, want) {
		t.Fatalf("by config and vault = %v, want %v", got, want)
	}
	if err := s.Apply(ctx, Batch{Jobs: JobChanges{Deleted: []string{"job-2"}}}); err != nil {
		t.Fatal(err)
	}
	if got, want := list(events.JobQuery{JobConfigID: "cfg-a"}), []string{"job-4", "job-0"}; !slices.Equal(got, want) {
		t.Fatalf("after delete = %v, want %v", got, want)
	}
}
