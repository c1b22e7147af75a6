package server_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/metrics"
	"github.com/labtrail/labtrail/internal/server"
	"github.com/labtrail/labtrail/internal/store"
	"github.com/labtrail/labtrail/internal/store/postgres"
	"github.com/labtrail/labtrail/internal/store/postgres/pgtest"
	"github.com/labtrail/labtrail/internal/store/sqlite"
)

// The delivery-metrics benchmark: a year of a 50-project group's history,
// 1,000,000 events, and the metrics endpoints over HTTP on top of it.
//
// Seeding a million events takes minutes, so the seeded store is kept
// between runs: on SQLite a file in os.TempDir(), on PostgreSQL a schema,
// both named after historyVersion and the migrations (a changed index
// must not be measured on a store built without it).

// historyVersion names what historyEvents generates: raise it whenever
// the generator changes, so that no cached store of the old shape is
// measured.
const historyVersion = 1

// The history's shape, per project (× historyProjects for the whole).
const (
	historyProjects     = 50
	historyDays         = 365
	historyEnvironments = 2    // production and staging
	historyMRs          = 2000 // 100,000
	historyNotes        = 2000 // 100,000 merge-request notes
	historyPipelines    = 2400 // 120,000
	historyJobsPer      = 4    // 480,000 jobs
	historyDeployments  = 400  // 20,000
	historyIncidents    = 100  // 5,000
	historyIssues       = 300  // 15,000 other issues
	// historyCommits makes up the rest: 20,000 events a project.
	historyCommits = 20_000 - historyEnvironments - historyMRs - historyNotes - historyPipelines -
		historyPipelines*historyJobsPer - historyDeployments - historyIncidents - historyIssues
	historyPerProject = 20_000
	historyTotal      = historyProjects * historyPerProject
	historyBatch      = 2000
)

var (
	historyStart = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	historyEnd   = historyStart.AddDate(0, 0, historyDays)
)

func historyPath(p int64) string {
	return fmt.Sprintf("acme/team-%d/service-%d", p%5, p)
}

// historyAuthors are the group's developers; each project has a team of
// twelve of them, so reviews come from colleagues.
const historyAuthors = 120

// historyGen generates one project's history from its own seeded source:
// the same events on every run.
type historyGen struct {
	project int64
	path    string
	rng     *rand.Rand
	out     []change.Event
}

func (g *historyGen) between(from, to time.Time) time.Time {
	if !to.After(from) {
		return from
	}
	return from.Add(time.Duration(g.rng.Int64N(int64(to.Sub(from)/time.Second))) * time.Second)
}

// lognormal is a duration whose median is median, spread by sigma (in
// natural-log units): waiting times are skewed.
func (g *historyGen) lognormal(median time.Duration, sigma float64) time.Duration {
	return time.Duration(float64(median)*math.Exp(g.rng.NormFloat64()*sigma)).Round(time.Second) + time.Second
}

func (g *historyGen) author() string {
	return fmt.Sprintf("dev%d", (int(g.project)*7+g.rng.IntN(12))%historyAuthors)
}

// other is a colleague of author's.
func (g *historyGen) other(author string) string {
	for {
		if a := g.author(); a != author {
			return a
		}
	}
}

func (g *historyGen) sha() string {
	return fmt.Sprintf("%016x%016x%08x", g.rng.Uint64(), g.rng.Uint64(), g.rng.Uint32())
}

func (g *historyGen) url(format string, args ...any) string {
	return "https://gitlab.example.com/" + g.path + fmt.Sprintf(format, args...)
}

func (g *historyGen) emit(e change.Event) {
	e.ProjectID, e.ProjectPath, e.Source = g.project, g.path, change.SourcePoll
	if e.OccurredAt.IsZero() {
		e.OccurredAt = e.UpdatedAt
	}
	g.out = append(g.out, e)
}

type mrInfo struct {
	iid             int64
	author          string
	created, merged time.Time // merged zero: not merged
}

// historyEvents returns project p's 20,000 events.
func historyEvents(p int64) []change.Event {
	g := &historyGen{project: p, path: historyPath(p), rng: rand.New(rand.NewPCG(uint64(p), historyVersion))}
	g.out = make([]change.Event, 0, historyPerProject)
	day := 24 * time.Hour

	// Environments: production and staging, by tier.
	envs := []struct {
		id         int64
		name, tier string
	}{{p*10 + 1, "production", "production"}, {p*10 + 2, "staging", "staging"}}
	for _, e := range envs {
		at := historyStart.Add(-30 * day)
		g.emit(change.Event{ID: change.EnvironmentID(p, e.id), Kind: change.KindEnvironment, Title: e.name, State: "available",
			WebURL: g.url("/-/environments/%d", e.id), CreatedAt: at, UpdatedAt: at,
			Attrs: map[string]any{"name": e.name, "slug": e.name, "tier": e.tier, "state": "available",
				"external_url": fmt.Sprintf("https://%s.service-%d.example.com", e.name, p)},
			Transitions: []change.Transition{{State: "available", At: at}}})
	}

	// Merge requests: most merged to main, some open (a few for months),
	// some closed, a few merged to a release branch.
	mrs := make([]mrInfo, 0, historyMRs)
	for i := range historyMRs {
		iid := int64(i + 1)
		author := g.author()
		created := g.between(historyStart, historyEnd.Add(-time.Hour))
		firstCommit := created.Add(-g.lognormal(6*time.Hour, 1.2))
		target := "main"
		if g.rng.IntN(20) == 0 {
			target = "release/1.x"
		}
		e := change.Event{ID: change.MergeRequestID(p, iid), Kind: change.KindMergeRequest,
			Title:  fmt.Sprintf("Make the %s handler retry with backoff (#%d)", []string{"payment", "webhook", "export", "sync"}[i%4], iid),
			Author: author, WebURL: g.url("/-/merge_requests/%d", iid), Ref: fmt.Sprintf("feature/%s-%d", author, iid),
			SHA: g.sha(), CreatedAt: created}
		add, del, files := 5+g.rng.IntN(400), g.rng.IntN(200), 1+g.rng.IntN(12)
		changed := make([]map[string]any, files)
		for f := range changed {
			changed[f] = map[string]any{"path": fmt.Sprintf("internal/pkg%d/file%d.go", f%5, g.rng.IntN(40)),
				"additions": add / files, "deletions": del / files}
		}
		attrs := map[string]any{"iid": iid, "description": "Retries used the wrong backoff under load; this makes them exponential.",
			"source_branch": e.Ref, "target_branch": target, "draft": false, "labels": []string{"backend"},
			"reviewers": []map[string]any{{"username": g.other(author)}}, "changed_files": changed,
			"additions": add, "deletions": del, "first_commit_at": firstCommit, "commit_count": 1 + g.rng.IntN(6),
			"user_notes_count": g.rng.IntN(5)}
		e.Transitions = []change.Transition{{State: "opened", At: created}}
		info := mrInfo{iid: iid, author: author, created: created}
		switch r := g.rng.IntN(100); {
		case r < 85 && created.Before(historyEnd.Add(-2*day)) || r < 3: // merged
			merged := created.Add(g.lognormal(20*time.Hour, 1.1))
			if !merged.Before(historyEnd) {
				merged = historyEnd.Add(-time.Duration(1+g.rng.IntN(3600)) * time.Second)
			}
			approved := g.between(created, merged)
			attrs["merged_at"], attrs["merged_by"] = merged, map[string]any{"username": g.other(author)}
			attrs["merge_commit_sha"] = g.sha()
			attrs["approvals"] = []map[string]any{{"user": map[string]any{"username": g.other(author)}, "approved_at": approved}}
			attrs["approved"] = true
			e.State, e.UpdatedAt, e.OccurredAt = "merged", merged, merged
			e.Transitions = append(e.Transitions, change.Transition{State: "approved", At: approved},
				change.Transition{State: "merged", At: merged})
			info.merged = merged
		case r < 90: // closed
			closed := created.Add(g.lognormal(3*day, 1))
			if !closed.Before(historyEnd) {
				closed = historyEnd.Add(-time.Minute)
			}
			attrs["closed_at"] = closed
			e.State, e.UpdatedAt = "closed", closed
			e.Transitions = append(e.Transitions, change.Transition{State: "closed", At: closed})
		default:
			e.State, e.UpdatedAt = "opened", created.Add(time.Minute)
		}
		e.Attrs = attrs
		g.emit(e)
		mrs = append(mrs, info)
	}

	// Notes on merge requests: review comments by colleagues, some by the
	// author, a tenth system notes.
	for i := range historyNotes {
		id := p*1_000_000 + int64(i+1)
		mr := mrs[g.rng.IntN(len(mrs))]
		end := mr.merged
		if end.IsZero() {
			end = mr.created.Add(5 * day)
		}
		at := g.between(mr.created, end)
		if !at.Before(historyEnd) {
			at = historyEnd.Add(-time.Second)
		}
		author, system, body := g.other(mr.author), false, "Could this retry forever if the upstream never answers?"
		switch r := g.rng.IntN(10); {
		case r == 0:
			system, body = true, "approved this merge request"
		case r == 1:
			author, body = mr.author, "Good point, fixed in the last push."
		}
		g.emit(change.Event{ID: change.NoteID(p, id), Kind: change.KindNote, Title: body, State: "comment",
			Author: author, WebURL: g.url("/-/merge_requests/%d#note_%d", mr.iid, id), CreatedAt: at, UpdatedAt: at,
			Attrs: map[string]any{"body": body, "system": system, "noteable_type": "MergeRequest",
				"noteable_iid": mr.iid, "resolvable": true, "resolved": false, "internal": false},
			Transitions: []change.Transition{{State: "comment", At: at}}})
	}

	// Pipelines, four jobs each. A tenth fail; half of the test failures
	// are flaky: a rerun on the same sha ten minutes later passes.
	type jobSpec struct{ name, stage string }
	jobs := []jobSpec{{"compile", "build"}, {"unit-tests", "test"}, {"integration-tests", "test"}, {"deploy", "deploy"}}
	reasons := []string{"script_failure", "script_failure", "runner_system_failure", "stuck_or_timeout_failure", "job_execution_timeout"}
	times := make([]time.Time, historyPipelines)
	for i := range times {
		times[i] = g.between(historyStart, historyEnd.Add(-time.Hour))
	}
	slices.SortFunc(times, time.Time.Compare)
	flakySHA := ""
	for i := range historyPipelines {
		id := p*1_000_000 + int64(i+1)
		created := times[i]
		ref, sha, user := "main", g.sha(), g.author()
		if g.rng.IntN(10) < 3 {
			ref = fmt.Sprintf("feature/%s-%d", user, g.rng.IntN(historyMRs)+1)
		}
		rerun := flakySHA != ""
		if rerun {
			ref, sha, flakySHA = "main", flakySHA, ""
		}
		status, failedJob, reason := "success", -1, ""
		switch r := g.rng.IntN(100); {
		case rerun:
		case r < 10:
			status, failedJob, reason = "failed", 1+g.rng.IntN(3), reasons[g.rng.IntN(len(reasons))]
			if failedJob < 3 && g.rng.IntN(2) == 0 {
				flakySHA = sha
				if i+1 < historyPipelines {
					times[i+1] = minT(times[i+1], created.Add(10*time.Minute))
				}
			}
		case r < 13:
			status = "canceled"
		case r < 14:
			status = "running"
		}
		queued := float64(1 + g.rng.IntN(90))
		started := created.Add(time.Duration(queued) * time.Second)
		duration := float64(int(g.lognormal(8*time.Minute, 0.4) / time.Second))
		finished := started.Add(time.Duration(duration) * time.Second)
		attrs := map[string]any{"iid": int64(i + 1), "status": status, "source": "push", "queued_duration": queued,
			"started_at": started, "user": map[string]any{"username": user}}
		trans := []change.Transition{{State: "created", At: created}, {State: "running", At: started}}
		updated := started
		if status != "running" {
			attrs["duration"], attrs["finished_at"] = duration, finished
			trans = append(trans, change.Transition{State: status, At: finished})
			updated = finished
		}
		var failed []map[string]any
		for j, js := range jobs {
			jid := id*int64(historyJobsPer) + int64(j)
			jstatus, jreason := "success", ""
			switch {
			case status == "running" && j >= 2:
				jstatus = "running"
			case j == failedJob:
				jstatus, jreason = "failed", reason
				failed = append(failed, map[string]any{"name": js.name, "stage": js.stage, "failure_reason": reason,
					"web_url": g.url("/-/jobs/%d", jid)})
			case failedJob >= 0 && j > failedJob, status == "canceled" && j == 3:
				jstatus = "skipped"
				if status == "canceled" {
					jstatus = "canceled"
				}
			}
			jstart := started.Add(time.Duration(j) * time.Duration(duration/4) * time.Second)
			jend := jstart.Add(time.Duration(duration/4) * time.Second)
			jattrs := map[string]any{"name": js.name, "stage": js.stage, "status": jstatus, "failure_reason": jreason,
				"pipeline_id": id, "allow_failure": false, "started_at": jstart, "queued_duration": 1.0}
			jtrans := []change.Transition{{State: "created", At: created}, {State: "running", At: jstart}}
			jupdated := jstart
			if jstatus != "running" {
				jattrs["duration"], jattrs["finished_at"] = float64(int(duration/4)), jend
				jtrans = append(jtrans, change.Transition{State: jstatus, At: jend})
				jupdated = jend
			}
			g.emit(change.Event{ID: change.JobID(p, jid), Kind: change.KindJob, Title: js.name, State: jstatus,
				Author: user, WebURL: g.url("/-/jobs/%d", jid), Ref: ref, SHA: sha, CreatedAt: created, UpdatedAt: jupdated,
				Attrs: jattrs, Transitions: jtrans})
		}
		if failed != nil {
			attrs["failed_jobs"] = failed
		}
		g.emit(change.Event{ID: change.PipelineID(p, id), Kind: change.KindPipeline, Title: fmt.Sprintf("Pipeline #%d", id),
			State: status, Author: user, WebURL: g.url("/-/pipelines/%d", id), Ref: ref, SHA: sha,
			CreatedAt: created, UpdatedAt: updated, Attrs: attrs, Transitions: trans})
	}

	// Deployments: two in five to production, the rest to staging; most
	// succeed. Incidents follow some production deployments.
	dtimes := make([]time.Time, historyDeployments)
	for i := range dtimes {
		dtimes[i] = g.between(historyStart, historyEnd.Add(-time.Hour))
	}
	slices.SortFunc(dtimes, time.Time.Compare)
	var prodFinished []time.Time
	for i := range historyDeployments {
		id := p*100_000 + int64(i+1)
		env := envs[1]
		if g.rng.IntN(5) < 2 {
			env = envs[0]
		}
		created := dtimes[i]
		finished := created.Add(g.lognormal(4*time.Minute, 0.3))
		status := "success"
		switch r := g.rng.IntN(100); {
		case r < 8:
			status = "failed"
		case r < 10:
			status = "canceled"
		}
		user := g.author()
		if status == "success" && env.tier == "production" {
			prodFinished = append(prodFinished, finished)
		}
		g.emit(change.Event{ID: change.DeploymentID(p, id), Kind: change.KindDeployment,
			Title: fmt.Sprintf("Deploy to %s", env.name), State: status, Author: user,
			WebURL: g.url("/-/environments/%d/deployments/%d", env.id, id), Ref: "main", SHA: g.sha(),
			CreatedAt: created, UpdatedAt: finished, OccurredAt: finished,
			Attrs: map[string]any{"iid": int64(i + 1), "environment": env.name, "environment_id": env.id, "status": status,
				"finished_at": finished, "deployable": map[string]any{"id": id, "name": "deploy", "status": status}},
			Transitions: []change.Transition{{State: "created", At: created}, {State: "running", At: created.Add(time.Second)},
				{State: status, At: finished}}})
	}

	// Issues: incidents opened within hours after a production
	// deployment, most closed; and ordinary issues.
	for i := range historyIncidents + historyIssues {
		iid := int64(i + 1)
		incident := i < historyIncidents
		var created time.Time
		if incident && len(prodFinished) > 0 {
			created = prodFinished[g.rng.IntN(len(prodFinished))].Add(g.lognormal(2*time.Hour, 1))
		} else {
			created = g.between(historyStart, historyEnd)
		}
		if !created.Before(historyEnd) {
			created = historyEnd.Add(-time.Hour)
		}
		typ, labels, title := "issue", []string{"bug"}, "Export times out for large groups"
		if incident {
			typ, labels, title = "incident", []string{"incident", "sev2"}, "Checkout errors after deploy"
		}
		attrs := map[string]any{"iid": iid, "issue_type": typ, "labels": labels, "confidential": false,
			"description": "Customers report failures; see the linked dashboards.", "user_notes_count": g.rng.IntN(8)}
		e := change.Event{ID: change.IssueID(p, iid), Kind: change.KindIssue, Title: title, State: "opened", Author: g.author(),
			WebURL: g.url("/-/issues/%d", iid), CreatedAt: created, UpdatedAt: created,
			Transitions: []change.Transition{{State: "opened", At: created}}}
		if g.rng.IntN(100) < 85 {
			closed := created.Add(g.lognormal(3*time.Hour, 1.3))
			if closed.Before(historyEnd) {
				attrs["closed_at"] = closed
				e.State, e.UpdatedAt = "closed", closed
				e.Transitions = append(e.Transitions, change.Transition{State: "closed", At: closed})
			}
		}
		e.Attrs = attrs
		g.emit(e)
	}

	// Commits on main make up the rest.
	for range historyCommits {
		sha := g.sha()
		at := g.between(historyStart, historyEnd)
		g.emit(change.Event{ID: change.CommitID(p, sha), Kind: change.KindCommit, Title: "Retry the upstream call with backoff",
			State: "committed", WebURL: g.url("/-/commit/%s", sha), Ref: "main", SHA: sha, CreatedAt: at, UpdatedAt: at,
			Attrs: map[string]any{"message": "Retry the upstream call with backoff\n\nCloses #12.", "author_name": "A Developer",
				"author_email": "dev@example.com", "authored_date": at, "committed_date": at, "additions": g.rng.IntN(200),
				"deletions": g.rng.IntN(80), "branch": "main", "parent_ids": []string{g.sha()}},
			Transitions: []change.Transition{{State: "committed", At: at}}})
	}
	if len(g.out) != historyPerProject {
		panic(fmt.Sprintf("project %d: %d events, want %d", p, len(g.out), historyPerProject))
	}
	return g.out
}

func minT(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// seedHistory stores the whole history in st, historyBatch events per
// Upsert, telling how far it got.
func seedHistory(tb testing.TB, name string, st store.Store) {
	ctx := context.Background()
	ps := make([]store.Project, 0, historyProjects)
	for p := int64(1); p <= historyProjects; p++ {
		ps = append(ps, store.Project{ID: p, Path: historyPath(p), Name: fmt.Sprintf("service-%d", p)})
	}
	if err := st.PutProjects(ctx, ps...); err != nil {
		tb.Fatal(err)
	}
	start, stored := time.Now(), 0
	for p := int64(1); p <= historyProjects; p++ {
		es := historyEvents(p)
		for i := 0; i < len(es); i += historyBatch {
			if _, err := st.Upsert(ctx, es[i:min(i+historyBatch, len(es))]...); err != nil {
				tb.Fatalf("seed %s: %v", name, err)
			}
		}
		stored += len(es)
		if p%5 == 0 {
			el := time.Since(start)
			fmt.Fprintf(os.Stderr, "seeding %s: %d of %d events, %.0f s, %.0f events/s\n",
				name, stored, historyTotal, el.Seconds(), float64(stored)/el.Seconds())
		}
	}
}

// schemaKey names the migrations of both backends, so a store cached
// before an index changed is not reused.
func schemaKey(tb testing.TB) string {
	h := sha256.New()
	for _, dir := range []string{"../store/sqlite/migrations", "../store/postgres/migrations"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.sql"))
		if err != nil || len(files) == 0 {
			tb.Fatalf("migrations in %s: %v", dir, err)
		}
		sort.Strings(files)
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				tb.Fatal(err)
			}
			fmt.Fprintf(h, "%s %d\n", filepath.Base(f), len(b))
			h.Write(b)
		}
	}
	return fmt.Sprintf("v%d_%s", historyVersion, hex.EncodeToString(h.Sum(nil))[:10])
}

// historySQLite opens the cached SQLite history, seeding it first if
// there is none: under a temporary name, renamed when complete, so a
// killed run leaves no half-seeded file behind to be measured.
func historySQLite(b *testing.B) store.Store {
	ctx := context.Background()
	path := filepath.Join(os.TempDir(), "labtrail-metrics-bench-"+schemaKey(b)+".db")
	if _, err := os.Stat(path); err != nil {
		tmp := fmt.Sprintf("%s.seeding-%d", path, os.Getpid())
		b.Cleanup(func() {
			for _, suffix := range []string{"", "-wal", "-shm", "-migrate.lock"} {
				os.Remove(tmp + suffix)
			}
		})
		st, err := sqlite.Open(ctx, tmp)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		seedHistory(b, "sqlite", st)
		// Closing checkpoints the WAL into the file, which then holds
		// everything.
		if err := st.Close(); err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(os.Stderr, "seeded sqlite in %.0f s: %s\n", time.Since(start).Seconds(), path)
		if err := os.Rename(tmp, path); err != nil {
			b.Fatal(err)
		}
	}
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}

// historyPostgres opens the cached PostgreSQL history, a schema of its
// own, seeding it first if it is missing or was left incomplete (its
// marker table, created last, is missing).
func historyPostgres(b *testing.B) store.Store {
	ctx := context.Background()
	base := pgtest.ServerURL(b)
	schema := "labtrail_metrics_bench_" + schemaKey(b)
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		b.Fatalf("connect to %s: %v", pgtest.Env, err)
	}
	defer conn.Close(ctx)
	var complete bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, schema+".bench_seeded").Scan(&complete); err != nil {
		b.Fatal(err)
	}
	u, err := url.Parse(base)
	if err != nil {
		b.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	if !complete {
		for _, stmt := range []string{`DROP SCHEMA IF EXISTS ` + schema + ` CASCADE`, `CREATE SCHEMA ` + schema} {
			if _, err := conn.Exec(ctx, stmt); err != nil {
				b.Fatalf("%s: %v", stmt, err)
			}
		}
		st, err := postgres.Open(ctx, u.String())
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		seedHistory(b, "postgres", st)
		st.Close()
		for _, stmt := range []string{`ANALYZE`, `CREATE TABLE ` + schema + `.bench_seeded (at timestamptz NOT NULL DEFAULT now())`} {
			if _, err := conn.Exec(ctx, stmt); err != nil {
				b.Fatalf("%s: %v", stmt, err)
			}
		}
		fmt.Fprintf(os.Stderr, "seeded postgres in %.0f s: schema %s\n", time.Since(start).Seconds(), schema)
	}
	st, err := postgres.Open(ctx, u.String())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}

// BenchmarkMetricsEndpoints measures the delivery-metrics endpoints over
// real HTTP on loopback, each backend holding a year of 50 projects'
// history (1,000,000 events: 100,000 merge requests, 120,000 pipelines
// and 480,000 jobs, 20,000 deployments, 5,000 incidents), for the
// history's last 90 days over every project and over one. Each op is one
// request; p50-ms and p95-ms are over the op's requests (run with
// -benchtime 50x). The first run seeds the stores (minutes); later runs
// reuse them.
func BenchmarkMetricsEndpoints(b *testing.B) {
	since, until := historyEnd.AddDate(0, 0, -90), historyEnd
	window := url.Values{"since": {since.Format(time.RFC3339)}, "until": {until.Format(time.RFC3339)}}
	endpoints := []historyTarget{
		{"dora", "/api/v1/metrics/dora", window},
		{"merge-requests", "/api/v1/metrics/merge-requests", window},
		{"pipelines", "/api/v1/metrics/pipelines", window},
		// What changed in the 6 hours (the default) and the 30 days (the
		// most) before the history's end.
		{"changes-6h", "/api/v1/changes/before", url.Values{"at": {until.Format(time.RFC3339)}}},
		{"changes-30d", "/api/v1/changes/before", url.Values{"at": {until.Format(time.RFC3339)}, "window": {"720h"}}},
	}
	benchHistory(b, endpoints, benchEndpoint)
}

// historyTarget is a request a history benchmark makes: its name, path
// and parameters.
type historyTarget struct {
	name, path string
	query      url.Values
}

// benchHistory measures each target with measure, over every project and
// over one, on each backend's history, served over real HTTP with the
// delivery metrics on.
func benchHistory(b *testing.B, targets []historyTarget, measure func(*testing.B, string)) {
	scopes := []struct {
		name    string
		project []string
	}{{"all", nil}, {"project", []string{historyPath(7)}}}
	onHistory(b, func(b *testing.B, base string) {
		for _, ep := range targets {
			for _, sc := range scopes {
				q := url.Values{}
				for k, v := range ep.query {
					q[k] = v
				}
				if sc.project != nil {
					q["project"] = sc.project
				}
				target := base + ep.path + "?" + q.Encode()
				b.Run(ep.name+"/"+sc.name, func(b *testing.B) { measure(b, target) })
			}
		}
	})
}

// onHistory runs bench on each backend's history, served over real HTTP
// (at base) with the delivery metrics on.
func onHistory(b *testing.B, bench func(b *testing.B, base string)) {
	backends := []struct {
		name string
		open func(*testing.B) store.Store
	}{{"sqlite", historySQLite}, {"postgres", historyPostgres}}
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			st := be.open(b)
			srv := server.New(st, nil)
			srv.EnableMetrics(metrics.New(st, metrics.Config{}))
			hs := httptest.NewServer(srv)
			defer hs.Close()
			bench(b, hs.URL)
		})
	}
}

// benchEndpoint requests target once per op and reports the latency
// percentiles of the requests, each read to its end. One request first,
// not measured, checks the answer and logs its size.
func benchEndpoint(b *testing.B, target string) {
	client := &http.Client{}
	b.Logf("%s: %s", target, answerSummary(b, benchGet(b, client, target)))
	measureLatency(b, func() { benchGet(b, client, target) })
}

// benchGet GETs target and reads its answer to the end; anything but 200
// fails the benchmark.
func benchGet(b *testing.B, client *http.Client, target string) []byte {
	resp, err := client.Get(target)
	if err != nil {
		b.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("%s: status %d: %v %s", target, resp.StatusCode, err, body)
	}
	return body
}

// measureLatency calls get once per op and reports the latency
// percentiles of the calls.
func measureLatency(b *testing.B, get func()) {
	var lat []time.Duration
	cpu0 := cpuTime()
	for b.Loop() {
		start := time.Now()
		get()
		lat = append(lat, time.Since(start))
	}
	// The CPU time the process (server and client) spent per request:
	// on a machine shared with other work, latency measures the others
	// too; this does not, or much less.
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/float64(len(lat)), "cpu-ms/op")
	slices.Sort(lat)
	// Nearest rank, as the metrics' own percentiles.
	rank := func(q float64) time.Duration { return lat[max(0, int(math.Ceil(q*float64(len(lat))))-1)] }
	b.ReportMetric(float64(rank(0.5).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(rank(0.95).Microseconds())/1000, "p95-ms")
}

// cpuTime is the CPU time the process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// answerSummary says how much an answer held, so that a fast answer is
// seen not to be an empty one.
func answerSummary(b *testing.B, body []byte) string {
	var a struct {
		Deployments *[]json.RawMessage `json:"deployments"`
		Lead        *struct {
			Changes int `json:"changes"`
		} `json:"lead_time"`
		TTR *struct {
			Incidents int `json:"incidents"`
		} `json:"time_to_restore"`
		Merged      *int               `json:"merged"`
		Pipelines   *int               `json:"pipelines"`
		FailingJobs *[]json.RawMessage `json:"failing_jobs"`
		FlakyJobs   *[]json.RawMessage `json:"flaky_jobs"`
		Changes     *[]json.RawMessage `json:"changes"`
		Truncated   bool               `json:"truncated"`
	}
	if err := json.Unmarshal(body, &a); err != nil {
		b.Fatal(err)
	}
	var parts []string
	if a.Deployments != nil && a.Lead != nil && a.TTR != nil {
		parts = append(parts, fmt.Sprintf("%d production deployments, %d changes, %d incidents",
			len(*a.Deployments), a.Lead.Changes, a.TTR.Incidents))
		if len(*a.Deployments) == 0 || a.Lead.Changes == 0 || a.TTR.Incidents == 0 {
			b.Fatalf("an empty answer: %s", parts[0])
		}
	}
	if a.Merged != nil {
		parts = append(parts, fmt.Sprintf("%d merged", *a.Merged))
	}
	if a.Pipelines != nil && a.FailingJobs != nil && a.FlakyJobs != nil {
		parts = append(parts, fmt.Sprintf("%d pipelines, %d failing and %d flaky jobs", *a.Pipelines, len(*a.FailingJobs), len(*a.FlakyJobs)))
	}
	if a.Changes != nil {
		parts = append(parts, fmt.Sprintf("%d changes (truncated %v)", len(*a.Changes), a.Truncated))
	}
	return fmt.Sprintf("%s; %d bytes", strings.Join(parts, ", "), len(body))
}
