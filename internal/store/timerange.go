package store

import (
	"fmt"
	"time"
)

// MinTime and MaxTime bound the times every backend stores and compares:
// whole days inside what SQLite's unix nanoseconds hold
// (1677-09-21T00:12:43Z to 2262-04-11T23:47:16Z), which PostgreSQL's
// timestamptz holds as well. A time outside them cannot be stored, nor
// used in a filter; the zero time means "not set" and is always allowed.
var (
	MinTime = time.Date(1677, 9, 22, 0, 0, 0, 0, time.UTC)
	MaxTime = time.Date(2262, 4, 11, 0, 0, 0, 0, time.UTC)
)

// TimeRange names the range, for messages: "1677-09-22T00:00:00Z to
// 2262-04-11T00:00:00Z".
func TimeRange() string {
	return MinTime.Format(time.RFC3339) + " to " + MaxTime.Format(time.RFC3339)
}

// InTimeRange reports whether t is zero or from MinTime to MaxTime.
func InTimeRange(t time.Time) bool {
	return t.IsZero() || (!t.Before(MinTime) && !t.After(MaxTime))
}

// CheckTime refuses a time outside the storable range, naming it name.
func CheckTime(name string, t time.Time) error {
	if !InTimeRange(t) {
		return fmt.Errorf("%s %s outside the storable range %s", name, t.UTC().Format(time.RFC3339Nano), TimeRange())
	}
	return nil
}
