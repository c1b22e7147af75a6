package gitlab

import (
	"context"
	"fmt"
	"strings"

	"github.com/labtrail/labtrail/internal/change"
	gl "gitlab.com/gitlab-org/api/client-go/v2"
)

// images lists every tag of every container repository of p. The tag
// listing names tags only; digest, size and push time come from one detail
// request per tag, fetched on c.workers goroutines.
//
// A tag already stored (opts.KnownPrefix) keeps its stored details, so a
// poll costs one listing per repository, not a request per tag; a tag
// pushed again under the same name is caught by the next FullSweep.
func (c *Client) images(ctx context.Context, p Project, opts FetchOptions, fn func(Page) error) error {
	out := &fullListing{kind: change.KindImage, fn: fn}
	stored := map[string]bool{} // "<repository id>/<tag>"
	if opts.KnownPrefix != nil && !opts.FullSweep {
		prefix := fmt.Sprintf("image-%d-", p.ID)
		known, err := opts.KnownPrefix(ctx, prefix)
		if err != nil {
			return fmt.Errorf("look up stored images: %w", err)
		}
		for id := range known {
			// image-<project>-<repository>-<tag>-<digest>; digests carry
			// no "-", tags may.
			rest := strings.TrimPrefix(id, prefix)
			repo, tagDigest, ok := strings.Cut(rest, "-")
			if i := strings.LastIndex(tagDigest, "-"); ok && i > 0 {
				stored[repo+"/"+tagDigest[:i]] = true
			}
		}
	}
	return walkPages(ctx, func(ctx context.Context, page int64, extra []gl.RequestOptionFunc) ([]*gl.RegistryRepository, *gl.Response, error) {
		opt := &gl.ListProjectRegistryRepositoriesOptions{ListOptions: gl.ListOptions{PerPage: perPage, Page: page}}
		var rs []*gl.RegistryRepository
		resp, err := c.listCall(ctx, p, "container repositories", func(o ...gl.RequestOptionFunc) (*gl.Response, error) {
			var resp *gl.Response
			var err error
			rs, resp, err = c.gl.ContainerRegistry.ListProjectRegistryRepositories(p.ref(), opt, append(o, extra...)...)
			return resp, err
		})
		return rs, resp, err
	}, func(rs []*gl.RegistryRepository) error {
		for _, r := range rs {
			if err := c.repositoryImages(ctx, p, r, stored, out); err != nil {
				return err
			}
		}
		return nil
	})
}

func (c *Client) repositoryImages(ctx context.Context, p Project, r *gl.RegistryRepository, stored map[string]bool, out *fullListing) error {
	if !storesAny(stored, r.ID) {
		// Nothing of this repository is stored yet (or every tag is read
		// again): its tags come with their details by GraphQL, 20 a
		// request, instead of a listing and a request per tag.
		done, err := c.repositoryImagesGraphQL(ctx, p, r, out)
		if done || err != nil {
			return err
		}
	}
	desc := fmt.Sprintf("tags of container repository %s of %s", r.Path, p.selector())
	return walkPages(ctx, func(ctx context.Context, page int64, extra []gl.RequestOptionFunc) ([]*gl.RegistryRepositoryTag, *gl.Response, error) {
		opt := &gl.ListRegistryRepositoryTagsOptions{ListOptions: gl.ListOptions{PerPage: perPage, Page: page}}
		var ts []*gl.RegistryRepositoryTag
		resp, err := c.call(ctx, desc, "", func(o ...gl.RequestOptionFunc) (*gl.Response, error) {
			var resp *gl.Response
			var err error
			ts, resp, err = c.gl.ContainerRegistry.ListRegistryRepositoryTags(p.ref(), r.ID, opt, append(o, extra...)...)
			return resp, err
		})
		if optional(err) {
			// Deleted since the repositories were listed.
			c.log.Info("GitLab container repository not available", "project", p.selector(), "repository", r.Path, "reason", err.Error())
			return nil, nil, nil
		}
		return ts, resp, err
	}, func(ts []*gl.RegistryRepositoryTag) error {
		fresh := ts[:0:0]
		for _, t := range ts {
			if !stored[fmt.Sprintf("%d/%s", r.ID, t.Name)] {
				fresh = append(fresh, t)
			}
		}
		ts = fresh
		details := make([]*gl.RegistryRepositoryTag, len(ts))
		err := c.forEach(ctx, len(ts), func(ctx context.Context, i int) error {
			_, err := c.call(ctx, fmt.Sprintf("tag %s of container repository %s of %s", ts[i].Name, r.Path, p.selector()), "",
				func(o ...gl.RequestOptionFunc) (*gl.Response, error) {
					var resp *gl.Response
					var err error
					details[i], resp, err = c.gl.ContainerRegistry.GetRegistryRepositoryTagDetail(p.ref(), r.ID, ts[i].Name, o...)
					return resp, err
				})
			if optional(err) {
				details[i], err = nil, nil
			}
			return err
		})
		if err != nil {
			return err
		}
		var events []change.Event
		for i, t := range details {
			if t == nil || t.Digest == "" || t.CreatedAt == nil {
				c.log.Info("GitLab container tag without details; skipped", "project", p.selector(), "repository", r.Path, "tag", ts[i].Name)
				continue
			}
			events = append(events, ImageEvent(p, r, t))
		}
		return out.emit(events)
	})
}

// ImageEvent converts a container tag as GET
// /registry/repositories/:id/tags/:tag_name returns it. A tag is never
// re-pushed with another digest without becoming a new event, as the
// digest is part of the id; its push time is its created_at.
//
// The push time is kept to the whole second, the precision GitLab's
// GraphQL API gives it in, so that both ways of reading a tag store the
// same event.
func ImageEvent(p Project, r *gl.RegistryRepository, t *gl.RegistryRepositoryTag) change.Event {
	created := seconds(utc(t.CreatedAt))
	path := firstNonEmpty(r.Path, t.Path)
	webURL := ""
	if p.WebURL != "" {
		webURL = fmt.Sprintf("%s/container_registry/%d", p.WebURL, r.ID)
	}
	return change.Event{
		ID:          change.ImageID(p.ID, r.ID, t.Name, t.Digest),
		Kind:        change.KindImage,
		ProjectID:   p.ID,
		ProjectPath: p.Path,
		Title:       path + ":" + t.Name,
		State:       "pushed",
		WebURL:      webURL,
		Ref:         t.Name,
		CreatedAt:   created,
		UpdatedAt:   created,
		OccurredAt:  created,
		Source:      change.SourcePoll,
		Attrs: map[string]any{
			"repository": path, "repository_id": r.ID, "tag": t.Name, "digest": t.Digest,
			"revision": t.Revision, "total_size": t.TotalSize, "created_at": stamp(created), "location": t.Location,
		},
		Transitions: []change.Transition{{State: "pushed", At: created}},
	}
}
