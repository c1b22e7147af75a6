package digest_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/store"
	"github.com/labtrail/labtrail/internal/store/postgres"
	"github.com/labtrail/labtrail/internal/store/postgres/pgtest"
	"github.com/labtrail/labtrail/internal/store/sqlite"
)

// The world: GitLab objects written as change.Events over two weeks, the
// previous one from Monday 2 March 2026 and the last complete one from
// Monday 9 March, seen on Wednesday 18 March.
var (
	prevWeek = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	lastWeek = time.Date(2026, 3, 9, 0, 0, 0, 0, time.UTC)
	thisWeek = time.Date(2026, 3, 16, 0, 0, 0, 0, time.UTC)
	now      = time.Date(2026, 3, 18, 10, 0, 0, 0, time.UTC)
)

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

type world struct{ events []change.Event }

func (w *world) add(e change.Event) {
	if e.UpdatedAt.IsZero() {
		e.UpdatedAt = e.CreatedAt
	}
	e.ProjectPath = fmt.Sprintf("team/p%d", e.ProjectID)
	e.OccurredAt, e.Source = e.UpdatedAt, change.SourcePoll
	w.events = append(w.events, e)
}

func (w *world) env(project, id int64, name, tier string) {
	w.add(change.Event{ID: change.EnvironmentID(project, id), Kind: change.KindEnvironment, ProjectID: project,
		Title: name, State: "available", CreatedAt: prevWeek.AddDate(0, -1, 0), Attrs: map[string]any{"name": name, "tier": tier}})
}

func (w *world) mr(project, iid int64, title string, created, merged time.Time, lines, files int) {
	attrs := map[string]any{"iid": iid, "target_branch": "main", "additions": lines, "deletions": 0}
	state, updated := "opened", created
	if !merged.IsZero() {
		attrs["merged_at"], state, updated = stamp(merged), "merged", merged
	}
	var fs []map[string]any
	for i := 0; i < files; i++ {
		fs = append(fs, map[string]any{"path": fmt.Sprintf("f%d", i), "additions": 0, "deletions": 0})
	}
	attrs["changed_files"] = fs
	w.add(change.Event{ID: change.MergeRequestID(project, iid), Kind: change.KindMergeRequest, ProjectID: project,
		Title: title, State: state, Author: "dev" + fmt.Sprint(iid%3),
		WebURL:    fmt.Sprintf("https://gitlab.example.com/team/p%d/-/merge_requests/%d", project, iid),
		CreatedAt: created, UpdatedAt: updated, Attrs: attrs})
}

func (w *world) deploy(project, id int64, env string, finished time.Time) {
	w.add(change.Event{ID: change.DeploymentID(project, id), Kind: change.KindDeployment, ProjectID: project,
		State: "success", Ref: "main", SHA: fmt.Sprintf("%040d", id), CreatedAt: finished.Add(-10 * time.Minute), UpdatedAt: finished,
		Attrs: map[string]any{"iid": id, "environment": env, "status": "success", "finished_at": stamp(finished)}})
}

func (w *world) incident(project, iid int64, title string, created, closed time.Time) {
	attrs := map[string]any{"iid": iid, "issue_type": "incident", "labels": []string{}}
	state, updated := "opened", created
	if !closed.IsZero() {
		attrs["closed_at"], state, updated = stamp(closed), "closed", closed
	}
	w.add(change.Event{ID: change.IssueID(project, iid), Kind: change.KindIssue, ProjectID: project, Title: title, State: state,
		WebURL:    fmt.Sprintf("https://gitlab.example.com/team/p%d/-/issues/%d", project, iid),
		CreatedAt: created, UpdatedAt: updated, Attrs: attrs})
}

func (w *world) pipeline(project, id int64, status string, created time.Time) {
	w.add(change.Event{ID: change.PipelineID(project, id), Kind: change.KindPipeline, ProjectID: project, State: status,
		Ref: "main", SHA: "0123456", CreatedAt: created, Attrs: map[string]any{"iid": id, "status": status}})
}

func (w *world) job(project, id int64, name, status string, created time.Time) {
	w.add(change.Event{ID: change.JobID(project, id), Kind: change.KindJob, ProjectID: project, Title: name,
		State: status, SHA: fmt.Sprintf("%07d", id), CreatedAt: created, UpdatedAt: created.Add(time.Minute),
		Attrs: map[string]any{"name": name, "stage": "test", "status": status, "failure_reason": "script_failure", "pipeline_id": 1000 + id}})
}

// team is the world most tests use; the comments give what the digest of
// the week from 9 March must say.
func team() *world {
	w := &world{}
	day := func(base time.Time, d int, h int) time.Time {
		return base.AddDate(0, 0, d).Add(time.Duration(h) * time.Hour)
	}
	w.env(1, 1, "production", "production")
	w.env(1, 2, "staging", "staging")
	// Deployments: production 3 (1 before), staging 2 (none before),
	// review/a none (1 before).
	w.deploy(1, 1, "production", day(lastWeek, 0, 10))
	w.deploy(1, 2, "production", day(lastWeek, 2, 10))
	w.deploy(1, 3, "production", day(lastWeek, 4, 10))
	w.deploy(1, 4, "staging", day(lastWeek, 1, 9))
	w.deploy(1, 5, "staging", day(lastWeek, 3, 9))
	w.deploy(1, 6, "production", day(prevWeek, 2, 10))
	w.deploy(1, 7, "review/a", day(prevWeek, 3, 10))
	// Merged: 6 (2 before); sizes 100..600 lines, the largest "Feature 6".
	for i := int64(1); i <= 6; i++ {
		w.mr(1, i, fmt.Sprintf("Feature %d", i), day(lastWeek, -2, 0), day(lastWeek, int(i%5), 8), int(i)*100, int(i))
	}
	w.mr(1, 7, "Old one", day(prevWeek, 0, 0), day(prevWeek, 1, 8), 50, 1)
	w.mr(1, 8, "Old two", day(prevWeek, 0, 0), day(prevWeek, 2, 8), 60, 1)
	// Open, oldest first: "Stuck" then "Waiting".
	w.mr(1, 9, "Stuck", day(prevWeek, -20, 0), time.Time{}, 10, 1)
	w.mr(1, 10, "Waiting", day(lastWeek, 1, 0), time.Time{}, 10, 1)
	// Pipelines: 4 with 2 failed (3 with 1 failed before).
	w.pipeline(1, 1, "success", day(lastWeek, 0, 9))
	w.pipeline(1, 2, "failed", day(lastWeek, 1, 9))
	w.pipeline(1, 3, "failed", day(lastWeek, 2, 9))
	w.pipeline(1, 4, "success", day(lastWeek, 3, 9))
	w.pipeline(1, 5, "failed", day(prevWeek, 1, 9))
	w.pipeline(1, 6, "success", day(prevWeek, 2, 9))
	w.pipeline(1, 7, "success", day(prevWeek, 3, 9))
	// Jobs: "test" failed 3 times of 4, "lint" once of 1.
	w.job(1, 1, "test", "failed", day(lastWeek, 1, 9))
	w.job(1, 2, "test", "failed", day(lastWeek, 2, 9))
	w.job(1, 3, "test", "failed", day(lastWeek, 3, 9))
	w.job(1, 4, "test", "success", day(lastWeek, 4, 9))
	w.job(1, 5, "lint", "failed", day(lastWeek, 1, 9))
	// Incidents: "Outage" opened before and still open; "Blip" opened and
	// closed in the week.
	w.incident(1, 1, "Outage", day(prevWeek, 3, 12), time.Time{})
	w.incident(1, 2, "Blip", day(lastWeek, 2, 12), day(lastWeek, 2, 14))
	return w
}

// sqliteStore opens a SQLite store at path holding the world's events.
func (w *world) sqliteStore(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if len(w.events) > 0 {
		if _, err := st.Upsert(context.Background(), w.events...); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

func (w *world) store(t *testing.T) store.Store {
	return w.sqliteStore(t, filepath.Join(t.TempDir(), "labtrail.db"))
}

// backends are the stores the send records are tested on: SQLite always,
// PostgreSQL when LABTRAIL_TEST_POSTGRES_URL names a server.
var backends = []struct {
	name string
	open func(t *testing.T, w *world) (store.Store, func() store.Store)
}{
	{"sqlite", func(t *testing.T, w *world) (store.Store, func() store.Store) {
		path := filepath.Join(t.TempDir(), "labtrail.db")
		return w.sqliteStore(t, path), func() store.Store { return (&world{}).sqliteStore(t, path) }
	}},
	{"postgres", func(t *testing.T, w *world) (store.Store, func() store.Store) {
		u := pgtest.SchemaURL(t)
		open := func() store.Store {
			st, err := postgres.Open(context.Background(), u)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		}
		st := open()
		if _, err := st.Upsert(context.Background(), w.events...); err != nil {
			t.Fatal(err)
		}
		return st, open
	}},
}

func contains(t *testing.T, s string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(s, w) {
			t.Errorf("%q is missing from:\n%s", w, s)
		}
	}
}
