package digest_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"
	_ "time/tzdata" // the zones these tests use, on any machine

	"github.com/labtrail/labtrail/internal/digest"
	"github.com/labtrail/labtrail/internal/metrics"
)

func fl(v float64) *float64 { return &v }

func sameFigure(t *testing.T, name string, got digest.Figure, value, previous *float64) {
	t.Helper()
	eq := func(a, b *float64) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }
	if !eq(got.Value, value) || !eq(got.Previous, previous) {
		t.Errorf("%s: got %s", name, jsonOf(t, got))
	}
	if value != nil && previous != nil && (got.Change == nil || *got.Change != *value-*previous) {
		t.Errorf("%s: change %s", name, jsonOf(t, got))
	}
}

func jsonOf(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWindows(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		p            digest.Period
		now          time.Time
		loc          *time.Location
		since, until time.Time
	}{
		{digest.Week, now, time.UTC, lastWeek, thisWeek},
		{digest.Week, thisWeek, time.UTC, lastWeek, thisWeek},                       // Monday midnight: the week just ended
		{digest.Week, thisWeek.Add(-time.Nanosecond), time.UTC, prevWeek, lastWeek}, // Sunday night: not yet
		{digest.Day, now, time.UTC, now.Truncate(24*time.Hour).AddDate(0, 0, -1), now.Truncate(24 * time.Hour)},
		// Sunday 1 a.m. in Paris is Saturday evening in UTC: the day
		// before is Saturday in Paris.
		{digest.Day, time.Date(2026, 3, 15, 0, 30, 0, 0, time.UTC), paris,
			time.Date(2026, 3, 14, 0, 0, 0, 0, paris), time.Date(2026, 3, 15, 0, 0, 0, 0, paris)},
		// The day clocks go forward in Paris (29 March 2026) is 23 hours.
		{digest.Day, time.Date(2026, 3, 30, 12, 0, 0, 0, paris), paris,
			time.Date(2026, 3, 29, 0, 0, 0, 0, paris), time.Date(2026, 3, 30, 0, 0, 0, 0, paris)},
	} {
		since, until := c.p.Window(c.now, c.loc)
		if !since.Equal(c.since) || !until.Equal(c.until) {
			t.Errorf("%s at %s in %s: got %s..%s, want %s..%s", c.p, c.now, c.loc, since, until, c.since, c.until)
		}
	}
	since, until := digest.Day.Window(time.Date(2026, 3, 30, 12, 0, 0, 0, paris), paris)
	if until.Sub(since) != 23*time.Hour {
		t.Errorf("the day of the change to summer time lasts %s", until.Sub(since))
	}
	if _, err := digest.ParsePeriod("month"); err == nil {
		t.Error("month is taken as a period")
	}
}

// TestBuild checks the digest of the team's week against the figures
// worked out by hand in team() and against the metrics functions' own
// answers.
func TestBuild(t *testing.T) {
	ctx := context.Background()
	st := team().store(t)
	m := metrics.New(st, metrics.Config{})
	d, err := digest.Build(ctx, m, st, digest.Options{Period: digest.Week, Now: now, PublicURL: "https://labtrail.example.com/"})
	if err != nil {
		t.Fatal(err)
	}
	if !d.Since.Equal(lastWeek) || !d.Until.Equal(thisWeek) || !d.PreviousSince.Equal(prevWeek) {
		t.Fatalf("period %s..%s after %s", d.Since, d.Until, d.PreviousSince)
	}
	if d.Key != "week:2026-03-09:UTC:all" || d.Scope != "all projects" {
		t.Errorf("key %q, scope %q", d.Key, d.Scope)
	}
	sameFigure(t, "merged", d.MergeRequests.Merged, fl(6), fl(2))
	sameFigure(t, "pipelines", d.Pipelines.Pipelines, fl(4), fl(3))
	sameFigure(t, "failed pipelines", d.Pipelines.Failed, fl(2), fl(1))
	sameFigure(t, "open incidents", d.Incidents.Open, fl(1), fl(1))
	sameFigure(t, "opened incidents", d.Incidents.Opened, fl(1), fl(1))
	envs := map[string]digest.Environment{}
	for _, e := range d.Deployments.Environments {
		envs[e.Name] = e
	}
	sameFigure(t, "production", envs["production"].Deployments, fl(3), fl(1))
	sameFigure(t, "staging", envs["staging"].Deployments, fl(2), fl(0))
	sameFigure(t, "review/a", envs["review/a"].Deployments, fl(0), fl(1))
	if !envs["production"].Production || envs["staging"].Production || len(envs) != 3 {
		t.Errorf("environments: %s", jsonOf(t, d.Deployments.Environments))
	}

	// The DORA figures are the metrics' own.
	q := metrics.Query{Since: lastWeek, Until: thisWeek, Bucket: metrics.BucketDay, Now: now}
	prev := metrics.Query{Since: prevWeek, Until: lastWeek, Bucket: metrics.BucketDay, Now: now}
	cur, err := m.DORA(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	was, err := m.DORA(ctx, prev)
	if err != nil {
		t.Fatal(err)
	}
	sameFigure(t, "deployment frequency", d.DORA.DeploymentFrequency, cur.DeploymentFrequency.PerDay, was.DeploymentFrequency.PerDay)
	sameFigure(t, "lead time", d.DORA.LeadTime, cur.LeadTime.MedianSeconds, was.LeadTime.MedianSeconds)
	sameFigure(t, "change failure rate", d.DORA.ChangeFailureRate, cur.ChangeFailureRate.Rate, was.ChangeFailureRate.Rate)
	sameFigure(t, "time to restore", d.DORA.TimeToRestore, cur.TimeToRestore.MedianSeconds, was.TimeToRestore.MedianSeconds)
	if *d.DORA.DeploymentFrequency.Value != 3.0/7 || d.DORA.DeploymentFrequency.Level != metrics.LevelHigh ||
		d.DORA.TimeToRestore.Level != metrics.LevelHigh {
		t.Errorf("dora: %s", jsonOf(t, d.DORA))
	}

	// Lists: the five largest merges, biggest first, titled and linked
	// from their events; the open merge requests oldest first; the jobs
	// with most failures first; the open incident.
	if len(d.MergeRequests.Largest) != digest.TopN {
		t.Fatalf("largest: %s", jsonOf(t, d.MergeRequests.Largest))
	}
	top := d.MergeRequests.Largest[0]
	if top.Title != "Feature 6" || top.Lines != 600 || top.Files != 6 || top.Project != "team/p1" ||
		top.WebURL != "https://gitlab.example.com/team/p1/-/merge_requests/6" || top.URL != "https://labtrail.example.com/events/mr-1-6" {
		t.Errorf("largest merge: %s", jsonOf(t, top))
	}
	if last := d.MergeRequests.Largest[4]; last.Title != "Feature 2" {
		t.Errorf("fifth largest: %s", jsonOf(t, last))
	}
	if so := d.MergeRequests.SlowestOpen; len(so) != 2 || so[0].Title != "Stuck" || so[0].AgeSeconds != now.Sub(prevWeek.AddDate(0, 0, -20)).Seconds() {
		t.Errorf("slowest open: %s", jsonOf(t, so))
	}
	if fj := d.Pipelines.FailingJobs; len(fj) != 2 || fj[0].Title != "test" || fj[0].Failures != 3 || fj[0].Runs != 4 {
		t.Errorf("failing jobs: %s", jsonOf(t, fj))
	}
	if in := d.Incidents.List; len(in) != 1 || in[0].Title != "Outage" || in[0].WebURL != "https://gitlab.example.com/team/p1/-/issues/1" {
		t.Errorf("open incidents: %s", jsonOf(t, in))
	}
	if d.MergeRequests.URL != "https://labtrail.example.com/merge-requests?since=2026-03-09T00%3A00%3A00Z&until=2026-03-16T00%3A00%3A00Z" {
		t.Errorf("merge requests link: %s", d.MergeRequests.URL)
	}

	// The same content in every form.
	txt := d.Text()
	contains(t, txt, "labtrail week digest: week of Monday 9 March 2026 to Sunday 15 March 2026",
		"Merged: 6, +4 from 2", "Feature 6 (team/p1, by dev0, 600 lines, 6 files)", "production (production): 3, +2 from 1",
		"staging: 2, +2 from 0", "review/a: 0, -1 from 1", "Failed: 2, +1 from 1", "test (3 of 4 runs failed)",
		"Deployment frequency: 0.43/day (high)", "Open at the end: 1, no change", "Outage")
	js, err := d.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	if back["key"] != d.Key || back["merge_requests"].(map[string]any)["merged"].(map[string]any)["value"] != 6.0 {
		t.Errorf("json: %s", js)
	}

	// A selection narrows every figure, and names the key.
	d2, err := digest.Build(ctx, m, st, digest.Options{Period: digest.Week, Now: now, ProjectIDs: []int64{2}, Projects: []string{"team/p2"}})
	if err != nil {
		t.Fatal(err)
	}
	if d2.Key != "week:2026-03-09:UTC:projects=2" || *d2.MergeRequests.Merged.Value != 0 || len(d2.Deployments.Environments) != 0 || d2.URL != "" {
		t.Errorf("project 2: %s", jsonOf(t, d2))
	}
}
