package server

import (
	"net/http"

	"github.com/labtrail/labtrail/internal/metrics"
)

// mrStage is one stage of the cycle-time breakdown.
type mrStage struct {
	ID, Name, About string
	S               metrics.Summary
	// Share is the stage's median as a part of the medians' sum, in
	// percent: the width of its segment in the breakdown bar.
	Share float64
}

type mrPageData struct {
	metricsState
	Flow       metrics.MergeRequestFlow
	Stages     []mrStage
	Throughput chart
}

// mergeRequestsPage is GET /merge-requests: the merge-request flow of the
// window (GET /api/v1/metrics/merge-requests): the cycle time's stages,
// throughput per bucket, the slowest open merge requests, by author and
// by project. One computation of the flow.
func (s *Server) mergeRequestsPage(w http.ResponseWriter, r *http.Request) {
	v, ok := s.startMetricsPage(w, r, "merge_requests", "Merge requests", "merge-requests", filterOptions{window: "30d", bucket: true})
	if !ok {
		return
	}
	flow, err := s.metricsOf(r.Context(), v.q.ProjectIDs, "").MergeRequests(r.Context(), v.q)
	if err != nil {
		s.failPage(w, r, metricsError(err))
		return
	}
	d := mrPageData{metricsState: v.st, Flow: flow}
	d.Stages = []mrStage{
		{ID: "coding", Name: "Coding", About: "first commit to opened", S: flow.Coding},
		{ID: "pickup", Name: "Pickup", About: "opened to first review (approval or comment by someone else)", S: flow.Pickup},
		{ID: "review", Name: "Review", About: "first review to merged", S: flow.Review},
		{ID: "deploy", Name: "Deploy", About: "merged to its first production deployment", S: flow.Deploy},
	}
	var sum float64
	for _, st := range d.Stages {
		if st.S.MedianSeconds != nil {
			sum += *st.S.MedianSeconds
		}
	}
	for i, st := range d.Stages {
		if st.S.MedianSeconds != nil && sum > 0 {
			d.Stages[i].Share = *st.S.MedianSeconds / sum * 100
		}
	}
	d.Throughput = chart{Kind: "bars", Unit: "count", Series: []chartSeries{{Label: "merged"}}}
	for _, b := range flow.Throughput {
		d.Throughput.X = append(d.Throughput.X, b.Start.Unix())
		d.Throughput.Series[0].Values = append(d.Throughput.Series[0].Values, count(b.Merged))
	}
	v.render(s, w, r, &d)
}
