package ingest_test

import (
	"context"
	"math"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/gitlab"
	"github.com/labtrail/labtrail/internal/gitlabsim"
	"github.com/labtrail/labtrail/internal/ingest"
	"github.com/labtrail/labtrail/internal/store/sqlite"
)

// The scale benchmarks of docs/performance.md's table: what labtrail costs
// in GitLab API requests at GitLab.com scale, beside a naive poller
// measured in the same run. The naive poller is labtrail with its savings
// switched off: every project synced on every poll (no activity gating) and
// merge request and pipeline details by REST, object by object.

// budgetRig is a simulator and a labtrail client at a given latency and
// requests-per-minute budget (0: unthrottled), with GraphQL on or off.
func budgetRig(b *testing.B, o gitlabsim.Options, rpm int, graphql bool) *rig {
	b.Helper()
	o.Token = "tok"
	o.NoGraphQL = !graphql
	if rpm > 0 {
		o.RateLimit = rpm
	} else {
		o.RateLimit = 1 << 30
		rpm = 1 << 20
	}
	sim := gitlabsim.New(o)
	ts := httptest.NewServer(sim)
	b.Cleanup(ts.Close)
	mode := gitlab.GraphQLAuto
	if !graphql {
		mode = gitlab.GraphQLOff
	}
	cl, err := gitlab.New(gitlab.Config{URL: ts.URL, Token: "tok", RequestsPerMinute: rpm, GraphQL: mode})
	if err != nil {
		b.Fatal(err)
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "l.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return &rig{sim: sim, client: cl, store: st, poller: &ingest.Poller{GitLab: cl, Store: st, Log: quiet, Now: o.Now}}
}

// BenchmarkNoChangePoll: 1,000 projects, all synced once; two quiet hours
// later one more poll. Reports the API requests that poll cost.
func BenchmarkNoChangePoll(b *testing.B) {
	for _, mode := range []struct {
		name  string
		sweep time.Duration
	}{{"gated", 0}, {"naive", -1}} {
		b.Run(mode.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				clk := &clock{t: time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)}
				r := budgetRig(b, gitlabsim.Options{Seed: 21, Projects: 1000, Groups: 10, MRs: 2, Pipelines: 2, Issues: 1, Now: clk.Now}, 0, true)
				r.poller.Selection.Max = -1
				r.poller.FullSweep = mode.sweep
				// The listing alone; BenchmarkDetectionSweep adds the sweep.
				r.poller.Sweep = -1
				if res, err := r.poller.SyncAll(context.Background()); err != nil || res.Err() != nil {
					b.Fatal(err, res.Err())
				}
				clk.Add(2 * time.Hour)
				before := r.sim.Stats().Requests
				res := measuredSync(b, r)
				r.compare(b, change.Kinds...)
				b.ReportMetric(float64(r.sim.Stats().Requests-before), "requests/poll")
				b.ReportMetric(float64(len(res.Projects)), "projects-synced")
			}
		})
	}
}

// BenchmarkBackfillMergeRequests: one project with 10,000 merge requests
// backfilled with approvals, reviewers, labels, diff stats and notes. The
// GraphQL run pays 50 ms of latency per request under a 600/min budget (the
// docs/performance.md target: under 60 s); the naive REST run is unthrottled without
// latency, and its time at 600/min follows from its request count.
func BenchmarkBackfillMergeRequests(b *testing.B) {
	for _, mode := range []struct {
		name    string
		graphql bool
		rpm     int
		latency time.Duration
	}{{"graphql", true, 600, 50 * time.Millisecond}, {"naive-rest", false, 0, 0}} {
		b.Run(mode.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				r := budgetRig(b, gitlabsim.Options{Seed: 22, Projects: 1, MRs: 10000, Pipelines: 1, Issues: -1, Latency: mode.latency}, mode.rpm, mode.graphql)
				r.poller.Kinds = []change.Kind{change.KindMergeRequest}
				backfill(b, r, change.KindMergeRequest, change.KindNote)
			}
		})
	}
}

// BenchmarkBackfillPipelines: one project with 50,000 pipelines and their
// jobs, unthrottled. The issue's minimum is one page per 100 pipelines plus
// the jobs of failed ones (requests/minimum); GraphQL carries every job, but
// not a failed job's failure_reason, which REST adds, so the figure beside
// it is against the pages alone (requests/pages).
func BenchmarkBackfillPipelines(b *testing.B) {
	for _, mode := range []struct {
		name    string
		graphql bool
	}{{"graphql", true}, {"naive-rest", false}} {
		b.Run(mode.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				r := budgetRig(b, gitlabsim.Options{Seed: 23, Projects: 1, MRs: 1, Pipelines: 50000, Issues: -1}, 0, mode.graphql)
				r.poller.Kinds = []change.Kind{change.KindPipeline}
				n := backfill(b, r, change.KindPipeline, change.KindJob)
				failed := 0
				eachStored(b, r.store, change.KindPipeline, func(e change.Event) {
					if e.State == "failed" {
						failed++
					}
				})
				pages := math.Ceil(float64(n) / 100)
				reqs := float64(r.sim.Stats().Requests)
				b.ReportMetric(float64(failed), "failed-pipelines")
				b.ReportMetric(reqs/(pages+float64(failed)), "requests/minimum")
				b.ReportMetric(reqs/pages, "requests/pages")
			}
		})
	}
}

// backfill syncs r's one project from scratch, checks the store against the
// truth — kinds[0] whole, the others (notes and jobs, which other kinds
// also carry) object by object as stored — and reports the figures per
// object of kinds[0]; it returns how many of those there are.
func backfill(b *testing.B, r *rig, kinds ...change.Kind) int {
	b.Helper()
	measuredSync(b, r)
	r.compare(b, kinds[0])
	truth := map[string]time.Time{}
	for _, e := range r.sim.Truth() {
		truth[e.ID] = e.UpdatedAt
	}
	for _, k := range kinds[1:] {
		n := 0
		eachStored(b, r.store, k, func(e change.Event) {
			n++
			if u, ok := truth[e.ID]; !ok || !u.Equal(e.UpdatedAt) {
				b.Errorf("%s %s stored at %v, GitLab has %v (present %v)", k, e.ID, e.UpdatedAt, u, ok)
			}
		})
		if n == 0 {
			b.Errorf("no %s stored", k)
		}
	}
	n := 0
	for _, e := range r.sim.Truth() {
		if e.Kind == kinds[0] {
			n++
		}
	}
	reqs := float64(r.sim.Stats().Requests)
	b.ReportMetric(reqs, "requests")
	b.ReportMetric(reqs/float64(n), "requests/"+string(kinds[0]))
	b.ReportMetric(reqs/600, "minutes-at-600/min")
	return n
}

// measuredSync runs one timed SyncAll of r (the timer stopped before and
// after) and reports its wall time and the peak heap while it ran.
func measuredSync(b *testing.B, r *rig) ingest.Result {
	b.Helper()
	var peak atomic.Uint64
	stop := sampleHeap(&peak)
	b.StartTimer()
	start := time.Now()
	res, err := r.poller.SyncAll(context.Background())
	wall := time.Since(start)
	b.StopTimer()
	stop()
	if err != nil || res.Err() != nil {
		b.Fatal(err, res.Err())
	}
	b.ReportMetric(wall.Seconds(), "wall-s")
	b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MiB")
	return res
}
