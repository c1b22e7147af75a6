package gitlab

import (
	"context"
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
// its detail and all its jobs, else only failed ones get their jobs.
func (c *Client) pipelines(ctx context.Context, p Project, since time.Time, opts *FetchOptions, fn func(Page) error) error {
	details := opts != nil
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
				func(pl *gl.PipelineInfo) time.Time { return utc(pl.UpdatedAt) })
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

// pipelineWithJobs converts one listed pipeline; with details, from GET
// /pipelines/:id and with all its jobs, else with jobs only if it failed.
func (c *Client) pipelineWithJobs(ctx context.Context, p Project, pl *gl.PipelineInfo, details bool) ([]change.Event, error) {
	ev := PipelineEvent(p, pl)
	if details {
		var full pipelineDetail
		_, err := c.call(ctx, fmt.Sprintf("pipeline %d of %s", pl.ID, p.selector()), "",
			c.getJSON(fmt.Sprintf("%s/pipelines/%d", p.api(), pl.ID), nil, &full))
		switch {
		case optional(err):
			c.log.Info("GitLab pipeline detail not available", "project", p.selector(), "pipeline", pl.ID, "reason", err.Error())
		case err != nil:
			return nil, err
		default:
			full.Pipeline.Duration = int64(math.Round(full.Duration))
			full.Pipeline.QueuedDuration = int64(math.Round(full.QueuedDuration))
			ev = PipelineDetailEvent(p, &full.Pipeline)
		}
	} else if pl.Status != "failed" {
		return []change.Event{ev}, nil
	}
	jobs, err := c.pipelineJobs(ctx, p, pl.ID)
	if err != nil {
		return nil, err
	}
	ev.Attrs["failed_jobs"] = FailedJobs(jobs)
	events := []change.Event{ev}
	for _, j := range jobs {
		je := JobEvent(p, j)
		if je.UpdatedAt.IsZero() {
			// A job that never got a timestamp changed last when its
			// pipeline did.
			je.UpdatedAt, je.OccurredAt = ev.UpdatedAt, ev.UpdatedAt
		}
		events = append(events, je)
	}
	return events, nil
}

// pipelineJobs lists all (latest, not retried) jobs of one pipeline. A
// pipeline deleted since it was listed has none.
func (c *Client) pipelineJobs(ctx context.Context, p Project, pipelineID int64) ([]*gl.Job, error) {
	opt := &gl.ListJobsOptions{ListOptions: gl.ListOptions{PerPage: perPage, Page: 1}}
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
	final := finalStatus(f.status)

	occurred := firstSet(f.started, f.created)
	if final {
		occurred = firstSet(f.finished, f.updated)
	}

	ts := []change.Transition{{State: "created", At: f.created}}
	if !f.started.IsZero() {
		ts = append(ts, change.Transition{State: "running", At: f.started})
	}
	if final {
		ts = append(ts, change.Transition{State: f.status, At: firstSet(f.finished, f.updated)})
	} else {
		ts = withCurrent(ts, f.status, f.updated)
	}

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
	out := []map[string]any{}
	for _, j := range jobs {
		if j.Status != "failed" {
			continue
		}
		out = append(out, map[string]any{
			"name":           j.Name,
			"stage":          j.Stage,
			"status":         j.Status,
			"failure_reason": j.FailureReason,
			"duration":       j.Duration,
			"web_url":        j.WebURL,
			"allow_failure":  j.AllowFailure,
		})
	}
	return out
}

// JobEvent converts a job as GitLab's job listings return it. Jobs have no
// updated_at; the latest of their own timestamps stands in for it (zero if
// they have none, which Pipelines fills from the pipeline).
func JobEvent(p Project, j *gl.Job) change.Event {
	pid := p.ID
	if pid == 0 {
		pid = j.Pipeline.ProjectID
	}
	created, started, finished := utc(j.CreatedAt), utc(j.StartedAt), utc(j.FinishedAt)
	updated := latest(created, started, finished)
	final := finalStatus(j.Status)

	occurred := firstSet(started, created)
	if final {
		occurred = firstSet(finished, updated)
	}
	ts := []change.Transition{{State: "created", At: created}}
	if !started.IsZero() {
		ts = append(ts, change.Transition{State: "running", At: started})
	}
	if final {
		ts = append(ts, change.Transition{State: j.Status, At: firstSet(finished, updated)})
	} else {
		ts = withCurrent(ts, j.Status, updated)
	}

	attrs := map[string]any{
		"name":            j.Name,
		"web_url":         j.WebURL,
		"stage":           j.Stage,
		"status":          j.Status,
		"failure_reason":  j.FailureReason,
		"duration":        j.Duration,
		"queued_duration": j.QueuedDuration,
		"pipeline_id":     j.Pipeline.ID,
		"allow_failure":   j.AllowFailure,
	}
	if !started.IsZero() {
		attrs["started_at"] = stamp(started)
	}
	if !finished.IsZero() {
		attrs["finished_at"] = stamp(finished)
	}
	sha := j.Pipeline.Sha
	if sha == "" && j.Commit != nil {
		sha = j.Commit.ID
	}
	author := ""
	if j.User != nil {
		author = j.User.Username
	}
	return change.Event{
		ID:          change.JobID(pid, j.ID),
		Kind:        change.KindJob,
		ProjectID:   pid,
		ProjectPath: p.Path,
		Title:       j.Name,
		State:       j.Status,
		Author:      author,
		WebURL:      j.WebURL,
		Ref:         j.Ref,
		SHA:         sha,
		CreatedAt:   created,
		UpdatedAt:   updated,
		OccurredAt:  occurred,
		Source:      change.SourcePoll,
		Attrs:       attrs,
		Transitions: ts,
	}
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
