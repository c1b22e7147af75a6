package gitlab

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/labtrail/labtrail/internal/change"
	gl "gitlab.com/gitlab-org/api/client-go/v2"
)

// gqlContainerTagsQuery reads a page of a container repository's tags with
// the details REST gives one tag a request (GET .../tags/:tag_name).
// GitLab gives at most 20 tags a page (the field's max_page_size).
const gqlContainerTagsQuery = `query labtrailContainerTags($id: ContainerRepositoryID!, $first: Int, $after: String) {
  containerRepository(id: $id) {
    tags(first: $first, after: $after) {
      pageInfo { hasNextPage endCursor }
      nodes { name path location digest revision shortRevision totalSize createdAt }
    }
  }
}`

// containerTagsPage is GitLab's max_page_size of ContainerRepositoryDetails.tags.
const containerTagsPage = 20

type gqlContainerTag struct {
	Name          string   `json:"name"`
	Path          string   `json:"path"`
	Location      string   `json:"location"`
	Digest        *string  `json:"digest"`
	Revision      *string  `json:"revision"`
	ShortRevision *string  `json:"shortRevision"`
	TotalSize     *string  `json:"totalSize"` // BigInt: a string
	CreatedAt     *gqlTime `json:"createdAt"`
}

func (t gqlContainerTag) tag() (*gl.RegistryRepositoryTag, error) {
	out := &gl.RegistryRepositoryTag{Name: t.Name, Path: t.Path, Location: t.Location,
		Digest: strOr0(t.Digest), Revision: strOr0(t.Revision), ShortRevision: strOr0(t.ShortRevision), CreatedAt: t.CreatedAt.ptr()}
	if t.TotalSize != nil {
		n, err := strconv.ParseInt(*t.TotalSize, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("gitlab: total size %q of tag %s from GraphQL: %w", *t.TotalSize, t.Name, err)
		}
		out.TotalSize = n
	}
	return out, nil
}

// storesAny reports whether stored holds a tag of repository id.
func storesAny(stored map[string]bool, id int64) bool {
	prefix := strconv.FormatInt(id, 10) + "/"
	for k := range stored {
		if len(k) > len(prefix) && k[:len(prefix)] == prefix {
			return true
		}
	}
	return false
}

// repositoryImagesGraphQL emits every tag of r with its details, read by
// GraphQL. done is false when GraphQL could not serve (not available,
// refusing every size, the repository not shown): the caller then reads
// the tags by REST, which re-reads any page emitted here (it changes
// nothing stored).
func (c *Client) repositoryImagesGraphQL(ctx context.Context, p Project, r *gl.RegistryRepository, out *fullListing) (done bool, err error) {
	g := &c.imagePlan
	var after any
	for c.graphQLFor(g) {
		level := int(g.level.Load())
		size, _, _ := g.sizes()
		var data struct {
			ContainerRepository *struct {
				Tags *struct {
					PageInfo gqlPageInfo       `json:"pageInfo"`
					Nodes    []gqlContainerTag `json:"nodes"`
				} `json:"tags"`
			} `json:"containerRepository"`
		}
		desc := fmt.Sprintf("tags of container repository %s of %s (GraphQL)", r.Path, p.selector())
		err := c.graphQL(ctx, desc, gqlContainerTagsQuery, map[string]any{
			"id": fmt.Sprintf("gid://gitlab/ContainerRepository/%d", r.ID), "first": min(size, containerTagsPage), "after": after,
		}, &data)
		if err != nil {
			if errors.Is(err, errGraphQLRefused) {
				c.log.Info("GitLab refused a GraphQL query as too complex; asking for less", "project", p.selector(), "reason", err.Error())
				g.shrink(level)
				continue
			}
			return false, c.graphQLFailed(g, err)
		}
		if data.ContainerRepository == nil || data.ContainerRepository.Tags == nil {
			return false, nil // REST will tell what is wrong
		}
		events := make([]change.Event, 0, len(data.ContainerRepository.Tags.Nodes))
		for _, n := range data.ContainerRepository.Tags.Nodes {
			t, err := n.tag()
			if err != nil {
				return false, err
			}
			if t.Digest == "" || t.CreatedAt == nil {
				c.log.Info("GitLab container tag without details; skipped", "project", p.selector(), "repository", r.Path, "tag", t.Name)
				continue
			}
			events = append(events, ImageEvent(p, r, t))
		}
		if err := out.emit(events); err != nil {
			return false, err
		}
		pi := data.ContainerRepository.Tags.PageInfo
		if !pi.HasNextPage || pi.EndCursor == "" {
			return true, nil
		}
		after = pi.EndCursor
	}
	return false, nil
}
