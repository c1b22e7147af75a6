package gitlab

import (
	"context"
	"fmt"

	gl "gitlab.com/gitlab-org/api/client-go/v2"
)

// The details of merge requests in one GraphQL query, instead of four
// REST calls per merge request: approvals (who, and whether enough),
// per-file diff stats, the commits' authored dates and the notes. Filtered
// by iids, GitLab scores a page of them the same whatever the number of
// merge requests, so one query carries several pages, an aliased
// mergeRequests(iids:) field each (graphql_aliases.go); only an MR with
// more than a page of notes or commits needs a follow-up.
//
// One field at the first level (100 merge requests, 100 notes and commits
// each), as GitLab scores it (internal/gitlabsim/graphql_complexity.go):
//
//	note fragment: 8 plain fields + author { username } (1+1)      10
//	notes: a connection resolver, (nodes 11 + pageInfo 3 + 1)×2    30
//	commits: calls Gitaly, 2 + nodes 2 + pageInfo 3                 7
//	diffStats: calls Gitaly, 2 + 3 fields                           5
//	approvedBy: 1 + nodes 2 + pageInfo 2                            5
//	approved: calls Gitaly                                          2
//	nodes: 1 + iid 1 + the above                                   51
//	mergeRequests: a resolver, 51+1, +1 for its default sort;
//	  filtered by iids, not grown                                  53
//
// and project, a resolver, adds 1: four fields score 213 of the 250 a
// signed-in user may spend, five 266 (TestMergeRequestDetailsAliasesFit).
const (
	mrDetailsFieldCost = 53
	mrDetailsAliases   = (gitLabMaxComplexity - 1) / mrDetailsFieldCost
)

const gqlNoteFields = `fragment labtrailNote on Note {
  id body system internal createdAt updatedAt resolvable resolved
  author { username }
}`

// gqlMergeRequestDetailFields are the details of a merge request; $nested
// is the page size of its commits and notes.
const gqlMergeRequestDetailFields = `fragment labtrailMergeRequestDetails on MergeRequest {
  iid
  approved
  approvedBy { pageInfo { hasNextPage } nodes { username } }
  diffStats { path additions deletions }
  commits(first: $nested) { pageInfo { hasNextPage endCursor } nodes { authoredDate } }
  notes(first: $nested) { pageInfo { hasNextPage endCursor } nodes { ...labtrailNote } }
}`

// gqlMergeRequestsQuery reads the details of the merge requests in
// $iids0…$iids<n-1>, one aliased field (m0…) per list.
func gqlMergeRequestsQuery(n int) string {
	return aliasedQuery("labtrailMergeRequests", "m", "mergeRequests", "...labtrailMergeRequestDetails", n,
		gqlMergeRequestDetailFields, gqlNoteFields)
}

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
	iids := uniqueIIDs(mrs, func(mr *gl.BasicMergeRequest) int64 { return mr.IID })
	err := aliasedBatches(c, &c.mrPlan, p, iids, func(lists [][]string, size, nested int) error {
		got, err := c.mergeRequestBatch(ctx, p, lists, size, nested)
		for iid, d := range got {
			if byIID[iid] != nil {
				out[iid] = d
			}
		}
		return err
	})
	return out, err
}

// mergeRequestBatch is one query for the merge requests of lists, a field
// each, plus the follow-ups of those whose notes or commits fill more than
// a page.
func (c *Client) mergeRequestBatch(ctx context.Context, p Project, lists [][]string, size, nested int) (map[int64]MergeRequestDetails, error) {
	var data aliasedAnswer[gqlMergeRequest]
	desc := fmt.Sprintf("details of %d merge requests of %s (GraphQL)", listsLen(lists), p.selector())
	if err := c.graphQL(ctx, desc, gqlMergeRequestsQuery(len(lists)), aliasedVars(p, lists, size, nested), &data); err != nil {
		return nil, err
	}
	out := map[int64]MergeRequestDetails{}
	err := data.eachNode("merge request", func(n *gqlMergeRequest) string { return n.IID }, func(n *gqlMergeRequest, iid int64) error {
		d, whole, err := c.completeMergeRequest(ctx, p, n, iid)
		if whole {
			out[iid] = d
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// completeMergeRequest reads the rest of n's notes and commits where they
// fill more than a page and converts its details; whole is false when
// they are left to REST (over a hundred approvers, or the merge request
// went away meanwhile).
func (c *Client) completeMergeRequest(ctx context.Context, p Project, n *gqlMergeRequest, iid int64) (d MergeRequestDetails, whole bool, err error) {
	if n.ApprovedBy.PageInfo.HasNextPage {
		return d, false, nil
	}
	notes, commits := n.Notes, n.Commits
	for notes.PageInfo.HasNextPage || commits.PageInfo.HasNextPage {
		more, err := c.mergeRequestMore(ctx, p, n.IID, notes.PageInfo, commits.PageInfo)
		if err != nil {
			return d, false, err
		}
		if more == nil {
			return d, false, nil
		}
		notes.Nodes = append(notes.Nodes, more.Notes.Nodes...)
		notes.PageInfo = more.Notes.PageInfo
		commits.Nodes = append(commits.Nodes, more.Commits.Nodes...)
		commits.PageInfo = more.Commits.PageInfo
	}
	n.Notes, n.Commits = notes, commits
	d, err = n.details(iid)
	return d, err == nil, err
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
