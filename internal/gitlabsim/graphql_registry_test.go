package gitlabsim_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/gitlabsim"
)

// A container repository's tags by GraphQL carry what REST's tag detail
// says (digest, revision, size, creation time, location), 20 a page
// whatever first asks (max_page_size: 20), in the registry's name order,
// and every tag comes once across the pages.
func TestGraphQLContainerRepositoryTags(t *testing.T) {
	_, srv := newServer(t, gitlabsim.Options{Seed: 7, Projects: 1, MRs: 2000, Pipelines: 100, Issues: 1})
	_, b := get(t, srv, "/api/v4/projects")
	var ps []map[string]any
	if err := json.Unmarshal(b, &ps); err != nil || len(ps) != 1 {
		t.Fatalf("projects: %s", b)
	}
	pid := idOf(ps[0]["id"])
	_, b = get(t, srv, "/api/v4/projects/"+pid+"/registry/repositories?tags_count=true")
	var repos []struct {
		ID        int64 `json:"id"`
		TagsCount int   `json:"tags_count"`
	}
	if err := json.Unmarshal(b, &repos); err != nil || len(repos) == 0 {
		t.Fatalf("repositories: %s", b)
	}
	rp := repos[0]
	if rp.TagsCount <= 20 {
		t.Fatalf("%d tags: too few to page", rp.TagsCount)
	}
	var names []string
	after := any(nil)
	for pages := 0; ; pages++ {
		data := gql(t, srv, `query($id: ContainerRepositoryID!, $after: String) {
			containerRepository(id: $id) { id tagsCount tags(first: 100, after: $after) {
				pageInfo { hasNextPage endCursor }
				nodes { name path location digest revision shortRevision totalSize createdAt publishedAt } } } }`,
			map[string]any{"id": fmt.Sprintf("gid://gitlab/ContainerRepository/%d", rp.ID), "after": after})
		cr := dig(data, "containerRepository")
		if dig(cr, "tagsCount") != float64(rp.TagsCount) {
			t.Fatalf("tagsCount %v, REST %d", dig(cr, "tagsCount"), rp.TagsCount)
		}
		nodes, _ := dig(cr, "tags", "nodes").([]any)
		more := dig(cr, "tags", "pageInfo", "hasNextPage") == true
		if len(nodes) > 20 || (more && len(nodes) != 20) {
			t.Fatalf("page %d: %d tags, more %v", pages, len(nodes), more)
		}
		for _, n := range nodes {
			name := dig(n, "name").(string)
			names = append(names, name)
			_, b := get(t, srv, fmt.Sprintf("/api/v4/projects/%s/registry/repositories/%d/tags/%s", pid, rp.ID, url.PathEscape(name)))
			var rest map[string]any
			if err := json.Unmarshal(b, &rest); err != nil {
				t.Fatalf("tag %s: %s", name, b)
			}
			for gqlField, restField := range map[string]string{"path": "path", "location": "location", "digest": "digest",
				"revision": "revision", "shortRevision": "short_revision"} {
				if g, r := dig(n, gqlField), rest[restField]; fmt.Sprint(g) != fmt.Sprint(r) {
					t.Errorf("tag %s %s: GraphQL %v, REST %s %v", name, gqlField, g, restField, r)
				}
			}
			// GitLab's Time is at whole seconds.
			created, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(rest["created_at"]))
			if g := dig(n, "createdAt"); g != created.UTC().Truncate(time.Second).Format(time.RFC3339) || dig(n, "publishedAt") != g {
				t.Errorf("tag %s createdAt %v publishedAt %v: REST created_at %v", name, g, dig(n, "publishedAt"), rest["created_at"])
			}
			// BigInt is written as a string.
			if g, r := dig(n, "totalSize"), rest["total_size"]; g != fmt.Sprintf("%.0f", r) {
				t.Errorf("tag %s totalSize: GraphQL %#v, REST %v", name, g, r)
			}
		}
		if !more {
			break
		}
		after = dig(cr, "tags", "pageInfo", "endCursor")
	}
	if len(names) != rp.TagsCount {
		t.Fatalf("%d tags over the pages, REST counts %d", len(names), rp.TagsCount)
	}
	for i := 1; i < len(names); i++ {
		if names[i-1] >= names[i] {
			t.Fatalf("tags not in name order, or repeated: %q then %q", names[i-1], names[i])
		}
	}
	// An id of another model, or of no repository, is null, as GitLab
	// answers for what the user cannot see.
	data := gql(t, srv, `query{containerRepository(id:"gid://gitlab/ContainerRepository/999999"){id}}`, nil)
	if dig(data, "containerRepository") != nil {
		t.Errorf("unknown repository: %v", data)
	}
}
