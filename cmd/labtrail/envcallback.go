package main

import (
	"context"
	"fmt"
	"io"
	"slices"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/gitlab"
	"github.com/labtrail/labtrail/internal/jobs"
	"github.com/labtrail/labtrail/internal/server"
)

// The environment URL callback (LABTRAIL_ENVIRONMENT_CALLBACK, seed 002's
// optional step): a reported deployment that succeeded with a url sets
// its GitLab environment's external_url, through a job of the queue, which
// retries it and keeps its outcome in the sync status.

// glEnvironmentURLs sets environment URLs with labtrail's GitLab client.
type glEnvironmentURLs struct{ gl *gitlab.Client }

func (g glEnvironmentURLs) SetEnvironmentURL(ctx context.Context, projectID int64, path, environment, url string) error {
	_, _, err := g.gl.SetEnvironmentURL(ctx, gitlab.Project{ID: projectID, Path: path}, environment, url)
	return err
}

// environmentURLs is what runs the callback's jobs: the GitLab client when
// the callback is on, else nothing (jobs left by an earlier run are
// cancelled).
func environmentURLs(c config, gl *gitlab.Client) jobs.EnvironmentURLSetter {
	if !c.EnvironmentCallback {
		return nil
	}
	return glEnvironmentURLs{gl}
}

// environmentCallback queues the callback for each reported deployment that
// succeeded with a url; a repeat of the same report queues nothing again.
func environmentCallback(q *jobs.Queue) server.DeploymentReported {
	return func(ctx context.Context, r change.DeploymentReport, d change.Event) error {
		if r.Status != "success" || r.URL == "" || r.Action == "stop" {
			return nil
		}
		_, err := q.SetEnvironmentURL(ctx, jobs.EnvironmentURLArgs{ProjectID: d.ProjectID, Path: d.ProjectPath,
			Environment: r.Environment, URL: r.URL, DeploymentID: d.ID})
		return err
	}
}

// checkCallbackScope is what `labtrail check` says of the callback: with it
// on, the token needs the api scope (read_api reads only).
func checkCallbackScope(c config, scopes []string, w io.Writer) error {
	if !c.EnvironmentCallback {
		return nil
	}
	switch {
	case len(scopes) == 0:
		fmt.Fprintln(w, "LABTRAIL_ENVIRONMENT_CALLBACK is on: the token needs the api scope to set environment URLs (GitLab did not say which scopes it has)")
	case !slices.Contains(scopes, "api"):
		return fmt.Errorf("LABTRAIL_ENVIRONMENT_CALLBACK is on, and it needs a token with the api scope to set environment URLs; this token has %v", scopes)
	default:
		fmt.Fprintln(w, "LABTRAIL_ENVIRONMENT_CALLBACK is on: the token has the api scope it needs to set environment URLs")
	}
	return nil
}
