package gitlab

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// envFake is GitLab's environments API for one project: a list by exact
// name, PUT and POST, each write recorded.
type envFake struct {
	envs   []map[string]any
	writes []string // "METHOD path body"
	status int      // answer every request with it, when set
}

func (f *envFake) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if f.status != 0 {
		w.WriteHeader(f.status)
		json.NewEncoder(w).Encode(map[string]any{"error": "insufficient_scope", "scope": "api"})
		return
	}
	var body map[string]any
	_ = json.NewDecoder(r.Body).Decode(&body)
	raw, _ := json.Marshal(body)
	switch {
	case r.Method == "GET" && r.URL.Path == "/api/v4/projects/7/environments":
		out := []map[string]any{}
		for _, e := range f.envs {
			if e["name"] == r.URL.Query().Get("name") {
				out = append(out, e)
			}
		}
		json.NewEncoder(w).Encode(out)
	case r.Method == "PUT" && strings.HasPrefix(r.URL.Path, "/api/v4/projects/7/environments/"):
		f.writes = append(f.writes, "PUT "+r.URL.Path+" "+string(raw))
		json.NewEncoder(w).Encode(map[string]any{"id": 3, "name": "production", "external_url": body["external_url"]})
	case r.Method == "POST" && r.URL.Path == "/api/v4/projects/7/environments":
		f.writes = append(f.writes, "POST "+r.URL.Path+" "+string(raw))
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(map[string]any{"id": 4, "name": body["name"], "external_url": body["external_url"]})
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

func TestSetEnvironmentURL(t *testing.T) {
	f := &envFake{envs: []map[string]any{{"id": 3, "name": "production", "external_url": "https://old.example.com"}}}
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(srv.Close)
	c, err := New(Config{URL: srv.URL, Token: testToken, RequestsPerMinute: 600000, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, p := context.Background(), Project{ID: 7, Path: "acme/web"}
	for _, s := range []struct {
		env, url         string
		created, changed bool
		write            string
	}{
		{"production", "https://new.example.com", false, true, `PUT /api/v4/projects/7/environments/3 {"external_url":"https://new.example.com"}`},
		{"production", "https://old.example.com", false, false, ""}, // as it is: nothing written
		{"review/x", "https://x.example.com", true, true, `POST /api/v4/projects/7/environments {"external_url":"https://x.example.com","name":"review/x"}`},
	} {
		n := len(f.writes)
		created, changed, err := c.SetEnvironmentURL(ctx, p, s.env, s.url)
		if err != nil || created != s.created || changed != s.changed {
			t.Errorf("%s %s: created %v changed %v err %v", s.env, s.url, created, changed, err)
		}
		var got string
		if len(f.writes) > n {
			got = f.writes[n]
		}
		if got != s.write {
			t.Errorf("%s: wrote %q, want %q", s.env, got, s.write)
		}
	}
	f.status = http.StatusForbidden
	if _, _, err := c.SetEnvironmentURL(ctx, p, "production", "https://v3.example.com"); err == nil || !strings.Contains(err.Error(), "api scope") {
		t.Errorf("a read_api token: %v", err)
	}
}
