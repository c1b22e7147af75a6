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
	gl "gitlab.com/gitlab-org/api/client-go/v2"
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
	// A merge request opened or pushed to moves its source branch, and
	// one merged pushes to its target branch.
	change.KindMergeRequest: {change.KindBranch, change.KindCommit},
	change.KindRelease:      {change.KindTag},
	change.KindDeployment:   {change.KindEnvironment},
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

// KnownFunc returns the updated_at the caller stores for each of ids
// (absent: not stored), as FetchOptions.Known does.
type KnownFunc func(ctx context.Context, ids []string) (map[string]time.Time, error)

// DetectChanges asks GitLab, a batch of projects per GraphQL query, which
// kinds changed in each probed project since its own times (an object
// stored at the time GitLab gives, or later, is not a change), and returns
// the kinds to sync per project id (with their companions); a project
// GitLab did not give (gone, no access) is returned with every kind, so
// that its sync finds out why. It returns ErrDetectionUnavailable when
// GraphQL cannot be used, other errors as Fetch does.
func (c *Client) DetectChanges(ctx context.Context, probes []ChangeProbe, known KnownFunc) (map[int64][]change.Kind, error) {
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
		err := c.detectBatch(ctx, batch, known, out)
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
	ID  string        `json:"id"`
	MR  *updatedSince `json:"mr"`
	PL  *updatedSince `json:"pl"`
	IS  *updatedSince `json:"is"`
	Rel *struct {
		Nodes []struct {
			TagName   string  `json:"tagName"`
			CreatedAt gqlTime `json:"createdAt"`
		} `json:"nodes"`
	} `json:"rel"`
	Env *struct {
		Nodes []struct {
			ID        string  `json:"id"`
			UpdatedAt gqlTime `json:"updatedAt"`
			Created   *struct {
				Nodes []struct {
					ID        string  `json:"id"`
					UpdatedAt gqlTime `json:"updatedAt"`
				} `json:"nodes"`
			} `json:"c"`
			Finished *struct {
				Nodes []struct {
					ID         string  `json:"id"`
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

// updatedSince is a connection asked for what was updated since the
// batch's time: how many, and the first few (iid for merge requests and
// issues, a global id for pipelines).
type updatedSince struct {
	Count int `json:"count"`
	Nodes []struct {
		ID        string  `json:"id"`
		IID       string  `json:"iid"`
		UpdatedAt gqlTime `json:"updatedAt"`
	} `json:"nodes"`
}

// detectUpdatedPage is how many of the objects updated since the batch's
// time are read, to be compared with each project's own time and with
// what the store holds.
const detectUpdatedPage = 5

// seen is one object a sweep answer names: its event id and the time
// that is newer than the stored one if it changed since it was synced.
type seen struct {
	id string
	at time.Time
}

// candidates are the objects of kind k an answer names as changed at or
// after the probe's time of k; all is true when the answer cannot tell
// (no answer, more than a page, a kind never synced).
func (a *detectAnswer) candidates(pr ChangeProbe, k change.Kind) (out []seen, all bool) {
	if pr.Since[k].IsZero() {
		return nil, true
	}
	since := pr.Since[k].Truncate(time.Second)
	pid := strconv.FormatInt(pr.Project.ID, 10)
	add := func(id string, t gqlTime) {
		if !t.Before(since) {
			out = append(out, seen{id: id, at: t.Time})
		}
	}
	tail := func(gid string) string { return gid[strings.LastIndexByte(gid, '/')+1:] }
	conn := func(u *updatedSince, id func(iid, gid string) string) bool {
		if u == nil || u.Count > len(u.Nodes) {
			return true
		}
		for _, n := range u.Nodes {
			add(id(n.IID, n.ID), n.UpdatedAt)
		}
		return false
	}
	switch k {
	case change.KindMergeRequest:
		all = conn(a.MR, func(iid, _ string) string { return "mr-" + pid + "-" + iid })
	case change.KindIssue:
		all = conn(a.IS, func(iid, _ string) string { return "issue-" + pid + "-" + iid })
	case change.KindPipeline:
		all = conn(a.PL, func(_, gid string) string { return "pipeline-" + pid + "-" + tail(gid) })
	case change.KindRelease:
		if a.Rel == nil {
			return nil, true
		}
		for _, n := range a.Rel.Nodes {
			add("release-"+pid+"-"+n.TagName, n.CreatedAt)
		}
	case change.KindDeployment:
		if a.Env == nil || a.Env.PageInfo.HasNextPage {
			return nil, true
		}
		for _, e := range a.Env.Nodes {
			add("environment-"+pid+"-"+tail(e.ID), e.UpdatedAt)
			if e.Created != nil {
				for _, d := range e.Created.Nodes {
					add("deployment-"+pid+"-"+tail(d.ID), d.UpdatedAt)
				}
			}
			if e.Finished != nil {
				for _, d := range e.Finished.Nodes {
					add("deployment-"+pid+"-"+tail(d.ID), d.FinishedAt)
				}
			}
		}
	}
	return out, all
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
// every kind with one short page. Merge requests, pipelines and issues
// are asked since the batch's oldest time of each kind, and the few
// updated since are compared with each project's own time; the rest is
// compared per project.
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
	for _, q := range []struct {
		alias, field, key string
		kind              change.Kind
	}{{"mr", "mergeRequests", "iid", change.KindMergeRequest}, {"pl", "pipelines", "id", change.KindPipeline}, {"is", "issues", "iid", change.KindIssue}} {
		fmt.Fprintf(&b, "%s:%s(updatedAfter:%s,first:%d){count nodes{%s updatedAt}} ", q.alias, q.field, gqlTimeArg(since[q.kind]), detectUpdatedPage, q.key)
	}
	b.WriteString("rel:releases(sort:CREATED_DESC,first:1){nodes{tagName createdAt}} ")
	fmt.Fprintf(&b, "env:environments(first:%d){nodes{id updatedAt "+
		"c:deployments(orderBy:{createdAt:DESC},first:1){nodes{id updatedAt}} "+
		"f:deployments(statuses:[SUCCESS,FAILED,CANCELED],orderBy:{finishedAt:DESC},first:1){nodes{id finishedAt}}} "+
		"pageInfo{hasNextPage}} ", detectEnvPage)
	fmt.Fprintf(&b, "cr:containerRepositories(first:%d){nodes{tagsCount} pageInfo{hasNextPage}}", detectRepoPage)
	b.WriteString("}}}")
	return b.String()
}

func (c *Client) detectBatch(ctx context.Context, batch []ChangeProbe, known KnownFunc, out map[int64][]change.Kind) error {
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
	// What the answers name as changed since each project's times is
	// checked against the store: an object stored at the time GitLab
	// gives, or later, has not changed since it was synced (a sync that
	// started in the second of its update read it).
	type pending struct {
		pr    ChangeProbe
		kinds []change.Kind
		objs  map[change.Kind][]seen
	}
	var todo []pending
	var ids []string
	for _, pr := range batch {
		a := got[pr.Project.ID]
		if a == nil {
			out[pr.Project.ID] = withCompanions(DetectableKinds()) // not given: gone or no access; its sync says which
			continue
		}
		p := pending{pr: pr, objs: map[change.Kind][]seen{}}
		for _, k := range DetectableKinds() {
			if k == change.KindImage {
				if a.imagesChanged(pr) {
					p.kinds = append(p.kinds, k)
				}
				continue
			}
			objs, all := a.candidates(pr, k)
			switch {
			case all:
				p.kinds = append(p.kinds, k)
			case len(objs) > 0:
				p.objs[k] = objs
				for _, o := range objs {
					ids = append(ids, o.id)
				}
			}
		}
		todo = append(todo, p)
	}
	stored := map[string]time.Time{}
	if len(ids) > 0 && known != nil {
		var err error
		if stored, err = known(ctx, ids); err != nil {
			return fmt.Errorf("gitlab: change detection: read stored versions: %w", err)
		}
	}
	for _, p := range todo {
		for _, k := range DetectableKinds() {
			for _, o := range p.objs[k] {
				if v, ok := stored[o.id]; !ok || v.Truncate(time.Second).Before(o.at) {
					p.kinds = append(p.kinds, k)
					break
				}
			}
		}
		if len(p.kinds) > 0 {
			out[p.pr.Project.ID] = withCompanions(p.kinds)
		}
	}
	return nil
}

// imagesChanged compares the tags GitLab counts with those the store
// holds.
func (a *detectAnswer) imagesChanged(pr ChangeProbe) bool {
	if a.CR == nil || a.CR.PageInfo.HasNextPage || pr.Since[change.KindImage].IsZero() {
		return true
	}
	n := 0
	for _, r := range a.CR.Nodes {
		n += r.TagsCount
	}
	return n != pr.Images
}

func withCompanions(kinds []change.Kind) []change.Kind {
	out := make([]change.Kind, 0, len(kinds)+2)
	for _, k := range kinds {
		out = append(out, k)
		out = append(out, companions[k]...)
	}
	return out
}

// EventDrivenKinds are the kinds GitLab records events for and the
// GraphQL sweep does not ask about: pushes (commits, branches, tags) and
// comments on commits.
func EventDrivenKinds() []change.Kind {
	return []change.Kind{change.KindCommit, change.KindBranch, change.KindTag, change.KindNote}
}

// eventKindsPage is how many of a project's newest events EventKinds reads.
const eventKindsPage = 20

// EventKinds reads a project's newest events (one request) and returns
// the event-driven kinds that changed since: pushes of branches (commits
// and branches) or tags, and comments on commits. Events of merge
// requests and issues are left out: they move those objects' updated_at,
// which the GraphQL sweep asks about. When the page does not reach back
// to since, or holds an event it cannot place, every event-driven kind is
// returned.
func (c *Client) EventKinds(ctx context.Context, p Project, since time.Time) ([]change.Kind, error) {
	opt := eventsOptions{ListOptions: gl.ListOptions{PerPage: eventKindsPage, Page: 1}, Sort: "desc"}
	var evs []*pushEvent
	if _, err := c.listCall(ctx, p, "events", c.getJSON(p.api()+"/events", &opt, &evs)); err != nil {
		return nil, err
	}
	if since.IsZero() || len(evs) == eventKindsPage && (evs[len(evs)-1].CreatedAt == nil || !evs[len(evs)-1].CreatedAt.Before(since)) {
		return EventDrivenKinds(), nil
	}
	set := map[change.Kind]bool{}
	for _, e := range evs {
		if e.CreatedAt == nil || e.CreatedAt.Before(since.Truncate(time.Second)) {
			continue
		}
		switch {
		case e.PushData != nil && e.PushData.RefType == "tag":
			set[change.KindTag] = true
		case e.PushData != nil:
			set[change.KindCommit], set[change.KindBranch] = true, true
		case e.Note != nil && e.Note.NoteableType == "Commit":
			set[change.KindNote] = true
		case e.TargetType == "MergeRequest" || e.TargetType == "Issue" || e.TargetType == "Note" || e.TargetType == "DiffNote" || e.TargetType == "DiscussionNote":
			// Moves its merge request's or issue's updated_at.
		default:
			return EventDrivenKinds(), nil
		}
	}
	var out []change.Kind
	for _, k := range EventDrivenKinds() {
		if set[k] {
			out = append(out, k)
		}
	}
	return out, nil
}

// pushEvent is an event with what EventKinds reads of it.
type pushEvent struct {
	projectEvent
	PushData *struct {
		RefType string `json:"ref_type"`
	} `json:"push_data"`
}
