package metrics_test

import (
	"context"
	"testing"

	"github.com/labtrail/labtrail/internal/metrics"
)

// The series buckets pipelines by creation, with PipelineHealth's rules in
// each bucket, and its buckets add up to the window's figures.
func TestPipelineSeries(t *testing.T) {
	w := &world{}
	w.pipeline(1, 1, "main", "success", h(1), f(100), nil)
	w.pipeline(1, 2, "main", "failed", h(2), f(300), nil)
	w.pipeline(2, 3, "main", "canceled", h(3), f(50), nil) // a duration, no success rate
	w.pipeline(1, 4, "main", "success", h(24+1), f(10), nil)
	w.pipeline(1, 5, "main", "running", h(24+2), nil, nil)
	w.pipeline(1, 6, "main", "skipped", h(3*24), nil, nil) // no rate, no duration
	w.pipeline(1, 7, "main", "failed", h(-1), f(1), nil)   // before the window
	m := metrics.New(w.store(t), metrics.Config{})
	got, err := m.Pipelines(context.Background(), metrics.Query{Since: since, Until: h(4 * 24), Bucket: metrics.BucketDay})
	if err != nil {
		t.Fatal(err)
	}
	want := []metrics.PipelineBucket{
		{Start: since, Pipelines: 3, Success: 1, Failed: 1, SuccessRate: f(0.5), DurationMedianSeconds: f(100)},
		{Start: h(24), Pipelines: 2, Success: 1, SuccessRate: f(1), DurationMedianSeconds: f(10)},
		{Start: h(2 * 24)},
		{Start: h(3 * 24), Pipelines: 1},
	}
	sameJSON(t, got.Series, want)
	if got.Bucket != metrics.BucketDay {
		t.Errorf("bucket %q", got.Bucket)
	}
	n := 0
	for _, b := range got.Series {
		n += b.Pipelines
	}
	if n != got.Pipelines {
		t.Errorf("the buckets hold %d pipelines, the window %d", n, got.Pipelines)
	}

	// Projects filter the series as they filter the figures.
	got, err = m.Pipelines(context.Background(), metrics.Query{ProjectIDs: []int64{2}, Since: since, Until: h(4 * 24), Bucket: metrics.BucketDay})
	if err != nil {
		t.Fatal(err)
	}
	if got.Series[0].Pipelines != 1 || got.Series[0].SuccessRate != nil || *got.Series[0].DurationMedianSeconds != 50 {
		t.Errorf("project 2's first day: %+v", got.Series[0])
	}
}
