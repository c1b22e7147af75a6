package server

import (
	"cmp"
	"net/http"
	"slices"

	"github.com/labtrail/labtrail/internal/metrics"
)

// pipelineRows is how many rows each pipelines table shows; the JSON has
// them all.
const pipelineRows = 20

type statusCount struct {
	Status string
	Count  int
}

type pipelinesPageData struct {
	metricsState
	H                  metrics.PipelineHealth
	Statuses           []statusCount
	Rate, Duration     chart
	Failing            []metrics.JobHealth
	Flaky              []metrics.FlakyJob
	ByRef              []metrics.RefHealth
	MoreFailing        int
	MoreFlaky, MoreRef int
}

// pipelinesPage is GET /pipelines: the pipeline health of the window (GET
// /api/v1/metrics/pipelines): success rate and duration per bucket, the
// most failing and the flaky jobs, failures by stage and reason. One
// computation of the health.
func (s *Server) pipelinesPage(w http.ResponseWriter, r *http.Request) {
	v, ok := s.startMetricsPage(w, r, "pipelines", "Pipelines", "pipelines", filterOptions{window: "30d", bucket: true})
	if !ok {
		return
	}
	h, err := s.metricsOf(r.Context(), v.q.ProjectIDs, "").Pipelines(r.Context(), v.q)
	if err != nil {
		s.failPage(w, r, metricsError(err))
		return
	}
	d := pipelinesPageData{metricsState: v.st, H: h}
	for st, n := range h.Statuses {
		d.Statuses = append(d.Statuses, statusCount{st, n})
	}
	slices.SortFunc(d.Statuses, func(a, b statusCount) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Status, b.Status))
	})
	d.Rate = chart{Kind: "line", Unit: "ratio", Series: []chartSeries{{Label: "success rate"}}}
	d.Duration = chart{Kind: "line", Unit: "seconds", Series: []chartSeries{{Label: "median duration"}}}
	for _, b := range h.Series {
		d.Rate.X = append(d.Rate.X, b.Start.Unix())
		d.Duration.X = append(d.Duration.X, b.Start.Unix())
		d.Rate.Series[0].Values = append(d.Rate.Series[0].Values, b.SuccessRate)
		d.Duration.Series[0].Values = append(d.Duration.Series[0].Values, b.DurationMedianSeconds)
	}
	d.Failing, d.MoreFailing = firstRows(h.FailingJobs)
	d.Flaky, d.MoreFlaky = firstRows(h.FlakyJobs)
	d.ByRef, d.MoreRef = firstRows(h.ByRef)
	v.render(s, w, r, &d)
}

// firstRows is the first pipelineRows of xs, and how many are left out.
func firstRows[T any](xs []T) ([]T, int) {
	if len(xs) <= pipelineRows {
		return xs, 0
	}
	return xs[:pipelineRows], len(xs) - pipelineRows
}
