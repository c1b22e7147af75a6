package gitlab

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
)

// hookFake serves GitLab's project webhook routes for project 7, keeping
// the raw attributes each add or edit sent.
type hookFake struct {
	mu     sync.Mutex
	hooks  []map[string]any
	sent   []map[string]any // request bodies of POST and PUT
	tests  []string         // paths of test triggers
	status int              // when set, every request is answered with it
}

func (f *hookFake) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Header.Get("PRIVATE-TOKEN") != testToken {
		writeJSON(w, 401, map[string]string{"message": "401 Unauthorized"})
		return
	}
	if f.status != 0 {
		writeJSON(w, f.status, map[string]string{"message": http.StatusText(f.status)})
		return
	}
	path := strings.TrimPrefix(r.URL.Path, "/api/v4/projects/7/hooks")
	var body map[string]any
	if r.Method == http.MethodPost || r.Method == http.MethodPut {
		_ = json.NewDecoder(r.Body).Decode(&body)
		f.sent = append(f.sent, body)
	}
	switch {
	case r.Method == http.MethodGet && path == "":
		writeJSON(w, 200, f.hooks)
	case r.Method == http.MethodPost && path == "":
		h := map[string]any{"id": len(f.hooks) + 100, "project_id": 7, "created_at": "2025-01-02T03:04:05.000Z", "enable_ssl_verification": true}
		for k, v := range body {
			if k != "token" {
				h[k] = v
			}
		}
		f.hooks = append(f.hooks, h)
		writeJSON(w, 201, h)
	case r.Method == http.MethodPut && strings.HasPrefix(path, "/"):
		for _, h := range f.hooks {
			if "/"+jsonString(h["id"]) == path {
				for k, v := range body {
					if k != "token" {
						h[k] = v
					}
				}
				writeJSON(w, 200, h)
				return
			}
		}
		writeJSON(w, 404, map[string]string{"message": "404 Not found"})
	case r.Method == http.MethodPost && strings.Contains(path, "/test/"):
		f.tests = append(f.tests, path)
		if strings.HasSuffix(path, "/test/push_events") {
			writeJSON(w, 201, map[string]string{"message": "201 Created"})
			return
		}
		writeJSON(w, 422, map[string]string{"message": "Hook execution failed: connection refused"})
	default:
		writeJSON(w, 404, map[string]string{"message": "404 Not Found"})
	}
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func newHookFake(t *testing.T) (*hookFake, *Client) {
	f := &hookFake{}
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(srv.Close)
	c, err := New(Config{URL: srv.URL, Token: testToken, RequestsPerMinute: 600000, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	return f, c
}

func TestEnsureProjectHookAddsThenUpdates(t *testing.T) {
	f, c := newHookFake(t)
	ctx := context.Background()
	p := Project{ID: 7, Path: "acme/web"}
	const url = "https://labtrail.example.com/api/v1/webhooks/gitlab"
	f.hooks = append(f.hooks, map[string]any{"id": 1, "project_id": 7, "url": "https://other.example.com/", "push_events": true})

	h, created, err := c.EnsureProjectHook(ctx, p, url, "s3cret")
	if err != nil || !created {
		t.Fatalf("first ensure: created %v, err %v", created, err)
	}
	if h.ID != 101 || h.URL != url || h.ProjectID != 7 || !h.EnableSSL || h.CreatedAt.IsZero() {
		t.Errorf("hook %+v", h)
	}
	if !slices.Equal(h.Events, HookEvents) {
		t.Errorf("events %v, want %v", h.Events, HookEvents)
	}
	first := f.sent[0]
	if first["token"] != "s3cret" || first["url"] != url {
		t.Errorf("add sent %v", first)
	}
	for _, e := range HookEvents {
		if first[e+"_events"] != true {
			t.Errorf("add did not enable %s_events: %v", e, first)
		}
	}

	h2, created, err := c.EnsureProjectHook(ctx, p, url, "n3w")
	if err != nil || created || h2.ID != h.ID {
		t.Fatalf("second ensure: %+v created %v err %v", h2, created, err)
	}
	if len(f.hooks) != 2 || f.sent[1]["token"] != "n3w" {
		t.Errorf("after update: %d hooks, sent %v", len(f.hooks), f.sent[1])
	}

	hooks, err := c.ProjectHooks(ctx, p)
	if err != nil || len(hooks) != 2 || hooks[0].URL != "https://other.example.com/" || !slices.Equal(hooks[0].Events, []string{"push"}) {
		t.Errorf("ProjectHooks: %+v %v", hooks, err)
	}
}

func TestTestProjectHook(t *testing.T) {
	f, c := newHookFake(t)
	p := Project{ID: 7, Path: "acme/web"}
	if err := c.TestProjectHook(context.Background(), p, 101, "push_events"); err != nil {
		t.Fatal(err)
	}
	err := c.TestProjectHook(context.Background(), p, 101, "tag_push_events")
	if err == nil || !strings.Contains(err.Error(), "422") || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("failing hook: %v", err)
	}
	if !slices.Equal(f.tests, []string{"/101/test/push_events", "/101/test/tag_push_events"}) {
		t.Errorf("tests %v", f.tests)
	}
}

func TestProjectHooksForbiddenNamesMaintainer(t *testing.T) {
	f, c := newHookFake(t)
	f.status = http.StatusForbidden
	_, _, err := c.EnsureProjectHook(context.Background(), Project{ID: 7, Path: "acme/web"}, "https://x.example/", "s")
	if !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "token needs Maintainer role on acme/web to manage webhooks") {
		t.Errorf("403: %v", err)
	}
	if strings.Contains(err.Error(), testToken) {
		t.Error("token leaked")
	}
}
