package gitlabsim_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/gitlabsim"
)

// gql posts a GraphQL query with the given headers and returns the status
// and the decoded answer.
func gqlWith(t testing.TB, srv *httptest.Server, hdr map[string]string, query string, vars map[string]any) (int, map[string]any) {
	t.Helper()
	status, b := gqlPost(t, srv, hdr, query, vars)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil && status != http.StatusTooManyRequests {
		t.Fatalf("status %d, body %s: %v", status, b, err)
	}
	return status, out
}

// gqlPost posts a GraphQL query and returns the status and the raw answer.
func gqlPost(t testing.TB, srv *httptest.Server, hdr map[string]string, query string, vars map[string]any) (int, []byte) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/api/graphql", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func gql(t testing.TB, srv *httptest.Server, query string, vars map[string]any) map[string]any {
	t.Helper()
	status, out := gqlWith(t, srv, map[string]string{"Authorization": "Bearer sim-token"}, query, vars)
	if status != http.StatusOK || out["errors"] != nil {
		t.Fatalf("status %d, answer %v", status, out)
	}
	return out["data"].(map[string]any)
}

// dig walks a decoded answer by keys and list indexes.
func dig(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			l, _ := v.([]any)
			if k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func firstProjectPath(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	_, b := get(t, srv, "/api/v4/projects?order_by=id&sort=asc")
	var ps []map[string]any
	if err := json.Unmarshal(b, &ps); err != nil || len(ps) == 0 {
		t.Fatalf("projects: %s", b)
	}
	return ps[0]["path_with_namespace"].(string)
}

// idOf prints a decoded JSON number as an integer.
func idOf(v any) string {
	f, _ := v.(float64)
	return fmt.Sprintf("%d", int64(f))
}

// wholeSecond is GitLab's GraphQL Time: Ruby's Time#iso8601 of a UTC time.
var wholeSecond = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`)

// TestGraphQLDocumentedPipelineQuery runs the query GitLab's merge request
// adding pipeline lists to GraphQL documents (gitlab-ce!20249), with its
// answer's shape: pageInfo, edges with base64 cursors, nodes with an id
// and an upper-case status.
func TestGraphQLDocumentedPipelineQuery(t *testing.T) {
	_, srv := newServer(t, gitlabsim.Options{Projects: 1, MRs: 5, Pipelines: 5})
	data := gql(t, srv, `query($project_path: ID!) {
  project(fullPath: $project_path) {
    pipelines(first: 2) {
      pageInfo {
        hasNextPage
        hasPreviousPage
      }
      edges {
        cursor
        node {
          id
          status
        }
      }
    }
  }
}`, map[string]any{"project_path": firstProjectPath(t, srv)})
	pls := dig(data, "project", "pipelines")
	if dig(pls, "pageInfo", "hasNextPage") != true || dig(pls, "pageInfo", "hasPreviousPage") != false {
		t.Errorf("pageInfo %v", dig(pls, "pageInfo"))
	}
	edges, _ := dig(pls, "edges").([]any)
	if len(edges) != 2 {
		t.Fatalf("edges %v", edges)
	}
	ids := map[string]bool{}
	for _, e := range edges {
		id, _ := dig(e, "node", "id").(string)
		if !strings.HasPrefix(id, "gid://gitlab/Ci::Pipeline/") || ids[id] {
			t.Errorf("node id %q", id)
		}
		ids[id] = true
		if s, _ := dig(e, "node", "status").(string); s != strings.ToUpper(s) || s == "" {
			t.Errorf("status %q", s)
		}
		if c, _ := dig(e, "cursor").(string); c == "" {
			t.Error("edge without cursor")
		}
	}
}

// TestGraphQLAgreesWithREST reads the same merge requests and pipelines by
// both APIs: the details labtrail asks GraphQL for equal what the REST
// endpoints give, times to the second.
func TestGraphQLAgreesWithREST(t *testing.T) {
	_, srv := newServer(t, gitlabsim.Options{Projects: 1, MRs: 30, Pipelines: 30})
	path := firstProjectPath(t, srv)
	pid := firstProjectID(t, srv)
	data := gql(t, srv, `query($p: ID!, $iids: [String!]) {
  project(fullPath: $p) {
    mergeRequests(iids: $iids) {
      nodes {
        iid approved updatedAt
        approvedBy { nodes { username } }
        diffStats { path additions deletions }
        diffStatsSummary { additions deletions fileCount }
        commitCount
        commits { nodes { sha authoredDate } }
        notes { nodes { id body system createdAt updatedAt author { username } } }
      }
    }
  }
}`, map[string]any{"p": path, "iids": []string{"1", "2", "3", "4", "5", "6", "7", "8"}})
	mrs, _ := dig(data, "project", "mergeRequests", "nodes").([]any)
	if len(mrs) != 8 {
		t.Fatalf("%d merge requests for 8 iids", len(mrs))
	}
	sec := func(s any) string {
		tm, err := time.Parse(time.RFC3339Nano, s.(string))
		if err != nil {
			t.Fatal(err)
		}
		return tm.UTC().Truncate(time.Second).Format(time.RFC3339)
	}
	for _, m := range mrs {
		iid := dig(m, "iid").(string)
		base := fmt.Sprintf("/api/v4/projects/%d/merge_requests/%s", pid, iid)
		if !wholeSecond.MatchString(dig(m, "updatedAt").(string)) {
			t.Errorf("!%s updatedAt %v", iid, dig(m, "updatedAt"))
		}

		var appr map[string]any
		_, b := get(t, srv, base+"/approvals")
		_ = json.Unmarshal(b, &appr)
		if appr["approved"] != dig(m, "approved") {
			t.Errorf("!%s approved %v, REST %v", iid, dig(m, "approved"), appr["approved"])
		}
		restBy, _ := appr["approved_by"].([]any)
		gqlBy, _ := dig(m, "approvedBy", "nodes").([]any)
		if len(restBy) != len(gqlBy) {
			t.Errorf("!%s approvers %v, REST %v", iid, gqlBy, restBy)
		}
		for i := range min(len(restBy), len(gqlBy)) {
			if dig(restBy[i], "user", "username") != dig(gqlBy[i], "username") {
				t.Errorf("!%s approver %d differs", iid, i)
			}
		}

		var diffs []map[string]any
		_, b = get(t, srv, base+"/diffs?per_page=100")
		_ = json.Unmarshal(b, &diffs)
		stats, _ := dig(m, "diffStats").([]any)
		var adds, dels float64
		for i, d := range diffs {
			plus, minus := 0, 0
			for _, l := range strings.Split(d["diff"].(string), "\n") {
				switch {
				case strings.HasPrefix(l, "+"):
					plus++
				case strings.HasPrefix(l, "-"):
					minus++
				}
			}
			if i >= len(stats) || dig(stats[i], "path") != d["new_path"] ||
				dig(stats[i], "additions") != float64(plus) || dig(stats[i], "deletions") != float64(minus) {
				t.Errorf("!%s file %d: GraphQL %v, REST %s +%d -%d", iid, i, dig(stats, i), d["new_path"], plus, minus)
			}
			adds, dels = adds+float64(plus), dels+float64(minus)
		}
		if dig(m, "diffStatsSummary", "additions") != adds || dig(m, "diffStatsSummary", "deletions") != dels ||
			dig(m, "diffStatsSummary", "fileCount") != float64(len(diffs)) {
			t.Errorf("!%s summary %v", iid, dig(m, "diffStatsSummary"))
		}

		var commits []map[string]any
		_, b = get(t, srv, base+"/commits?per_page=100")
		_ = json.Unmarshal(b, &commits)
		gc, _ := dig(m, "commits", "nodes").([]any)
		if len(gc) != len(commits) || dig(m, "commitCount") != float64(len(commits)) {
			t.Fatalf("!%s %d commits, REST %d", iid, len(gc), len(commits))
		}
		for i, c := range commits {
			if dig(gc[i], "sha") != c["id"] || dig(gc[i], "authoredDate") != sec(c["authored_date"]) {
				t.Errorf("!%s commit %d: %v, REST %v %v", iid, i, gc[i], c["id"], c["authored_date"])
			}
		}

		var notes []map[string]any
		_, b = get(t, srv, base+"/notes?per_page=100&sort=asc&order_by=created_at")
		_ = json.Unmarshal(b, &notes)
		gn, _ := dig(m, "notes", "nodes").([]any)
		if len(gn) != len(notes) {
			t.Fatalf("!%s %d notes, REST %d", iid, len(gn), len(notes))
		}
		for i, n := range notes {
			g := gn[i]
			if dig(g, "id") != "gid://gitlab/Note/"+idOf(n["id"]) || dig(g, "body") != n["body"] ||
				dig(g, "system") != n["system"] || dig(g, "author", "username") != dig(n, "author", "username") ||
				dig(g, "createdAt") != sec(n["created_at"]) || dig(g, "updatedAt") != sec(n["updated_at"]) {
				t.Errorf("!%s note %d: %v, REST %v", iid, i, g, n)
			}
		}
	}

	pdata := gql(t, srv, `query($p: ID!) {
  project(fullPath: $p) {
    pipelines(first: 100) {
      nodes {
        id iid sha ref status source createdAt updatedAt startedAt finishedAt duration queuedDuration path
        user { username }
        jobs(retried: false) { nodes { id name status stage { name } createdAt startedAt finishedAt duration queuedDuration webPath } }
      }
    }
  }
}`, map[string]any{"p": path})
	pls, _ := dig(pdata, "project", "pipelines", "nodes").([]any)
	if len(pls) != 30 {
		t.Fatalf("%d pipelines", len(pls))
	}
	for _, pl := range pls {
		var id int64
		fmt.Sscanf(dig(pl, "id").(string), "gid://gitlab/Ci::Pipeline/%d", &id)
		var rest map[string]any
		_, b := get(t, srv, fmt.Sprintf("/api/v4/projects/%d/pipelines/%d", pid, id))
		_ = json.Unmarshal(b, &rest)
		if dig(pl, "iid") != idOf(rest["iid"]) || dig(pl, "sha") != rest["sha"] || dig(pl, "ref") != rest["ref"] ||
			dig(pl, "status") != strings.ToUpper(rest["status"].(string)) || dig(pl, "source") != rest["source"] ||
			dig(pl, "updatedAt") != sec(rest["updated_at"]) || dig(pl, "duration") != rest["duration"] ||
			dig(pl, "user", "username") != dig(rest, "user", "username") ||
			!strings.HasSuffix(rest["web_url"].(string), dig(pl, "path").(string)) {
			t.Errorf("pipeline %d: GraphQL %v, REST %s", id, pl, b)
		}
		if q := rest["queued_duration"]; q != nil && dig(pl, "queuedDuration") != q {
			t.Errorf("pipeline %d queued %v, REST %v", id, dig(pl, "queuedDuration"), q)
		}
		var jobs []map[string]any
		_, b = get(t, srv, fmt.Sprintf("/api/v4/projects/%d/pipelines/%d/jobs?per_page=100", pid, id))
		_ = json.Unmarshal(b, &jobs)
		gj, _ := dig(pl, "jobs", "nodes").([]any)
		if len(gj) != len(jobs) {
			t.Fatalf("pipeline %d: %d jobs, REST %d", id, len(gj), len(jobs))
		}
		for i, j := range jobs {
			g := gj[i]
			d, _ := j["duration"].(float64)
			if dig(g, "id") != "gid://gitlab/Ci::Build/"+idOf(j["id"]) || dig(g, "name") != j["name"] ||
				dig(g, "status") != strings.ToUpper(j["status"].(string)) || dig(g, "stage", "name") != j["stage"] ||
				dig(g, "createdAt") != sec(j["created_at"]) || (j["duration"] != nil && dig(g, "duration") != float64(int64(d))) ||
				dig(g, "queuedDuration") != j["queued_duration"] || !strings.HasSuffix(j["web_url"].(string), dig(g, "webPath").(string)) {
				t.Errorf("job %v: GraphQL %v, REST %v", j["id"], g, j)
			}
		}
	}
}

// TestGraphQLComplexity scores queries as GitLab does and refuses those
// over the limit with graphql-ruby's message, HTTP 200 and no data.
func TestGraphQLComplexity(t *testing.T) {
	sim, srv := newServer(t, gitlabsim.Options{Projects: 1, MRs: 5, Pipelines: 5})
	path := firstProjectPath(t, srv)
	for _, tc := range []struct {
		name  string
		query string
		want  int
	}{
		// project: 1 + its fields.
		{"plain field", `query($p: ID!) { project(fullPath: $p) { name } }`, 2},
		// mergeRequests: nodes 2, +1 resolver, +1 default sort, ×1.1
		// for 10 nodes, truncated: 4; project 5.
		{"connection of 10", `query($p: ID!) { project(fullPath: $p) { mergeRequests(first: 10) { nodes { iid } } } }`, 5},
		// ×2 for 100 nodes.
		{"connection of 100", `query($p: ID!) { project(fullPath: $p) { mergeRequests(first: 100) { nodes { iid } } } }`, 9},
		// No growth when filtered by iids.
		{"by iids", `query($p: ID!) { project(fullPath: $p) { mergeRequests(iids: ["1"]) { nodes { iid } } } }`, 5},
		// approved 2 (Gitaly), mergedAt 5, reviewers 5+2, diffStats
		// 2+1, commits 2+2, notes (2+1)×2: nodes 1+28; +2; project 31.
		{"merge request details", `query($p: ID!) { project(fullPath: $p) { mergeRequests(iids: ["1"]) { nodes {
			approved mergedAt reviewers { nodes { username } } diffStats { path }
			commits(first: 100) { nodes { sha } } notes(first: 100) { nodes { id } } } } } }`, 31},
		// jobs (2+1)×1.5 → 4; nodes 1+1+4; pipelines (6+1)×2; +1.
		{"pipelines with jobs", `query($p: ID!) { project(fullPath: $p) { pipelines(first: 100) { nodes { id jobs(first: 50) { nodes { name } } } } } }`, 15},
		// sha filter: +2 (ResolvesPipelines).
		{"pipelines by sha", `query($p: ID!) { project(fullPath: $p) { pipelines(sha: "x", first: 100) { nodes { id jobs(first: 50) { nodes { name } } } } } }`, 19},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vars := map[string]any{"p": path}
			sim.SetGraphQLMaxComplexity(tc.want)
			gql(t, srv, tc.query, vars)
			sim.SetGraphQLMaxComplexity(tc.want - 1)
			status, out := gqlWith(t, srv, map[string]string{"PRIVATE-TOKEN": "sim-token"}, tc.query, vars)
			want := fmt.Sprintf("Query has complexity of %d, which exceeds max complexity of %d", tc.want, tc.want-1)
			if status != http.StatusOK || out["data"] != nil || dig(out, "errors", 0, "message") != want {
				t.Errorf("status %d, answer %v; want %q", status, out, want)
			}
		})
	}
	sim.SetGraphQLMaxComplexity(0)
	// GitLab's limit for a signed-in user is 250: three of these (90
	// each) pass no more.
	one := `mergeRequests(first: 100) { nodes { approved mergedAt closedAt reviewers { nodes { username } } labels { nodes { title } }
		notes(first: 100) { nodes { id body author { username } } } commits(first: 100) { nodes { sha } } } }`
	status, out := gqlWith(t, srv, map[string]string{"PRIVATE-TOKEN": "sim-token"},
		`query($p: ID!) { project(fullPath: $p) { a: `+one+` b: `+one+` c: `+one+` } }`, map[string]any{"p": path})
	if msg, _ := dig(out, "errors", 0, "message").(string); status != http.StatusOK || msg != "Query has complexity of 271, which exceeds max complexity of 250" {
		t.Errorf("status %d, answer %v", status, out)
	}
}

// TestGraphQLAnswersAsGitLab covers the endpoint's answers around the
// queries: auth, a GitLab without GraphQL, size and page limits, the
// throttle, and counting.
func TestGraphQLAnswersAsGitLab(t *testing.T) {
	sim, srv := newServer(t, gitlabsim.Options{Projects: 1, MRs: 150, Pipelines: 5, NoGraphQL: true})
	path := firstProjectPath(t, srv)
	query := `query($p: ID!) { project(fullPath: $p) { name } }`
	vars := map[string]any{"p": path}

	status, out := gqlWith(t, srv, map[string]string{"PRIVATE-TOKEN": "sim-token"}, query, vars)
	if status != http.StatusNotFound || dig(out, "errors", 0, "message") != "Not found" {
		t.Errorf("GraphQL off: %d %v", status, out)
	}
	sim.SetGraphQL(true)

	for name, tc := range map[string]struct {
		hdr    map[string]string
		status int
		check  func(map[string]any) bool
	}{
		"private token": {map[string]string{"PRIVATE-TOKEN": "sim-token"}, 200, func(o map[string]any) bool { return dig(o, "data", "project", "name") != nil }},
		"bearer token":  {map[string]string{"Authorization": "Bearer sim-token"}, 200, func(o map[string]any) bool { return dig(o, "data", "project", "name") != nil }},
		"unknown token": {map[string]string{"PRIVATE-TOKEN": "nope"}, 401, func(o map[string]any) bool { return dig(o, "errors", 0, "message") == "Invalid token" }},
		"guest sees no private project": {nil, 200, func(o map[string]any) bool {
			p, ok := dig(o, "data").(map[string]any)
			return ok && p["project"] == nil
		}},
	} {
		status, out := gqlWith(t, srv, tc.hdr, query, vars)
		if status != tc.status || !tc.check(out) {
			t.Errorf("%s: %d %v", name, status, out)
		}
	}

	long := query + "\n#" + strings.Repeat("x", 10_000)
	if status, out := gqlWith(t, srv, map[string]string{"PRIVATE-TOKEN": "sim-token"}, long, vars); status != http.StatusUnprocessableEntity ||
		dig(out, "errors", 0, "message") != "Query too large" {
		t.Errorf("long query: %d %v", status, out)
	}

	// At most 100 nodes a page, whatever first asks.
	data := gql(t, srv, `query($p: ID!) { project(fullPath: $p) { mergeRequests(first: 500) { count pageInfo { hasNextPage } nodes { iid } } } }`, vars)
	if n := len(dig(data, "project", "mergeRequests", "nodes").([]any)); n != 100 ||
		dig(data, "project", "mergeRequests", "pageInfo", "hasNextPage") != true || dig(data, "project", "mergeRequests", "count") != 150.0 {
		t.Errorf("first: 500 gave %d nodes, %v", n, dig(data, "project", "mergeRequests", "pageInfo"))
	}

	// A field GitLab's schema lacks: an error and no data.
	status, out = gqlWith(t, srv, map[string]string{"PRIVATE-TOKEN": "sim-token"}, `query($p: ID!) { project(fullPath: $p) { noSuchField } }`, vars)
	if status != http.StatusOK || out["data"] != nil || out["errors"] == nil {
		t.Errorf("unknown field: %d %v", status, out)
	}

	// The same throttle as /api/v4, and the same counting.
	limited, lsrv := newServer(t, gitlabsim.Options{Projects: 1, MRs: 5, Pipelines: 5, RateLimit: 2})
	for i := range 3 {
		status, _ := gqlWith(t, lsrv, map[string]string{"PRIVATE-TOKEN": "sim-token"}, query, vars)
		if want := map[bool]int{true: 429, false: 200}[i == 2]; status != want {
			t.Errorf("request %d under a limit of 2: %d", i+1, status)
		}
	}
	if n := limited.Stats().ByPath["POST /api/graphql"]; n != 3 {
		t.Errorf("stats count %d GraphQL requests, want 3", n)
	}
}

// TestGraphQLPagesAndTimes walks every pipeline by cursor: each once,
// newest first, and every time at whole seconds.
func TestGraphQLPagesAndTimes(t *testing.T) {
	_, srv := newServer(t, gitlabsim.Options{Projects: 1, MRs: 10, Pipelines: 45})
	vars := map[string]any{"p": firstProjectPath(t, srv), "first": 7}
	seen := map[string]bool{}
	var last int64 = 1 << 62
	for pages := 0; ; pages++ {
		data := gql(t, srv, `query($p: ID!, $first: Int, $after: String) { project(fullPath: $p) {
			pipelines(first: $first, after: $after) { pageInfo { hasNextPage endCursor }
				nodes { id createdAt updatedAt startedAt finishedAt jobs { nodes { createdAt startedAt finishedAt } } } } } }`, vars)
		conn := dig(data, "project", "pipelines")
		for _, n := range dig(conn, "nodes").([]any) {
			id := dig(n, "id").(string)
			var num int64
			fmt.Sscanf(id, "gid://gitlab/Ci::Pipeline/%d", &num)
			if seen[id] || num >= last {
				t.Errorf("%s out of order or twice", id)
			}
			seen[id], last = true, num
			times := []any{dig(n, "createdAt"), dig(n, "updatedAt"), dig(n, "startedAt"), dig(n, "finishedAt")}
			for _, j := range dig(n, "jobs", "nodes").([]any) {
				times = append(times, dig(j, "createdAt"), dig(j, "startedAt"), dig(j, "finishedAt"))
			}
			for _, tm := range times {
				if s, ok := tm.(string); ok && !wholeSecond.MatchString(s) {
					t.Errorf("time %q is not GitLab's whole-second ISO 8601", s)
				}
			}
		}
		if dig(conn, "pageInfo", "hasNextPage") != true {
			break
		}
		vars["after"] = dig(conn, "pageInfo", "endCursor")
		if pages > 10 {
			t.Fatal("no end of pages")
		}
	}
	if len(seen) != 45 {
		t.Errorf("walked %d pipelines, want 45", len(seen))
	}
}

// TestGraphQLNumberKinds holds the numbers of pipelines and jobs to the
// types of GitLab's schema: duration is an Int, queuedDuration a Duration,
// which graphql-ruby writes as a Float (5.0 for a pipeline's whole
// seconds).
func TestGraphQLNumberKinds(t *testing.T) {
	_, srv := newServer(t, gitlabsim.Options{Projects: 1, MRs: 10, Pipelines: 60})
	status, body := gqlPost(t, srv, map[string]string{"PRIVATE-TOKEN": "sim-token"}, `query($p: ID!) { project(fullPath: $p) {
		pipelines(first: 100) { nodes { duration queuedDuration jobs { nodes { duration queuedDuration } } } } } }`,
		map[string]any{"p": firstProjectPath(t, srv)})
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, body)
	}
	nodes, _ := dig(decodeJSON(t, body), "data", "project", "pipelines", "nodes").([]any)
	schema := objects(t, []byte(`{"duration": 34, "queuedDuration": 6.0, "jobs": {"nodes": [{"duration": 1, "queuedDuration": 0.123}]}}`))
	checkKinds(t, "pipelines", kindsOf(schema), nodes)
	queued := 0
	for _, n := range nodes {
		if q, ok := dig(n, "queuedDuration").(json.Number); ok {
			queued++
			if f, _ := q.Float64(); f != float64(int64(f)) {
				t.Errorf("pipeline queuedDuration %s is not whole seconds", q)
			}
		}
	}
	if queued == 0 {
		t.Error("no pipeline with a queuedDuration to compare")
	}
}
