package gitlabsim

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	graphql "github.com/graph-gophers/graphql-go"
)

// The GraphQL fields a change detection sweep asks of each project:
// issues by update time, releases, environments with their deployments,
// and container repositories with their tag counts. Orders and filters
// are those of GitLab's finders (IssuesFinder, ReleasesFinder,
// DeploymentsFinder, ContainerRepositoriesFinder).

type issuesArgs struct {
	State         *string
	UpdatedAfter  *gqlTime
	UpdatedBefore *gqlTime
	connArgs
}

// Issues lists newest first (IssuesFinder's default created_desc).
func (r *projectR) Issues(args issuesArgs) (*conn[*issueR], error) {
	after, before := gqlTimeRange(args.UpdatedAfter, args.UpdatedBefore)
	var list []*issue
	lo, hi := span(len(r.p.issuesByUpd), func(i int) time.Time { return r.p.issuesByUpd[i].updatedAt }, after, before)
	for _, is := range r.p.issuesByUpd[lo:hi] {
		if args.State != nil && *args.State != "all" && is.state != *args.State {
			continue
		}
		list = append(list, is)
	}
	slices.SortFunc(list, func(a, b *issue) int { return cmpOr(b.createdAt.Compare(a.createdAt), cmpInt(b.id, a.id)) })
	return paginate(list, args.connArgs, func(is *issue) cursorKey { return timeIDKey(is.createdAt, is.id) },
		func(a, b cursorKey) int { return -ascByTimeID(a, b) },
		func(is *issue) *issueR { return &issueR{is: is} })
}

type issueR struct{ is *issue }

func (r *issueR) ID() graphql.ID         { return graphql.ID(globalID("Issue", r.is.id)) }
func (r *issueR) Iid() string            { return itoa(r.is.iid) }
func (r *issueR) Title() string          { return r.is.title }
func (r *issueR) State() string          { return r.is.state }
func (r *issueR) CreatedAt() gqlTime     { return gqlTime(r.is.createdAt) }
func (r *issueR) UpdatedAt() gqlTime     { return gqlTime(r.is.updatedAt) }
func (r *issueR) ClosedAt() *gqlTime     { return timePtr(r.is.closedAt) }
func (r *releaseR) TagName() *string     { return strPtr(r.rl.tag.name) }
func (r *releaseR) Name() *string        { return strPtr(r.rl.tag.name) }
func (r *releaseR) CreatedAt() *gqlTime  { return timePtr(r.rl.createdAt) }
func (r *releaseR) ReleasedAt() *gqlTime { return timePtr(r.rl.releasedAt) }

type releaseR struct{ rl *release }

type releasesArgs struct {
	Sort string
	connArgs
}

// Releases lists by the sort asked (GitLab's default: released_at, newest
// first), ties by id as ReleasesFinder orders them.
func (r *projectR) Releases(args releasesArgs) (*conn[*releaseR], error) {
	list := slices.Clone(r.p.releases)
	at := func(rl *release) time.Time { return rl.releasedAt }
	if strings.HasPrefix(args.Sort, "CREATED") {
		at = func(rl *release) time.Time { return rl.createdAt }
	}
	pos := map[*release]int64{}
	for i, rl := range r.p.releases {
		pos[rl] = int64(i)
	}
	key := func(rl *release) cursorKey { return timeIDKey(at(rl), pos[rl]) }
	slices.SortStableFunc(list, func(a, b *release) int { return ascByTimeID(key(a), key(b)) })
	cmp := ascByTimeID
	if !strings.HasSuffix(args.Sort, "_ASC") {
		slices.Reverse(list)
		cmp = func(a, b cursorKey) int { return -ascByTimeID(a, b) }
	}
	return paginate(list, args.connArgs, key, cmp, func(rl *release) *releaseR { return &releaseR{rl: rl} })
}

type environmentsArgs struct {
	Name   *string
	Search *string
	States *[]string
	Type   *string
	connArgs
}

// Environments lists by name, as EnvironmentsFinder does.
func (r *projectR) Environments(args environmentsArgs) (*conn[*environmentR], error) {
	var list []*environment
	for _, e := range r.p.envs {
		switch {
		case args.Name != nil && e.name != *args.Name,
			args.Search != nil && !strings.Contains(e.name, *args.Search),
			args.States != nil && !slices.Contains(*args.States, e.state),
			args.Type != nil && !strings.HasPrefix(e.name, *args.Type+"/"):
			continue
		}
		list = append(list, e)
	}
	slices.SortFunc(list, func(a, b *environment) int { return cmpOr(strings.Compare(a.name, b.name), cmpInt(a.id, b.id)) })
	pos := map[int64]int64{}
	for i, e := range list {
		pos[e.id] = int64(i)
	}
	return paginate(list, args.connArgs, func(e *environment) cursorKey { return idKey(pos[e.id]) }, ascByID,
		func(e *environment) *environmentR { return &environmentR{p: r.p, e: e} })
}

type environmentR struct {
	p *project
	e *environment
}

func (r *environmentR) ID() graphql.ID      { return graphql.ID(globalID("Environment", r.e.id)) }
func (r *environmentR) Name() string        { return r.e.name }
func (r *environmentR) State() string       { return r.e.state }
func (r *environmentR) Tier() *string       { return strPtr(strings.ToUpper(r.e.tier)) }
func (r *environmentR) CreatedAt() *gqlTime { return timePtr(r.e.createdAt) }
func (r *environmentR) UpdatedAt() *gqlTime { return timePtr(r.e.updatedAt) }

type deploymentsOrderBy struct {
	CreatedAt  *string
	FinishedAt *string
}

type deploymentsArgs struct {
	Statuses *[]string
	OrderBy  *deploymentsOrderBy
	connArgs
}

// finishedStatuses are the statuses DeploymentsFinder accepts beside an
// order by finished_at (its InefficientQueryError guard).
var finishedStatuses = []string{"SUCCESS", "FAILED", "CANCELED"}

// Deployments lists the environment's deployments: by id, or by created_at
// or finished_at as asked (newest first by default).
func (r *environmentR) Deployments(args deploymentsArgs) (*conn[*deploymentR], error) {
	byFinished := args.OrderBy != nil && args.OrderBy.FinishedAt != nil
	if byFinished {
		if args.Statuses == nil || len(*args.Statuses) == 0 || slices.ContainsFunc(*args.Statuses, func(s string) bool { return !slices.Contains(finishedStatuses, s) }) {
			return nil, errString("`finished_at` filter and sort requires `status` filter in finished statuses (success, failed, canceled).")
		}
	}
	var list []*deployment
	for _, d := range r.p.deploys {
		if d.env != r.e {
			continue
		}
		if args.Statuses != nil && !slices.Contains(*args.Statuses, strings.ToUpper(d.status)) {
			continue
		}
		list = append(list, d)
	}
	at := func(d *deployment) time.Time { return d.createdAt }
	dir := "DESC"
	switch {
	case byFinished:
		at, dir = func(d *deployment) time.Time { return d.finishedAt }, *args.OrderBy.FinishedAt
	case args.OrderBy != nil && args.OrderBy.CreatedAt != nil:
		dir = *args.OrderBy.CreatedAt
	}
	key := func(d *deployment) cursorKey { return timeIDKey(at(d), d.id) }
	slices.SortFunc(list, func(a, b *deployment) int { return ascByTimeID(key(a), key(b)) })
	cmp := ascByTimeID
	if dir == "DESC" {
		slices.Reverse(list)
		cmp = func(a, b cursorKey) int { return -ascByTimeID(a, b) }
	}
	return paginate(list, args.connArgs, key, cmp, func(d *deployment) *deploymentR { return &deploymentR{d: d} })
}

type deploymentR struct{ d *deployment }

func (r *deploymentR) ID() *graphql.ID {
	id := graphql.ID(globalID("Deployment", r.d.id))
	return &id
}
func (r *deploymentR) Iid() *graphql.ID {
	id := graphql.ID(itoa(r.d.iid))
	return &id
}
func (r *deploymentR) Ref() *string         { return strPtr(r.d.pl.ref) }
func (r *deploymentR) Sha() *string         { return strPtr(r.d.pl.sha) }
func (r *deploymentR) Status() *string      { return strPtr(strings.ToUpper(r.d.status)) }
func (r *deploymentR) CreatedAt() *gqlTime  { return timePtr(r.d.createdAt) }
func (r *deploymentR) UpdatedAt() *gqlTime  { return timePtr(r.d.updatedAt) }
func (r *deploymentR) FinishedAt() *gqlTime { return timePtr(r.d.finishedAt) }

type containerReposArgs struct {
	Name *string
	Sort string
	connArgs
}

// ContainerRepositories lists the project's registry repositories, newest
// first by default.
func (r *projectR) ContainerRepositories(args containerReposArgs) (*conn[*containerRepoR], error) {
	var list []*registryRepo
	for _, rp := range r.p.repos {
		if args.Name == nil || strings.Contains(rp.name, *args.Name) {
			list = append(list, rp)
		}
	}
	key := func(rp *registryRepo) cursorKey { return timeIDKey(rp.createdAt, rp.id) }
	cmp := ascByTimeID
	if strings.HasPrefix(strings.ToLower(args.Sort), "name") {
		slices.SortFunc(list, func(a, b *registryRepo) int { return cmpOr(strings.Compare(a.name, b.name), cmpInt(a.id, b.id)) })
		pos := map[int64]int64{}
		for i, rp := range list {
			pos[rp.id] = int64(i)
		}
		key = func(rp *registryRepo) cursorKey { return idKey(pos[rp.id]) }
		cmp = ascByID
	} else {
		slices.SortFunc(list, func(a, b *registryRepo) int { return ascByTimeID(key(a), key(b)) })
	}
	if strings.HasSuffix(strings.ToLower(args.Sort), "desc") {
		slices.Reverse(list)
		asc := cmp
		cmp = func(a, b cursorKey) int { return -asc(a, b) }
	}
	return paginate(list, args.connArgs, key, cmp, func(rp *registryRepo) *containerRepoR { return &containerRepoR{q: r.q, rp: rp} })
}

type containerRepoR struct {
	q  *gqlReq
	rp *registryRepo
}

func (r *containerRepoR) ID() graphql.ID     { return graphql.ID(globalID("ContainerRepository", r.rp.id)) }
func (r *containerRepoR) Name() string       { return r.rp.name }
func (r *containerRepoR) Path() string       { return r.rp.path() }
func (r *containerRepoR) Location() string   { return r.rp.location(r.q.base) }
func (r *containerRepoR) CreatedAt() gqlTime { return gqlTime(r.rp.createdAt) }
func (r *containerRepoR) UpdatedAt() gqlTime { return gqlTime(r.rp.createdAt) }
func (r *containerRepoR) TagsCount() int32   { return int32(len(r.rp.tags)) }

// errString is a resolver error with GitLab's message.
type errString string

func (e errString) Error() string { return string(e) }

type projectsArgs struct {
	Ids        *[]graphql.ID
	Membership *bool
	Search     *string
	Sort       *string
	connArgs
}

// Projects lists the projects the token's user can see (ProjectsFinder):
// every simulated project is private, so a guest sees none; ids are
// global ids ("gid://gitlab/Project/1"). Newest first (id_desc) unless
// sort says id_asc.
func (*gqlQuery) Projects(ctx context.Context, args projectsArgs) (*conn[*projectR], error) {
	q := reqFrom(ctx)
	var list []*project
	if !q.anon {
		var want map[int64]bool
		if args.Ids != nil {
			want = map[int64]bool{}
			for _, id := range *args.Ids {
				n, ok := gid{v: string(id)}.model("Project")
				if !ok {
					return nil, errString(fmt.Sprintf("%q is not a valid Global ID", string(id)))
				}
				want[n] = true
			}
		}
		for _, p := range q.s.w.projects {
			switch {
			case want != nil && !want[p.id],
				args.Search != nil && !strings.Contains(p.fullPath(), *args.Search),
				q.s.projectFault(p.fullPath()) != 0 || q.s.projectFault(itoa(p.id)) != 0:
				continue
			}
			list = append(list, p)
		}
	}
	asc := args.Sort != nil && *args.Sort == "id_asc"
	slices.SortFunc(list, func(a, b *project) int {
		if asc {
			return cmpInt(a.id, b.id)
		}
		return cmpInt(b.id, a.id)
	})
	cmp := descByID
	if asc {
		cmp = ascByID
	}
	return paginate(list, args.connArgs, func(p *project) cursorKey { return idKey(p.id) }, cmp,
		func(p *project) *projectR { return &projectR{q: q, p: p} })
}

// gqlTimeRange reads an updatedAfter/updatedBefore pair; zero is unbounded.
func gqlTimeRange(after, before *gqlTime) (a, b time.Time) {
	if after != nil {
		a = time.Time(*after)
	}
	if before != nil {
		b = time.Time(*before)
	}
	return a, b
}
