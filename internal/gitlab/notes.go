package gitlab

import (
	"context"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	gl "gitlab.com/gitlab-org/api/client-go/v2"
)

// projectEvent is an entry of GET /projects/:id/events. client-go's type
// keeps only part of the note; GitLab sends the whole note entity.
type projectEvent struct {
	ID         int64      `json:"id"`
	ActionName string     `json:"action_name"`
	TargetType string     `json:"target_type"`
	TargetID   int64      `json:"target_id"`
	CreatedAt  *time.Time `json:"created_at"`
	Note       *gl.Note   `json:"note"`
}

type eventsOptions struct {
	gl.ListOptions
	TargetType string `url:"target_type,omitempty"`
	After      string `url:"after,omitempty"`
	Sort       string `url:"sort,omitempty"`
}

// commitNotes finds notes on commits through the project's events: GitLab
// has no listing of a project's commit notes. Events are filtered by date
// only, and `after` excludes its own day, so the walk starts a day before
// since and drops older notes itself. Oldest first, new events append to
// the last page and offset pages stay put; a note edited later keeps its
// event's place, so pages go out through heldPages.
func (c *Client) commitNotes(ctx context.Context, p Project, since time.Time, fn func(Page) error) error {
	opt := eventsOptions{TargetType: "note", Sort: "asc"}
	if !since.IsZero() {
		opt.After = since.AddDate(0, 0, -1).Format("2006-01-02")
	}
	out := &heldPages{kind: change.KindNote, since: since, fn: fn}
	seen := map[int64]bool{}
	err := walkPages(ctx, func(ctx context.Context, page int64, extra []gl.RequestOptionFunc) ([]*projectEvent, *gl.Response, error) {
		o := opt
		o.ListOptions = gl.ListOptions{PerPage: perPage, Page: page}
		var evs []*projectEvent
		resp, err := c.listCall(ctx, p, "events", func(ro ...gl.RequestOptionFunc) (*gl.Response, error) {
			return c.getJSON(p.api()+"/events", &o, &evs)(append(ro, extra...)...)
		})
		return evs, resp, err
	}, func(evs []*projectEvent) error {
		var events []change.Event
		var newest time.Time
		for _, e := range evs {
			n := e.Note
			if n == nil || n.NoteableType != "Commit" || seen[n.ID] {
				continue
			}
			parent := ""
			if p.WebURL != "" && n.CommitID != "" {
				parent = p.WebURL + "/-/commit/" + n.CommitID
			}
			ev := NoteEvent(p, n, parent)
			if ev.UpdatedAt.Before(since) {
				continue
			}
			seen[n.ID] = true
			events = append(events, ev)
			newest = latest(newest, ev.UpdatedAt)
		}
		return out.add(events, newest)
	})
	if err != nil {
		return err
	}
	return out.flush()
}
