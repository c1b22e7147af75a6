package digest

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// value writes a figure's value in its unit; "n/a" when there is none
// (no deployment, no incident: not zero).
func value(unit string, v *float64) string {
	if v == nil {
		return "n/a"
	}
	switch unit {
	case "per_day":
		return strconv.FormatFloat(round(*v, 2), 'f', -1, 64) + "/day"
	case "seconds":
		return duration(*v)
	case "ratio":
		return strconv.FormatFloat(round(*v*100, 1), 'f', -1, 64) + "%"
	}
	return strconv.FormatFloat(*v, 'f', -1, 64)
}

func round(v float64, places int) float64 {
	p := math.Pow(10, float64(places))
	return math.Round(v*p) / p
}

// duration writes seconds as the two largest of days, hours, minutes
// ("2d 4h", "3h 20m", "45m", "30s").
func duration(s float64) string {
	neg := s < 0
	d := time.Duration(math.Abs(s) * float64(time.Second)).Round(time.Second)
	days, hours, mins := int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour), int(d%time.Hour/time.Minute)
	var out string
	switch {
	case days > 0:
		out = fmt.Sprintf("%dd %dh", days, hours)
	case hours > 0:
		out = fmt.Sprintf("%dh %dm", hours, mins)
	case mins > 0:
		out = fmt.Sprintf("%dm", mins)
	default:
		out = fmt.Sprintf("%ds", int(d/time.Second))
	}
	if neg {
		return "-" + out
	}
	return out
}

// delta writes a figure's change against the period before: "+3 from
// 9", "no change", "new" (nothing to compare with), or "" when the
// period has no value either.
func delta(f Figure) string {
	switch {
	case f.Value == nil && f.Previous == nil:
		return ""
	case f.Previous == nil:
		return "none the period before"
	case f.Value == nil:
		return "was " + value(f.Unit, f.Previous)
	case *f.Change == 0:
		return "no change"
	}
	sign := "+"
	if *f.Change < 0 {
		sign = "-"
	}
	abs := math.Abs(*f.Change)
	return sign + strings.TrimPrefix(value(f.Unit, &abs), "-") + " from " + value(f.Unit, f.Previous)
}

// line writes a figure with its level and change: "1.43/day (elite), +0.2/day from 1.23/day".
func line(f Figure) string {
	s := value(f.Unit, f.Value)
	if f.Level != "" {
		s += " (" + string(f.Level) + ")"
	}
	if c := delta(f); c != "" {
		s += ", " + c
	}
	return s
}

// cut shortens s to at most n runes, marking the cut with "…".
func cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// itemDetail is what a listed item says besides its title.
func itemDetail(it Item) string {
	var parts []string
	if it.Project != "" {
		parts = append(parts, it.Project)
	}
	if it.Author != "" {
		parts = append(parts, "by "+it.Author)
	}
	if it.Lines > 0 || it.Files > 0 {
		parts = append(parts, fmt.Sprintf("%d lines, %d files", it.Lines, it.Files))
	}
	if it.AgeSeconds > 0 {
		parts = append(parts, "open "+duration(it.AgeSeconds))
	}
	if it.Runs > 0 {
		parts = append(parts, fmt.Sprintf("%d of %d runs failed", it.Failures, it.Runs))
	}
	return strings.Join(parts, ", ")
}
