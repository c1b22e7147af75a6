package main

import (
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/ingest"
)

func TestProgressLine(t *testing.T) {
	t0 := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	cases := []struct {
		p    ingest.Progress
		reqs int64
		want string
	}{
		{ingest.Progress{Project: "acme/app", Kind: "merge_request", Fetched: 2500, Stored: 2500, Done: 0, Due: 3, Started: t0, Fraction: 0.25},
			40, "  [1/3] acme/app merge_request: 2500 of ~10000 fetched, 2500 stored, 40 requests, ETA 30s"},
		{ingest.Progress{Project: "acme/app", Kind: "tag", Fetched: 7, Stored: 0},
			3, "  acme/app tag: 7 fetched, 0 stored, 3 requests"},
		{ingest.Progress{Project: "acme/app", Kind: "pipeline", Fetched: 100, Stored: 100, Done: 2, Due: 3, Started: t0, Fraction: 1},
			9, "  [3/3] acme/app pipeline: 100 fetched, 100 stored, 9 requests"},
	}
	for _, c := range cases {
		if got := progressLine(c.p, c.reqs, t0.Add(10*time.Second)); got != c.want {
			t.Errorf("got  %q\nwant %q", got, c.want)
		}
	}
}

func TestParseSweep(t *testing.T) {
	for in, want := range map[string]time.Duration{"6h": 6 * time.Hour, "30m": 30 * time.Minute, "0": -1, "0s": -1} {
		if got, err := parseSweep(in); err != nil || got != want {
			t.Errorf("%q: %v %v, want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "six hours", "-1h", "12"} {
		if _, err := parseSweep(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
