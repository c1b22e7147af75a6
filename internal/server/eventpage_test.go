package server_test

import (
	"context"
	"fmt"
	"html"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/metrics"
	"github.com/labtrail/labtrail/internal/server"
	"github.com/labtrail/labtrail/internal/store"
	"github.com/labtrail/labtrail/internal/store/sqlite"
	"github.com/labtrail/labtrail/internal/store/storetest"
)

// mt is the event page tests' clock: minute m after the merge of MR !1,
// 2026-05-04T10:00Z.
func mt(m int) time.Time {
	return time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC).Add(time.Duration(m) * time.Minute)
}

func rfc(t time.Time) string { return t.Format(time.RFC3339) }

// detailWorld is one project, acme/web (10), with:
//
//	environments production (tier production) and staging
//	MR !1 feat-1 → main, merged at 0 by bob, head sha aaa111; !2 merged
//	  into main at -2000 (before the previous deployment); !3 feat-3 →
//	  develop, merged at 10 (another branch)
//	pipelines 100 feat-1 failed at -120 (jobs 1000 build success, 1001 test
//	  failed, both sha aaa111), 101 on refs/merge-requests/1/head success
//	  at -60, 102 main on the merge commit at 5, 103 other-branch at -30,
//	  104 feat-1 at -2500 (after !1's first commit at -3000), 105 feat-1
//	  at -3100 (before it);
//	  job 1002 of pipeline 102 on sha aaa111 too
//	deployments 1 production main success at -1440 (the previous one), 2
//	  production main success at 60 (ships !1), 3 staging main success at
//	  30, 4 production main failed at 90
//	issues 7 an incident opened at 120 (after deployment 2), 8 a bug
func detailWorld(t *testing.T, withMetrics bool, open func(testing.TB) store.Store) *httptest.Server {
	t.Helper()
	st := open(t)
	if err := st.PutProjects(t.Context(), store.Project{ID: 10, Path: "acme/web"}); err != nil {
		t.Fatal(err)
	}
	e := func(kind change.Kind, id, state, title, ref, sha string, at time.Time, attrs map[string]any) change.Event {
		return change.Event{ID: id, Kind: kind, ProjectID: 10, ProjectPath: "acme/web", Title: title, State: state,
			Author: "bob", WebURL: "https://gitlab.example/acme/web/" + id, Ref: ref, SHA: sha,
			CreatedAt: at.Add(-10 * time.Minute), UpdatedAt: at, OccurredAt: at, Source: change.SourcePoll, Attrs: attrs,
			Transitions: []change.Transition{{State: "created", At: at.Add(-10 * time.Minute)}, {State: state, At: at}}}
	}
	mr := func(iid int64, src, dst string, merged time.Time) change.Event {
		ev := e(change.KindMergeRequest, change.MergeRequestID(10, iid), "merged", "MR "+src, src, "aaa111", merged, map[string]any{
			"iid": iid, "source_branch": src, "target_branch": dst, "merged_at": rfc(merged), "merged_by": "carol",
			"labels": []string{"backend"}, "reviewers": []string{"dan"}, "commit_count": 3, "additions": 12, "deletions": 4,
			"first_commit_at": rfc(merged.Add(-50 * time.Hour)),
			"approvals":       []map[string]any{{"user": "dan", "approved_at": rfc(merged.Add(-30 * time.Minute))}},
			"changed_files":   []map[string]any{{"path": "web/main.go", "additions": 12, "deletions": 4}},
		})
		ev.CreatedAt = merged.Add(-5 * time.Hour)
		return ev
	}
	pipeline := func(id int64, ref, sha, status string, at time.Time, failed []map[string]any) change.Event {
		return e(change.KindPipeline, change.PipelineID(10, id), status, "Pipeline on "+ref, ref, sha, at, map[string]any{
			"iid": id, "status": status, "duration": 300, "queued_duration": 12, "source": "push", "failed_jobs": failed})
	}
	job := func(id, pipelineID int64, name, status string, at time.Time) change.Event {
		return e(change.KindJob, change.JobID(10, id), status, name, "feat-1", "aaa111", at, map[string]any{
			"name": name, "stage": "test", "status": status, "pipeline_id": pipelineID, "duration": 42,
			"failure_reason": map[bool]string{true: "script_failure"}[status == "failed"]})
	}
	deploy := func(id int64, env, status string, at time.Time) change.Event {
		return e(change.KindDeployment, change.DeploymentID(10, id), status, "Deployment to "+env, "main", "bbb222", at, map[string]any{
			"iid": id, "environment": env, "status": status, "finished_at": rfc(at),
			"deployable": map[string]any{"id": 900 + id, "name": "deploy", "web_url": "https://gitlab.example/jobs/9", "pipeline_id": 102}})
	}
	issue := func(iid int64, typ string, at time.Time) change.Event {
		ev := e(change.KindIssue, change.IssueID(10, iid), "opened", "Issue "+typ, "", "", at, map[string]any{
			"iid": iid, "issue_type": typ, "labels": []string{}})
		ev.CreatedAt = at
		return ev
	}
	evs := []change.Event{
		e(change.KindEnvironment, change.EnvironmentID(10, 1), "available", "production", "", "", mt(-5000), map[string]any{"name": "production", "tier": "production"}),
		e(change.KindEnvironment, change.EnvironmentID(10, 2), "available", "staging", "", "", mt(-5000), map[string]any{"name": "staging", "tier": "staging"}),
		mr(1, "feat-1", "main", mt(0)),
		mr(2, "feat-2", "main", mt(-2000)),
		mr(3, "feat-3", "develop", mt(10)),
		pipeline(100, "feat-1", "aaa111", "failed", mt(-120), []map[string]any{{"name": "test", "stage": "test", "status": "failed",
			"failure_reason": "script_failure", "duration": 42, "web_url": "https://gitlab.example/jobs/1001"}}),
		pipeline(101, "refs/merge-requests/1/head", "aaa111", "success", mt(-60), nil),
		pipeline(102, "main", "ccc333", "success", mt(5), nil),
		pipeline(103, "other-branch", "ddd444", "success", mt(-30), nil),
		// On the branch since its first commit, long before the MR was
		// opened; and before its first commit (a branch of that name
		// before).
		pipeline(104, "feat-1", "eee555", "success", mt(-2500), nil),
		pipeline(105, "feat-1", "fff666", "success", mt(-3100), nil),
		job(1000, 100, "build", "success", mt(-125)),
		job(1001, 100, "test", "failed", mt(-121)),
		job(1002, 102, "lint", "success", mt(4)),
		deploy(1, "production", "success", mt(-1440)),
		deploy(2, "production", "success", mt(60)),
		deploy(3, "staging", "success", mt(30)),
		deploy(4, "production", "failed", mt(90)),
		issue(7, "incident", mt(120)),
		issue(8, "issue", mt(130)),
	}
	if _, err := st.Upsert(t.Context(), evs...); err != nil {
		t.Fatal(err)
	}
	srv := server.New(st, nil)
	if withMetrics {
		srv.EnableMetrics(metrics.New(st, metrics.Config{}))
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return ts
}

// onBackends runs test on each backend (PostgreSQL when
// LABTRAIL_TEST_POSTGRES_URL is set).
func onBackends(t *testing.T, test func(t *testing.T, open func(testing.TB) store.Store)) {
	for _, be := range storetest.Backends() {
		t.Run(be.Name, func(t *testing.T) { test(t, be.Open) })
	}
}

// section is the part of body in the element with id, to its </section>.
func section(t *testing.T, body, id string) string {
	t.Helper()
	i := strings.Index(body, `id="`+id+`"`)
	if i < 0 {
		t.Fatalf("no #%s on the page", id)
	}
	j := strings.Index(body[i:], "</section>")
	if j < 0 {
		j = len(body) - i
	}
	return body[i : i+j]
}

var eventLink = regexp.MustCompile(`href="/events/([^"]+)"`)

// linked are the event ids s links to, in order, each once.
func linked(s string) []string {
	var ids []string
	for _, m := range eventLink.FindAllStringSubmatch(s, -1) {
		if !slices.Contains(ids, m[1]) {
			ids = append(ids, m[1])
		}
	}
	return ids
}

func eventPage(t *testing.T, ts *httptest.Server, id string) string {
	t.Helper()
	code, body := page(t, ts.URL+"/events/"+id)
	if code != 200 {
		t.Fatalf("%s: status %d: %.3000s", id, code, body)
	}
	return body
}

// A merge request's page: its details, its pipelines (branch, MR refs,
// head commit; not another branch's) and the production deployment that
// shipped it by DORA's rule (not staging's, not a failed one).
func TestEventPageMergeRequest(t *testing.T) {
	onBackends(t, func(t *testing.T, open func(testing.TB) store.Store) {
		ts := detailWorld(t, true, open)
		body := eventPage(t, ts, "mr-10-1")
		attrs := html.UnescapeString(section(t, body, "event-attrs"))
		for _, want := range []string{"feat-1 → main", "Merged by", "carol", "backend", "dan", `datetime="2026-05-04T10:00:00Z"`, "+12 −4", "aaa111"} {
			if !strings.Contains(attrs, want) {
				t.Errorf("details lack %q", want)
			}
		}
		if !strings.Contains(body, `id="event-approvals"`) || !strings.Contains(body, "web/main.go") {
			t.Error("no approvals or files")
		}
		if got, want := linked(section(t, body, "mr-pipelines")), []string{"pipeline-10-101", "pipeline-10-100", "pipeline-10-104"}; !slices.Equal(got, want) {
			t.Errorf("pipelines %v, want %v", got, want)
		}
		if got, want := linked(section(t, body, "mr-deployments")), []string{"deployment-10-2"}; !slices.Equal(got, want) {
			t.Errorf("shipped by %v, want %v", got, want)
		}
		if !strings.Contains(section(t, body, "event-timeline"), "merged") || !strings.Contains(body, `id="event-raw"`) {
			t.Error("no states or raw attributes")
		}
		linksResolve(t, ts, body, 10)
		// !3 targets develop, which no deployment deployed.
		if got := linked(section(t, eventPage(t, ts, "mr-10-3"), "mr-deployments")); len(got) != 0 {
			t.Errorf("!3 shipped by %v", got)
		}
	})
}

// A deployment's page lists the merge requests it shipped and the
// incident that followed it; a staging one what it shipped, but DORA
// counts no incident for it.
func TestEventPageDeployment(t *testing.T) {
	onBackends(t, func(t *testing.T, open func(testing.TB) store.Store) {
		ts := detailWorld(t, true, open)
		body := eventPage(t, ts, "deployment-10-2")
		if got, want := linked(section(t, body, "deployment-changes")), []string{"mr-10-1"}; !slices.Equal(got, want) {
			t.Errorf("shipped %v, want %v", got, want)
		}
		if got, want := linked(section(t, body, "deployment-incidents")), []string{"issue-10-7"}; !slices.Equal(got, want) {
			t.Errorf("incidents %v, want %v", got, want)
		}
		attrs := section(t, body, "event-attrs")
		for _, want := range []string{"production", "yes: a production deployment", `href="/events/pipeline-10-102"`} {
			if !strings.Contains(attrs, want) {
				t.Errorf("details lack %q", want)
			}
		}
		linksResolve(t, ts, body, 5)
		if got := linked(section(t, eventPage(t, ts, "deployment-10-1"), "deployment-changes")); !slices.Equal(got, []string{"mr-10-2"}) {
			t.Errorf("the previous deployment shipped %v, want mr-10-2", got)
		}
		staging := eventPage(t, ts, "deployment-10-3")
		if got := linked(section(t, staging, "deployment-changes")); !slices.Equal(got, []string{"mr-10-2", "mr-10-1"}) {
			t.Errorf("staging shipped %v", got)
		}
		if s := section(t, staging, "deployment-incidents"); !strings.Contains(s, "production deployments only") || len(linked(s)) != 0 {
			t.Errorf("staging incidents: %s", s)
		}
		if s := section(t, eventPage(t, ts, "deployment-10-4"), "deployment-changes"); !strings.Contains(s, "Only a successful") {
			t.Errorf("a failed deployment: %s", s)
		}
	})
}

// An incident's page lists what changed in its project before it was
// opened, as GET /api/v1/changes/before does; a plain issue has no such
// list.
func TestEventPageIncident(t *testing.T) {
	onBackends(t, func(t *testing.T, open func(testing.TB) store.Store) {
		ts := detailWorld(t, true, open)
		body := eventPage(t, ts, "issue-10-7")
		got := linked(section(t, body, "incident-changes"))
		want := []string{"deployment-10-4", "deployment-10-2", "deployment-10-3", "mr-10-3", "pipeline-10-102", "mr-10-1", "pipeline-10-103", "pipeline-10-101", "pipeline-10-100"}
		if !slices.Equal(got, want) {
			t.Errorf("changes before %v, want %v", got, want)
		}
		if got := linked(section(t, body, "incident-deployment")); !slices.Equal(got, []string{"deployment-10-2"}) {
			t.Errorf("followed %v, want deployment-10-2", got)
		}
		linksResolve(t, ts, body, 5)
		if !strings.Contains(body, `href="/api/v1/changes/before?incident=issue-10-7"`) {
			t.Error("no link to the changes as JSON")
		}
		if plain := eventPage(t, ts, "issue-10-8"); strings.Contains(plain, `id="incident-changes"`) {
			t.Error("a plain issue lists changes before it")
		}
	})
}

// A pipeline's page lists its jobs, failed first, and not another
// pipeline's of the same commit; one on a merge request's ref links it.
func TestEventPagePipeline(t *testing.T) {
	onBackends(t, func(t *testing.T, open func(testing.TB) store.Store) {
		ts := detailWorld(t, true, open)
		body := eventPage(t, ts, "pipeline-10-100")
		if got, want := linked(section(t, body, "pipeline-jobs")), []string{"job-10-1001", "job-10-1000"}; !slices.Equal(got, want) {
			t.Errorf("jobs %v, want %v", got, want)
		}
		// The failed jobs are first in the jobs' list, which says why; the
		// pipeline's own list of them is shown only when its jobs are not
		// stored.
		if !strings.Contains(section(t, body, "pipeline-jobs"), "script_failure") || strings.Contains(body, `id="event-failed-jobs"`) {
			t.Error("the jobs' list does not say why the job failed, or the failed jobs are listed twice")
		}
		for _, want := range []string{"5m", "12s", "feat-1"} {
			if !strings.Contains(section(t, body, "event-attrs"), want) {
				t.Errorf("details lack %q", want)
			}
		}
		linksResolve(t, ts, body, 5)
		if got := linked(section(t, eventPage(t, ts, "pipeline-10-101"), "pipeline-mr")); !slices.Equal(got, []string{"mr-10-1"}) {
			t.Errorf("pipeline 101's merge request: %v", got)
		}
		// A job links back to its pipeline.
		if !strings.Contains(eventPage(t, ts, "job-10-1001"), `href="/events/pipeline-10-100"`) {
			t.Error("the job does not link its pipeline")
		}
	})
}

// Without the delivery metrics the page still shows, saying why the DORA
// links are missing.
func TestEventPageWithoutMetrics(t *testing.T) {
	ts := detailWorld(t, false, storetest.Backends()[0].Open)
	if s := section(t, eventPage(t, ts, "deployment-10-2"), "deployment-changes"); !strings.Contains(s, "not set up") {
		t.Errorf("no word on the metrics: %s", s)
	}
	if s := section(t, eventPage(t, ts, "mr-10-1"), "mr-deployments"); !strings.Contains(s, "not set up") {
		t.Errorf("no word on the metrics: %s", s)
	}
}

// An unknown or malformed id is a 404 page naming it, a parameter a 400;
// never a 500.
func TestEventPageErrors(t *testing.T) {
	ts := detailWorld(t, true, storetest.Backends()[0].Open)
	for _, tc := range []struct {
		path string
		code int
		msg  string
	}{
		{"/events/mr-10-999", 404, "has not stored it"},
		{"/events/nonsense", 404, "no event with id"},
		{"/events/mr-x-1", 404, "no event with id"},
		{"/events/pipeline-10-", 404, "no event with id"},
		{"/events/%3Cscript%3E", 404, "no event with id"},
		{"/events/mr-10-1?x=1", 400, "unknown parameter"},
	} {
		code, body := page(t, ts.URL+tc.path)
		if code != tc.code || !strings.Contains(body, tc.msg) {
			t.Errorf("%s: status %d, want %d with %q: %.1500s", tc.path, code, tc.code, tc.msg, body)
		}
		if strings.Contains(body, "<script>") {
			t.Errorf("%s: the id is not escaped", tc.path)
		}
	}
}

// Markup in a title and javascript: URLs, in the event's and in its
// attributes, are shown inert.
func TestEventPageEscapes(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "x.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	at := time.Now().UTC().Add(-time.Hour)
	if _, err := st.Upsert(t.Context(), change.Event{ID: "pipeline-10-1", Kind: change.KindPipeline, ProjectID: 10,
		ProjectPath: "acme/web", Title: `<script>alert(1)</script>`, State: "failed", Ref: `<b>main</b>`,
		WebURL: "javascript:alert(1)", CreatedAt: at, UpdatedAt: at, OccurredAt: at, Source: change.SourcePoll,
		Attrs: map[string]any{"status": "failed", "failed_jobs": []map[string]any{{"name": `<img src=x onerror=alert(1)>`,
			"web_url": "javascript:alert(2)", "status": "failed"}}}}); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(server.New(st, nil))
	defer ts.Close()
	body := eventPage(t, ts, "pipeline-10-1")
	for _, bad := range []string{"<script>alert", "javascript:", "<img src=x", "<b>main"} {
		if strings.Contains(body, bad) {
			t.Errorf("page holds %q", bad)
		}
	}
	if !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Error("the title is not shown escaped")
	}
	if strings.Contains(body, "/timeline?project=") {
		t.Error("a link to the timeline of a project labtrail does not sync")
	}
	// Its jobs are not stored: the failed ones come from the pipeline.
	if !strings.Contains(body, `id="event-failed-jobs"`) || !strings.Contains(body, "&lt;img src=x") {
		t.Error("the pipeline's failed jobs are not listed")
	}
}

// A merge request of many files lists the first 100 and says how many it
// has; one with neither files nor anything related still shows; the
// project links to its timeline under its current path.
func TestEventPageManyFiles(t *testing.T) {
	st := storetest.Backends()[0].Open(t)
	at := mt(0)
	var files []map[string]any
	for i := range 150 {
		files = append(files, map[string]any{"path": fmt.Sprintf("pkg/f%03d.go", i), "additions": 1, "deletions": 0})
	}
	evs := []change.Event{
		{ID: "mr-10-5", Kind: change.KindMergeRequest, ProjectID: 10, ProjectPath: "acme/web", Title: "Big", State: "opened",
			CreatedAt: at, UpdatedAt: at, OccurredAt: at, Source: change.SourcePoll,
			Attrs: map[string]any{"iid": 5, "source_branch": "big", "target_branch": "main", "changed_files": files}},
		{ID: "mr-10-6", Kind: change.KindMergeRequest, ProjectID: 10, ProjectPath: "acme/web", Title: "Bare", State: "opened",
			CreatedAt: at, UpdatedAt: at, OccurredAt: at, Source: change.SourcePoll},
	}
	if _, err := st.Upsert(t.Context(), evs...); err != nil {
		t.Fatal(err)
	}
	// The project was renamed since.
	if err := st.PutProjects(t.Context(), store.Project{ID: 10, Path: "acme/renamed"}); err != nil {
		t.Fatal(err)
	}
	srv := server.New(st, nil)
	srv.EnableMetrics(metrics.New(st, metrics.Config{}))
	ts := httptest.NewServer(srv)
	defer ts.Close()
	body := eventPage(t, ts, "mr-10-5")
	if !strings.Contains(body, "Files changed (100 listed of 150)") || strings.Count(body, "<code>pkg/f") != 100 {
		t.Errorf("files: %d listed", strings.Count(body, "<code>pkg/f"))
	}
	if s := section(t, body, "mr-deployments"); !strings.Contains(s, "not merged") {
		t.Errorf("an open MR's deployments: %s", s)
	}
	if !strings.Contains(body, `href="/timeline?project=acme%2Frenamed"`) {
		t.Error("the project's link is not to its timeline under its current path")
	}
	bare := eventPage(t, ts, "mr-10-6")
	if strings.Contains(bare, `id="event-raw"`) || strings.Contains(bare, `id="event-files"`) {
		t.Error("a merge request without attributes shows raw attributes or files")
	}
}
