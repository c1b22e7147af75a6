package sqlite_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/store"
	"github.com/labtrail/labtrail/internal/store/sqlite"
)

// A store whose facts an older rule derived (FactsVersion 1: no source,
// job or link columns filled) links reported deployments to GitLab's when
// it is opened: the facts are derived again.
func TestRebuiltFactsLinkReports(t *testing.T) {
	path := filepath.Join(t.TempDir(), "labtrail.db")
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	done := time.Date(2026, 12, 1, 10, 4, 0, 0, time.UTC)
	gl := change.Event{ID: change.DeploymentID(1, 5), Kind: change.KindDeployment, ProjectID: 1, State: "success", SHA: "abcdef1",
		CreatedAt: done.Add(-time.Minute), UpdatedAt: done, OccurredAt: done, Source: change.SourcePoll,
		Attrs: map[string]any{"environment": "production", "status": "success", "finished_at": done.Format(time.RFC3339),
			"deployable": map[string]any{"id": 77}}}
	r := change.DeploymentReport{Project: "1", Environment: "production", SHA: "abcdef1", Status: "success", JobID: 77, FinishedAt: &done}
	if err := r.Check(); err != nil {
		t.Fatal(err)
	}
	rep, _ := r.Events(1, "g/p", done)
	if _, err := s.Upsert(t.Context(), gl, rep); err != nil {
		t.Fatal(err)
	}
	// As the older rule left them.
	if _, err := s.DB().Exec(`UPDATE fact_deployments SET source = 'gitlab', job_id = 0, duplicate_of = ''`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DB().Exec(`UPDATE fact_version SET version = 1`); err != nil {
		t.Fatal(err)
	}
	if ds, _ := s.Deployments(t.Context(), store.FactFilter{}); len(ds) != 2 {
		t.Fatalf("before the rebuild: %d deployments, want both (the old rule)", len(ds))
	}
	s.Close()
	s = open(t, path)
	ds, err := s.Deployments(t.Context(), store.FactFilter{})
	if err != nil || len(ds) != 1 || ds[0].ID != gl.ID {
		t.Errorf("after the rebuild: %+v %v, want GitLab's deployment alone", ds, err)
	}
}
