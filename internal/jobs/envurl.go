package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/store"
)

// EnvironmentURLKind is the sync status kind under which the environment
// URL callback's last outcome per project is kept (GET
// /api/v1/sync/status): not a kind of event, so the poller and the
// metrics leave it alone.
const EnvironmentURLKind change.Kind = "environment_url"

// EnvironmentURLSetter sets a GitLab environment's external URL (the
// GitLab client does, wired by cmd).
type EnvironmentURLSetter interface {
	SetEnvironmentURL(ctx context.Context, projectID int64, path, environment, url string) error
}

// EnvironmentURLArgs sets the external URL of a project's GitLab
// environment to what a reported deployment deployed (seed 002's
// callback). It is unique by its arguments in every state but cancelled
// and discarded (River's default), so each deployment's URL is set once
// however often the deployment is reported.
type EnvironmentURLArgs struct {
	ProjectID    int64  `json:"project_id"`
	Path         string `json:"path"`
	Environment  string `json:"environment"`
	URL          string `json:"url"`
	DeploymentID string `json:"deployment_id"`
}

// Kind names the job in River's table.
func (EnvironmentURLArgs) Kind() string { return "labtrail_environment_url" }

// EnvironmentURLAttempts is how often a callback is tried before it is
// given up (River's backoff: about 1 s, 16 s, 81 s, ... apart, some hours
// in all).
const EnvironmentURLAttempts = 10

// InsertOpts makes the job unique by its arguments and retried.
func (EnvironmentURLArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{MaxAttempts: EnvironmentURLAttempts, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// SetEnvironmentURL queues the callback for a reported deployment. queued
// is false when the same one was queued before (it runs once).
func (q *Queue) SetEnvironmentURL(ctx context.Context, a EnvironmentURLArgs) (queued bool, err error) {
	res, err := q.insert(ctx, a)
	if err != nil {
		return false, err
	}
	return !res.UniqueSkippedAsDuplicate, nil
}

type envURLWorker struct {
	river.WorkerDefaults[EnvironmentURLArgs]
	set   EnvironmentURLSetter
	state store.ProjectStore
	log   *slog.Logger
	now   func() time.Time
}

// Work sets the URL, and keeps the outcome in the project's sync status,
// so a callback that fails is seen there, not only in the log.
func (w *envURLWorker) Work(ctx context.Context, job *river.Job[EnvironmentURLArgs]) error {
	a := job.Args
	if w.set == nil {
		return river.JobCancel(errors.New("the environment URL callback is off (LABTRAIL_ENVIRONMENT_CALLBACK)"))
	}
	err := w.set.SetEnvironmentURL(ctx, a.ProjectID, a.Path, a.Environment, a.URL)
	st, serr := w.state.SyncState(ctx, a.ProjectID, EnvironmentURLKind)
	if serr != nil {
		return errors.Join(err, serr)
	}
	now := w.now().UTC()
	st.ProjectPath, st.LastRunAt = a.Path, now
	st.Fetched, st.Stored = 0, 0
	if err == nil {
		st.LastSuccess, st.LastError, st.Stored = now, "", 1
	} else {
		st.LastError = fmt.Sprintf("environment %s of %s: %v (attempt %d of %d)", a.Environment, a.DeploymentID, err,
			job.Attempt, job.MaxAttempts)
		if job.Attempt >= job.MaxAttempts {
			st.LastError += "; given up"
		}
		w.log.Warn("environment URL callback failed", "project", a.Path, "environment", a.Environment,
			"attempt", job.Attempt, "err", err)
	}
	if perr := w.state.PutSyncState(ctx, st); perr != nil {
		return errors.Join(err, perr)
	}
	return err
}
