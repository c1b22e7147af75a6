package metrics_test

import (
	"context"
	"testing"

	"github.com/labtrail/labtrail/internal/metrics"
)

// TestMergeRequests works out deliveryWorld's merge-request flow over
// [since, until): merged in it are 1-3 (develop), 1-4, 1-5, 1-6 and 2-1.
func TestMergeRequests(t *testing.T) {
	m := metrics.New(deliveryWorld().store(t), metrics.Config{})
	got, err := m.MergeRequests(context.Background(), metrics.Query{Since: since, Until: until, Now: until})
	if err != nil {
		t.Fatal(err)
	}
	// Per MR, in hours (created, first commit, first review, merged, shipped):
	//   1-3 c1 fc-5 review h3 (approval; bob's note h4) merged h5, develop never shipped:
	//       coding 6h, pickup 2h, review 2h, cycle 10h
	//   1-4 c2 fc unknown, review h8 (cat; the author's note and a system
	//       note do not count), merged h10, shipped h24: pickup 6h, review 2h,
	//       deploy 14h, cycle 8h (from created)
	//   1-5 c15 fc12 review h16 (approval before bob's note h19), merged h20,
	//       shipped h24: coding 3h, pickup 1h, review 4h, deploy 4h, cycle 8h
	//   1-6 c80 fc70, no review before the merge (a note after it), merged
	//       h90, shipped at until by 107: coding 10h, deploy 246h, cycle 20h
	//   2-1 c185 fc180 review h186, merged h190, shipped h200: coding 5h,
	//       pickup 1h, review 4h, deploy 10h, cycle 10h
	hour := 3600.0
	week2 := since.AddDate(0, 0, 7)
	want := metrics.MergeRequestFlow{
		Since: since, Until: until, Bucket: metrics.BucketWeek, Merged: 5,
		// 3h 5h 6h 10h
		Coding: metrics.Summary{Count: 4, MedianSeconds: f(5.5 * hour), P75Seconds: f(6 * hour), P90Seconds: f(10 * hour),
			P95Seconds: f(10 * hour)},
		// 1h 1h 2h 6h
		Pickup: metrics.Summary{Count: 4, MedianSeconds: f(1.5 * hour), P75Seconds: f(2 * hour), P90Seconds: f(6 * hour),
			P95Seconds: f(6 * hour)},
		// 2h 2h 4h 4h
		Review: metrics.Summary{Count: 4, MedianSeconds: f(3 * hour), P75Seconds: f(4 * hour), P90Seconds: f(4 * hour),
			P95Seconds: f(4 * hour)},
		// 4h 10h 14h 246h
		Deploy: metrics.Summary{Count: 4, MedianSeconds: f(12 * hour), P75Seconds: f(14 * hour), P90Seconds: f(246 * hour),
			P95Seconds: f(246 * hour)},
		// 8h 8h 10h 10h 20h: odd, the middle one; p75 the ceil(3.75) = 4th
		Cycle: metrics.Summary{Count: 5, MedianSeconds: f(10 * hour), P75Seconds: f(10 * hour), P90Seconds: f(20 * hour),
			P95Seconds: f(20 * hour)},
		Throughput: []metrics.MergedBucket{{Start: since, Merged: 4}, {Start: week2, Merged: 1}},
		// lines 15 120 2 40 10 -> 15; files 2 5 1 3 1 -> 2
		Size: metrics.Size{MedianLines: f(15), MedianFiles: f(2)},
		ByAuthor: []metrics.MergedGroup{
			{Name: "ann", Merged: 3, CycleMedianSeconds: f(10 * hour)}, // 10h 8h 20h
			{Name: "bob", Merged: 1, CycleMedianSeconds: f(8 * hour)},
			{Name: "dan", Merged: 1, CycleMedianSeconds: f(10 * hour)},
		},
		ByProject: []metrics.MergedGroup{
			{Name: "g/app", ProjectID: 1, Merged: 4, CycleMedianSeconds: f(9 * hour)}, // 10h 8h 8h 20h
			{Name: "g/svc", ProjectID: 2, Merged: 1, CycleMedianSeconds: f(10 * hour)},
		},
		SlowestOpen: []metrics.OpenMergeRequest{
			{ID: "mr-1-7", ProjectID: 1, ProjectPath: "g/app", IID: 7, Title: "MR mr-1-7", Author: "bob",
				CreatedAt: h(-100), AgeSeconds: 436 * hour},
			{ID: "mr-2-2", ProjectID: 2, ProjectPath: "g/svc", IID: 2, Title: "MR mr-2-2", Author: "ann",
				CreatedAt: h(300), AgeSeconds: 36 * hour},
		},
	}
	sameJSON(t, got, want)

	// A window that ends before the deploy that shipped 1-6: its next
	// deployment after the window (107, at until) is still found.
	got, err = m.MergeRequests(context.Background(), metrics.Query{ProjectIDs: []int64{1}, Since: h(48), Until: h(96), Now: until})
	if err != nil {
		t.Fatal(err)
	}
	if got.Merged != 1 || got.Deploy.Count != 1 || *got.Deploy.MedianSeconds != 246*hour || len(got.SlowestOpen) != 1 {
		t.Errorf("[h48, h96) = %+v", got)
	}
}

// TestMergeRequestsEmpty: no merges, every figure null.
func TestMergeRequestsEmpty(t *testing.T) {
	m := metrics.New((&world{}).store(t), metrics.Config{})
	got, err := m.MergeRequests(context.Background(), metrics.Query{Since: since, Until: until})
	if err != nil {
		t.Fatal(err)
	}
	obj := jsonObject(t, got)
	for _, stage := range []string{"coding", "pickup", "review", "deploy", "cycle"} {
		s := obj[stage].(map[string]any)
		if s["count"] != 0.0 || s["median_seconds"] != nil || s["p75_seconds"] != nil || s["p90_seconds"] != nil {
			t.Errorf("%s = %v", stage, s)
		}
	}
	if s := obj["size"].(map[string]any); s["median_lines"] != nil || s["median_files"] != nil {
		t.Errorf("size = %v", s)
	}
	for _, k := range []string{"by_author", "by_project", "slowest_open"} {
		if v, ok := obj[k].([]any); !ok || len(v) != 0 {
			t.Errorf("%s = %#v, want []", k, obj[k])
		}
	}
	if tp := obj["throughput"].([]any); len(tp) != 2 {
		t.Errorf("throughput = %v", tp)
	}
}
