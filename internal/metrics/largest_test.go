package metrics_test

import (
	"context"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/metrics"
)

// The figures a digest reads besides the dashboard's: the largest merges,
// deployments per environment, and the incidents open at a moment.
func TestLargestMergedDeploymentsByEnvironmentOpenIncidents(t *testing.T) {
	ctx := context.Background()
	w := &world{}
	w.mr(mrSpec{project: 1, iid: 1, author: "ann", target: "main", created: h(-5), merged: h(1), adds: 10, dels: 5, files: 2})
	w.mr(mrSpec{project: 1, iid: 2, author: "bob", target: "main", created: h(-5), merged: h(2), adds: 300, dels: 0, files: 1})
	w.mr(mrSpec{project: 2, iid: 3, author: "cat", target: "main", created: h(-5), merged: h(3), adds: 10, dels: 5, files: 4})
	w.mr(mrSpec{project: 2, iid: 4, author: "dan", target: "main", created: h(-5), merged: h(-2), adds: 900, dels: 0, files: 9}) // before
	w.mr(mrSpec{project: 2, iid: 5, author: "eve", target: "main", created: h(-5), adds: 999, dels: 0, files: 9})                // open
	w.env(1, 1, "production", "production")
	w.env(1, 2, "staging", "staging")
	w.deploy(1, 1, "production", "success", "main", h(1))
	w.deploy(1, 2, "staging", "success", "main", h(2))
	w.deploy(1, 3, "staging", "success", "main", h(3))
	w.deploy(2, 4, "staging", "success", "main", h(4))
	w.deploy(2, 5, "review/x", "failed", "x", h(4)) // not a success
	w.deploy(1, 6, "production", "success", "main", h(-3))
	w.issue(1, 1, "incident", nil, h(-10), h(1))        // closed inside the window
	w.issue(1, 2, "incident", nil, h(-10), time.Time{}) // open
	w.issue(2, 3, "issue", []string{"incident"}, h(5), h(200))
	w.issue(2, 4, "issue", []string{"bug"}, h(5), time.Time{}) // not an incident
	w.issue(2, 5, "incident", nil, until.Add(time.Hour), time.Time{})
	m := metrics.New(w.store(t), metrics.Config{})
	q := metrics.Query{Since: since, Until: until}

	largest, err := m.LargestMerged(ctx, q, 2)
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, largest, []metrics.MergedMergeRequest{
		{ID: "mr-1-2", ProjectID: 1, ProjectPath: "g/app", IID: 2, Author: "bob", MergedAt: h(2), Lines: 300, Files: 1},
		{ID: "mr-2-3", ProjectID: 2, ProjectPath: "g/svc", IID: 3, Author: "cat", MergedAt: h(3), Lines: 15, Files: 4},
	})
	flow, err := m.MergeRequests(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if all, _ := m.LargestMerged(ctx, q, 100); len(all) != flow.Merged {
		t.Errorf("LargestMerged lists %d merges, MergeRequests counts %d", len(all), flow.Merged)
	}

	envs, err := m.DeploymentsByEnvironment(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, envs, []metrics.EnvironmentDeployments{
		{Environment: "staging", Count: 3}, {Environment: "production", Count: 1, Production: true},
	})
	d, err := m.DORA(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if d.DeploymentFrequency.Count != 1 {
		t.Errorf("DORA counts %d production deployments, by environment 1", d.DeploymentFrequency.Count)
	}
	if envs, _ := m.DeploymentsByEnvironment(ctx, metrics.Query{ProjectIDs: []int64{2}, Since: since, Until: until}); len(envs) != 1 || envs[0].Count != 1 {
		t.Errorf("project 2: %+v", envs)
	}

	open, err := m.OpenIncidentsAt(ctx, nil, h(6), 1)
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, open, metrics.OpenIncidents{At: h(6), Count: 2, Open: []metrics.Incident{
		{ID: "issue-2-3", ProjectID: 2, CreatedAt: h(5), ClosedAt: h(200)},
	}})
	if open, _ := m.OpenIncidentsAt(ctx, nil, h(0), 10); open.Count != 2 || open.Open[0].ID != "issue-1-2" {
		t.Errorf("at h(0): %+v", open)
	}
	if open, _ := m.OpenIncidentsAt(ctx, []int64{1}, h(6), 10); open.Count != 1 || open.Open[0].ID != "issue-1-2" {
		t.Errorf("project 1 at h(6): %+v", open)
	}
}
