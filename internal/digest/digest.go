// Package digest builds the summary of a team's last complete day or week
// from the metrics, renders it for Slack (Block Kit), a generic JSON
// webhook or a terminal, and sends it once per period and destination.
// Every number in a digest is one internal/metrics returned: the digest
// chooses, orders and words figures, it never computes one.
package digest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/metrics"
	"github.com/labtrail/labtrail/internal/store"
)

// Period is the span a digest covers.
type Period string

// The periods.
const (
	Day  Period = "day"
	Week Period = "week"
)

// ParsePeriod reads "day" or "week".
func ParsePeriod(s string) (Period, error) {
	switch p := Period(strings.ToLower(strings.TrimSpace(s))); p {
	case Day, Week:
		return p, nil
	}
	return "", fmt.Errorf("period must be day or week, got %q", s)
}

// Window is the last complete period before now in loc: [since, until).
// Days start at midnight and weeks on Monday at midnight, in loc, so a
// day across a change of daylight saving time is 23 or 25 hours long.
func (p Period) Window(now time.Time, loc *time.Location) (since, until time.Time) {
	n := now.In(loc)
	until = time.Date(n.Year(), n.Month(), n.Day(), 0, 0, 0, 0, loc)
	if p == Week {
		back := (int(until.Weekday()) + 6) % 7 // days since Monday
		until = time.Date(n.Year(), n.Month(), n.Day()-back, 0, 0, 0, 0, loc)
	}
	return p.Before(until), until
}

// Before is the start of the period that ends at until (a period start).
func (p Period) Before(until time.Time) time.Time {
	days := 1
	if p == Week {
		days = 7
	}
	return time.Date(until.Year(), until.Month(), until.Day()-days, 0, 0, 0, 0, until.Location())
}

// TopN is how many merge requests, jobs and incidents a list shows.
const TopN = 5

// Options choose what a digest covers.
type Options struct {
	Period Period
	// Location is where days and weeks begin (LABTRAIL_DIGEST_TZ); nil
	// is UTC.
	Location *time.Location
	// ProjectIDs are the projects; nil means every project.
	ProjectIDs []int64
	// Projects and Group are the selection as the user gave it, for the
	// digest's title and its links to labtrail's pages.
	Projects []string
	Group    string
	// Now is when the digest is made; zero means time.Now.
	Now time.Time
	// PublicURL is where labtrail's pages are (LABTRAIL_PUBLIC_URL);
	// empty leaves the links to them out.
	PublicURL string
}

// Figure is one number of the period beside the period before.
type Figure struct {
	Value    *float64 `json:"value"`
	Previous *float64 `json:"previous"`
	// Change is Value minus Previous, when both are known.
	Change *float64 `json:"change"`
	// Unit is count, per_day, seconds or ratio.
	Unit  string        `json:"unit"`
	Level metrics.Level `json:"level,omitempty"`
}

func figure(unit string, v, prev *float64) Figure {
	f := Figure{Value: v, Previous: prev, Unit: unit}
	if v != nil && prev != nil {
		c := *v - *prev
		f.Change = &c
	}
	return f
}

func count(n int) *float64 { v := float64(n); return &v }

// Item is a merge request, job or incident a digest lists.
type Item struct {
	ID      string `json:"id,omitempty"`
	Title   string `json:"title"`
	Project string `json:"project,omitempty"`
	Author  string `json:"author,omitempty"`
	// WebURL is the object in GitLab; URL its page in labtrail.
	WebURL string    `json:"web_url,omitempty"`
	URL    string    `json:"url,omitempty"`
	At     time.Time `json:"at,omitzero"`
	// Lines and Files size a merged merge request; AgeSeconds an open one
	// or an incident; Failures and Runs a job.
	Lines      int     `json:"lines,omitempty"`
	Files      int     `json:"files,omitempty"`
	AgeSeconds float64 `json:"age_seconds,omitempty"`
	Failures   int     `json:"failures,omitempty"`
	Runs       int     `json:"runs,omitempty"`
}

// Environment is the deployments to one environment.
type Environment struct {
	Name        string `json:"name"`
	Production  bool   `json:"production"`
	Deployments Figure `json:"deployments"`
}

// Digest is one period's summary: what every renderer shows.
type Digest struct {
	Period   Period `json:"period"`
	Key      string `json:"key"`
	Title    string `json:"title"`
	Scope    string `json:"scope"`
	Timezone string `json:"timezone"`
	// Since and Until are the period, PreviousSince the start of the one
	// before (which ends at Since).
	Since         time.Time `json:"since"`
	Until         time.Time `json:"until"`
	PreviousSince time.Time `json:"previous_since"`
	URL           string    `json:"url,omitempty"`

	DORA struct {
		DeploymentFrequency Figure `json:"deployment_frequency"`
		LeadTime            Figure `json:"lead_time"`
		ChangeFailureRate   Figure `json:"change_failure_rate"`
		TimeToRestore       Figure `json:"time_to_restore"`
		URL                 string `json:"url,omitempty"`
	} `json:"dora"`
	MergeRequests struct {
		Merged  Figure `json:"merged"`
		Largest []Item `json:"largest"`
		// SlowestOpen are the merge requests open longest, now.
		SlowestOpen []Item `json:"slowest_open"`
		URL         string `json:"url,omitempty"`
	} `json:"merge_requests"`
	Deployments struct {
		Environments []Environment `json:"environments"`
		URL          string        `json:"url,omitempty"`
	} `json:"deployments"`
	Pipelines struct {
		Pipelines   Figure `json:"pipelines"`
		Failed      Figure `json:"failed"`
		FailingJobs []Item `json:"failing_jobs"`
		URL         string `json:"url,omitempty"`
	} `json:"pipelines"`
	Incidents struct {
		// Open counts the incidents open at the period's end (Previous:
		// at its start); Opened those opened in it.
		Open   Figure `json:"open"`
		Opened Figure `json:"opened"`
		List   []Item `json:"list"`
	} `json:"incidents"`
}

// Events is how a digest finds the title and GitLab link of what it lists
// (the metrics' facts leave them out).
type Events interface {
	Get(ctx context.Context, id string) (change.Event, []change.TimelineEntry, error)
}

// Key names the period and what it covers, for the record of sends:
// "<period>:<start date>:<zone>:<projects>".
func Key(p Period, since time.Time, loc *time.Location, projects []int64) string {
	scope := "all"
	if projects != nil {
		ids := slices.Clone(projects)
		slices.Sort(ids)
		parts := make([]string, len(ids))
		for i, id := range ids {
			parts[i] = strconv.FormatInt(id, 10)
		}
		scope = "projects=" + strings.Join(parts, ",")
	}
	return fmt.Sprintf("%s:%s:%s:%s", p, since.Format(time.DateOnly), loc, scope)
}

// Build computes the digest of the last complete period before o.Now.
func Build(ctx context.Context, m *metrics.Metrics, ev Events, o Options) (*Digest, error) {
	if _, err := ParsePeriod(string(o.Period)); err != nil {
		return nil, err
	}
	loc := o.Location
	if loc == nil {
		loc = time.UTC
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	since, until := o.Period.Window(now, loc)
	prevSince := o.Period.Before(since)
	d := &Digest{Period: o.Period, Timezone: loc.String(), Since: since, Until: until, PreviousSince: prevSince,
		Key: Key(o.Period, since, loc, o.ProjectIDs), Scope: scope(o)}
	d.Title = fmt.Sprintf("labtrail %s digest: %s", o.Period, periodName(o.Period, since, until))
	if len(o.ProjectIDs) > 0 {
		m = m.Of(store.DefaultConnection) // the projects are the default connection's
	}
	q := metrics.Query{ProjectIDs: o.ProjectIDs, Since: since, Until: until, Bucket: metrics.BucketDay, Now: now}
	prev := q
	prev.Since, prev.Until = prevSince, since

	link := links(o, since, until)
	d.URL, d.DORA.URL = link("/"), link("/")
	d.MergeRequests.URL, d.Deployments.URL, d.Pipelines.URL = link("/merge-requests"), link("/deployments"), link("/pipelines")

	doras, err := m.DORAs(ctx, q, prev)
	if err != nil {
		return nil, fmt.Errorf("dora: %w", err)
	}
	cur, was := doras[0], doras[1]
	d.DORA.DeploymentFrequency = figure("per_day", cur.DeploymentFrequency.PerDay, was.DeploymentFrequency.PerDay)
	d.DORA.DeploymentFrequency.Level = cur.DeploymentFrequency.Level
	d.DORA.LeadTime = figure("seconds", cur.LeadTime.MedianSeconds, was.LeadTime.MedianSeconds)
	d.DORA.LeadTime.Level = cur.LeadTime.Level
	d.DORA.ChangeFailureRate = figure("ratio", cur.ChangeFailureRate.Rate, was.ChangeFailureRate.Rate)
	d.DORA.ChangeFailureRate.Level = cur.ChangeFailureRate.Level
	d.DORA.TimeToRestore = figure("seconds", cur.TimeToRestore.MedianSeconds, was.TimeToRestore.MedianSeconds)
	d.DORA.TimeToRestore.Level = cur.TimeToRestore.Level
	d.Incidents.Opened = figure("count", count(cur.TimeToRestore.Incidents), count(was.TimeToRestore.Incidents))

	flow, err := m.MergeRequests(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("merge requests: %w", err)
	}
	flowWas, err := m.MergeRequests(ctx, prev)
	if err != nil {
		return nil, fmt.Errorf("merge requests: %w", err)
	}
	d.MergeRequests.Merged = figure("count", count(flow.Merged), count(flowWas.Merged))
	largest, err := m.LargestMerged(ctx, q, TopN)
	if err != nil {
		return nil, fmt.Errorf("largest merges: %w", err)
	}
	d.MergeRequests.Largest = []Item{}
	for _, mr := range largest {
		it := Item{ID: mr.ID, Title: fmt.Sprintf("!%d", mr.IID), Project: mr.ProjectPath, Author: mr.Author,
			At: mr.MergedAt, Lines: mr.Lines, Files: mr.Files, URL: link("/events/" + url.PathEscape(mr.ID))}
		if err := describe(ctx, ev, &it); err != nil {
			return nil, err
		}
		d.MergeRequests.Largest = append(d.MergeRequests.Largest, it)
	}
	d.MergeRequests.SlowestOpen = []Item{}
	for _, mr := range flow.SlowestOpen[:min(TopN, len(flow.SlowestOpen))] {
		d.MergeRequests.SlowestOpen = append(d.MergeRequests.SlowestOpen, Item{ID: mr.ID, Title: mr.Title,
			Project: mr.ProjectPath, Author: mr.Author, WebURL: mr.WebURL, URL: link("/events/" + url.PathEscape(mr.ID)),
			At: mr.CreatedAt, AgeSeconds: mr.AgeSeconds})
	}

	envs, err := m.DeploymentsByEnvironment(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("deployments: %w", err)
	}
	envsWas, err := m.DeploymentsByEnvironment(ctx, prev)
	if err != nil {
		return nil, fmt.Errorf("deployments: %w", err)
	}
	d.Deployments.Environments = []Environment{}
	for _, e := range envs {
		d.Deployments.Environments = append(d.Deployments.Environments, Environment{Name: e.Environment, Production: e.Production,
			Deployments: figure("count", count(e.Count), count(countOf(envsWas, e.Environment)))})
	}
	// An environment deployed to only in the period before is a change
	// too: down to none.
	for _, e := range envsWas {
		if countOf(envs, e.Environment) == 0 {
			d.Deployments.Environments = append(d.Deployments.Environments, Environment{Name: e.Environment, Production: e.Production,
				Deployments: figure("count", count(0), count(e.Count))})
		}
	}

	ph, err := m.Pipelines(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("pipelines: %w", err)
	}
	phWas, err := m.Pipelines(ctx, prev)
	if err != nil {
		return nil, fmt.Errorf("pipelines: %w", err)
	}
	d.Pipelines.Pipelines = figure("count", count(ph.Pipelines), count(phWas.Pipelines))
	d.Pipelines.Failed = figure("count", count(ph.Statuses["failed"]), count(phWas.Statuses["failed"]))
	jobs := slices.Clone(ph.FailingJobs)
	// Most failures first: a job failing once in one run is 100% but
	// not what costs the team most.
	slices.SortStableFunc(jobs, func(a, b metrics.JobHealth) int { return b.Failures - a.Failures })
	d.Pipelines.FailingJobs = []Item{}
	for _, j := range jobs[:min(TopN, len(jobs))] {
		d.Pipelines.FailingJobs = append(d.Pipelines.FailingJobs, Item{Title: j.Name, Failures: j.Failures, Runs: j.Runs})
	}

	open, err := m.OpenIncidentsAt(ctx, o.ProjectIDs, until, TopN)
	if err != nil {
		return nil, fmt.Errorf("open incidents: %w", err)
	}
	openWas, err := m.OpenIncidentsAt(ctx, o.ProjectIDs, since, 0)
	if err != nil {
		return nil, fmt.Errorf("open incidents: %w", err)
	}
	d.Incidents.Open = figure("count", count(open.Count), count(openWas.Count))
	d.Incidents.List = []Item{}
	for _, in := range open.Open {
		it := Item{ID: in.ID, Title: in.ID, At: in.CreatedAt, AgeSeconds: until.Sub(in.CreatedAt).Seconds(),
			URL: link("/events/" + url.PathEscape(in.ID))}
		if err := describe(ctx, ev, &it); err != nil {
			return nil, err
		}
		d.Incidents.List = append(d.Incidents.List, it)
	}
	return d, nil
}

// describe fills an item's title, project, author and GitLab link from its
// stored event; an event gone since the metrics read it keeps its id.
func describe(ctx context.Context, ev Events, it *Item) error {
	if ev == nil {
		return nil
	}
	e, _, err := ev.Get(ctx, it.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("event %s: %w", it.ID, err)
	}
	if e.Title != "" {
		it.Title = e.Title
	}
	it.Project, it.WebURL = cmp.Or(it.Project, e.ProjectPath), e.WebURL
	it.Author = cmp.Or(it.Author, e.Author)
	return nil
}

func countOf(envs []metrics.EnvironmentDeployments, name string) int {
	for _, e := range envs {
		if e.Environment == name {
			return e.Count
		}
	}
	return 0
}

func scope(o Options) string {
	switch {
	case o.Group != "" && len(o.Projects) > 0:
		return "group " + o.Group + " and " + strings.Join(o.Projects, ", ")
	case o.Group != "":
		return "group " + o.Group
	case len(o.Projects) > 0:
		return strings.Join(o.Projects, ", ")
	}
	return "all projects"
}

// periodName is "Monday 30 November 2026" or "week of Monday 30 November
// 2026 to Sunday 6 December 2026".
func periodName(p Period, since, until time.Time) string {
	const f = "Monday 2 January 2006"
	if p == Day {
		return since.Format(f)
	}
	return "week of " + since.Format(f) + " to " + until.AddDate(0, 0, -1).Format(f)
}

// links returns the URL of a labtrail page for the period and selection,
// or "" without a public URL.
func links(o Options, since, until time.Time) func(path string) string {
	base := strings.TrimRight(o.PublicURL, "/")
	return func(path string) string {
		if base == "" {
			return ""
		}
		if strings.HasPrefix(path, "/events/") {
			return base + path
		}
		v := url.Values{}
		v.Set("since", since.UTC().Format(time.RFC3339))
		v.Set("until", until.UTC().Format(time.RFC3339))
		for _, p := range o.Projects {
			v.Add("project", p)
		}
		if o.Group != "" {
			v.Set("group", o.Group)
		}
		return base + path + "?" + v.Encode()
	}
}

// Projects lists the projects labtrail syncs, among which a selection is
// resolved.
type Projects interface {
	Projects(ctx context.Context) ([]store.Project, error)
}

// Select sets o.ProjectIDs to the projects o.Projects and o.Group name
// (ids or paths; a group with its subgroups); neither selects every
// project. A name labtrail does not sync is a *store.UnknownSelectionError.
func Select(ctx context.Context, ps Projects, o *Options) error {
	o.ProjectIDs = nil
	if len(o.Projects) == 0 && o.Group == "" {
		return nil
	}
	all, err := ps.Projects(ctx)
	if err != nil {
		return fmt.Errorf("projects: %w", err)
	}
	var groups []string
	if o.Group != "" {
		groups = []string{o.Group}
	}
	o.ProjectIDs, err = store.SelectProjects(all, o.Projects, groups)
	return err
}
