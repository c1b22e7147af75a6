package gitlabsim_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/gitlabsim"
)

// The fields a change detection sweep asks agree with the REST API and
// the truth: issues by update time, releases newest first, environments
// with their deployments, container repositories' tag counts, projects
// by global id.
func TestGraphQLSweepFields(t *testing.T) {
	sim, srv := newServer(t, gitlabsim.Options{Seed: 5, Projects: 2, MRs: 6, Pipelines: 8, Issues: 6})
	_, b := get(t, srv, "/api/v4/projects?order_by=id&sort=asc")
	var ps []map[string]any
	if err := json.Unmarshal(b, &ps); err != nil || len(ps) != 2 {
		t.Fatalf("projects: %s", b)
	}
	id, path := idOf(ps[0]["id"]), ps[0]["path_with_namespace"].(string)
	// Issues updated since the median update time, counted by the truth.
	var times []time.Time
	for _, e := range sim.Truth() {
		if strings.HasPrefix(e.ID, "issue-"+id+"-") {
			times = append(times, e.UpdatedAt)
		}
	}
	if len(times) < 2 {
		t.Fatalf("%d issues", len(times))
	}
	since := times[len(times)/2].Truncate(time.Second)
	want := 0
	for _, u := range times {
		if !u.Before(since) {
			want++
		}
	}
	data := gql(t, srv, fmt.Sprintf(`query{projects(ids:["gid://gitlab/Project/%s"],first:5){count nodes{id fullPath
		is:issues(updatedAfter:%q,first:1){count nodes{iid state updatedAt}}
		rel:releases(sort:CREATED_DESC,first:1){nodes{tagName createdAt}}
		env:environments(first:20){nodes{name tier updatedAt
			c:deployments(orderBy:{createdAt:DESC},first:1){nodes{iid status createdAt updatedAt}}
			f:deployments(statuses:[SUCCESS,FAILED,CANCELED],orderBy:{finishedAt:DESC},first:1){nodes{iid status finishedAt}}}}
		cr:containerRepositories(first:20){nodes{name path tagsCount createdAt}}}}}`, id, since.Format(time.RFC3339)), nil)
	if n := dig(data, "projects", "count"); n != float64(1) {
		t.Fatalf("projects by one id: count %v", n)
	}
	p := dig(data, "projects", "nodes", 0)
	if dig(p, "id") != "gid://gitlab/Project/"+id || dig(p, "fullPath") != path {
		t.Errorf("project %v", p)
	}
	if got := dig(p, "is", "count"); got != float64(want) {
		t.Errorf("issues updated since %v: %v, truth has %d", since, got, want)
	}
	// The newest release is REST's first by created_at.
	_, b = get(t, srv, "/api/v4/projects/"+id+"/releases?order_by=created_at&sort=desc&per_page=1")
	var rels []map[string]any
	if err := json.Unmarshal(b, &rels); err != nil {
		t.Fatal(err)
	}
	if len(rels) > 0 && dig(p, "rel", "nodes", 0, "tagName") != rels[0]["tag_name"] {
		t.Errorf("newest release %v, REST %v", dig(p, "rel", "nodes", 0), rels[0]["tag_name"])
	}
	// Each environment's newest deployment is REST's newest for it.
	envs, _ := dig(p, "env", "nodes").([]any)
	if len(envs) < 2 {
		t.Fatalf("environments %v", envs)
	}
	deployed := 0
	for _, e := range envs {
		name := dig(e, "name").(string)
		_, b = get(t, srv, "/api/v4/projects/"+id+"/deployments?environment="+name+"&order_by=created_at&sort=desc&per_page=1")
		var ds []map[string]any
		if err := json.Unmarshal(b, &ds); err != nil {
			t.Fatal(err)
		}
		got := dig(e, "c", "nodes", 0, "iid")
		switch {
		case len(ds) == 0 && got != nil:
			t.Errorf("%s: GraphQL's newest deployment %v, REST has none", name, got)
		case len(ds) > 0 && got != idOf(ds[0]["iid"]):
			t.Errorf("%s: GraphQL's newest deployment %v, REST's %v", name, got, ds[0]["iid"])
		case len(ds) > 0:
			deployed++
		}
		if f := dig(e, "f", "nodes", 0, "status"); f != nil && f != "SUCCESS" && f != "FAILED" && f != "CANCELED" {
			t.Errorf("%s: newest finished deployment has status %v", name, f)
		}
	}
	if deployed == 0 {
		t.Error("no environment has deployments")
	}
	_, b = get(t, srv, "/api/v4/projects/"+id+"/registry/repositories?tags_count=true")
	var repos []map[string]any
	if err := json.Unmarshal(b, &repos); err != nil {
		t.Fatal(err)
	}
	crs, _ := dig(p, "cr", "nodes").([]any)
	if len(crs) != len(repos) || len(repos) == 0 || dig(crs[0], "tagsCount") != repos[0]["tags_count"] {
		t.Errorf("container repositories %v, REST %v", crs, repos)
	}

	// Ordering by finishedAt needs finished statuses, as GitLab's
	// DeploymentsFinder requires.
	status, out := gqlWith(t, srv, map[string]string{"Authorization": "Bearer sim-token"}, fmt.Sprintf(
		`query{project(fullPath:%q){environments{nodes{deployments(orderBy:{finishedAt:DESC}){nodes{iid}}}}}}`, path), nil)
	if status != http.StatusOK || out["errors"] == nil {
		t.Errorf("finishedAt order without statuses: %d %v", status, out)
	}
	// A guest sees no project (they are private).
	status, out = gqlWith(t, srv, nil, fmt.Sprintf(`query{projects(ids:["gid://gitlab/Project/%s"]){nodes{id}}}`, id), nil)
	if status != http.StatusOK || len(dig(out, "data", "projects", "nodes").([]any)) != 0 {
		t.Errorf("anonymous projects: %d %v", status, out)
	}
}
