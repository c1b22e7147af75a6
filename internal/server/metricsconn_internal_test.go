package server

import (
	"context"
	"encoding/json"
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
	"github.com/labtrail/labtrail/internal/store"
	"github.com/labtrail/labtrail/internal/store/postgres"
	"github.com/labtrail/labtrail/internal/store/postgres/pgtest"
	"github.com/labtrail/labtrail/internal/store/sqlite"
)

// TestMetricsOfOneConnection: two GitLabs that both have a project 42,
// one production deployment in the default's and two in second's. The
// metrics endpoints count each apart (?connection=, the default's for a
// project selection without one), every connection's when no project
// nor connection is asked for, and a person signed in with GitLab counts
// the default's alone, whatever they ask. On SQLite and PostgreSQL.
func TestMetricsOfOneConnection(t *testing.T) {
	backends := map[string]func(t *testing.T) store.Store{
		"sqlite": func(t *testing.T) store.Store {
			st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "m.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		},
		"postgres": func(t *testing.T) store.Store {
			st, err := postgres.Open(context.Background(), pgtest.SchemaURL(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		},
	}
	for name, open := range backends {
		t.Run(name, func(t *testing.T) { testMetricsOfOneConnection(t, open(t)) })
	}
}

func testMetricsOfOneConnection(t *testing.T, st store.Store) {
	ctx := context.Background()
	now := time.Date(2026, 5, 20, 12, 0, 0, 0, time.UTC)
	deploy := func(id string, n int64, at time.Time) change.Event {
		return change.Event{ID: id, Kind: change.KindDeployment, ProjectID: 42, ProjectPath: "acme/app", Title: id,
			State: "success", Ref: "main", SHA: "abc1234", CreatedAt: at.Add(-time.Minute), UpdatedAt: at, OccurredAt: at,
			Source: change.SourcePoll, Attrs: map[string]any{"iid": n, "environment": "production", "status": "success",
				"finished_at": at.Format(time.RFC3339)}}
	}
	if err := st.PutProjects(ctx, store.Project{ID: 42, Path: "acme/app"}); err != nil {
		t.Fatal(err)
	}
	if err := st.ConnectionProjects("second").PutProjects(ctx, store.Project{ID: 42, Path: "other/app"}); err != nil {
		t.Fatal(err)
	}
	day := now.Add(-24 * time.Hour)
	if _, err := st.Upsert(ctx, deploy(change.DeploymentID(42, 1), 1, day),
		deploy("second:"+change.DeploymentID(42, 1), 1, day), deploy("second:"+change.DeploymentID(42, 2), 2, day.Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	s := &Server{store: visibleStore{st}, delivery: metrics.New(st, metrics.Config{ProductionEnvironments: []string{"production"}}),
		connections: oneConnection{projects: st.ConnectionProjects("second")}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	h := serveMetric(s, (*metrics.Metrics).DORA)
	admin := &auth.Principal{Name: "admin", Scope: auth.ScopeAdmin}
	user := &auth.Principal{Name: "alice", Scope: auth.ScopeRead, Projects: map[int64]bool{42: true}}
	for _, c := range []struct {
		who    *auth.Principal
		query  string
		status int
		count  int
	}{
		{admin, "", 200, 3},
		{admin, "project=42", 200, 1},
		{admin, "project=acme/app", 200, 1},
		{admin, "connection=default", 200, 1},
		{admin, "connection=second", 200, 2},
		{admin, "connection=second&project=42", 200, 2},
		{admin, "connection=second&project=other/app", 200, 2},
		{admin, "connection=second&project=acme/app", 404, 0}, // the default's path
		{admin, "connection=third", 404, 0},
		{admin, "connection=second&connection=default", 400, 0},
		{user, "", 200, 1},
		{user, "project=42", 200, 1},
		{user, "connection=default", 200, 1},
		{user, "connection=second", 404, 0},
		{user, "connection=second&project=42", 404, 0},
	} {
		r := httptest.NewRequest(http.MethodGet, "/api/v1/metrics/dora?since="+now.Add(-7*24*time.Hour).Format(time.RFC3339)+
			"&until="+now.Format(time.RFC3339)+"&"+c.query, nil)
		r = r.WithContext(auth.WithPrincipal(r.Context(), c.who))
		w := httptest.NewRecorder()
		h(w, r)
		if w.Code != c.status {
			t.Errorf("%s, %s: status %d, want %d: %s", c.who.Name, c.query, w.Code, c.status, w.Body)
			continue
		}
		if c.status != 200 {
			continue
		}
		var d metrics.DORA
		if err := json.Unmarshal(w.Body.Bytes(), &d); err != nil {
			t.Fatal(err)
		}
		if d.DeploymentFrequency.Count != c.count {
			t.Errorf("%s, %s: %d deployments, want %d", c.who.Name, c.query, d.DeploymentFrequency.Count, c.count)
		}
	}

	// The changes before a moment: a project selection is the connection
	// named's (the default's when none is), as the metrics'; without one,
	// every connection's. An incident selects its own connection's
	// project.
	incident := func(id string, at time.Time) change.Event {
		return change.Event{ID: id, Kind: change.KindIssue, ProjectID: 42, ProjectPath: "other/app", Title: "Incident: down",
			State: "opened", CreatedAt: at, UpdatedAt: at, OccurredAt: at, Source: change.SourcePoll,
			Attrs: map[string]any{"iid": int64(7), "issue_type": "incident"}}
	}
	if _, err := st.Upsert(ctx, incident("second:"+change.IssueID(42, 7), day.Add(2*time.Hour)), incident(change.IssueID(42, 8), day.Add(2*time.Hour))); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		who    *auth.Principal
		query  string
		status int
		want   int
	}{
		{admin, "project=42", 200, 1},
		{admin, "", 200, 3},
		{user, "", 200, 1},
		{admin, "connection=second", 200, 2},
		{admin, "connection=second&project=42", 200, 2},
		{admin, "connection=second&project=other/app", 200, 2},
		{admin, "connection=default&project=42", 200, 1},
		{admin, "connection=second&project=acme/app", 404, 0},
		{admin, "connection=third", 404, 0},
		{admin, "connection=second&connection=default", 400, 0},
		{user, "connection=second", 404, 0},
		// By incident: its own connection's project.
		{admin, "incident=second:issue-42-7", 200, 2},
		{admin, "incident=second:issue-42-7&connection=second", 200, 2},
		{admin, "incident=second:issue-42-7&connection=default", 400, 0},
		{admin, "incident=issue-42-8", 200, 1},
		{admin, "incident=second:mr-42-7", 400, 0},
		{admin, "incident=second:issue-42-99", 404, 0},
		{user, "incident=second:issue-42-7", 404, 0},
	} {
		q := c.query
		if !strings.Contains(q, "incident=") {
			q += "&window=720h&at=" + now.Format(time.RFC3339)
		} else {
			q += "&window=720h"
		}
		r := httptest.NewRequest(http.MethodGet, "/api/v1/changes/before?"+q, nil)
		r = r.WithContext(auth.WithPrincipal(r.Context(), c.who))
		w := httptest.NewRecorder()
		s.changesBefore(w, r)
		if w.Code != c.status {
			t.Errorf("%s, changes before, %s: status %d, want %d: %s", c.who.Name, c.query, w.Code, c.status, w.Body)
			continue
		}
		if c.status != 200 {
			continue
		}
		var res struct{ Changes []change.Event }
		if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil {
			t.Fatalf("changes before, %s: %v %s", c.query, err, w.Body)
		}
		if len(res.Changes) != c.want {
			t.Errorf("%s, changes before, %s: %d, want %d", c.who.Name, c.query, len(res.Changes), c.want)
		}
	}
}
