package gitlab

import (
	"context"
	"strings"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	gl "gitlab.com/gitlab-org/api/client-go/v2"
)

// MergeRequests calls fn once per fetched page, oldest updated_at first,
// with every merge request of p (all states) updated on or after since
// (zero: all of them), as the listing has them: no details, no notes. It
// pages by time; see Page.Cursor for resuming. Fetch adds the details.
func (c *Client) MergeRequests(ctx context.Context, p Project, since time.Time, fn func(Page) error) error {
	return c.mergeRequests(ctx, p, since, nil, fn)
}

// mergeRequests walks p's merge requests; with opts (Fetch), each changed
// one is enriched with its details: for the whole page in one GraphQL
// query where GitLab allows, else from the REST detail endpoints.
func (c *Client) mergeRequests(ctx context.Context, p Project, since time.Time, opts *FetchOptions, fn func(Page) error) error {
	list := func(ctx context.Context, after time.Time, page int64) ([]*gl.BasicMergeRequest, *gl.Response, error) {
		opt := &gl.ListProjectMergeRequestsOptions{
			ListOptions:  gl.ListOptions{PerPage: perPage, Page: page},
			State:        gl.Ptr("all"),
			OrderBy:      gl.Ptr("updated_at"),
			Sort:         gl.Ptr("asc"),
			UpdatedAfter: afterParam(after),
		}
		var mrs []*gl.BasicMergeRequest
		resp, err := c.listCall(ctx, p, "merge requests", func(o ...gl.RequestOptionFunc) (*gl.Response, error) {
			var resp *gl.Response
			var err error
			mrs, resp, err = c.gl.MergeRequests.ListProjectMergeRequests(p.ref(), opt, o...)
			return resp, err
		})
		return mrs, resp, err
	}
	key := func(mr *gl.BasicMergeRequest) (int64, time.Time) { return mr.ID, utc(mr.UpdatedAt) }
	if opts == nil {
		return walkByTime(ctx, since, list, key, func(mrs []*gl.BasicMergeRequest, cursor time.Time) error {
			events := make([]change.Event, 0, len(mrs))
			for _, mr := range mrs {
				events = append(events, MergeRequestEvent(p, mr))
			}
			return fn(Page{Kind: change.KindMergeRequest, Events: events, Cursor: cursor})
		})
	}
	return heldWalk(ctx, change.KindMergeRequest, since, *opts, list, key,
		func(mr *gl.BasicMergeRequest) string { return change.MergeRequestID(p.ID, mr.IID) },
		func() int { return c.hold(&c.mrPlan) },
		func(mrs []*gl.BasicMergeRequest) ([][]change.Event, error) {
			return c.mergeRequestsWithDetails(ctx, p, mrs)
		}, fn)
}

// mergeRequestsWithDetails reads the details of mrs, by GraphQL where it
// can and by REST for the rest, and converts each merge request with them.
func (c *Client) mergeRequestsWithDetails(ctx context.Context, p Project, mrs []*gl.BasicMergeRequest) ([][]change.Event, error) {
	var viaGraphQL map[int64]MergeRequestDetails
	if len(mrs) > 0 && c.graphQLFor(&c.mrPlan.graphQLPlan) {
		var err error
		if viaGraphQL, err = c.mergeRequestDetailsGraphQL(ctx, p, mrs); err != nil {
			return nil, err
		}
	}
	per := make([][]change.Event, len(mrs))
	err := c.forEach(ctx, len(mrs), func(ctx context.Context, i int) error {
		d, ok := viaGraphQL[mrs[i].IID]
		if !ok {
			var err error
			if d, err = c.mergeRequestDetails(ctx, p, mrs[i]); err != nil {
				return err
			}
		}
		per[i] = MergeRequestEvents(p, mrs[i], d)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return per, nil
}

// MergeRequestEvent converts a merge request as GitLab's listing (and, via
// its embedded BasicMergeRequest, the single-MR endpoint) returns it. p
// names the project; its ID wins over the MR's project_id, which is the
// target project and the same for every MR a project lists.
func MergeRequestEvent(p Project, mr *gl.BasicMergeRequest) change.Event {
	pid := p.ID
	if pid == 0 {
		pid = mr.ProjectID
	}
	created, updated := utc(mr.CreatedAt), utc(mr.UpdatedAt)
	merged, closed := utc(mr.MergedAt), utc(mr.ClosedAt)

	occurred := created
	switch mr.State {
	case "merged":
		occurred = firstSet(merged, updated)
	case "closed":
		occurred = firstSet(closed, updated)
	case "locked":
		// Locked is the brief state while GitLab merges; it began at the
		// last update, not at creation.
		occurred = updated
	}

	attrs := map[string]any{
		"iid":              mr.IID,
		"description":      mr.Description,
		"source_branch":    mr.SourceBranch,
		"target_branch":    mr.TargetBranch,
		"draft":            mr.Draft || draftTitle(mr.Title),
		"labels":           nonNil([]string(mr.Labels)),
		"assignees":        usernames(mr.Assignees),
		"reviewers":        usernames(mr.Reviewers),
		"merge_commit_sha": mr.MergeCommitSHA,
		"user_notes_count": mr.UserNotesCount,
	}
	mergedBy := mr.MergeUser
	if mergedBy == nil {
		mergedBy = mr.MergedBy // older GitLab only sends the deprecated field
	}
	if mergedBy != nil {
		attrs["merged_by"] = mergedBy.Username
	}
	if !merged.IsZero() {
		attrs["merged_at"] = stamp(merged)
	}
	if mr.ClosedBy != nil {
		attrs["closed_by"] = mr.ClosedBy.Username
	}
	if !closed.IsZero() {
		attrs["closed_at"] = stamp(closed)
	}

	ts := []change.Transition{{State: "opened", At: created}}
	if !merged.IsZero() {
		ts = append(ts, change.Transition{State: "merged", At: merged})
	}
	if !closed.IsZero() {
		ts = append(ts, change.Transition{State: "closed", At: closed})
	}
	ts = withCurrent(ts, mr.State, updated)

	return change.Event{
		ID:          change.MergeRequestID(pid, mr.IID),
		Kind:        change.KindMergeRequest,
		ProjectID:   pid,
		ProjectPath: p.Path,
		Title:       mr.Title,
		State:       mr.State,
		Author:      username(mr.Author),
		WebURL:      mr.WebURL,
		Ref:         mr.SourceBranch,
		SHA:         mr.SHA,
		CreatedAt:   created,
		UpdatedAt:   updated,
		OccurredAt:  occurred,
		Source:      change.SourcePoll,
		Attrs:       attrs,
		Transitions: ts,
	}
}

// withCurrent appends state@at when the newest transition is not already
// the current state: a reopened MR (closed_at set, state opened) or a
// locked one, a running pipeline.
func withCurrent(ts []change.Transition, state string, at time.Time) []change.Transition {
	if state == "" || at.IsZero() {
		return ts
	}
	latest := -1
	for i, t := range ts {
		if t.At.IsZero() {
			continue
		}
		if latest < 0 || !t.At.Before(ts[latest].At) {
			latest = i
		}
	}
	if latest >= 0 && ts[latest].State == state {
		return ts
	}
	return append(ts, change.Transition{State: state, At: at})
}

// draftTitle applies GitLab's own rule for drafts, for GitLab versions
// whose listing predates the draft field (they send work_in_progress,
// which client-go's list type drops).
func draftTitle(title string) bool {
	t := strings.ToLower(strings.TrimSpace(title))
	for _, p := range []string{"draft:", "[draft]", "(draft)", "draft - "} {
		if strings.HasPrefix(t, p) {
			return true
		}
	}
	return t == "draft"
}

func username(u *gl.BasicUser) string {
	if u == nil {
		return ""
	}
	return u.Username
}

func usernames(us []*gl.BasicUser) []string {
	out := []string{}
	for _, u := range us {
		if u != nil {
			out = append(out, u.Username)
		}
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// stamp formats times in attributes the way GitLab writes them, so they
// read the same after a JSON round trip through the store.
func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func firstSet(ts ...time.Time) time.Time {
	for _, t := range ts {
		if !t.IsZero() {
			return t
		}
	}
	return time.Time{}
}
