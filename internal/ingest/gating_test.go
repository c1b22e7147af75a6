package ingest_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/gitlabsim"
	"github.com/labtrail/labtrail/internal/ingest"
	"github.com/labtrail/labtrail/internal/store"
)

// clock is a settable time shared by the simulator and the poller, so a
// test can let hours pass between polls.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newClockRig(t testing.TB, o gitlabsim.Options) (*rig, *clock) {
	t.Helper()
	clk := &clock{t: time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)}
	o.Now = clk.Now
	r := newRig(t, o)
	r.poller.Now = clk.Now
	return r, clk
}

// missing lists, per kind, the simulator's objects the store does not hold
// at their current updated_at.
func (r *rig) missing(t testing.TB) map[change.Kind]int {
	t.Helper()
	stored := map[string]time.Time{}
	for _, k := range change.Kinds {
		eachStored(t, r.store, k, func(e change.Event) { stored[e.ID] = e.UpdatedAt })
	}
	out := map[change.Kind]int{}
	for _, e := range r.sim.Truth() {
		if u, ok := stored[e.ID]; !ok || !u.Equal(e.UpdatedAt) {
			out[e.Kind]++
		}
	}
	return out
}

func requests(s *gitlabsim.Sim) int64 { return s.Stats().Requests }

// A poll after a quiet spell costs one listing page per 100 projects and
// syncs nothing.
func TestQuietPollCostsTheListingOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, clk := newClockRig(t, gitlabsim.Options{Seed: 11, Projects: 150, Groups: 3, MRs: 1, Pipelines: 1, Issues: -1})
	r.poller.Selection.Max = -1
	// The listing alone: the change detection sweep's cost is measured
	// by BenchmarkDetectionSweep.
	r.poller.Sweep = -1
	// One kind keeps the first sync of 150 projects cheap; the gate
	// works the same for any set of kinds.
	r.poller.Kinds = []change.Kind{change.KindMergeRequest}
	res, err := r.poller.SyncAll(ctx)
	if err != nil || res.Err() != nil {
		t.Fatal(err, res.Err())
	}
	if len(res.Projects) != 150 || res.Quiet != 0 {
		t.Fatalf("first poll synced %d projects, %d quiet; want all 150", len(res.Projects), res.Quiet)
	}
	clk.Add(2 * time.Hour)
	before := requests(r.sim)
	res, err = r.poller.SyncAll(ctx)
	if err != nil || res.Err() != nil {
		t.Fatal(err, res.Err())
	}
	if n := requests(r.sim) - before; n != 2 || len(res.Projects) != 0 || res.Quiet != 150 {
		t.Fatalf("quiet poll: %d requests, %d projects synced, %d quiet; want 2 requests and all 150 quiet", n, len(res.Projects), res.Quiet)
	}
	// A full sweep falls due after FullSweep whatever the activity.
	clk.Add(ingest.DefaultFullSweep)
	res, err = r.poller.SyncAll(ctx)
	if err != nil || res.Err() != nil {
		t.Fatal(err, res.Err())
	}
	if len(res.Projects) != 150 {
		t.Errorf("after FullSweep %d projects synced, want all 150", len(res.Projects))
	}
}

// What a gated poll catches, one sort of change at a time: activity that
// creates GitLab events (merge requests, issues, comments, pushes) moves
// last_activity_at and is caught by the next poll; pipelines, deployments,
// registry pushes and releases do not move it and wait for the full sweep
// (or arrive by webhook) — unless the change detection sweep runs, which
// asks each quiet project which kinds changed and catches them all.
// docs/polling.md's table is this test's log.
func TestWhatAGatedPollCatches(t *testing.T) {
	t.Parallel()
	everything := map[gitlabsim.Activity]bool{
		gitlabsim.ActivityMergeRequests: true, gitlabsim.ActivityIssues: true,
		gitlabsim.ActivityPipelines: true, gitlabsim.ActivityDeployments: true, gitlabsim.ActivityReleases: true,
	}
	for _, tc := range []struct {
		name   string
		sweep  time.Duration
		caught map[gitlabsim.Activity]bool
	}{
		{"activity gate alone", -1, map[gitlabsim.Activity]bool{
			gitlabsim.ActivityMergeRequests: true, gitlabsim.ActivityIssues: true,
			gitlabsim.ActivityPipelines: false, gitlabsim.ActivityDeployments: false, gitlabsim.ActivityReleases: false,
		}},
		{"with the change detection sweep", 0, everything},
	} {
		t.Run(tc.name, func(t *testing.T) {
			table := gatedTable(t, tc.sweep)
			var b strings.Builder
			for _, row := range table {
				fmt.Fprintf(&b, "\n%-15s changed %v, missed by the next gated poll %v (%d requests)", row.act, row.changed, row.missed, row.requests)
			}
			t.Log("what a gated poll catches, " + tc.name + ":" + b.String())
			for _, row := range table {
				if got := len(row.missed) == 0; got != tc.caught[row.act] {
					t.Errorf("%s: caught %v, want %v (changed %v, missed %v)", row.act, got, tc.caught[row.act], row.changed, row.missed)
				}
			}
		})
	}
}

type gatedRow struct {
	act             gitlabsim.Activity
	changed, missed map[change.Kind]int
	requests        int64 // the gated poll's
}

// gatedTable makes each sort of change in turn and reports what the next
// gated poll (with the given Poller.Sweep) left missing.
func gatedTable(t *testing.T, sweepEvery time.Duration) []gatedRow {
	ctx := context.Background()
	r, clk := newClockRig(t, gitlabsim.Options{Seed: 14, Projects: 5, MRs: 6, Pipelines: 6, Issues: 3})
	r.poller.Sweep = sweepEvery
	if res, err := r.poller.SyncAll(ctx); err != nil || res.Err() != nil {
		t.Fatal(err, res.Err())
	}
	gated := func() {
		t.Helper()
		if res, err := r.poller.SyncAll(ctx); err != nil || res.Err() != nil {
			t.Fatal(err, res.Err())
		}
	}
	truth := func() map[string]time.Time {
		out := map[string]time.Time{}
		for _, e := range r.sim.Truth() {
			out[e.ID] = e.UpdatedAt
		}
		return out
	}
	var table []gatedRow
	for _, act := range []gitlabsim.Activity{
		gitlabsim.ActivityMergeRequests, gitlabsim.ActivityIssues, gitlabsim.ActivityPipelines,
		gitlabsim.ActivityDeployments, gitlabsim.ActivityReleases,
	} {
		if act == gitlabsim.ActivityDeployments {
			// Deployments finish what pipelines started: start some.
			for range 8 {
				r.sim.AdvanceOnly(gitlabsim.ActivityPipelines)
			}
			sweep := *r.poller
			sweep.FullSweep = -1
			if res, err := sweep.SyncAll(ctx); err != nil || res.Err() != nil {
				t.Fatal(err, res.Err())
			}
		}
		// Settle: a quiet poll two hours on leaves no project within the
		// grace of its last activity.
		clk.Add(2 * time.Hour)
		gated()
		clk.Add(2 * time.Hour)
		was := truth()
		for range 4 {
			r.sim.AdvanceOnly(act)
		}
		before := requests(r.sim)
		gated()
		row := gatedRow{act: act, changed: map[change.Kind]int{}, missed: r.missing(t), requests: requests(r.sim) - before}
		for _, e := range r.sim.Truth() {
			if u, ok := was[e.ID]; !ok || !u.Equal(e.UpdatedAt) {
				row.changed[e.Kind]++
			}
		}
		if len(row.changed) == 0 {
			t.Fatalf("%s changed nothing", act)
		}
		table = append(table, row)
		// Close the gap, as the sweep would.
		sweep := *r.poller
		sweep.FullSweep = -1
		if res, err := sweep.SyncAll(ctx); err != nil || res.Err() != nil {
			t.Fatal(err, res.Err())
		}
		if m := r.missing(t); len(m) != 0 {
			t.Fatalf("after a full sweep still missing %v", m)
		}
	}
	return table
}

// Activity within GitLab's hour of last_activity_at throttling does not
// move it; the grace window still syncs such a project.
func TestActivityWithinTheHourIsCaught(t *testing.T) {
	ctx := context.Background()
	r, clk := newClockRig(t, gitlabsim.Options{Seed: 12, Projects: 4, MRs: 5, Pipelines: 3})
	if res, err := r.poller.SyncAll(ctx); err != nil || res.Err() != nil {
		t.Fatal(err, res.Err())
	}
	for range 4 {
		clk.Add(10 * time.Minute)
		r.sim.AdvanceOnly(gitlabsim.ActivityMergeRequests)
		if res, err := r.poller.SyncAll(ctx); err != nil || res.Err() != nil {
			t.Fatal(err, res.Err())
		}
		if m := r.missing(t); len(m) != 0 {
			t.Fatalf("missed %v", m)
		}
	}
}

// A project the activity-ordered listing leaves out is asked about before it
// is marked gone; a deleted one is marked.
func TestUnlistedProjectIsRechecked(t *testing.T) {
	ctx := context.Background()
	r, _ := newClockRig(t, gitlabsim.Options{Seed: 13, Projects: 3, MRs: 3, Pipelines: 2})
	if res, err := r.poller.SyncAll(ctx); err != nil || res.Err() != nil {
		t.Fatal(err, res.Err())
	}
	ps, err := r.store.Projects(ctx)
	if err != nil {
		t.Fatal(err)
	}
	gone := ps[1]
	r.sim.SetProjectFault(gone.Path, 404)
	d, err := r.poller.Discover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Projects) != 2 {
		t.Errorf("active after one went: %d", len(d.Projects))
	}
	ps, _ = r.store.Projects(ctx)
	for _, p := range ps {
		want := store.ProjectActive
		if p.ID == gone.ID {
			want = store.ProjectNotFound
		}
		if p.Status != want {
			t.Errorf("%s: status %s, want %s", p.Path, p.Status, want)
		}
	}
}
