package ingest_test

import (
	"context"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/gitlab"
	"github.com/labtrail/labtrail/internal/gitlabsim"
	"github.com/labtrail/labtrail/internal/ingest"
)

// BenchmarkDetectionSweep: 1,000 quiet projects, all synced once; two
// quiet hours later one poll that sweeps every project for changes of
// every kind. "graphql" is the change detection sweep (the project
// listing, then a batch of projects per GraphQL query); "rest" is
// today's full sweep, every kind of every project listed by REST.
// Reports the poll's API requests; the store equals the truth after both.
func BenchmarkDetectionSweep(b *testing.B) {
	for _, mode := range []struct {
		name       string
		full, scan time.Duration
	}{{"graphql", 0, 0}, {"rest", -1, -1}} {
		b.Run(mode.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				clk := &clock{t: time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)}
				r := budgetRig(b, gitlabsim.Options{Seed: 21, Projects: 1000, Groups: 10, MRs: 2, Pipelines: 2, Issues: 1, Now: clk.Now}, 0, true)
				r.poller.Selection.Max = -1
				if res, err := r.poller.SyncAll(context.Background()); err != nil || res.Err() != nil {
					b.Fatal(err, res.Err())
				}
				r.poller.FullSweep, r.poller.Sweep = mode.full, mode.scan
				clk.Add(2 * time.Hour)
				before := r.sim.Stats()
				res := measuredSync(b, r)
				after := r.sim.Stats()
				r.compare(b, change.Kinds...)
				b.ReportMetric(float64(after.Requests-before.Requests), "requests/sweep")
				b.ReportMetric(float64(after.ByPath["POST /api/graphql"]-before.ByPath["POST /api/graphql"]), "graphql-requests")
				b.ReportMetric(float64(len(res.Projects)), "projects-synced")
			}
		})
	}
}

// BenchmarkSteadyActivity: 20 projects that all see activity (merge
// requests, issues, pipelines, deployments, releases), polled every 30 s
// for 20 simulated minutes. "per-kind" is labtrail's poll with change
// detection: the active projects are asked, one GraphQL request for all
// of them and one events request each, which kinds changed, and sync only
// those; "every-kind" is the poll without it (LABTRAIL_SWEEP=0), which
// syncs every kind of each project in GitLab's hour of activity. After
// every poll the store must equal the truth (every finished pipeline
// visible within one poll interval); pushes and comments on commits,
// which only GitLab's events tell of, after the next sweep. Reports
// requests per simulated minute of the 40 polls.
func BenchmarkSteadyActivity(b *testing.B) {
	for _, mode := range []struct {
		name  string
		sweep time.Duration
	}{{"per-kind", 0}, {"every-kind", -1}} {
		b.Run(mode.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				clk := &clock{t: time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)}
				r := budgetRig(b, gitlabsim.Options{Seed: 24, Projects: 20, Groups: 2, MRs: 20, Pipelines: 20, Issues: 10, Now: clk.Now}, 0, true)
				r.poller.Selection.Max = -1
				if res, err := r.poller.SyncAll(context.Background()); err != nil || res.Err() != nil {
					b.Fatal(err, res.Err())
				}
				r.poller.Sweep = mode.sweep
				const polls = 40
				st0 := r.sim.Stats()
				before := st0.Requests
				b.StartTimer()
				for range polls {
					clk.Add(30 * time.Second)
					// One step of activity: 1 to 3 projects, every sort of
					// change (each project sees some every few minutes).
					r.sim.Advance()
					if res, err := r.poller.SyncAll(context.Background()); err != nil || res.Err() != nil {
						b.Fatal(err, res.Err())
					}
					// Everything GitLab has no event for is in after every
					// poll; pushes and comments on commits within a sweep.
					m := r.missing(b)
					for _, k := range gitlab.EventDrivenKinds() {
						delete(m, k)
					}
					if len(m) != 0 {
						b.Fatalf("a poll after the activity left missing %v", m)
					}
				}
				b.StopTimer()
				clk.Add(ingest.DefaultSweep)
				if res, err := r.poller.SyncAll(context.Background()); err != nil || res.Err() != nil {
					b.Fatal(err, res.Err())
				}
				if m := r.missing(b); len(m) != 0 {
					b.Fatalf("a sweep after the activity left missing %v", m)
				}
				minutes := float64(polls) * 0.5
				if testing.Verbose() {
					st := r.sim.Stats()
					for path, n := range st.ByPath {
						if d := n - st0.ByPath[path]; d > 0 {
							b.Logf("%6d %s", d, path)
						}
					}
				}
				b.ReportMetric(float64(r.sim.Stats().Requests-before)/minutes, "requests/minute")
			}
		})
	}
}
