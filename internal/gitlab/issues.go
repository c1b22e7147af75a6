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

// issues pages the project's issues (all types, incidents included) by
// time and adds each changed issue's notes to its page. The notes of
// several pages come in one GraphQL query, so the walk holds its pages
// (heldWalk).
func (c *Client) issues(ctx context.Context, p Project, since time.Time, opts FetchOptions, fn func(Page) error) error {
	list := func(ctx context.Context, after time.Time, page int64) ([]*gl.Issue, *gl.Response, error) {
		opt := &gl.ListProjectIssuesOptions{
			ListOptions:  gl.ListOptions{PerPage: perPage, Page: page},
			Scope:        gl.Ptr("all"),
			State:        gl.Ptr("all"),
			OrderBy:      gl.Ptr("updated_at"),
			Sort:         gl.Ptr("asc"),
			UpdatedAfter: afterParam(after),
		}
		var is []*gl.Issue
		resp, err := c.listCall(ctx, p, "issues", func(o ...gl.RequestOptionFunc) (*gl.Response, error) {
			var resp *gl.Response
			var err error
			is, resp, err = c.gl.Issues.ListProjectIssues(p.ref(), opt, o...)
			return resp, err
		})
		return is, resp, err
	}
	return heldWalk(ctx, change.KindIssue, since, opts, list,
		func(is *gl.Issue) (int64, time.Time) { return is.ID, utc(is.UpdatedAt) },
		func(is *gl.Issue) string { return change.IssueID(p.ID, is.IID) },
		func() int { return c.hold(&c.issuePlan) },
		func(is []*gl.Issue) ([][]change.Event, error) { return c.issuesWithNotes(ctx, p, is) }, fn)
}

// issuesWithNotes reads the notes of is, by GraphQL where it can and by
// REST for the rest, and converts each issue with its notes.
func (c *Client) issuesWithNotes(ctx context.Context, p Project, is []*gl.Issue) ([][]change.Event, error) {
	viaGraphQL, err := c.issueNotesGraphQL(ctx, p, is)
	if err != nil {
		return nil, err
	}
	per := make([][]change.Event, len(is))
	err = c.forEach(ctx, len(is), func(ctx context.Context, i int) error {
		if notes, ok := viaGraphQL[is[i].IID]; ok {
			per[i] = IssueEvents(p, is[i], notes)
			return nil
		}
		desc := fmt.Sprintf("notes of issue #%d of %s", is[i].IID, p.selector())
		notes, err := c.notesOf(ctx, desc, func(opt gl.ListOptions, o ...gl.RequestOptionFunc) ([]*gl.Note, *gl.Response, error) {
			return c.gl.Notes.ListIssueNotes(p.ref(), is[i].IID, &gl.ListIssueNotesOptions{
				ListOptions: opt, OrderBy: gl.Ptr("created_at"), Sort: gl.Ptr("asc")}, o...)
		})
		if optional(err) {
			c.log.Info("GitLab issue notes not available", "project", p.selector(), "issue", is[i].IID, "reason", err.Error())
			notes, err = nil, nil
		}
		if err != nil {
			return err
		}
		per[i] = IssueEvents(p, is[i], notes)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return per, nil
}

// IssueEvents converts an issue and its notes: the issue's event first,
// then one KindNote event per note. The notes' system entries "closed" and
// "reopened" date the issue's transitions, which the issue itself forgets
// on reopening (GitLab clears closed_at).
func IssueEvents(p Project, is *gl.Issue, notes []*gl.Note) []change.Event {
	ev := IssueEvent(p, is)
	var ts []change.Transition
	for _, n := range notes {
		if n == nil || !n.System {
			continue
		}
		body := strings.TrimSpace(n.Body)
		// To the second: GraphQL gives notes' times no finer (GitLab's
		// TimeType is iso8601), and both APIs must date alike.
		switch {
		case body == "reopened":
			ts = append(ts, change.Transition{State: "reopened", At: seconds(utc(n.CreatedAt))})
		case body == "closed" || strings.HasPrefix(body, "closed via"):
			ts = append(ts, change.Transition{State: "closed", At: seconds(utc(n.CreatedAt))})
		}
	}
	if len(ts) > 0 {
		ev.Transitions = append([]change.Transition{{State: "opened", At: ev.CreatedAt}}, ts...)
		if closed := utc(is.ClosedAt); !closed.IsZero() {
			// The last closing's note is closed_at's second; closed_at
			// dates it exactly.
			ev.Transitions = slices.DeleteFunc(ev.Transitions, func(t change.Transition) bool {
				return t.State == "closed" && t.At.Equal(seconds(closed))
			})
			ev.Transitions = append(ev.Transitions, change.Transition{State: "closed", At: closed})
		}
		ev.Transitions = dedupeTransitions(ev.Transitions)
	}
	out := []change.Event{ev}
	for _, n := range notes {
		ne := NoteEvent(p, n, is.WebURL)
		if _, ok := ne.Attrs["noteable_iid"]; !ok {
			ne.Attrs["noteable_iid"] = is.IID
		}
		if ne.Attrs["noteable_type"] == "" {
			ne.Attrs["noteable_type"] = "Issue"
		}
		out = append(out, ne)
	}
	return out
}

// dedupeTransitions drops exact repeats (the same state at the same time
// from two sources).
func dedupeTransitions(ts []change.Transition) []change.Transition {
	var out []change.Transition
	seen := map[change.Transition]bool{}
	for _, t := range ts {
		t.At = t.At.UTC()
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out
}

// IssueEvent converts an issue as GitLab's issue listing returns it.
func IssueEvent(p Project, is *gl.Issue) change.Event {
	pid := p.ID
	if pid == 0 {
		pid = is.ProjectID
	}
	created, updated, closed := utc(is.CreatedAt), utc(is.UpdatedAt), utc(is.ClosedAt)
	issueType := "issue"
	if is.IssueType != nil && *is.IssueType != "" {
		issueType = *is.IssueType
	}
	var assignees []string
	for _, a := range is.Assignees {
		if a != nil {
			assignees = append(assignees, a.Username)
		}
	}
	if len(assignees) == 0 && is.Assignee != nil {
		assignees = append(assignees, is.Assignee.Username)
	}
	attrs := map[string]any{
		"iid":              is.IID,
		"description":      is.Description,
		"issue_type":       issueType,
		"labels":           nonNil([]string(is.Labels)),
		"assignees":        nonNil(assignees),
		"user_notes_count": is.UserNotesCount,
		"confidential":     is.Confidential,
		"closed_at":        stampOrNil(closed),
	}
	if is.ClosedBy != nil {
		attrs["closed_by"] = is.ClosedBy.Username
	}
	author := ""
	if is.Author != nil {
		author = is.Author.Username
	}
	occurred := created
	ts := []change.Transition{{State: "opened", At: created}}
	if !closed.IsZero() {
		ts = append(ts, change.Transition{State: "closed", At: closed})
		if is.State == "closed" {
			occurred = closed
		}
	}
	ts = withCurrent(ts, is.State, updated)
	return change.Event{
		ID:          change.IssueID(pid, is.IID),
		Kind:        change.KindIssue,
		ProjectID:   pid,
		ProjectPath: p.Path,
		Title:       is.Title,
		State:       is.State,
		Author:      author,
		WebURL:      is.WebURL,
		CreatedAt:   created,
		UpdatedAt:   updated,
		OccurredAt:  occurred,
		Source:      change.SourcePoll,
		Attrs:       attrs,
		Transitions: ts,
	}
}
