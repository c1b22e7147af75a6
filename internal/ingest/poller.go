// Package ingest holds labtrail's two ways in. The poller here walks the
// GitLab REST API incrementally and is the safety net: after a poll the
// store equals GitLab whatever webhooks were lost.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/gitlab"
	"github.com/labtrail/labtrail/internal/store"
)

// GitLab is what the poller needs from the API client; *gitlab.Client has it.
type GitLab interface {
	Projects(ctx context.Context, selectors []string) ([]gitlab.Project, error)
	MergeRequests(ctx context.Context, p gitlab.Project, since time.Time, fn func(gitlab.Page) error) error
	Pipelines(ctx context.Context, p gitlab.Project, since time.Time, fn func(gitlab.Page) error) error
}

// Poller syncs GitLab projects into the store.
type Poller struct {
	GitLab GitLab
	Store  store.Store
	// Repos selects projects by id or path; empty means every project the
	// token is a member of.
	Repos []string
	Log   *slog.Logger
	// Progress, if set, is called after each stored page.
	Progress func(Progress)
}

// Progress reports a sync in flight.
type Progress struct {
	Project string
	Kind    change.Kind
	Fetched int
	Stored  int
}

// Count is what one sync did for one project and kind.
type Count struct {
	ProjectID   int64       `json:"project_id"`
	ProjectPath string      `json:"project_path"`
	Kind        change.Kind `json:"kind"`
	Fetched     int         `json:"fetched"`
	Stored      int         `json:"stored"`
}

// ProjectResult is the outcome of syncing one project.
type ProjectResult struct {
	Project store.Project
	Counts  []Count
	Err     error
}

// Result is the outcome of syncing every selected project.
type Result struct {
	Projects []ProjectResult
	Duration time.Duration
}

// Totals sums counts per kind over every project.
func (r Result) Totals() map[change.Kind]Count {
	t := map[change.Kind]Count{}
	for _, p := range r.Projects {
		for _, c := range p.Counts {
			s := t[c.Kind]
			s.Kind = c.Kind
			s.Fetched += c.Fetched
			s.Stored += c.Stored
			t[c.Kind] = s
		}
	}
	return t
}

// Err joins the errors of every failed project, nil if none failed.
func (r Result) Err() error {
	var errs []error
	for _, p := range r.Projects {
		if p.Err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p.Project.Path, p.Err))
		}
	}
	return errors.Join(errs...)
}

func (p *Poller) log() *slog.Logger {
	if p.Log != nil {
		return p.Log
	}
	return slog.Default()
}

// Discover resolves the selected projects on GitLab and records them.
func (p *Poller) Discover(ctx context.Context) ([]store.Project, error) {
	gps, err := p.GitLab.Projects(ctx, p.Repos)
	if err != nil {
		return nil, err
	}
	ps := make([]store.Project, 0, len(gps))
	for _, g := range gps {
		ps = append(ps, store.Project{
			ID: g.ID, Path: g.Path, Name: g.Name, WebURL: g.WebURL,
			DefaultBranch: g.DefaultBranch, Archived: g.Archived, LastActivityAt: g.LastActivityAt,
		})
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].Path < ps[j].Path })
	if err := p.Store.PutProjects(ctx, ps...); err != nil {
		return nil, fmt.Errorf("record projects: %w", err)
	}
	return ps, nil
}

// SyncAll discovers the selected projects and syncs each in turn. A failing
// project does not stop the others; an error that no project can get past
// (bad token, unreachable GitLab, cancelled context) stops the run.
func (p *Poller) SyncAll(ctx context.Context) (Result, error) {
	start := time.Now()
	ps, err := p.Discover(ctx)
	if err != nil {
		return Result{Duration: time.Since(start)}, err
	}
	var res Result
	for _, proj := range ps {
		counts, err := p.SyncProject(ctx, proj)
		res.Projects = append(res.Projects, ProjectResult{Project: proj, Counts: counts, Err: err})
		if err != nil && fatal(ctx, err) {
			res.Duration = time.Since(start)
			return res, err
		}
	}
	res.Duration = time.Since(start)
	return res, nil
}

// fatal reports errors that would fail every other project the same way.
func fatal(ctx context.Context, err error) bool {
	return ctx.Err() != nil || errors.Is(err, gitlab.ErrUnauthorized) ||
		errors.Is(err, gitlab.ErrUnreachable) || errors.Is(err, gitlab.ErrRateLimited)
}

type fetchFunc func(ctx context.Context, p gitlab.Project, since time.Time, fn func(gitlab.Page) error) error

// SyncProject syncs every kind of one project from its cursors. Each page is
// stored before its cursor is saved, so a run killed at any point resumes
// without gaps, and a page fetched twice changes nothing the second time.
func (p *Poller) SyncProject(ctx context.Context, proj store.Project) ([]Count, error) {
	gp := gitlab.Project{
		ID: proj.ID, Path: proj.Path, Name: proj.Name, WebURL: proj.WebURL,
		DefaultBranch: proj.DefaultBranch, Archived: proj.Archived, LastActivityAt: proj.LastActivityAt,
	}
	fetchers := []struct {
		kind  change.Kind
		fetch fetchFunc
	}{
		{change.KindMergeRequest, p.GitLab.MergeRequests},
		{change.KindPipeline, p.GitLab.Pipelines},
	}
	var counts []Count
	var errs []error
	for _, f := range fetchers {
		c, err := p.syncKind(ctx, gp, f.kind, f.fetch)
		counts = append(counts, c...)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f.kind, err))
			if fatal(ctx, err) {
				break
			}
		}
	}
	for _, c := range counts {
		p.log().Info("synced", "project", proj.Path, "kind", c.Kind, "fetched", c.Fetched, "stored", c.Stored)
	}
	return counts, errors.Join(errs...)
}

func (p *Poller) syncKind(ctx context.Context, gp gitlab.Project, kind change.Kind, fetch fetchFunc) ([]Count, error) {
	st, err := p.Store.SyncState(ctx, gp.ID, kind)
	if err != nil {
		return nil, fmt.Errorf("read sync state: %w", err)
	}
	st.ProjectID, st.ProjectPath, st.Kind = gp.ID, gp.Path, kind
	byKind := map[change.Kind]*Count{}
	var order []change.Kind
	count := func(k change.Kind) *Count {
		c, ok := byKind[k]
		if !ok {
			c = &Count{ProjectID: gp.ID, ProjectPath: gp.Path, Kind: k}
			byKind[k] = c
			order = append(order, k)
		}
		return c
	}
	count(kind) // report the kind even when nothing moved
	var fetched, stored int
	runErr := fetch(ctx, gp, st.Cursor, func(pg gitlab.Page) error {
		res, err := p.upsertCounted(ctx, pg.Events, count)
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		fetched += len(pg.Events)
		stored += res.Stored()
		if pg.Cursor.After(st.Cursor) {
			st.Cursor = pg.Cursor
			if err := p.Store.PutSyncState(ctx, st); err != nil {
				return fmt.Errorf("save cursor: %w", err)
			}
		}
		if p.Progress != nil {
			p.Progress(Progress{Project: gp.Path, Kind: kind, Fetched: fetched, Stored: stored})
		}
		return nil
	})
	st.LastRunAt = time.Now().UTC()
	st.Fetched, st.Stored = fetched, stored
	st.LastError = ""
	if runErr != nil {
		st.LastError = runErr.Error()
	} else {
		st.LastSuccess = st.LastRunAt
	}
	// Record the outcome even when the run was cancelled: a fresh context
	// keeps a killed sync's status honest without extending the run.
	saveCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := p.Store.PutSyncState(saveCtx, st); err != nil && runErr == nil {
		runErr = fmt.Errorf("save sync state: %w", err)
	}
	out := make([]Count, 0, len(order))
	for _, k := range order {
		out = append(out, *byKind[k])
	}
	return out, runErr
}

// upsertCounted stores events and attributes the fetched/stored counts to
// their kinds (a pipeline page also carries jobs).
func (p *Poller) upsertCounted(ctx context.Context, events []change.Event, count func(change.Kind) *Count) (store.UpsertResult, error) {
	var total store.UpsertResult
	groups := map[change.Kind][]change.Event{}
	var order []change.Kind
	for _, e := range events {
		if _, ok := groups[e.Kind]; !ok {
			order = append(order, e.Kind)
		}
		groups[e.Kind] = append(groups[e.Kind], e)
	}
	for _, k := range order {
		res, err := p.Store.Upsert(ctx, groups[k]...)
		if err != nil {
			return total, err
		}
		c := count(k)
		c.Fetched += len(groups[k])
		c.Stored += res.Stored()
		total = total.Add(res)
	}
	return total, nil
}
