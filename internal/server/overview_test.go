package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/metrics"
	"github.com/labtrail/labtrail/internal/server"
	"github.com/labtrail/labtrail/internal/store/sqlite"
)

// The metrics pages' tests: on deliverySetup's scenario, with what the
// merge-request, pipeline and incident figures need besides, each figure
// a page shows (by its id and data-value) equals the metrics API's answer
// for the same filter, read from the page's own "as JSON" link.

// pagesWindow is the tests' window on the pages: 3 to 5 May 2026 (dates,
// the end inclusive), and the same window as the API takes it.
const (
	pagesWindow = "since=2026-05-03&until=2026-05-05"
	pagesSince  = "2026-05-03T00:00:00Z"
	pagesUntil  = "2026-05-06T00:00:00Z"
)

// pagesSetup is deliverySetup with, besides: in acme/api a merge request
// by bob with its first commit, an approval and a size, merged and then
// shipped by the next day's production deployment; an open merge request
// in acme/web; pipelines on two days with durations and a flaky job; and
// a second incident, closed, in acme/api; and a production deployment
// of acme/web on Saturday 2 May, before the tests' window and week.
func pagesSetup(t *testing.T) (*httptest.Server, *sqlite.Store, *bytes.Buffer) {
	t.Helper()
	ts, st, logs := deliverySetup(t)
	day2 := func(m int) time.Time { return dt(24*60 + m) }
	mr := ev(change.KindMergeRequest, change.MergeRequestID(11, 2), 11, "merged", day2(40), map[string]any{
		"iid": 2, "target_branch": "main", "merged_at": day2(40).Format(time.RFC3339),
		"first_commit_at": day2(-300).Format(time.RFC3339), "additions": 10, "deletions": 5,
		"changed_files": []any{map[string]any{"new_path": "a"}, map[string]any{"new_path": "b"}},
		"approvals":     []any{map[string]any{"user": "carol", "approved_at": day2(10).Format(time.RFC3339)}}})
	mr.Author, mr.CreatedAt = "bob", day2(-200)
	open := ev(change.KindMergeRequest, change.MergeRequestID(10, 3), 10, "opened", dt(-500), map[string]any{"iid": 3})
	open.Title = "Still waiting"
	incident := ev(change.KindIssue, change.IssueID(11, 6), 11, "closed", day2(200), map[string]any{
		"iid": 6, "issue_type": "incident", "closed_at": day2(260).Format(time.RFC3339)})
	incident.CreatedAt, incident.Title = day2(120), "API down"
	pipeline := func(id int64, status string, at time.Time, duration float64) change.Event {
		p := ev(change.KindPipeline, change.PipelineID(11, id), 11, status, at, map[string]any{"status": status, "duration": duration})
		p.CreatedAt = at
		return p
	}
	job := func(id int64, status, reason string, at time.Time) change.Event {
		j := ev(change.KindJob, change.JobID(11, id), 11, status, at, map[string]any{
			"name": "test", "stage": "test", "status": status, "failure_reason": reason, "pipeline_id": 20})
		j.CreatedAt, j.SHA = at, "feed123"
		return j
	}
	evs := []change.Event{mr, open, incident,
		ev(change.KindDeployment, change.DeploymentID(11, 2), 11, "success", day2(90), map[string]any{
			"iid": 2, "environment": "production", "status": "success", "finished_at": day2(90).Format(time.RFC3339)}),
		// Before the window and the week, within the last 7 days.
		ev(change.KindDeployment, change.DeploymentID(10, 9), 10, "success", dt(-48*60), map[string]any{
			"iid": 9, "environment": "production", "status": "success", "finished_at": dt(-48 * 60).Format(time.RFC3339)}),
		pipeline(20, "success", dt(5), 100), pipeline(21, "failed", dt(6), 300),
		pipeline(22, "success", day2(5), 50),
		job(1, "failed", "script_failure", dt(7)), job(2, "success", "", dt(8)),
	}
	if _, err := st.Upsert(t.Context(), evs...); err != nil {
		t.Fatal(err)
	}
	return ts, st, logs
}

// page GETs a page as a browser would, with the headers given as pairs
// of name and value besides.
func page(t *testing.T, u string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("%s: Content-Type %q", u, ct)
	}
	return resp.StatusCode, string(b)
}

// okPage is page, failing the test unless it answers 200.
func okPage(t *testing.T, u string) string {
	t.Helper()
	code, body := page(t, u)
	if code != 200 {
		t.Fatalf("%s: %d\n%s", u, code, body)
	}
	return body
}

var attrRe = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9-]*)="([^"]*)"`)

// attrs are the attributes of the element whose id is id, or nil.
func attrs(doc, id string) map[string]string {
	i := strings.Index(doc, ` id="`+id+`"`)
	if i < 0 {
		return nil
	}
	start := strings.LastIndex(doc[:i], "<")
	end := i + strings.Index(doc[i:], ">")
	out := map[string]string{}
	for _, m := range attrRe.FindAllStringSubmatch(doc[start:end], -1) {
		out[m[1]] = html.UnescapeString(m[2])
	}
	return out
}

// figure is the data-value of the element id: its number, or nil for none.
func figure(t *testing.T, doc, id string) *float64 {
	t.Helper()
	a := attrs(doc, id)
	v, ok := a["data-value"]
	if !ok {
		t.Fatalf("no element with id %q and a data-value", id)
	}
	if v == "" {
		return nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		t.Fatalf("%s: data-value %q: %v", id, v, err)
	}
	return &f
}

// apiFigure is the number at path (keys separated by dots) in the JSON
// answer of u, or nil for null.
func apiFigure(t *testing.T, doc map[string]any, path string) *float64 {
	t.Helper()
	var v any = doc
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%s: %v is not an object", path, v)
		}
		if v, ok = m[k]; !ok {
			t.Fatalf("%s: no %q in %v", path, k, m)
		}
	}
	if v == nil {
		return nil
	}
	f, ok := v.(float64)
	if !ok {
		t.Fatalf("%s: %v is not a number", path, v)
	}
	return &f
}

func sameFigure(t *testing.T, what string, page, api *float64) {
	t.Helper()
	switch {
	case page == nil && api == nil:
	case page == nil || api == nil || *page != *api:
		t.Errorf("%s: the page shows %v, the API answers %v", what, show(page), show(api))
	}
}

// asJSON follows the page's "as JSON" link and returns the answer, and
// the link.
func asJSON(t *testing.T, base, doc string) (map[string]any, string) {
	t.Helper()
	link := attrs(doc, "as-json")["href"]
	if !strings.HasPrefix(link, "/api/v1/metrics/") {
		t.Fatalf("the page's as-JSON link is %q", link)
	}
	return apiAnswer(t, base+link), link
}

func apiAnswer(t *testing.T, u string) map[string]any {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%s: %d %v", u, resp.StatusCode, err)
	}
	return m
}

var hrefRe = regexp.MustCompile(`href="(/[^"]*)"`)

// localLinksResolve GETs every link of doc to this server and wants 200.
// The timeline, detail and sync pages are built beside these; their
// links are left to their tests and the browser tests.
func localLinksResolve(t *testing.T, base, doc string) {
	t.Helper()
	seen := map[string]bool{}
	for _, m := range hrefRe.FindAllStringSubmatch(doc, -1) {
		u := html.UnescapeString(m[1])
		if seen[u] || strings.HasPrefix(u, "/events/") || strings.HasPrefix(u, "/timeline") || strings.HasPrefix(u, "/sync") {
			continue
		}
		seen[u] = true
		req, _ := http.NewRequest("GET", base+u, nil)
		req.Header.Set("Accept", "text/html")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("link %s: %d", u, resp.StatusCode)
		}
	}
	if len(seen) < 5 {
		t.Errorf("only %d local links on the page", len(seen))
	}
}

// The overview's four keys, their trend, the week's counts and the latest
// incidents are the metrics API's for the same projects and window.
func TestOverviewFiguresAreTheAPIs(t *testing.T) {
	ts, _, logs := pagesSetup(t)
	for _, filter := range []string{"", "project=acme/api&", "group=acme&", "project=acme/web&project=other/tool&"} {
		t.Run(filter, func(t *testing.T) {
			doc := okPage(t, ts.URL+"/?"+filter+pagesWindow)
			api, link := asJSON(t, ts.URL, doc)
			if want := "since=" + url.QueryEscape(pagesSince) + "&until=" + url.QueryEscape(pagesUntil); !strings.Contains(link, want) {
				t.Errorf("as-JSON link %s is not over the page's window (%s)", link, want)
			}
			keys := map[string]string{
				"deployment-frequency": "deployment_frequency.per_day",
				"lead-time":            "lead_time.median_seconds",
				"change-failure-rate":  "change_failure_rate.rate",
				"time-to-restore":      "time_to_restore.median_seconds",
			}
			for id, path := range keys {
				sameFigure(t, id, figure(t, doc, "dora-"+id), apiFigure(t, api, path))
				level, _ := api[strings.Split(path, ".")[0]].(map[string]any)["level"].(string)
				if got := html.UnescapeString(textOf(doc, "dora-"+id+"-level")); got != level && !(level == "" && got == "no data") {
					t.Errorf("%s level: page %q, API %q", id, got, level)
				}
			}
			until, _ := time.Parse(time.RFC3339, pagesUntil)
			for _, n := range []int{7, 30, 90} {
				q := url.Values{"since": {until.AddDate(0, 0, -n).Format(time.RFC3339)}, "until": {pagesUntil}}
				for k, v := range pageFilterParams(filter) {
					q[k] = v
				}
				api := apiAnswer(t, ts.URL+"/api/v1/metrics/dora?"+q.Encode())
				for id, path := range keys {
					sameFigure(t, id+" over "+strconv.Itoa(n)+"d", figure(t, doc, "dora-"+id+"-"+strconv.Itoa(n)+"d"), apiFigure(t, api, path))
				}
			}
			// The week: from Monday 4 May to the window's end.
			q := pageFilterParams(filter)
			q.Set("since", "2026-05-04T00:00:00Z")
			q.Set("until", pagesUntil)
			sameFigure(t, "merged this week", figure(t, doc, "week-merged"),
				apiFigure(t, apiAnswer(t, ts.URL+"/api/v1/metrics/merge-requests?"+q.Encode()), "merged"))
			sameFigure(t, "deployments this week", figure(t, doc, "week-deployments"),
				apiFigure(t, apiAnswer(t, ts.URL+"/api/v1/metrics/dora?"+q.Encode()), "deployment_frequency.count"))
			failed := apiAnswer(t, ts.URL+"/api/v1/metrics/pipelines?"+q.Encode())["statuses"].(map[string]any)["failed"]
			if f := figure(t, doc, "week-failed-pipelines"); f == nil || (failed == nil && *f != 0) || (failed != nil && *f != failed.(float64)) {
				t.Errorf("failed pipelines this week: page %v, API %v", show(f), failed)
			}
			localLinksResolve(t, ts.URL, doc)
		})
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("errors logged:\n%s", logs)
	}
}

// pageFilterParams are the project and group parameters of a test's
// filter.
func pageFilterParams(filter string) url.Values {
	q, _ := url.ParseQuery(strings.TrimSuffix(filter, "&"))
	return q
}

// textOf is the text of the element id up to its first child or end.
func textOf(doc, id string) string {
	i := strings.Index(doc, ` id="`+id+`"`)
	if i < 0 {
		return ""
	}
	i += strings.Index(doc[i:], ">") + 1
	return strings.TrimSpace(doc[i : i+strings.Index(doc[i:], "<")])
}

// The filters change the figures: what a project's page shows is that
// project's alone, and a window without the data shows none.
func TestOverviewFiltersChangeFigures(t *testing.T) {
	ts, _, _ := pagesSetup(t)
	all := okPage(t, ts.URL+"/?"+pagesWindow)
	api := okPage(t, ts.URL+"/?project=acme/api&"+pagesWindow)
	// Production deployments over the 3 days: acme/web, acme/api twice,
	// acme/sub/svc; acme/api alone has 2.
	if f := figure(t, all, "dora-deployment-frequency"); f == nil || *f != 4.0/3 {
		t.Errorf("all projects: %v deployments a day, want 4/3", show(f))
	}
	if f := figure(t, api, "dora-deployment-frequency"); f == nil || *f != 2.0/3 {
		t.Errorf("acme/api: %v deployments a day, want 2/3", show(f))
	}
	if f := figure(t, api, "week-merged"); f == nil || *f != 2 {
		t.Errorf("acme/api merged this week: %v, want 2", show(f))
	}
	// The last 7 days hold acme/web's deployment of Saturday; the week
	// from Monday does not.
	if f := figure(t, all, "week-deployments"); f == nil || *f != 4 {
		t.Errorf("deployments this week: %v, want 4", show(f))
	}
	if f := figure(t, all, "dora-deployment-frequency-7d"); f == nil || *f != 5.0/7 {
		t.Errorf("deployments a day over the last 7 days: %v, want 5/7", show(f))
	}
	before := okPage(t, ts.URL+"/?since=2026-04-01&until=2026-04-30")
	for _, id := range []string{"dora-deployment-frequency", "dora-lead-time", "dora-change-failure-rate", "dora-time-to-restore"} {
		if f := figure(t, before, id); f != nil {
			t.Errorf("April: %s = %v, want none", id, *f)
		}
	}
	if !strings.Contains(before, `id="no-incidents"`) || strings.Contains(all, `id="no-incidents"`) {
		t.Error("the incidents' empty state is wrong")
	}
}

// The latest incidents, newest first, each with the changes before it as
// GET /api/v1/changes/before lists them.
func TestOverviewIncidents(t *testing.T) {
	ts, _, _ := pagesSetup(t)
	doc := okPage(t, ts.URL+"/?"+pagesWindow)
	a, b := strings.Index(doc, `id="incident-issue-11-6"`), strings.Index(doc, `id="incident-issue-10-5"`)
	if a < 0 || b < 0 || a > b {
		t.Fatalf("want incidents issue-11-6 then issue-10-5 (at %d, %d)", a, b)
	}
	if !strings.Contains(doc[a:b], "API down") {
		t.Error("the incident's title is not shown")
	}
	section := doc[b:]
	section = section[:strings.Index(section, "</article>")]
	api := apiAnswer(t, ts.URL+"/api/v1/changes/before?incident=issue-10-5")
	changes := api["changes"].([]any)
	if len(changes) < 5 {
		t.Fatalf("the scenario has %d changes before issue-10-5, want at least 5", len(changes))
	}
	var want, got []string
	for _, c := range changes[:5] {
		want = append(want, "/events/"+c.(map[string]any)["id"].(string))
	}
	for _, m := range regexp.MustCompile(`href="(/events/[^"]+)"`).FindAllStringSubmatch(section, -1) {
		if m[1] != "/events/issue-10-5" {
			got = append(got, html.UnescapeString(m[1]))
		}
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("changes before issue-10-5:\n page %v\n API  %v", got, want)
	}
	if !strings.Contains(section, `href="/api/v1/changes/before?incident=issue-10-5"`) {
		t.Error("no link to the incident's changes as JSON")
	}
}

// Pages that have nothing to show say what to do: no project synced, no
// production environment, webhooks off, metrics not set up.
func TestOverviewEmptyStates(t *testing.T) {
	ts, _, _ := pagesSetup(t)
	doc := okPage(t, ts.URL+"/?project=other/tool&"+pagesWindow)
	for _, id := range []string{"no-production", "webhooks-off", "no-incidents"} {
		if !strings.Contains(doc, `id="`+id+`"`) {
			t.Errorf("other/tool: no %s", id)
		}
	}
	if doc := okPage(t, ts.URL+"/?project=acme/web&"+pagesWindow); strings.Contains(doc, `id="no-production"`) {
		t.Error("acme/web has a production environment")
	}

	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "empty.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv := server.New(st, slog.New(slog.DiscardHandler))
	srv.EnableMetrics(metrics.New(st, metrics.Config{}))
	empty := httptest.NewServer(srv)
	t.Cleanup(empty.Close)
	for _, p := range []string{"/", "/merge-requests", "/pipelines", "/deployments"} {
		if doc := okPage(t, empty.URL+p); !strings.Contains(doc, `id="no-projects"`) || !strings.Contains(doc, "GITLAB_TOKEN") {
			t.Errorf("%s on an empty store does not say how to sync", p)
		}
	}

	off := httptest.NewServer(server.New(st, slog.New(slog.DiscardHandler)))
	t.Cleanup(off.Close)
	for _, p := range []string{"/", "/merge-requests", "/pipelines", "/deployments"} {
		if doc := okPage(t, off.URL+p); !strings.Contains(doc, `id="metrics-off"`) {
			t.Errorf("%s without metrics does not say so", p)
		}
	}
}

// Bad parameters are a 400 page naming the problem, an unknown project or
// group a 404 page, on every metrics page; nothing is logged as an error.
func TestMetricsPagesBadParameters(t *testing.T) {
	ts, _, logs := pagesSetup(t)
	for _, tc := range []struct {
		path string
		code int
		msg  string
	}{
		{"/?kind=pipeline", 400, `unknown parameter &#34;kind&#34;`},
		{"/?window=year", 400, "window must be"},
		{"/?window=all", 400, "window all is not offered"},
		{"/?bucket=day", 400, `unknown parameter &#34;bucket&#34;`},
		{"/?since=2026-05-05&until=2026-05-01", 400, "must be after its start"},
		{"/?since=someday", 400, "since"},
		{"/?since=2199-01-01", 400, "after it ends"},
		{"/?project=nope/nope", 404, `unknown project &#34;nope/nope&#34;`},
		{"/?group=nope", 404, `unknown group &#34;nope&#34;`},
		{"/merge-requests?bucket=year", 400, "bucket must be day, week or month"},
		{"/merge-requests?since=1990-01-01&until=2026-01-01&bucket=day", 400, "buckets"},
		{"/merge-requests?project=nope", 404, "unknown project"},
		{"/pipelines?environment=production", 400, `unknown parameter &#34;environment&#34;`},
		{"/pipelines?group=zzz", 404, "unknown group"},
		{"/deployments?bucket=week", 400, `unknown parameter &#34;bucket&#34;`},
		{"/deployments?environment=staging", 404, `unknown environment &#34;staging&#34;`},
		{"/deployments?project=12345", 404, "unknown project"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			code, doc := page(t, ts.URL+tc.path)
			if code != tc.code || !strings.Contains(doc, tc.msg) || !strings.Contains(doc, `id="error"`) {
				t.Errorf("got %d, want %d with %q:\n%s", code, tc.code, tc.msg, doc)
			}
		})
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("bad parameters logged errors:\n%s", logs)
	}
}

// An incident stored with an unsafe URL (from before URLs were checked
// where events are made) is shown without it.
func TestOverviewUnsafeStoredURL(t *testing.T) {
	ts, st, _ := pagesSetup(t)
	e := ev(change.KindIssue, change.IssueID(13, 9), 13, "opened", dt(300), map[string]any{"iid": 9, "issue_type": "incident"})
	e.WebURL, e.CreatedAt = "javascript:alert(1)", dt(300)
	if _, err := st.Upsert(t.Context(), e); err != nil {
		t.Fatal(err)
	}
	doc := okPage(t, ts.URL+"/?"+pagesWindow)
	if !strings.Contains(doc, `id="incident-issue-13-9"`) {
		t.Fatal("the incident is not listed")
	}
	if strings.Contains(doc, "javascript") {
		t.Error("the page links to javascript:")
	}
}

// Without a window a page is over the last 30 days to now, in whole
// seconds, and its as-JSON link asks the API for exactly that window.
func TestMetricsPagesDefaultWindow(t *testing.T) {
	ts, _, _ := pagesSetup(t)
	for _, p := range []string{"/", "/merge-requests", "/pipelines", "/deployments"} {
		before := time.Now().UTC().Truncate(time.Second)
		doc := okPage(t, ts.URL+p)
		after := time.Now().UTC()
		link, err := url.Parse(attrs(doc, "as-json")["href"])
		if err != nil {
			t.Fatal(err)
		}
		since, err1 := time.Parse(time.RFC3339, link.Query().Get("since"))
		until, err2 := time.Parse(time.RFC3339, link.Query().Get("until"))
		if err1 != nil || err2 != nil || until.Before(before) || until.After(after) || !since.Equal(until.AddDate(0, 0, -30)) {
			t.Errorf("%s: as-JSON link %s is not the last 30 days to now", p, link)
		}
		if attrs(doc, "window-since")["data-value"] != since.Format(time.RFC3339) || attrs(doc, "window-until")["data-value"] != until.Format(time.RFC3339) {
			t.Errorf("%s: the window shown is not the link's", p)
		}
		apiAnswer(t, ts.URL+link.String())
	}
}
