package store

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/labtrail/labtrail/internal/change"
)

// Facts are what the delivery metrics (internal/metrics) read: a few
// columns per merge request, note, deployment, environment, issue,
// pipeline and job, kept in tables of their own (fact_*) so that a
// metric over a million events reads narrow indexed rows instead of every
// event's JSON. They are derived from the event row as written, in the
// same transaction as the event (Upsert and ImportEvents), so they can
// never disagree with it; a store whose facts were derived by an older
// rule (FactsVersion) derives them all again when it is opened or
// migrated (RebuildFacts).

// FactsVersion is the version of the rule that derives facts from events.
// Raise it whenever FactWrites changes what it writes: stores derive their
// facts again.
const FactsVersion = 3

// FactFilter selects facts: by project (none: every project) and a time
// window on the fact's own time (zero bounds do not bound).
type FactFilter struct {
	ProjectIDs []int64
	Since      time.Time // inclusive
	Until      time.Time // exclusive
	// IncidentLabels, when not nil, lets Issues leave out issues that are
	// not incidents: those whose issue_type is not "incident" and that
	// carry none of these labels (compared case-insensitively). It may
	// still return some that are not; the caller decides exactly.
	IncidentLabels []string
	// Environments, when not nil, lets Deployments leave out deployments
	// to environments it does not match. It may still return some; the
	// caller decides exactly.
	Environments *EnvFilter
}

// EnvFilter matches environment names: those named one of Names, and
// those that match one of Patterns (globs as path.Match reads them).
type EnvFilter struct {
	Names    []string
	Patterns []string
}

// MergeRequestFact is what the metrics read of a merge request.
type MergeRequestFact struct {
	ID           string
	ProjectID    int64
	ProjectPath  string
	IID          int64
	Title        string
	Author       string
	State        string
	TargetBranch string
	WebURL       string
	CreatedAt    time.Time
	MergedAt     time.Time
	// FirstCommitAt is the earliest authored date of its commits; zero
	// when unknown.
	FirstCommitAt time.Time
	// FirstApprovalAt is the earliest approval's time; zero for none.
	FirstApprovalAt time.Time
	// FirstNoteAt is the earliest non-system note by someone other than
	// the author; zero for none. The store keeps it as notes arrive.
	FirstNoteAt time.Time
	Additions   int
	Deletions   int
	Files       int
}

// MergeFlowFact is what the merge-request flow reads of a merged merge
// request: MergeRequestFact's columns that it needs, two of them combined
// by the store, so that a window of tens of thousands is fewer values to
// read.
type MergeFlowFact struct {
	ProjectID     int64
	ProjectPath   string
	Author        string
	TargetBranch  string
	CreatedAt     time.Time
	MergedAt      time.Time
	FirstCommitAt time.Time
	// FirstReviewAt is the earlier of FirstApprovalAt and FirstNoteAt
	// that is not zero; zero when both are.
	FirstReviewAt time.Time
	// Lines is Additions plus Deletions.
	Lines int
	Files int
}

// ChangeFact is what lead time reads of a merged merge request.
type ChangeFact struct {
	ID           string
	ProjectID    int64
	TargetBranch string
	MergedAt     time.Time
	// StartedAt is when the change began: its first commit
	// (FirstCommitAt), or its creation when that is unknown.
	StartedAt time.Time
}

// DeploymentFact is what the metrics read of a deployment.
type DeploymentFact struct {
	ID          string
	ProjectID   int64
	ProjectPath string
	Environment string
	Status      string
	Ref         string
	SHA         string
	WebURL      string
	FinishedAt  time.Time
}

// EnvironmentFact is what the metrics read of an environment.
type EnvironmentFact struct {
	ID        string
	ProjectID int64
	Name      string
	Tier      string
}

// IssueFact is what the metrics read of an issue.
type IssueFact struct {
	ID          string
	ProjectID   int64
	ProjectPath string
	IID         int64
	Title       string
	State       string
	IssueType   string
	Labels      []string
	WebURL      string
	CreatedAt   time.Time
	ClosedAt    time.Time
}

// PipelineFact is what the metrics read of a pipeline. A duration GitLab
// has not given (the pipeline has not finished) is nil.
type PipelineFact struct {
	ID             string
	ProjectID      int64
	Ref            string
	SHA            string
	Status         string
	CreatedAt      time.Time
	Duration       *float64
	QueuedDuration *float64
}

// JobStats are the job figures of a window, counted by the store: jobs
// are the most numerous events, too many to hand out one by one.
type JobStats struct {
	// ByName counts, for each job name that failed in the window, its
	// runs and how many failed.
	ByName []JobRuns
	// Failures counts failed runs by stage and failure reason.
	Failures []JobFailures
	// Flaky names the jobs that failed and then passed on one commit.
	Flaky []FlakyJob
}

// FlakyJob is a job name with the commits (project and sha) on which a
// run of it failed and a later run (created after) succeeded.
type FlakyJob struct {
	Name    string
	Commits int
}

// JobRuns counts the runs of one job name.
type JobRuns struct {
	Name     string
	Runs     int
	Failures int
}

// JobFailures counts failed runs of one stage and failure reason.
type JobFailures struct {
	Stage  string
	Reason string
	Count  int
}

// MetricsStore reads the facts (internal/metrics is its consumer).
type MetricsStore interface {
	// MergedMergeRequests returns the merge requests merged (merged_at)
	// in the window, oldest merge first, without Title and WebURL (no
	// metric of merged merge requests shows them; leaving them out lets a
	// window be read from one index).
	MergedMergeRequests(ctx context.Context, f FactFilter) ([]MergeRequestFact, error)
	// MergedChanges is MergedMergeRequests with only what lead time
	// reads, as ChangeFacts, in the same order. A window holds tens of
	// thousands of merges, and every column read costs.
	MergedChanges(ctx context.Context, f FactFilter) ([]ChangeFact, error)
	// MergeFlow is MergedMergeRequests as MergeFlowFacts, in the same
	// order.
	MergeFlow(ctx context.Context, f FactFilter) ([]MergeFlowFact, error)
	// OpenMergeRequests returns up to limit merge requests in state
	// opened, oldest created_at first.
	OpenMergeRequests(ctx context.Context, projects []int64, limit int) ([]MergeRequestFact, error)
	// Deployments returns the successful deployments that finished in
	// the window, oldest first.
	Deployments(ctx context.Context, f FactFilter) ([]DeploymentFact, error)
	// DeploymentEdges returns, per project and environment, the latest
	// successful deployment that finished before before, and the earliest
	// that finished at or after from; each carries only its project,
	// environment and finished_at.
	DeploymentEdges(ctx context.Context, projects []int64, before, from time.Time, envs *EnvFilter) (prev, next []DeploymentFact, err error)
	// Environments returns every environment of the projects.
	Environments(ctx context.Context, projects []int64) ([]EnvironmentFact, error)
	// Issues returns the issues created in the window, oldest first, with
	// ID, ProjectID, IssueType, Labels, CreatedAt and ClosedAt only.
	Issues(ctx context.Context, f FactFilter) ([]IssueFact, error)
	// Pipelines returns the pipelines created in the window, oldest
	// first, with Ref, Status and the durations only (read from one
	// index).
	Pipelines(ctx context.Context, f FactFilter) ([]PipelineFact, error)
	// JobStats counts the jobs created in the window.
	JobStats(ctx context.Context, f FactFilter) (JobStats, error)
	// FactsOf is the store reading the facts of one connection alone
	// (its name; DefaultConnection the environment's), "" of every one:
	// project ids are unique only within one GitLab, so a selection of
	// projects is one connection's. Its RelatedStore, when it has one,
	// reads that connection's too.
	FactsOf(connection string) MetricsStore
}

// Statement is one SQL statement and its arguments.
type Statement struct {
	SQL  string
	Args []any
}

// factAttrs are an event's attributes as facts read them: one that is
// missing or of another type than expected reads as its zero value, so no
// attribute, whatever a payload put there, keeps an event from being
// stored.
type factAttrs map[string]json.RawMessage

func (a factAttrs) str(k string) string {
	var v string
	_ = json.Unmarshal(a[k], &v)
	return v
}

func (a factAttrs) num(k string) *float64 {
	var v *float64
	if json.Unmarshal(a[k], &v) != nil {
		return nil
	}
	return v
}

func (a factAttrs) int(k string) int64 {
	if v := a.num(k); v != nil && *v == float64(int64(*v)) {
		return int64(*v)
	}
	return 0
}

func (a factAttrs) bool(k string) bool {
	var v bool
	_ = json.Unmarshal(a[k], &v)
	return v
}

func (a factAttrs) time(k string) time.Time {
	var v time.Time
	if json.Unmarshal(a[k], &v) != nil || !InTimeRange(v) {
		return time.Time{}
	}
	return v.UTC()
}

func (a factAttrs) list(k string) []json.RawMessage {
	var v []json.RawMessage
	_ = json.Unmarshal(a[k], &v)
	return v
}

func (a factAttrs) strings(k string) []string {
	out := []string{}
	for _, raw := range a.list(k) {
		var v string
		if json.Unmarshal(raw, &v) == nil {
			out = append(out, v)
		}
	}
	return out
}

// firstApproval is the earliest approved_at of the approvals attribute.
func (a factAttrs) firstApproval() time.Time {
	var first time.Time
	for _, raw := range a.list("approvals") {
		var ap factAttrs
		if json.Unmarshal(raw, &ap) != nil {
			continue
		}
		if at := ap.time("approved_at"); !at.IsZero() && (first.IsZero() || at.Before(first)) {
			first = at
		}
	}
	return first
}

// FactTables are the tables facts are kept in, in the order RebuildFacts
// clears them.
var FactTables = []string{"fact_merge_requests", "fact_notes", "fact_deployments", "fact_environments",
	"fact_issues", "fact_pipelines", "fact_jobs"}

// FactWrites are the statements that bring the facts of e, as written
// with attrs (its attribute JSON), up to date. Kinds the metrics do not
// read have none.
func (d Dialect) FactWrites(e change.Event, attrs []byte) ([]Statement, error) {
	switch e.Kind {
	case change.KindMergeRequest, change.KindNote, change.KindDeployment, change.KindEnvironment,
		change.KindIssue, change.KindPipeline, change.KindJob:
	default:
		return nil, nil
	}
	var a factAttrs
	if len(attrs) > 0 {
		if err := json.Unmarshal(attrs, &a); err != nil {
			return nil, fmt.Errorf("event %s: facts: %w", e.ID, err)
		}
	}
	t := d.Time
	zero := t(time.Time{})
	switch e.Kind {
	case change.KindMergeRequest:
		iid := a.int("iid")
		return []Statement{
			{d.putFact("fact_merge_requests", `id, project_id, project_path, iid, title, author, state, target_branch, web_url,
				created_at, merged_at, first_commit_at, first_approval_at, additions, deletions, files`),
				[]any{e.ID, e.ProjectID, e.ProjectPath, iid, e.Title, e.Author, e.State, a.str("target_branch"), e.WebURL,
					t(e.CreatedAt), t(a.time("merged_at")), t(a.time("first_commit_at")), t(a.firstApproval()),
					a.int("additions"), a.int("deletions"), len(a.list("changed_files"))}},
			// The first note may have come before the merge request.
			{`UPDATE fact_merge_requests SET first_note_at = COALESCE((SELECT MIN(n.created_at) FROM fact_notes n
				WHERE n.project_id = ` + d.Param(1) + ` AND n.mr_iid = ` + d.Param(2) + ` AND n.author <> ` + d.Param(3) + `
				AND ` + d.HasPrefix("n.id", d.Param(6)) + `), ` + d.Param(4) + `)
				WHERE id = ` + d.Param(5), []any{e.ProjectID, iid, e.Author, zero, e.ID, factIDPrefix(ConnectionOf(e.ID), "note")}},
		}, nil
	case change.KindNote:
		iid := a.int("noteable_iid")
		if a.bool("system") || a.str("noteable_type") != "MergeRequest" || iid <= 0 || e.Author == "" {
			return nil, nil
		}
		return []Statement{
			{d.putFact("fact_notes", `id, project_id, mr_iid, author, created_at`),
				[]any{e.ID, e.ProjectID, iid, e.Author, t(e.CreatedAt)}},
			{`UPDATE fact_merge_requests SET first_note_at = ` + d.Param(1) + `
				WHERE project_id = ` + d.Param(2) + ` AND iid = ` + d.Param(3) + ` AND author <> ` + d.Param(4) + `
				AND (first_note_at = ` + d.Param(5) + ` OR first_note_at > ` + d.Param(1) + `)
				AND ` + d.HasPrefix("id", d.Param(6)),
				[]any{t(e.CreatedAt), e.ProjectID, iid, e.Author, zero, factIDPrefix(ConnectionOf(e.ID), "mr")}},
		}, nil
	case change.KindDeployment:
		env, job := environmentName(a["environment"]), a.deployableID()
		source := "gitlab"
		if e.Source == change.SourceAPI {
			source = "api"
		}
		return append([]Statement{{d.putFact("fact_deployments", `id, project_id, project_path, environment, status, ref, sha, web_url, finished_at,
			source, job_id, occurred_at`),
			[]any{e.ID, e.ProjectID, e.ProjectPath, env, cmp.Or(a.str("status"), e.State),
				e.Ref, e.SHA, e.WebURL, t(a.time("finished_at")), source, job, t(e.OccurredAt)}}},
			d.linkDeployment(e, source, env, job)...), nil
	case change.KindEnvironment:
		return []Statement{{d.putFact("fact_environments", `id, project_id, name, tier`),
			[]any{e.ID, e.ProjectID, cmp.Or(a.str("name"), e.Title), a.str("tier")}}}, nil
	case change.KindIssue:
		labels, err := json.Marshal(a.strings("labels"))
		if err != nil {
			return nil, err
		}
		return []Statement{{d.putFact("fact_issues", `id, project_id, project_path, iid, title, state, issue_type, labels, web_url, created_at, closed_at`),
			[]any{e.ID, e.ProjectID, e.ProjectPath, a.int("iid"), e.Title, e.State, a.str("issue_type"), string(labels), e.WebURL,
				t(e.CreatedAt), t(a.time("closed_at"))}}}, nil
	case change.KindPipeline:
		return []Statement{{d.putFact("fact_pipelines", `id, project_id, ref, sha, status, created_at, duration, queued_duration`),
			[]any{e.ID, e.ProjectID, e.Ref, e.SHA, cmp.Or(a.str("status"), e.State), t(e.CreatedAt),
				a.num("duration"), a.num("queued_duration")}}}, nil
	case change.KindJob:
		return []Statement{{d.putFact("fact_jobs", `id, project_id, pipeline_id, name, stage, status, failure_reason, sha, created_at`),
			[]any{e.ID, e.ProjectID, a.int("pipeline_id"), cmp.Or(a.str("name"), e.Title), a.str("stage"),
				cmp.Or(a.str("status"), e.State), a.str("failure_reason"), e.SHA, t(e.CreatedAt)}}}, nil
	}
	return nil, nil
}

// deployableID is the id of a deployment's job (its deployable).
func (a factAttrs) deployableID() int64 {
	var job factAttrs
	if json.Unmarshal(a["deployable"], &job) != nil {
		return 0
	}
	return job.int("id")
}

// LinkWindow is how far apart in time a reported deployment and GitLab's
// deployment of the same sha to the same environment may have occurred
// (started, or finished once finished) to be taken for one deployment.
const LinkWindow = 10 * time.Minute

// linkDeployment returns the statements that link a reported deployment
// (source api) to GitLab's deployment of the same project and
// environment, whichever is written second: GitLab's with the same
// deployable job id, or with the same sha within LinkWindow. A linked report's duplicate_of names GitLab's
// deployment; the metrics read only rows whose duplicate_of is empty, so
// the two count once.
func (d Dialect) linkDeployment(e change.Event, source, env string, job int64) []Statement {
	if ConnectionOf(e.ID) != DefaultConnection {
		// Deployments are reported for the default connection's
		// projects only: another GitLab's project of the same id is
		// another project.
		return nil
	}
	t := d.Time
	lo, hi := e.OccurredAt.Add(-LinkWindow), e.OccurredAt.Add(LinkWindow)
	if !InTimeRange(lo) || !InTimeRange(hi) {
		lo, hi = e.OccurredAt, e.OccurredAt
	}
	// other is the column prefix of the deployment looked for: the
	// alias g inside the report's subquery, nothing in GitLab's update.
	match := func(other string, args *[]any) string {
		p := func(v any) string {
			*args = append(*args, v)
			return d.Param(len(*args))
		}
		conds := []string{}
		if job != 0 {
			conds = append(conds, other+"job_id = "+p(job))
		}
		if e.SHA != "" && !e.OccurredAt.IsZero() {
			conds = append(conds, "("+other+"sha = "+p(e.SHA)+" AND "+other+"occurred_at BETWEEN "+p(t(lo))+" AND "+p(t(hi))+")")
		}
		if len(conds) == 0 {
			return ""
		}
		return other + "project_id = " + p(e.ProjectID) + " AND " + d.HasPrefix(other+"id", p("deployment-")) +
			" AND " + other + "environment = " + p(env) +
			" AND (" + strings.Join(conds, " OR ") + ")"
	}
	if source == "api" {
		args := []any{}
		m := match("g.", &args)
		if m == "" {
			args = append(args, e.ID)
			return []Statement{{`UPDATE fact_deployments SET duplicate_of = '' WHERE id = ` + d.Param(len(args)), args}}
		}
		stmt := `UPDATE fact_deployments SET duplicate_of = COALESCE((SELECT MIN(g.id) FROM fact_deployments g WHERE g.source = 'gitlab' AND ` + m + `), '')`
		args = append(args, e.ID)
		return []Statement{{stmt + ` WHERE id = ` + d.Param(len(args)), args}}
	}
	args := []any{e.ID}
	m := match("", &args)
	if m == "" {
		return nil
	}
	return []Statement{{`UPDATE fact_deployments SET duplicate_of = ` + d.Param(1) + ` WHERE source = 'api' AND duplicate_of = '' AND ` + m, args}}
}

// environmentName reads a deployment's environment attribute: its name,
// or an object with one.
func environmentName(raw json.RawMessage) string {
	var name string
	if json.Unmarshal(raw, &name) == nil {
		return name
	}
	var obj struct {
		Name string `json:"name"`
	}
	_ = json.Unmarshal(raw, &obj)
	return obj.Name
}

// putFact inserts a fact row, or replaces the columns given of the row
// with its id.
func (d Dialect) putFact(table, columns string) string {
	n := len(strings.Split(columns, ","))
	return upsertInto(table, columns, "id", strings.Split(d.Params(n), ", "))
}

// RebuildFacts derives every fact again from the stored events, unless
// they were derived by FactsVersion's rule already, and says how many
// events it read. q and exec must run in one transaction, which the
// caller commits: a store never shows facts of two rules at once.
func RebuildFacts[T any](ctx context.Context, d Dialect, sc Scanner[T], q Querier,
	exec func(ctx context.Context, stmt string, args ...any) error) (int, error) {
	var version []int
	err := q(ctx, `SELECT version FROM fact_version`, nil, func(rows Rows) error {
		var err error
		version, err = Collect(rows, func(r Row) (int, error) {
			var v int
			return v, r.Scan(&v)
		})
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("facts version: %w", err)
	}
	if len(version) == 1 && version[0] >= FactsVersion {
		return 0, nil
	}
	for _, t := range FactTables {
		if err := exec(ctx, `DELETE FROM `+t); err != nil {
			return 0, fmt.Errorf("clear %s: %w", t, err)
		}
	}
	kinds := []any{}
	for _, k := range []change.Kind{change.KindMergeRequest, change.KindNote, change.KindDeployment,
		change.KindEnvironment, change.KindIssue, change.KindPipeline, change.KindJob} {
		kinds = append(kinds, string(k))
	}
	read, after := 0, ""
	for {
		qq := d.Query()
		qq.AnyOf("kind", kinds)
		qq.Where("id > ?", after)
		var page []StoredEvent
		err := q(ctx, `SELECT `+StoredColumns+` FROM events`+qq.WhereSQL()+` ORDER BY id LIMIT 1000`, qq.Args(),
			func(rows Rows) error {
				var err error
				page, err = Collect(rows, sc.Stored)
				return err
			})
		if err != nil {
			return read, fmt.Errorf("read events: %w", err)
		}
		if len(page) == 0 {
			break
		}
		// In any order: a merge request's write reads the notes stored
		// so far, and a note's write updates its merge request.
		for _, st := range page {
			ws, err := d.FactWrites(st.Event, st.AttrsJSON)
			if err != nil {
				return read, err
			}
			for _, w := range ws {
				if err := exec(ctx, w.SQL, w.Args...); err != nil {
					return read, fmt.Errorf("event %s: %w", st.ID, err)
				}
			}
		}
		read += len(page)
		after = page[len(page)-1].ID
	}
	if err := exec(ctx, `DELETE FROM fact_version`); err != nil {
		return read, err
	}
	if err := exec(ctx, `INSERT INTO fact_version (version) VALUES (`+d.Param(1)+`)`, FactsVersion); err != nil {
		return read, err
	}
	return read, nil
}
