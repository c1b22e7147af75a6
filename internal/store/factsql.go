package store

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// The MetricsStore methods, written once for the SQL backends.

// factQuery starts a query on the fact table of kind: s's connection,
// the projects of f and a window on column. A zero Since only leaves out rows without a time.
func (s SQL[T]) factQuery(kind string, projects []int64, column string, since, until time.Time) *Query {
	return s.factQueryOn("", kind, projects, column, since, until)
}

// factQueryOn is factQuery on the table aliased alias ("f." for f).
func (s SQL[T]) factQueryOn(alias, kind string, projects []int64, column string, since, until time.Time) *Query {
	q := s.Dialect.Query()
	projectsIn(q, alias, projects)
	s.ofConnection(q, alias, kind)
	column = alias + column
	if since.IsZero() {
		q.Where(column+" <> ?", s.Dialect.Time(time.Time{}))
	} else {
		q.Where(column+" >= ?", s.Dialect.Time(since))
	}
	if !until.IsZero() {
		q.Where(column+" < ?", s.Dialect.Time(until))
	}
	return q
}

// FactsOf implements MetricsStore: s reading the facts of connection
// alone ("" every connection's).
func (s SQL[T]) FactsOf(connection string) MetricsStore {
	s.conn = connection
	return s
}

// factIDPrefix is how the ids of connection's facts of one kind start
// (kind is the id's first word, "mr" for merge requests): the default
// connection's with the kind and a hyphen, an added one's with its name
// and a colon before them (store.ConnectionOf).
func factIDPrefix(connection, kind string) string {
	if connection == DefaultConnection {
		return kind + "-"
	}
	return connection + ":" + kind + "-"
}

// ofConnection adds the condition that the row (of the fact table of
// kind, aliased alias) is of s's connection, when it reads one.
func (s SQL[T]) ofConnection(q *Query, alias, kind string) {
	if s.conn != "" {
		q.Where(s.Dialect.HasPrefix(alias+"id", q.Arg(factIDPrefix(s.conn, kind))))
	}
}

// projectsIn adds the condition that the row is of one of projects (none:
// any).
func projectsIn(q *Query, alias string, projects []int64) {
	ids := make([]any, len(projects))
	for i, id := range projects {
		ids[i] = id
	}
	q.AnyOf(alias+"project_id", ids)
}

func (s SQL[T]) checkFacts(what string, f FactFilter) error {
	if err := s.check([]string{"since", "until"}, f.Since, f.Until); err != nil {
		return s.errorf("%s: %w", what, err)
	}
	return nil
}

const mrFactColumns = `id, project_id, project_path, iid, title, author, state, target_branch, web_url,
	created_at, merged_at, first_commit_at, first_approval_at, first_note_at, additions, deletions, files`

func (s SQL[T]) scanMR(r Row) (MergeRequestFact, error) {
	var (
		m                                      MergeRequestFact
		created, merged, first, approved, note T
	)
	err := r.Scan(&m.ID, &m.ProjectID, &m.ProjectPath, &m.IID, &m.Title, &m.Author, &m.State, &m.TargetBranch, &m.WebURL,
		&created, &merged, &first, &approved, &note, &m.Additions, &m.Deletions, &m.Files)
	m.CreatedAt, m.MergedAt, m.FirstCommitAt = s.Scan.From(created), s.Scan.From(merged), s.Scan.From(first)
	m.FirstApprovalAt, m.FirstNoteAt = s.Scan.From(approved), s.Scan.From(note)
	return m, err
}

// mergedColumns are what MergedMergeRequests reads: those of
// fact_mr_merged, so a window over every project reads that index alone.
const mergedColumns = `id, project_id, project_path, iid, author, target_branch,
	created_at, merged_at, first_commit_at, first_approval_at, first_note_at, additions, deletions, files`

// MergedMergeRequests implements MetricsStore.
func (s SQL[T]) MergedMergeRequests(ctx context.Context, f FactFilter) ([]MergeRequestFact, error) {
	if err := s.checkFacts("merged merge requests", f); err != nil {
		return nil, err
	}
	q := s.factQuery("mr", f.ProjectIDs, "merged_at", f.Since, f.Until)
	return facts(ctx, s, "merged merge requests", `SELECT `+mergedColumns+` FROM fact_merge_requests`+q.WhereSQL()+
		` ORDER BY merged_at, id`, q.Args(), func(r Row) (MergeRequestFact, error) {
		var (
			m                                      MergeRequestFact
			created, merged, first, approved, note T
		)
		err := r.Scan(&m.ID, &m.ProjectID, &m.ProjectPath, &m.IID, &m.Author, &m.TargetBranch,
			&created, &merged, &first, &approved, &note, &m.Additions, &m.Deletions, &m.Files)
		m.CreatedAt, m.MergedAt, m.FirstCommitAt = s.Scan.From(created), s.Scan.From(merged), s.Scan.From(first)
		m.FirstApprovalAt, m.FirstNoteAt, m.State = s.Scan.From(approved), s.Scan.From(note), "merged"
		return m, err
	})
}

// MergeFlow implements MetricsStore. Every column it reads is in
// fact_mr_merged.
func (s SQL[T]) MergeFlow(ctx context.Context, f FactFilter) ([]MergeFlowFact, error) {
	if err := s.checkFacts("merge flow", f); err != nil {
		return nil, err
	}
	q := s.factQuery("mr", f.ProjectIDs, "merged_at", f.Since, f.Until)
	zero := q.Arg(s.Dialect.Time(time.Time{}))
	return facts(ctx, s, "merge flow", `SELECT project_id, project_path, author, target_branch, created_at, merged_at,
		first_commit_at, CASE WHEN first_approval_at = `+zero+` OR (first_note_at <> `+zero+` AND first_note_at < first_approval_at)
			THEN first_note_at ELSE first_approval_at END, additions + deletions, files
		FROM fact_merge_requests`+q.WhereSQL()+` ORDER BY merged_at, id`, q.Args(), func(r Row) (MergeFlowFact, error) {
		var (
			m                              MergeFlowFact
			created, merged, first, review T
		)
		err := r.Scan(&m.ProjectID, &m.ProjectPath, &m.Author, &m.TargetBranch, &created, &merged, &first, &review,
			&m.Lines, &m.Files)
		m.CreatedAt, m.MergedAt, m.FirstCommitAt, m.FirstReviewAt = s.Scan.From(created), s.Scan.From(merged),
			s.Scan.From(first), s.Scan.From(review)
		return m, err
	})
}

// MergedChanges implements MetricsStore.
func (s SQL[T]) MergedChanges(ctx context.Context, f FactFilter) ([]ChangeFact, error) {
	if err := s.checkFacts("merged changes", f); err != nil {
		return nil, err
	}
	q := s.factQuery("mr", f.ProjectIDs, "merged_at", f.Since, f.Until)
	zero := q.Arg(s.Dialect.Time(time.Time{}))
	return facts(ctx, s, "merged changes", `SELECT id, project_id, target_branch, merged_at,
		CASE WHEN first_commit_at = `+zero+` THEN created_at ELSE first_commit_at END
		FROM fact_merge_requests`+q.WhereSQL()+` ORDER BY merged_at, id`, q.Args(), func(r Row) (ChangeFact, error) {
		var (
			c               ChangeFact
			merged, started T
		)
		err := r.Scan(&c.ID, &c.ProjectID, &c.TargetBranch, &merged, &started)
		c.MergedAt, c.StartedAt = s.Scan.From(merged), s.Scan.From(started)
		return c, err
	})
}

// OpenMergeRequests implements MetricsStore.
func (s SQL[T]) OpenMergeRequests(ctx context.Context, projects []int64, limit int) ([]MergeRequestFact, error) {
	if limit <= 0 {
		return nil, nil
	}
	q := s.factQuery("mr", projects, "created_at", time.Time{}, time.Time{})
	q.Where("state = 'opened'")
	return facts(ctx, s, "open merge requests", `SELECT `+mrFactColumns+` FROM fact_merge_requests`+q.WhereSQL()+
		` ORDER BY created_at, id LIMIT `+q.Arg(limit), q.Args(), s.scanMR)
}

const deploymentFactColumns = `id, project_id, project_path, environment, status, ref, sha, web_url, finished_at`

func (s SQL[T]) scanDeployment(r Row) (DeploymentFact, error) {
	var (
		d        DeploymentFact
		finished T
	)
	err := r.Scan(&d.ID, &d.ProjectID, &d.ProjectPath, &d.Environment, &d.Status, &d.Ref, &d.SHA, &d.WebURL, &finished)
	d.FinishedAt = s.Scan.From(finished)
	return d, err
}

// Deployments implements MetricsStore.
func (s SQL[T]) Deployments(ctx context.Context, f FactFilter) ([]DeploymentFact, error) {
	if err := s.checkFacts("deployments", f); err != nil {
		return nil, err
	}
	q := s.factQuery("deployment", f.ProjectIDs, "finished_at", f.Since, f.Until)
	q.Where("status = 'success' AND duplicate_of = ''")
	if f.Environments != nil {
		environmentsIn(q, f.Environments)
	}
	return facts(ctx, s, "deployments", `SELECT `+deploymentFactColumns+` FROM fact_deployments`+q.WhereSQL()+
		` ORDER BY finished_at, id`, q.Args(), s.scanDeployment)
}

// DeploymentEdges implements MetricsStore.
func (s SQL[T]) DeploymentEdges(ctx context.Context, projects []int64, before, from time.Time, envs *EnvFilter) (prev, next []DeploymentFact, err error) {
	if err := s.check([]string{"before", "from"}, before, from); err != nil {
		return nil, nil, s.errorf("deployment edges: %w", err)
	}
	edge := func(agg string, since, until time.Time) ([]DeploymentFact, error) {
		q := s.factQuery("deployment", projects, "finished_at", since, until)
		q.Where("status = 'success' AND duplicate_of = ''")
		if envs != nil {
			environmentsIn(q, envs)
		}
		return facts(ctx, s, "deployment edges", `SELECT project_id, environment, `+agg+`(finished_at) FROM fact_deployments`+
			q.WhereSQL()+` GROUP BY project_id, environment ORDER BY project_id, environment`, q.Args(),
			func(r Row) (DeploymentFact, error) {
				var (
					d  DeploymentFact
					at T
				)
				err := r.Scan(&d.ProjectID, &d.Environment, &at)
				d.FinishedAt, d.Status = s.Scan.From(at), "success"
				return d, err
			})
	}
	if !before.IsZero() {
		if prev, err = edge("MAX", time.Time{}, before); err != nil {
			return nil, nil, err
		}
	}
	if !from.IsZero() {
		if next, err = edge("MIN", from, time.Time{}); err != nil {
			return nil, nil, err
		}
	}
	return prev, next, nil
}

// Environments implements MetricsStore.
func (s SQL[T]) Environments(ctx context.Context, projects []int64) ([]EnvironmentFact, error) {
	q := s.Dialect.Query()
	projectsIn(q, "", projects)
	s.ofConnection(q, "", "environment")
	return facts(ctx, s, "environments", `SELECT id, project_id, name, tier FROM fact_environments`+q.WhereSQL()+
		` ORDER BY project_id, name, id`, q.Args(), func(r Row) (EnvironmentFact, error) {
		var e EnvironmentFact
		return e, r.Scan(&e.ID, &e.ProjectID, &e.Name, &e.Tier)
	})
}

// Issues implements MetricsStore. The columns are those of
// fact_issues_created, so a window over every project reads that index
// alone.
func (s SQL[T]) Issues(ctx context.Context, f FactFilter) ([]IssueFact, error) {
	if err := s.checkFacts("issues", f); err != nil {
		return nil, err
	}
	q := s.factQuery("issue", f.ProjectIDs, "created_at", f.Since, f.Until)
	if f.IncidentLabels != nil {
		incidentsOnly(q, f.IncidentLabels)
	}
	return facts(ctx, s, "issues", `SELECT id, project_id, issue_type, labels, created_at, closed_at
		FROM fact_issues`+q.WhereSQL()+` ORDER BY created_at, id`, q.Args(),
		func(r Row) (IssueFact, error) {
			var (
				is              IssueFact
				labels          string
				created, closed T
			)
			err := r.Scan(&is.ID, &is.ProjectID, &is.IssueType, &labels, &created, &closed)
			if err != nil {
				return is, err
			}
			is.CreatedAt, is.ClosedAt = s.Scan.From(created), s.Scan.From(closed)
			if labels != "[]" {
				err = json.Unmarshal([]byte(labels), &is.Labels)
			}
			return is, err
		})
}

// environmentsIn keeps the rows whose environment f may match: one of
// its names, or a LIKE made of each glob, which matches at least what the
// glob does (a class [...] or an escaped character becomes any one
// character).
func environmentsIn(q *Query, f *EnvFilter) {
	var conds []string
	var args []any
	if len(f.Names) > 0 {
		marks := make([]string, len(f.Names))
		for i, n := range f.Names {
			marks[i], args = "?", append(args, n)
		}
		conds = append(conds, "environment IN ("+strings.Join(marks, ", ")+")")
	}
	for _, g := range f.Patterns {
		conds = append(conds, "environment LIKE ? ESCAPE '!'")
		args = append(args, globLike(g))
	}
	if len(conds) == 0 {
		q.Where("1 = 0")
		return
	}
	q.Where("("+strings.Join(conds, " OR ")+")", args...)
}

// globLike is a LIKE pattern matching at least what glob g matches.
func globLike(g string) string {
	rs := []rune(g)
	var b strings.Builder
	for i := 0; i < len(rs); i++ {
		switch c := rs[i]; c {
		case '*':
			b.WriteByte('%')
		case '?':
			b.WriteByte('_')
		case '[':
			// A class is one character: skip to its end.
			j := i + 1
			if j < len(rs) && rs[j] == '^' {
				j++
			}
			if j < len(rs) && rs[j] == ']' {
				j++
			}
			for j < len(rs) && rs[j] != ']' {
				if rs[j] == '\\' {
					j++
				}
				j++
			}
			b.WriteByte('_')
			i = j
		case '\\':
			if i+1 < len(rs) {
				i++
				b.WriteString(likeEscaper.Replace(string(rs[i])))
			}
		default:
			b.WriteString(likeEscaper.Replace(string(c)))
		}
	}
	return b.String()
}

// incidentsOnly leaves out of an issues query those that cannot be
// incidents: not of type incident, and with no label that could be one of
// labels. A label is looked for in the lower-cased JSON of the issue's
// labels, which holds it as written when it is plain ASCII without the
// characters JSON escapes; when one is not, any labelled issue is kept.
func incidentsOnly(q *Query, labels []string) {
	conds := []string{"issue_type = 'incident'"}
	var args []any
	for _, l := range labels {
		l = strings.ToLower(strings.TrimSpace(l))
		if l == "" {
			continue
		}
		if !plainLabel(l) {
			conds, args = []string{"issue_type = 'incident'", "labels <> '[]'"}, nil
			break
		}
		conds = append(conds, "lower(labels) LIKE ? ESCAPE '!'")
		args = append(args, "%"+likeEscaper.Replace(l)+"%")
	}
	q.Where("("+strings.Join(conds, " OR ")+")", args...)
}

var likeEscaper = strings.NewReplacer("!", "!!", "%", "!%", "_", "!_")

// plainLabel: printable ASCII that JSON writes as it is.
func plainLabel(l string) bool {
	for _, r := range l {
		if r < 0x20 || r > 0x7e || strings.ContainsRune(`"\<>&`, r) {
			return false
		}
	}
	return true
}

// Pipelines implements MetricsStore.
func (s SQL[T]) Pipelines(ctx context.Context, f FactFilter) ([]PipelineFact, error) {
	if err := s.checkFacts("pipelines", f); err != nil {
		return nil, err
	}
	q := s.factQuery("pipeline", f.ProjectIDs, "created_at", f.Since, f.Until)
	// Columns of fact_pipelines_created: a window over every project
	// reads that index alone.
	// created_at places a pipeline in the health series' buckets.
	return facts(ctx, s, "pipelines", `SELECT created_at, ref, status, duration, queued_duration
		FROM fact_pipelines`+q.WhereSQL()+` ORDER BY created_at`, q.Args(),
		func(r Row) (PipelineFact, error) {
			var (
				p       PipelineFact
				created T
			)
			err := r.Scan(&created, &p.Ref, &p.Status, &nullFloat{&p.Duration}, &nullFloat{&p.QueuedDuration})
			p.CreatedAt = s.Scan.From(created)
			return p, err
		})
}

// nullFloat scans a nullable number into *p (nil for NULL) without the
// reflection database/sql scans a **float64 with, tens of thousands of
// times a request.
type nullFloat struct{ p **float64 }

func (n *nullFloat) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*n.p = nil
	case float64:
		*n.p = &v
	case int64:
		f := float64(v)
		*n.p = &f
	default:
		return fmt.Errorf("a number: got %T", src)
	}
	return nil
}

// JobStats implements MetricsStore. The counting is done by the database:
// a window holds hundreds of thousands of jobs.
func (s SQL[T]) JobStats(ctx context.Context, f FactFilter) (JobStats, error) {
	var out JobStats
	if err := s.checkFacts("job stats", f); err != nil {
		return out, err
	}
	runs := func(r Row) (JobRuns, error) {
		var j JobRuns
		return j, r.Scan(&j.Name, &j.Runs, &j.Failures)
	}
	// fact_job_days counts every connection's jobs.
	days := len(f.ProjectIDs) == 0 && s.conn == "" && s.Dialect.JobDays
	var whole [2]time.Time // the window's whole days
	if days {
		whole = [2]time.Time{ceilDay(f.Since), f.Until.UTC().Truncate(24 * time.Hour)}
		days = !f.Since.IsZero() && !f.Until.IsZero() && whole[0].Before(whole[1])
	}
	err := s.Snapshot(ctx, func(qr Querier) error {
		if days {
			var err error
			out, err = s.jobDayStats(ctx, qr, f, whole)
			if err != nil {
				return err
			}
			return s.flakyJobs(ctx, qr, f, &out)
		}
		// The names that failed, from the failed runs alone (a partial
		// index), then each one's runs counted on (name, created_at): a
		// window holds hundreds of thousands of runs, and grouping them
		// all would sort them all.
		q := s.factQuery("job", f.ProjectIDs, "created_at", f.Since, f.Until)
		q.Where("status = 'failed'")
		var err error
		if out.ByName, err = rowsOf(ctx, qr, `SELECT name, 0, COUNT(*) FROM fact_jobs`+q.WhereSQL()+
			` GROUP BY name ORDER BY name`, q.Args(), runs); err != nil {
			return err
		}
		for i := range out.ByName {
			c := s.factQuery("job", f.ProjectIDs, "created_at", f.Since, f.Until)
			c.Where("name = ?", out.ByName[i].Name)
			n, err := rowsOf(ctx, qr, `SELECT COUNT(*) FROM fact_jobs`+c.WhereSQL(), c.Args(), func(r Row) (int, error) {
				var n int
				return n, r.Scan(&n)
			})
			if err != nil {
				return err
			}
			out.ByName[i].Runs = n[0]
		}
		if out.Failures, err = rowsOf(ctx, qr, `SELECT stage, failure_reason, COUNT(*) FROM fact_jobs`+q.WhereSQL()+
			` GROUP BY stage, failure_reason ORDER BY stage, failure_reason`, q.Args(), func(r Row) (JobFailures, error) {
			var j JobFailures
			return j, r.Scan(&j.Stage, &j.Reason, &j.Count)
		}); err != nil {
			return err
		}
		return s.flakyJobs(ctx, qr, f, &out)
	})
	if err != nil {
		return JobStats{}, s.errorf("job stats: %w", err)
	}
	return out, nil
}

// flakyJobs counts, per job name, the commits with a failed run in the
// window and a later successful run of the same name on the same project
// and sha (at any time after).
func (s SQL[T]) flakyJobs(ctx context.Context, qr Querier, f FactFilter, out *JobStats) error {
	if s.Dialect.JobDays {
		// The failed runs carry whether they are flaky (see
		// fact_jobs_flaky in the SQLite migrations).
		q := s.factQuery("job", f.ProjectIDs, "created_at", f.Since, f.Until)
		q.Where("status = 'failed' AND flaky = 1")
		var err error
		out.Flaky, err = rowsOf(ctx, qr, `SELECT name, COUNT(*) FROM (
				SELECT DISTINCT project_id, sha, name FROM fact_jobs`+q.WhereSQL()+`
			) flaky GROUP BY name ORDER BY name`, q.Args(), func(r Row) (FlakyJob, error) {
			var j FlakyJob
			return j, r.Scan(&j.Name, &j.Commits)
		})
		return err
	}
	q := s.factQueryOn("f.", "job", f.ProjectIDs, "created_at", f.Since, f.Until)
	q.Where("f.status = 'failed'")
	// The later success must be of the same connection: two GitLabs may
	// have a project of one id and, a mirror, one commit. A job's id up to
	// its first hyphen is its connection's ("job", "second:job").
	okOf := ""
	if s.conn != "" {
		okOf = " AND " + s.Dialect.HasPrefix("ok.id", q.Arg(factIDPrefix(s.conn, "job")))
	} else if pos := s.Dialect.Position; pos != nil {
		okOf = " AND substr(ok.id, 1, " + pos("ok.id", "'-'") + ") = substr(f.id, 1, " + pos("f.id", "'-'") + ")"
	}
	var err error
	out.Flaky, err = rowsOf(ctx, qr, `SELECT name, COUNT(*) FROM (
			SELECT DISTINCT f.project_id, f.sha, f.name FROM fact_jobs f`+q.WhereSQL()+` AND EXISTS (
				SELECT 1 FROM fact_jobs ok WHERE ok.project_id = f.project_id AND ok.sha = f.sha AND ok.name = f.name
				AND ok.status = 'success' AND ok.created_at > f.created_at`+okOf+`)
		) flaky GROUP BY name ORDER BY name`, q.Args(), func(r Row) (FlakyJob, error) {
		var j FlakyJob
		return j, r.Scan(&j.Name, &j.Commits)
	})
	return err
}

// jobDayStats counts the jobs of a window over every project as the rest
// of JobStats does, its whole days (whole[0] up to whole[1]) from
// fact_job_days and the partial days at its edges from fact_jobs.
func (s SQL[T]) jobDayStats(ctx context.Context, qr Querier, f FactFilter, whole [2]time.Time) (JobStats, error) {
	type key struct{ name, stage, status, reason string }
	counts := make(map[key]int)
	add := func(r Row) (struct{}, error) {
		var (
			k key
			n int
		)
		if err := r.Scan(&k.name, &k.stage, &k.status, &k.reason, &n); err != nil {
			return struct{}{}, err
		}
		counts[k] += n
		return struct{}{}, nil
	}
	t := s.Dialect.Time
	if _, err := rowsOf(ctx, qr, `SELECT name, stage, status, failure_reason, SUM(runs) FROM fact_job_days
		WHERE day >= `+s.Dialect.Param(1)+` AND day < `+s.Dialect.Param(2)+`
		GROUP BY name, stage, status, failure_reason`, []any{t(whole[0]), t(whole[1])}, add); err != nil {
		return JobStats{}, err
	}
	for _, edge := range [][2]time.Time{{f.Since, whole[0]}, {whole[1], f.Until}} {
		if !edge[0].Before(edge[1]) {
			continue
		}
		q := s.factQuery("job", nil, "created_at", edge[0], edge[1])
		if _, err := rowsOf(ctx, qr, `SELECT name, stage, status, failure_reason, COUNT(*) FROM fact_jobs`+q.WhereSQL()+`
			GROUP BY name, stage, status, failure_reason`, q.Args(), add); err != nil {
			return JobStats{}, err
		}
	}
	var out JobStats
	byName := make(map[string]*JobRuns)
	failures := make(map[[2]string]int)
	for k, n := range counts {
		if n == 0 {
			continue
		}
		r := byName[k.name]
		if r == nil {
			r = &JobRuns{Name: k.name}
			byName[k.name] = r
		}
		r.Runs += n
		if k.status == "failed" {
			r.Failures += n
			failures[[2]string{k.stage, k.reason}] += n
		}
	}
	for _, r := range byName {
		if r.Failures > 0 {
			out.ByName = append(out.ByName, *r)
		}
	}
	slices.SortFunc(out.ByName, func(a, b JobRuns) int { return cmp.Compare(a.Name, b.Name) })
	for k, n := range failures {
		out.Failures = append(out.Failures, JobFailures{Stage: k[0], Reason: k[1], Count: n})
	}
	slices.SortFunc(out.Failures, func(a, b JobFailures) int {
		return cmp.Or(cmp.Compare(a.Stage, b.Stage), cmp.Compare(a.Reason, b.Reason))
	})
	return out, nil
}

// ceilDay is the start of the first whole UTC day at or after t.
func ceilDay(t time.Time) time.Time {
	d := t.UTC().Truncate(24 * time.Hour)
	if d.Before(t) {
		d = d.Add(24 * time.Hour)
	}
	return d
}

// facts runs a fact query. A window holds tens of thousands of rows:
// they are read into chunks and copied once into a slice of their size,
// rather than into a slice that grows (and is copied) as they come.
func facts[T, R any](ctx context.Context, s SQL[T], what, stmt string, args []any, scan func(Row) (R, error)) ([]R, error) {
	const chunk = 4096
	var (
		chunks [][]R
		n      int
	)
	query := s.Query
	if s.FactQuery != nil {
		query = s.FactQuery
	}
	err := query(ctx, stmt, args, func(rows Rows) error {
		for rows.Next() {
			if n%chunk == 0 {
				chunks = append(chunks, make([]R, 0, chunk))
			}
			v, err := scan(rows)
			if err != nil {
				return err
			}
			chunks[len(chunks)-1] = append(chunks[len(chunks)-1], v)
			n++
		}
		return rows.Err()
	})
	if err != nil {
		return nil, s.errorf("%s: %w", what, err)
	}
	if len(chunks) == 1 {
		return chunks[0], nil
	}
	out := make([]R, 0, n)
	for _, c := range chunks {
		out = append(out, c...)
	}
	return out, nil
}
