package gitlab

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/labtrail/labtrail/internal/change"
)

// ErrDetectionUnavailable: GitLab cannot answer a change detection sweep
// (no GraphQL API, GraphQL switched off, or the query refused even for
// one project). The caller keeps to the full sweep by REST.
var ErrDetectionUnavailable = errors.New("gitlab: change detection by GraphQL not available")

// ChangeProbe asks whether anything of each detectable kind changed in a
// project since that kind's own time (Since; a kind with no time counts
// as changed). Images is how many container image tags (repository and
// tag name) the caller holds for the project.
type ChangeProbe struct {
	Project Project
	Since   map[change.Kind]time.Time
	Images  int
}

// DetectableKinds are the kinds a change detection sweep asks about
// directly. Tags come with releases and environments with deployments;
// commits, branches and notes move last_activity_at (pushes and comments
// are GitLab events) and are left to the activity gate.
func DetectableKinds() []change.Kind {
	return []change.Kind{
		change.KindMergeRequest, change.KindPipeline, change.KindIssue,
		change.KindRelease, change.KindDeployment, change.KindImage,
	}
}

// companions are the kinds synced with a detected one: a release is a
// tag's, a deployment changes its environment.
var companions = map[change.Kind][]change.Kind{
	change.KindRelease:    {change.KindTag},
	change.KindDeployment: {change.KindEnvironment},
}

// detectEnvPage and detectRepoPage are how many environments and
// container repositories of a project one sweep looks at; a project with
// more is counted as changed in those kinds.
const (
	detectEnvPage  = 20
	detectRepoPage = 20
)

// detectBatch is how many projects one sweep query asks about: at first
// GitLab's page size, 100; smaller after GitLab refused a query as too
// complex (kept for the client's life).
type detectBatch struct{ size atomic.Int32 }

func (d *detectBatch) get() int {
	if n := d.size.Load(); n > 0 {
		return int(n)
	}
	return perPage
}

// shrink sets the batch size from a refusal of a query over size
// projects: in proportion to GitLab's limit over the score when its
// message gives them ("Query has complexity of 310, which exceeds max
// complexity of 250"), else half.
func (d *detectBatch) shrink(size int, err error) {
	next := size / 2
	var score, limit int
	if _, e := fmt.Sscanf(complexityMessage(err), "Query has complexity of %d, which exceeds max complexity of %d", &score, &limit); e == nil && score > 0 {
		next = min(next+size/2, size*limit/score)
		next = min(next, size-1)
	}
	d.size.Store(int32(max(1, next)))
}

func complexityMessage(err error) string {
	var ge *graphQLError
	if errors.As(err, &ge) {
		for _, m := range ge.msgs {
			if strings.HasPrefix(m, "Query has complexity of") {
				return m
			}
		}
	}
	return ""
}

// DetectChanges asks GitLab, a batch of projects per GraphQL query, which
// kinds changed in each probed project since its own times, and returns
// the kinds to sync per project id (with their companions); a project
// GitLab did not give (gone, no access) is returned with every kind, so
// that its sync finds out why. It returns ErrDetectionUnavailable when
// GraphQL cannot be used, other errors as Fetch does.
func (c *Client) DetectChanges(ctx context.Context, probes []ChangeProbe) (map[int64][]change.Kind, error) {
	if !c.graphql || c.graphqlOff.Load() {
		return nil, ErrDetectionUnavailable
	}
	out := map[int64][]change.Kind{}
	// A batch asks each kind since the oldest time among its projects:
	// in the order of their times, batches hold projects of like times.
	probes = slices.Clone(probes)
	slices.SortStableFunc(probes, func(a, b ChangeProbe) int { return a.oldest().Compare(b.oldest()) })
	for len(probes) > 0 {
		size := min(c.detect.get(), len(probes))
		batch := probes[:size]
		err := c.detectBatch(ctx, batch, out)
		switch {
		case err == nil:
			probes = probes[size:]
		case errors.Is(err, errGraphQLRefused) && size > 1:
			c.detect.shrink(size, err)
			c.log.Info("GitLab refused a change detection query; asking about fewer projects at once", "projects", size, "reason", err.Error())
		case errors.Is(err, errGraphQLPartial):
			// Some project's probe failed: sync every kind of the batch.
			c.log.Warn("GitLab's change detection answer was incomplete; syncing those projects whole", "projects", size, "reason", err.Error())
			for _, pr := range batch {
				out[pr.Project.ID] = withCompanions(DetectableKinds())
			}
			probes = probes[size:]
		case errors.Is(err, errGraphQLUnavailable):
			if c.graphqlOff.CompareAndSwap(false, true) {
				c.log.Warn("GitLab's GraphQL API is not available; using REST from now on", "url", c.base, "reason", err.Error())
			}
			return out, fmt.Errorf("%w: %v", ErrDetectionUnavailable, err)
		case errors.Is(err, errGraphQLRefused), errors.Is(err, errGraphQLQuery):
			return out, fmt.Errorf("%w: %v", ErrDetectionUnavailable, err)
		default:
			return out, err
		}
	}
	return out, nil
}

type detectAnswer struct {
	ID  string               `json:"id"`
	MR  *struct{ Count int } `json:"mr"`
	PL  *struct{ Count int } `json:"pl"`
	IS  *struct{ Count int } `json:"is"`
	Rel *struct {
		Nodes []struct {
			CreatedAt gqlTime `json:"createdAt"`
		} `json:"nodes"`
	} `json:"rel"`
	Env *struct {
		Nodes []struct {
			UpdatedAt gqlTime `json:"updatedAt"`
			Created   *struct {
				Nodes []struct {
					UpdatedAt gqlTime `json:"updatedAt"`
				} `json:"nodes"`
			} `json:"c"`
			Finished *struct {
				Nodes []struct {
					FinishedAt gqlTime `json:"finishedAt"`
				} `json:"nodes"`
			} `json:"f"`
		} `json:"nodes"`
		PageInfo gqlPageInfo `json:"pageInfo"`
	} `json:"env"`
	CR *struct {
		Nodes []struct {
			TagsCount int `json:"tagsCount"`
		} `json:"nodes"`
		PageInfo gqlPageInfo `json:"pageInfo"`
	} `json:"cr"`
}

// oldest is the earliest of a probe's times (zero if a kind has none).
func (pr ChangeProbe) oldest() time.Time {
	var t time.Time
	first := true
	for _, k := range DetectableKinds() {
		s := pr.Since[k]
		if first || s.Before(t) {
			t, first = s, false
		}
	}
	return t
}

// gqlTimeArg writes t as a GraphQL Time literal at whole seconds, rounded
// down so that nothing updated in t's second is missed.
func gqlTimeArg(t time.Time) string {
	return `"` + t.UTC().Truncate(time.Second).Format(time.RFC3339) + `"`
}

// detectQuery is one query over batch: GitLab's projects(ids:), whose
// connection GitLab scores at its nodes' cost plus 1% a node, each asking
// every kind with first: 1 (or one short page). Counts are asked since the
// batch's oldest time of each kind; the rest is compared per project.
func detectQuery(batch []ChangeProbe) string {
	var b strings.Builder
	ids := make([]string, len(batch))
	since := map[change.Kind]time.Time{}
	for i, pr := range batch {
		ids[i] = fmt.Sprintf("%q", "gid://gitlab/Project/"+strconv.FormatInt(pr.Project.ID, 10))
		for _, k := range DetectableKinds() {
			if s, ok := since[k]; !ok || pr.Since[k].Before(s) {
				since[k] = pr.Since[k]
			}
		}
	}
	fmt.Fprintf(&b, "query{projects(ids:[%s],first:%d){nodes{id ", strings.Join(ids, ","), len(batch))
	fmt.Fprintf(&b, "mr:mergeRequests(updatedAfter:%s,first:1){count} ", gqlTimeArg(since[change.KindMergeRequest]))
	fmt.Fprintf(&b, "pl:pipelines(updatedAfter:%s,first:1){count} ", gqlTimeArg(since[change.KindPipeline]))
	fmt.Fprintf(&b, "is:issues(updatedAfter:%s,first:1){count} ", gqlTimeArg(since[change.KindIssue]))
	b.WriteString("rel:releases(sort:CREATED_DESC,first:1){nodes{createdAt}} ")
	fmt.Fprintf(&b, "env:environments(first:%d){nodes{updatedAt "+
		"c:deployments(orderBy:{createdAt:DESC},first:1){nodes{updatedAt}} "+
		"f:deployments(statuses:[SUCCESS,FAILED,CANCELED],orderBy:{finishedAt:DESC},first:1){nodes{finishedAt}}} "+
		"pageInfo{hasNextPage}} ", detectEnvPage)
	fmt.Fprintf(&b, "cr:containerRepositories(first:%d){nodes{tagsCount} pageInfo{hasNextPage}}", detectRepoPage)
	b.WriteString("}}}")
	return b.String()
}

func (c *Client) detectBatch(ctx context.Context, batch []ChangeProbe, out map[int64][]change.Kind) error {
	var data struct {
		Projects *struct {
			Nodes []*detectAnswer `json:"nodes"`
		} `json:"projects"`
	}
	if err := c.graphQL(ctx, fmt.Sprintf("change detection of %d projects", len(batch)), detectQuery(batch), nil, &data); err != nil {
		return err
	}
	got := map[int64]*detectAnswer{}
	if data.Projects != nil {
		for _, a := range data.Projects.Nodes {
			if a == nil {
				continue
			}
			if id, err := gidNumber(a.ID); err == nil {
				got[id] = a
			}
		}
	}
	for _, pr := range batch {
		if kinds := got[pr.Project.ID].changed(pr); len(kinds) > 0 {
			out[pr.Project.ID] = withCompanions(kinds)
		}
	}
	return nil
}

// changed reads one project's answer against its probe.
func (a *detectAnswer) changed(pr ChangeProbe) []change.Kind {
	if a == nil {
		return DetectableKinds() // not given: gone or no access; its sync says which
	}
	after := func(k change.Kind, t gqlTime) bool {
		s := pr.Since[k]
		return s.IsZero() || !t.Before(s.Truncate(time.Second))
	}
	var out []change.Kind
	add := func(k change.Kind, yes bool) {
		if yes || pr.Since[k].IsZero() {
			out = append(out, k)
		}
	}
	add(change.KindMergeRequest, a.MR == nil || a.MR.Count > 0)
	add(change.KindPipeline, a.PL == nil || a.PL.Count > 0)
	add(change.KindIssue, a.IS == nil || a.IS.Count > 0)
	rel := a.Rel == nil
	if a.Rel != nil {
		for _, n := range a.Rel.Nodes {
			rel = rel || after(change.KindRelease, n.CreatedAt)
		}
	}
	add(change.KindRelease, rel)
	dep := a.Env == nil || a.Env.PageInfo.HasNextPage
	if a.Env != nil {
		for _, e := range a.Env.Nodes {
			dep = dep || after(change.KindDeployment, e.UpdatedAt)
			if e.Created != nil {
				for _, d := range e.Created.Nodes {
					dep = dep || after(change.KindDeployment, d.UpdatedAt)
				}
			}
			if e.Finished != nil {
				for _, d := range e.Finished.Nodes {
					dep = dep || after(change.KindDeployment, d.FinishedAt)
				}
			}
		}
	}
	add(change.KindDeployment, dep)
	img := a.CR == nil || a.CR.PageInfo.HasNextPage
	if a.CR != nil {
		n := 0
		for _, r := range a.CR.Nodes {
			n += r.TagsCount
		}
		img = img || n != pr.Images
	}
	add(change.KindImage, img)
	return out
}

func withCompanions(kinds []change.Kind) []change.Kind {
	out := make([]change.Kind, 0, len(kinds)+2)
	for _, k := range kinds {
		out = append(out, k)
		out = append(out, companions[k]...)
	}
	return out
}
