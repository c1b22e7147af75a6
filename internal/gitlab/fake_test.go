package gitlab

import (
	"encoding/json"
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
)

// testToken looks like a real personal access token so a leak would be
// recognisable; it is not one.
const testToken = "glpat-Xy9vT3stT0k3nN0tR3al"

// fakeGitLab is the stand-in for GitLab in these tests: it serves the few
// endpoints the client uses, with GitLab's parameter names, filters,
// ordering and pagination headers, and lets a test change objects between
// requests. It is deliberately small and separate from internal/gitlabsim.
type fakeGitLab struct {
	t   *testing.T
	srv *httptest.Server

	mu        sync.Mutex
	mrs       map[int64]*fakeObj // by id
	pipelines map[int64]*fakeObj
	jobs      map[int64][]map[string]any // by pipeline id
	listCalls int
	// beforeList runs (locked) before each merge request or pipeline
	// listing is served, with the number of listings served so far.
	beforeList func(n int)
	queries    []url.Values
}

type fakeObj struct {
	ID, IID int64
	Updated time.Time
	Created time.Time
	State   string
}

func newFakeGitLab(t *testing.T) *fakeGitLab {
	f := &fakeGitLab{t: t, mrs: map[int64]*fakeObj{}, pipelines: map[int64]*fakeObj{}, jobs: map[int64][]map[string]any{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeGitLab) client(t *testing.T, mod ...func(*Config)) *Client {
	t.Helper()
	cfg := Config{URL: f.srv.URL, Token: testToken, RequestsPerMinute: 600000, MaxRetries: 2, Clock: new(skipClock)}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (f *fakeGitLab) serve(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("PRIVATE-TOKEN") != testToken {
		writeJSON(w, 401, map[string]string{"message": "401 Unauthorized"})
		return
	}
	path := strings.TrimPrefix(r.URL.EscapedPath(), "/api/v4")
	switch {
	case path == "/user":
		writeJSON(w, 200, map[string]any{"id": 1, "username": "john_smith", "name": "John Smith"})
	case path == "/version":
		writeJSON(w, 200, map[string]any{"version": "17.5.0-ee", "revision": "abc123"})
	case path == "/personal_access_tokens/self":
		writeJSON(w, 200, map[string]any{"id": 4, "name": "labtrail", "scopes": []string{"read_api"}, "active": true})
	case path == "/projects/7/merge_requests":
		f.list(w, r, f.mrs, true)
	case path == "/projects/7/pipelines":
		f.list(w, r, f.pipelines, false)
	case strings.HasPrefix(path, "/projects/7/pipelines/") && strings.HasSuffix(path, "/jobs"):
		id, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(path, "/projects/7/pipelines/"), "/jobs"), 10, 64)
		f.mu.Lock()
		jobs := f.jobs[id]
		f.mu.Unlock()
		if jobs == nil {
			jobs = []map[string]any{}
		}
		writeJSON(w, 200, jobs)
	default:
		writeJSON(w, 404, map[string]string{"message": "404 Not found"})
	}
}

// list serves a merge request or pipeline listing as GitLab does:
// updated_after inclusive at second precision, ordered by updated_at then
// id, offset pages with X-Page/X-Per-Page/X-Next-Page and, as GitLab does
// for large sets, no X-Total.
func (f *fakeGitLab) list(w http.ResponseWriter, r *http.Request, objs map[int64]*fakeObj, mr bool) {
	q := r.URL.Query()
	allowed := []string{"order_by", "sort", "per_page", "page", "updated_after"}
	if mr {
		allowed = append(allowed, "state")
	}
	for k, v := range q {
		if !slices.Contains(allowed, k) || len(v) != 1 {
			f.t.Errorf("unexpected query parameter %s=%v in %s", k, v, r.URL)
		}
	}
	if q.Get("order_by") != "updated_at" || q.Get("sort") != "asc" || q.Get("per_page") != "100" || (mr && q.Get("state") != "all") {
		f.t.Errorf("wrong listing parameters: %s", r.URL.RawQuery)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries = append(f.queries, q)
	if f.beforeList != nil {
		f.beforeList(f.listCalls)
	}
	f.listCalls++

	var after time.Time
	if v := q.Get("updated_after"); v != "" {
		var err error
		if after, err = time.Parse(time.RFC3339, v); err != nil {
			writeJSON(w, 400, map[string]string{"error": "updated_after is invalid"})
			return
		}
	}
	var sel []*fakeObj
	for _, o := range objs {
		if !o.Updated.Before(after) {
			sel = append(sel, o)
		}
	}
	slices.SortFunc(sel, func(a, b *fakeObj) int {
		if c := a.Updated.Compare(b.Updated); c != 0 {
			return c
		}
		return int(a.ID - b.ID)
	})
	per, _ := strconv.Atoi(q.Get("per_page"))
	page, _ := strconv.Atoi(q.Get("page"))
	page = max(page, 1)
	lo, hi := min((page-1)*per, len(sel)), min(page*per, len(sel))
	w.Header().Set("X-Page", strconv.Itoa(page))
	w.Header().Set("X-Per-Page", strconv.Itoa(per))
	if hi < len(sel) {
		w.Header().Set("X-Next-Page", strconv.Itoa(page+1))
	}
	out := []map[string]any{}
	for _, o := range sel[lo:hi] {
		out = append(out, f.render(o, mr))
	}
	writeJSON(w, 200, out)
}

func (f *fakeGitLab) render(o *fakeObj, mr bool) map[string]any {
	ts := func(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }
	if mr {
		return map[string]any{
			"id": o.ID, "iid": o.IID, "project_id": 7, "title": fmt.Sprintf("MR %d", o.IID),
			"state": o.State, "created_at": ts(o.Created), "updated_at": ts(o.Updated),
			"author":  map[string]any{"id": 1, "username": "john_smith", "name": "John Smith"},
			"web_url": fmt.Sprintf("%s/group/app/-/merge_requests/%d", f.srv.URL, o.IID),
		}
	}
	return map[string]any{
		"id": o.ID, "iid": o.IID, "project_id": 7, "status": o.State, "source": "push",
		"ref": "main", "sha": "0ff3ae198f8601a285adcf5c0fff204ee6fba5fd",
		"created_at": ts(o.Created), "updated_at": ts(o.Updated),
		"web_url": fmt.Sprintf("%s/group/app/-/pipelines/%d", f.srv.URL, o.ID),
	}
}

// add creates n objects with ids from first, updated at the given times.
func (f *fakeGitLab) add(objs map[int64]*fakeObj, first int64, state string, at ...time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, t := range at {
		id := first + int64(i)
		objs[id] = &fakeObj{ID: id, IID: id, Created: t, Updated: t, State: state}
	}
}

// snapshot returns id -> updated_at of every object, under the lock.
func (f *fakeGitLab) snapshot(objs map[int64]*fakeObj) map[int64]time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[int64]time.Time{}
	for id, o := range objs {
		out[id] = o.Updated
	}
	return out
}
