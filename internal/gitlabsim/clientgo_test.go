package gitlabsim_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	gl "gitlab.com/gitlab-org/api/client-go/v2"
	"golang.org/x/time/rate"

	"github.com/labtrail/labtrail/internal/gitlabsim"
)

// The official Go client, which labtrail does not use for these endpoints,
// runs unchanged against the simulator: a third party's client decoding
// every answer into its own types is the proof that the simulator is
// GitLab for others too. Its Pipeline decodes queued_duration into an
// int64, so a fraction there fails every pipeline and every merge request
// with a head pipeline.

// clientGo is client-go as a third party would configure it, except that
// it does not pace itself to the RateLimit-Limit the simulator advertises
// (GitLab.com's 2,000 a minute), which would make these tests wait.
func clientGo(t *testing.T, url string) *gl.Client {
	t.Helper()
	c, err := gl.NewClient("sim-token", gl.WithBaseURL(url+"/api/v4"), gl.WithoutRetries(),
		gl.WithCustomLimiter(rate.NewLimiter(rate.Inf, 0)))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestClientGoPipelinesAndBridges(t *testing.T) {
	sim, srv := newServer(t, gitlabsim.Options{Projects: 1, MRs: 20, Pipelines: 40})
	c := clientGo(t, srv.URL)
	pid := firstProjectID(t, srv)

	pipes, _, err := c.Pipelines.ListProjectPipelines(pid, &gl.ListProjectPipelinesOptions{ListOptions: gl.ListOptions{PerPage: 100}})
	if err != nil || len(pipes) != 40 {
		t.Fatalf("ListProjectPipelines: %d, %v", len(pipes), err)
	}
	queued := 0
	for _, p := range pipes {
		pl, _, err := c.Pipelines.GetPipeline(pid, p.ID)
		if err != nil {
			t.Fatalf("GetPipeline %d: %v", p.ID, err)
		}
		if pl.ID != p.ID || pl.Status != p.Status {
			t.Errorf("pipeline %d: got %d %s", p.ID, pl.ID, pl.Status)
		}
		if pl.QueuedDuration > 0 {
			queued++
			if pl.StartedAt == nil || int64(pl.StartedAt.Sub(*pl.CreatedAt).Seconds()) != pl.QueuedDuration {
				t.Errorf("pipeline %d: queued_duration %d is not the whole seconds from %v to %v", p.ID, pl.QueuedDuration, pl.CreatedAt, pl.StartedAt)
			}
		}

		bridges, resp, err := c.Jobs.ListPipelineBridges(pid, p.ID, &gl.ListJobsOptions{ListOptions: gl.ListOptions{PerPage: 5}})
		if err != nil || len(bridges) != 0 {
			t.Fatalf("ListPipelineBridges %d: %v, %v", p.ID, bridges, err)
		}
		if resp.TotalItems != 0 || resp.TotalPages != 1 || resp.CurrentPage != 1 || resp.NextPage != 0 || resp.ItemsPerPage != 5 {
			t.Errorf("bridges of %d paged as %+v", p.ID, resp)
		}
	}
	if queued == 0 {
		t.Error("no pipeline with a queued_duration to decode")
	}

	// Merge requests with a head pipeline, one by one and with changes.
	mrs, _, err := c.MergeRequests.ListProjectMergeRequests(pid, &gl.ListProjectMergeRequestsOptions{ListOptions: gl.ListOptions{PerPage: 100}})
	if err != nil || len(mrs) != 20 {
		t.Fatalf("ListProjectMergeRequests: %d, %v", len(mrs), err)
	}
	heads := 0
	for _, m := range mrs {
		one, _, err := c.MergeRequests.GetMergeRequest(pid, m.IID, nil)
		if err != nil {
			t.Fatalf("GetMergeRequest %d: %v", m.IID, err)
		}
		ch, _, err := c.MergeRequests.GetMergeRequestChanges(pid, m.IID, nil)
		if err != nil {
			t.Fatalf("GetMergeRequestChanges %d: %v", m.IID, err)
		}
		if one.HeadPipeline != nil {
			heads++
		}
		if !reflect.DeepEqual(ch, one) {
			t.Errorf("merge request %d: changes show %+v, the merge request %+v", m.IID, ch, one)
		}
		// client-go keeps no changes: they are the diffs listing's files,
		// all of them, on one page.
		_, body := get(t, srv, fmt.Sprintf("/api/v4/projects/%d/merge_requests/%d/changes", pid, m.IID))
		_, diffs := get(t, srv, fmt.Sprintf("/api/v4/projects/%d/merge_requests/%d/diffs?per_page=100", pid, m.IID))
		got := objects(t, body)[0]
		if !reflect.DeepEqual(got["changes"], decodeJSON(t, diffs)) || got["overflow"] != false || got["changes_count"] != one.ChangesCount {
			t.Errorf("merge request %d: changes %v (overflow %v, count %v), diffs %s", m.IID, got["changes"], got["overflow"], got["changes_count"], diffs)
		}
	}
	if heads == 0 {
		t.Error("no merge request with a head pipeline to decode")
	}

	// A pipeline that does not exist has no bridges to list.
	_, _, err = c.Jobs.ListPipelineBridges(pid, 1<<40, nil)
	if !errors.Is(err, gl.ErrNotFound) {
		t.Errorf("bridges of a missing pipeline: %v", err)
	}
	if n := sim.Stats().ByPath["GET /api/v4/projects/:id/pipelines/:pipeline_id/bridges"]; n != 41 {
		t.Errorf("stats count %d bridges requests, want 41", n)
	}
}

func TestClientGoEnvironments(t *testing.T) {
	sim, srv := newServer(t, gitlabsim.Options{Projects: 1, MRs: 30, Pipelines: 60})
	for range 4 {
		sim.Advance()
	}
	c := clientGo(t, srv.URL)
	pid := firstProjectID(t, srv)

	envs, _, err := c.Environments.ListEnvironments(pid, nil)
	if err != nil || len(envs) < 3 {
		t.Fatalf("ListEnvironments: %d, %v", len(envs), err)
	}
	deploys, _, err := c.Deployments.ListProjectDeployments(pid, &gl.ListProjectDeploymentsOptions{
		ListOptions: gl.ListOptions{PerPage: 100}, Status: gl.Ptr("success"), OrderBy: gl.Ptr("finished_at"), Sort: gl.Ptr("desc"),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range envs {
		got, _, err := c.Environments.GetEnvironment(pid, e.ID)
		if err != nil {
			t.Fatalf("GetEnvironment %d: %v", e.ID, err)
		}
		if got.Name != e.Name || got.State != e.State || got.Tier != e.Tier || got.Slug != e.Slug || got.ExternalURL != e.ExternalURL {
			t.Errorf("environment %d: %+v, listed as %+v", e.ID, got, e)
		}
		// The last deployment is the last to succeed there; review apps
		// have none.
		var want *gl.Deployment
		for _, d := range deploys {
			if d.Environment.ID == e.ID {
				want = d
				break
			}
		}
		switch {
		case want == nil && got.LastDeployment != nil:
			t.Errorf("environment %s: last deployment %d, none succeeded", e.Name, got.LastDeployment.ID)
		case want != nil && (got.LastDeployment == nil || got.LastDeployment.ID != want.ID || got.LastDeployment.Deployable.ID != want.Deployable.ID):
			t.Errorf("environment %s: last deployment %+v, want %d", e.Name, got.LastDeployment, want.ID)
		case want != nil && got.LastDeployment.Environment != nil:
			t.Errorf("environment %s: last deployment names its environment", e.Name)
		}
		if e.Tier == "production" && want == nil {
			t.Error("production has no successful deployment to compare")
		}
	}
	_, _, err = c.Environments.GetEnvironment(pid, 1<<40)
	if !errors.Is(err, gl.ErrNotFound) {
		t.Errorf("missing environment: %v", err)
	}
}

// TestNewRoutesAnswerAsGitLab covers what is around the answers of the
// changes, bridges and environment routes: GitLab's errors for unknown or
// malformed ids, the token, the project faults, injected failures and the
// request counts.
func TestNewRoutesAnswerAsGitLab(t *testing.T) {
	sim, srv := newServer(t, gitlabsim.Options{Projects: 2, MRs: 5, Pipelines: 5})
	pid := firstProjectID(t, srv)
	base := fmt.Sprintf("/api/v4/projects/%d", pid)
	_, body := get(t, srv, base+"/pipelines?per_page=1")
	plID := num(objects(t, body)[0]["id"])
	_, body = get(t, srv, base+"/environments")
	envID := num(objects(t, body)[0]["id"])
	routes := map[string]string{
		"changes":     base + "/merge_requests/1/changes",
		"bridges":     fmt.Sprintf("%s/pipelines/%d/bridges", base, plID),
		"environment": fmt.Sprintf("%s/environments/%d", base, envID),
	}

	for _, tc := range []struct{ path, status, body string }{
		{base + "/merge_requests/999/changes", "404", `{"message":"404 Not found"}`},
		{base + "/merge_requests/x/changes", "400", `{"error":"merge_request_iid is invalid"}`},
		{base + "/pipelines/999999999/bridges", "404", `{"message":"404 Not found"}`},
		{base + "/pipelines/x/bridges", "400", `{"error":"pipeline_id is invalid"}`},
		{fmt.Sprintf("%s/pipelines/%d/bridges?scope[]=bogus", base, plID), "400", `{"error":"scope does not have a valid value"}`},
		{base + "/environments/999999999", "404", `{"message":"404 Not found"}`},
		{base + "/environments/review_apps", "400", `{"error":"environment_id is invalid"}`},
		{"/api/v4/projects/999999/merge_requests/1/changes", "404", `{"message":"404 Project Not Found"}`},
		{"/api/v4/projects/999999/pipelines/1/bridges", "404", `{"message":"404 Project Not Found"}`},
		{"/api/v4/projects/999999/environments/1", "404", `{"message":"404 Project Not Found"}`},
	} {
		resp, body := get(t, srv, tc.path)
		if fmt.Sprint(resp.StatusCode) != tc.status || string(body) != tc.body {
			t.Errorf("%s: %d %s, want %s %s", tc.path, resp.StatusCode, body, tc.status, tc.body)
		}
	}

	// An empty page past the end still carries GitLab's headers.
	resp, body := get(t, srv, routes["bridges"]+"?page=3&per_page=2")
	h := resp.Header
	if string(body) != "[]" || h.Get("X-Total") != "0" || h.Get("X-Total-Pages") != "1" || h.Get("X-Page") != "3" ||
		h.Get("X-Per-Page") != "2" || h.Get("X-Next-Page") != "" || h.Get("X-Prev-Page") != "2" ||
		!strings.Contains(h.Get("Link"), `rel="first"`) || !strings.Contains(h.Get("Link"), `rel="last"`) {
		t.Errorf("bridges page 3: %s, headers %v", body, h)
	}

	for name, path := range routes {
		if resp, _ := get(t, srv, path); resp.StatusCode != 200 {
			t.Errorf("%s: %d", name, resp.StatusCode)
		}
		if resp, _ := getWith(t, srv, path, nil); resp.StatusCode != 401 {
			t.Errorf("%s without a token: %d", name, resp.StatusCode)
		}
	}
	sim.SetProjectFault(fmt.Sprint(pid), 404)
	for name, path := range routes {
		if resp, body := get(t, srv, path); resp.StatusCode != 404 || string(body) != `{"message":"404 Project Not Found"}` {
			t.Errorf("%s of a 404'd project: %d %s", name, resp.StatusCode, body)
		}
	}
	sim.SetProjectFault(fmt.Sprint(pid), 0)
	sim.SetFailRate(1)
	for name, path := range routes {
		if resp, _ := get(t, srv, path); resp.StatusCode < 500 {
			t.Errorf("%s at fail rate 1: %d", name, resp.StatusCode)
		}
	}
	sim.SetFailRate(0)

	// Each route counts under its template: one 200, one 401, one project
	// fault and one injected failure.
	st := sim.Stats()
	for _, tmpl := range []string{"/projects/:id/merge_requests/:merge_request_iid/changes", "/projects/:id/environments/:environment_id"} {
		if n := st.ByPath["GET /api/v4"+tmpl]; n != 4+3 {
			t.Errorf("%s counted %d times, want 7", tmpl, n)
		}
	}
	if n := st.ByPath["GET /api/v4/projects/:id/pipelines/:pipeline_id/bridges"]; n != 4+5 {
		t.Errorf("bridges counted %d times, want 9", n)
	}
}
