package gitlab

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	gl "gitlab.com/gitlab-org/api/client-go/v2"
)

// Pipelines walked by GraphQL: each query carries a page of 100 pipelines
// with their details and all their jobs, where REST needs a listing page
// and two calls per pipeline. GitLab's GraphQL API lists pipelines newest
// first by id only, so a page cannot be resumed from by time: pages go out
// with Page.Cursor at since, and the last one carries the newest
// updated_at GitLab had when the walk began (read first, by REST), which
// no pipeline updated during the walk can be older than. GraphQL has no
// failure reason for jobs (only a translated message): those come from
// REST, from the project's failed jobs (newest first, like the walk) when
// a page has several, else from each such pipeline's failed jobs.

// errUseREST: the GraphQL walk could not be used; the caller walks by
// REST from the start.
var errUseREST = errors.New("use REST")

const gqlJobFields = `fragment labtrailJob on CiJob {
  id name kind status stage { name } allowFailure
  createdAt startedAt finishedAt duration queuedDuration refName webPath
}`

const gqlPipelinesQuery = `query labtrailPipelines($project: ID!, $after: Time, $first: Int, $cursor: String, $jobs: Int) {
  project(fullPath: $project) {
    pipelines(updatedAfter: $after, first: $first, after: $cursor) {
      pageInfo { hasNextPage endCursor }
      nodes {
        id iid sha ref status source name path
        createdAt updatedAt startedAt finishedAt duration queuedDuration
        user { username }
        jobs(retried: false, first: $jobs) { pageInfo { hasNextPage endCursor } nodes { ...labtrailJob } }
      }
    }
  }
}
` + gqlJobFields

const gqlPipelineJobsQuery = `query labtrailPipelineJobs($project: ID!, $id: CiPipelineID!, $first: Int, $after: String) {
  project(fullPath: $project) {
    pipeline(id: $id) {
      jobs(retried: false, first: $first, after: $after) { pageInfo { hasNextPage endCursor } nodes { ...labtrailJob } }
    }
  }
}
` + gqlJobFields

type gqlJob struct {
	ID             string                 `json:"id"`
	Name           string                 `json:"name"`
	Kind           string                 `json:"kind"`
	Status         string                 `json:"status"`
	Stage          *struct{ Name string } `json:"stage"`
	AllowFailure   bool                   `json:"allowFailure"`
	CreatedAt      gqlTime                `json:"createdAt"`
	StartedAt      gqlTime                `json:"startedAt"`
	FinishedAt     gqlTime                `json:"finishedAt"`
	Duration       *int64                 `json:"duration"`
	QueuedDuration *float64               `json:"queuedDuration"`
	RefName        string                 `json:"refName"`
	WebPath        string                 `json:"webPath"`
}

type gqlJobs struct {
	PageInfo gqlPageInfo `json:"pageInfo"`
	Nodes    []gqlJob    `json:"nodes"`
}

type gqlPipeline struct {
	ID             string   `json:"id"`
	IID            string   `json:"iid"`
	SHA            string   `json:"sha"`
	Ref            string   `json:"ref"`
	Status         string   `json:"status"`
	Source         string   `json:"source"`
	Name           string   `json:"name"`
	Path           string   `json:"path"`
	CreatedAt      gqlTime  `json:"createdAt"`
	UpdatedAt      gqlTime  `json:"updatedAt"`
	StartedAt      gqlTime  `json:"startedAt"`
	FinishedAt     gqlTime  `json:"finishedAt"`
	Duration       *int64   `json:"duration"`
	QueuedDuration *float64 `json:"queuedDuration"`
	User           *gqlUser `json:"user"`
	Jobs           gqlJobs  `json:"jobs"`
}

// info is the pipeline as the REST listing would give it.
func (n *gqlPipeline) info(c *Client, p Project) (*gl.PipelineInfo, error) {
	id, err := gidNumber(n.ID)
	if err != nil {
		return nil, err
	}
	iid, err := strconv.ParseInt(n.IID, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("gitlab: pipeline iid %q from GraphQL: %w", n.IID, err)
	}
	pl := &gl.PipelineInfo{
		ID: id, IID: iid, ProjectID: p.ID, SHA: n.SHA, Ref: n.Ref, Status: strings.ToLower(n.Status),
		Source: n.Source, Name: n.Name, CreatedAt: n.CreatedAt.ptr(), UpdatedAt: n.UpdatedAt.ptr(),
	}
	if n.Path != "" {
		pl.WebURL = c.instanceURL(p) + n.Path
	}
	return pl, nil
}

// newestPipelineUpdate is the latest updated_at among p's pipelines (zero:
// none), by REST: one pipeline of the listing in updated_at order.
func (c *Client) newestPipelineUpdate(ctx context.Context, p Project) (time.Time, error) {
	opt := &gl.ListProjectPipelinesOptions{
		ListOptions: gl.ListOptions{PerPage: 1, Page: 1},
		OrderBy:     gl.Ptr("updated_at"),
		Sort:        gl.Ptr("desc"),
	}
	var pls []*gl.PipelineInfo
	_, err := c.listCall(ctx, p, "pipelines", func(o ...gl.RequestOptionFunc) (*gl.Response, error) {
		var resp *gl.Response
		var err error
		pls, resp, err = c.gl.Pipelines.ListProjectPipelines(p.ref(), opt, o...)
		return resp, err
	})
	if err != nil || len(pls) == 0 {
		return time.Time{}, err
	}
	return utc(pls[0].UpdatedAt), nil
}

// pipelinesGraphQL walks p's pipelines updated since by GraphQL (see
// above). It returns errUseREST, having emitted nothing that a REST walk
// would not emit again, when GraphQL cannot serve the walk.
func (c *Client) pipelinesGraphQL(ctx context.Context, p Project, since time.Time, opts FetchOptions, fn func(Page) error) error {
	newest, err := c.newestPipelineUpdate(ctx, p)
	if err != nil {
		return err
	}
	if newest.IsZero() || !newest.After(since) {
		return nil // nothing changed since
	}
	vars := map[string]any{"project": p.Path}
	if !since.IsZero() {
		// Whichever way GitLab bounds updatedAfter, a second back loses
		// nothing; what was stored already is skipped below.
		vars["after"] = seconds(since).Add(-time.Second).Format(time.RFC3339)
	}
	out := &heldPages{kind: change.KindPipeline, since: since, fn: fn}
	reasons := &failureReasons{c: c, p: p, known: map[int64]string{}}
	cursor := ""
	for {
		if !c.graphQLFor(&c.plPlan) {
			return errUseREST
		}
		level := int(c.plPlan.level.Load())
		first, nested, _ := c.plPlan.sizes()
		vars["first"], vars["jobs"] = first, nested
		if cursor != "" {
			vars["cursor"] = cursor
		}
		var data struct {
			Project *struct {
				Pipelines struct {
					PageInfo gqlPageInfo   `json:"pageInfo"`
					Nodes    []gqlPipeline `json:"nodes"`
				} `json:"pipelines"`
			} `json:"project"`
		}
		desc := fmt.Sprintf("pipelines of %s (GraphQL)", p.selector())
		err := c.graphQL(ctx, desc, gqlPipelinesQuery, vars, &data)
		if errors.Is(err, errGraphQLRefused) {
			c.log.Info("GitLab refused a GraphQL query as too complex; asking for less", "project", p.selector(), "reason", err.Error())
			c.plPlan.shrink(level)
			continue
		}
		if err != nil {
			if err := c.graphQLFailed(&c.plPlan, err); err != nil {
				return err
			}
			return errUseREST
		}
		if data.Project == nil {
			// GraphQL shows the token no such project; REST will say
			// what is wrong.
			return errUseREST
		}
		conn := data.Project.Pipelines
		events, err := c.pipelinePageGraphQL(ctx, p, opts, conn.Nodes, reasons)
		if err != nil {
			return err
		}
		if err := out.add(events, newest); err != nil {
			return err
		}
		if !conn.PageInfo.HasNextPage {
			break
		}
		cursor = conn.PageInfo.EndCursor
	}
	if out.held == nil {
		// Everything was stored already: one empty page still moves the
		// cursor on.
		return fn(Page{Kind: change.KindPipeline, Cursor: latest(newest, since)})
	}
	return out.flush()
}

// pipelinePageGraphQL converts one GraphQL page: the pipelines not stored
// at their updated_at yet, with their jobs.
func (c *Client) pipelinePageGraphQL(ctx context.Context, p Project, opts FetchOptions, nodes []gqlPipeline, reasons *failureReasons) ([]change.Event, error) {
	type item struct {
		n  *gqlPipeline
		pl *gl.PipelineInfo
	}
	items := make([]item, 0, len(nodes))
	for i := range nodes {
		pl, err := nodes[i].info(c, p)
		if err != nil {
			return nil, err
		}
		items = append(items, item{&nodes[i], pl})
	}
	items, err := changedOnly(ctx, opts, items,
		func(it item) string { return change.PipelineID(p.ID, it.pl.ID) },
		func(it item) time.Time { return seconds(utc(it.pl.UpdatedAt)) })
	if err != nil {
		return nil, err
	}
	var failed []int64
	for _, it := range items {
		for _, j := range it.n.Jobs.Nodes {
			if j.Status == "FAILED" && j.Kind != "BRIDGE" {
				if id, err := gidNumber(j.ID); err == nil {
					failed = append(failed, id)
				}
			}
		}
	}
	known := map[int64]string{}
	if len(failed) >= batchFailedJobs {
		if known, err = reasons.lookup(ctx, failed); err != nil {
			return nil, err
		}
	}
	per := make([][]change.Event, len(items))
	err = c.forEach(ctx, len(items), func(ctx context.Context, i int) error {
		n, pl := items[i].n, items[i].pl
		jobs := n.Jobs
		for jobs.PageInfo.HasNextPage {
			more, err := c.pipelineJobsGraphQL(ctx, p, n.ID, jobs.PageInfo.EndCursor)
			if err != nil || more == nil {
				break
			}
			jobs.Nodes = append(jobs.Nodes, more.Nodes...)
			jobs.PageInfo = more.PageInfo
		}
		var err error
		if jobs.PageInfo.HasNextPage {
			// The rest of its jobs would not come: this one by REST.
			per[i], err = c.pipelineWithJobs(ctx, p, pl, true)
		} else {
			per[i], err = c.pipelineFromGraphQL(ctx, p, pl, n, jobs.Nodes, known)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	var events []change.Event
	for _, evs := range per {
		events = append(events, evs...)
	}
	return events, nil
}

// pipelineJobsGraphQL reads the next page of one pipeline's jobs; nil when
// that fails in any way (the pipeline then goes by REST).
func (c *Client) pipelineJobsGraphQL(ctx context.Context, p Project, id, after string) (*gqlJobs, error) {
	var data struct {
		Project *struct {
			Pipeline *struct {
				Jobs gqlJobs `json:"jobs"`
			} `json:"pipeline"`
		} `json:"project"`
	}
	desc := fmt.Sprintf("jobs of pipeline %s of %s (GraphQL)", id, p.selector())
	err := c.graphQL(ctx, desc, gqlPipelineJobsQuery, map[string]any{"project": p.Path, "id": id, "first": perPage, "after": after}, &data)
	if err != nil || data.Project == nil || data.Project.Pipeline == nil {
		return nil, err
	}
	return &data.Project.Pipeline.Jobs, nil
}

// pipelineFromGraphQL makes the events of one pipeline from GraphQL, with
// the failure reasons of its failed jobs from REST.
// known holds failure reasons already looked up by job id.
func (c *Client) pipelineFromGraphQL(ctx context.Context, p Project, pl *gl.PipelineInfo, n *gqlPipeline, nodes []gqlJob, known map[int64]string) ([]change.Event, error) {
	extra := &pipelineExtra{started: n.StartedAt.Time, finished: n.FinishedAt.Time, user: n.User.name()}
	if n.Duration != nil {
		extra.duration = *n.Duration
	}
	if n.QueuedDuration != nil {
		extra.queued = int64(math.Round(*n.QueuedDuration))
	}
	base := c.instanceURL(p)
	jobs := make([]jobData, 0, len(nodes))
	failed := false
	for _, j := range nodes {
		if j.Kind == "BRIDGE" {
			// REST's listing of a pipeline's jobs leaves out bridges
			// (trigger jobs); so does labtrail.
			continue
		}
		id, err := gidNumber(j.ID)
		if err != nil {
			return nil, err
		}
		jd := jobData{
			id: id, pipelineID: pl.ID, name: j.Name, status: strings.ToLower(j.Status), ref: j.RefName, sha: pl.SHA,
			allowFailure: j.AllowFailure, created: j.CreatedAt.Time, started: j.StartedAt.Time, finished: j.FinishedAt.Time,
		}
		if j.Stage != nil {
			jd.stage = j.Stage.Name
		}
		if j.WebPath != "" {
			jd.webURL = base + j.WebPath
		}
		if j.Duration != nil {
			jd.duration = float64(*j.Duration)
		}
		if j.QueuedDuration != nil {
			jd.queued = *j.QueuedDuration
		}
		if jd.status == "failed" {
			reason, ok := known[id]
			jd.failureReason = reason
			failed = failed || !ok
		}
		jobs = append(jobs, jd)
	}
	if failed {
		rest, err := c.pipelineJobs(ctx, p, pl.ID, []gl.BuildStateValue{"failed"})
		if err != nil {
			return nil, err
		}
		reasons := map[int64]string{}
		for _, j := range rest {
			reasons[j.ID] = j.FailureReason
		}
		for i := range jobs {
			if jobs[i].status == "failed" {
				jobs[i].failureReason = reasons[jobs[i].id]
			}
		}
	}
	return pipelineEvents(p, pl, extra, jobs), nil
}

// batchFailedJobs is how many failed jobs a page must have for their
// failure reasons to be looked up in the project's failed jobs rather than
// pipeline by pipeline.
const batchFailedJobs = 3

// failureReasons reads a project's failed jobs (GET /projects/:id/jobs?
// scope[]=failed, newest first) as far as a walk needs them. The walk goes
// newest first too, so in a backfill a page of failed jobs serves several
// pages of pipelines.
type failureReasons struct {
	c      *Client
	p      Project
	known  map[int64]string
	page   int64 // last page read
	lowest int64 // lowest job id read
	done   bool  // the listing is exhausted
}

// maxFailedJobPages bounds the pages one lookup reads: failed jobs of old
// pipelines (an incremental sync after a retry) are cheaper pipeline by
// pipeline than behind every newer failure of the project.
const maxFailedJobPages = 3

// lookup returns the reasons of ids it found; the others are looked up
// pipeline by pipeline.
func (f *failureReasons) lookup(ctx context.Context, ids []int64) (map[int64]string, error) {
	for read := 0; read < maxFailedJobPages && !f.done; read++ {
		var need int64
		for _, id := range ids {
			if _, ok := f.known[id]; !ok && (need == 0 || id < need) {
				need = id
			}
		}
		if need == 0 || (f.page > 0 && f.lowest < need) {
			break // found all, or read past the ones left
		}
		opt := &gl.ListJobsOptions{ListOptions: gl.ListOptions{PerPage: perPage, Page: f.page + 1},
			Scope: &[]gl.BuildStateValue{"failed"}}
		var jobs []*gl.Job
		resp, err := f.c.listCall(ctx, f.p, "failed jobs", func(o ...gl.RequestOptionFunc) (*gl.Response, error) {
			var resp *gl.Response
			var err error
			jobs, resp, err = f.c.gl.Jobs.ListProjectJobs(f.p.ref(), opt, o...)
			return resp, err
		})
		if err != nil {
			return nil, err
		}
		f.page++
		for _, j := range jobs {
			f.known[j.ID] = j.FailureReason
			if f.lowest == 0 || j.ID < f.lowest {
				f.lowest = j.ID
			}
		}
		f.done = len(jobs) < perPage || resp == nil || resp.NextPage <= f.page
	}
	out := make(map[int64]string, len(ids))
	for _, id := range ids {
		if r, ok := f.known[id]; ok {
			out[id] = r
		}
	}
	return out, nil
}
