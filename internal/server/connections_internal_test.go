package server

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/labtrail/labtrail/internal/auth"
	"github.com/labtrail/labtrail/internal/store"
)

// oneConnection is a Connections with one added connection, "second".
type oneConnection struct {
	Connections
	projects store.ProjectStore
}

func (o oneConnection) Projects(_ context.Context, name string) (store.ProjectStore, error) {
	if name != "second" {
		return nil, store.ErrNotFound
	}
	return o.projects, nil
}

// TestProjectStoreOf (projectStoreNamed): ?connection= selects a connection's projects for a
// principal who sees every project; one signed in with GitLab (who sees
// only their projects of the default GitLab) gets 404 for another's.
func TestProjectStoreOf(t *testing.T) {
	type marker struct{ store.ProjectStore }
	second := marker{}
	s := &Server{connections: oneConnection{projects: second}}
	for _, c := range []struct {
		name   string
		p      *auth.Principal
		conn   string
		want   store.ProjectStore
		status int
	}{
		{"admin, added", &auth.Principal{Scope: auth.ScopeAdmin}, "second", second, 0},
		{"admin, unknown", &auth.Principal{Scope: auth.ScopeAdmin}, "third", nil, 404},
		{"gitlab user, added", &auth.Principal{Scope: auth.ScopeRead, Projects: map[int64]bool{1: true}}, "second", nil, 404},
		{"gitlab user, default", &auth.Principal{Scope: auth.ScopeRead, Projects: map[int64]bool{1: true}}, "default", nil, 0},
	} {
		r := httptest.NewRequest(http.MethodGet, "/api/v1/projects?connection="+c.conn, nil)
		r = r.WithContext(auth.WithPrincipal(r.Context(), c.p))
		got, err := s.projectStoreNamed(r.Context(), r.URL.Query().Get("connection"))
		var ae *apiError
		switch {
		case c.status != 0 && (!errors.As(err, &ae) || ae.status != c.status):
			t.Errorf("%s: %v, want %d", c.name, err, c.status)
		case c.status == 0 && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != nil && got != c.want:
			t.Errorf("%s: another connection's store", c.name)
		}
	}
}
