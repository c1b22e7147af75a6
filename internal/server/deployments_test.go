package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/auth"
	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/metrics"
	"github.com/labtrail/labtrail/internal/server"
	"github.com/labtrail/labtrail/internal/store"
	"github.com/labtrail/labtrail/internal/store/sqlite"
)

// reportServer is a server with access control on over a new SQLite store
// that syncs project 42 (group/app), and a deploy-scope token.
func reportServer(t *testing.T) (*httptest.Server, *sqlite.Store, string, *server.Server) {
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
	srv := server.New(st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	tokens := auth.NewTokens(st)
	srv.EnableAuth(tokens, server.AuthOptions{Audit: st})
	raw, _, err := tokens.Create(ctx, "ci", auth.ScopeDeploy, 0)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return hs, st, raw, srv
}

type reportAnswer struct {
	change.Event
	Timeline []change.TimelineEntry `json:"timeline"`
	Sources  []change.Source        `json:"sources"`
	Linked   []struct {
		ID     string        `json:"id"`
		Source change.Source `json:"source"`
	} `json:"linked"`
	Error string `json:"error"`
}

func postReport(t *testing.T, hs *httptest.Server, token, body string) (int, reportAnswer) {
	t.Helper()
	req, _ := http.NewRequest("POST", hs.URL+"/api/v1/deployments", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a reportAnswer
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &a); err != nil {
		t.Fatalf("answer %d is not JSON: %s", resp.StatusCode, raw)
	}
	return resp.StatusCode, a
}

func TestReportDeploymentStoresOnceInOrder(t *testing.T) {
	hs, st, tok, _ := reportServer(t)
	running := `{"project": "group/app", "environment": "production", "ref": "main", "sha": "0123456789abcdef0123456789abcdef01234567",
		"status": "running", "started_at": "2026-12-01T10:00:00Z", "deployer": "alice", "pipeline_id": 900, "job_id": 9001,
		"url": "https://app.example.com"}`
	success := strings.Replace(strings.Replace(running, `"running"`, `"success"`, 1), `"deployer"`, `"finished_at": "2026-12-01T10:04:00Z", "deployer"`, 1)

	code, a := postReport(t, hs, tok, running)
	if code != http.StatusCreated {
		t.Fatalf("first report: %d %s, want 201", code, a.Error)
	}
	wantID := "deployment-42-ext-production-9001"
	if a.ID != wantID || a.Source != change.SourceAPI || a.State != "running" || a.ProjectID != 42 || a.Author != "alice" {
		t.Errorf("stored %+v, want id %s, source api, state running", a.Event, wantID)
	}
	if code, a = postReport(t, hs, tok, success); code != http.StatusOK || a.State != "success" {
		t.Errorf("success of the same job: %d state %q, want 200 success", code, a.State)
	}
	if code, a = postReport(t, hs, tok, success); code != http.StatusOK || a.State != "success" {
		t.Errorf("repeat: %d state %q, want 200 success", code, a.State)
	}
	// A late "running" (an older report) never overwrites the success.
	if code, a = postReport(t, hs, tok, running); code != http.StatusOK || a.State != "success" {
		t.Errorf("late running report: %d state %q, want 200 and still success", code, a.State)
	}
	var states []string
	for _, e := range a.Timeline {
		states = append(states, e.State)
	}
	if got := strings.Join(states, ","); got != "created,running,success" {
		t.Errorf("timeline %s, want created,running,success", got)
	}
	if n, _ := st.Count(context.Background(), change.KindDeployment); n != 1 {
		t.Errorf("%d deployments stored, want 1", n)
	}
	env, _, err := st.Get(context.Background(), "environment-42-ext-production")
	if err != nil {
		t.Fatalf("environment not stored: %v", err)
	}
	if env.State != "available" || env.Attrs["tier"] != "production" || env.Attrs["external_url"] != "https://app.example.com" {
		t.Errorf("environment %+v", env)
	}
	// By project id too, keyed by sha when there is no job.
	code, a = postReport(t, hs, tok, `{"project": 42, "environment": "staging", "sha": "abcdef1", "status": "success"}`)
	if code != http.StatusCreated || a.ID != "deployment-42-ext-staging-abcdef1" {
		t.Errorf("by id and sha: %d %s %s", code, a.ID, a.Error)
	}
}

func TestReportDeploymentStop(t *testing.T) {
	hs, st, tok, _ := reportServer(t)
	for _, body := range []string{
		`{"project": "group/app", "environment": "review/feature-x", "sha": "abcdef1", "status": "success", "job_id": 1, "url": "https://feature-x.example.com", "finished_at": "2026-12-01T10:00:00Z"}`,
		`{"project": "group/app", "environment": "review/feature-x", "sha": "abcdef1", "status": "success", "job_id": 2, "action": "stop", "finished_at": "2026-12-01T11:00:00Z"}`,
	} {
		if code, a := postReport(t, hs, tok, body); code != http.StatusCreated {
			t.Fatalf("%s: %d %s", body, code, a.Error)
		}
	}
	env, tl, err := st.Get(context.Background(), "environment-42-ext-review/feature-x")
	if err != nil {
		t.Fatal(err)
	}
	if env.State != "stopped" || env.Attrs["tier"] != "development" {
		t.Errorf("review environment after stop: state %q tier %v, want stopped, development", env.State, env.Attrs["tier"])
	}
	if len(tl) == 0 || tl[len(tl)-1].State != "stopped" {
		t.Errorf("timeline %+v does not end stopped", tl)
	}
}

func TestReportDeploymentBadInput(t *testing.T) {
	hs, st, tok, _ := reportServer(t)
	for _, c := range []struct {
		body, field string
		code        int
	}{
		{`{"environment": "production", "sha": "abcdef1", "status": "success"}`, "project", 400},
		{`{"project": "group/app", "sha": "abcdef1", "status": "success"}`, "environment", 400},
		{`{"project": "group/app", "environment": "production", "sha": "abcdef1"}`, "status", 400},
		{`{"project": "group/app", "environment": "production", "sha": "abcdef1", "status": "done"}`, "status", 400},
		{`{"project": "group/app", "environment": "production", "status": "success"}`, "sha", 400},
		{`{"project": "group/app", "environment": "production", "sha": "xyz", "status": "success"}`, "sha", 400},
		{`{"project": "group/app", "environment": "production", "sha": "abcdef1", "status": "success", "url": "javascript:alert(1)"}`, "url", 400},
		{`{"project": "group/app", "environment": "production", "sha": "abcdef1", "status": "success", "action": "destroy"}`, "action", 400},
		{`{"project": "group/app", "environment": "production", "sha": "abcdef1", "status": "success", "job_id": "x"}`, "job_id", 400},
		{`{"project": "group/app", "environment": "production", "sha": "abcdef1", "status": "success", "started_at": "yesterday"}`, "started_at", 400},
		{`{"project": "group/app", "environment": "production", "sha": "abcdef1", "status": "success", "colour": "red"}`, "colour", 400},
		{`{"project": "group/app", "environment": "production", "sha": "abcdef1", "status": "success",
			"started_at": "2026-12-01T10:00:00Z", "finished_at": "2026-12-01T09:00:00Z"}`, "finished_at", 400},
		{`{"project": true, "environment": "production", "sha": "abcdef1", "status": "success"}`, "project", 400},
		{`not json`, "JSON", 400},
		{`{"project": "other/app", "environment": "production", "sha": "abcdef1", "status": "success"}`, "other/app", 404},
		{`{"project": 7, "environment": "production", "sha": "abcdef1", "status": "success"}`, "7", 404},
	} {
		code, a := postReport(t, hs, tok, c.body)
		if code != c.code || !strings.Contains(a.Error, c.field) {
			t.Errorf("%s: %d %q, want %d naming %s", c.body, code, a.Error, c.code, c.field)
		}
	}
	if n, _ := st.Count(context.Background(), ""); n != 0 {
		t.Errorf("%d events stored from bad reports", n)
	}
}

// A reported deployment of the job GitLab also deployed with is linked to
// GitLab's deployment, shown with both sources and counted once by DORA.
func TestReportDeploymentLinkedCountedOnce(t *testing.T) {
	hs, st, tok, _ := reportServer(t)
	ctx := context.Background()
	finished := time.Date(2026, 12, 1, 10, 4, 0, 0, time.UTC)
	gl := change.Event{ID: change.DeploymentID(42, 555), Kind: change.KindDeployment, ProjectID: 42, ProjectPath: "group/app",
		Title: "Deployment #3 to production", State: "success", Ref: "main", SHA: "abcdef1",
		CreatedAt: finished.Add(-5 * time.Minute), UpdatedAt: finished, OccurredAt: finished, Source: change.SourcePoll, ObservedAt: finished,
		Attrs: map[string]any{"iid": 3, "environment": "production", "environment_id": 8, "status": "success",
			"finished_at": finished.Format(time.RFC3339), "deployable": map[string]any{"id": 9001, "name": "deploy"}}}
	env := change.Event{ID: change.EnvironmentID(42, 8), Kind: change.KindEnvironment, ProjectID: 42, Title: "production", State: "available",
		CreatedAt: finished.Add(-time.Hour), UpdatedAt: finished, OccurredAt: finished, Source: change.SourcePoll, ObservedAt: finished,
		Attrs: map[string]any{"name": "production", "tier": "production"}}
	if _, err := st.Upsert(ctx, gl, env); err != nil {
		t.Fatal(err)
	}
	code, a := postReport(t, hs, tok, `{"project": "group/app", "environment": "production", "sha": "abcdef1", "status": "success",
		"job_id": 9001, "started_at": "2026-12-01T10:01:00Z", "finished_at": "2026-12-01T10:04:30Z"}`)
	if code != http.StatusCreated {
		t.Fatalf("%d %s", code, a.Error)
	}
	if len(a.Linked) != 1 || a.Linked[0].ID != gl.ID || len(a.Sources) != 2 || a.Sources[0] != "api" || a.Sources[1] != "poll" {
		t.Errorf("answer links %+v, sources %v; want GitLab's %s and sources [api poll]", a.Linked, a.Sources, gl.ID)
	}
	m := metrics.New(st, metrics.Config{})
	d, err := m.DORA(ctx, metrics.Query{Since: finished.Add(-24 * time.Hour), Until: finished.Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if d.DeploymentFrequency.Count != 1 || d.ChangeFailureRate.Deployments != 1 || len(d.Deployments) != 1 {
		t.Errorf("DORA counts %d deployments (failure rate over %d, %d listed), want 1", d.DeploymentFrequency.Count,
			d.ChangeFailureRate.Deployments, len(d.Deployments))
	}
	// GitLab's deployment shows the report too.
	req, _ := http.NewRequest("GET", hs.URL+"/api/v1/events/"+gl.ID, nil)
	adminTok, _, _ := auth.NewTokens(st).Create(ctx, "reader", auth.ScopeRead, 0)
	req.Header.Set("Authorization", "Bearer "+adminTok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got reportAnswer
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if len(got.Linked) != 1 || got.Linked[0].ID != a.ID || got.Linked[0].Source != change.SourceAPI {
		t.Errorf("GitLab's deployment links %+v, want the report %s", got.Linked, a.ID)
	}
	// The report's page shows GitLab's deployment and both sources.
	req, _ = http.NewRequest("GET", hs.URL+"/events/"+a.ID, nil)
	req.Header.Set("Authorization", "Bearer "+adminTok)
	resp2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	page, _ := io.ReadAll(resp2.Body)
	for _, want := range []string{`id="deployment-linked"`, "/events/" + gl.ID, "api, poll"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("the report's page lacks %q", want)
		}
	}
}

// BenchmarkReportDeployment: one report through the API (token check,
// decode, the deployment and its environment stored with their facts and
// links, the answer with its timeline and links) on SQLite, each a new
// job's success to production beside GitLab's deployment of the same job
// (stored outside the timing), to which it is linked.
func BenchmarkReportDeployment(b *testing.B) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "l.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if err := st.PutProjects(ctx, store.Project{ID: 42, Path: "group/app", Name: "app", Status: store.ProjectActive}); err != nil {
		b.Fatal(err)
	}
	srv := server.New(st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	tokens := auth.NewTokens(st)
	srv.EnableAuth(tokens, server.AuthOptions{Audit: st})
	tok, _, err := tokens.Create(ctx, "ci", auth.ScopeDeploy, 0)
	if err != nil {
		b.Fatal(err)
	}
	base := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		at := base.Add(time.Duration(i) * time.Minute)
		gl := change.Event{ID: change.DeploymentID(42, int64(i+1)), Kind: change.KindDeployment, ProjectID: 42, State: "success", SHA: "abcdef1",
			CreatedAt: at, UpdatedAt: at, OccurredAt: at, Source: change.SourcePoll,
			Attrs: map[string]any{"environment": "production", "status": "success", "finished_at": at.Format(time.RFC3339),
				"deployable": map[string]any{"id": i + 1}}}
		b.StopTimer() // GitLab's deployment, stored as the poller would: not the report's cost
		if _, err := st.Upsert(ctx, gl); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		body := fmt.Sprintf(`{"project": "group/app", "environment": "production", "sha": "abcdef1", "status": "success", "job_id": %d, "finished_at": %q}`,
			i+1, at.Format(time.RFC3339))
		req := httptest.NewRequest("POST", "/api/v1/deployments", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		if rec.Code != http.StatusCreated {
			b.Fatalf("%d %s", rec.Code, rec.Body)
		}
	}
}
