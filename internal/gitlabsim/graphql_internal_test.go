package gitlabsim

import "testing"

// TestGraphQLDepth: the schema served has no cycle deep enough to pass
// GitLab's 20 levels, so depth is checked on the analysis itself.
func TestGraphQLDepth(t *testing.T) {
	q := `query($p: ID!) { project(fullPath: $p) { mergeRequests { nodes { notes { nodes { author { username } } } } } } }`
	c, d, ok := analyze(q, "", map[string]any{"p": "a/b"})
	if !ok || d != 7 || c == 0 {
		t.Fatalf("complexity %d depth %d ok %v, want depth 7", c, d, ok)
	}
	fragment := `query { project(fullPath: "a/b") { ...F } } fragment F on Project { pipelines { nodes { jobs { nodes { stage { name } } } } } }`
	if _, d, _ := analyze(fragment, "", nil); d != 7 {
		t.Errorf("depth through a fragment %d, want 7", d)
	}
	if got := limitErrors(10, 21, 250, graphQLMaxDepth); len(got) != 1 || got[0] != "Query has depth of 21, which exceeds max depth of 20" {
		t.Errorf("limit errors %q", got)
	}
	// An anonymous query may nest 15 deep and score 200.
	if got := limitErrors(201, 16, anonGraphQLMaxComplexity, anonGraphQLMaxDepth); len(got) != 2 ||
		got[0] != "Query has depth of 16, which exceeds max depth of 15" || got[1] != "Query has complexity of 201, which exceeds max complexity of 200" {
		t.Errorf("anonymous limit errors %q", got)
	}
}

// TestGraphQLTagsComplexity: a container repository's tags connection is
// scored with its own max_page_size (20), not the schema's 100, as
// GitLab's BaseField does: first: 100 costs what first: 20 does.
func TestGraphQLTagsComplexity(t *testing.T) {
	q := func(first int) string {
		return `query { containerRepository(id: "gid://gitlab/ContainerRepository/1") { tags(first: ` + itoa(int64(first)) +
			`) { pageInfo { hasNextPage endCursor } nodes { name digest revision totalSize createdAt location } } } }`
	}
	// nodes 1+6, pageInfo 1+2, tags (10+1)·(1+20%) = 13, containerRepository 1+13.
	for _, first := range []int{20, 100} {
		if c, d, ok := analyze(q(first), "", nil); !ok || c != 14 || d != 4 {
			t.Errorf("first %d: complexity %d depth %d ok %v, want 14 and 4", first, c, d, ok)
		}
	}
	if c, _, _ := analyze(q(5), "", nil); c != 12 {
		t.Errorf("first 5: complexity %d, want 12 (11·1.05, then 1 more)", c)
	}
}
