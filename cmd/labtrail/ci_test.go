package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labtrail/labtrail/ci"
	"github.com/labtrail/labtrail/internal/auth"
	"github.com/labtrail/labtrail/internal/server"
	"github.com/labtrail/labtrail/internal/store"
	"github.com/labtrail/labtrail/internal/store/sqlite"
)

// ciServer is labtrail's API with access control on, over a store that
// syncs project 42 (group/app), and a deploy token.
func ciServer(t *testing.T) (*httptest.Server, *sqlite.Store, string) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "l.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.PutProjects(ctx, store.Project{ID: 42, Path: "group/app", Name: "app", Status: store.ProjectActive}); err != nil {
		t.Fatal(err)
	}
	api := server.New(st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	tokens := auth.NewTokens(st)
	api.EnableAuth(tokens, server.AuthOptions{Audit: st})
	raw, _, err := tokens.Create(ctx, "ci", auth.ScopeDeploy, 0)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(api)
	t.Cleanup(hs.Close)
	return hs, st, raw
}

// ciEnv sets what GitLab sets in a deploy job of branch feature-x to
// review/feature-x, and labtrail's settings.
func ciEnv(t *testing.T, labtrailURL, token string) {
	t.Setenv("LABTRAIL_URL", labtrailURL)
	t.Setenv("LABTRAIL_DEPLOY_TOKEN", token)
	for k, v := range map[string]string{
		"CI_PROJECT_ID": "42", "CI_PROJECT_PATH": "group/app",
		"CI_COMMIT_SHA": "0123456789abcdef0123456789abcdef01234567", "CI_COMMIT_REF_NAME": "feature-x",
		"CI_ENVIRONMENT_NAME": "review/feature-x", "CI_ENVIRONMENT_URL": "https://feature-x.review.example.com",
		"CI_ENVIRONMENT_ACTION": "start", "CI_JOB_ID": "7001", "CI_JOB_URL": "https://gitlab.example.com/group/app/-/jobs/7001",
		"CI_PIPELINE_ID": "700", "GITLAB_USER_LOGIN": "alice", "CI_JOB_STARTED_AT": "2026-12-01T10:00:00Z",
		"CI_JOB_STATUS": "",
	} {
		t.Setenv(k, v)
	}
}

func runCmd(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestCIReportDeployThenStop(t *testing.T) {
	hs, st, tok := ciServer(t)
	ciEnv(t, hs.URL, tok)
	ctx := context.Background()
	const id = "deployment-42-ext-review/feature-x-7001"

	// Before the deploy step: running.
	if code, out, errs := runCmd("ci", "report", "--status", "running"); code != 0 || !strings.Contains(out, id) {
		t.Fatalf("running: exit %d, %s %s", code, out, errs)
	}
	if ev, _, err := st.Get(ctx, id); err != nil || ev.State != "running" || ev.Author != "alice" || ev.Ref != "feature-x" {
		t.Fatalf("after running: %+v %v", ev, err)
	}
	// after_script: the status from CI_JOB_STATUS.
	t.Setenv("CI_JOB_STATUS", "success")
	if code, out, errs := runCmd("ci", "report"); code != 0 {
		t.Fatalf("success: exit %d, %s %s", code, out, errs)
	}
	ev, tl, err := st.Get(ctx, id)
	if err != nil || ev.State != "success" || ev.Attrs["url"] != "https://feature-x.review.example.com" || len(tl) != 3 {
		t.Fatalf("after success: %+v %+v %v", ev, tl, err)
	}
	env, _, err := st.Get(ctx, "environment-42-ext-review/feature-x")
	if err != nil || env.State != "available" {
		t.Fatalf("review environment: %+v %v", env, err)
	}
	// The stop job: another job, environment action stop.
	t.Setenv("CI_ENVIRONMENT_ACTION", "stop")
	t.Setenv("CI_JOB_ID", "7002")
	t.Setenv("CI_ENVIRONMENT_URL", "")
	t.Setenv("CI_JOB_STARTED_AT", time.Now().UTC().Format(time.RFC3339))
	if code, out, errs := runCmd("ci", "report"); code != 0 {
		t.Fatalf("stop: exit %d, %s %s", code, out, errs)
	}
	if env, _, err = st.Get(ctx, "environment-42-ext-review/feature-x"); err != nil || env.State != "stopped" {
		t.Fatalf("review environment after stop: %+v %v", env, err)
	}
	// Flags override the variables.
	if code, out, errs := runCmd("ci", "report", "--environment", "production", "--status", "failed", "--job-id", "7003",
		"--action", "deploy", "--url", "https://app.example.com"); code != 0 || !strings.Contains(out, "deployment-42-ext-production-7003 (failed)") {
		t.Fatalf("with flags: exit %d, %s %s", code, out, errs)
	}
	// GitLab's prepare action deploys nothing.
	t.Setenv("CI_ENVIRONMENT_ACTION", "prepare")
	if code, out, _ := runCmd("ci", "report"); code != 0 || !strings.Contains(out, "nothing to report") {
		t.Errorf("prepare: exit %d, %s", code, out)
	}
}

func TestCIReportLabtrailDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there any more
	ciEnv(t, down, "lt_x")
	old := ciRetryWait
	ciRetryWait = time.Millisecond
	t.Cleanup(func() { ciRetryWait = old })

	code, _, errs := runCmd("ci", "report", "--status", "success")
	if code != 0 || !strings.Contains(errs, "WARNING") || !strings.Contains(errs, "cannot be reached") {
		t.Errorf("labtrail down: exit %d, stderr %s; want 0 and a warning", code, errs)
	}
	if strings.Count(errs, "trying again") != 2 {
		t.Errorf("want 3 attempts (2 retries): %s", errs)
	}
	code, _, errs = runCmd("ci", "report", "--status", "success", "--strict")
	if code != 1 || strings.Contains(errs, "WARNING") {
		t.Errorf("labtrail down with --strict: exit %d, stderr %s; want 1 without a warning", code, errs)
	}
	// A report labtrail refuses (a bad token) is a warning too, not retried.
	hs, _, _ := ciServer(t)
	t.Setenv("LABTRAIL_URL", hs.URL)
	code, _, errs = runCmd("ci", "report", "--status", "success")
	if code != 0 || !strings.Contains(errs, "401") || strings.Contains(errs, "trying again") {
		t.Errorf("bad token: exit %d, stderr %s", code, errs)
	}
	if code, _, _ = runCmd("ci", "report", "--status", "success", "--strict"); code != 1 {
		t.Errorf("bad token with --strict: exit %d", code)
	}
	// Settings missing: a warning; a bad status: a warning naming it.
	t.Setenv("CI_ENVIRONMENT_NAME", "")
	if code, _, errs = runCmd("ci", "report"); code != 0 || !strings.Contains(errs, "CI_ENVIRONMENT_NAME") {
		t.Errorf("no environment: exit %d, stderr %s", code, errs)
	}
	t.Setenv("CI_ENVIRONMENT_NAME", "production")
	if code, _, errs = runCmd("ci", "report", "--status", "done", "--strict"); code != 1 || !strings.Contains(errs, "status") {
		t.Errorf("bad status with --strict: exit %d, stderr %s", code, errs)
	}
}

func TestCIReportRetriesBriefly(t *testing.T) {
	hs, st, tok := ciServer(t)
	var calls atomic.Int32
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			http.Error(w, `{"error": "restarting"}`, http.StatusServiceUnavailable)
			return
		}
		proxy, _ := http.NewRequest(r.Method, hs.URL+r.URL.Path, r.Body)
		proxy.Header = r.Header
		resp, err := http.DefaultClient.Do(proxy)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	t.Cleanup(flaky.Close)
	ciEnv(t, flaky.URL, tok)
	old := ciRetryWait
	ciRetryWait = time.Millisecond
	t.Cleanup(func() { ciRetryWait = old })
	if code, out, errs := runCmd("ci", "report", "--status", "success", "--strict"); code != 0 {
		t.Fatalf("exit %d: %s %s", code, out, errs)
	}
	if calls.Load() != 2 {
		t.Errorf("%d calls, want 2 (one 503, one retry)", calls.Load())
	}
	if n, _ := st.Count(context.Background(), "deployment"); n != 1 {
		t.Errorf("%d deployments stored, want 1", n)
	}
}

// The template's jobs, run as a runner runs them (before_script, script,
// then after_script in a shell of its own with CI_JOB_STATUS), with this
// test binary standing in for labtrail: a review deploy that succeeds, one
// that fails, then the manual stop.
func TestCITemplateJobsReport(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	hs, st, tok := ciServer(t)
	ciEnv(t, hs.URL, tok)
	jobs, vars, err := ci.Jobs(ci.Template)
	if err != nil {
		t.Fatal(err)
	}
	runJob := func(name string, env map[string]string) (status string) {
		t.Helper()
		j, err := ci.Resolve(jobs, name)
		if err != nil {
			t.Fatal(err)
		}
		base := os.Environ()
		for _, m := range []any{vars, j["variables"]} {
			vm, _ := m.(map[string]any)
			for k, v := range vm {
				base = append(base, fmt.Sprintf("%s=%v", k, v))
			}
		}
		base = append(base, "LABTRAIL_E2E_MAIN=1", "LABTRAIL_CLI="+os.Args[0])
		for k, v := range env {
			base = append(base, k+"="+v)
		}
		sh := func(lines []string, extra ...string) error {
			cmd := exec.Command("sh", "-e", "-c", strings.Join(lines, "\n"))
			cmd.Env = append(append([]string{}, base...), extra...)
			out, err := cmd.CombinedOutput()
			t.Logf("%s: %s", name, out)
			return err
		}
		status = "success"
		if err := sh(ci.Lines(j["before_script"])); err != nil {
			status = "failed"
		} else if err := sh(ci.Lines(j["script"])); err != nil {
			status = "failed"
		}
		if err := sh(ci.Lines(j["after_script"]), "CI_JOB_STATUS="+status); err != nil {
			t.Errorf("%s: after_script failed: %v", name, err)
		}
		return status
	}
	ctx := context.Background()
	if s := runJob("labtrail-review", map[string]string{"LABTRAIL_DEPLOY_SCRIPT": "echo deploying"}); s != "success" {
		t.Fatalf("review deploy: %s", s)
	}
	ev, tl, err := st.Get(ctx, "deployment-42-ext-review/feature-x-7001")
	if err != nil || ev.State != "success" || len(tl) != 3 || tl[1].State != "running" {
		t.Fatalf("review deployment: %+v %+v %v", ev, tl, err)
	}
	if s := runJob("labtrail-review", map[string]string{"LABTRAIL_DEPLOY_SCRIPT": "exit 3", "CI_JOB_ID": "7004"}); s != "failed" {
		t.Fatalf("failing deploy: %s", s)
	}
	if ev, _, err = st.Get(ctx, "deployment-42-ext-review/feature-x-7004"); err != nil || ev.State != "failed" {
		t.Fatalf("failed deployment: %+v %v", ev, err)
	}
	if s := runJob("labtrail-review-stop", map[string]string{"LABTRAIL_DEPLOY_SCRIPT": "true", "CI_ENVIRONMENT_ACTION": "stop",
		"CI_JOB_ID": "7005", "CI_JOB_STARTED_AT": time.Now().UTC().Format(time.RFC3339)}); s != "success" {
		t.Fatalf("stop: %s", s)
	}
	if env, _, err := st.Get(ctx, "environment-42-ext-review/feature-x"); err != nil || env.State != "stopped" {
		t.Fatalf("review environment after the stop job: %+v %v", env, err)
	}
	// labtrail down: the job still succeeds.
	if s := runJob("labtrail-production", map[string]string{"LABTRAIL_DEPLOY_SCRIPT": "true", "LABTRAIL_URL": "http://127.0.0.1:1", "LABTRAIL_REPORT_FLAGS": "--retries 2",
		"CI_ENVIRONMENT_NAME": "production"}); s != "success" {
		t.Errorf("a deploy with labtrail down: %s, want success", s)
	}
}
