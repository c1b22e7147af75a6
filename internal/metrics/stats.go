package metrics

import (
	"math"
	"sort"
)

// Median returns the middle value of xs, or the mean of the two middle
// values when there is an even number of them; false when xs is empty.
// xs is not modified.
func Median(xs []float64) (float64, bool) {
	return medianSorted(sortedCopy(xs))
}

// Percentile returns the nearest-rank q-quantile of xs (0 < q <= 1): the
// ceil(q*n)-th smallest value; false when xs is empty. xs is not modified.
func Percentile(xs []float64, q float64) (float64, bool) {
	return percentileSorted(sortedCopy(xs), q)
}

func sortedCopy(xs []float64) []float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s
}

func medianSorted(s []float64) (float64, bool) {
	n := len(s)
	switch {
	case n == 0:
		return 0, false
	case n%2 == 1:
		return s[n/2], true
	default:
		return (s[n/2-1] + s[n/2]) / 2, true
	}
}

func percentileSorted(s []float64, q float64) (float64, bool) {
	n := len(s)
	if n == 0 {
		return 0, false
	}
	// The epsilon keeps q*n that is an integer in exact arithmetic (0.9*10)
	// from ceiling to the next rank through a rounding error.
	rank := int(math.Ceil(q*float64(n) - 1e-9))
	rank = max(1, min(rank, n))
	return s[rank-1], true
}

// medianPtr is Median as a figure: nil for no data.
func medianPtr(xs []float64) *float64 {
	if v, ok := Median(xs); ok {
		return &v
	}
	return nil
}

// Summary is one stage or duration summarised: how many values, their
// median and nearest-rank percentiles (nil when there are none).
type Summary struct {
	Count         int      `json:"count"`
	MedianSeconds *float64 `json:"median_seconds"`
	P75Seconds    *float64 `json:"p75_seconds"`
	P90Seconds    *float64 `json:"p90_seconds"`
	P95Seconds    *float64 `json:"p95_seconds"`
}

// Summarize summarises durations in seconds.
func Summarize(xs []float64) Summary {
	s := sortedCopy(xs)
	out := Summary{Count: len(s)}
	if v, ok := medianSorted(s); ok {
		out.MedianSeconds = &v
	}
	for _, p := range []struct {
		q   float64
		dst **float64
	}{{0.75, &out.P75Seconds}, {0.90, &out.P90Seconds}, {0.95, &out.P95Seconds}} {
		if v, ok := percentileSorted(s, p.q); ok {
			*p.dst = &v
		}
	}
	return out
}
