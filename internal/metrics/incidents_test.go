package metrics_test

import (
	"context"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/metrics"
)

// Incidents lists, newest first, the issues TimeToRestore counts as
// incidents in the window, and ProductionEnvironments the environments
// DORA counts deployments to.
func TestIncidentsAndProductionEnvironments(t *testing.T) {
	w := &world{}
	w.issue(1, 1, "incident", nil, h(1), h(3))
	w.issue(1, 2, "issue", []string{"Incident "}, h(5), time.Time{})
	w.issue(2, 3, "issue", []string{"bug"}, h(6), time.Time{}) // not an incident
	w.issue(2, 4, "incident", nil, h(7), h(8))
	w.issue(1, 5, "incident", nil, h(-1), h(2)) // before the window
	w.issue(1, 6, "incident", nil, until, time.Time{})
	w.env(1, 1, "production", "production")
	w.env(1, 2, "staging", "staging")
	w.env(2, 3, "live", "")
	st := w.store(t)
	m := metrics.New(st, metrics.Config{})
	q := metrics.Query{Since: since, Until: until}
	got, err := m.Incidents(context.Background(), q, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []metrics.Incident{
		{ID: "issue-2-4", ProjectID: 2, CreatedAt: h(7), ClosedAt: h(8)},
		{ID: "issue-1-2", ProjectID: 1, CreatedAt: h(5)},
		{ID: "issue-1-1", ProjectID: 1, CreatedAt: h(1), ClosedAt: h(3)},
	}
	sameJSON(t, got, want)
	d, err := m.DORA(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	if d.TimeToRestore.Incidents != len(want) {
		t.Errorf("DORA counts %d incidents, Incidents lists %d", d.TimeToRestore.Incidents, len(want))
	}
	if got, _ := m.Incidents(context.Background(), q, 1); len(got) != 1 || got[0].ID != "issue-2-4" {
		t.Errorf("limit 1: %+v", got)
	}
	q.ProjectIDs = []int64{1}
	if got, _ := m.Incidents(context.Background(), q, 10); len(got) != 2 {
		t.Errorf("project 1: %+v", got)
	}
	if _, err := m.Incidents(context.Background(), metrics.Query{Since: until, Until: since}, 10); err == nil {
		t.Error("a window ending before it starts was taken")
	}

	envs, err := m.ProductionEnvironments(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, envs, []metrics.Environment{{ProjectID: 1, Name: "production", Tier: "production"}})
	envs, _ = metrics.New(st, metrics.Config{ProductionEnvironments: []string{"li*"}}).ProductionEnvironments(context.Background(), nil)
	sameJSON(t, envs, []metrics.Environment{{ProjectID: 2, Name: "live"}, {ProjectID: 1, Name: "production", Tier: "production"}})
	envs, _ = m.ProductionEnvironments(context.Background(), []int64{2})
	if len(envs) != 0 {
		t.Errorf("project 2 has no production environment without the glob: %+v", envs)
	}
}
