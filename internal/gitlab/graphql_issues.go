package gitlab

import (
	"context"
	"fmt"
	"strconv"

	gl "gitlab.com/gitlab-org/api/client-go/v2"
)

// gqlIssueNotesQuery reads the notes of a page of issues in one request,
// as merge requests' details are read: one REST request per issue
// otherwise.
const gqlIssueNotesQuery = `query labtrailIssueNotes($project: ID!, $iids: [String!], $first: Int, $nested: Int) {
  project(fullPath: $project) {
    issues(iids: $iids, first: $first) {
      nodes {
        iid
        notes(first: $nested) { pageInfo { hasNextPage endCursor } nodes { ...labtrailNote } }
      }
    }
  }
}
` + gqlNoteFields

// issueNotesGraphQL returns the notes of the issues it could read by
// GraphQL, by iid; the others (more notes than a page, GraphQL not
// available or refusing) are left to REST. Its error is one that would
// make the REST path fail too.
func (c *Client) issueNotesGraphQL(ctx context.Context, p Project, is []*gl.Issue) (map[int64][]*gl.Note, error) {
	out := map[int64][]*gl.Note{}
	err := graphQLBatches(c, &c.issuePlan, p, is, func(chunk []*gl.Issue, nested int) error {
		return c.issueNotesBatch(ctx, p, chunk, nested, out)
	})
	return out, err
}

func (c *Client) issueNotesBatch(ctx context.Context, p Project, chunk []*gl.Issue, nested int, out map[int64][]*gl.Note) error {
	iids := make([]string, len(chunk))
	for i, is := range chunk {
		iids[i] = strconv.FormatInt(is.IID, 10)
	}
	var data struct {
		Project *struct {
			Issues struct {
				Nodes []struct {
					IID   string   `json:"iid"`
					Notes gqlNotes `json:"notes"`
				} `json:"nodes"`
			} `json:"issues"`
		} `json:"project"`
	}
	desc := fmt.Sprintf("notes of %d issues of %s (GraphQL)", len(chunk), p.selector())
	if err := c.graphQL(ctx, desc, gqlIssueNotesQuery, map[string]any{
		"project": p.Path, "iids": iids, "first": len(chunk), "nested": nested,
	}, &data); err != nil {
		return err
	}
	if data.Project == nil {
		return nil // REST will tell what is wrong
	}
	for _, n := range data.Project.Issues.Nodes {
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
		out[iid] = notes
	}
	return nil
}
