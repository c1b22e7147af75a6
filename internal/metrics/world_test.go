package metrics_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/store"
	"github.com/labtrail/labtrail/internal/store/postgres"
	"github.com/labtrail/labtrail/internal/store/sqlite"
)

// The scenarios are GitLab objects written as change.Events, stored in a
// real SQLite store (which derives the facts the metrics read), with times
// chosen so that every figure can be worked out by hand in the test.

// since is a Monday, so weeks of the window start on it.
var since = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

// h is since plus hours.
func h(hours float64) time.Time { return since.Add(time.Duration(hours * float64(time.Hour))) }

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func projectPath(p int64) string {
	return map[int64]string{1: "g/app", 2: "g/svc", 3: "g/web"}[p]
}

type world struct{ events []change.Event }

func (w *world) add(e change.Event) {
	if e.UpdatedAt.IsZero() {
		e.UpdatedAt = e.CreatedAt
	}
	e.ProjectPath = projectPath(e.ProjectID)
	e.OccurredAt = e.UpdatedAt
	e.Source = change.SourcePoll
	w.events = append(w.events, e)
}

func (w *world) env(project, id int64, name, tier string) {
	w.add(change.Event{ID: change.EnvironmentID(project, id), Kind: change.KindEnvironment, ProjectID: project,
		Title: name, State: "available", CreatedAt: h(-1000),
		Attrs: map[string]any{"name": name, "tier": tier}})
}

type approval struct {
	user string
	at   time.Time
}

type mrSpec struct {
	project, iid             int64
	author, target, state    string
	created, merged, firstAt time.Time
	approvals                []approval
	adds, dels, files        int
}

func (w *world) mr(s mrSpec) {
	attrs := map[string]any{"iid": s.iid, "target_branch": s.target, "additions": s.adds, "deletions": s.dels}
	updated := s.created
	state := s.state
	if !s.merged.IsZero() {
		attrs["merged_at"] = stamp(s.merged)
		updated, state = s.merged, "merged"
	}
	if state == "" {
		state = "opened"
	}
	if !s.firstAt.IsZero() {
		attrs["first_commit_at"] = stamp(s.firstAt)
	}
	var aps []map[string]any
	for _, a := range s.approvals {
		aps = append(aps, map[string]any{"user": a.user, "approved_at": stamp(a.at)})
	}
	attrs["approvals"] = aps
	var files []map[string]any
	for i := range s.files {
		files = append(files, map[string]any{"path": "f" + string(rune('a'+i)), "additions": 0, "deletions": 0})
	}
	attrs["changed_files"] = files
	w.add(change.Event{ID: change.MergeRequestID(s.project, s.iid), Kind: change.KindMergeRequest, ProjectID: s.project,
		Title: "MR " + change.MergeRequestID(s.project, s.iid), State: state, Author: s.author,
		CreatedAt: s.created, UpdatedAt: updated, Attrs: attrs})
}

func (w *world) note(project, id, iid int64, author string, at time.Time, system bool) {
	w.add(change.Event{ID: change.NoteID(project, id), Kind: change.KindNote, ProjectID: project, Author: author,
		State: "comment", CreatedAt: at,
		Attrs: map[string]any{"system": system, "noteable_type": "MergeRequest", "noteable_iid": iid}})
}

func (w *world) deploy(project, id int64, env, status, ref string, finished time.Time) {
	w.add(change.Event{ID: change.DeploymentID(project, id), Kind: change.KindDeployment, ProjectID: project,
		State: status, Ref: ref, SHA: "abc" + strings.Repeat("0", 4) + string(rune('a'+id%26)),
		CreatedAt: finished.Add(-10 * time.Minute), UpdatedAt: finished,
		Attrs: map[string]any{"iid": id, "environment": env, "status": status, "finished_at": stamp(finished)}})
}

func (w *world) issue(project, iid int64, typ string, labels []string, created, closed time.Time) {
	attrs := map[string]any{"iid": iid, "issue_type": typ, "labels": labels}
	state, updated := "opened", created
	if !closed.IsZero() {
		attrs["closed_at"] = stamp(closed)
		state, updated = "closed", closed
	}
	w.add(change.Event{ID: change.IssueID(project, iid), Kind: change.KindIssue, ProjectID: project, State: state,
		CreatedAt: created, UpdatedAt: updated, Attrs: attrs})
}

func (w *world) pipeline(project, id int64, ref, status string, created time.Time, duration, queued *float64) {
	attrs := map[string]any{"iid": id, "status": status}
	if duration != nil {
		attrs["duration"] = *duration
	}
	if queued != nil {
		attrs["queued_duration"] = *queued
	}
	w.add(change.Event{ID: change.PipelineID(project, id), Kind: change.KindPipeline, ProjectID: project, State: status,
		Ref: ref, SHA: "0123456", CreatedAt: created, Attrs: attrs})
}

func (w *world) job(project, id int64, name, stage, status, reason, sha string, created time.Time) {
	w.add(change.Event{ID: change.JobID(project, id), Kind: change.KindJob, ProjectID: project, Title: name,
		State: status, SHA: sha, CreatedAt: created, UpdatedAt: created.Add(time.Minute),
		Attrs: map[string]any{"name": name, "stage": stage, "status": status, "failure_reason": reason,
			"pipeline_id": 1000 + id}})
}

// store opens a new SQLite store holding the world's events.
func (w *world) store(t *testing.T) store.MetricsStore {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if len(w.events) > 0 {
		if _, err := st.Upsert(ctx, w.events...); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

func f(v float64) *float64 { return &v }

// sameJSON asserts that got and want marshal to the same JSON: the answer
// as the API serves it, every field compared.
func sameJSON(t *testing.T, got, want any) {
	t.Helper()
	g, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	w, err := json.MarshalIndent(want, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if string(g) != string(w) {
		gl, wl := strings.Split(string(g), "\n"), strings.Split(string(w), "\n")
		for i := 0; i < len(gl) || i < len(wl); i++ {
			var a, b string
			if i < len(gl) {
				a = gl[i]
			}
			if i < len(wl) {
				b = wl[i]
			}
			if a != b {
				t.Errorf("line %d: got %s, want %s", i+1, strings.TrimSpace(a), strings.TrimSpace(b))
				break
			}
		}
		t.Errorf("got\n%s\nwant\n%s", g, w)
	}
}

// keys returns the JSON object keys of v's marshalled form at path (dotted).
func jsonObject(t *testing.T, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// postgresStore opens a PostgreSQL store on a schema of its own holding
// the world's events, when LABTRAIL_TEST_POSTGRES_URL names a server.
func (w *world) postgresStore(t *testing.T) store.MetricsStore {
	t.Helper()
	base := os.Getenv("LABTRAIL_TEST_POSTGRES_URL")
	if base == "" {
		t.Skip("LABTRAIL_TEST_POSTGRES_URL not set: skipping PostgreSQL")
	}
	ctx := context.Background()
	var b [6]byte
	rand.Read(b[:])
	schema := "lt_metrics_" + hex.EncodeToString(b[:])
	exec := func(sql string) {
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	exec(`CREATE SCHEMA ` + schema)
	t.Cleanup(func() { exec(`DROP SCHEMA ` + schema + ` CASCADE`) })
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	st, err := postgres.Open(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Upsert(ctx, w.events...); err != nil {
		t.Fatal(err)
	}
	return st
}
