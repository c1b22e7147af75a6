package ingest_test

import (
	"context"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/gitlabsim"
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
