package server

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/metrics"
)

// The metrics pages (overview, merge requests, pipelines, deployments)
// show what the metrics API answers, never a figure of their own: each
// figure on them is a field of a metrics result, and each page links to
// the API request that gives its figures, with the same projects and the
// same window to the second.

func init() {
	pageFuncs["raw"] = rawNumber
	// Parsed at start, like the error page: a broken template stops the
	// binary, and no request parses one while another renders.
	for _, name := range []string{"overview", "merge_requests", "pipelines", "deployments"} {
		pages[name] = template.Must(template.New(name).Funcs(pageFuncs).ParseFS(templateFS,
			"templates/layout.html", "templates/metrics_common.html", "templates/"+name+".html"))
	}
}

// rawNumber is a figure as a data-value attribute holds it: the number
// exactly as JSON would write it, "" for none.
func rawNumber(v any) string {
	f, ok := toFloat(v)
	if !ok {
		return ""
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

// metricsView is where a metrics page starts: its filter read from the
// URL, the layout's page, and the metrics query of its window.
type metricsView struct {
	name string // its template
	p    page
	f    *pageFilter
	q    metrics.Query
	now  time.Time
	st   metricsState
}

// metricsState is the part of every metrics page's data that says whether
// there is anything to show, and where its figures come from.
type metricsState struct {
	// Disabled: the server computes no metrics (EnableMetrics not called).
	Disabled bool
	// NoProjects: no project is synced yet.
	NoProjects bool
	// Since and Until are the window the figures are over.
	Since, Until time.Time
	// API is the metrics request giving the page's figures.
	API string
}

// startMetricsPage reads the filter of the metrics page name, whose
// figures come from the metrics endpoint named (dora, merge-requests,
// pipelines). When it returns false it has answered the request: with a
// 400 or 404 page, or with the page saying there is nothing to compute
// (no metrics on this server, no project synced).
func (s *Server) startMetricsPage(w http.ResponseWriter, r *http.Request, name, title, endpoint string, o filterOptions) (metricsView, bool) {
	// Whole seconds: the API link carries the window in RFC 3339, and its
	// answer must be over exactly the window the page shows.
	now := time.Now().UTC().Truncate(time.Second)
	f, err := s.parsePageFilter(r.Context(), r, o, now)
	if err != nil {
		s.failPage(w, r, err)
		return metricsView{}, false
	}
	p, err := s.pageContext(r.Context(), f)
	if err != nil {
		s.failPage(w, r, err)
		return metricsView{}, false
	}
	p.Now, p.Title = now, title
	since, until := f.bounded(now)
	if since.Equal(until) && f.Window != "custom" {
		until = until.Add(time.Second) // today, asked at midnight
	}
	if !since.Before(until) {
		s.failPage(w, r, badRequest("the window starts (%s) after it ends (%s): choose dates up to today", since.Format(time.DateOnly), until.Format(time.DateOnly)))
		return metricsView{}, false
	}
	q := metrics.Query{ProjectIDs: f.IDs, Since: since, Until: until, Bucket: metrics.Bucket(f.Bucket), Now: now}
	v := metricsView{name: name, p: p, f: f, q: q, now: now, st: metricsState{
		Disabled: s.delivery == nil, NoProjects: len(p.Projects) == 0,
		Since: since, Until: until, API: metricsAPI(endpoint, f, q)}}
	if v.st.Disabled || v.st.NoProjects {
		v.render(s, w, r, &v.st)
		return metricsView{}, false
	}
	return v, true
}

// render shows the page with data.
func (v metricsView) render(s *Server, w http.ResponseWriter, r *http.Request, data any) {
	v.p.Data = data
	s.render(w, r, v.name, v.p)
}

// metricsAPI is the metrics API request for the filter's projects over q's
// window (and bucket, when the page has one).
func metricsAPI(endpoint string, f *pageFilter, q metrics.Query) string {
	v := url.Values{}
	for _, p := range f.Projects {
		v.Add("project", p)
	}
	if f.Group != "" {
		v.Set("group", f.Group)
	}
	v.Set("since", q.Since.UTC().Format(time.RFC3339))
	v.Set("until", q.Until.UTC().Format(time.RFC3339))
	if f.WithBucket && q.Bucket != "" {
		v.Set("bucket", string(q.Bucket))
	}
	return "/api/v1/metrics/" + endpoint + "?" + v.Encode()
}

// metricsError is a metric's error as a page shows it: the query's
// mistakes are the user's (400).
func metricsError(err error) error {
	if errors.Is(err, metrics.ErrInvalidQuery) {
		return badRequest("%s", err)
	}
	return err
}

// chart is a chart's data as app.js draws it (see app.js).
type chart struct {
	Kind   string        `json:"kind"`
	Unit   string        `json:"unit"`
	X      []int64       `json:"x"`
	Series []chartSeries `json:"series"`
}

type chartSeries struct {
	Label  string     `json:"label"`
	Values []*float64 `json:"values"`
}

func count(n int) *float64 {
	f := float64(n)
	return &f
}

// doraKey is one of the four keys as the overview shows it.
type doraKey struct {
	// ID names its element: dora-<ID>, and dora-<ID>-<period> in the
	// trend.
	ID, Name string
	// Value is the figure (nil: no data), Text how it reads.
	Value *float64
	Text  string
	Level metrics.Level
	// Sub says what the figure is over.
	Sub string
}

// doraKeys are d's four keys, each read from its field of d.
func doraKeys(d metrics.DORA) []doraKey {
	df, lt, cfr, ttr := d.DeploymentFrequency, d.LeadTime, d.ChangeFailureRate, d.TimeToRestore
	freq := "—"
	if df.PerDay != nil {
		if *df.PerDay >= 1 {
			freq = floatText(*df.PerDay) + " a day"
		} else {
			freq = floatText(*df.PerDay*7) + " a week"
		}
	}
	return []doraKey{
		{ID: "deployment-frequency", Name: "Deployment frequency", Value: df.PerDay, Text: freq, Level: df.Level,
			Sub: fmt.Sprintf("%s production deployments", number(df.Count))},
		{ID: "lead-time", Name: "Lead time for changes (median)", Value: lt.MedianSeconds, Text: humanDuration(lt.MedianSeconds),
			Level: lt.Level, Sub: fmt.Sprintf("over %s changes shipped", number(lt.Changes))},
		{ID: "change-failure-rate", Name: "Change failure rate", Value: cfr.Rate, Text: percent(cfr.Rate), Level: cfr.Level,
			Sub: fmt.Sprintf("%s of %s deployments followed by an incident", number(cfr.Failed), number(cfr.Deployments))},
		{ID: "time-to-restore", Name: "Time to restore (median)", Value: ttr.MedianSeconds, Text: humanDuration(ttr.MedianSeconds),
			Level: ttr.Level, Sub: fmt.Sprintf("%s of %s incidents restored", number(ttr.Restored), number(ttr.Incidents))},
	}
}

// trendPeriods are the overview's trend: the keys over the last 7, 30 and
// 90 days of the window's end.
var trendPeriods = []int{7, 30, 90}

// trendRow is one key over each trend period.
type trendRow struct {
	ID, Name string
	Cells    []trendCell
}

type trendCell struct {
	Period string // 7d
	doraKey
	API string
}

// overviewIncidents is how many of the latest incidents the overview
// shows, and overviewChanges how many changes before each.
const (
	overviewIncidents = 5
	overviewChanges   = 5
)

// incidentRow is an incident and the changes before it, as GET
// /api/v1/changes/before?incident= lists them.
type incidentRow struct {
	Event     change.Event
	ClosedAt  time.Time
	Changes   []change.Event
	Truncated bool
	Window    float64
	API       string
}

type overviewData struct {
	metricsState
	// NoProduction: none of the projects has an environment that counts
	// as production, so DORA has nothing to count.
	NoProduction bool
	// WebhooksOff says webhooks are not set up; WebhookHint how to.
	WebhooksOff bool
	WebhookHint string
	Keys        []doraKey
	Trend       []trendRow
	Periods     []string
	// The week up to the window's end: ThisWeek when that is now.
	WeekStart            time.Time
	ThisWeek             bool
	WeekMerged           int
	WeekDeployments      int
	WeekFailedPipelines  int
	WeekMRAPI, WeekPLAPI string
	WeekDoraAPI          string
	Incidents            []incidentRow
}

// overview is GET /: the four keys with their levels and trend, the week's
// merges, deployments and failed pipelines, and the latest incidents with
// what changed before each.
//
// Its cost is one DORA read of the widest of the last 7, 30 and 90 days and
// the window, summed up over each (metrics.DORAs), one merge-request flow
// and one pipeline health over the week, the window's incidents and, for
// each of the latest five, seven short listings of the changes before it;
// the computations run side by side.
func (s *Server) overview(w http.ResponseWriter, r *http.Request) {
	v, ok := s.startMetricsPage(w, r, "overview", "Overview", "dora", filterOptions{window: "30d"})
	if !ok {
		return
	}
	ctx := r.Context()
	d := overviewData{metricsState: v.st, WebhooksOff: s.webhook == nil, WebhookHint: s.hints.Webhooks}
	m, q := s.metricsOf(ctx, v.q.ProjectIDs, ""), v.q
	periods := make([]metrics.DORA, len(trendPeriods))
	var window metrics.DORA
	windowIn := -1 // the period the window is, if it is one
	for i, n := range trendPeriods {
		if q.Since.Equal(q.Until.AddDate(0, 0, -n)) {
			windowIn = i
		}
	}
	// The week up to the window's end, from its Monday: always within the
	// last 7 days.
	week := q
	week.Since = metrics.BucketWeek.Start(q.Until.Add(-time.Nanosecond))
	d.WeekStart, d.ThisWeek = week.Since, q.Until.Equal(v.now)

	g, gctx := errgroup.WithContext(ctx)
	// The periods and the window end together: one read of the widest
	// answers them all (metrics.DORAs).
	g.Go(func() error {
		qs := make([]metrics.Query, 0, len(trendPeriods)+1)
		for _, n := range trendPeriods {
			pq := q
			pq.Since = q.Until.AddDate(0, 0, -n)
			qs = append(qs, pq)
		}
		if windowIn < 0 {
			qs = append(qs, q)
		}
		ds, err := m.DORAs(gctx, qs...)
		if err != nil {
			return err
		}
		copy(periods, ds)
		if windowIn < 0 {
			window = ds[len(trendPeriods)]
		}
		return nil
	})
	g.Go(func() error {
		mr, err := m.MergeRequests(gctx, week)
		d.WeekMerged = mr.Merged
		return err
	})
	g.Go(func() error {
		pl, err := m.Pipelines(gctx, week)
		d.WeekFailedPipelines = pl.Statuses["failed"]
		return err
	})
	g.Go(func() error {
		envs, err := m.ProductionEnvironments(gctx, q.ProjectIDs)
		d.NoProduction = len(envs) == 0
		return err
	})
	g.Go(func() (err error) { d.Incidents, err = s.latestIncidents(gctx, q); return err })
	if err := g.Wait(); err != nil {
		s.failPage(w, r, metricsError(err))
		return
	}
	if windowIn >= 0 {
		window = periods[windowIn]
	}
	d.Keys = doraKeys(window)
	// The week's production deployments are those of the last 7 days'
	// list that finished since its Monday: the ones DORA over the week
	// counts.
	for _, dep := range periods[0].Deployments {
		if !dep.FinishedAt.Before(week.Since) {
			d.WeekDeployments++
		}
	}
	d.WeekMRAPI = metricsAPI("merge-requests", v.f, week)
	d.WeekPLAPI = metricsAPI("pipelines", v.f, week)
	d.WeekDoraAPI = metricsAPI("dora", v.f, week)
	for i, n := range trendPeriods {
		d.Periods = append(d.Periods, fmt.Sprintf("%dd", n))
		pq := q
		pq.Since = q.Until.AddDate(0, 0, -n)
		api := metricsAPI("dora", v.f, pq)
		for k, key := range doraKeys(periods[i]) {
			if i == 0 {
				d.Trend = append(d.Trend, trendRow{ID: key.ID, Name: key.Name})
			}
			d.Trend[k].Cells = append(d.Trend[k].Cells, trendCell{Period: d.Periods[i], doraKey: key, API: api})
		}
	}
	v.render(s, w, r, &d)
}

// latestIncidents are the latest incidents of q's window, each with the
// changes before it as GET /api/v1/changes/before?incident= gives them.
func (s *Server) latestIncidents(ctx context.Context, q metrics.Query) ([]incidentRow, error) {
	incs, err := s.metricsOf(ctx, q.ProjectIDs, "").Incidents(ctx, q, overviewIncidents)
	if err != nil {
		return nil, err
	}
	// Each incident's listings are short reads of their own: they run a
	// few at a time, and the rows keep the incidents' order.
	rows := make([]*incidentRow, len(incs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(3)
	for i, in := range incs {
		g.Go(func() error {
			res, f, err := s.changeQuery(gctx, url.Values{"incident": {in.ID}})
			var ae *apiError
			if errors.As(err, &ae) && ae.status == http.StatusNotFound {
				return nil // its event is gone since the metrics read it
			}
			if err != nil {
				return err
			}
			row := incidentRow{Event: res.incident, ClosedAt: in.ClosedAt, Window: res.WindowSeconds,
				API: "/api/v1/changes/before?" + url.Values{"incident": {in.ID}}.Encode()}
			row.Event.SafeURLs("")
			if row.Changes, row.Truncated, err = s.listChanges(gctx, f, overviewChanges); err != nil {
				return err
			}
			rows[i] = &row
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := make([]incidentRow, 0, len(rows))
	for _, r := range rows {
		if r != nil {
			out = append(out, *r)
		}
	}
	return out, nil
}
