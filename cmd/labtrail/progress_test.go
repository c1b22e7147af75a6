package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/ingest"
	"github.com/labtrail/labtrail/internal/store"
)

func TestProgressLine(t *testing.T) {
	t0 := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	notes := ingest.Count{Kind: "note", Parent: "merge_request", Fetched: 2290, Stored: 2000}
	cases := []struct {
		p         ingest.Progress
		reqs      int64
		throttled bool
		want      string
	}{
		{ingest.Progress{Project: "acme/app", Kind: "merge_request", Fetched: 75, Stored: 75, With: []ingest.Count{notes}, Done: 0, Due: 3, Started: t0, Fraction: 0.25},
			40, false, "  [1/3] acme/app merge_request: 75 of ~300 fetched, 75 stored; note (merge_request): 2290 fetched, 2000 stored; 40 requests, ETA 30s"},
		{ingest.Progress{Project: "acme/app", Kind: "tag", Fetched: 7, Stored: 0},
			3, false, "  acme/app tag: 7 fetched, 0 stored; 3 requests"},
		{ingest.Progress{Project: "acme/app", Kind: "pipeline", Fetched: 100, Stored: 100, Done: 2, Due: 3, Started: t0, Fraction: 1},
			9, false, "  [3/3] acme/app pipeline: 100 fetched, 100 stored; 9 requests"},
		// At the end of its time range with pages still coming, a walk
		// has no ETA to show; the rate limit is what it waits on.
		{ingest.Progress{Project: "acme/app", Kind: "merge_request", Fetched: 299, Stored: 299, With: []ingest.Count{notes}, Started: t0, Fraction: 0.99},
			900, true, "  acme/app merge_request: 299 of ~302 fetched, 299 stored; note (merge_request): 2290 fetched, 2000 stored; 900 requests, waiting on the rate limit (600 requests/minute)"},
	}
	for _, c := range cases {
		if got := progressLine(c.p, c.reqs, t0.Add(10*time.Second), c.throttled, 600); got != c.want {
			t.Errorf("got  %q\nwant %q", got, c.want)
		}
	}
}

func TestPrintCounts(t *testing.T) {
	app := store.Project{ID: 1, Path: "acme/app"}
	web := store.Project{ID: 2, Path: "acme/web"}
	counts := func(p store.Project, cs ...ingest.Count) ingest.ProjectResult {
		for i := range cs {
			cs[i].ProjectID, cs[i].ProjectPath = p.ID, p.Path
		}
		return ingest.ProjectResult{Project: p, Counts: cs}
	}
	synced := ingest.Result{Projects: []ingest.ProjectResult{
		counts(app,
			ingest.Count{Kind: "merge_request", Fetched: 3, Stored: 3},
			ingest.Count{Kind: "note", Parent: "merge_request", Fetched: 20, Stored: 20},
			ingest.Count{Kind: "issue", Fetched: 1, Stored: 1},
			ingest.Count{Kind: "note", Parent: "issue", Fetched: 4, Stored: 4},
			ingest.Count{Kind: "note", Parent: "commit", Fetched: 2, Stored: 0}),
		counts(web, ingest.Count{Kind: "merge_request", Fetched: 5, Stored: 1},
			ingest.Count{Kind: "note", Parent: "merge_request", Fetched: 7, Stored: 7}),
	}, Quiet: 4}
	cases := []struct {
		name string
		res  ingest.Result
		err  error
		want string
	}{
		{"counts", synced, nil, `PROJECT   KIND                  FETCHED  STORED  ERROR
acme/app  merge_request         3        3       
acme/app  note (merge_request)  20       20      
acme/app  issue                 1        1       
acme/app  note (issue)          4        4       
acme/app  note (commit)         2        0       
acme/web  merge_request         5        1       
acme/web  note (merge_request)  7        7       
TOTAL     issue                 1        1       
TOTAL     merge_request         8        4       
TOTAL     note (commit)         2        0       
TOTAL     note (issue)          4        4       
TOTAL     note (merge_request)  27       27      
4 projects without activity since their last sync skipped (--full syncs them too)
`},
		{"all quiet", ingest.Result{Quiet: 12}, nil,
			"nothing to sync: all 12 projects quiet since their last sync (--full syncs them anyway)\n"},
		{"failed at once", ingest.Result{}, errors.New("GitLab at https://gitlab.example.com: 401 Unauthorized"),
			"nothing synced: GitLab at https://gitlab.example.com: 401 Unauthorized\n"},
		{"none selected", ingest.Result{}, nil,
			"nothing to sync: no project selected (check the selected projects and groups, and the token's memberships)\n"},
	}
	for _, c := range cases {
		var b strings.Builder
		printCounts(&b, c.res, c.err)
		if b.String() != c.want {
			t.Errorf("%s: got\n%s\nwant\n%s", c.name, b.String(), c.want)
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
