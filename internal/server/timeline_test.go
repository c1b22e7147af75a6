package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/server"
	"github.com/labtrail/labtrail/internal/store"
	"github.com/labtrail/labtrail/internal/store/sqlite"
)

var entryID = regexp.MustCompile(`<li class="tl-item" id="ev-([^"]+)">`)

// entries are the ids of the timeline's entries, in the page's order.
func entries(body string) []string {
	var ids []string
	for _, m := range entryID.FindAllStringSubmatch(body, -1) {
		ids = append(ids, html.UnescapeString(m[1]))
	}
	return ids
}

// olderLink is the href of the page's "Older changes" link, "" for none.
func olderLink(t *testing.T, body string) string {
	t.Helper()
	m := regexp.MustCompile(`id="timeline-older" href="([^"]+)"`).FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

type tlEvent struct {
	id      string
	kind    change.Kind
	project int64
	state   string
	author  string
	at      time.Time
}

var tlProjects = []store.Project{{ID: 10, Path: "acme/web"}, {ID: 11, Path: "acme/api"}, {ID: 12, Path: "other/tool"}}

// timelineServer serves a SQLite store holding evs.
func timelineServer(t *testing.T, evs ...tlEvent) (*httptest.Server, store.Store) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "tl.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.PutProjects(t.Context(), tlProjects...); err != nil {
		t.Fatal(err)
	}
	var out []change.Event
	for _, e := range evs {
		path := ""
		for _, p := range tlProjects {
			if p.ID == e.project {
				path = p.Path
			}
		}
		out = append(out, change.Event{ID: e.id, Kind: e.kind, ProjectID: e.project, ProjectPath: path,
			Title: "title of " + e.id, State: e.state, Author: e.author, WebURL: "https://gitlab.example/" + e.id,
			CreatedAt: e.at.Add(-time.Minute), UpdatedAt: e.at, OccurredAt: e.at, Source: change.SourcePoll,
			Transitions: []change.Transition{{State: e.state, At: e.at}}})
	}
	if len(out) > 0 {
		if _, err := st.Upsert(t.Context(), out...); err != nil {
			t.Fatal(err)
		}
	}
	ts := httptest.NewServer(server.New(st, nil))
	t.Cleanup(ts.Close)
	return ts, st
}

// Each filter of the URL changes what the timeline lists, newest first;
// the windows are relative to now, the events placed so that none is at
// a window's edge.
func TestTimelineFilters(t *testing.T) {
	now := time.Now().UTC()
	today := now.Truncate(24 * time.Hour) // in every window, and never after now
	ago := func(days int) time.Time { return now.AddDate(0, 0, -days) }
	ts, _ := timelineServer(t,
		tlEvent{"mr-10-1", change.KindMergeRequest, 10, "merged", "alice", today},
		tlEvent{"pipeline-10-100", change.KindPipeline, 10, "failed", "bob", ago(10)},
		tlEvent{"mr-11-2", change.KindMergeRequest, 11, "opened", "carol", ago(60)},
		tlEvent{"issue-12-3", change.KindIssue, 12, "closed", "alice", ago(200)},
		tlEvent{"deployment-11-5", change.KindDeployment, 11, "success", "bob", ago(20)},
	)
	day := func(t time.Time) string { return t.Format(time.DateOnly) }
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"", []string{"mr-10-1", "pipeline-10-100", "deployment-11-5", "mr-11-2", "issue-12-3"}},
		{"window=all", []string{"mr-10-1", "pipeline-10-100", "deployment-11-5", "mr-11-2", "issue-12-3"}},
		{"kind=merge_request", []string{"mr-10-1", "mr-11-2"}},
		{"kind=merge_request&kind=issue", []string{"mr-10-1", "mr-11-2", "issue-12-3"}},
		{"project=acme/api", []string{"deployment-11-5", "mr-11-2"}},
		{"project=10&project=other/tool", []string{"mr-10-1", "pipeline-10-100", "issue-12-3"}},
		{"group=acme", []string{"mr-10-1", "pipeline-10-100", "deployment-11-5", "mr-11-2"}},
		{"group=other", []string{"issue-12-3"}},
		{"author=alice", []string{"mr-10-1", "issue-12-3"}},
		{"state=failed", []string{"pipeline-10-100"}},
		{"author=bob&kind=deployment", []string{"deployment-11-5"}},
		{"window=today", []string{"mr-10-1"}},
		{"window=week", []string{"mr-10-1"}},
		{"window=7d", []string{"mr-10-1"}},
		{"window=30d", []string{"mr-10-1", "pipeline-10-100", "deployment-11-5"}},
		{"window=90d", []string{"mr-10-1", "pipeline-10-100", "deployment-11-5", "mr-11-2"}},
		{"since=" + day(ago(70)) + "&until=" + day(ago(15)), []string{"deployment-11-5", "mr-11-2"}},
		{"window=custom&since=" + day(ago(300)) + "&until=" + day(ago(100)), []string{"issue-12-3"}},
		{"window=90d&group=acme&kind=merge_request&author=carol&state=opened", []string{"mr-11-2"}},
	} {
		t.Run(tc.query, func(t *testing.T) {
			code, body := page(t, ts.URL+"/timeline?"+tc.query)
			if code != 200 {
				t.Fatalf("status %d: %s", code, body)
			}
			if got := entries(body); !slices.Equal(got, tc.want) {
				t.Errorf("entries %v, want %v", got, tc.want)
			}
			if olderLink(t, body) != "" {
				t.Error("an Older link on the only page")
			}
		})
	}
	// Each entry links to its page, to GitLab, to its author's timeline
	// (keeping the filter) and to its kind's.
	_, body := page(t, ts.URL+"/timeline?project=acme/web")
	for _, want := range []string{`href="/events/mr-10-1"`, `href="https://gitlab.example/mr-10-1"`,
		`href="/timeline?author=alice&amp;project=acme%2Fweb&amp;window=all"`, `href="/timeline?kind=pipeline&amp;project=acme%2Fweb&amp;window=all"`,
		`class="state state-failed"`} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if _, body := page(t, ts.URL+"/timeline"); !strings.Contains(body, "Every change stored, newest first") {
		t.Errorf("the unfiltered timeline does not say so: %s", summary(body))
	}
	if _, body := page(t, ts.URL+"/timeline?kind=issue"); !strings.Contains(body, "Changes the filter selects") {
		t.Errorf("a filtered timeline does not say so: %s", summary(body))
	}
	// The kind field chooses several, and shows them chosen.
	_, body = page(t, ts.URL+"/timeline?kind=issue&kind=pipeline")
	for _, want := range []string{`<select name="kind" multiple`, `<option value="issue" selected>`, `<option value="pipeline" selected>`} {
		if !strings.Contains(body, want) {
			t.Errorf("the kind field of two kinds chosen lacks %s", want)
		}
	}
	if strings.Contains(body, `<option value="merge_request" selected>`) {
		t.Error("a kind not chosen is shown chosen")
	}
}

func summary(body string) string {
	i := strings.Index(body, `id="timeline-summary"`)
	if i < 0 {
		return "(no summary)"
	}
	return body[i:min(len(body), i+300)]
}

// Page after page by the Older link, every event is listed once, newest
// first, with no gap; htmx's "Load more" gets the same rows as a
// fragment with the next pager.
func TestTimelineCursorPaging(t *testing.T) {
	at := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	var evs []tlEvent
	for i := range 30 {
		// Pairs share a time: the cursor breaks ties by id.
		evs = append(evs, tlEvent{fmt.Sprintf("pipeline-10-%d", 100+i), change.KindPipeline, 10, "success", "bob",
			at.Add(time.Duration(i/2) * time.Minute)})
	}
	evs = append(evs, tlEvent{"mr-11-1", change.KindMergeRequest, 11, "merged", "alice", at})
	ts, _ := timelineServer(t, evs...)
	var seen []string
	u := ts.URL + "/timeline?kind=pipeline&limit=7"
	pages := 0
	for u != "" {
		code, body := page(t, u)
		if code != 200 {
			t.Fatalf("%s: status %d", u, code)
		}
		got := entries(body)
		if len(got) == 0 || len(got) > 7 {
			t.Fatalf("%s: %d entries", u, len(got))
		}
		if pages > 0 && !strings.Contains(body, `>Newest</a>`) {
			t.Errorf("page %d has no link back to the newest", pages+1)
		}
		seen = append(seen, got...)
		next := olderLink(t, body)
		if next != "" {
			if !strings.Contains(next, "kind=pipeline") || !strings.Contains(next, "limit=7") {
				t.Fatalf("the Older link loses the filter: %s", next)
			}
			next = ts.URL + next
		}
		u = next
		pages++
	}
	if pages != 5 || len(seen) != 30 {
		t.Fatalf("%d pages, %d entries; want 5 pages of 30", pages, len(seen))
	}
	want := make([]string, 30)
	for i := range 30 {
		want[i] = fmt.Sprintf("pipeline-10-%d", 129-i)
	}
	if !slices.Equal(seen, want) {
		t.Fatalf("paged entries\n got %v\nwant %v", seen, want)
	}

	// htmx: page 2 as a fragment, the rows and the new pager only.
	_, first := page(t, ts.URL+"/timeline?kind=pipeline&limit=7")
	next := olderLink(t, first)
	if !strings.Contains(first, `hx-get="`+html.EscapeString(next)+`"`) {
		t.Errorf("the Older link has no hx-get to the same page")
	}
	code, frag := page(t, ts.URL+next, "HX-Request", "true")
	if code != 200 || strings.Contains(frag, "<html") || strings.Contains(frag, "<nav aria-label=\"Main\"") {
		t.Fatalf("fragment: status %d, a whole page: %.300s", code, frag)
	}
	if got := entries(frag); !slices.Equal(got, want[7:14]) {
		t.Errorf("fragment entries %v, want %v", got, want[7:14])
	}
	if !strings.Contains(frag, `id="timeline-pager" aria-label="Pages" hx-swap-oob="true"`) {
		t.Errorf("the fragment does not replace the pager: %s", frag)
	}
	// Without htmx the same URL is the whole page, so caches keep them
	// apart.
	resp, err := http.Get(ts.URL + next)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if v := resp.Header.Get("Vary"); v != "HX-Request" {
		t.Errorf("Vary %q, want HX-Request", v)
	}
	if _, whole := page(t, ts.URL+next); !strings.Contains(whole, "<html") || !slices.Equal(entries(whole), want[7:14]) {
		t.Errorf("page 2 without htmx is not the whole page")
	}
}

// With nothing stored the timeline says how to sync; with a filter that
// matches nothing, that it matches nothing, and how to reset it.
func TestTimelineEmpty(t *testing.T) {
	ts, _ := timelineServer(t)
	code, body := page(t, ts.URL+"/timeline")
	if code != 200 || !strings.Contains(body, "Nothing stored yet") || !strings.Contains(body, "labtrail sync --once") ||
		!strings.Contains(body, `href="/sync"`) || len(entries(body)) != 0 {
		t.Fatalf("empty store: %d %s", code, body)
	}
	if _, body := page(t, ts.URL+"/timeline?kind=issue&window=7d"); !strings.Contains(body, "Nothing stored yet") {
		t.Errorf("a filter on an empty store does not say nothing is stored")
	}

	ts, _ = timelineServer(t, tlEvent{"mr-10-1", change.KindMergeRequest, 10, "merged", "alice", time.Now().UTC().AddDate(0, 0, -40)})
	code, body = page(t, ts.URL+"/timeline?kind=issue&window=7d")
	if code != 200 || !strings.Contains(body, "No change matches this filter") || !strings.Contains(body, `<a href="/timeline">Reset the filter</a>`) ||
		!strings.Contains(body, `href="/timeline?kind=issue&amp;window=all"`) {
		t.Fatalf("no match: %d %s", code, body)
	}
	if strings.Contains(body, "Nothing stored yet") {
		t.Error("says nothing is stored while something is")
	}
}

// Bad parameters are a 400 page naming the problem, an unknown project or
// group a 404 page; never a 500.
func TestTimelineBadParameters(t *testing.T) {
	ts, _ := timelineServer(t, tlEvent{"mr-10-1", change.KindMergeRequest, 10, "merged", "alice", time.Now().UTC()})
	for _, tc := range []struct {
		query string
		code  int
		msg   string
	}{
		{"kind=bogus", 400, "unknown kind"},
		{"window=forever", 400, "window must be"},
		{"cursor=not-a-cursor", 400, "invalid cursor"},
		{"cursor=a&cursor=b", 400, "once"},
		{"limit=0", 400, "limit must be"},
		{"limit=5000", 400, "limit must be"},
		{"since=yesterday", 400, "since must be"},
		{"since=2026-05-05&until=2026-05-01", 400, "must be after"},
		{"projet=acme/web", 400, "unknown parameter"},
		{"project=nope/nope", 404, "unknown project"},
		{"group=nowhere", 404, "unknown group"},
	} {
		t.Run(tc.query, func(t *testing.T) {
			code, body := page(t, ts.URL+"/timeline?"+tc.query)
			if code != tc.code || !strings.Contains(body, tc.msg) || !strings.Contains(body, `id="error"`) {
				t.Errorf("status %d, want %d with %q: %.2000s", code, tc.code, tc.msg, body)
			}
		})
	}
}

// A title with markup and a javascript: URL are shown inert.
func TestTimelineEscapes(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "x.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	at := time.Now().UTC().Add(-time.Hour)
	if _, err := st.Upsert(t.Context(), change.Event{ID: "mr-10-1", Kind: change.KindMergeRequest, ProjectID: 10,
		ProjectPath: "acme/<b>web</b>", Title: `<script>alert(1)</script>`, State: `"><img src=x>`, Author: `<i>eve</i>`,
		WebURL: "javascript:alert(document.cookie)", CreatedAt: at, UpdatedAt: at, OccurredAt: at, Source: change.SourcePoll}); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(server.New(st, nil))
	defer ts.Close()
	code, body := page(t, ts.URL+"/timeline")
	if code != 200 {
		t.Fatalf("status %d", code)
	}
	for _, bad := range []string{"<script>alert", "javascript:", "<img src=x>", "<b>web", "<i>eve"} {
		if strings.Contains(body, bad) {
			t.Errorf("page holds %q", bad)
		}
	}
	if !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Error("the title is not shown escaped")
	}
	if len(entries(body)) != 1 {
		t.Errorf("entries %v", entries(body))
	}
	// The author link carries the name as a parameter, escaped.
	if !strings.Contains(body, "author="+url.QueryEscape("<i>eve</i>")) {
		t.Error("the author link does not carry the author")
	}
}

// BenchmarkTimelineAndEventPages measures the timeline and event pages
// over real HTTP on the delivery-metrics benchmark's history (1,000,000
// events, see BenchmarkMetricsEndpoints): the timeline's first page, a
// page deep in the history (by a cursor half
// a year back: keyset paging makes it cost what the first does), filtered
// ones, and the event pages that look related events up. Run with
// -benchtime 20x; p50-ms and p95-ms are per page request.
func BenchmarkTimelineAndEventPages(b *testing.B) {
	deep := store.EventCursor(historyStart.AddDate(0, 6, 0), "z")
	targets := []struct{ name, path string }{
		{"timeline", "/timeline"},
		{"timeline-deep", "/timeline?cursor=" + deep},
		{"timeline-kind-project", "/timeline?kind=merge_request&project=" + url.QueryEscape(historyPath(7))},
		{"timeline-author-dates", "/timeline?author=dev3&since=" + historyEnd.AddDate(0, 0, -30).Format(time.DateOnly) + "&until=" + historyEnd.Format(time.DateOnly)},
		{"timeline-group-state-deep", "/timeline?group=" + url.QueryEscape(strings.Split(historyPath(7), "/")[0]) + "&state=failed&cursor=" + deep},
	}
	onHistory(b, func(b *testing.B, base string) {
		// The event pages of a production deployment with changes and an
		// incident, as DORA links them, of the first change it shipped,
		// of its incident, and of a failed pipeline with its jobs.
		type doraDeployment struct {
			ID        string   `json:"id"`
			Changes   []string `json:"changes"`
			Incidents []string `json:"incidents"`
		}
		var dora struct {
			Deployments []doraDeployment `json:"deployments"`
		}
		q := url.Values{"project": {historyPath(7)}, "since": {historyEnd.AddDate(0, 0, -90).Format(time.RFC3339)}, "until": {historyEnd.Format(time.RFC3339)}}
		if err := json.Unmarshal(benchGet(b, &http.Client{}, base+"/api/v1/metrics/dora?"+q.Encode()), &dora); err != nil {
			b.Fatal(err)
		}
		i := slices.IndexFunc(dora.Deployments, func(d doraDeployment) bool { return len(d.Changes) > 0 && len(d.Incidents) > 0 })
		if i < 0 {
			b.Fatal("no production deployment with changes and an incident")
		}
		d := dora.Deployments[i]
		var failed struct {
			Events []struct {
				ID string `json:"id"`
			} `json:"events"`
		}
		q = url.Values{"project": {historyPath(7)}, "kind": {"pipeline"}, "state": {"failed"}, "limit": {"1"}}
		if err := json.Unmarshal(benchGet(b, &http.Client{}, base+"/api/v1/events?"+q.Encode()), &failed); err != nil || len(failed.Events) == 0 {
			b.Fatalf("no failed pipeline: %v", err)
		}
		all := slices.Concat(targets, []struct{ name, path string }{
			{"event-mr", "/events/" + d.Changes[0]},
			{"event-pipeline", "/events/" + failed.Events[0].ID},
			{"event-deployment", "/events/" + d.ID},
			{"event-incident", "/events/" + d.Incidents[0]},
		})
		for _, tg := range all {
			b.Run(tg.name, func(b *testing.B) {
				client, target := &http.Client{}, base+tg.path
				body := string(benchGet(b, client, target))
				if strings.HasPrefix(tg.name, "timeline") && len(entries(body)) == 0 {
					b.Fatalf("%s: an empty timeline", tg.path)
				}
				b.Logf("%s: %d entries, %d links to events, %d bytes", tg.path, len(entries(body)), len(linked(body)), len(body))
				measureLatency(b, func() { benchGet(b, client, target) })
			})
		}
	})
}

// Every link of the timeline answers 200, the entries' pages included:
// a branch whose name has a slash, a tag with a dot, an image digest.
func TestTimelineLinksResolve(t *testing.T) {
	now := time.Now().UTC()
	ts, _ := timelineServer(t,
		tlEvent{change.BranchID(10, "feature/login-form"), change.KindBranch, 10, "pushed", "alice", now.Add(-time.Hour)},
		tlEvent{change.TagID(10, "v1.2.0"), change.KindTag, 10, "tagged", "alice", now.Add(-2 * time.Hour)},
		tlEvent{change.ImageID(10, 3, "v1.2.0", "sha256:"+strings.Repeat("ab", 32)), change.KindImage, 10, "pushed", "bob", now.Add(-3 * time.Hour)},
		tlEvent{change.CommitID(11, strings.Repeat("c", 40)), change.KindCommit, 11, "committed", "carol", now.Add(-4 * time.Hour)},
		tlEvent{"mr-11-2", change.KindMergeRequest, 11, "opened", "carol", now.Add(-5 * time.Hour)},
	)
	_, body := page(t, ts.URL+"/timeline?limit=3")
	linksResolve(t, ts, body, 10)
	for _, id := range []string{change.BranchID(10, "feature/login-form"), change.TagID(10, "v1.2.0"),
		change.ImageID(10, 3, "v1.2.0", "sha256:"+strings.Repeat("ab", 32))} {
		if code, b := page(t, ts.URL+"/events/"+url.PathEscape(id)); code != 200 || !strings.Contains(b, html.EscapeString(id)) {
			t.Errorf("%s: status %d", id, code)
		}
	}
}

// linksResolve checks that every link of body to this server answers 200:
// pages as pages, the API's as JSON; the other pages' links (tested with
// them) and the static files are left out. body has at least that many links.
func linksResolve(t *testing.T, ts *httptest.Server, body string, least int) {
	t.Helper()
	hrefs := regexp.MustCompile(`href="(/[^"]*)"`).FindAllStringSubmatch(body, -1)
	if len(hrefs) < least {
		t.Fatalf("only %d links", len(hrefs))
	}
	for _, m := range hrefs {
		u := html.UnescapeString(m[1])
		if strings.HasPrefix(u, "/api/") {
			if code, _ := get(t, ts.URL+u); code != 200 {
				t.Errorf("%s: status %d", u, code)
			}
			continue
		}
		if strings.HasPrefix(u, "/static/") || u == "/" || u == "/merge-requests" || u == "/pipelines" || u == "/deployments" || u == "/sync" {
			continue // the frame's and other pages', tested with them
		}
		if code, b := page(t, ts.URL+u); code != 200 {
			t.Errorf("%s: status %d: %.300s", u, code, b)
		}
	}
}
