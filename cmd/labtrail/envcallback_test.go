package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/gitlabsim"
	"github.com/labtrail/labtrail/internal/jobs"
	"github.com/labtrail/labtrail/internal/store"
)

// startCallbackServe runs `labtrail serve` with the environment URL
// callback on over a database synced from sim, and returns its address.
func startCallbackServe(t *testing.T, simURL, db string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := config{
		GitLabURL: simURL, Token: simToken, DB: db, Addr: addr,
		PollInterval: time.Hour, RequestsPerMinute: 1 << 30, HTTPTimeout: 30 * time.Second, Concurrency: 4,
		AuditRetention: time.Hour, FullSweep: -1, EnvironmentCallback: true,
		ShutdownTimeout: 5 * time.Second, QueueShutdownTimeout: 5 * time.Second,
	}
	ctx, cancel := context.WithCancel(context.Background())
	urlc, done := make(chan string, 1), make(chan error, 1)
	go func() {
		done <- serve(ctx, c, slog.New(slog.NewTextHandler(io.Discard, nil)), func(u string) { urlc <- u })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	select {
	case u := <-urlc:
		return strings.TrimSuffix(u, "/")
	case err := <-done:
		t.Fatalf("serve: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("serve did not start")
	}
	return ""
}

// syncedServe starts a simulator, syncs it once into a new database and
// runs serve (the callback on) over that database.
func syncedServe(t *testing.T, o gitlabsim.Options) (*gitlabsim.Sim, string) {
	t.Helper()
	sim, simURL := startSim(t, o)
	db := filepath.Join(t.TempDir(), "labtrail.db")
	if out, errOut, code := labtrail(t, syncEnv(simURL, db), "sync", "--once"); code != 0 {
		t.Fatalf("sync: %d\n%s%s", code, out, errOut)
	}
	return sim, startCallbackServe(t, simURL, db)
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); !ok(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not seen within a minute", what)
		}
	}
}

// writesTo are sim's environment writes to name (by the POST's name or
// the PUT's environment id).
func writesTo(sim *gitlabsim.Sim, name string, id int64) []gitlabsim.EnvironmentWrite {
	var out []gitlabsim.EnvironmentWrite
	for _, w := range sim.EnvironmentWrites() {
		if w.Method == http.MethodPost && w.Params["name"] == name || w.Method == http.MethodPut && w.EnvironmentID == id && id != 0 {
			out = append(out, w)
		}
	}
	return out
}

// TestEnvironmentCallback: with LABTRAIL_ENVIRONMENT_CALLBACK=true a
// successful reported deployment with a url sets its GitLab environment's
// external_url once (PUT for an environment GitLab has, POST for one it
// has not); a failure is retried by the queue and shown in the sync
// status meanwhile.
func TestEnvironmentCallback(t *testing.T) {
	if testing.Short() {
		t.Skip("runs serve against the simulator")
	}
	sim, base := syncedServe(t, gitlabsim.Options{Seed: 11, Projects: 1, MRs: 2, Pipelines: 2})
	var envs struct {
		Events []struct {
			ID          string `json:"id"`
			Title       string `json:"title"`
			ProjectID   int64  `json:"project_id"`
			ProjectPath string `json:"project_path"`
		} `json:"events"`
	}
	getJSON(t, base+"/api/v1/events?kind=environment", &envs)
	var prodID, pid int64
	var path string
	for _, e := range envs.Events {
		if e.Title == "production" {
			pid, path = e.ProjectID, e.ProjectPath
			prodID, _ = strconv.ParseInt(e.ID[strings.LastIndexByte(e.ID, '-')+1:], 10, 64)
		}
	}
	if prodID == 0 {
		t.Fatalf("no production environment synced: %+v", envs)
	}
	report := func(env, sha, url string, job int) int {
		t.Helper()
		body := `{"project": "` + path + `", "environment": "` + env + `", "sha": "` + sha + `", "status": "success", "url": "` + url +
			`", "job_id": ` + strconv.Itoa(job) + `}`
		resp, err := http.Post(base+"/api/v1/deployments", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	// An environment GitLab has: PUT.
	if code := report("production", "abcdef1", "https://v2.example.com", 501); code != http.StatusCreated {
		t.Fatalf("report: %d", code)
	}
	waitFor(t, "the PUT of production's URL", func() bool { return len(writesTo(sim, "production", prodID)) > 0 })
	w := writesTo(sim, "production", prodID)[0]
	if w.Method != http.MethodPut || w.ProjectID != pid || w.Params["external_url"] != "https://v2.example.com" || w.Status != http.StatusOK {
		t.Errorf("production's write: %+v", w)
	}
	// One GitLab has not: POST with the name.
	if code := report("review/callback", "abcdef1", "https://callback.review.example.com", 502); code != http.StatusCreated {
		t.Fatalf("report: %d", code)
	}
	waitFor(t, "the POST of review/callback", func() bool { return len(writesTo(sim, "review/callback", 0)) > 0 })
	if w := writesTo(sim, "review/callback", 0)[0]; w.Params["external_url"] != "https://callback.review.example.com" || w.Status != http.StatusCreated {
		t.Errorf("review/callback's write: %+v", w)
	}
	// A repeat of the first report writes nothing again.
	if code := report("production", "abcdef1", "https://v2.example.com", 501); code != http.StatusOK {
		t.Fatalf("repeat: %d", code)
	}

	// GitLab refuses (the token lost access): the failure shows in the
	// sync status; once GitLab takes it, the retry sets the URL.
	sim.SetProjectFault(path, http.StatusForbidden)
	if code := report("staging", "abcdef2", "https://staging.example.com", 503); code != http.StatusCreated {
		t.Fatalf("report: %d", code)
	}
	status := func() store.SyncState {
		var s struct {
			Sync []store.SyncState `json:"sync"`
		}
		getJSON(t, base+"/api/v1/sync/status", &s)
		for _, st := range s.Sync {
			if st.Kind == jobs.EnvironmentURLKind && st.ProjectID == pid {
				return st
			}
		}
		return store.SyncState{}
	}
	waitFor(t, "the callback's failure in the sync status", func() bool { return strings.Contains(status().LastError, "staging") })
	if st := status(); !strings.Contains(st.LastError, "403") && !strings.Contains(strings.ToLower(st.LastError), "forbidden") {
		t.Errorf("sync status error %q does not say GitLab refused", st.LastError)
	}
	sim.SetProjectFault(path, 0)
	waitFor(t, "the retried PUT of staging's URL", func() bool {
		for _, w := range sim.EnvironmentWrites() {
			if w.Params["external_url"] == "https://staging.example.com" && w.Status == http.StatusOK {
				return true
			}
		}
		return false
	})
	waitFor(t, "the sync status cleared", func() bool { return status().LastError == "" })
	if n := len(writesTo(sim, "production", prodID)); n != 1 {
		t.Errorf("production's URL written %d times, want once", n)
	}
}

// `labtrail check` says what the callback needs of the token: the api
// scope.
func TestCheckSaysCallbackNeedsAPIScope(t *testing.T) {
	_, simURL := startSim(t, gitlabsim.Options{Seed: 1, Projects: 1, MRs: 1, Pipelines: 1, Scopes: []string{"read_api"}})
	env := map[string]string{"GITLAB_URL": simURL, "GITLAB_TOKEN": simToken, "LABTRAIL_ENVIRONMENT_CALLBACK": "true"}
	out, errOut, code := labtrail(t, env, "check")
	if code != 1 || !strings.Contains(errOut, "api scope") || !strings.Contains(errOut, "read_api") {
		t.Errorf("check with a read_api token and the callback on: exit %d\n%s%s", code, out, errOut)
	}
	env["LABTRAIL_ENVIRONMENT_CALLBACK"] = "false"
	if _, errOut, code := labtrail(t, env, "check"); code != 0 {
		t.Errorf("check with the callback off: exit %d\n%s", code, errOut)
	}
	_, simURL = startSim(t, gitlabsim.Options{Seed: 1, Projects: 1, MRs: 1, Pipelines: 1})
	env = map[string]string{"GITLAB_URL": simURL, "GITLAB_TOKEN": simToken, "LABTRAIL_ENVIRONMENT_CALLBACK": "true"}
	if out, errOut, code := labtrail(t, env, "check"); code != 0 || !strings.Contains(out, "has the api scope") {
		t.Errorf("check with an api token: exit %d\n%s%s", code, out, errOut)
	}
}

// A deployment reported for the job of one of GitLab's own deployments (as
// the simulator has it, synced by the poller) is linked to it, shows both
// sources and leaves DORA's count as it was; a report of a job GitLab does
// not know adds one.
func TestReportReconciledWithGitLabDeployment(t *testing.T) {
	if testing.Short() {
		t.Skip("runs serve against the simulator")
	}
	_, base := syncedServe(t, gitlabsim.Options{Seed: 12, Projects: 1, MRs: 4, Pipelines: 6})
	var deps struct {
		Events []struct {
			ID          string `json:"id"`
			ProjectPath string `json:"project_path"`
			SHA         string `json:"sha"`
			Attrs       struct {
				Environment string `json:"environment"`
				FinishedAt  string `json:"finished_at"`
				Deployable  struct {
					ID int64 `json:"id"`
				} `json:"deployable"`
			} `json:"attributes"`
		} `json:"events"`
	}
	getJSON(t, base+"/api/v1/events?kind=deployment&state=success&limit=1000", &deps)
	var gl = -1
	for i, d := range deps.Events {
		if d.Attrs.Environment == "production" && d.Attrs.Deployable.ID != 0 && d.Attrs.FinishedAt != "" {
			gl = i
			break
		}
	}
	if gl < 0 {
		t.Fatalf("no successful production deployment synced: %+v", deps)
	}
	d := deps.Events[gl]
	dora := func() int {
		var m struct {
			DeploymentFrequency struct {
				Count int `json:"count"`
			} `json:"deployment_frequency"`
		}
		getJSON(t, base+"/api/v1/metrics/dora?since=2000-01-01&bucket=month", &m)
		return m.DeploymentFrequency.Count
	}
	before := dora()
	if before == 0 {
		t.Fatal("DORA counts no deployment")
	}
	post := func(job int64, finished string) (int, struct {
		ID      string   `json:"id"`
		Sources []string `json:"sources"`
		Linked  []struct {
			ID string `json:"id"`
		} `json:"linked"`
	}) {
		t.Helper()
		body := `{"project": "` + d.ProjectPath + `", "environment": "production", "sha": "` + d.SHA + `", "status": "success",
			"job_id": ` + strconv.FormatInt(job, 10) + `, "finished_at": "` + finished + `"}`
		resp, err := http.Post(base+"/api/v1/deployments", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var a struct {
			ID      string   `json:"id"`
			Sources []string `json:"sources"`
			Linked  []struct {
				ID string `json:"id"`
			} `json:"linked"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, a
	}
	code, a := post(d.Attrs.Deployable.ID, d.Attrs.FinishedAt)
	if code != http.StatusCreated || len(a.Linked) != 1 || a.Linked[0].ID != d.ID || strings.Join(a.Sources, ",") != "api,poll" {
		t.Fatalf("report of GitLab's job: %d %+v, want linked to %s with sources api,poll", code, a, d.ID)
	}
	if after := dora(); after != before {
		t.Errorf("DORA counts %d deployments after the linked report, %d before", after, before)
	}
	// A job GitLab never ran, an hour later: a deployment of its own.
	fin, _ := time.Parse(time.RFC3339, d.Attrs.FinishedAt)
	if code, a = post(d.Attrs.Deployable.ID+1_000_000, fin.Add(time.Hour).Format(time.RFC3339)); code != http.StatusCreated || len(a.Linked) != 0 {
		t.Fatalf("report of another job: %d %+v", code, a)
	}
	if after := dora(); after != before+1 {
		t.Errorf("DORA counts %d deployments after an unlinked report, want %d", after, before+1)
	}
}
