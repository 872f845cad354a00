package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/akvsync/akvsync/pkg/events"
)

func testJob(id string, created time.Time, st events.JobStatus, vs ...testVault) events.Job {
	j := events.Job{ID: id, CreatedAt: created, UpdatedAt: created, OverallStatus: st, Cloud: "AzureCloud"}
	for _, v := range vs {
		j.Vaults = append(j.Vaults, events.JobVault{VaultID: v.id, Name: v.name, SubscriptionID: v.sub, Status: events.VaultPending})
	}
	return j
}

func TestJobs(t *testing.T) {
	ctx := context.Background()
	s := setup(t)
	vs := testVaults(6)
	statuses := []events.JobStatus{events.JobInProgress, events.JobCompleted, events.JobFailed}
	var jobs []events.Job
	for i := range 30 {
		// Pairs of jobs share a creation time: ties ordered by id.
		created := baseTime.Add(time.Duration(i/2) * time.Minute)
		jobs = append(jobs, testJob(fmt.Sprintf("job-%02d", 29-i), created, statuses[i%3], vs[i%6], vs[(i+1)%6]))
	}
	if err := s.Apply(ctx, Batch{Jobs: jobs}); err != nil {
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
		p := list(t, events.JobQuery{Limit: events.LimitAll})
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
				for _, v := range j.Vaults {
					if slices.Contains(kv, v.VaultID) || slices.Contains(kv, v.Name) || slices.Contains(kv, v.QualifiedName()) {
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
		if p := list(t, events.JobQuery{ID: "job-07", OverallStatus: "nope"}); p.Total != 0 || len(p.Resources) != 0 {
			t.Fatalf("id with a non-matching status: %v", ids(p))
		}
	})
	t.Run("update moves the job in the order and delete removes it", func(t *testing.T) {
		j, err := s.GetJob(ctx, "job-00")
		if err != nil {
			t.Fatal(err)
		}
		j.CreatedAt = baseTime.Add(-time.Hour) // now the oldest
		j.OverallStatus = events.JobCompleted
		if err := s.Apply(ctx, Batch{Jobs: []events.Job{j}, DeletedJobs: []string{"job-01", "missing"}}); err != nil {
			t.Fatal(err)
		}
		p := list(t, events.JobQuery{Limit: events.LimitAll})
		got := ids(p)
		if p.Total != 29 || len(got) != 29 || got[28] != "job-00" || slices.Contains(got, "job-01") {
			t.Fatalf("after update/delete: %v (total %d)", got, p.Total)
		}
		if _, err := s.GetJob(ctx, "job-01"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("GetJob(deleted) = %v", err)
		}
		if st := s.Stats(); st.Jobs != 29 {
			t.Fatalf("Stats.Jobs = %d", st.Jobs)
		}
	})
}
