package gitlab

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	gl "gitlab.com/gitlab-org/api/client-go/v2"
)

// commits lists the commits of each branch committed on or after since.
// GitLab lists them newest first and cannot order them otherwise, so pages
// go out through heldPages. A commit on several branches is emitted once,
// with the first branch (in the order given) it was found on.
func (c *Client) commits(ctx context.Context, p Project, since time.Time, branches []string, fn func(Page) error) error {
	if len(branches) == 0 {
		// An empty ref_name is GitLab's default branch, also when the
		// project's default branch is not known here.
		branches = []string{p.DefaultBranch}
	}
	out := &heldPages{kind: change.KindCommit, since: since, fn: fn}
	seen := map[string]bool{}
	for _, branch := range branches {
		err := walkPages(ctx, func(ctx context.Context, page int64, extra []gl.RequestOptionFunc) ([]*gl.Commit, *gl.Response, error) {
			opt := &gl.ListCommitsOptions{
				ListOptions: gl.ListOptions{PerPage: perPage, Page: page},
				WithStats:   gl.Ptr(true),
				Since:       afterParam(since),
			}
			if branch != "" {
				opt.RefName = gl.Ptr(branch)
			}
			var cs []*gl.Commit
			resp, err := c.listCall(ctx, p, "commits", func(o ...gl.RequestOptionFunc) (*gl.Response, error) {
				var resp *gl.Response
				var err error
				cs, resp, err = c.gl.Commits.ListCommits(p.ref(), opt, append(o, extra...)...)
				return resp, err
			})
			var e *apiError
			if branch != "" && branch != p.DefaultBranch && errors.As(err, &e) && e.kind == ErrFeatureDisabled && e.status == http.StatusNotFound {
				// A configured branch that was deleted has no commits
				// left to fetch; the others still do.
				c.log.Info("GitLab branch not found; skipping its commits", "project", p.selector(), "branch", branch)
				return nil, nil, nil
			}
			if err != nil && branch != "" {
				err = fmt.Errorf("branch %q: %w", branch, err)
			}
			return cs, resp, err
		}, func(cs []*gl.Commit) error {
			var events []change.Event
			var newest time.Time
			for _, cm := range cs {
				ev := CommitEvent(p, cm, firstNonEmpty(branch, p.DefaultBranch))
				// since's second was truncated for GitLab's filter.
				if seen[cm.ID] || ev.UpdatedAt.Before(since) {
					continue
				}
				seen[cm.ID] = true
				events = append(events, ev)
				newest = latest(newest, ev.UpdatedAt)
			}
			return out.add(events, newest)
		})
		if err != nil {
			return err
		}
	}
	return out.flush()
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// CommitEvent converts a commit as GitLab's commit listing returns it
// (with_stats=true for additions and deletions). branch is where it was
// found. Commits have no username, so Author is the author's name.
func CommitEvent(p Project, cm *gl.Commit, branch string) change.Event {
	pid := p.ID
	if pid == 0 {
		pid = cm.ProjectID
	}
	authored, committed := utc(cm.AuthoredDate), utc(cm.CommittedDate)
	attrs := map[string]any{
		"message":        cm.Message,
		"author_name":    cm.AuthorName,
		"author_email":   cm.AuthorEmail,
		"authored_date":  stampOrNil(authored),
		"committed_date": stampOrNil(committed),
		"parent_ids":     nonNil(cm.ParentIDs),
		"branch":         branch,
	}
	if cm.Stats != nil {
		attrs["additions"] = cm.Stats.Additions
		attrs["deletions"] = cm.Stats.Deletions
	}
	title := cm.Title
	if title == "" {
		title = firstLine(cm.Message, 100)
	}
	return change.Event{
		ID:          change.CommitID(pid, cm.ID),
		Kind:        change.KindCommit,
		ProjectID:   pid,
		ProjectPath: p.Path,
		Title:       title,
		State:       "committed",
		Author:      "", // the API gives the git author only (attrs author_name, author_email)
		WebURL:      cm.WebURL,
		Ref:         branch,
		SHA:         cm.ID,
		CreatedAt:   firstSet(authored, committed),
		UpdatedAt:   committed,
		OccurredAt:  committed,
		Source:      change.SourcePoll,
		Attrs:       attrs,
		Transitions: []change.Transition{{State: "committed", At: committed}},
	}
}
