package gitlab

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	gl "gitlab.com/gitlab-org/api/client-go/v2"
)

// DefaultMaxProjects caps a selection when Selection.Max is zero, so that
// a token with access to a whole instance does not make labtrail poll
// thousands of projects by accident.
const DefaultMaxProjects = 100

// Project is a GitLab project labtrail follows.
type Project struct {
	ID             int64
	Path           string // path with namespace, "group/project"
	Name           string
	WebURL         string
	DefaultBranch  string
	Archived       bool
	LastActivityAt time.Time
}

func projectFrom(p *gl.Project) Project {
	return Project{
		ID:             p.ID,
		Path:           p.PathWithNamespace,
		Name:           p.Name,
		WebURL:         p.WebURL,
		DefaultBranch:  p.DefaultBranch,
		Archived:       p.Archived,
		LastActivityAt: utc(p.LastActivityAt),
	}
}

// ref is how API paths name p: its id, or its path when only that is
// known.
func (p Project) ref() any {
	if p.ID != 0 {
		return p.ID
	}
	return p.Path
}

// selector names p in messages and lookups.
func (p Project) selector() string {
	if p.Path != "" {
		return p.Path
	}
	return strconv.FormatInt(p.ID, 10)
}

// api is p's API path prefix, "projects/:id".
func (p Project) api() string {
	if p.ID != 0 {
		return "projects/" + strconv.FormatInt(p.ID, 10)
	}
	return "projects/" + gl.PathEscape(p.Path)
}

// Selection says which projects to follow. With neither Repos nor Groups,
// it is every project the token's user is a member of.
type Selection struct {
	Repos           []string // project ids or "group/project" paths
	Groups          []string // group ids or paths; subgroups are included
	IncludeArchived bool
	// Max caps how many projects are returned (0: DefaultMaxProjects;
	// negative: no cap).
	Max int
}

// ProjectList is the outcome of a selection.
type ProjectList struct {
	Projects []Project
	// Capped is how many more projects matched beyond Max; CappedIDs are
	// their ids.
	Capped    int
	CappedIDs []int64
	// Missing are the Repos and Groups entries GitLab answered 404 or 403
	// for; the rest of the selection is still returned.
	Missing []MissingProject
}

// MissingProject is a selector that named nothing the token can read. Err
// wraps ErrNotFound or ErrForbidden.
type MissingProject struct {
	Selector string
	Err      error
}

// SelectProjects resolves s: Repos in their given order, then the projects
// of each group (subgroups included) or of the token's memberships by id,
// each project once; GitLab lists them by last_activity_at, one request
// per 100 projects. Archived
// projects are left out unless s.IncludeArchived, also when named in Repos.
func (c *Client) SelectProjects(ctx context.Context, s Selection) (ProjectList, error) {
	var out ProjectList
	limit := s.Max
	if limit == 0 {
		limit = DefaultMaxProjects
	}
	seen := map[int64]bool{}
	add := func(p Project) {
		if seen[p.ID] || (p.Archived && !s.IncludeArchived) {
			return
		}
		seen[p.ID] = true
		if limit >= 0 && len(out.Projects) >= limit {
			out.Capped++
			out.CappedIDs = append(out.CappedIDs, p.ID)
			return
		}
		out.Projects = append(out.Projects, p)
	}
	missing := func(sel string, err error) bool {
		var e *apiError
		if errors.As(err, &e) && e.scope {
			return false // the token, not the selector, is wrong
		}
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrForbidden) {
			out.Missing = append(out.Missing, MissingProject{Selector: sel, Err: err})
			return true
		}
		return false
	}

	repos, groups := cleanSelectors(s.Repos), cleanSelectors(s.Groups)
	for _, sel := range repos {
		p, err := c.project(ctx, sel)
		if err != nil {
			if missing(sel, err) {
				continue
			}
			return out, err
		}
		add(p)
	}
	// Listings come most recently active first; the cap takes them in id
	// order, so which projects it keeps does not change with activity.
	var listed []Project
	collect := func(p Project) { listed = append(listed, p) }
	for _, g := range groups {
		err := c.groupProjects(ctx, g, s.IncludeArchived, collect)
		if err != nil {
			if missing(g, err) {
				continue
			}
			return out, err
		}
	}
	if len(repos) == 0 && len(groups) == 0 {
		if err := c.memberProjects(ctx, s.IncludeArchived, collect); err != nil {
			return out, err
		}
	}
	slices.SortStableFunc(listed, func(a, b Project) int { return cmp.Compare(a.ID, b.ID) })
	for _, p := range listed {
		add(p)
	}
	return out, nil
}

func cleanSelectors(in []string) []string {
	var out []string
	for _, s := range in {
		if s = strings.Trim(strings.TrimSpace(s), "/"); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Projects resolves selectors (numeric ids or "group/project" paths) with
// GET /projects/:id, in the given order without repeats, archived ones
// included; with none, it lists every unarchived project the token's user
// is a member of. Unlike SelectProjects, a selector GitLab does not know is
// an error.
func (c *Client) Projects(ctx context.Context, selectors []string) ([]Project, error) {
	list, err := c.SelectProjects(ctx, Selection{Repos: selectors, IncludeArchived: len(cleanSelectors(selectors)) > 0, Max: -1})
	if err != nil {
		return nil, err
	}
	if len(list.Missing) > 0 {
		return nil, list.Missing[0].Err
	}
	return list.Projects, nil
}

func (c *Client) project(ctx context.Context, sel string) (Project, error) {
	var pid any = sel
	if n, err := strconv.ParseInt(sel, 10, 64); err == nil {
		pid = n
	}
	var p *gl.Project
	_, err := c.call(ctx, fmt.Sprintf("project %q", sel), sel, func(o ...gl.RequestOptionFunc) (*gl.Response, error) {
		var resp *gl.Response
		var err error
		p, resp, err = c.gl.Projects.GetProject(pid, nil, o...)
		return resp, err
	})
	if err != nil {
		return Project{}, err
	}
	return projectFrom(p), nil
}

// activityList walks a project listing (membership or group projects)
// ordered by last_activity_at, most recent first, in offset pages of 100:
// the order that lets one listing tell which projects moved since the last
// poll (GitLab pages projects by keyset only in id order). A project whose
// activity moves while the walk is under way can jump to a page already
// read and be missed, or be read twice; each project is added once, and
// the poller asks GitLab directly about a known project the walk missed
// before it believes the project gone. A page that adds nothing new ends
// the walk, so a server repeating itself cannot hold it forever.
func activityList(ctx context.Context, list func(ctx context.Context, page int64) ([]*gl.Project, *gl.Response, error), add func(Project)) error {
	seen := map[int64]bool{}
	page := int64(1)
	for {
		ps, resp, err := list(ctx, page)
		if err != nil {
			return err
		}
		fresh := 0
		for _, p := range ps {
			if !seen[p.ID] {
				seen[p.ID] = true
				fresh++
				add(projectFrom(p))
			}
		}
		if fresh == 0 || resp.NextPage <= page {
			return nil
		}
		page = resp.NextPage
	}
}

// byActivity is the listing order activityList expects.
func byActivity(page int64) gl.ListOptions {
	return gl.ListOptions{PerPage: perPage, Page: page, OrderBy: "last_activity_at", Sort: "desc"}
}

func (c *Client) memberProjects(ctx context.Context, archived bool, add func(Project)) error {
	return activityList(ctx, func(ctx context.Context, page int64) ([]*gl.Project, *gl.Response, error) {
		opt := &gl.ListProjectsOptions{ListOptions: byActivity(page), Membership: gl.Ptr(true)}
		if !archived {
			opt.Archived = gl.Ptr(false)
		}
		var ps []*gl.Project
		resp, err := c.call(ctx, "the projects the token's user is a member of", "", func(o ...gl.RequestOptionFunc) (*gl.Response, error) {
			var resp *gl.Response
			var err error
			ps, resp, err = c.gl.Projects.ListProjects(opt, o...)
			return resp, err
		})
		return ps, resp, err
	}, add)
}

// groupProjects lists the projects of group g and its subgroups. Projects
// only shared with the group are not its own and are left out.
func (c *Client) groupProjects(ctx context.Context, g string, archived bool, add func(Project)) error {
	var gid any = g
	if n, err := strconv.ParseInt(g, 10, 64); err == nil {
		gid = n
	}
	return activityList(ctx, func(ctx context.Context, page int64) ([]*gl.Project, *gl.Response, error) {
		opt := &gl.ListGroupProjectsOptions{
			ListOptions:      byActivity(page),
			IncludeSubGroups: gl.Ptr(true),
			WithShared:       gl.Ptr(false),
		}
		if !archived {
			opt.Archived = gl.Ptr(false)
		}
		var ps []*gl.Project
		resp, err := c.call(ctx, fmt.Sprintf("the projects of group %q", g), "", func(o ...gl.RequestOptionFunc) (*gl.Response, error) {
			var resp *gl.Response
			var err error
			ps, resp, err = c.gl.Groups.ListGroupProjects(gid, opt, o...)
			return resp, err
		})
		if err != nil {
			err = c.groupError(g, err)
		}
		return ps, resp, err
	}, add)
}

// groupError names the group in a 404, which classify would otherwise blame
// on the GitLab URL.
func (c *Client) groupError(g string, err error) error {
	var e *apiError
	if errors.As(err, &e) && e.status == 404 {
		return c.fail(ErrNotFound, "GitLab group %q not found (404): check the id or path and that the token's user is a member", g)
	}
	return err
}
