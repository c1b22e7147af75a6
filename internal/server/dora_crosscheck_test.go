package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/gitlab"
	"github.com/labtrail/labtrail/internal/gitlabsim"
	"github.com/labtrail/labtrail/internal/ingest"
	"github.com/labtrail/labtrail/internal/metrics"
	"github.com/labtrail/labtrail/internal/server"
	"github.com/labtrail/labtrail/internal/store/sqlite"
)

// TestDORACrossCheckedFromEvents computes the DORA answer of a synced
// simulated world a second way: from GET /api/v1/events only, with the
// definitions of issue 12 written out again here (nothing of
// internal/metrics or the store is called), and compares it with
// GET /api/v1/metrics/dora field by field. Where the issue leaves room it
// follows the rules internal/metrics documents: a change's lead time is
// counted once, at the earliest production deployment of the window that
// shipped it; per_day is null without production deployments; a
// deployment's changes are listed oldest merge first and its incidents
// oldest first.
func TestDORACrossCheckedFromEvents(t *testing.T) {
	if testing.Short() {
		t.Skip("syncs a simulated world")
	}
	now := time.Date(2026, 5, 20, 15, 30, 0, 0, time.UTC) // a Wednesday
	sim := gitlabsim.New(gitlabsim.Options{Seed: 7, Projects: 4, Groups: 2, MRs: 100, Pipelines: 130,
		Token: "tok", RateLimit: 1 << 30, Now: func() time.Time { return now }})
	simSrv := httptest.NewServer(sim)
	t.Cleanup(simSrv.Close)

	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "dora.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cl, err := gitlab.New(gitlab.Config{URL: simSrv.URL, Token: "tok", RequestsPerMinute: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	poller := &ingest.Poller{GitLab: cl, Store: st, Log: quiet}
	res, err := poller.SyncAll(context.Background())
	if err == nil {
		err = res.Err()
	}
	if err != nil {
		t.Fatal(err)
	}
	serve := func(cfg metrics.Config) string {
		api := server.New(st, nil)
		api.EnableMetrics(metrics.New(st, cfg))
		srv := httptest.NewServer(api)
		t.Cleanup(srv.Close)
		return srv.URL
	}
	base := serve(metrics.Config{})
	// With staging counted as production too (LABTRAIL_PRODUCTION_ENVIRONMENTS),
	// a project has two production environments: a change reaches both
	// (its lead time ends at the first), each has its own previous
	// deployment, and the next production deployment after one may be
	// the other's.
	stagingToo := []string{"stag*"}
	baseStagingToo := serve(metrics.Config{ProductionEnvironments: stagingToo})

	w := readWorld(t, base)
	// The events API must have answered every object the simulator holds
	// of these kinds, or the second computation would be of less.
	truth := map[string]int{}
	for _, e := range sim.Truth() {
		truth[string(e.Kind)]++
	}
	for kind, n := range w.counts {
		if truth[kind] != n {
			t.Fatalf("GET /api/v1/events?kind=%s listed %d events, the simulated GitLab holds %d", kind, n, truth[kind])
		}
	}

	first, second := w.paths[0], w.paths[1]
	group := first[:strings.Index(first, "/")]
	inGroup := func(g string) func(string) bool {
		return func(p string) bool { return strings.HasPrefix(strings.ToLower(p), strings.ToLower(g)+"/") }
	}
	// The simulator puts its last project in a subgroup.
	subgroup := ""
	for _, p := range w.paths {
		if strings.Count(p, "/") > 1 {
			subgroup = p[:strings.LastIndex(p, "/")]
		}
	}
	if subgroup == "" {
		t.Fatalf("no project is in a subgroup: %v", w.paths)
	}
	india := time.FixedZone("IST", 5*3600+1800)
	cases := []struct {
		name         string
		params       url.Values
		projects     []int64 // nil: all
		since, until time.Time
		globs        []string // the server's production environment globs
	}{
		{"all projects, last 90 days", url.Values{}, nil, now.Add(-90 * 24 * time.Hour), now, nil},
		{"one project, last 90 days", url.Values{"project": {first}}, w.projectsWhere(func(p string) bool { return p == first }),
			now.Add(-90 * 24 * time.Hour), now, nil},
		{"group " + group + ", last 90 days", url.Values{"group": {group}}, w.projectsWhere(inGroup(group)),
			now.Add(-90 * 24 * time.Hour), now, nil},
		{"subgroup " + subgroup + ", last 90 days", url.Values{"group": {subgroup}}, w.projectsWhere(inGroup(subgroup)),
			now.Add(-90 * 24 * time.Hour), now, nil},
		{"two projects, by id and by path, last 90 days",
			url.Values{"project": {fmt.Sprint(w.projectOf[first]), second}},
			w.projectsWhere(func(p string) bool { return p == first || p == second }),
			now.Add(-90 * 24 * time.Hour), now, nil},
		// A window ending inside the history (deployments near its end
		// are linked to incidents through their next deployment after it),
		// starting on neither a Monday nor a midnight, asked in another
		// time zone.
		{"all projects, days 120 to 45 before", url.Values{}, nil,
			now.Add(-120*24*time.Hour + 37*time.Minute).In(india), now.Add(-45 * 24 * time.Hour).In(india), nil},
		{"staging too, all projects, last 90 days", url.Values{}, nil, now.Add(-90 * 24 * time.Hour), now, stagingToo},
		{"staging too, one project, days 120 to 45 before", url.Values{"project": {second}},
			w.projectsWhere(func(p string) bool { return p == second }),
			now.Add(-120*24*time.Hour + 37*time.Minute).In(india), now.Add(-45 * 24 * time.Hour).In(india), stagingToo},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q := c.params
			q.Set("since", c.since.Format(time.RFC3339Nano))
			q.Set("until", c.until.Format(time.RFC3339Nano))
			q.Set("bucket", "week")
			u := base
			if c.globs != nil {
				u = baseStagingToo
			}
			got := getDORA(t, u+"/api/v1/metrics/dora?"+q.Encode())
			want := w.dora(c.globs, c.projects, c.since, c.until)
			if len(c.projects) > 0 && len(c.projects) == len(w.paths) {
				t.Fatalf("the selection %v holds every project: it checks nothing the first case does not", q)
			}
			compareDORA(t, got, want)

			multi, none, twice := 0, 0, 0
			shippedBy := map[string]int{}
			for _, d := range want.Deployments {
				for _, m := range d.Changes {
					if shippedBy[m]++; shippedBy[m] == 2 {
						twice++
					}
				}
				switch {
				case len(d.Changes) > 1:
					multi++
				case len(d.Changes) == 0:
					none++
				}
			}
			t.Logf("compared %d production deployments (%d failed; %d shipping several changes, %d none), "+
				"%d changes (%d shipped twice), %d incidents (%d restored), %d week buckets",
				want.DeploymentFrequency.Count, want.ChangeFailureRate.Failed, multi, none, want.LeadTime.Changes, twice,
				want.TimeToRestore.Incidents, want.TimeToRestore.Restored, len(want.DeploymentFrequency.Buckets))
			// The world must exercise what is compared, or agreeing
			// means little.
			if want.DeploymentFrequency.Count < 10 || c.projects == nil && (multi == 0 || none == 0 || want.ChangeFailureRate.Failed == 0 ||
				want.TimeToRestore.Restored == 0) {
				t.Errorf("the window is too thin to check much: %d deployments, %d shipping several changes, %d none, %d failed, %d restored",
					want.DeploymentFrequency.Count, multi, none, want.ChangeFailureRate.Failed, want.TimeToRestore.Restored)
			}
			if c.globs != nil && twice == 0 {
				t.Error("no change reached two production environments: the lead time's once-per-change rule is not checked")
			}
		})
	}
}

// doraAnswer is the answer of GET /api/v1/metrics/dora as the issue names
// it, declared here rather than taken from internal/metrics.
type doraAnswer struct {
	Since               time.Time `json:"since"`
	Until               time.Time `json:"until"`
	Bucket              string    `json:"bucket"`
	DeploymentFrequency struct {
		Count   int           `json:"count"`
		PerDay  *float64      `json:"per_day"`
		Level   *string       `json:"level"`
		Buckets []countBucket `json:"buckets"`
	} `json:"deployment_frequency"`
	LeadTime struct {
		Changes                    int          `json:"changes"`
		MedianSeconds              *float64     `json:"median_seconds"`
		P90Seconds                 *float64     `json:"p90_seconds"`
		MergeToDeployMedianSeconds *float64     `json:"merge_to_deploy_median_seconds"`
		Level                      *string      `json:"level"`
		Buckets                    []leadBucket `json:"buckets"`
	} `json:"lead_time"`
	ChangeFailureRate struct {
		Deployments int      `json:"deployments"`
		Failed      int      `json:"failed"`
		Rate        *float64 `json:"rate"`
		Level       *string  `json:"level"`
	} `json:"change_failure_rate"`
	TimeToRestore struct {
		Incidents     int      `json:"incidents"`
		Restored      int      `json:"restored"`
		MedianSeconds *float64 `json:"median_seconds"`
		P90Seconds    *float64 `json:"p90_seconds"`
		Level         *string  `json:"level"`
	} `json:"time_to_restore"`
	Deployments []doraDeployment `json:"deployments"`
}

type countBucket struct {
	Start time.Time `json:"start"`
	Count int       `json:"count"`
}

type leadBucket struct {
	Start         time.Time `json:"start"`
	Changes       int       `json:"changes"`
	MedianSeconds *float64  `json:"median_seconds"`
}

type doraDeployment struct {
	ID          string    `json:"id"`
	ProjectPath string    `json:"project_path"`
	Environment string    `json:"environment"`
	Ref         string    `json:"ref"`
	SHA         string    `json:"sha"`
	FinishedAt  time.Time `json:"finished_at"`
	Changes     []string  `json:"changes"`
	Incidents   []string  `json:"incidents"`
	Failed      bool      `json:"failed"`
}

// doraFields are the names the issue fixes: each must be in the answer,
// null or not.
var doraFields = map[string][]string{
	"":                     {"since", "until", "bucket", "deployment_frequency", "lead_time", "change_failure_rate", "time_to_restore", "deployments"},
	"deployment_frequency": {"count", "per_day", "level", "buckets"},
	"lead_time":            {"changes", "median_seconds", "p90_seconds", "merge_to_deploy_median_seconds", "level", "buckets"},
	"change_failure_rate":  {"deployments", "failed", "rate", "level"},
	"time_to_restore":      {"incidents", "restored", "median_seconds", "level"},
}

func getDORA(t *testing.T, u string) doraAnswer {
	t.Helper()
	body := getBody(t, u)
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	for obj, names := range doraFields {
		m := raw
		if obj != "" {
			m = nil
			if err := json.Unmarshal(raw[obj], &m); err != nil {
				t.Fatalf("GET %s: %s: %v", u, obj, err)
			}
		}
		for _, n := range names {
			if _, ok := m[n]; !ok {
				t.Errorf("GET %s: the answer has no %s.%s", u, obj, n)
			}
		}
	}
	var a doraAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	return a
}

func getBody(t *testing.T, u string) []byte {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", u, resp.Status, body)
	}
	return body
}

// apiEvent is an event as GET /api/v1/events answers it.
type apiEvent struct {
	ID          string         `json:"id"`
	Kind        string         `json:"kind"`
	ProjectID   int64          `json:"project_id"`
	ProjectPath string         `json:"project_path"`
	State       string         `json:"state"`
	Ref         string         `json:"ref"`
	SHA         string         `json:"sha"`
	CreatedAt   time.Time      `json:"created_at"`
	Attrs       map[string]any `json:"attributes"`
}

func (e apiEvent) str(t *testing.T, k string) string {
	t.Helper()
	switch v := e.Attrs[k].(type) {
	case nil:
		return ""
	case string:
		return v
	default:
		t.Fatalf("%s: attribute %s is %T, not a string", e.ID, k, v)
		return ""
	}
}

// at is the attribute k as a time; zero when absent, null or empty.
func (e apiEvent) at(t *testing.T, k string) time.Time {
	t.Helper()
	s := e.str(t, k)
	if s == "" {
		return time.Time{}
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("%s: attribute %s: %v", e.ID, k, err)
	}
	return v.UTC()
}

// listEvents pages through GET /api/v1/events?kind=kind with cursors.
func listEvents(t *testing.T, base, kind string) []apiEvent {
	t.Helper()
	var all []apiEvent
	seen := map[string]bool{}
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatalf("kind=%s: more than 1000 pages", kind)
		}
		q := url.Values{"kind": {kind}, "limit": {"1000"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var page struct {
			Events     []apiEvent `json:"events"`
			NextCursor string     `json:"next_cursor"`
		}
		if err := json.Unmarshal(getBody(t, base+"/api/v1/events?"+q.Encode()), &page); err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Events {
			if seen[e.ID] {
				t.Fatalf("kind=%s: %s listed twice", kind, e.ID)
			}
			seen[e.ID] = true
			if e.Kind != kind {
				t.Fatalf("kind=%s listed %s of kind %s", kind, e.ID, e.Kind)
			}
			all = append(all, e)
		}
		if page.NextCursor == "" {
			return all
		}
		cursor = page.NextCursor
	}
}

type xEnv struct {
	project int64
	name    string
}

type xDeploy struct {
	id, path, env, ref, sha string
	project                 int64
	finished                time.Time
}

type xMR struct {
	id                             string
	project                        int64
	target                         string
	created, merged, firstCommitAt time.Time
}

type xIncident struct {
	id              string
	project         int64
	created, closed time.Time
}

// xWorld is what the events API says, reduced to what DORA reads.
type xWorld struct {
	counts    map[string]int
	paths     []string // project paths, sorted
	projectOf map[string]int64
	// tierProduction holds the environments of tier production.
	tierProduction map[xEnv]bool
	// deploys are the successful deployments with a finish, of every
	// environment.
	deploys   []xDeploy
	mrs       []xMR // merged
	incidents []xIncident
}

func readWorld(t *testing.T, base string) *xWorld {
	t.Helper()
	w := &xWorld{counts: map[string]int{}, projectOf: map[string]int64{}, tierProduction: map[xEnv]bool{}}
	note := func(e apiEvent) {
		if _, ok := w.projectOf[e.ProjectPath]; !ok {
			w.projectOf[e.ProjectPath] = e.ProjectID
			w.paths = append(w.paths, e.ProjectPath)
		}
	}
	for _, e := range listEvents(t, base, "environment") {
		w.counts[e.Kind]++
		note(e)
		if e.str(t, "tier") == "production" {
			w.tierProduction[xEnv{e.ProjectID, e.str(t, "name")}] = true
		}
	}
	for _, e := range listEvents(t, base, "deployment") {
		w.counts[e.Kind]++
		note(e)
		if f := e.at(t, "finished_at"); e.str(t, "status") == "success" && !f.IsZero() {
			w.deploys = append(w.deploys, xDeploy{id: e.ID, path: e.ProjectPath, env: e.str(t, "environment"),
				ref: e.Ref, sha: e.SHA, project: e.ProjectID, finished: f})
		}
	}
	for _, e := range listEvents(t, base, "merge_request") {
		w.counts[e.Kind]++
		note(e)
		if m := e.at(t, "merged_at"); e.State == "merged" && !m.IsZero() {
			w.mrs = append(w.mrs, xMR{id: e.ID, project: e.ProjectID, target: e.str(t, "target_branch"),
				created: e.CreatedAt.UTC(), merged: m, firstCommitAt: e.at(t, "first_commit_at")})
		}
	}
	for _, e := range listEvents(t, base, "issue") {
		w.counts[e.Kind]++
		note(e)
		incident := e.str(t, "issue_type") == "incident"
		labels, _ := e.Attrs["labels"].([]any)
		for _, l := range labels {
			if s, ok := l.(string); ok && strings.EqualFold(strings.TrimSpace(s), "incident") {
				incident = true
			}
		}
		if incident {
			w.incidents = append(w.incidents, xIncident{id: e.ID, project: e.ProjectID, created: e.CreatedAt.UTC(),
				closed: e.at(t, "closed_at")})
		}
	}
	slices.Sort(w.paths)
	if len(w.paths) < 3 {
		t.Fatalf("the events name %d projects: %v", len(w.paths), w.paths)
	}
	return w
}

func (w *xWorld) projectsWhere(f func(path string) bool) []int64 {
	var out []int64
	for _, p := range w.paths {
		if f(p) {
			out = append(out, w.projectOf[p])
		}
	}
	return out
}

// weekStart is the Monday 00:00 UTC on or before t.
func weekStart(t time.Time) time.Time {
	t = t.UTC()
	d := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	for d.Weekday() != time.Monday {
		d = d.AddDate(0, 0, -1)
	}
	return d
}

func xMedian(xs []float64) *float64 {
	if len(xs) == 0 {
		return nil
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	v := s[n/2]
	if n%2 == 0 {
		v = (s[n/2-1] + s[n/2]) / 2
	}
	return &v
}

// xP90 is the nearest-rank 90th percentile: the ceil(0.9 n)-th smallest,
// the rank worked out in integers.
func xP90(xs []float64) *float64 {
	if len(xs) == 0 {
		return nil
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	rank := (9*len(s) + 9) / 10
	v := s[rank-1]
	return &v
}

func level(v *float64, f func(float64) string) *string {
	if v == nil {
		return nil
	}
	l := f(*v)
	return &l
}

const secondsPerDay = 24 * 60 * 60

// The DORA 2023 levels, as the issue states them.
func frequencyLevel(perDay float64) string {
	switch {
	case perDay >= 1:
		return "elite"
	case perDay >= 1.0/7:
		return "high"
	case perDay >= 1.0/30:
		return "medium"
	}
	return "low"
}

func leadLevel(s float64) string {
	switch {
	case s < secondsPerDay:
		return "elite"
	case s < 7*secondsPerDay:
		return "high"
	case s < 30*secondsPerDay:
		return "medium"
	}
	return "low"
}

func failureLevel(r float64) string {
	switch {
	case r <= 0.05:
		return "elite"
	case r <= 0.10:
		return "high"
	case r <= 0.15:
		return "medium"
	}
	return "low"
}

func restoreLevel(s float64) string {
	switch {
	case s < 3600:
		return "elite"
	case s < secondsPerDay:
		return "high"
	case s < 7*secondsPerDay:
		return "medium"
	}
	return "low"
}

// dora is the answer the definitions give for projects (nil: all)
// over [since, until), by week, with globs as
// LABTRAIL_PRODUCTION_ENVIRONMENTS.
func (w *xWorld) dora(globs []string, projects []int64, since, until time.Time) doraAnswer {
	in := func(p int64) bool { return projects == nil || slices.Contains(projects, p) }
	var a doraAnswer
	a.Since, a.Until, a.Bucket = since, until, "week"

	// A production environment: of tier production, or named by a glob.
	production := func(project int64, env string) bool {
		if w.tierProduction[xEnv{project, env}] {
			return true
		}
		for _, g := range globs {
			if ok, _ := path.Match(g, env); ok {
				return true
			}
		}
		return false
	}
	// Production deployments: successful, to a production environment,
	// finished in the window.
	var prod []xDeploy
	for _, d := range w.deploys {
		if in(d.project) && production(d.project, d.env) && !d.finished.Before(since) && d.finished.Before(until) {
			prod = append(prod, d)
		}
	}
	// The earliest first, for "the earliest deployment that shipped it".
	slices.SortFunc(prod, func(x, y xDeploy) int {
		if c := x.finished.Compare(y.finished); c != 0 {
			return c
		}
		return strings.Compare(x.id, y.id)
	})

	type leadOf struct {
		deploy xDeploy
		mr     xMR
	}
	leads := map[string]leadOf{} // per MR: the earliest deployment that shipped it
	var deps []doraDeployment
	failed := 0
	for _, d := range prod {
		// The previous successful deployment of the same project and
		// environment, at any time.
		var prev time.Time
		// The project's next production deployment, at any time.
		var next time.Time
		for _, o := range w.deploys {
			if o.project != d.project || o.id == d.id {
				continue
			}
			if o.env == d.env && o.finished.Before(d.finished) && o.finished.After(prev) {
				prev = o.finished
			}
			if production(o.project, o.env) && o.finished.After(d.finished) && (next.IsZero() || o.finished.Before(next)) {
				next = o.finished
			}
		}
		var shipped []xMR
		for _, m := range w.mrs {
			if m.project == d.project && m.target == d.ref && (prev.IsZero() || m.merged.After(prev)) && !m.merged.After(d.finished) {
				shipped = append(shipped, m)
			}
		}
		slices.SortFunc(shipped, func(x, y xMR) int {
			if c := x.merged.Compare(y.merged); c != 0 {
				return c
			}
			return strings.Compare(x.id, y.id)
		})
		out := doraDeployment{ID: d.id, ProjectPath: d.path, Environment: d.env, Ref: d.ref, SHA: d.sha,
			FinishedAt: d.finished, Changes: []string{}, Incidents: []string{}}
		for _, m := range shipped {
			out.Changes = append(out.Changes, m.id)
			if _, ok := leads[m.id]; !ok {
				leads[m.id] = leadOf{d, m}
			}
		}
		var linked []xIncident
		for _, is := range w.incidents {
			if is.project == d.project && is.created.After(d.finished) && (next.IsZero() || !is.created.After(next)) {
				linked = append(linked, is)
			}
		}
		slices.SortFunc(linked, func(x, y xIncident) int {
			if c := x.created.Compare(y.created); c != 0 {
				return c
			}
			return strings.Compare(x.id, y.id)
		})
		for _, is := range linked {
			out.Incidents = append(out.Incidents, is.id)
		}
		out.Failed = len(linked) > 0
		if out.Failed {
			failed++
		}
		deps = append(deps, out)
	}

	// Week buckets: from the Monday on or before since, while before until.
	var starts []time.Time
	for s := weekStart(since); s.Before(until); s = s.AddDate(0, 0, 7) {
		starts = append(starts, s)
	}
	bucketOf := func(t time.Time) int { return slices.Index(starts, weekStart(t)) }

	df := &a.DeploymentFrequency
	df.Count = len(prod)
	counts := make([]int, len(starts))
	for _, d := range prod {
		counts[bucketOf(d.finished)]++
	}
	for i, s := range starts {
		df.Buckets = append(df.Buckets, countBucket{s, counts[i]})
	}
	if df.Count > 0 {
		v := float64(df.Count) / (until.Sub(since).Seconds() / secondsPerDay)
		df.PerDay = &v
	}
	df.Level = level(df.PerDay, frequencyLevel)

	lt := &a.LeadTime
	var lead, mergeToDeploy []float64
	perBucket := make([][]float64, len(starts))
	for _, l := range leads {
		from := l.mr.firstCommitAt
		if from.IsZero() {
			from = l.mr.created
		}
		v := l.deploy.finished.Sub(from).Seconds()
		lead = append(lead, v)
		mergeToDeploy = append(mergeToDeploy, l.deploy.finished.Sub(l.mr.merged).Seconds())
		i := bucketOf(l.deploy.finished)
		perBucket[i] = append(perBucket[i], v)
	}
	lt.Changes = len(lead)
	lt.MedianSeconds, lt.P90Seconds = xMedian(lead), xP90(lead)
	lt.MergeToDeployMedianSeconds = xMedian(mergeToDeploy)
	lt.Level = level(lt.MedianSeconds, leadLevel)
	for i, s := range starts {
		lt.Buckets = append(lt.Buckets, leadBucket{s, len(perBucket[i]), xMedian(perBucket[i])})
	}

	cfr := &a.ChangeFailureRate
	cfr.Deployments, cfr.Failed = len(prod), failed
	if cfr.Deployments > 0 {
		v := float64(failed) / float64(len(prod))
		cfr.Rate = &v
	}
	cfr.Level = level(cfr.Rate, failureLevel)

	ttr := &a.TimeToRestore
	var restore []float64
	for _, is := range w.incidents {
		if in(is.project) && !is.created.Before(since) && is.created.Before(until) {
			ttr.Incidents++
			if !is.closed.IsZero() {
				ttr.Restored++
				restore = append(restore, is.closed.Sub(is.created).Seconds())
			}
		}
	}
	ttr.MedianSeconds, ttr.P90Seconds = xMedian(restore), xP90(restore)
	ttr.Level = level(ttr.MedianSeconds, restoreLevel)

	// The evidence, newest first.
	slices.SortFunc(deps, func(x, y doraDeployment) int {
		if c := y.FinishedAt.Compare(x.FinishedAt); c != 0 {
			return c
		}
		return strings.Compare(y.ID, x.ID)
	})
	a.Deployments = deps
	return a
}

// compareDORA reports every figure of got that differs from want.
func compareDORA(t *testing.T, got, want doraAnswer) {
	t.Helper()
	ts := func(name string, g, w time.Time) {
		if !g.Equal(w) {
			t.Errorf("%s = %s, want %s", name, g.Format(time.RFC3339Nano), w.Format(time.RFC3339Nano))
		}
	}
	num := func(name string, g, w int) {
		if g != w {
			t.Errorf("%s = %d, want %d", name, g, w)
		}
	}
	str := func(name string, g, w *string) {
		if (g == nil) != (w == nil) || (g != nil && *g != *w) {
			t.Errorf("%s = %s, want %s", name, show(g), show(w))
		}
	}
	flt := func(name string, g, w *float64) {
		if (g == nil) != (w == nil) || (g != nil && !nearlyEqual(*g, *w)) {
			t.Errorf("%s = %s, want %s", name, show(g), show(w))
		}
	}
	// eachBucket compares the buckets of a series when there are as many
	// as expected.
	eachBucket := func(series string, got, want int, f func(i int, at string)) {
		if got != want {
			t.Errorf("%s.buckets: %d, want %d", series, got, want)
			return
		}
		for i := range want {
			f(i, fmt.Sprintf("%s.buckets[%d].", series, i))
		}
	}
	ts("since", got.Since, want.Since)
	ts("until", got.Until, want.Until)
	str("bucket", &got.Bucket, &want.Bucket)

	gf, wf := got.DeploymentFrequency, want.DeploymentFrequency
	num("deployment_frequency.count", gf.Count, wf.Count)
	flt("deployment_frequency.per_day", gf.PerDay, wf.PerDay)
	str("deployment_frequency.level", gf.Level, wf.Level)
	eachBucket("deployment_frequency", len(gf.Buckets), len(wf.Buckets), func(i int, at string) {
		ts(at+"start", gf.Buckets[i].Start, wf.Buckets[i].Start)
		num(at+"count", gf.Buckets[i].Count, wf.Buckets[i].Count)
	})

	gl, wl := got.LeadTime, want.LeadTime
	num("lead_time.changes", gl.Changes, wl.Changes)
	flt("lead_time.median_seconds", gl.MedianSeconds, wl.MedianSeconds)
	flt("lead_time.p90_seconds", gl.P90Seconds, wl.P90Seconds)
	flt("lead_time.merge_to_deploy_median_seconds", gl.MergeToDeployMedianSeconds, wl.MergeToDeployMedianSeconds)
	str("lead_time.level", gl.Level, wl.Level)
	eachBucket("lead_time", len(gl.Buckets), len(wl.Buckets), func(i int, at string) {
		ts(at+"start", gl.Buckets[i].Start, wl.Buckets[i].Start)
		num(at+"changes", gl.Buckets[i].Changes, wl.Buckets[i].Changes)
		flt(at+"median_seconds", gl.Buckets[i].MedianSeconds, wl.Buckets[i].MedianSeconds)
	})

	gc, wc := got.ChangeFailureRate, want.ChangeFailureRate
	num("change_failure_rate.deployments", gc.Deployments, wc.Deployments)
	num("change_failure_rate.failed", gc.Failed, wc.Failed)
	flt("change_failure_rate.rate", gc.Rate, wc.Rate)
	str("change_failure_rate.level", gc.Level, wc.Level)

	gr, wr := got.TimeToRestore, want.TimeToRestore
	num("time_to_restore.incidents", gr.Incidents, wr.Incidents)
	num("time_to_restore.restored", gr.Restored, wr.Restored)
	flt("time_to_restore.median_seconds", gr.MedianSeconds, wr.MedianSeconds)
	flt("time_to_restore.p90_seconds", gr.P90Seconds, wr.P90Seconds)
	str("time_to_restore.level", gr.Level, wr.Level)

	// The evidence: matched by id, so that one missing deployment is
	// reported as such rather than as every later one differing.
	gotByID := map[string]doraDeployment{}
	var gotIDs, wantIDs []string
	for _, d := range got.Deployments {
		gotByID[d.ID] = d
		gotIDs = append(gotIDs, d.ID)
	}
	for _, w := range want.Deployments {
		wantIDs = append(wantIDs, w.ID)
		g, ok := gotByID[w.ID]
		if !ok {
			t.Errorf("deployments: %s (%s %s, finished %s) missing", w.ID, w.ProjectPath, w.Environment, w.FinishedAt.Format(time.RFC3339Nano))
			continue
		}
		delete(gotByID, w.ID)
		if g.ProjectPath != w.ProjectPath || g.Environment != w.Environment || g.Ref != w.Ref || g.SHA != w.SHA ||
			!g.FinishedAt.Equal(w.FinishedAt) || g.Failed != w.Failed {
			t.Errorf("deployment %s = {%s %s %s %s %s failed=%v}, want {%s %s %s %s %s failed=%v}", w.ID,
				g.ProjectPath, g.Environment, g.Ref, g.SHA, g.FinishedAt.Format(time.RFC3339Nano), g.Failed,
				w.ProjectPath, w.Environment, w.Ref, w.SHA, w.FinishedAt.Format(time.RFC3339Nano), w.Failed)
		}
		if !slices.Equal(g.Changes, w.Changes) {
			t.Errorf("deployment %s (finished %s) changes:\n got  %v\n want %v", w.ID, w.FinishedAt.Format(time.RFC3339Nano), g.Changes, w.Changes)
		}
		if !slices.Equal(g.Incidents, w.Incidents) {
			t.Errorf("deployment %s (finished %s) incidents:\n got  %v\n want %v", w.ID, w.FinishedAt.Format(time.RFC3339Nano), g.Incidents, w.Incidents)
		}
	}
	for id := range gotByID {
		t.Errorf("deployments: %s is not a production deployment of the window", id)
	}
	if len(gotByID) == 0 && len(gotIDs) == len(wantIDs) && !slices.Equal(gotIDs, wantIDs) {
		t.Errorf("deployments are not newest first:\n got  %v\n want %v", gotIDs, wantIDs)
	}
}

// nearlyEqual reports a == b, or within 1e-9 of each other relatively.
func nearlyEqual(a, b float64) bool {
	return a == b || math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b))
}

func show[T any](p *T) string {
	if p == nil {
		return "null"
	}
	return fmt.Sprint(*p)
}
