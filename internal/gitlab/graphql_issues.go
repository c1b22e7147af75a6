package gitlab

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"

	gl "gitlab.com/gitlab-org/api/client-go/v2"
)

// The notes of several pages of issues are read in one GraphQL query, one
// aliased issues(iids:) field per hundred issues, instead of one REST
// request per issue.
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
	// gitLabMaxComplexity is GitLab's AUTHENTICATED_MAX_COMPLEXITY.
	gitLabMaxComplexity = 250
	// issueNotesAliases is how many fields a query starts with.
	issueNotesAliases = (gitLabMaxComplexity - 1) / issueNotesFieldCost
)

// gqlIssueNotesQuery reads the notes of the issues in $iids0…$iids<n-1>,
// one aliased field (i0…) per list. The iids only ever travel as
// variables; the text depends on n alone.
func gqlIssueNotesQuery(n int) string {
	var b strings.Builder
	b.WriteString("query labtrailIssueNotes($project: ID!, $first: Int, $nested: Int")
	for i := range n {
		fmt.Fprintf(&b, ", $iids%d: [String!]", i)
	}
	b.WriteString(") {\n  project(fullPath: $project) {\n")
	for i := range n {
		fmt.Fprintf(&b, "    i%d: issues(iids: $iids%d, first: $first) {\n", i, i)
		b.WriteString("      nodes {\n        iid\n" +
			"        notes(first: $nested) { pageInfo { hasNextPage endCursor } nodes { ...labtrailNote } }\n" +
			"      }\n    }\n")
	}
	b.WriteString("  }\n}\n")
	b.WriteString(gqlNoteFields)
	return b.String()
}

// issuesPlan is graphQLPlan for issue notes, plus the number of
// aliased fields a query carries: it is halved (7, 3, 1) when GitLab
// refuses a query of several fields, before the page sizes shrink.
type issuesPlan struct {
	graphQLPlan
	fewer atomic.Int32 // halvings of issueNotesAliases so far
}

func (g *issuesPlan) aliases() int {
	return max(1, issueNotesAliases>>g.fewer.Load())
}

// issueNotesHold is how many issues the issue walk gathers before reading
// their notes: what one query carries, 0 when they go by REST.
func (c *Client) issueNotesHold() int {
	g := &c.issuePlan
	if !c.graphQLFor(&g.graphQLPlan) {
		return 0
	}
	size, _, _ := g.sizes()
	return size * g.aliases()
}

// issueNotesGraphQL returns the notes of the issues it could read by
// GraphQL, by iid; the others (more notes than a page, GraphQL not
// available or refusing) are left to REST. Its error is one that would
// make the REST path fail too.
func (c *Client) issueNotesGraphQL(ctx context.Context, p Project, is []*gl.Issue) (map[int64][]*gl.Note, error) {
	out := map[int64][]*gl.Note{}
	// An issue updated while the walk went on comes twice, once a version.
	var todo []string
	seen := map[int64]bool{}
	for _, i := range is {
		if !seen[i.IID] {
			seen[i.IID] = true
			todo = append(todo, strconv.FormatInt(i.IID, 10))
		}
	}
	g := &c.issuePlan
	for len(todo) > 0 && c.graphQLFor(&g.graphQLPlan) {
		level, fewer := int(g.level.Load()), g.fewer.Load()
		size, nested, _ := g.sizes()
		chunk := todo[:min(len(todo), size*g.aliases())]
		var lists [][]string
		for rest := chunk; len(rest) > 0; rest = rest[min(size, len(rest)):] {
			lists = append(lists, rest[:min(size, len(rest))])
		}
		err := c.issueNotesBatch(ctx, p, lists, size, nested, out)
		if errors.Is(err, errGraphQLRefused) {
			c.log.Info("GitLab refused a GraphQL query as too complex; asking for less", "project", p.selector(), "reason", err.Error())
			if len(lists) > 1 {
				g.fewer.CompareAndSwap(fewer, fewer+1)
			} else {
				g.shrink(level)
			}
			continue
		}
		if err != nil {
			return out, c.graphQLFailed(&g.graphQLPlan, err)
		}
		todo = todo[len(chunk):]
	}
	return out, nil
}

type gqlIssueNodes struct {
	Nodes []struct {
		IID   string   `json:"iid"`
		Notes gqlNotes `json:"notes"`
	} `json:"nodes"`
}

// issueNotesBatch is one query for the issues of lists, a field each.
func (c *Client) issueNotesBatch(ctx context.Context, p Project, lists [][]string, size, nested int, out map[int64][]*gl.Note) error {
	vars := map[string]any{"project": p.Path, "first": size, "nested": nested}
	n := 0
	for i, iids := range lists {
		vars["iids"+strconv.Itoa(i)] = iids
		n += len(iids)
	}
	var data struct {
		// By alias; nil when GitLab shows no such project to the token.
		Project map[string]*gqlIssueNodes `json:"project"`
	}
	desc := fmt.Sprintf("notes of %d issues of %s (GraphQL)", n, p.selector())
	if err := c.graphQL(ctx, desc, gqlIssueNotesQuery(len(lists)), vars, &data); err != nil {
		return err
	}
	got := map[int64][]*gl.Note{}
	for _, field := range data.Project { // none: REST will tell what is wrong
		if field == nil {
			continue
		}
		for _, n := range field.Nodes {
			iid, err := strconv.ParseInt(n.IID, 10, 64)
			if err != nil {
				return fmt.Errorf("gitlab: issue iid %q from GraphQL: %w", n.IID, err)
			}
			if n.Notes.PageInfo.HasNextPage {
				continue // more than a page: left to REST
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
		}
	}
	for iid, notes := range got {
		out[iid] = notes
	}
	return nil
}
