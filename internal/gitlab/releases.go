package gitlab

import (
	"context"

	"github.com/labtrail/labtrail/internal/change"
	gl "gitlab.com/gitlab-org/api/client-go/v2"
)

// releases lists every release, oldest created first so that a release
// created during the walk lands on the last page instead of shifting the
// others.
func (c *Client) releases(ctx context.Context, p Project, fn func(Page) error) error {
	out := &fullListing{kind: change.KindRelease, fn: fn}
	return walkPages(ctx, func(ctx context.Context, page int64, extra []gl.RequestOptionFunc) ([]*gl.Release, *gl.Response, error) {
		opt := &gl.ListReleasesOptions{
			ListOptions: gl.ListOptions{PerPage: perPage, Page: page},
			OrderBy:     gl.Ptr("created_at"),
			Sort:        gl.Ptr("asc"),
		}
		var rs []*gl.Release
		resp, err := c.listCall(ctx, p, "releases", func(o ...gl.RequestOptionFunc) (*gl.Response, error) {
			var resp *gl.Response
			var err error
			rs, resp, err = c.gl.Releases.ListReleases(p.ref(), opt, append(o, extra...)...)
			return resp, err
		})
		return rs, resp, err
	}, func(rs []*gl.Release) error {
		events := make([]change.Event, 0, len(rs))
		for _, r := range rs {
			events = append(events, ReleaseEvent(p, r))
		}
		return out.emit(events)
	})
}

// ReleaseEvent converts a release as GitLab's release listing returns it.
// Releases have no updated_at; the later of created_at and released_at
// stands in. An upcoming release (released_at in the future) is not
// published yet, so it gets no "published" transition.
func ReleaseEvent(p Project, r *gl.Release) change.Event {
	created, released := utc(r.CreatedAt), utc(r.ReleasedAt)
	state := "published"
	if r.UpcomingRelease {
		state = "upcoming"
	}
	links := make([]map[string]any, 0, len(r.Assets.Links))
	for _, l := range r.Assets.Links {
		if l != nil {
			links = append(links, map[string]any{"name": l.Name, "url": l.URL, "link_type": string(l.LinkType)})
		}
	}
	var milestones []string
	for _, m := range r.Milestones {
		if m != nil {
			milestones = append(milestones, m.Title)
		}
	}
	ts := []change.Transition{{State: "created", At: created}}
	occurred := created
	if !r.UpcomingRelease && !released.IsZero() {
		ts = append(ts, change.Transition{State: "published", At: released})
		occurred = released
	}
	return change.Event{
		ID:          change.ReleaseID(p.ID, r.TagName),
		Kind:        change.KindRelease,
		ProjectID:   p.ID,
		ProjectPath: p.Path,
		Title:       firstNonEmpty(r.Name, r.TagName),
		State:       state,
		Author:      r.Author.Username,
		WebURL:      r.Links.Self,
		Ref:         r.TagName,
		SHA:         r.Commit.ID,
		CreatedAt:   created,
		UpdatedAt:   latest(created, released),
		OccurredAt:  occurred,
		Source:      change.SourcePoll,
		Attrs: map[string]any{
			"name": r.Name, "tag_name": r.TagName, "description": r.Description,
			"released_at": stampOrNil(released), "created_at": stampOrNil(created),
			"upcoming_release": r.UpcomingRelease, "links": links,
			"sources_count": len(r.Assets.Sources), "milestones": nonNil(milestones),
		},
		Transitions: ts,
	}
}
