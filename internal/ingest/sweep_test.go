package ingest_test

import (
	"context"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/gitlabsim"
)

// sweepRig is 30 projects synced once, then left quiet past the activity
// grace, with the sweep on.
func sweepRig(t *testing.T, o gitlabsim.Options) (*rig, *clock) {
	t.Helper()
	o.Seed, o.Projects, o.Groups, o.MRs, o.Pipelines, o.Issues = 31, 30, 3, 2, 3, 1
	r, clk := newClockRig(t, o)
	r.poller.Selection.Max = -1
	if res, err := r.poller.SyncAll(context.Background()); err != nil || res.Err() != nil {
		t.Fatal(err, res.Err())
	}
	clk.Add(2 * time.Hour)
	return r, clk
}

func graphQLRequests(r *rig) int64 { return r.sim.Stats().ByPath["POST /api/graphql"] }

// The sweep asks about 30 quiet projects in one GraphQL request, syncs
// only the kinds that changed, and leaves the store equal to the truth.
func TestSweepSyncsOnlyWhatChanged(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, _ := sweepRig(t, gitlabsim.Options{})
	for range 3 {
		r.sim.AdvanceOnly(gitlabsim.ActivityPipelines)
	}
	g0 := graphQLRequests(r)
	res, err := r.poller.SyncAll(ctx)
	if err != nil || res.Err() != nil {
		t.Fatal(err, res.Err())
	}
	if n := graphQLRequests(r) - g0; n < 1 {
		t.Fatalf("%d GraphQL requests, want the sweep's", n)
	}
	if m := r.missing(t); len(m) != 0 {
		t.Fatalf("after the sweep still missing %v", m)
	}
	if len(res.Projects) == 0 || len(res.Projects) == 30 {
		t.Fatalf("%d projects synced; want those with pipelines only", len(res.Projects))
	}
	for _, p := range res.Projects {
		for _, c := range p.Counts {
			switch c.Kind {
			case change.KindPipeline, change.KindJob, change.KindDeployment, change.KindEnvironment:
			default:
				t.Errorf("%s: synced %s, which did not change", p.Project.Path, c.Kind)
			}
		}
	}
	// Asked again at once: nothing is due, nothing is asked.
	g0 = graphQLRequests(r)
	if res, err = r.poller.SyncAll(ctx); err != nil || len(res.Projects) != 0 || graphQLRequests(r) != g0 {
		t.Fatalf("second poll: %v, %d projects synced, %d GraphQL requests", err, len(res.Projects), graphQLRequests(r)-g0)
	}
}

// Over GitLab's complexity limit the sweep asks about fewer projects at
// once and still catches every change.
func TestSweepShrinksOnComplexity(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, _ := sweepRig(t, gitlabsim.Options{})
	r.sim.SetGraphQLMaxComplexity(70)
	for range 3 {
		r.sim.AdvanceOnly(gitlabsim.ActivityDeployments, gitlabsim.ActivityReleases, gitlabsim.ActivityPipelines)
	}
	g0 := graphQLRequests(r)
	if res, err := r.poller.SyncAll(ctx); err != nil || res.Err() != nil {
		t.Fatal(err, res.Err())
	}
	if n := graphQLRequests(r) - g0; n < 3 {
		t.Errorf("%d GraphQL requests; want the refused one and smaller batches", n)
	}
	if m := r.missing(t); len(m) != 0 {
		t.Fatalf("after the sweep still missing %v", m)
	}
}

// Without GraphQL the sweep asks nothing and the quiet projects wait for
// the full sweep, which catches them by REST as before.
func TestSweepWithoutGraphQL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, clk := sweepRig(t, gitlabsim.Options{NoGraphQL: true})
	for range 3 {
		r.sim.AdvanceOnly(gitlabsim.ActivityPipelines)
	}
	res, err := r.poller.SyncAll(ctx)
	if err != nil || res.Err() != nil {
		t.Fatal(err, res.Err())
	}
	if len(res.Projects) != 0 || len(r.missing(t)) == 0 {
		t.Fatalf("without GraphQL %d projects synced, missing %v; want none synced and the pipelines missing", len(res.Projects), r.missing(t))
	}
	clk.Add(7 * time.Hour) // past the default full sweep of 6 hours
	if res, err := r.poller.SyncAll(ctx); err != nil || res.Err() != nil {
		t.Fatal(err, res.Err())
	}
	if m := r.missing(t); len(m) != 0 {
		t.Fatalf("after the full sweep still missing %v", m)
	}
}
