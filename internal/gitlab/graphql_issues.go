package gitlab

import (
	"context"
	"fmt"

	gl "gitlab.com/gitlab-org/api/client-go/v2"
)

// The notes of several pages of issues are read in one GraphQL query, one
// aliased issues(iids:) field per hundred issues (graphql_aliases.go),
// instead of one REST request per issue.
//
// How many fields fit comes from GitLab's scoring (Types::BaseField,
// Resolvers::BaseResolver; internal/gitlabsim/graphql_complexity.go does
// the same). One field at the first level (100 issues, 100 notes each):
//
//	note fragment: 8 plain fields + author { username } (1+1)   10
//	notes' nodes 1+10, pageInfo 1+2                             14
//	notes: a connection resolver, (14+1) grown 1% a node (100)  30
//	issues' nodes: 1 + iid 1 + notes 30                         32
//	issues: a resolver, 32+1; filtered by iids, not grown       33
//
// and project, a resolver, adds 1 to its fields: seven fields score 232 of
// the 250 a signed-in user may spend, eight 265. TestIssueNotesAliasesFit
// checks this against the simulator's scorer.
const (
	// issueNotesFieldCost is the score of one aliased issues(iids:) field
	// of gqlIssueNotesQuery at the first level of graphQLLevels.
	issueNotesFieldCost = 33
	// issueNotesAliases is how many fields a query starts with.
	issueNotesAliases = (gitLabMaxComplexity - 1) / issueNotesFieldCost
)

// gqlIssueNotesQuery reads the notes of the issues in $iids0…$iids<n-1>,
// one aliased field (i0…) per list.
func gqlIssueNotesQuery(n int) string {
	return aliasedQuery("labtrailIssueNotes", "i", "issues",
		"iid notes(first: $nested) { pageInfo { hasNextPage endCursor } nodes { ...labtrailNote } }", n, gqlNoteFields)
}

// issueNotesGraphQL returns the notes of the issues it could read by
// GraphQL, by iid; the others (more notes than a page, GraphQL not
// available or refusing) are left to REST. Its error is one that would
// make the REST path fail too.
func (c *Client) issueNotesGraphQL(ctx context.Context, p Project, is []*gl.Issue) (map[int64][]*gl.Note, error) {
	out := map[int64][]*gl.Note{}
	iids := uniqueIIDs(is, func(i *gl.Issue) int64 { return i.IID })
	err := aliasedBatches(c, &c.issuePlan, p, iids, func(lists [][]string, size, nested int) error {
		return c.issueNotesBatch(ctx, p, lists, size, nested, out)
	})
	return out, err
}

type gqlIssueNotes struct {
	IID   string   `json:"iid"`
	Notes gqlNotes `json:"notes"`
}

// issueNotesBatch is one query for the issues of lists, a field each.
func (c *Client) issueNotesBatch(ctx context.Context, p Project, lists [][]string, size, nested int, out map[int64][]*gl.Note) error {
	var data aliasedAnswer[gqlIssueNotes]
	desc := fmt.Sprintf("notes of %d issues of %s (GraphQL)", listsLen(lists), p.selector())
	if err := c.graphQL(ctx, desc, gqlIssueNotesQuery(len(lists)), aliasedVars(p, lists, size, nested), &data); err != nil {
		return err
	}
	got := map[int64][]*gl.Note{}
	err := data.eachNode("issue", func(n *gqlIssueNotes) string { return n.IID }, func(n *gqlIssueNotes, iid int64) error {
		if n.Notes.PageInfo.HasNextPage {
			return nil // more than a page: left to REST
		}
		notes := make([]*gl.Note, 0, len(n.Notes.Nodes))
		for _, gn := range n.Notes.Nodes {
			note, err := gn.note("Issue", iid)
			if err != nil {
				return err
			}
			notes = append(notes, note)
		}
		got[iid] = notes
		return nil
	})
	if err != nil {
		return err
	}
	for iid, notes := range got {
		out[iid] = notes
	}
	return nil
}
