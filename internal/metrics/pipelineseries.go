package metrics

import (
	"time"

	"github.com/labtrail/labtrail/internal/store"
)

// PipelineBucket is how the pipelines created in one bucket fared, by the
// rules of PipelineHealth: the success rate leaves canceled and skipped
// pipelines out, the duration is over the finished ones with a duration.
type PipelineBucket struct {
	Start                 time.Time `json:"start"`
	Pipelines             int       `json:"pipelines"`
	Success               int       `json:"success"`
	Failed                int       `json:"failed"`
	SuccessRate           *float64  `json:"success_rate"`
	DurationMedianSeconds *float64  `json:"duration_median_seconds"`
}

// pipelineSeries buckets the window's pipelines (those Pipelines read, so
// the series costs no read of its own) by when they were created.
func pipelineSeries(q Query, ps []store.PipelineFact) []PipelineBucket {
	s := newSeries(q.Bucket, q.Since, q.Until)
	out := make([]PipelineBucket, len(s.starts))
	durations := make([][]float64, len(s.starts))
	for i, t := range s.starts {
		out[i].Start = t
	}
	for _, p := range ps {
		i := s.at(p.CreatedAt)
		if i < 0 {
			continue
		}
		b := &out[i]
		b.Pipelines++
		switch p.Status {
		case "success":
			b.Success++
		case "failed":
			b.Failed++
		}
		if p.Duration != nil && finished[p.Status] {
			durations[i] = append(durations[i], *p.Duration)
		}
	}
	for i := range out {
		if n := out[i].Success + out[i].Failed; n > 0 {
			out[i].SuccessRate = ptr(float64(out[i].Success) / float64(n))
		}
		out[i].DurationMedianSeconds = medianPtr(durations[i])
	}
	return out
}
