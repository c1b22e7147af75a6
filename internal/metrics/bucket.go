package metrics

import (
	"time"
)

// Bucket is the width of a series' buckets. Buckets are calendar periods
// in UTC: a day from 00:00, a week from Monday 00:00, a month from its
// first day.
type Bucket string

// The buckets.
const (
	BucketDay   Bucket = "day"
	BucketWeek  Bucket = "week"
	BucketMonth Bucket = "month"
)

// DefaultBucket is the bucket when none is asked for.
const DefaultBucket = BucketWeek

// ParseBucket returns the bucket named s; "" is DefaultBucket. Its error
// (ErrInvalidQuery) names the valid values.
func ParseBucket(s string) (Bucket, error) {
	switch b := Bucket(s); b {
	case "":
		return DefaultBucket, nil
	case BucketDay, BucketWeek, BucketMonth:
		return b, nil
	}
	return "", invalidf("bucket %q is not one of day, week, month", s)
}

// Start returns the start of the bucket holding t, in UTC.
func (b Bucket) Start(t time.Time) time.Time {
	t = t.UTC()
	y, mo, d := t.Date()
	switch b {
	case BucketDay:
		return time.Date(y, mo, d, 0, 0, 0, 0, time.UTC)
	case BucketMonth:
		return time.Date(y, mo, 1, 0, 0, 0, 0, time.UTC)
	default: // week
		back := (int(t.Weekday()) + 6) % 7 // days since Monday
		return time.Date(y, mo, d-back, 0, 0, 0, 0, time.UTC)
	}
}

// Next returns the start of the bucket after the one starting at start.
func (b Bucket) Next(start time.Time) time.Time {
	switch b {
	case BucketDay:
		return start.AddDate(0, 0, 1)
	case BucketMonth:
		return start.AddDate(0, 1, 0)
	default:
		return start.AddDate(0, 0, 7)
	}
}

// Starts returns the starts of the buckets that cover [since, until): the
// first holds since (and may start before it), the last starts before
// until.
func (b Bucket) Starts(since, until time.Time) []time.Time {
	var out []time.Time
	for s := b.Start(since); s.Before(until); s = b.Next(s) {
		out = append(out, s)
	}
	return out
}

// count is len(b.Starts(since, until)) without building it, to refuse a
// window with too many buckets cheaply.
func (b Bucket) count(since, until time.Time) int {
	first := b.Start(since)
	span := until.Sub(first)
	switch b {
	case BucketDay:
		return int(span/(24*time.Hour)) + 1
	case BucketMonth:
		y1, m1, _ := first.Date()
		y2, m2, _ := until.UTC().Date()
		return (y2-y1)*12 + int(m2-m1) + 1
	default:
		return int(span/(7*24*time.Hour)) + 1
	}
}

// series counts or collects values per bucket over a window.
type series struct {
	b      Bucket
	starts []time.Time
	index  map[time.Time]int
}

func newSeries(b Bucket, since, until time.Time) *series {
	s := &series{b: b, starts: b.Starts(since, until), index: make(map[time.Time]int)}
	for i, t := range s.starts {
		s.index[t] = i
	}
	return s
}

// at returns the index of the bucket holding t, or -1 outside the window.
func (s *series) at(t time.Time) int {
	i, ok := s.index[s.b.Start(t)]
	if !ok {
		return -1
	}
	return i
}
