package ingest_test

import (
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/gitlabsim"
)

// BenchmarkBackfillProject: a whole-project backfill, every kind, of one
// project with 10,000 merge requests (and, from the simulator's seed,
// thousands of issues, 100 pipelines, releases and registry tags). The
// GraphQL run pays 50 ms of latency per request under a 600 requests a
// minute budget; the REST run (LABTRAIL_GRAPHQL=off) is unthrottled
// without latency, and its time at 600/min follows from its count. The
// store equals the truth after both.
func BenchmarkBackfillProject(b *testing.B) {
	for _, mode := range []struct {
		name    string
		graphql bool
		rpm     int
		latency time.Duration
	}{{"graphql", true, 600, 50 * time.Millisecond}, {"rest", false, 0, 0}} {
		b.Run(mode.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				r := budgetRig(b, gitlabsim.Options{Seed: 22, Projects: 1, MRs: 10000, Pipelines: 100, Latency: mode.latency}, mode.rpm, mode.graphql)
				measuredSync(b, r)
				r.compare(b, change.Kinds...)
				st := r.sim.Stats()
				b.ReportMetric(float64(st.Requests), "requests")
				b.ReportMetric(float64(st.Requests)/600, "minutes-at-600/min")
				if testing.Verbose() {
					for path, n := range st.ByPath {
						if n > 20 {
							b.Logf("%6d %s", n, path)
						}
					}
				}
			}
		})
	}
}
