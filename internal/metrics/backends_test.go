package metrics_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/labtrail/labtrail/internal/metrics"
)

// TestBackendsAgree: PostgreSQL gives the answers asserted on SQLite in
// the other tests, to the byte.
func TestBackendsAgree(t *testing.T) {
	ctx := context.Background()
	cfg := metrics.Config{ProductionEnvironments: []string{"prod-*"}}
	queries := []metrics.Query{
		{Since: since, Until: until, Now: until},
		{Since: h(24), Until: h(48), Bucket: metrics.BucketDay, Now: until},
		{ProjectIDs: []int64{1}, Since: h(48), Until: until.AddDate(0, 1, 0), Bucket: metrics.BucketMonth, Now: until},
	}
	for name, w := range map[string]*world{"delivery": deliveryWorld(), "pipelines": pipelineWorld()} {
		t.Run(name, func(t *testing.T) {
			pg := metrics.New(w.postgresStore(t), cfg)
			lite := metrics.New(w.store(t), cfg)
			for i, q := range queries {
				for what, run := range map[string]func(*metrics.Metrics) (any, error){
					"dora":           func(m *metrics.Metrics) (any, error) { return m.DORA(ctx, q) },
					"merge requests": func(m *metrics.Metrics) (any, error) { return m.MergeRequests(ctx, q) },
					"pipelines":      func(m *metrics.Metrics) (any, error) { return m.Pipelines(ctx, q) },
				} {
					t.Run(fmt.Sprintf("%s/%d", what, i), func(t *testing.T) {
						want, err := run(lite)
						if err != nil {
							t.Fatal(err)
						}
						got, err := run(pg)
						if err != nil {
							t.Fatalf("on PostgreSQL: %v", err)
						}
						sameJSON(t, got, want)
					})
				}
			}
		})
	}
}
