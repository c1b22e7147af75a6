package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/store"
	"github.com/labtrail/labtrail/internal/store/sqlite"
)

// digestDB is a SQLite database holding two projects: team/app merged
// two merge requests and deployed to production once in the week from
// Monday 9 March 2026, one merge request the week before; team/lib
// merged one in that week.
func digestDB(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	db := filepath.Join(t.TempDir(), "digest.db")
	st, err := sqlite.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.PutProjects(ctx, store.Project{ID: 1, Path: "team/app", Name: "app", Status: store.ProjectActive},
		store.Project{ID: 2, Path: "team/lib", Name: "lib", Status: store.ProjectActive}); err != nil {
		t.Fatal(err)
	}
	week := time.Date(2026, 3, 9, 0, 0, 0, 0, time.UTC)
	var evs []change.Event
	mr := func(project, iid int64, merged time.Time) {
		path := map[int64]string{1: "team/app", 2: "team/lib"}[project]
		evs = append(evs, change.Event{ID: change.MergeRequestID(project, iid), Kind: change.KindMergeRequest, ProjectID: project,
			ProjectPath: path, Title: fmt.Sprintf("Change %d", iid), State: "merged", Author: "ada",
			WebURL:    fmt.Sprintf("https://gitlab.example.com/%s/-/merge_requests/%d", path, iid),
			CreatedAt: merged.Add(-time.Hour), UpdatedAt: merged, OccurredAt: merged, Source: change.SourcePoll,
			Attrs: map[string]any{"iid": iid, "target_branch": "main", "merged_at": merged.Format(time.RFC3339), "additions": 10 * iid, "deletions": 0}})
	}
	mr(1, 1, week.Add(26*time.Hour))
	mr(1, 2, week.Add(50*time.Hour))
	mr(1, 3, week.Add(-50*time.Hour))
	mr(2, 4, week.Add(30*time.Hour))
	done := week.Add(60 * time.Hour)
	evs = append(evs, change.Event{ID: change.DeploymentID(1, 1), Kind: change.KindDeployment, ProjectID: 1, ProjectPath: "team/app",
		State: "success", Ref: "main", SHA: strings.Repeat("a", 40), CreatedAt: done.Add(-time.Minute), UpdatedAt: done, OccurredAt: done,
		Source: change.SourcePoll, Attrs: map[string]any{"iid": 1, "environment": "production", "status": "success", "finished_at": done.Format(time.RFC3339)}})
	if _, err := st.Upsert(ctx, evs...); err != nil {
		t.Fatal(err)
	}
	return db
}

// TestDigestCommand makes the week's digest as a user would: on stdout,
// for a project and a group, to a receiver standing in for Slack (once:
// the second run sends nothing), as a dry run, and with bad input.
func TestDigestCommand(t *testing.T) {
	db := digestDB(t)
	for _, k := range []string{"LABTRAIL_SLACK_WEBHOOK_URL", "LABTRAIL_DIGEST_WEBHOOK_URL", "LABTRAIL_PUBLIC_URL", "LABTRAIL_WEBHOOK_URL", "LABTRAIL_DIGEST_TZ"} {
		t.Setenv(k, "")
	}
	cmd := func(args ...string) (int, string, string) {
		t.Helper()
		var out, errb bytes.Buffer
		code := run(append(append([]string{"digest"}, args...), "--db", db, "--at", "2026-03-18T10:00:00Z"), &out, &errb)
		return code, out.String(), errb.String()
	}

	code, out, errs := cmd("--period", "week")
	if code != 0 {
		t.Fatalf("stdout: %d %s", code, errs)
	}
	for _, want := range []string{"labtrail week digest: week of Monday 9 March 2026 to Sunday 15 March 2026", "all projects",
		"Merged: 3, +2 from 1", "production: 1, +1 from 0", "Change 2 (team/app, by ada, 20 lines, 0 files) https://gitlab.example.com/team/app/-/merge_requests/2"} {
		if !strings.Contains(out, want) {
			t.Errorf("%q is missing from:\n%s", want, out)
		}
	}
	if code, out, _ := cmd("--period", "week", "--project", "team/lib"); code != 0 || !strings.Contains(out, "Merged: 1, +1 from 0") ||
		!strings.Contains(out, "team/lib,") || strings.Contains(out, "Change 2") {
		t.Errorf("--project team/lib: %d\n%s", code, out)
	}
	if code, out, _ := cmd("--period", "week", "--group", "team", "--public-url", "https://lt.example.com/"); code != 0 ||
		!strings.Contains(out, "group team,") || !strings.Contains(out, "Merged: 3,") || !strings.Contains(out, "https://lt.example.com/?") {
		t.Errorf("--group team: %d\n%s", code, out)
	}
	if code, out, _ := cmd("--period", "day", "--tz", "Europe/Paris"); code != 0 || !strings.Contains(out, "Tuesday 17 March 2026") ||
		!strings.Contains(out, "(Europe/Paris)") {
		t.Errorf("a day in Paris: %d\n%s", code, out)
	}

	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{}, 2, "period must be day or week"},
		{[]string{"--period", "month"}, 2, "period must be day or week"},
		{[]string{"--period", "week", "--to", "email"}, 2, "--to must be slack, webhook or stdout"},
		{[]string{"--period", "week", "--to", "slack"}, 2, "LABTRAIL_SLACK_WEBHOOK_URL is not set"},
		{[]string{"--period", "week", "--project", "team/nope"}, 1, `unknown project "team/nope"`},
		{[]string{"--period", "week", "--group", "other"}, 1, `unknown group "other"`},
		{[]string{"--period", "week", "--tz", "Mars/Olympus"}, 2, "must be a time zone name"},
	} {
		if code, _, errs := cmd(c.args...); code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("%v: %d %q, want %d and %q", c.args, code, errs, c.code, c.want)
		}
	}

	// Slack: a receiver standing in for it.
	var mu sync.Mutex
	var bodies [][]byte
	status := http.StatusOK
	slack := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		bodies = append(bodies, b)
		w.WriteHeader(status)
		io.WriteString(w, "invalid_payload")
	}))
	defer slack.Close()
	posts := func() int { mu.Lock(); defer mu.Unlock(); return len(bodies) }
	t.Setenv("LABTRAIL_SLACK_WEBHOOK_URL", slack.URL+"/services/T1/B1/s3cr3t")

	code, out, errs = cmd("--period", "week", "--dry-run")
	if code != 0 || posts() != 0 || !strings.Contains(out, `"type": "header"`) || strings.Contains(out+errs, "s3cr3t") {
		t.Fatalf("dry run: %d, %d posts\n%s\n%s", code, posts(), out, errs)
	}
	status = http.StatusBadRequest
	if code, _, errs := cmd("--period", "week"); code != 1 || !strings.Contains(errs, "answered 400: invalid_payload") ||
		!strings.Contains(errs, "/services/***") || strings.Contains(errs, "s3cr3t") {
		t.Errorf("a refused post: %d %s", code, errs)
	}
	status = http.StatusOK
	if code, out, errs := cmd("--period", "week"); code != 0 || out != "" || posts() != 2 || !strings.Contains(errs, "slack: digest week:2026-03-09:UTC:all sent") {
		t.Fatalf("send: %d, %d posts\n%s\n%s", code, posts(), out, errs)
	}
	var msg struct {
		Blocks []json.RawMessage `json:"blocks"`
	}
	if err := json.Unmarshal(bodies[1], &msg); err != nil || len(msg.Blocks) < 5 {
		t.Errorf("slack got %v %s", err, bodies[1])
	}
	if code, _, errs := cmd("--period", "week"); code != 0 || posts() != 2 || !strings.Contains(errs, "was sent at") {
		t.Errorf("again: %d, %d posts, %s", code, posts(), errs)
	}
	// Another selection is another digest; stdout beside Slack.
	if code, out, _ := cmd("--period", "week", "--project", "team/lib", "--to", "slack,stdout"); code != 0 || posts() != 3 || !strings.Contains(out, "Merged: 1") {
		t.Errorf("team/lib to slack and stdout: %d, %d posts\n%s", code, posts(), out)
	}
}
