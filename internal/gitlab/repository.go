package gitlab

import (
	"context"
	"net/url"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	gl "gitlab.com/gitlab-org/api/client-go/v2"
)

func (c *Client) branches(ctx context.Context, p Project, fn func(Page) error) error {
	out := &fullListing{kind: change.KindBranch, fn: fn}
	return walkPages(ctx, func(ctx context.Context, page int64, extra []gl.RequestOptionFunc) ([]*gl.Branch, *gl.Response, error) {
		opt := &gl.ListBranchesOptions{ListOptions: gl.ListOptions{PerPage: perPage, Page: page}}
		var bs []*gl.Branch
		resp, err := c.listCall(ctx, p, "branches", func(o ...gl.RequestOptionFunc) (*gl.Response, error) {
			var resp *gl.Response
			var err error
			bs, resp, err = c.gl.Branches.ListBranches(p.ref(), opt, append(o, extra...)...)
			return resp, err
		})
		return bs, resp, err
	}, func(bs []*gl.Branch) error {
		var events []change.Event
		for _, b := range bs {
			ev := BranchEvent(p, b)
			if ev.UpdatedAt.IsZero() {
				c.log.Warn("GitLab branch without a head commit date; skipped", "project", p.selector(), "branch", b.Name)
				continue
			}
			events = append(events, ev)
		}
		return out.emit(events)
	})
}

// BranchEvent converts a branch as GitLab's branch listing returns it.
// Branches have no timestamps of their own; the head commit's
// committed_date stands in for updated_at.
func BranchEvent(p Project, b *gl.Branch) change.Event {
	// The listing names the head commit's git author, not a GitLab user:
	// the author is left empty (a push hook gives the pusher's username).
	var sha, authorName, authorEmail string
	var committed, authored time.Time
	if b.Commit != nil {
		sha, authorName, authorEmail = b.Commit.ID, b.Commit.AuthorName, b.Commit.AuthorEmail
		committed, authored = utc(b.Commit.CommittedDate), utc(b.Commit.AuthoredDate)
	}
	state := "active"
	if b.Merged {
		state = "merged"
	}
	return change.Event{
		ID:          change.BranchID(p.ID, b.Name),
		Kind:        change.KindBranch,
		ProjectID:   p.ID,
		ProjectPath: p.Path,
		Title:       b.Name,
		State:       state,
		WebURL:      b.WebURL,
		Ref:         b.Name,
		SHA:         sha,
		CreatedAt:   firstSet(authored, committed),
		UpdatedAt:   committed,
		OccurredAt:  committed,
		Source:      change.SourcePoll,
		Attrs: map[string]any{
			"name": b.Name, "default": b.Default, "protected": b.Protected, "merged": b.Merged,
			"commit_sha": sha, "committed_date": stampOrNil(committed),
			"author_name": authorName, "author_email": authorEmail,
		},
		Transitions: []change.Transition{{State: state, At: committed}},
	}
}

func (c *Client) tags(ctx context.Context, p Project, fn func(Page) error) error {
	out := &fullListing{kind: change.KindTag, fn: fn}
	return walkPages(ctx, func(ctx context.Context, page int64, extra []gl.RequestOptionFunc) ([]*gl.Tag, *gl.Response, error) {
		opt := &gl.ListTagsOptions{ListOptions: gl.ListOptions{PerPage: perPage, Page: page}}
		var ts []*gl.Tag
		resp, err := c.listCall(ctx, p, "tags", func(o ...gl.RequestOptionFunc) (*gl.Response, error) {
			var resp *gl.Response
			var err error
			ts, resp, err = c.gl.Tags.ListTags(p.ref(), opt, append(o, extra...)...)
			return resp, err
		})
		return ts, resp, err
	}, func(ts []*gl.Tag) error {
		var events []change.Event
		for _, t := range ts {
			ev := TagEvent(p, t)
			if ev.UpdatedAt.IsZero() {
				c.log.Warn("GitLab tag without a commit date; skipped", "project", p.selector(), "tag", t.Name)
				continue
			}
			events = append(events, ev)
		}
		return out.emit(events)
	})
}

// TagEvent converts a tag as GitLab's tag listing returns it. Its
// updated_at is the tagged commit's committed_date (a tag does not move);
// created_at, which only annotated tags have, dates its creation.
func TagEvent(p Project, t *gl.Tag) change.Event {
	// As for branches: the tagged commit's git author goes in the
	// attributes; the listing gives no username, so author stays empty.
	var sha, authorName, authorEmail string
	var committed time.Time
	if t.Commit != nil {
		sha, authorName, authorEmail = t.Commit.ID, t.Commit.AuthorName, t.Commit.AuthorEmail
		committed = utc(t.Commit.CommittedDate)
	}
	attrs := map[string]any{
		"name": t.Name, "message": t.Message, "target": t.Target, "commit_sha": sha,
		"protected": t.Protected, "committed_date": stampOrNil(committed),
		"author_name": authorName, "author_email": authorEmail,
	}
	if t.Release != nil {
		attrs["release"] = map[string]any{"tag_name": t.Release.TagName, "description": excerpt(t.Release.Description, 500)}
	}
	webURL := ""
	if p.WebURL != "" {
		webURL = p.WebURL + "/-/tags/" + url.PathEscape(t.Name)
	}
	created := firstSet(utc(t.CreatedAt), committed)
	return change.Event{
		ID:          change.TagID(p.ID, t.Name),
		Kind:        change.KindTag,
		ProjectID:   p.ID,
		ProjectPath: p.Path,
		Title:       t.Name,
		State:       "tagged",
		WebURL:      webURL,
		Ref:         t.Name,
		SHA:         sha,
		CreatedAt:   created,
		UpdatedAt:   committed,
		OccurredAt:  created,
		Source:      change.SourcePoll,
		Attrs:       attrs,
		Transitions: []change.Transition{{State: "tagged", At: created}},
	}
}
