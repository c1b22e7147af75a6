package server

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/auth"
	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/store"
	"github.com/labtrail/labtrail/internal/store/sqlite"
)

// listedConnections is a Connections listing the default connection and
// "second", whose projects and sync states st keeps.
type listedConnections struct {
	Connections
	st store.Store
}

func (l listedConnections) List(context.Context) ([]ConnectionInfo, error) {
	return []ConnectionInfo{{Connection: store.Connection{Name: store.DefaultConnection}, Source: "environment"},
		{Connection: store.Connection{Name: "second"}, Source: "store"}}, nil
}

func (l listedConnections) Projects(_ context.Context, name string) (store.ProjectStore, error) {
	if name != "second" {
		return nil, store.ErrNotFound
	}
	return l.st.ConnectionProjects(name), nil
}

// TestListingsOfEveryConnection: GET /api/v1/projects, GET
// /api/v1/sync/status and the /sync page show every connection's
// projects and sync states, each naming its connection, where two
// GitLabs both have a project 42; ?connection= narrows them to one; a
// person signed in with GitLab sees the default connection's alone.
func TestListingsOfEveryConnection(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "l.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	at := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	if err := st.PutProjects(ctx, store.Project{ID: 42, Path: "acme/app"}); err != nil {
		t.Fatal(err)
	}
	if err := st.PutSyncState(ctx, store.SyncState{ProjectID: 42, ProjectPath: "acme/app", Kind: change.KindMergeRequest, Cursor: at}); err != nil {
		t.Fatal(err)
	}
	second := st.ConnectionProjects("second")
	if err := second.PutProjects(ctx, store.Project{ID: 42, Path: "other/app"}); err != nil {
		t.Fatal(err)
	}
	if err := second.PutSyncState(ctx, store.SyncState{ProjectID: 42, ProjectPath: "other/app", Kind: change.KindPipeline, Cursor: at,
		LastError: "GitLab answered 500"}); err != nil {
		t.Fatal(err)
	}
	s := New(st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	s.connections = listedConnections{st: st}
	admin := &auth.Principal{Name: "admin", Scope: auth.ScopeAdmin}
	user := &auth.Principal{Name: "alice", Scope: auth.ScopeRead, Projects: map[int64]bool{42: true}}
	call := func(h http.HandlerFunc, p *auth.Principal, target string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, target, nil)
		r = r.WithContext(auth.WithPrincipal(r.Context(), p))
		w := httptest.NewRecorder()
		h(w, r)
		return w
	}
	type listed struct {
		Projects []struct{ Path, Connection string }
		Sync     []struct {
			ProjectPath string `json:"project_path"`
			Connection  string
		}
	}
	names := func(l listed) (projects, sync []string) {
		for _, p := range l.Projects {
			projects = append(projects, p.Connection+":"+p.Path)
		}
		for _, s := range l.Sync {
			sync = append(sync, s.Connection+":"+s.ProjectPath)
		}
		return projects, sync
	}
	for _, c := range []struct {
		who   *auth.Principal
		query string
		want  []string
	}{
		{admin, "", []string{"default:acme/app", "second:other/app"}},
		{admin, "?connection=second", []string{"second:other/app"}},
		{admin, "?connection=default", []string{"default:acme/app"}},
		{user, "", []string{"default:acme/app"}},
	} {
		for _, h := range []struct {
			path string
			fn   http.HandlerFunc
		}{{"/api/v1/projects", s.projects}, {"/api/v1/sync/status", s.syncStatus}} {
			w := call(h.fn, c.who, h.path+c.query)
			var l listed
			if err := json.Unmarshal(w.Body.Bytes(), &l); w.Code != 200 || err != nil {
				t.Fatalf("%s%s: %d %v", h.path, c.query, w.Code, err)
			}
			projects, sync := names(l)
			if !slices.Equal(projects, c.want) {
				t.Errorf("%s, %s%s: projects %v, want %v", c.who.Name, h.path, c.query, projects, c.want)
			}
			if h.path == "/api/v1/sync/status" && !slices.Equal(sync, c.want) {
				t.Errorf("%s, %s%s: sync states %v, want %v", c.who.Name, h.path, c.query, sync, c.want)
			}
		}
	}
	if w := call(s.projects, user, "/api/v1/projects?connection=second"); w.Code != http.StatusNotFound {
		t.Errorf("a GitLab user asking for another connection's projects: %d, want 404", w.Code)
	}

	page := call(s.syncPage, admin, "/sync").Body.String()
	for _, want := range []string{`id="project-42"`, `id="project-second-42"`, "acme/app", "other/app", "GitLab answered 500",
		`<span class="badge connection" title="GitLab connection">second</span>`} {
		if !strings.Contains(page, want) {
			t.Errorf("the sync page lacks %s", want)
		}
	}
	page = call(s.syncPage, user, "/sync").Body.String()
	if !strings.Contains(page, "acme/app") || strings.Contains(page, "other/app") || strings.Contains(page, "GitLab answered 500") {
		t.Error("a GitLab user's sync page shows another connection's project, or not theirs")
	}
}
