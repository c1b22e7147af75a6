package gitlab

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	gl "gitlab.com/gitlab-org/api/client-go/v2"
)

// The details of a page of merge requests in one GraphQL query, instead of
// four REST calls per merge request: approvals (who, and whether enough),
// per-file diff stats, the commits' authored dates and the notes. Filtered
// by iids, GitLab scores the query the same whatever the number of merge
// requests, so one query carries the whole page; only an MR with more
// than a page of notes or commits needs a follow-up.

const gqlNoteFields = `fragment labtrailNote on Note {
  id body system internal createdAt updatedAt resolvable resolved
  author { username }
}`

const gqlMergeRequestsQuery = `query labtrailMergeRequests($project: ID!, $iids: [String!], $first: Int, $nested: Int) {
  project(fullPath: $project) {
    mergeRequests(iids: $iids, first: $first) {
      pageInfo { hasNextPage endCursor }
      nodes {
        iid
        approved
        approvedBy { pageInfo { hasNextPage } nodes { username } }
        diffStats { path additions deletions }
        commits(first: $nested) { pageInfo { hasNextPage endCursor } nodes { authoredDate } }
        notes(first: $nested) { pageInfo { hasNextPage endCursor } nodes { ...labtrailNote } }
      }
    }
  }
}
` + gqlNoteFields

// gqlMergeRequestMoreQuery continues the notes and commits of one merge
// request; a part with no more to read is asked for with first: 0.
const gqlMergeRequestMoreQuery = `query labtrailMergeRequestMore($project: ID!, $iid: String!,
    $notesFirst: Int, $notesAfter: String, $commitsFirst: Int, $commitsAfter: String) {
  project(fullPath: $project) {
    mergeRequest(iid: $iid) {
      commits(first: $commitsFirst, after: $commitsAfter) { pageInfo { hasNextPage endCursor } nodes { authoredDate } }
      notes(first: $notesFirst, after: $notesAfter) { pageInfo { hasNextPage endCursor } nodes { ...labtrailNote } }
    }
  }
}
` + gqlNoteFields

type gqlNote struct {
	ID         string   `json:"id"`
	Body       string   `json:"body"`
	System     bool     `json:"system"`
	Internal   *bool    `json:"internal"`
	CreatedAt  gqlTime  `json:"createdAt"`
	UpdatedAt  gqlTime  `json:"updatedAt"`
	Resolvable bool     `json:"resolvable"`
	Resolved   bool     `json:"resolved"`
	Author     *gqlUser `json:"author"`
}

type gqlCommits struct {
	PageInfo gqlPageInfo `json:"pageInfo"`
	Nodes    []struct {
		AuthoredDate gqlTime `json:"authoredDate"`
	} `json:"nodes"`
}

type gqlNotes struct {
	PageInfo gqlPageInfo `json:"pageInfo"`
	Nodes    []gqlNote   `json:"nodes"`
}

type gqlMergeRequest struct {
	IID        string `json:"iid"`
	Approved   bool   `json:"approved"`
	ApprovedBy struct {
		PageInfo gqlPageInfo `json:"pageInfo"`
		Nodes    []gqlUser   `json:"nodes"`
	} `json:"approvedBy"`
	DiffStats []struct {
		Path      string `json:"path"`
		Additions int    `json:"additions"`
		Deletions int    `json:"deletions"`
	} `json:"diffStats"`
	Commits gqlCommits `json:"commits"`
	Notes   gqlNotes   `json:"notes"`
}

// mergeRequestDetailsGraphQL fetches the details of mrs by GraphQL. Merge
// requests it returns no details for are left to the REST path: GraphQL
// is unavailable or refuses the query, or GitLab did not return them. Its
// error is one that would make the REST path fail too.
func (c *Client) mergeRequestDetailsGraphQL(ctx context.Context, p Project, mrs []*gl.BasicMergeRequest) (map[int64]MergeRequestDetails, error) {
	out := map[int64]MergeRequestDetails{}
	byIID := map[int64]*gl.BasicMergeRequest{}
	for _, mr := range mrs {
		byIID[mr.IID] = mr
	}
	err := graphQLBatches(c, &c.mrPlan, p, mrs, func(chunk []*gl.BasicMergeRequest, nested int) error {
		got, err := c.mergeRequestBatch(ctx, p, chunk, nested)
		for iid, d := range got {
			if byIID[iid] != nil {
				out[iid] = d
			}
		}
		return err
	})
	return out, err
}

// graphQLBatches runs batch over todo in chunks of g's sizes while g's
// details go by GraphQL: a chunk GitLab refuses as too complex is asked
// again smaller. It returns what graphQLFailed makes of another failure.
func graphQLBatches[T any](c *Client, g *graphQLPlan, p Project, todo []T, batch func(chunk []T, nested int) error) error {
	for len(todo) > 0 && c.graphQLFor(g) {
		level := int(g.level.Load())
		size, nested, _ := g.sizes()
		chunk := todo[:min(size, len(todo))]
		err := batch(chunk, nested)
		if errors.Is(err, errGraphQLRefused) {
			c.log.Info("GitLab refused a GraphQL query as too complex; asking for less", "project", p.selector(), "reason", err.Error())
			g.shrink(level)
			continue
		}
		if err != nil {
			return c.graphQLFailed(g, err)
		}
		todo = todo[len(chunk):]
	}
	return nil
}

// mergeRequestBatch is one query for chunk, plus the follow-ups of the
// merge requests whose notes or commits fill more than a page.
func (c *Client) mergeRequestBatch(ctx context.Context, p Project, chunk []*gl.BasicMergeRequest, nested int) (map[int64]MergeRequestDetails, error) {
	iids := make([]string, len(chunk))
	for i, mr := range chunk {
		iids[i] = strconv.FormatInt(mr.IID, 10)
	}
	var data struct {
		Project *struct {
			MergeRequests struct {
				Nodes []gqlMergeRequest `json:"nodes"`
			} `json:"mergeRequests"`
		} `json:"project"`
	}
	desc := fmt.Sprintf("details of %d merge requests of %s (GraphQL)", len(chunk), p.selector())
	err := c.graphQL(ctx, desc, gqlMergeRequestsQuery, map[string]any{
		"project": p.Path, "iids": iids, "first": len(chunk), "nested": nested,
	}, &data)
	if err != nil {
		return nil, err
	}
	out := map[int64]MergeRequestDetails{}
	if data.Project == nil {
		// GitLab shows no such project to the token by GraphQL; REST
		// will tell what is wrong.
		return out, nil
	}
	for _, n := range data.Project.MergeRequests.Nodes {
		iid, err := strconv.ParseInt(n.IID, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("gitlab: merge request iid %q from GraphQL: %w", n.IID, err)
		}
		if n.ApprovedBy.PageInfo.HasNextPage {
			continue // over a hundred approvers: left to REST
		}
		notes, commits := n.Notes, n.Commits
		for notes.PageInfo.HasNextPage || commits.PageInfo.HasNextPage {
			more, err := c.mergeRequestMore(ctx, p, n.IID, notes.PageInfo, commits.PageInfo)
			if err != nil {
				return nil, err
			}
			if more == nil {
				break
			}
			notes.Nodes = append(notes.Nodes, more.Notes.Nodes...)
			notes.PageInfo = more.Notes.PageInfo
			commits.Nodes = append(commits.Nodes, more.Commits.Nodes...)
			commits.PageInfo = more.Commits.PageInfo
		}
		if notes.PageInfo.HasNextPage || commits.PageInfo.HasNextPage {
			continue // the merge request went away meanwhile: left to REST
		}
		n.Notes, n.Commits = notes, commits
		d, err := n.details(iid)
		if err != nil {
			return nil, err
		}
		out[iid] = d
	}
	return out, nil
}

type gqlMergeRequestMore struct {
	Commits gqlCommits `json:"commits"`
	Notes   gqlNotes   `json:"notes"`
}

// mergeRequestMore reads the next page of notes and commits of one merge
// request; nil when GitLab no longer has it.
func (c *Client) mergeRequestMore(ctx context.Context, p Project, iid string, notes, commits gqlPageInfo) (*gqlMergeRequestMore, error) {
	vars := map[string]any{"project": p.Path, "iid": iid, "notesFirst": 0, "commitsFirst": 0}
	if notes.HasNextPage {
		vars["notesFirst"], vars["notesAfter"] = perPage, notes.EndCursor
	}
	if commits.HasNextPage {
		vars["commitsFirst"], vars["commitsAfter"] = perPage, commits.EndCursor
	}
	var data struct {
		Project *struct {
			MergeRequest *gqlMergeRequestMore `json:"mergeRequest"`
		} `json:"project"`
	}
	desc := fmt.Sprintf("notes and commits of merge request !%s of %s (GraphQL)", iid, p.selector())
	if err := c.graphQL(ctx, desc, gqlMergeRequestMoreQuery, vars, &data); err != nil {
		return nil, err
	}
	if data.Project == nil || data.Project.MergeRequest == nil {
		return nil, nil
	}
	more := data.Project.MergeRequest
	if !notes.HasNextPage {
		more.Notes = gqlNotes{}
	}
	if !commits.HasNextPage {
		more.Commits = gqlCommits{}
	}
	return more, nil
}

// details converts a merge request's GraphQL answer to what the REST
// detail endpoints give, so that both paths make the same events.
func (n *gqlMergeRequest) details(iid int64) (MergeRequestDetails, error) {
	d := MergeRequestDetails{
		Approvals: &gl.MergeRequestApprovals{Approved: n.Approved, ApprovedBy: []*gl.MergeRequestApproverUser{}},
		Files:     []ChangedFile{},
		Commits:   []*gl.Commit{},
		Notes:     []*gl.Note{},
	}
	for _, u := range n.ApprovedBy.Nodes {
		d.Approvals.ApprovedBy = append(d.Approvals.ApprovedBy, &gl.MergeRequestApproverUser{User: &gl.BasicUser{Username: u.Username}})
	}
	for _, f := range n.DiffStats {
		d.Files = append(d.Files, ChangedFile{Path: f.Path, Additions: f.Additions, Deletions: f.Deletions})
	}
	for _, cm := range n.Commits.Nodes {
		d.Commits = append(d.Commits, &gl.Commit{AuthoredDate: cm.AuthoredDate.ptr()})
	}
	for _, gn := range n.Notes.Nodes {
		note, err := gn.note("MergeRequest", iid)
		if err != nil {
			return d, err
		}
		d.Notes = append(d.Notes, note)
	}
	return d, nil
}

// note is a GraphQL note as REST gives it, on the noteable of the given
// type and iid.
func (gn gqlNote) note(noteableType string, iid int64) (*gl.Note, error) {
	id, err := gidNumber(gn.ID)
	if err != nil {
		return nil, err
	}
	note := &gl.Note{
		ID: id, Body: gn.Body, System: gn.System, Author: gl.NoteAuthor{Username: gn.Author.name()},
		CreatedAt: gn.CreatedAt.ptr(), UpdatedAt: gn.UpdatedAt.ptr(),
		Resolvable: gn.Resolvable, Resolved: gn.Resolved,
		NoteableType: noteableType, NoteableIID: iid,
	}
	if gn.Internal != nil {
		note.Internal = *gn.Internal
	}
	return note, nil
}
