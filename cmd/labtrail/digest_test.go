package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/gitlabsim"
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

	// A database that is not there is not made, empty, to sum up.
	none := filepath.Join(t.TempDir(), "none.db")
	var out2, err2 bytes.Buffer
	if code := run([]string{"digest", "--period", "week", "--db", none}, &out2, &err2); code != 1 || !strings.Contains(err2.String(), "no database at") {
		t.Errorf("a missing database: %d %s", code, err2.String())
	}
	if _, err := os.Stat(none); err == nil {
		t.Error("the digest made a database")
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

// TestDigestSchedule reads LABTRAIL_DIGEST_SCHEDULE in LABTRAIL_DIGEST_TZ
// as serve does, and refuses a schedule with nowhere to send.
func TestDigestSchedule(t *testing.T) {
	for _, k := range []string{"LABTRAIL_SLACK_WEBHOOK_URL", "LABTRAIL_DIGEST_WEBHOOK_URL", "LABTRAIL_DIGEST_PERIOD"} {
		t.Setenv(k, "")
	}
	t.Setenv("LABTRAIL_DIGEST_SCHEDULE", "0 9 * * 1")
	t.Setenv("LABTRAIL_DIGEST_TZ", "Europe/Paris")
	conf := func(args ...string) (config, error) {
		fs := newFlagSet("serve", "serve", io.Discard)
		build := useSettings(fs, digestSettings, digestScheduleSettings)
		if err := fs.Parse(args); err != nil {
			return config{}, err
		}
		return build()
	}
	c, err := conf()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.scheduledDigest(nil, quietLog()); err == nil || !strings.Contains(err.Error(), "LABTRAIL_SLACK_WEBHOOK_URL") {
		t.Errorf("a schedule with nowhere to send: %v", err)
	}
	t.Setenv("LABTRAIL_DIGEST_WEBHOOK_URL", "https://example.com/hook")
	if c, err = conf(); err != nil {
		t.Fatal(err)
	}
	dg, err := c.scheduledDigest(nil, quietLog())
	if err != nil || dg == nil {
		t.Fatalf("scheduled digest: %v", err)
	}
	// Mondays at 9 in Paris: 8 UTC in winter, 7 UTC in summer (from 29
	// March 2026).
	for from, want := range map[time.Time]time.Time{
		time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC): time.Date(2026, 3, 16, 8, 0, 0, 0, time.UTC),
		time.Date(2026, 3, 16, 8, 0, 0, 0, time.UTC):  time.Date(2026, 3, 23, 8, 0, 0, 0, time.UTC),
		time.Date(2026, 3, 28, 12, 0, 0, 0, time.UTC): time.Date(2026, 3, 30, 7, 0, 0, 0, time.UTC),
	} {
		if got := dg.Schedule.Next(from); !got.Equal(want) {
			t.Errorf("after %s: %s, want %s", from, got.UTC(), want)
		}
	}
	// The week that ended last Monday at midnight in Paris.
	if got := dg.PeriodEnd(time.Date(2026, 3, 16, 8, 0, 0, 0, time.UTC)); !got.Equal(time.Date(2026, 3, 15, 23, 0, 0, 0, time.UTC)) {
		t.Errorf("period end %s", got.UTC())
	}
	t.Setenv("LABTRAIL_DIGEST_SCHEDULE", "every monday")
	if _, err := conf(); err == nil || !strings.Contains(err.Error(), "LABTRAIL_DIGEST_SCHEDULE must be a cron expression") {
		t.Errorf("a bad schedule: %v", err)
	}
	if _, err := conf("--digest-period", "month"); err == nil {
		t.Error("a month period was taken")
	}
}

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestServeSendsTheScheduledDigest runs serve with a digest due every
// second: the JSON webhook gets yesterday's digest once, and sync status
// says it was sent.
func TestServeSendsTheScheduledDigest(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a labtrail process")
	}
	t.Parallel()
	_, simURL := startSim(t, gitlabsim.Options{Seed: 3, Projects: 1, MRs: 5, Pipelines: 5})
	var mu sync.Mutex
	var keys []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var d struct {
			Key string `json:"key"`
		}
		if err := json.NewDecoder(r.Body).Decode(&d); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		keys = append(keys, d.Key)
		mu.Unlock()
	}))
	defer hook.Close()
	got := func() []string { mu.Lock(); defer mu.Unlock(); return slices.Clone(keys) }

	db := filepath.Join(t.TempDir(), "labtrail.db")
	cmd := exec.Command(os.Args[0], "serve", "--addr", "127.0.0.1:0", "--poll-interval", "3600")
	cmd.Env = append(os.Environ(), "LABTRAIL_E2E_MAIN=1", "GITLAB_URL="+simURL, "GITLAB_TOKEN="+simToken,
		"LABTRAIL_DB="+db, "LABTRAIL_LOG_LEVEL=info", "REPOS=", "LABTRAIL_AUTH=off",
		"LABTRAIL_DIGEST_SCHEDULE=@every 1s", "LABTRAIL_DIGEST_PERIOD=day", "LABTRAIL_DIGEST_TZ=UTC",
		"LABTRAIL_DIGEST_WEBHOOK_URL="+hook.URL+"/hooks/labtrail/s3cr3t", "LABTRAIL_SLACK_WEBHOOK_URL=")
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("labtrail serve output:\n%s", logs.String())
		}
	})
	want := "day:" + time.Now().UTC().AddDate(0, 0, -1).Format(time.DateOnly) + ":UTC:all"
	for deadline := time.Now().Add(60 * time.Second); len(got()) == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no digest posted")
		}
	}
	time.Sleep(3 * time.Second) // three more rounds of the schedule
	if k := got(); len(k) != 1 || (k[0] != want && !strings.HasPrefix(k[0], "day:"+time.Now().UTC().Format(time.DateOnly))) {
		t.Fatalf("posted %v, want once %s", k, want)
	}
	m := regexp.MustCompile(`labtrail serving on (\S+)`).FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("no address in:\n%s", logs.String())
	}
	var status struct {
		Digests []struct {
			Key, Destination, State string
		} `json:"digests"`
	}
	getJSON(t, strings.TrimRight(m[1], "/")+"/api/v1/sync/status", &status)
	if len(status.Digests) != 1 || status.Digests[0].State != "sent" || status.Digests[0].Destination != "webhook" {
		t.Errorf("sync status: %+v", status.Digests)
	}
	if strings.Contains(logs.String(), "s3cr3t") || !strings.Contains(logs.String(), "scheduled digest") {
		t.Errorf("log:\n%s", logs.String())
	}
}
