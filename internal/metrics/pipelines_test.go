package metrics_test

import (
	"context"
	"testing"

	"github.com/labtrail/labtrail/internal/metrics"
)

// pipelineWorld is project 1's pipelines and jobs, in [since, until) but
// for the marked ones.
func pipelineWorld() *world {
	w := &world{}
	w.pipeline(1, 1, "main", "success", h(1), f(100), f(5))
	w.pipeline(1, 2, "main", "failed", h(2), f(300), f(15))
	w.pipeline(1, 3, "main", "success", h(3), f(200), f(10))
	w.pipeline(1, 4, "feature", "canceled", h(4), f(50), nil)
	w.pipeline(1, 5, "feature", "running", h(5), nil, f(20))
	w.pipeline(1, 6, "feature", "success", h(6), f(400), f(1))
	w.pipeline(1, 7, "main", "skipped", h(7), nil, nil)
	w.pipeline(1, 8, "main", "failed", h(-1), f(1000), f(1000)) // before the window
	w.pipeline(1, 9, "main", "failed", until, f(1000), f(1000)) // at until: after it

	w.job(1, 1, "build", "build", "success", "", "aaa1111", h(1))
	w.job(1, 2, "test", "test", "failed", "script_failure", "aaa1111", h(2))
	w.job(1, 3, "test", "test", "success", "", "aaa1111", h(3)) // flaky on aaa
	w.job(1, 4, "lint", "test", "failed", "script_failure", "aaa1111", h(2))
	w.job(1, 5, "build", "build", "success", "", "bbb2222", h(4))
	w.job(1, 6, "test", "test", "failed", "runner_system_failure", "bbb2222", h(5))
	w.job(1, 7, "deploy", "deploy", "failed", "", "bbb2222", h(6))
	w.job(1, 8, "test", "test", "success", "", "ccc3333", h(7))
	w.job(1, 9, "test", "test", "failed", "script_failure", "ccc3333", h(8)) // passed, then failed: not flaky
	w.job(1, 10, "lint", "test", "success", "", "ccc3333", h(7))
	w.job(1, 11, "test", "test", "failed", "script_failure", "fff6666", h(9))
	w.job(1, 12, "test", "test", "success", "", "fff6666", h(10)) // flaky on fff
	w.job(1, 13, "unit", "test", "failed", "script_failure", "eee5555", h(11))
	w.job(1, 14, "unit", "test", "failed", "stuck_or_timeout_failure", "eee5555", h(12))
	w.job(1, 15, "unit", "test", "success", "", "eee5555", h(13)) // flaky on eee
	w.job(1, 16, "unit", "test", "success", "", "eee5555", h(14))
	w.job(1, 17, "e2e", "test", "failed", "api_failure", "ggg7777", h(15))
	w.job(1, 18, "e2e", "test", "success", "", "hhh8888", h(16)) // another commit: not flaky
	w.job(1, 19, "old", "test", "failed", "script_failure", "aaa1111", h(-5))

	return w
}

func TestPipelines(t *testing.T) {
	w := pipelineWorld()
	m := metrics.New(w.store(t), metrics.Config{})
	got, err := m.Pipelines(context.Background(), metrics.Query{Since: since, Until: until})
	if err != nil {
		t.Fatal(err)
	}
	want := metrics.PipelineHealth{
		Since: since, Until: until, Pipelines: 7,
		Statuses: map[string]int{"success": 3, "failed": 1, "canceled": 1, "running": 1, "skipped": 1},
		// 3 success, 1 failed; canceled and skipped left out
		SuccessRate: f(0.75),
		// finished with a duration: 100 300 200 50 400 -> 200; p95 the 5th
		Duration: metrics.Summary{Count: 5, MedianSeconds: f(200), P75Seconds: f(300), P90Seconds: f(400), P95Seconds: f(400)},
		// 5 15 10 20 1 -> 10
		Queued: metrics.Summary{Count: 5, MedianSeconds: f(10), P75Seconds: f(15), P90Seconds: f(20), P95Seconds: f(20)},
		ByRef: []metrics.RefHealth{
			{Ref: "main", Count: 4, SuccessRate: f(2.0 / 3), DurationMedianSeconds: f(200)},
			{Ref: "feature", Count: 3, SuccessRate: f(1), DurationMedianSeconds: f(225)},
		},
		// runs/failures: build 2/0, test 7/4, lint 2/1, deploy 1/1, unit 4/2, e2e 2/1
		FailingJobs: []metrics.JobHealth{
			{Name: "deploy", Runs: 1, Failures: 1, FailureRate: 1},
			{Name: "test", Runs: 7, Failures: 4, FailureRate: 4.0 / 7},
			{Name: "unit", Runs: 4, Failures: 2, FailureRate: 0.5},
			{Name: "e2e", Runs: 2, Failures: 1, FailureRate: 0.5},
			{Name: "lint", Runs: 2, Failures: 1, FailureRate: 0.5},
		},
		FlakyJobs:       []metrics.FlakyJob{{Name: "test", Commits: 2}, {Name: "unit", Commits: 1}},
		FailuresByStage: []metrics.StageFailures{{Stage: "test", Failures: 8}, {Stage: "deploy", Failures: 1}},
		FailuresByReason: []metrics.ReasonFailures{
			{Reason: "script_failure", Failures: 5},
			{Reason: "api_failure", Failures: 1},
			{Reason: "runner_system_failure", Failures: 1},
			{Reason: "stuck_or_timeout_failure", Failures: 1},
			{Reason: "unknown", Failures: 1},
		},
		// Every pipeline of the window is in its first week.
		Bucket: metrics.BucketWeek,
		Series: []metrics.PipelineBucket{
			{Start: since, Pipelines: 7, Success: 3, Failed: 1, SuccessRate: f(0.75), DurationMedianSeconds: f(200)},
			{Start: h(7 * 24)},
		},
	}
	sameJSON(t, got, want)

	// Only canceled and skipped: no success rate, no duration.
	w = &world{}
	w.pipeline(1, 1, "main", "canceled", h(1), nil, nil)
	w.pipeline(1, 2, "main", "skipped", h(2), nil, nil)
	got, err = metrics.New(w.store(t), metrics.Config{}).Pipelines(context.Background(), metrics.Query{Since: since, Until: until})
	if err != nil {
		t.Fatal(err)
	}
	obj := jsonObject(t, got)
	if obj["pipelines"] != 2.0 || obj["success_rate"] != nil || obj["duration"].(map[string]any)["median_seconds"] != nil ||
		obj["queued"].(map[string]any)["median_seconds"] != nil {
		t.Errorf("canceled and skipped only: %v", obj)
	}
	for _, k := range []string{"failing_jobs", "flaky_jobs", "failures_by_stage", "failures_by_reason"} {
		if v, ok := obj[k].([]any); !ok || len(v) != 0 {
			t.Errorf("%s = %#v, want []", k, obj[k])
		}
	}
}
