package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/labtrail/labtrail/internal/ingest"
)

// How `labtrail sync` counts, everywhere it shows counts (the progress
// line, the summary table, and the fetched/stored of GET
// /api/v1/sync/status): every object once, under its own kind. A walk of
// merge requests also brings their notes, a walk of pipelines their jobs,
// a walk of issues their notes; those are counted as notes and jobs, not
// as merge requests, pipelines or issues. Notes arrive by three walks and
// are told apart by what they are on: note (merge_request), note (issue),
// note (commit).

// countLabel names a count's kind as the table and progress line show it.
func countLabel(c ingest.Count) string {
	if c.Parent != "" {
		return fmt.Sprintf("%s (%s)", c.Kind, c.Parent)
	}
	return string(c.Kind)
}

// progressPrinter reports pages as they are stored, at most a few times a
// second, so a long backfill shows it is moving: which project of how many,
// objects done of the estimated total, API requests used and an ETA for
// the kind in flight. requests counts the requests made so far; held says
// whether a request waited for the request budget after a time, so the
// line can say the rate limit (perMinute a minute) paces the sync.
func progressPrinter(w io.Writer, requests func() int64, held func(since time.Time) bool, perMinute int) func(ingest.Progress) {
	var last time.Time
	return func(p ingest.Progress) {
		now := time.Now()
		if now.Sub(last) < 500*time.Millisecond {
			return
		}
		throttled := !last.IsZero() && held(last)
		last = now
		fmt.Fprintln(w, progressLine(p, requests(), now, throttled, perMinute))
	}
}

// progressLine is one line of progressPrinter at time now; throttled says
// the requests of late ran at the budget of perMinute.
func progressLine(p ingest.Progress, requests int64, now time.Time, throttled bool, perMinute int) string {
	var b strings.Builder
	b.WriteString("  ")
	if p.Due > 0 {
		fmt.Fprintf(&b, "[%d/%d] ", p.Done+1, p.Due)
	}
	fmt.Fprintf(&b, "%s %s: %d", p.Project, p.Kind, p.Fetched)
	estimate := p.Fraction > 0.01 && p.Fraction < 1
	if estimate {
		fmt.Fprintf(&b, " of ~%d", int(float64(p.Fetched)/p.Fraction))
	}
	fmt.Fprintf(&b, " fetched, %d stored", p.Stored)
	for _, c := range p.With {
		fmt.Fprintf(&b, "; %s: %d fetched, %d stored", countLabel(c), c.Fetched, c.Stored)
	}
	fmt.Fprintf(&b, "; %d requests", requests)
	if estimate && !p.Started.IsZero() {
		elapsed := now.Sub(p.Started)
		// Under a second is no estimate: the walk is at its end in time,
		// yet pages are still coming.
		if eta := time.Duration(float64(elapsed) * (1 - p.Fraction) / p.Fraction); eta >= time.Second {
			fmt.Fprintf(&b, ", ETA %s", eta.Round(time.Second))
		}
	}
	if throttled {
		fmt.Fprintf(&b, ", waiting on the rate limit (%d requests/minute)", perMinute)
	}
	return b.String()
}

// printCounts prints what a sync did: a row per project and kind, with the
// totals, or a sentence when no project was synced. err is SyncAll's.
func printCounts(w io.Writer, res ingest.Result, err error) {
	if len(res.Projects) == 0 && len(res.Missing) == 0 {
		fmt.Fprintln(w, nothingSynced(res, err))
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROJECT\tKIND\tFETCHED\tSTORED\tERROR")
	var totals []ingest.Count
	for _, p := range res.Projects {
		for _, c := range p.Counts {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t\n", p.Project.Path, countLabel(c), c.Fetched, c.Stored)
			totals = addCount(totals, c)
		}
		if p.Err != nil {
			fmt.Fprintf(tw, "%s\t\t\t\t%v\n", p.Project.Path, p.Err)
		}
	}
	for _, m := range res.Missing {
		fmt.Fprintf(tw, "%s\t\t\t\t%v\n", m.Selector, m.Err)
	}
	sort.Slice(totals, func(i, j int) bool { return countLabel(totals[i]) < countLabel(totals[j]) })
	for _, t := range totals {
		fmt.Fprintf(tw, "TOTAL\t%s\t%d\t%d\t\n", countLabel(t), t.Fetched, t.Stored)
	}
	tw.Flush()
	if res.Quiet > 0 {
		fmt.Fprintf(w, "%d projects without activity since their last sync skipped (--full syncs them too)\n", res.Quiet)
	}
}

// addCount adds c to the total of its kind and parent.
func addCount(totals []ingest.Count, c ingest.Count) []ingest.Count {
	for i := range totals {
		if totals[i].Kind == c.Kind && totals[i].Parent == c.Parent {
			totals[i].Fetched += c.Fetched
			totals[i].Stored += c.Stored
			return totals
		}
	}
	return append(totals, ingest.Count{Kind: c.Kind, Parent: c.Parent, Fetched: c.Fetched, Stored: c.Stored})
}

// nothingSynced says why a sync synced no project.
func nothingSynced(res ingest.Result, err error) string {
	switch {
	case err != nil:
		return fmt.Sprintf("nothing synced: %v", err)
	case res.Quiet > 0:
		return fmt.Sprintf("nothing to sync: all %d projects quiet since their last sync (--full syncs them anyway)", res.Quiet)
	case res.Capped > 0:
		return fmt.Sprintf("nothing to sync: all %d selected projects are left out by the project cap", res.Capped)
	default:
		return "nothing to sync: no project selected (check the selected projects and groups, and the token's memberships)"
	}
}
