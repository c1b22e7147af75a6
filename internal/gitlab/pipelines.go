package gitlab

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	gl "gitlab.com/gitlab-org/api/client-go/v2"
)

// finalStatus reports whether a pipeline or job status can no longer
// change by itself.
func finalStatus(s string) bool {
	switch s {
	case "success", "failed", "canceled", "skipped":
		return true
	}
	return false
}

// Pipelines calls fn once per fetched page, oldest updated_at first, with
// every pipeline of p updated on or after since (zero: all of them). For
// each failed pipeline it also fetches the pipeline's jobs: they come as
// KindJob events in the same page, and the failed ones as the pipeline's
// "failed_jobs" attribute. Like GitLab's listing, it leaves out child
// pipelines. Fetch does more: details and jobs of every pipeline.
func (c *Client) Pipelines(ctx context.Context, p Project, since time.Time, fn func(Page) error) error {
	return c.pipelines(ctx, p, since, nil, fn)
}

// pipelines walks p's pipelines; with opts (Fetch), each changed one gets
// its detail and all its jobs (by GraphQL, a page of pipelines a query,
// where GitLab allows; else by REST), else only failed ones get their
// jobs.
func (c *Client) pipelines(ctx context.Context, p Project, since time.Time, opts *FetchOptions, fn func(Page) error) error {
	details := opts != nil
	if details && c.graphQLFor(&c.plPlan) {
		err := c.pipelinesGraphQL(ctx, p, since, *opts, fn)
		if !errors.Is(err, errUseREST) {
			return err
		}
	}
	list := func(ctx context.Context, after time.Time, page int64) ([]*gl.PipelineInfo, *gl.Response, error) {
		opt := &gl.ListProjectPipelinesOptions{
			ListOptions:  gl.ListOptions{PerPage: perPage, Page: page},
			OrderBy:      gl.Ptr("updated_at"),
			Sort:         gl.Ptr("asc"),
			UpdatedAfter: afterParam(after),
		}
		var pls []*gl.PipelineInfo
		resp, err := c.listCall(ctx, p, "pipelines", func(o ...gl.RequestOptionFunc) (*gl.Response, error) {
			var resp *gl.Response
			var err error
			pls, resp, err = c.gl.Pipelines.ListProjectPipelines(p.ref(), opt, o...)
			return resp, err
		})
		return pls, resp, err
	}
	key := func(pl *gl.PipelineInfo) (int64, time.Time) { return pl.ID, utc(pl.UpdatedAt) }
	return walkByTime(ctx, since, list, key, func(pls []*gl.PipelineInfo, cursor time.Time) error {
		if opts != nil {
			var err error
			pls, err = changedOnly(ctx, *opts, pls,
				func(pl *gl.PipelineInfo) string { return change.PipelineID(p.ID, pl.ID) },
				func(pl *gl.PipelineInfo) time.Time { return seconds(utc(pl.UpdatedAt)) })
			if err != nil {
				return err
			}
		}
		per := make([][]change.Event, len(pls))
		err := c.forEach(ctx, len(pls), func(ctx context.Context, i int) error {
			var err error
			per[i], err = c.pipelineWithJobs(ctx, p, pls[i], details)
			return err
		})
		if err != nil {
			return err
		}
		var events []change.Event
		for _, evs := range per {
			events = append(events, evs...)
		}
		return fn(Page{Kind: change.KindPipeline, Events: events, Cursor: cursor})
	})
}

// pipelineDetail is GET /pipelines/:id. GitLab documents duration and
// queued_duration as whole seconds and client-go decodes them as integers,
// but a fraction (as jobs have) must not make a whole sync fail.
type pipelineDetail struct {
	gl.Pipeline
	Duration       float64 `json:"duration"`
	QueuedDuration float64 `json:"queued_duration"`
}

// pipelineExtra is what a pipeline's detail adds to its listing, from
// GET /pipelines/:id or from GraphQL.
type pipelineExtra struct {
	started, finished time.Time
	duration, queued  int64 // whole seconds
	user              string
}

// jobData is one job as labtrail keeps it, from REST or GraphQL.
type jobData struct {
	id, pipelineID                     int64
	name, stage, status, failureReason string
	ref, sha, webURL                   string
	allowFailure                       bool
	created, started, finished         time.Time
	duration, queued                   float64 // seconds
}

func jobFromREST(j *gl.Job) jobData {
	sha := j.Pipeline.Sha
	if sha == "" && j.Commit != nil {
		sha = j.Commit.ID
	}
	return jobData{
		id: j.ID, pipelineID: j.Pipeline.ID, name: j.Name, stage: j.Stage, status: j.Status,
		failureReason: j.FailureReason, ref: j.Ref, sha: sha, webURL: j.WebURL, allowFailure: j.AllowFailure,
		created: utc(j.CreatedAt), started: utc(j.StartedAt), finished: utc(j.FinishedAt),
		duration: j.Duration, queued: j.QueuedDuration,
	}
}

// pipelineWithJobs converts one listed pipeline; with details, from GET
// /pipelines/:id and with all its jobs, else with jobs only if it failed.
func (c *Client) pipelineWithJobs(ctx context.Context, p Project, pl *gl.PipelineInfo, details bool) ([]change.Event, error) {
	if !details {
		ev := PipelineEvent(p, pl)
		if pl.Status != "failed" {
			return []change.Event{ev}, nil
		}
		jobs, err := c.pipelineJobs(ctx, p, pl.ID, nil)
		if err != nil {
			return nil, err
		}
		ev.Attrs["failed_jobs"] = FailedJobs(jobs)
		events := []change.Event{ev}
		for _, j := range jobs {
			events = append(events, withPipelineTime(JobEvent(p, j), ev))
		}
		return events, nil
	}

	var extra *pipelineExtra
	var full pipelineDetail
	_, err := c.call(ctx, fmt.Sprintf("pipeline %d of %s", pl.ID, p.selector()), "",
		c.getJSON(fmt.Sprintf("%s/pipelines/%d", p.api(), pl.ID), nil, &full))
	switch {
	case optional(err):
		c.log.Info("GitLab pipeline detail not available", "project", p.selector(), "pipeline", pl.ID, "reason", err.Error())
	case err != nil:
		return nil, err
	default:
		extra = &pipelineExtra{
			started: utc(full.StartedAt), finished: utc(full.FinishedAt),
			duration: int64(math.Round(full.Duration)), queued: int64(math.Round(full.QueuedDuration)),
		}
		if full.User != nil {
			extra.user = full.User.Username
		}
	}
	jobs, err := c.pipelineJobs(ctx, p, pl.ID, nil)
	if err != nil {
		return nil, err
	}
	data := make([]jobData, len(jobs))
	for i, j := range jobs {
		data[i] = jobFromREST(j)
	}
	return pipelineEvents(p, pl, extra, data), nil
}

// pipelineEvents makes the events of a pipeline fetched with its detail
// and jobs, the same whichever API they came from: the listing's fields,
// the detail's times, durations and user, and every job (whose author is
// the pipeline's user: GitLab's GraphQL API has no user on jobs).
func pipelineEvents(p Project, pl *gl.PipelineInfo, extra *pipelineExtra, jobs []jobData) []change.Event {
	ev := pipelineWithExtra(p, pl, extra)
	ev.Attrs["failed_jobs"] = failedJobs(jobs)
	author := ""
	if extra != nil {
		author = extra.user
	}
	events := []change.Event{ev}
	for _, j := range jobs {
		events = append(events, withPipelineTime(jobEvent(p, j, author), ev))
	}
	return events
}

// withPipelineTime dates a job that never got a timestamp: it changed last
// when its pipeline did.
func withPipelineTime(je, pipeline change.Event) change.Event {
	if je.UpdatedAt.IsZero() {
		je.UpdatedAt, je.OccurredAt = pipeline.UpdatedAt, pipeline.UpdatedAt
	}
	return je
}

// pipelineJobs lists all (latest, not retried) jobs of one pipeline, or
// those in scope. A pipeline deleted since it was listed has none.
func (c *Client) pipelineJobs(ctx context.Context, p Project, pipelineID int64, scope []gl.BuildStateValue) ([]*gl.Job, error) {
	opt := &gl.ListJobsOptions{ListOptions: gl.ListOptions{PerPage: perPage, Page: 1}}
	if len(scope) > 0 {
		opt.Scope = &scope
	}
	var all []*gl.Job
	for {
		var jobs []*gl.Job
		resp, err := c.call(ctx, fmt.Sprintf("jobs of pipeline %d of %s", pipelineID, p.Path), "", func(o ...gl.RequestOptionFunc) (*gl.Response, error) {
			var resp *gl.Response
			var err error
			jobs, resp, err = c.gl.Jobs.ListPipelineJobs(p.ref(), pipelineID, opt, o...)
			return resp, err
		})
		if optional(err) {
			c.log.Info("GitLab pipeline jobs not available", "project", p.selector(), "pipeline", pipelineID, "reason", err.Error())
			return all, nil
		}
		if err != nil {
			return nil, err
		}
		all = append(all, jobs...)
		if resp.NextPage <= opt.Page || len(jobs) == 0 {
			return all, nil
		}
		opt.Page = resp.NextPage
	}
}

// PipelineEvent converts a pipeline as GitLab's pipeline listing returns
// it. The listing carries no started_at or finished_at, so a finished
// pipeline's final status is dated by updated_at, which GitLab sets when
// the pipeline finishes; PipelineDetailEvent has the exact times.
func PipelineEvent(p Project, pl *gl.PipelineInfo) change.Event {
	return pipelineEvent(p, pipelineFields{
		id: pl.ID, iid: pl.IID, projectID: pl.ProjectID, status: pl.Status, source: pl.Source,
		ref: pl.Ref, sha: pl.SHA, name: pl.Name, webURL: pl.WebURL,
		created: utc(pl.CreatedAt), updated: utc(pl.UpdatedAt),
	})
}

// pipelineWithExtra converts a listed pipeline with what its detail adds
// (nil: nothing known).
func pipelineWithExtra(p Project, pl *gl.PipelineInfo, x *pipelineExtra) change.Event {
	f := pipelineFields{
		id: pl.ID, iid: pl.IID, projectID: pl.ProjectID, status: pl.Status, source: pl.Source,
		ref: pl.Ref, sha: pl.SHA, name: pl.Name, webURL: pl.WebURL,
		created: utc(pl.CreatedAt), updated: utc(pl.UpdatedAt),
	}
	if x == nil {
		return pipelineEvent(p, f)
	}
	f.started, f.finished = x.started, x.finished
	ev := pipelineEvent(p, f)
	if x.user != "" {
		ev.Author = x.user
		ev.Attrs["user"] = x.user
	}
	ev.Attrs["duration"] = x.duration
	ev.Attrs["queued_duration"] = x.queued
	return ev
}

// PipelineDetailEvent converts a pipeline as GET
// /projects/:id/pipelines/:pipeline_id returns it, with its start and
// finish times, duration and user.
func PipelineDetailEvent(p Project, pl *gl.Pipeline) change.Event {
	ev := pipelineEvent(p, pipelineFields{
		id: pl.ID, iid: pl.IID, projectID: pl.ProjectID, status: pl.Status, source: string(pl.Source),
		ref: pl.Ref, sha: pl.SHA, name: pl.Name, webURL: pl.WebURL,
		created: utc(pl.CreatedAt), updated: utc(pl.UpdatedAt),
		started: utc(pl.StartedAt), finished: utc(pl.FinishedAt),
	})
	if pl.User != nil {
		ev.Author = pl.User.Username
		ev.Attrs["user"] = pl.User.Username
	}
	ev.Attrs["duration"] = pl.Duration
	ev.Attrs["queued_duration"] = pl.QueuedDuration
	return ev
}

type pipelineFields struct {
	id, iid, projectID                  int64
	status, source, ref, sha, name      string
	webURL                              string
	created, updated, started, finished time.Time
}

func pipelineEvent(p Project, f pipelineFields) change.Event {
	pid := p.ID
	if pid == 0 {
		pid = f.projectID
	}
	title := f.name
	if title == "" {
		title = fmt.Sprintf("Pipeline #%d on %s", f.iid, f.ref)
	}
	// Pipeline times are kept to the whole second, which is all GitLab's
	// GraphQL API gives.
	f.created, f.updated = seconds(f.created), seconds(f.updated)
	f.started, f.finished = seconds(f.started), seconds(f.finished)
	occurred, ts := runTimeline(f.status, f.created, f.started, f.finished, f.updated)

	attrs := map[string]any{
		"iid":    f.iid,
		"source": f.source,
		"status": f.status,
	}
	if !f.started.IsZero() {
		attrs["started_at"] = stamp(f.started)
	}
	if !f.finished.IsZero() {
		attrs["finished_at"] = stamp(f.finished)
	}
	return change.Event{
		ID:          change.PipelineID(pid, f.id),
		Kind:        change.KindPipeline,
		ProjectID:   pid,
		ProjectPath: p.Path,
		Title:       title,
		State:       f.status,
		WebURL:      f.webURL,
		Ref:         f.ref,
		SHA:         f.sha,
		CreatedAt:   f.created,
		UpdatedAt:   f.updated,
		OccurredAt:  occurred,
		Source:      change.SourcePoll,
		Attrs:       attrs,
		Transitions: ts,
	}
}

// FailedJobs summarises the failed jobs among jobs for a pipeline's
// "failed_jobs" attribute: what a reader needs to see why it failed
// without opening GitLab. allow_failure tells which ones did not fail it.
func FailedJobs(jobs []*gl.Job) []map[string]any {
	data := make([]jobData, len(jobs))
	for i, j := range jobs {
		data[i] = jobFromREST(j)
	}
	return failedJobs(data)
}

func failedJobs(jobs []jobData) []map[string]any {
	out := []map[string]any{}
	for _, j := range jobs {
		if j.status != "failed" {
			continue
		}
		out = append(out, map[string]any{
			"name":           j.name,
			"stage":          j.stage,
			"status":         j.status,
			"failure_reason": j.failureReason,
			"duration":       wholeSeconds(j.duration),
			"web_url":        j.webURL,
			"allow_failure":  j.allowFailure,
		})
	}
	return out
}

// wholeSeconds is a job's duration as GitLab's GraphQL API gives it: an
// Int, the fractional seconds truncated.
func wholeSeconds(d float64) int64 { return int64(d) }

// JobEvent converts a job as GitLab's job listings return it. Jobs have no
// updated_at; the latest of their own timestamps stands in for it (zero if
// they have none, which Pipelines fills from the pipeline).
func JobEvent(p Project, j *gl.Job) change.Event {
	author := ""
	if j.User != nil {
		author = j.User.Username
	}
	if p.ID == 0 {
		p.ID = j.Pipeline.ProjectID
	}
	return jobEvent(p, jobFromREST(j), author)
}

// jobEvent converts a job. Its times are kept to the whole second and its
// duration in whole seconds, as GitLab's GraphQL API gives them.
func jobEvent(p Project, j jobData, author string) change.Event {
	pid := p.ID
	created, started, finished := seconds(j.created), seconds(j.started), seconds(j.finished)
	updated := latest(created, started, finished)
	occurred, ts := runTimeline(j.status, created, started, finished, updated)

	attrs := map[string]any{
		"name":            j.name,
		"web_url":         j.webURL,
		"stage":           j.stage,
		"status":          j.status,
		"failure_reason":  j.failureReason,
		"duration":        wholeSeconds(j.duration),
		"queued_duration": j.queued,
		"pipeline_id":     j.pipelineID,
		"allow_failure":   j.allowFailure,
	}
	if !started.IsZero() {
		attrs["started_at"] = stamp(started)
	}
	if !finished.IsZero() {
		attrs["finished_at"] = stamp(finished)
	}
	return change.Event{
		ID:          change.JobID(pid, j.id),
		Kind:        change.KindJob,
		ProjectID:   pid,
		ProjectPath: p.Path,
		Title:       j.name,
		State:       j.status,
		Author:      author,
		WebURL:      j.webURL,
		Ref:         j.ref,
		SHA:         j.sha,
		CreatedAt:   created,
		UpdatedAt:   updated,
		OccurredAt:  occurred,
		Source:      change.SourcePoll,
		Attrs:       attrs,
		Transitions: ts,
	}
}

// runTimeline is the history of something that runs (a pipeline, a job):
// created, running once started, then its final status, or while it runs
// its current one; with when it happened: its start, or its end once it
// is final.
func runTimeline(status string, created, started, finished, updated time.Time) (occurred time.Time, ts []change.Transition) {
	final := finalStatus(status)
	occurred = firstSet(started, created)
	if final {
		occurred = firstSet(finished, updated)
	}
	ts = []change.Transition{{State: "created", At: created}}
	if !started.IsZero() {
		ts = append(ts, change.Transition{State: "running", At: started})
	}
	if final {
		return occurred, append(ts, change.Transition{State: status, At: firstSet(finished, updated)})
	}
	return occurred, withCurrent(ts, status, updated)
}

func latest(ts ...time.Time) time.Time {
	var out time.Time
	for _, t := range ts {
		if t.After(out) {
			out = t
		}
	}
	return out
}
