package metrics_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/metrics"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		xs   []float64
		want float64
		ok   bool
	}{
		{nil, 0, false},
		{[]float64{7}, 7, true},
		{[]float64{3, 1, 2}, 2, true},      // odd: the middle one
		{[]float64{4, 1, 3, 2}, 2.5, true}, // even: the mean of the two middle ones
		{[]float64{10, 10, 1, 100}, 10, true},
		{[]float64{0.5, 0.25}, 0.375, true},
	} {
		in := append([]float64(nil), tc.xs...)
		got, ok := metrics.Median(tc.xs)
		if got != tc.want || ok != tc.ok {
			t.Errorf("Median(%v) = %v, %v; want %v, %v", tc.xs, got, ok, tc.want, tc.ok)
		}
		for i := range in {
			if in[i] != tc.xs[i] {
				t.Errorf("Median sorted its input: %v", tc.xs)
			}
		}
	}
}

func TestPercentile(t *testing.T) {
	ten := []float64{10, 9, 8, 7, 6, 5, 4, 3, 2, 1}
	for _, tc := range []struct {
		xs   []float64
		q    float64
		want float64
		ok   bool
	}{
		{nil, 0.9, 0, false},
		{[]float64{5}, 0.9, 5, true},
		{ten, 0.9, 9, true},   // ceil(9) = 9th, not 10th
		{ten, 0.95, 10, true}, // ceil(9.5) = 10th
		{ten, 0.75, 8, true},  // ceil(7.5) = 8th
		{ten, 0.5, 5, true},   // nearest rank: the 5th, no interpolation
		{ten, 0.1, 1, true},
		{ten, 1, 10, true},
		{[]float64{1, 2, 3, 4}, 0.75, 3, true}, // ceil(3) = 3rd
		{[]float64{1, 2, 3, 4}, 0.9, 4, true},  // ceil(3.6) = 4th
		{[]float64{1, 2, 3}, 0.75, 3, true},    // ceil(2.25) = 3rd
		{make20(), 0.95, 19, true},             // ceil(19) = 19th
		{make20(), 0.05, 1, true},              // ceil(1) = 1st
	} {
		got, ok := metrics.Percentile(tc.xs, tc.q)
		if got != tc.want || ok != tc.ok {
			t.Errorf("Percentile(%v, %v) = %v, %v; want %v, %v", tc.xs, tc.q, got, ok, tc.want, tc.ok)
		}
	}
}

func make20() []float64 {
	xs := make([]float64, 20)
	for i := range xs {
		xs[i] = float64(20 - i)
	}
	return xs
}

func TestSummarize(t *testing.T) {
	s := metrics.Summarize([]float64{4, 1, 3, 2})
	if s.Count != 4 || *s.MedianSeconds != 2.5 || *s.P75Seconds != 3 || *s.P90Seconds != 4 || *s.P95Seconds != 4 {
		t.Errorf("Summarize = %+v", s)
	}
	if s := metrics.Summarize(nil); s.Count != 0 || s.MedianSeconds != nil || s.P75Seconds != nil || s.P90Seconds != nil {
		t.Errorf("Summarize(nil) = %+v", s)
	}
}

func TestParseBucket(t *testing.T) {
	for in, want := range map[string]metrics.Bucket{"": metrics.BucketWeek, "day": metrics.BucketDay,
		"week": metrics.BucketWeek, "month": metrics.BucketMonth} {
		if got, err := metrics.ParseBucket(in); err != nil || got != want {
			t.Errorf("ParseBucket(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"Week", "year", "7d"} {
		_, err := metrics.ParseBucket(in)
		if !errors.Is(err, metrics.ErrInvalidQuery) || !strings.Contains(err.Error(), "day, week, month") ||
			!strings.Contains(err.Error(), in) {
			t.Errorf("ParseBucket(%q) error = %v", in, err)
		}
	}
}

func TestBucketStart(t *testing.T) {
	d := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		b        metrics.Bucket
		at, want string
	}{
		{metrics.BucketDay, "2026-03-04T23:59:59Z", "2026-03-04T00:00:00Z"},
		{metrics.BucketDay, "2026-03-04T01:00:00+02:00", "2026-03-03T00:00:00Z"}, // the UTC day
		{metrics.BucketWeek, "2026-03-02T00:00:00Z", "2026-03-02T00:00:00Z"},     // a Monday
		{metrics.BucketWeek, "2026-03-08T23:59:59Z", "2026-03-02T00:00:00Z"},     // the Sunday after
		{metrics.BucketWeek, "2026-03-09T00:00:00Z", "2026-03-09T00:00:00Z"},
		{metrics.BucketWeek, "2026-03-01T12:00:00Z", "2026-02-23T00:00:00Z"}, // a Sunday: the week before
		{metrics.BucketWeek, "2027-01-01T00:00:00Z", "2026-12-28T00:00:00Z"}, // across a year
		{metrics.BucketWeek, "2026-03-09T01:00:00+05:00", "2026-03-02T00:00:00Z"},
		{metrics.BucketMonth, "2026-02-28T23:00:00Z", "2026-02-01T00:00:00Z"},
		{metrics.BucketMonth, "2026-03-01T00:00:00Z", "2026-03-01T00:00:00Z"},
		{metrics.BucketMonth, "2026-12-31T23:59:59Z", "2026-12-01T00:00:00Z"},
	} {
		if got := tc.b.Start(d(tc.at)); !got.Equal(d(tc.want)) || got.Location() != time.UTC {
			t.Errorf("%s.Start(%s) = %s, want %s", tc.b, tc.at, got, tc.want)
		}
	}
	var got []string
	for _, s := range metrics.BucketMonth.Starts(d("2026-01-31T00:00:00Z"), d("2026-04-01T00:00:00Z")) {
		got = append(got, s.Format("2006-01-02"))
	}
	if strings.Join(got, " ") != "2026-01-01 2026-02-01 2026-03-01" {
		t.Errorf("month starts = %v", got)
	}
	got = nil
	for _, s := range metrics.BucketWeek.Starts(d("2026-03-04T00:00:00Z"), d("2026-03-16T00:00:01Z")) {
		got = append(got, s.Format("2006-01-02"))
	}
	if strings.Join(got, " ") != "2026-03-02 2026-03-09 2026-03-16" {
		t.Errorf("week starts = %v", got)
	}
}

func TestLevels(t *testing.T) {
	day, hour := 86400.0, 3600.0
	for _, tc := range []struct {
		name string
		fn   func(float64) metrics.Level
		v    float64
		want metrics.Level
	}{
		{"frequency", metrics.DeploymentFrequencyLevel, 1, metrics.LevelElite},
		{"frequency", metrics.DeploymentFrequencyLevel, 0.999, metrics.LevelHigh},
		{"frequency", metrics.DeploymentFrequencyLevel, 1.0 / 7, metrics.LevelHigh},
		{"frequency", metrics.DeploymentFrequencyLevel, 4.0 / 28, metrics.LevelHigh},
		{"frequency", metrics.DeploymentFrequencyLevel, 0.1428, metrics.LevelMedium},
		{"frequency", metrics.DeploymentFrequencyLevel, 1.0 / 30, metrics.LevelMedium},
		{"frequency", metrics.DeploymentFrequencyLevel, 0.0333, metrics.LevelLow},
		{"frequency", metrics.DeploymentFrequencyLevel, 0, metrics.LevelLow},
		{"lead time", metrics.LeadTimeLevel, day - 1, metrics.LevelElite},
		{"lead time", metrics.LeadTimeLevel, day, metrics.LevelHigh},
		{"lead time", metrics.LeadTimeLevel, 7*day - 1, metrics.LevelHigh},
		{"lead time", metrics.LeadTimeLevel, 7 * day, metrics.LevelMedium},
		{"lead time", metrics.LeadTimeLevel, 30*day - 1, metrics.LevelMedium},
		{"lead time", metrics.LeadTimeLevel, 30 * day, metrics.LevelLow},
		{"failure rate", metrics.ChangeFailureRateLevel, 0, metrics.LevelElite},
		{"failure rate", metrics.ChangeFailureRateLevel, 0.05, metrics.LevelElite},
		{"failure rate", metrics.ChangeFailureRateLevel, 1.0 / 20, metrics.LevelElite},
		{"failure rate", metrics.ChangeFailureRateLevel, 0.0501, metrics.LevelHigh},
		{"failure rate", metrics.ChangeFailureRateLevel, 0.10, metrics.LevelHigh},
		{"failure rate", metrics.ChangeFailureRateLevel, 0.1001, metrics.LevelMedium},
		{"failure rate", metrics.ChangeFailureRateLevel, 3.0 / 20, metrics.LevelMedium},
		{"failure rate", metrics.ChangeFailureRateLevel, 0.1501, metrics.LevelLow},
		{"failure rate", metrics.ChangeFailureRateLevel, 1, metrics.LevelLow},
		{"restore", metrics.TimeToRestoreLevel, hour - 1, metrics.LevelElite},
		{"restore", metrics.TimeToRestoreLevel, hour, metrics.LevelHigh},
		{"restore", metrics.TimeToRestoreLevel, day - 1, metrics.LevelHigh},
		{"restore", metrics.TimeToRestoreLevel, day, metrics.LevelMedium},
		{"restore", metrics.TimeToRestoreLevel, 7*day - 1, metrics.LevelMedium},
		{"restore", metrics.TimeToRestoreLevel, 7 * day, metrics.LevelLow},
	} {
		if got := tc.fn(tc.v); got != tc.want {
			t.Errorf("%s level of %v = %q, want %q", tc.name, tc.v, got, tc.want)
		}
	}
	for l, want := range map[metrics.Level]string{metrics.LevelNone: "null", metrics.LevelElite: `"elite"`, metrics.LevelLow: `"low"`} {
		if b, err := l.MarshalJSON(); err != nil || string(b) != want {
			t.Errorf("%q marshals to %s, %v", l, b, err)
		}
	}
}
