package store

import (
	"context"
	"strings"
	"time"

	"github.com/labtrail/labtrail/internal/change"
)

// RelatedStore finds the events one event's detail page shows beside it,
// each with one bounded query on a fact table's index: a pipeline's jobs,
// a merge request's pipelines. The server asks for it by type assertion,
// so a backend without it shows the page without them.
type RelatedStore interface {
	// PipelineJobs returns up to limit jobs of a pipeline, newest first.
	// The sha is the pipeline's: jobs are found by project and sha (an
	// index), then by pipeline.
	PipelineJobs(ctx context.Context, projectID, pipelineID int64, sha string, limit int) ([]change.Event, error)
	// RefPipelines returns up to limit pipelines of a project created in
	// [since, until) (a zero until: no end) whose ref is one of refs or
	// whose sha is sha (when not ""), newest first.
	RefPipelines(ctx context.Context, projectID int64, refs []string, sha string, since, until time.Time, limit int) ([]change.Event, error)
}

// LinkedStore finds the deployments linked to one deployment: GitLab's
// deployment a reported one stands for, or the reports of GitLab's (see
// the facts' duplicate_of). The server asks for it by type assertion.
type LinkedStore interface {
	// LinkedDeployments returns the deployments linked to the deployment
	// id, newest first; none for an id that is not a deployment's.
	LinkedDeployments(ctx context.Context, id string) ([]change.Event, error)
}

// LinkedDeployments implements LinkedStore.
func (s SQL[T]) LinkedDeployments(ctx context.Context, id string) ([]change.Event, error) {
	p1, p2 := s.Dialect.Param(1), s.Dialect.Param(2)
	return s.relatedEvents(ctx, "linked deployments", `SELECT duplicate_of FROM fact_deployments WHERE id = `+p1+` AND duplicate_of <> ''
		UNION SELECT id FROM fact_deployments WHERE duplicate_of = `+p2, []any{id, id})
}

// PipelineJobs implements RelatedStore.
func (s SQL[T]) PipelineJobs(ctx context.Context, projectID, pipelineID int64, sha string, limit int) ([]change.Event, error) {
	limit, err := PageLimit(limit)
	if err != nil {
		return nil, s.errorf("pipeline jobs: %w", err)
	}
	q := s.Dialect.Query()
	q.Where("project_id = ?", projectID)
	s.ofConnection(q, "", "job")
	q.Where("sha = ?", sha)
	q.Where("pipeline_id = ?", pipelineID)
	return s.relatedEvents(ctx, "pipeline jobs", `SELECT id FROM fact_jobs`+q.WhereSQL()+
		` ORDER BY created_at DESC, id DESC LIMIT `+q.Arg(limit), q.Args())
}

// RefPipelines implements RelatedStore.
func (s SQL[T]) RefPipelines(ctx context.Context, projectID int64, refs []string, sha string, since, until time.Time, limit int) ([]change.Event, error) {
	if len(refs) == 0 && sha == "" {
		return nil, nil
	}
	if err := s.check([]string{"since", "until"}, since, until); err != nil {
		return nil, s.errorf("ref pipelines: %w", err)
	}
	limit, err := PageLimit(limit)
	if err != nil {
		return nil, s.errorf("ref pipelines: %w", err)
	}
	q := s.factQuery("pipeline", []int64{projectID}, "created_at", since, until)
	// The project's pipelines of the window come from its (project_id,
	// created_at) index; the ref and sha are checked on each.
	var alts []string
	if len(refs) > 0 {
		ps := make([]string, len(refs))
		for i, ref := range refs {
			ps[i] = q.Arg(ref)
		}
		alts = append(alts, "ref IN ("+strings.Join(ps, ", ")+")")
	}
	if sha != "" {
		alts = append(alts, "sha = "+q.Arg(sha))
	}
	q.Where("(" + strings.Join(alts, " OR ") + ")")
	return s.relatedEvents(ctx, "ref pipelines", `SELECT id FROM fact_pipelines`+q.WhereSQL()+
		` ORDER BY created_at DESC, id DESC LIMIT `+q.Arg(limit), q.Args())
}

// relatedEvents reads the events whose ids the statement ids selects,
// newest first.
func (s SQL[T]) relatedEvents(ctx context.Context, what, ids string, args []any) ([]change.Event, error) {
	es, err := rowsOf(ctx, s.Query, `SELECT `+EventColumns+` FROM events WHERE id IN (`+ids+`)
		ORDER BY occurred_at DESC, id DESC`, args, s.Scan.Event)
	if err != nil {
		return nil, s.errorf("%s: %w", what, err)
	}
	return es, nil
}
