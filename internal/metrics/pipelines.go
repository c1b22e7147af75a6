package metrics

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/labtrail/labtrail/internal/store"
)

// PipelineHealth is how the window's pipelines and jobs fared.
type PipelineHealth struct {
	Since     time.Time `json:"since"`
	Until     time.Time `json:"until"`
	Pipelines int       `json:"pipelines"`
	// Statuses counts the pipelines by status.
	Statuses map[string]int `json:"statuses"`
	// SuccessRate is success / (success + failed): canceled and skipped
	// pipelines say nothing about the code.
	SuccessRate *float64 `json:"success_rate"`
	// Duration is over the finished pipelines (success, failed, canceled,
	// skipped) that have a duration.
	Duration Summary `json:"duration"`
	// Queued is over the pipelines that have a queued duration.
	Queued           Summary          `json:"queued"`
	ByRef            []RefHealth      `json:"by_ref"`
	FailingJobs      []JobHealth      `json:"failing_jobs"`
	FlakyJobs        []FlakyJob       `json:"flaky_jobs"`
	FailuresByStage  []StageFailures  `json:"failures_by_stage"`
	FailuresByReason []ReasonFailures `json:"failures_by_reason"`
	// Bucket and Series are the window's pipelines per bucket
	// (pipelineseries.go).
	Bucket Bucket           `json:"bucket"`
	Series []PipelineBucket `json:"series"`
}

// RefHealth is the pipelines of one ref (across projects).
type RefHealth struct {
	Ref                   string   `json:"ref"`
	Count                 int      `json:"count"`
	SuccessRate           *float64 `json:"success_rate"`
	DurationMedianSeconds *float64 `json:"duration_median_seconds"`
}

// JobHealth is the runs of one job name that failed at least once.
type JobHealth struct {
	Name        string  `json:"name"`
	Runs        int     `json:"runs"`
	Failures    int     `json:"failures"`
	FailureRate float64 `json:"failure_rate"`
}

// FlakyJob is a job name that failed and then passed on the same commit.
type FlakyJob struct {
	Name string `json:"name"`
	// Commits counts the (project, sha) pairs on which it did.
	Commits int `json:"commits"`
}

// StageFailures counts the failed jobs of a stage.
type StageFailures struct {
	Stage    string `json:"stage"`
	Failures int    `json:"failures"`
}

// ReasonFailures counts the failed jobs of a failure reason ("unknown"
// when GitLab gave none).
type ReasonFailures struct {
	Reason   string `json:"reason"`
	Failures int    `json:"failures"`
}

// finished are the pipeline statuses that end a pipeline.
var finished = map[string]bool{"success": true, "failed": true, "canceled": true, "skipped": true}

// Pipelines computes the pipeline health of q's window: the pipelines and
// jobs created in it.
func (m *Metrics) Pipelines(ctx context.Context, q Query) (PipelineHealth, error) {
	q, err := q.normalize()
	if err != nil {
		return PipelineHealth{}, err
	}
	// The job counts are read beside the pipelines: each is a read of
	// tens of thousands of rows over a wide window, and they do not
	// depend on each other.
	type jobStats struct {
		js  store.JobStats
		err error
	}
	jobs := make(chan jobStats, 1)
	go func() {
		js, err := m.st.JobStats(ctx, q.filter())
		jobs <- jobStats{js, err}
	}()
	ps, err := inHalves(ctx, q.filter(), m.st.Pipelines)
	if err != nil {
		<-jobs
		return PipelineHealth{}, fmt.Errorf("pipelines: %w", err)
	}
	out := PipelineHealth{Since: q.Since, Until: q.Until, Pipelines: len(ps), Statuses: make(map[string]int)}
	type tally struct {
		count, success, failed int
		durations              []float64
	}
	var all tally
	var queued []float64
	refs := make(map[string]*tally)
	for _, p := range ps {
		out.Statuses[p.Status]++
		r := refs[p.Ref]
		if r == nil {
			r = &tally{}
			refs[p.Ref] = r
		}
		for _, t := range []*tally{&all, r} {
			t.count++
			switch p.Status {
			case "success":
				t.success++
			case "failed":
				t.failed++
			}
			if p.Duration != nil && finished[p.Status] {
				t.durations = append(t.durations, *p.Duration)
			}
		}
		if p.QueuedDuration != nil {
			queued = append(queued, *p.QueuedDuration)
		}
	}
	rate := func(t *tally) *float64 {
		if t.success+t.failed == 0 {
			return nil
		}
		return ptr(float64(t.success) / float64(t.success+t.failed))
	}
	out.SuccessRate = rate(&all)
	out.Duration = Summarize(all.durations)
	out.Queued = Summarize(queued)
	out.ByRef = make([]RefHealth, 0, len(refs))
	for ref, t := range refs {
		out.ByRef = append(out.ByRef, RefHealth{Ref: ref, Count: t.count, SuccessRate: rate(t),
			DurationMedianSeconds: medianPtr(t.durations)})
	}
	slices.SortFunc(out.ByRef, func(a, b RefHealth) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Ref, b.Ref))
	})

	out.Bucket, out.Series = q.Bucket, pipelineSeries(q, ps)

	j := <-jobs
	if j.err != nil {
		return PipelineHealth{}, fmt.Errorf("job stats: %w", j.err)
	}
	js := j.js
	out.FailingJobs = failingJobs(js.ByName)
	out.FlakyJobs = make([]FlakyJob, 0, len(js.Flaky))
	for _, f := range js.Flaky {
		if f.Commits > 0 {
			out.FlakyJobs = append(out.FlakyJobs, FlakyJob{Name: f.Name, Commits: f.Commits})
		}
	}
	slices.SortFunc(out.FlakyJobs, func(a, b FlakyJob) int {
		return cmp.Or(cmp.Compare(b.Commits, a.Commits), cmp.Compare(a.Name, b.Name))
	})
	stages, reasons := make(map[string]int), make(map[string]int)
	for _, f := range js.Failures {
		stages[f.Stage] += f.Count
		reason := f.Reason
		if reason == "" {
			reason = "unknown"
		}
		reasons[reason] += f.Count
	}
	out.FailuresByStage = make([]StageFailures, 0, len(stages))
	for s, n := range stages {
		out.FailuresByStage = append(out.FailuresByStage, StageFailures{Stage: s, Failures: n})
	}
	slices.SortFunc(out.FailuresByStage, func(a, b StageFailures) int {
		return cmp.Or(cmp.Compare(b.Failures, a.Failures), cmp.Compare(a.Stage, b.Stage))
	})
	out.FailuresByReason = make([]ReasonFailures, 0, len(reasons))
	for r, n := range reasons {
		out.FailuresByReason = append(out.FailuresByReason, ReasonFailures{Reason: r, Failures: n})
	}
	slices.SortFunc(out.FailuresByReason, func(a, b ReasonFailures) int {
		return cmp.Or(cmp.Compare(b.Failures, a.Failures), cmp.Compare(a.Reason, b.Reason))
	})
	return out, nil
}

// failingJobs are the job names that failed at least once, worst first:
// highest failure rate, then most failures, then by name.
func failingJobs(runs []store.JobRuns) []JobHealth {
	out := make([]JobHealth, 0, len(runs))
	for _, r := range runs {
		if r.Failures > 0 && r.Runs > 0 {
			out = append(out, JobHealth{Name: r.Name, Runs: r.Runs, Failures: r.Failures,
				FailureRate: float64(r.Failures) / float64(r.Runs)})
		}
	}
	slices.SortFunc(out, func(a, b JobHealth) int {
		return cmp.Or(cmp.Compare(b.FailureRate, a.FailureRate), cmp.Compare(b.Failures, a.Failures),
			cmp.Compare(a.Name, b.Name))
	})
	return out
}
