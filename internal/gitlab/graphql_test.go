package gitlab

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
)

// graphQLRecorder sits in front of a routeFake and keeps what was posted
// to /api/graphql.
type graphQLRecorder struct {
	mu    sync.Mutex
	posts []map[string]any
	bad   []string
}

func (g *graphQLRecorder) wrap(f *routeFake) {
	inner := f.srv.Config.Handler
	f.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "graphql") {
			b, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(b))
			var body map[string]any
			err := json.Unmarshal(b, &body)
			g.mu.Lock()
			g.posts = append(g.posts, body)
			if r.Method != http.MethodPost || r.URL.Path != "/api/graphql" || err != nil || r.Header.Get("PRIVATE-TOKEN") != testToken {
				g.bad = append(g.bad, fmt.Sprintf("%s %s %v", r.Method, r.URL.Path, err))
			}
			g.mu.Unlock()
		}
		inner.ServeHTTP(w, r)
	})
}

func (g *graphQLRecorder) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.posts)
}

// mergeRequestFake serves two merge requests with their REST details.
func mergeRequestFake(t *testing.T) *routeFake {
	f := newRouteFake(t)
	f.add("/projects/7/merge_requests", &route{
		items: []any{mrJSON(101, 1, "2024-03-01T10:00:00.5Z"), mrJSON(102, 2, "2024-03-01T11:00:00Z")},
		want:  map[string]string{"state": "all", "order_by": "updated_at", "sort": "asc"},
	})
	for _, iid := range []int{1, 2} {
		base := fmt.Sprintf("/projects/7/merge_requests/%d", iid)
		f.add(base+"/approvals", &route{one: map[string]any{"approved": true, "approved_by": []any{
			map[string]any{"user": map[string]any{"username": "bob"}, "approved_at": "2024-03-01T09:30:00.250Z"}}}})
		f.add(base+"/diffs", &route{items: []any{map[string]any{"old_path": "a", "new_path": "a", "diff": "@@ -1 +1,2 @@\n-x\n+y\n+z\n"}}})
		f.add(base+"/commits", &route{items: []any{map[string]any{"id": "c1", "authored_date": "2024-02-01T00:00:00.900Z"}}})
		f.add(base+"/notes", &route{
			items: []any{
				map[string]any{"id": 1000 + iid, "body": "approved this merge request", "system": true, "author": map[string]any{"username": "bob"},
					"created_at": "2024-03-01T09:30:00.250Z", "updated_at": "2024-03-01T09:30:00.250Z", "noteable_type": "MergeRequest", "noteable_iid": iid},
			},
			want: map[string]string{"order_by": "created_at", "sort": "asc"},
		})
	}
	return f
}

// graphQLAnswer is GitLab's answer for both merge requests of
// mergeRequestFake: the same details as its REST endpoints.
func graphQLAnswer() map[string]any {
	var nodes []any
	for _, iid := range []int{1, 2} {
		nodes = append(nodes, map[string]any{
			"iid": fmt.Sprint(iid), "approved": true,
			"approvedBy": map[string]any{"pageInfo": map[string]any{"hasNextPage": false}, "nodes": []any{map[string]any{"username": "bob"}}},
			"diffStats":  []any{map[string]any{"path": "a", "additions": 2, "deletions": 1}},
			"commits": map[string]any{"pageInfo": map[string]any{"hasNextPage": false},
				"nodes": []any{map[string]any{"authoredDate": "2024-02-01T00:00:00Z"}}},
			"notes": map[string]any{"pageInfo": map[string]any{"hasNextPage": false}, "nodes": []any{map[string]any{
				"id": fmt.Sprintf("gid://gitlab/Note/%d", 1000+iid), "body": "approved this merge request", "system": true, "internal": false,
				"createdAt": "2024-03-01T09:30:00Z", "updatedAt": "2024-03-01T09:30:00Z", "resolvable": false, "resolved": false,
				"author": map[string]any{"username": "bob"}}}},
		})
	}
	return map[string]any{"data": map[string]any{"project": map[string]any{"m0": map[string]any{"nodes": nodes}}}}
}

// TestGraphQLFallback answers labtrail's merge request query as GitLab
// might and checks what labtrail does: use the answer, fall back to REST
// for the page, or for good.
func TestGraphQLFallback(t *testing.T) {
	gqlErr := func(msg string) map[string]any {
		return map[string]any{"errors": []any{map[string]any{"message": msg}}}
	}
	partial := graphQLAnswer()
	partial["errors"] = []any{map[string]any{"message": "Internal server error", "path": []any{"project", "mergeRequests"}}}
	for _, tc := range []struct {
		name   string
		answer *route
		// GraphQL requests in the first fetch and in a second one.
		first, second int
		rest          bool // details came from REST
		err           error
	}{
		{name: "answered", answer: &route{one: graphQLAnswer()}, first: 1, second: 1},
		{name: "GraphQL turned off", answer: &route{status: 404, body: gqlErr("Not found")}, first: 1, second: 0, rest: true},
		{name: "blocked by a proxy", answer: &route{status: 403, body: map[string]string{"message": "403 Forbidden"}}, first: 1, second: 0, rest: true},
		{name: "too complex at every size", answer: &route{one: gqlErr("Query has complexity of 300, which exceeds max complexity of 250")},
			first: len(graphQLLevels), second: 0, rest: true},
		{name: "too large", answer: &route{status: 422, body: gqlErr("Query too large")}, first: len(graphQLLevels), second: 0, rest: true},
		{name: "field missing on this GitLab", answer: &route{one: gqlErr("Field 'diffStats' doesn't exist on type 'MergeRequest'")},
			first: 1, second: 0, rest: true},
		{name: "partial answer", answer: &route{one: partial}, first: 1, second: 1, rest: true},
		{name: "token refused", answer: &route{status: 401, body: gqlErr("Invalid token")}, first: 1, err: ErrUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := mergeRequestFake(t)
			f.add("/api/graphql", tc.answer)
			rec := &graphQLRecorder{}
			rec.wrap(f)
			c := f.client(t, func(c *Config) { c.GraphQL = GraphQLAuto })
			pages, err := collect(t, c, change.KindMergeRequest, proj, time.Time{}, FetchOptions{})
			if !errors.Is(err, tc.err) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			if rec.count() != tc.first {
				t.Errorf("%d GraphQL requests, want %d", rec.count(), tc.first)
			}
			if len(rec.bad) > 0 {
				t.Errorf("malformed GraphQL requests: %v", rec.bad)
			}
			if tc.err != nil {
				return
			}
			vars, _ := rec.posts[0]["variables"].(map[string]any)
			if fmt.Sprint(vars["iids0"]) != "[1 2]" || vars["project"] != "group/app" || !strings.Contains(fmt.Sprint(rec.posts[0]["query"]), "m0: mergeRequests(iids: $iids0") {
				t.Errorf("query posted: %v", rec.posts[0])
			}
			if n := f.count("/projects/7/merge_requests/1/approvals"); (n > 0) != tc.rest {
				t.Errorf("REST details asked %d times; want REST %v", n, tc.rest)
			}
			// Either way the events are the same.
			var mrs []change.Event
			for _, p := range pages {
				for _, e := range p.Events {
					if e.Kind == change.KindMergeRequest {
						mrs = append(mrs, e)
					}
				}
			}
			if len(mrs) != 2 {
				t.Fatalf("%d merge requests", len(mrs))
			}
			want := map[string]any{
				"approvals":     []map[string]any{{"user": "bob", "approved_at": "2024-03-01T09:30:00Z"}},
				"changed_files": []map[string]any{{"path": "a", "additions": 2, "deletions": 1}},
				"additions":     2, "deletions": 1, "commit_count": 1, "first_commit_at": "2024-02-01T00:00:00Z", "approved": true,
			}
			for k, v := range want {
				if got := mrs[0].Attrs[k]; fmt.Sprint(got) != fmt.Sprint(v) {
					t.Errorf("%s = %v, want %v", k, got, v)
				}
			}

			before := rec.count()
			if _, err := collect(t, c, change.KindMergeRequest, proj, time.Time{}, FetchOptions{}); err != nil {
				t.Fatal(err)
			}
			if n := rec.count() - before; n != tc.second {
				t.Errorf("second fetch: %d GraphQL requests, want %d", n, tc.second)
			}
		})
	}
}

func TestGIDNumber(t *testing.T) {
	for _, tc := range []struct {
		gid  string
		want int64
		ok   bool
	}{
		{"gid://gitlab/Ci::Build/42", 42, true},
		{"gid://gitlab/DiscussionNote/7", 7, true},
		{"gid://gitlab/Note/x", 0, false},
		{"42", 0, false},
	} {
		got, err := gidNumber(tc.gid)
		if got != tc.want || (err == nil) != tc.ok {
			t.Errorf("gidNumber(%q) = %d, %v", tc.gid, got, err)
		}
	}
}

func TestGraphQLMode(t *testing.T) {
	for mode, ok := range map[string]bool{"": true, "auto": true, "AUTO": true, "off": true, "on": false} {
		_, err := New(Config{URL: "https://gitlab.example.com", Token: testToken, GraphQL: mode})
		if (err == nil) != ok {
			t.Errorf("GraphQL %q: %v", mode, err)
		}
	}
}
