package gitlab

import (
	"strconv"
	"strings"
	"testing"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/gitlabsim"
)

// TestMergeRequestDetailsAliasesFit: checkAliasesFit for merge request
// details, and the fields m0… each with its own iids.
func TestMergeRequestDetailsAliasesFit(t *testing.T) {
	checkAliasesFit(t, gqlMergeRequestsQuery, "labtrailMergeRequests", mrDetailsFieldCost, mrDetailsAliases)
	q := gqlMergeRequestsQuery(3)
	for i := range 3 {
		field := "m" + strconv.Itoa(i) + ": mergeRequests(iids: $iids" + strconv.Itoa(i) + ", first: $first)"
		if strings.Count(q, field) != 1 {
			t.Errorf("query without %q:\n%s", field, q)
		}
	}
}

// TestMergeRequestDetailsSeveralPagesAQuery: a backfill of 1,050 merge
// requests (11 pages) reads their details in ceil(11/4) GraphQL queries
// and gives the same pages, events and cursors as REST; so does one whose
// queries GitLab refuses as too complex until they have fewer fields, and
// the plan keeps that.
func TestMergeRequestDetailsSeveralPagesAQuery(t *testing.T) {
	const mrs = 1050
	pages := (mrs + perPage - 1) / perPage
	world := gitlabsim.Options{Seed: 9, MRs: mrs, Issues: -1}
	restSim, rest, p := simProject(t, world, func(c *Config) { c.GraphQL = GraphQLOff }, nil)
	want := backfillPages(t, rest, p, change.KindMergeRequest)
	if len(want) != pages {
		t.Fatalf("%d pages by REST, want %d", len(want), pages)
	}
	const restApprovals = "GET /api/v4/projects/:id/merge_requests/:merge_request_iid/approvals"
	if n := restSim.Stats().ByPath[restApprovals]; n < mrs {
		t.Fatalf("%d REST approvals requests for %d merge requests", n, mrs)
	}
	for _, tc := range []struct {
		name          string
		maxComplexity int
		graphql       func(n int64) bool
		aliases       int
	}{
		{name: "GitLab's limit", aliases: mrDetailsAliases,
			graphql: func(n int64) bool { return n == int64((pages+mrDetailsAliases-1)/mrDetailsAliases) }},
		// Four fields (213) refused, two (107) pass: one refusal, then two
		// pages a query.
		{name: "two fields allowed", maxComplexity: 150, aliases: 2,
			graphql: func(n int64) bool { return n >= int64(1+pages/2) && n <= int64(2+pages/2+1) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim, c, p := simProject(t, world, nil, nil)
			sim.SetGraphQLMaxComplexity(tc.maxComplexity)
			got := backfillPages(t, c, p, change.KindMergeRequest)
			st := sim.Stats()
			if n := st.ByPath["POST /api/graphql"]; !tc.graphql(n) {
				t.Errorf("%d GraphQL requests", n)
			}
			if n := st.ByPath[restApprovals]; n != 0 {
				t.Errorf("%d REST approvals requests", n)
			}
			if a, l := c.mrPlan.aliases(), int(c.mrPlan.level.Load()); a != tc.aliases || l != 0 {
				t.Errorf("plan left at %d fields, level %d; want %d, 0", a, l, tc.aliases)
			}
			if len(got) != len(want) {
				t.Fatalf("%d pages, want %d", len(got), len(want))
			}
			for i := range want {
				if got[i] != want[i] {
					t.Errorf("page %d differs from REST's:\n%.600s\nwant\n%.600s", i+1, got[i], want[i])
				}
			}
		})
	}
}
