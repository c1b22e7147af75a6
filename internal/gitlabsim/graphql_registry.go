package gitlabsim

import (
	"context"
	"slices"
	"strconv"
	"strings"
)

// containerTagsPageSize is the max_page_size of
// ContainerRepositoryDetails.tags: GitLab gives at most 20 tags a page,
// whatever first asks.
const containerTagsPageSize = 20

// containerRepositoryID is GitLab's ContainerRepositoryID scalar.
type containerRepositoryID struct{ gid }

func (containerRepositoryID) ImplementsGraphQLType(name string) bool {
	return name == "ContainerRepositoryID"
}
func (g *containerRepositoryID) UnmarshalGraphQL(input any) error { return g.set(input) }

// bigInt is GitLab's BigInt: a whole number written as a string.
type bigInt int64

func (bigInt) ImplementsGraphQLType(name string) bool { return name == "BigInt" }

func (n *bigInt) UnmarshalGraphQL(input any) error {
	switch v := input.(type) {
	case string:
		i, err := strconv.ParseInt(v, 10, 64)
		*n = bigInt(i)
		return err
	case int32:
		*n = bigInt(v)
	case float64:
		*n = bigInt(v)
	}
	return nil
}

func (n bigInt) MarshalJSON() ([]byte, error) {
	return []byte(`"` + strconv.FormatInt(int64(n), 10) + `"`), nil
}

// ContainerRepository finds a registry repository by global id, null when
// the token's user cannot see it (as for a project: anonymous, gone, or
// under a fault), or when no such repository exists.
func (*gqlQuery) ContainerRepository(ctx context.Context, args struct{ ID containerRepositoryID }) *containerRepoDetailsR {
	q := reqFrom(ctx)
	id, ok := args.ID.model("ContainerRepository")
	if q.anon || !ok {
		return nil
	}
	for _, p := range q.s.w.projects {
		for _, rp := range p.repos {
			if rp.id != id {
				continue
			}
			if q.s.projectFault(p.fullPath()) != 0 || q.s.projectFault(itoa(p.id)) != 0 {
				return nil
			}
			return &containerRepoDetailsR{containerRepoR{q: q, rp: rp}}
		}
	}
	return nil
}

type containerRepoDetailsR struct{ containerRepoR }

type containerTagsArgs struct {
	Sort         *string
	Name         *string
	Referrers    *bool
	ReferrerType *string
	connArgs
}

// Tags lists the repository's tags by name (the registry's order), or by
// publication time; name keeps those whose name contains it
// (ContainerRepositoryTagsResolver). Pages hold at most 20 tags.
func (r *containerRepoDetailsR) Tags(args containerTagsArgs) (*conn[*containerTagR], error) {
	var list []*imageTag
	for _, t := range r.rp.tags {
		if args.Name == nil || strings.Contains(t.name, *args.Name) {
			list = append(list, t)
		}
	}
	if args.Sort != nil && strings.HasPrefix(*args.Sort, "PUBLISHED_AT") {
		slices.SortStableFunc(list, func(a, b *imageTag) int { return a.createdAt.Compare(b.createdAt) })
	}
	if args.Sort != nil && strings.HasSuffix(*args.Sort, "_DESC") {
		slices.Reverse(list)
	}
	pos := map[*imageTag]int64{}
	for i, t := range list {
		pos[t] = int64(i)
	}
	return paginateUpTo(list, args.connArgs, containerTagsPageSize,
		func(t *imageTag) cursorKey { return idKey(pos[t]) }, ascByID,
		func(t *imageTag) *containerTagR { return &containerTagR{q: r.q, t: t} })
}

type containerTagR struct {
	q *gqlReq
	t *imageTag
}

func (r *containerTagR) Name() string     { return r.t.name }
func (r *containerTagR) Path() string     { return r.t.rp.path() + ":" + r.t.name }
func (r *containerTagR) Location() string { return r.t.rp.location(r.q.base) + ":" + r.t.name }
func (r *containerTagR) Digest() *string  { return strPtr(r.t.digest()) }
func (r *containerTagR) Revision() *string {
	return strPtr(r.t.revision())
}
func (r *containerTagR) ShortRevision() *string { return strPtr(r.t.revision()[:9]) }
func (r *containerTagR) TotalSize() *bigInt {
	n := bigInt(r.t.size())
	return &n
}
func (r *containerTagR) CreatedAt() *gqlTime { return timePtr(r.t.createdAt) }

// PublishedAt is when the tag was pushed: a simulated tag is pushed once.
func (r *containerTagR) PublishedAt() *gqlTime { return timePtr(r.t.createdAt) }

// MediaType is null: the REST API the simulator mirrors does not say it,
// and nothing here is invented.
func (r *containerTagR) MediaType() *string { return nil }
