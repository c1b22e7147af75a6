package gitlab

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	gl "gitlab.com/gitlab-org/api/client-go/v2"
)

// MergeRequestDetails is what labtrail adds to a listed merge request,
// from the REST detail endpoints or from one GraphQL query for a whole
// page. A nil slice or Approvals means GitLab would not give that part
// (the MR went away meanwhile, or the token's user may not see it).
type MergeRequestDetails struct {
	// Approvals says who approves the MR and whether that is enough; the
	// approval times come from the notes.
	Approvals *gl.MergeRequestApprovals
	Files     []ChangedFile
	// Commits need only their authored dates.
	Commits []*gl.Commit
	Notes   []*gl.Note
}

// ChangedFile is one file of a merge request's diff, as GitLab's GraphQL
// diffStats gives it and as counted from the REST diff.
type ChangedFile struct {
	Path                 string
	Additions, Deletions int
}

// changedFiles counts the lines of REST diffs.
func changedFiles(diffs []*gl.MergeRequestDiff) []ChangedFile {
	out := make([]ChangedFile, 0, len(diffs))
	for _, f := range diffs {
		a, r := diffStats(f.Diff)
		out = append(out, ChangedFile{Path: f.NewPath, Additions: a, Deletions: r})
	}
	return out
}

func (c *Client) mergeRequestDetails(ctx context.Context, p Project, mr *gl.BasicMergeRequest) (MergeRequestDetails, error) {
	var d MergeRequestDetails
	desc := func(what string) string {
		return fmt.Sprintf("%s of merge request !%d of %s", what, mr.IID, p.selector())
	}
	skip := func(what string, err error) error {
		if optional(err) {
			c.log.Info("GitLab merge request detail not available", "project", p.selector(), "mr", mr.IID, "detail", what, "reason", err.Error())
			return nil
		}
		return err
	}

	_, err := c.call(ctx, desc("approvals"), "", func(o ...gl.RequestOptionFunc) (*gl.Response, error) {
		var resp *gl.Response
		var err error
		d.Approvals, resp, err = c.gl.MergeRequests.GetMergeRequestApprovals(p.ref(), mr.IID, o...)
		return resp, err
	})
	if err = skip("approvals", err); err != nil {
		return d, err
	}

	diffs, err := all(ctx, func(ctx context.Context, page int64, extra []gl.RequestOptionFunc) ([]*gl.MergeRequestDiff, *gl.Response, error) {
		opt := &gl.ListMergeRequestDiffsOptions{ListOptions: gl.ListOptions{PerPage: perPage, Page: page}}
		var diffs []*gl.MergeRequestDiff
		resp, err := c.call(ctx, desc("diffs"), "", func(o ...gl.RequestOptionFunc) (*gl.Response, error) {
			var resp *gl.Response
			var err error
			diffs, resp, err = c.gl.MergeRequests.ListMergeRequestDiffs(p.ref(), mr.IID, opt, append(o, extra...)...)
			return resp, err
		})
		return diffs, resp, err
	})
	switch {
	case optional(err):
		c.log.Info("GitLab merge request detail not available", "project", p.selector(), "mr", mr.IID, "detail", "diffs", "reason", err.Error())
	case err != nil:
		return d, err
	default:
		// Known and empty (not nil) is not the same as unknown.
		d.Files = changedFiles(diffs)
	}

	d.Commits, err = all(ctx, func(ctx context.Context, page int64, extra []gl.RequestOptionFunc) ([]*gl.Commit, *gl.Response, error) {
		opt := &gl.GetMergeRequestCommitsOptions{ListOptions: gl.ListOptions{PerPage: perPage, Page: page}}
		var cs []*gl.Commit
		resp, err := c.call(ctx, desc("commits"), "", func(o ...gl.RequestOptionFunc) (*gl.Response, error) {
			var resp *gl.Response
			var err error
			cs, resp, err = c.gl.MergeRequests.GetMergeRequestCommits(p.ref(), mr.IID, opt, append(o, extra...)...)
			return resp, err
		})
		return cs, resp, err
	})
	if err = skip("commits", err); err != nil {
		return d, err
	}

	d.Notes, err = c.notesOf(ctx, desc("notes"), func(opt gl.ListOptions, o ...gl.RequestOptionFunc) ([]*gl.Note, *gl.Response, error) {
		return c.gl.Notes.ListMergeRequestNotes(p.ref(), mr.IID, &gl.ListMergeRequestNotesOptions{
			ListOptions: opt, OrderBy: gl.Ptr("created_at"), Sort: gl.Ptr("asc")}, o...)
	})
	if err = skip("notes", err); err != nil {
		return d, err
	}
	return d, nil
}

// notesOf lists all notes of one MR or issue, oldest first: new notes land
// on the last page, so offset pages do not shift under the walk.
func (c *Client) notesOf(ctx context.Context, desc string, list func(gl.ListOptions, ...gl.RequestOptionFunc) ([]*gl.Note, *gl.Response, error)) ([]*gl.Note, error) {
	return all(ctx, func(ctx context.Context, page int64, extra []gl.RequestOptionFunc) ([]*gl.Note, *gl.Response, error) {
		var notes []*gl.Note
		resp, err := c.call(ctx, desc, "", func(o ...gl.RequestOptionFunc) (*gl.Response, error) {
			var resp *gl.Response
			var err error
			notes, resp, err = list(gl.ListOptions{PerPage: perPage, Page: page}, append(o, extra...)...)
			return resp, err
		})
		return notes, resp, err
	})
}

// MergeRequestEvents converts a merge request with its details: the MR's
// event first, then one KindNote event per note. Times that come from the
// details (approvals, first commit, notes) are kept to the whole second,
// which is all GitLab's GraphQL API gives, so that the events do not
// depend on which API the details came from.
func MergeRequestEvents(p Project, mr *gl.BasicMergeRequest, d MergeRequestDetails) []change.Event {
	ev := MergeRequestEvent(p, mr)

	approvals := mergeRequestApprovals(d)
	list := make([]map[string]any, 0, len(approvals))
	for _, a := range approvals {
		list = append(list, map[string]any{"user": a.user, "approved_at": stampOrNil(a.at)})
		if !a.at.IsZero() {
			ev.Transitions = append(ev.Transitions, change.Transition{State: "approved", At: a.at})
		}
	}
	ev.Attrs["approvals"] = list
	if d.Approvals != nil {
		ev.Attrs["approved"] = d.Approvals.Approved
	} else {
		ev.Attrs["approved"] = len(approvals) > 0
	}
	slices.SortStableFunc(ev.Transitions, func(a, b change.Transition) int { return a.At.Compare(b.At) })

	if d.Files != nil {
		files := make([]map[string]any, 0, len(d.Files))
		var adds, dels int
		for _, f := range d.Files {
			adds, dels = adds+f.Additions, dels+f.Deletions
			files = append(files, map[string]any{"path": f.Path, "additions": f.Additions, "deletions": f.Deletions})
		}
		ev.Attrs["changed_files"] = files
		ev.Attrs["additions"] = adds
		ev.Attrs["deletions"] = dels
	}
	if d.Commits != nil {
		var first time.Time
		for _, c := range d.Commits {
			if t := seconds(utc(c.AuthoredDate)); !t.IsZero() && (first.IsZero() || t.Before(first)) {
				first = t
			}
		}
		ev.Attrs["commit_count"] = len(d.Commits)
		ev.Attrs["first_commit_at"] = stampOrNil(first)
	}

	out := []change.Event{ev}
	for _, n := range d.Notes {
		if n == nil {
			continue
		}
		// commit_id is kept for notes on commits only: GitLab's GraphQL
		// API has no such field for notes on merge requests.
		mn := *n
		mn.CommitID = ""
		ne := NoteEvent(p, &mn, mr.WebURL)
		if ne.Attrs["noteable_iid"] == nil || ne.Attrs["noteable_iid"] == int64(0) {
			ne.Attrs["noteable_iid"] = mr.IID
		}
		if ne.Attrs["noteable_type"] == "" {
			ne.Attrs["noteable_type"] = "MergeRequest"
		}
		out = append(out, ne)
	}
	return out
}

type approval struct {
	user string
	at   time.Time
}

// approvedNote is how GitLab's system note for an approval begins; it
// dates each approval (GraphQL's approvedBy has no time; REST's approved_at
// is left aside so that both APIs give the same).
const (
	approvedNote   = "approved this merge request"
	unapprovedNote = "unapproved this merge request"
)

// mergeRequestApprovals says who approves the MR now and since when, in
// order of approval: the approvals (REST endpoint or GraphQL approvedBy)
// say who, the latest "approved this merge request" system note of each
// user says when, to the second, and stands in for the approvals when
// they are not available.
func mergeRequestApprovals(d MergeRequestDetails) []approval {
	noted := map[string]time.Time{}
	var order []string
	current := map[string]bool{}
	for _, n := range d.Notes {
		if n == nil || !n.System {
			continue
		}
		body := strings.TrimSpace(n.Body)
		switch {
		case strings.HasPrefix(body, approvedNote):
			u := n.Author.Username
			if _, ok := noted[u]; !ok {
				order = append(order, u)
			}
			noted[u] = seconds(utc(n.CreatedAt))
			current[u] = true
		case strings.HasPrefix(body, unapprovedNote):
			current[n.Author.Username] = false
		}
	}
	var out []approval
	if d.Approvals != nil {
		for _, a := range d.Approvals.ApprovedBy {
			if a == nil || a.User == nil {
				continue
			}
			out = append(out, approval{user: a.User.Username, at: noted[a.User.Username]})
		}
	} else {
		for _, u := range order {
			if current[u] {
				out = append(out, approval{user: u, at: noted[u]})
			}
		}
	}
	slices.SortStableFunc(out, func(a, b approval) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return strings.Compare(a.user, b.user)
	})
	return out
}

// diffStats counts added and removed lines of one file's unified diff as
// GitLab returns it. Lines before the first hunk ("--- a/x", "+++ b/x")
// are headers, not changes; inside hunks every +/- line counts, even one
// whose content starts with "--".
func diffStats(diff string) (additions, deletions int) {
	inHunk := false
	for _, l := range strings.Split(diff, "\n") {
		switch {
		case strings.HasPrefix(l, "@@"):
			inHunk = true
		case !inHunk && (strings.HasPrefix(l, "+++") || strings.HasPrefix(l, "---")):
		case strings.HasPrefix(l, "+"):
			additions++
		case strings.HasPrefix(l, "-"):
			deletions++
		}
	}
	return additions, deletions
}

// NoteEvent converts a note of an MR, issue or commit. parentURL, when
// known, is the web page of what the note is on; GitLab gives notes no URL
// of their own.
func NoteEvent(p Project, n *gl.Note, parentURL string) change.Event {
	pid := p.ID
	if pid == 0 {
		pid = n.ProjectID
	}
	// Notes are kept to the whole second, as GitLab's GraphQL API gives
	// them.
	created := seconds(utc(n.CreatedAt))
	updated := firstSet(seconds(utc(n.UpdatedAt)), created)
	state := "comment"
	if n.System {
		state = "system"
	}
	attrs := map[string]any{
		"body":          excerpt(n.Body, 500),
		"system":        n.System,
		"noteable_type": n.NoteableType,
		"resolvable":    n.Resolvable,
		"internal":      n.Internal || n.Confidential,
	}
	if n.NoteableIID != 0 {
		attrs["noteable_iid"] = n.NoteableIID
	}
	if n.CommitID != "" {
		attrs["commit_id"] = n.CommitID
	}
	if n.Resolvable {
		attrs["resolved"] = n.Resolved
	}
	webURL := ""
	if parentURL != "" {
		webURL = fmt.Sprintf("%s#note_%d", parentURL, n.ID)
	}
	return change.Event{
		ID:          change.NoteID(pid, n.ID),
		Kind:        change.KindNote,
		ProjectID:   pid,
		ProjectPath: p.Path,
		Title:       firstLine(n.Body, 100),
		State:       state,
		Author:      n.Author.Username,
		WebURL:      webURL,
		SHA:         n.CommitID,
		CreatedAt:   created,
		UpdatedAt:   updated,
		OccurredAt:  created,
		Source:      change.SourcePoll,
		Attrs:       attrs,
		Transitions: []change.Transition{{State: state, At: created}},
	}
}
