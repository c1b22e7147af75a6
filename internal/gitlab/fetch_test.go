package gitlab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
)

// routeFake serves fixed JSON per path, paged a few items at a time so
// that paging is exercised without hundreds of objects, and fails the test
// on any query parameter a route does not allow or on a wrong value.
type routeFake struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	routes map[string]*route
	seen   []string // "path?query" in order
}

type route struct {
	items   []any             // a listing, served pageSize at a time
	one     any               // a single object
	status  int               // an error status with body
	body    any               // the error body
	want    map[string]string // parameters that must have these values
	allowed []string          // other parameters allowed besides per_page, page
	keyset  bool              // page with Link rel="next" instead of X-Next-Page
	size    int               // page size, if not pageSize
}

const pageSize = 2

func newRouteFake(t *testing.T) *routeFake {
	f := &routeFake{t: t, routes: map[string]*route{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *routeFake) add(path string, r *route) { f.routes[path] = r }

// client talks REST only: these tests are about the REST endpoints; the
// GraphQL path has its own (graphql_test.go).
func (f *routeFake) client(t *testing.T, mod ...func(*Config)) *Client {
	rest := func(c *Config) { c.GraphQL = GraphQLOff }
	return newClient(t, f.srv.URL, new(syncBuffer), append([]func(*Config){rest}, mod...)...)
}

func (f *routeFake) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.seen)
}

// count is how many requests went to path (query ignored).
func (f *routeFake) count(path string) int {
	n := 0
	for _, s := range f.requests() {
		if strings.SplitN(s, "?", 2)[0] == path {
			n++
		}
	}
	return n
}

func (f *routeFake) serve(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.EscapedPath(), "/api/v4")
	f.mu.Lock()
	f.seen = append(f.seen, path+"?"+r.URL.RawQuery)
	rt := f.routes[path]
	f.mu.Unlock()
	if r.Header.Get("PRIVATE-TOKEN") != testToken {
		writeJSON(w, 401, map[string]string{"message": "401 Unauthorized"})
		return
	}
	if rt == nil {
		f.t.Errorf("unexpected request %s?%s", path, r.URL.RawQuery)
		writeJSON(w, 404, map[string]string{"message": "404 Not found"})
		return
	}
	q := r.URL.Query()
	for k, v := range q {
		_, wanted := rt.want[k]
		if !wanted && !slices.Contains(rt.allowed, k) && k != "per_page" && k != "page" && !(rt.keyset && (k == "id_after" || k == "pagination" || k == "order_by" || k == "sort")) {
			f.t.Errorf("%s: unexpected parameter %s=%v", path, k, v)
		}
	}
	for k, v := range rt.want {
		if q.Get(k) != v {
			f.t.Errorf("%s: parameter %s=%q, want %q", path, k, q.Get(k), v)
		}
	}
	switch {
	case rt.status != 0:
		writeJSON(w, rt.status, rt.body)
	case rt.one != nil:
		writeJSON(w, 200, rt.one)
	default:
		page := 1
		if rt.keyset {
			if a := q.Get("id_after"); a != "" {
				page, _ = strconv.Atoi(a)
			}
		} else if p := q.Get("page"); p != "" {
			page, _ = strconv.Atoi(p)
		}
		size := pageSize
		if rt.size > 0 {
			size = rt.size
		}
		lo, hi := min((page-1)*size, len(rt.items)), min(page*size, len(rt.items))
		if hi < len(rt.items) {
			if rt.keyset {
				next := *r.URL
				nq := next.Query()
				nq.Set("id_after", strconv.Itoa(page+1))
				next.RawQuery = nq.Encode()
				next.Scheme, next.Host = "http", r.Host
				w.Header().Set("Link", fmt.Sprintf(`<%s>; rel="next"`, next.String()))
			} else {
				w.Header().Set("X-Next-Page", strconv.Itoa(page+1))
			}
		}
		out := rt.items[lo:hi]
		if out == nil {
			out = []any{}
		}
		writeJSON(w, 200, out)
	}
}

// raw decodes a fixture into generic JSON values to serve.
func raw(t *testing.T, name string) []any {
	t.Helper()
	var v []any
	if err := json.Unmarshal(fixture(t, name), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func collect(t *testing.T, c *Client, kind change.Kind, p Project, since time.Time, opts FetchOptions) ([]Page, error) {
	t.Helper()
	var pages []Page
	err := c.Fetch(context.Background(), kind, p, since, opts, func(pg Page) error {
		if pg.Kind != kind {
			t.Errorf("page kind %s, want %s", pg.Kind, kind)
		}
		for _, e := range pg.Events {
			if err := e.Validate(); err != nil {
				t.Errorf("invalid event: %v", err)
			}
		}
		pages = append(pages, pg)
		return nil
	})
	return pages, err
}

func ids(pages []Page, kind change.Kind) []string {
	var out []string
	for _, p := range pages {
		for _, e := range p.Events {
			if e.Kind == kind {
				out = append(out, e.ID)
			}
		}
	}
	return out
}

var proj = Project{ID: 7, Path: "group/app", WebURL: "https://gitlab.example.com/group/app", DefaultBranch: "main"}

func mrJSON(id, iid int, updated string) map[string]any {
	return map[string]any{"id": id, "iid": iid, "project_id": 7, "title": fmt.Sprintf("MR %d", iid), "state": "opened",
		"created_at": "2024-01-01T00:00:00Z", "updated_at": updated, "author": map[string]any{"username": "alice"},
		"web_url": fmt.Sprintf("https://gitlab.example.com/group/app/-/merge_requests/%d", iid)}
}

func TestFetchMergeRequestsWithDetails(t *testing.T) {
	f := newRouteFake(t)
	f.add("/projects/7/merge_requests", &route{
		items: []any{mrJSON(101, 1, "2024-03-01T10:00:00.5Z"), mrJSON(102, 2, "2024-03-01T11:00:00Z")},
		want:  map[string]string{"state": "all", "order_by": "updated_at", "sort": "asc", "updated_after": "2024-03-01T09:00:00Z"},
	})
	for _, iid := range []int{1, 2} {
		base := fmt.Sprintf("/projects/7/merge_requests/%d", iid)
		f.add(base+"/approvals", &route{one: map[string]any{"approved": true, "approved_by": []any{
			map[string]any{"user": map[string]any{"username": "bob"}, "approved_at": "2024-03-01T09:30:00Z"}}}})
		f.add(base+"/diffs", &route{items: []any{
			map[string]any{"old_path": "a", "new_path": "a", "diff": "@@ -1 +1,2 @@\n-x\n+y\n+z\n"},
			map[string]any{"old_path": "b", "new_path": "b", "new_file": true, "diff": "@@ -0,0 +1 @@\n+b\n"},
			map[string]any{"old_path": "c", "new_path": "c", "deleted_file": true, "diff": "@@ -1 +0,0 @@\n-c\n"},
		}})
		f.add(base+"/commits", &route{items: []any{
			map[string]any{"id": "c2", "authored_date": "2024-02-02T00:00:00Z"},
			map[string]any{"id": "c1", "authored_date": "2024-02-01T00:00:00Z"},
		}})
		f.add(base+"/notes", &route{
			items: []any{map[string]any{"id": 1000 + iid, "body": "LGTM", "author": map[string]any{"username": "bob"},
				"created_at": "2024-03-01T09:00:00Z", "updated_at": "2024-03-01T09:10:00Z", "noteable_type": "MergeRequest", "noteable_iid": iid}},
			want: map[string]string{"order_by": "created_at", "sort": "asc"},
		})
	}
	c := f.client(t)
	pages, err := collect(t, c, change.KindMergeRequest, proj, ts("2024-03-01T09:00:00.7Z"), FetchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(pages, change.KindMergeRequest); !slices.Equal(got, []string{"mr-7-1", "mr-7-2"}) {
		t.Errorf("mrs %v", got)
	}
	if got := ids(pages, change.KindNote); !slices.Equal(got, []string{"note-7-1001", "note-7-1002"}) {
		t.Errorf("notes %v", got)
	}
	last := pages[len(pages)-1]
	if !last.Cursor.Equal(ts("2024-03-01T11:00:00Z")) {
		t.Errorf("cursor %s", last.Cursor)
	}
	mr := pages[0].Events[0]
	if mr.Attrs["additions"] != 3 || mr.Attrs["deletions"] != 2 || mr.Attrs["commit_count"] != 2 ||
		mr.Attrs["first_commit_at"] != "2024-02-01T00:00:00Z" || mr.Attrs["approved"] != true {
		t.Errorf("attrs %v", mr.Attrs)
	}
	// Diffs, commits and notes each fit on two pages of the fake.
	for _, iid := range []int{1, 2} {
		base := fmt.Sprintf("/projects/7/merge_requests/%d", iid)
		if f.count(base+"/approvals") != 1 || f.count(base+"/diffs") != 2 || f.count(base+"/commits") != 1 || f.count(base+"/notes") != 1 {
			t.Errorf("detail requests for !%d: %v", iid, f.requests())
		}
	}
	if int(c.Requests()) != len(f.requests()) {
		t.Errorf("Requests() %d, served %d", c.Requests(), len(f.requests()))
	}
}

func TestFetchMergeRequestDetailGoneIsNotFatal(t *testing.T) {
	f := newRouteFake(t)
	f.add("/projects/7/merge_requests", &route{items: []any{mrJSON(101, 1, "2024-03-01T10:00:00Z")},
		want: map[string]string{"state": "all", "order_by": "updated_at", "sort": "asc"}})
	gone := &route{status: 404, body: map[string]string{"message": "404 Not found"}, allowed: []string{"order_by", "sort"}}
	for _, d := range []string{"approvals", "diffs", "commits", "notes"} {
		f.add("/projects/7/merge_requests/1/"+d, gone)
	}
	pages, err := collect(t, f.client(t), change.KindMergeRequest, proj, time.Time{}, FetchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mr := pages[0].Events[0]
	if _, ok := mr.Attrs["changed_files"]; ok || mr.ID != "mr-7-1" {
		t.Errorf("MR without details: %+v", mr)
	}
}

func TestFetchPipelinesWithDetailsAndAllJobs(t *testing.T) {
	f := newRouteFake(t)
	f.add("/projects/7/pipelines", &route{
		items: []any{
			map[string]any{"id": 46, "iid": 11, "status": "success", "ref": "main", "created_at": "2024-03-01T10:00:00Z", "updated_at": "2024-03-01T10:05:00Z"},
			map[string]any{"id": 47, "iid": 12, "status": "running", "ref": "main", "created_at": "2024-03-01T10:01:00Z", "updated_at": "2024-03-01T10:06:00Z"},
		},
		want: map[string]string{"order_by": "updated_at", "sort": "asc"},
	})
	f.add("/projects/7/pipelines/46", &route{one: map[string]any{"id": 46, "iid": 11, "status": "success", "ref": "main",
		"created_at": "2024-03-01T10:00:00Z", "updated_at": "2024-03-01T10:05:00Z", "started_at": "2024-03-01T10:00:10Z",
		"finished_at": "2024-03-01T10:04:59Z", "duration": 289, "queued_duration": 10, "user": map[string]any{"username": "alice"}}})
	f.add("/projects/7/pipelines/47", &route{one: map[string]any{"id": 47, "iid": 12, "status": "running", "ref": "main",
		"created_at": "2024-03-01T10:01:00Z", "updated_at": "2024-03-01T10:06:00Z", "started_at": "2024-03-01T10:01:05Z"}})
	f.add("/projects/7/pipelines/46/jobs", &route{items: []any{
		map[string]any{"id": 1, "name": "build", "status": "success", "created_at": "2024-03-01T10:00:00Z", "started_at": "2024-03-01T10:00:10Z",
			"finished_at": "2024-03-01T10:02:00Z", "pipeline": map[string]any{"id": 46}},
	}})
	f.add("/projects/7/pipelines/47/jobs", &route{items: []any{
		map[string]any{"id": 2, "name": "test", "status": "running", "created_at": "2024-03-01T10:01:00Z", "started_at": "2024-03-01T10:01:05Z", "pipeline": map[string]any{"id": 47}},
		map[string]any{"id": 3, "name": "deploy", "status": "created", "created_at": "2024-03-01T10:01:00Z", "pipeline": map[string]any{"id": 47}},
	}})
	pages, err := collect(t, f.client(t), change.KindPipeline, proj, time.Time{}, FetchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(pages, change.KindJob); !slices.Equal(got, []string{"job-7-1", "job-7-2", "job-7-3"}) {
		t.Errorf("jobs %v", got)
	}
	pl := pages[0].Events[0]
	if pl.ID != "pipeline-7-46" || pl.Attrs["duration"] != int64(289) || pl.Attrs["finished_at"] != "2024-03-01T10:04:59Z" || pl.Author != "alice" {
		t.Errorf("pipeline %+v", pl)
	}
	for _, e := range pages[0].Events {
		if e.ID == "job-7-3" && !e.UpdatedAt.Equal(ts("2024-03-01T10:01:00Z")) {
			t.Errorf("job 3 updated_at %s", e.UpdatedAt)
		}
	}
}

func commitJSON(sha, committed string) map[string]any {
	return map[string]any{"id": sha, "title": "commit " + sha, "message": "commit " + sha + "\n\nbody", "author_name": "Alice",
		"author_email": "alice@example.com", "authored_date": committed, "committed_date": committed,
		"parent_ids": []string{}, "stats": map[string]any{"additions": 1, "deletions": 2, "total": 3},
		"web_url": "https://gitlab.example.com/group/app/-/commit/" + sha}
}

func TestFetchCommitsNewestFirstHoldsCursor(t *testing.T) {
	f := newRouteFake(t)
	since := ts("2024-03-01T00:00:00.5Z")
	f.add("/projects/7/repository/commits", &route{
		// GitLab's order: newest first. "old" is inside since's
		// truncated second and must be dropped.
		items: []any{commitJSON("e", "2024-03-05T00:00:00Z"), commitJSON("d", "2024-03-04T00:00:00Z"),
			commitJSON("c", "2024-03-03T00:00:00Z"), commitJSON("b", "2024-03-02T00:00:00Z"), commitJSON("old", "2024-03-01T00:00:00Z")},
		want:    map[string]string{"with_stats": "true", "since": "2024-03-01T00:00:00Z"},
		allowed: []string{"ref_name"},
	})
	c := f.client(t)
	pages, err := collect(t, c, change.KindCommit, proj, since, FetchOptions{Branches: []string{"main", "release"}})
	if err != nil {
		t.Fatal(err)
	}
	// The fake serves the same commits for both branches: each is
	// emitted once, found on main.
	if got := ids(pages, change.KindCommit); !slices.Equal(got, []string{"commit-7-e", "commit-7-d", "commit-7-c", "commit-7-b"}) {
		t.Errorf("commits %v", got)
	}
	for i, p := range pages {
		want := since
		if i == len(pages)-1 {
			want = ts("2024-03-05T00:00:00Z")
		}
		if !p.Cursor.Equal(want) {
			t.Errorf("page %d cursor %s, want %s", i, p.Cursor, want)
		}
		for _, e := range p.Events {
			if e.Ref != "main" || e.Attrs["branch"] != "main" {
				t.Errorf("%s found on %q", e.ID, e.Ref)
			}
		}
	}
	var refs []string
	for _, r := range f.requests() {
		u, _ := url.Parse(r)
		refs = append(refs, u.Query().Get("ref_name"))
	}
	if !slices.Equal(refs, []string{"main", "main", "main", "release", "release", "release"}) {
		t.Errorf("ref_name per request %v", refs)
	}
}

func TestFetchCommitsOfDeletedBranchAreSkipped(t *testing.T) {
	f := newRouteFake(t)
	f.add("/projects/7/repository/commits", &route{items: []any{commitJSON("a", "2024-03-05T00:00:00Z")},
		want: map[string]string{"with_stats": "true"}, allowed: []string{"ref_name"}})
	c := f.client(t)
	// The fake cannot vary by query; a handler in front of it answers
	// 404 for the deleted branch.
	inner := f.srv.Config.Handler
	f.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("ref_name") == "gone" {
			writeJSON(w, 404, map[string]string{"message": "404 Ref Not Found"})
			return
		}
		inner.ServeHTTP(w, r)
	})
	pages, err := collect(t, c, change.KindCommit, proj, time.Time{}, FetchOptions{Branches: []string{"gone", "main"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(pages, change.KindCommit); !slices.Equal(got, []string{"commit-7-a"}) {
		t.Errorf("commits %v", got)
	}
}

func TestFetchIssuesWithNotes(t *testing.T) {
	f := newRouteFake(t)
	f.add("/projects/7/issues", &route{items: raw(t, "docs_list_issues.json"),
		want: map[string]string{"scope": "all", "state": "all", "order_by": "updated_at", "sort": "asc", "updated_after": "2016-01-01T00:00:00Z"}})
	f.add("/projects/7/issues/6/notes", &route{items: raw(t, "docs_list_notes.json"), want: map[string]string{"order_by": "created_at", "sort": "asc"}})
	pages, err := collect(t, f.client(t), change.KindIssue, proj, ts("2016-01-01T00:00:00Z"), FetchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(pages, change.KindIssue); !slices.Equal(got, []string{"issue-7-6"}) {
		t.Errorf("issues %v", got)
	}
	if got := ids(pages, change.KindNote); !slices.Equal(got, []string{"note-7-302", "note-7-305"}) {
		t.Errorf("notes %v", got)
	}
	if !pages[0].Cursor.Equal(ts("2016-01-04T15:31:51.081Z")) {
		t.Errorf("cursor %s", pages[0].Cursor)
	}
}

func TestFetchCommitNotesFromEvents(t *testing.T) {
	f := newRouteFake(t)
	evs := raw(t, "docs_list_project_events.json")
	commitNote := func(id int, updated string) map[string]any {
		var e map[string]any
		b, _ := json.Marshal(evs[1])
		_ = json.Unmarshal(b, &e)
		n := e["note"].(map[string]any)
		n["id"], n["noteable_type"], n["noteable_id"], n["noteable_iid"] = id, "Commit", nil, nil
		n["commit_id"], n["updated_at"] = "abc123", updated
		return e
	}
	f.add("/projects/7/events", &route{
		items: []any{evs[0], evs[1], commitNote(1, "2024-03-01T23:00:00Z"), commitNote(2, "2024-03-02T11:00:00Z"), commitNote(3, "2024-03-03T11:00:00Z")},
		want:  map[string]string{"target_type": "note", "after": "2024-03-01", "sort": "asc"},
	})
	since := ts("2024-03-02T10:00:00Z")
	pages, err := collect(t, f.client(t), change.KindNote, proj, since, FetchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(pages, change.KindNote); !slices.Equal(got, []string{"note-7-2", "note-7-3"}) {
		t.Errorf("notes %v", got)
	}
	last := pages[len(pages)-1]
	if !last.Cursor.Equal(ts("2024-03-03T11:00:00Z")) {
		t.Errorf("cursor %s", last.Cursor)
	}
	n := pages[0].Events[0]
	if n.Attrs["commit_id"] != "abc123" || n.SHA != "abc123" || n.WebURL != "https://gitlab.example.com/group/app/-/commit/abc123#note_2" {
		t.Errorf("commit note %+v", n)
	}
}

func TestFetchDeploymentsByTime(t *testing.T) {
	f := newRouteFake(t)
	f.add("/projects/7/deployments", &route{items: raw(t, "docs_list_deployments.json"),
		want: map[string]string{"order_by": "updated_at", "sort": "asc", "updated_after": "2016-08-11T00:00:00Z"}})
	pages, err := collect(t, f.client(t), change.KindDeployment, proj, ts("2016-08-11T00:00:00Z"), FetchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(pages, change.KindDeployment); !slices.Equal(got, []string{"deployment-7-41", "deployment-7-42"}) {
		t.Errorf("deployments %v", got)
	}
	if !pages[len(pages)-1].Cursor.Equal(ts("2016-08-11T11:34:01.123Z")) {
		t.Errorf("cursor %s", pages[len(pages)-1].Cursor)
	}
}

func TestFetchFullListings(t *testing.T) {
	branches := raw(t, "list_branches.json")
	branches[1].(map[string]any)["commit"].(map[string]any)["committed_date"] = "2013-01-01T00:00:00Z"
	tagDetail := func(name, digest, at string) *route {
		return &route{one: map[string]any{"name": name, "path": "group/app:" + name, "digest": digest, "created_at": at, "total_size": 10}}
	}
	for _, tc := range []struct {
		kind   change.Kind
		routes map[string]*route
		ids    []string
		cursor time.Time
	}{
		{
			kind:   change.KindBranch,
			routes: map[string]*route{"/projects/7/repository/branches": {items: append(branches, branches[0])}},
			ids:    []string{"branch-7-master", "branch-7-develop", "branch-7-master"},
			cursor: ts("2013-01-01T00:00:00Z"),
		},
		{
			kind:   change.KindTag,
			routes: map[string]*route{"/projects/7/repository/tags": {items: raw(t, "docs_list_tags.json")}},
			ids:    []string{"tag-7-v1.0.0"},
			cursor: ts("2012-05-28T11:42:42Z"),
		},
		{
			kind: change.KindRelease,
			routes: map[string]*route{"/projects/7/releases": {items: raw(t, "docs_list_releases.json"),
				want: map[string]string{"order_by": "created_at", "sort": "asc"}}},
			ids:    []string{"release-7-v0.2", "release-7-v0.1"},
			cursor: ts("2019-01-03T01:56:19.539Z"),
		},
		{
			kind:   change.KindEnvironment,
			routes: map[string]*route{"/projects/7/environments": {items: raw(t, "docs_list_environments.json")}},
			ids:    []string{"environment-7-1"},
			cursor: ts("2019-05-27T18:55:13.252Z"),
		},
		{
			kind: change.KindImage,
			routes: map[string]*route{
				"/projects/7/registry/repositories":                 {items: raw(t, "docs_list_registry_repositories.json")},
				"/projects/7/registry/repositories/1/tags":          {items: raw(t, "docs_list_registry_tags.json"), keyset: true},
				"/projects/7/registry/repositories/2/tags":          {items: []any{}},
				"/projects/7/registry/repositories/1/tags/A":        tagDetail("A", "sha256:a", "2024-01-01T00:00:00Z"),
				"/projects/7/registry/repositories/1/tags/latest":   tagDetail("latest", "sha256:b", "2024-01-02T00:00:00Z"),
				"/projects/7/registry/repositories/2/tags/unneeded": tagDetail("x", "sha256:c", "2024-01-03T00:00:00Z"),
			},
			ids:    []string{"image-7-1-A-sha256:a", "image-7-1-latest-sha256:b"},
			cursor: ts("2024-01-02T00:00:00Z"),
		},
	} {
		t.Run(string(tc.kind), func(t *testing.T) {
			f := newRouteFake(t)
			for p, r := range tc.routes {
				f.add(p, r)
			}
			// since is ignored by full listings.
			pages, err := collect(t, f.client(t), tc.kind, proj, ts("2030-01-01T00:00:00Z"), FetchOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(pages, tc.kind); !slices.Equal(got, tc.ids) {
				t.Errorf("ids %v, want %v", got, tc.ids)
			}
			var prev time.Time
			for _, p := range pages {
				if p.Cursor.Before(prev) {
					t.Errorf("cursor went back to %s", p.Cursor)
				}
				prev = p.Cursor
			}
			if !prev.Equal(tc.cursor) {
				t.Errorf("final cursor %s, want %s", prev, tc.cursor)
			}
		})
	}
}

func TestFetchFeatureDisabled(t *testing.T) {
	for _, tc := range []struct {
		name     string
		kind     change.Kind
		path     string
		status   int
		message  string
		project  *route // GET /projects/7, asked only after a 403
		sentinel error
	}{
		{name: "registry off", kind: change.KindImage, path: "/projects/7/registry/repositories", status: 404, message: "404 Not found", sentinel: ErrFeatureDisabled},
		{name: "project gone", kind: change.KindImage, path: "/projects/7/registry/repositories", status: 404, message: "404 Project Not Found", sentinel: ErrNotFound},
		{name: "issues off", kind: change.KindIssue, path: "/projects/7/issues", status: 403, message: "403 Forbidden",
			project: &route{one: map[string]any{"id": 7, "path_with_namespace": "group/app"}}, sentinel: ErrFeatureDisabled},
		{name: "access lost", kind: change.KindIssue, path: "/projects/7/issues", status: 403, message: "403 Forbidden",
			project: &route{status: 403, body: map[string]string{"message": "403 Forbidden"}}, sentinel: ErrForbidden},
		{name: "project deleted meanwhile", kind: change.KindDeployment, path: "/projects/7/deployments", status: 403, message: "403 Forbidden",
			project: &route{status: 404, body: map[string]string{"message": "404 Project Not Found"}}, sentinel: ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newRouteFake(t)
			f.add(tc.path, &route{status: tc.status, body: map[string]string{"message": tc.message},
				allowed: []string{"scope", "state", "order_by", "sort", "updated_after"}})
			if tc.project != nil {
				f.add("/projects/group%2Fapp", tc.project)
			}
			_, err := collect(t, f.client(t), tc.kind, proj, time.Time{}, FetchOptions{})
			if !errors.Is(err, tc.sentinel) {
				t.Fatalf("error %v, want %v", err, tc.sentinel)
			}
			if tc.sentinel == ErrFeatureDisabled && (errors.Is(err, ErrNotFound) || errors.Is(err, ErrForbidden)) {
				t.Errorf("feature error also reads as project error: %v", err)
			}
			if strings.Contains(err.Error(), testToken) {
				t.Errorf("token in error: %v", err)
			}
		})
	}
}

func TestFetchUnknownKind(t *testing.T) {
	c := newRouteFake(t).client(t)
	for _, k := range []change.Kind{change.KindJob, "wiki"} {
		if err := c.Fetch(context.Background(), k, proj, time.Time{}, FetchOptions{}, func(Page) error { return nil }); err == nil {
			t.Errorf("Fetch(%s) accepted", k)
		}
	}
	if got := SyncKinds(); len(got) != 11 || got[0] != change.KindMergeRequest || slices.Contains(got, change.KindJob) {
		t.Errorf("SyncKinds() = %v", got)
	}
}
