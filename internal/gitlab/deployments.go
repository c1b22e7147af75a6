package gitlab

import (
	"context"
	"fmt"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	gl "gitlab.com/gitlab-org/api/client-go/v2"
)

// Deployment is a deployment as GitLab's API sends it: client-go's type
// lacks the deployable job's web_url and, on recent GitLab, the
// deployment's own finished_at.
type Deployment struct {
	gl.Deployment
	FinishedAt *time.Time `json:"finished_at"`
	Deployable struct {
		gl.DeploymentDeployable
		WebURL string `json:"web_url"`
	} `json:"deployable"`
}

type deploymentsOptions struct {
	gl.ListOptions
	OrderBy      string     `url:"order_by,omitempty"`
	Sort         string     `url:"sort,omitempty"`
	UpdatedAfter *time.Time `url:"updated_after,omitempty"`
}

func (c *Client) deployments(ctx context.Context, p Project, since time.Time, fn func(Page) error) error {
	list := func(ctx context.Context, after time.Time, page int64) ([]*Deployment, *gl.Response, error) {
		opt := &deploymentsOptions{
			ListOptions: gl.ListOptions{PerPage: perPage, Page: page},
			// GitLab accepts updated_after only when ordering by
			// updated_at.
			OrderBy:      "updated_at",
			Sort:         "asc",
			UpdatedAfter: afterParam(after),
		}
		var ds []*Deployment
		resp, err := c.listCall(ctx, p, "deployments", c.getJSON(p.api()+"/deployments", opt, &ds))
		return ds, resp, err
	}
	key := func(d *Deployment) (int64, time.Time) { return d.ID, utc(d.UpdatedAt) }
	return walkByTime(ctx, since, list, key, func(ds []*Deployment, cursor time.Time) error {
		events := make([]change.Event, 0, len(ds))
		for _, d := range ds {
			events = append(events, DeploymentEvent(p, d))
		}
		return fn(Page{Kind: change.KindDeployment, Events: events, Cursor: cursor})
	})
}

// DeploymentEvent converts a deployment as GitLab's deployment listing
// returns it. It finished when it reached a final status: at its own
// finished_at where GitLab sends one, else its job's, else its last
// update.
func DeploymentEvent(p Project, d *Deployment) change.Event {
	pid := p.ID
	created, updated := utc(d.CreatedAt), utc(d.UpdatedAt)
	job := d.Deployable
	started := utc(job.StartedAt)
	final := finalStatus(d.Status)
	finished := utc(d.FinishedAt)
	if finished.IsZero() && final {
		finished = firstSet(utc(job.FinishedAt), updated)
	}
	env := ""
	var envID int64
	if d.Environment != nil {
		env, envID = d.Environment.Name, d.Environment.ID
	}
	author := ""
	if d.User != nil {
		author = d.User.Username
	}
	attrs := map[string]any{
		"iid":            d.IID,
		"environment":    env,
		"environment_id": envID,
		"status":         d.Status,
		"finished_at":    stampOrNil(finished),
	}
	if job.ID != 0 {
		attrs["deployable"] = map[string]any{
			"id": job.ID, "name": job.Name, "stage": job.Stage, "status": job.Status,
			"web_url": job.WebURL, "pipeline_id": job.Pipeline.ID,
		}
	}
	ts := []change.Transition{{State: "created", At: created}}
	if !started.IsZero() {
		ts = append(ts, change.Transition{State: "running", At: started})
	}
	occurred := firstSet(started, created)
	if final {
		ts = append(ts, change.Transition{State: d.Status, At: finished})
		occurred = finished
	} else {
		ts = withCurrent(ts, d.Status, updated)
	}
	title := fmt.Sprintf("Deployment #%d to %s", d.IID, env)
	return change.Event{
		ID:          change.DeploymentID(pid, d.ID),
		Kind:        change.KindDeployment,
		ProjectID:   pid,
		ProjectPath: p.Path,
		Title:       title,
		State:       d.Status,
		Author:      author,
		WebURL:      job.WebURL,
		Ref:         d.Ref,
		SHA:         d.SHA,
		CreatedAt:   created,
		UpdatedAt:   updated,
		OccurredAt:  occurred,
		Source:      change.SourcePoll,
		Attrs:       attrs,
		Transitions: ts,
	}
}

func (c *Client) environments(ctx context.Context, p Project, fn func(Page) error) error {
	out := &fullListing{kind: change.KindEnvironment, fn: fn}
	return walkPages(ctx, func(ctx context.Context, page int64, extra []gl.RequestOptionFunc) ([]*gl.Environment, *gl.Response, error) {
		// No states filter: GitLab then lists available, stopping and
		// stopped environments alike.
		opt := &gl.ListEnvironmentsOptions{ListOptions: gl.ListOptions{PerPage: perPage, Page: page}}
		var es []*gl.Environment
		resp, err := c.listCall(ctx, p, "environments", func(o ...gl.RequestOptionFunc) (*gl.Response, error) {
			var resp *gl.Response
			var err error
			es, resp, err = c.gl.Environments.ListEnvironments(p.ref(), opt, append(o, extra...)...)
			return resp, err
		})
		return es, resp, err
	}, func(es []*gl.Environment) error {
		var events []change.Event
		for _, e := range es {
			ev := EnvironmentEvent(p, e)
			if ev.UpdatedAt.IsZero() {
				c.log.Warn("GitLab environment without updated_at; skipped", "project", p.selector(), "environment", e.Name)
				continue
			}
			events = append(events, ev)
		}
		return out.emit(events)
	})
}

// EnvironmentEvent converts an environment as GitLab's environment listing
// returns it.
func EnvironmentEvent(p Project, e *gl.Environment) change.Event {
	created, updated := utc(e.CreatedAt), utc(e.UpdatedAt)
	attrs := map[string]any{
		"name": e.Name, "slug": e.Slug, "tier": e.Tier, "state": e.State,
		"external_url": e.ExternalURL, "auto_stop_at": stampOrNil(utc(e.AutoStopAt)),
	}
	if e.LastDeployment != nil {
		attrs["last_deployment_id"] = e.LastDeployment.ID
	}
	webURL := ""
	if p.WebURL != "" {
		webURL = fmt.Sprintf("%s/-/environments/%d", p.WebURL, e.ID)
	}
	return change.Event{
		ID:          change.EnvironmentID(p.ID, e.ID),
		Kind:        change.KindEnvironment,
		ProjectID:   p.ID,
		ProjectPath: p.Path,
		Title:       e.Name,
		State:       e.State,
		WebURL:      webURL,
		CreatedAt:   created,
		UpdatedAt:   updated,
		OccurredAt:  updated,
		Source:      change.SourcePoll,
		Attrs:       attrs,
		Transitions: withCurrent([]change.Transition{{State: "created", At: created}}, e.State, updated),
	}
}
