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
