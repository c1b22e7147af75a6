package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/server"
	"github.com/labtrail/labtrail/internal/store"
	"github.com/labtrail/labtrail/internal/store/sqlite"
)

var base = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func setup(t *testing.T) (*httptest.Server, store.Store) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var evs []change.Event
	for i := 1; i <= 30; i++ {
		kind, state, id := change.KindMergeRequest, "merged", change.MergeRequestID(10, int64(i))
		if i%3 == 0 {
			kind, state, id = change.KindPipeline, "failed", change.PipelineID(10, int64(100+i))
		}
		pid, path := int64(10), "acme/web"
		if i > 20 {
			pid, path = 11, "acme/api"
			id = strings.Replace(id, "-10-", "-11-", 1)
		}
		at := base.Add(time.Duration(i) * time.Hour)
		evs = append(evs, change.Event{
			ID: id, Kind: kind, ProjectID: pid, ProjectPath: path, Title: fmt.Sprintf("change %d", i),
			State: state, Author: []string{"alice", "bob"}[i%2], WebURL: "https://gitlab.example/x",
			CreatedAt: at.Add(-time.Hour), UpdatedAt: at, OccurredAt: at, Source: change.SourcePoll,
			Attrs:       map[string]any{"iid": i},
			Transitions: []change.Transition{{State: "opened", At: at.Add(-time.Hour)}, {State: state, At: at}},
		})
	}
	if _, err := st.Upsert(context.Background(), evs...); err != nil {
		t.Fatal(err)
	}
	if err := st.PutProjects(context.Background(), store.Project{ID: 10, Path: "acme/web", Name: "web"}, store.Project{ID: 11, Path: "acme/api", Name: "api"}); err != nil {
		t.Fatal(err)
	}
	if err := st.PutSyncState(context.Background(), store.SyncState{ProjectID: 10, ProjectPath: "acme/web", Kind: change.KindMergeRequest, Cursor: base, Fetched: 5, Stored: 3}); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(server.New(st, nil))
	t.Cleanup(ts.Close)
	return ts, st
}

func get(t *testing.T, u string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("%s: %v: %s", u, err, body)
		}
	}
	return resp.StatusCode, m
}

func TestEventsFilters(t *testing.T) {
	ts, _ := setup(t)
	tests := []struct {
		query string
		want  int
	}{
		{"", 30},
		{"kind=merge_request", 20},
		{"kind=pipeline", 10},
		{"project=10", 20},
		{"project=acme/api", 10},
		{"author=alice", 15},
		{"state=failed", 10},
		{"since=" + url.QueryEscape(base.Add(25*time.Hour).Format(time.RFC3339)), 6},
		{"until=" + url.QueryEscape(base.Add(3*time.Hour).Format(time.RFC3339)), 2},
		{"kind=pipeline&project=acme/web&author=bob", 3},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			code, m := get(t, ts.URL+"/api/v1/events?"+tc.query)
			if code != 200 {
				t.Fatalf("status %d: %v", code, m)
			}
			if n := len(m["events"].([]any)); n != tc.want {
				t.Errorf("got %d events, want %d", n, tc.want)
			}
			if _, ok := m["next_cursor"]; ok {
				t.Errorf("next_cursor on the last page")
			}
		})
	}
}

func TestEventsCursorPagination(t *testing.T) {
	ts, _ := setup(t)
	seen := map[string]bool{}
	u := ts.URL + "/api/v1/events?limit=7"
	pages := 0
	var last time.Time
	for {
		code, m := get(t, u)
		if code != 200 {
			t.Fatalf("status %d: %v", code, m)
		}
		pages++
		for _, e := range m["events"].([]any) {
			ev := e.(map[string]any)
			id := ev["id"].(string)
			if seen[id] {
				t.Fatalf("%s twice", id)
			}
			seen[id] = true
			at, _ := time.Parse(time.RFC3339, ev["occurred_at"].(string))
			if !last.IsZero() && at.After(last) {
				t.Fatalf("not newest first: %s after %s", at, last)
			}
			last = at
		}
		c, ok := m["next_cursor"].(string)
		if !ok {
			break
		}
		u = ts.URL + "/api/v1/events?limit=7&cursor=" + url.QueryEscape(c)
	}
	if len(seen) != 30 || pages != 5 {
		t.Errorf("saw %d events in %d pages, want 30 in 5", len(seen), pages)
	}
}

func TestErrors(t *testing.T) {
	ts, _ := setup(t)
	tests := []struct {
		path string
		code int
		msg  string
	}{
		{"/api/v1/events?kind=wiki", 400, "unknown kind"},
		{"/api/v1/events?limit=0", 400, "limit"},
		{"/api/v1/events?limit=1001", 400, "limit"},
		{"/api/v1/events?since=yesterday", 400, "RFC 3339"},
		{"/api/v1/events?cursor=garbage", 400, "cursor"},
		{"/api/v1/events/mr-1-999", 404, "mr-1-999"},
		{"/api/v1/nothing", 404, "no such endpoint"},
	}
	for _, tc := range tests {
		code, m := get(t, ts.URL+tc.path)
		if code != tc.code {
			t.Errorf("%s: status %d, want %d", tc.path, code, tc.code)
		}
		if msg, _ := m["error"].(string); !strings.Contains(msg, tc.msg) {
			t.Errorf("%s: error %q lacks %q", tc.path, msg, tc.msg)
		}
	}
}

func TestEventWithTimelineProjectsAndStatus(t *testing.T) {
	ts, _ := setup(t)
	code, m := get(t, ts.URL+"/api/v1/events/mr-10-1")
	if code != 200 {
		t.Fatalf("status %d", code)
	}
	if m["title"] != "change 1" || m["kind"] != "merge_request" || m["source"] != "poll" {
		t.Errorf("event: %v", m)
	}
	tl := m["timeline"].([]any)
	if len(tl) != 2 || tl[0].(map[string]any)["state"] != "opened" || tl[1].(map[string]any)["state"] != "merged" {
		t.Errorf("timeline: %v", tl)
	}
	_, m = get(t, ts.URL+"/api/v1/projects")
	if ps := m["projects"].([]any); len(ps) != 2 || ps[0].(map[string]any)["path"] != "acme/api" {
		t.Errorf("projects: %v", m)
	}
	_, m = get(t, ts.URL+"/api/v1/sync/status")
	ss := m["sync"].([]any)
	if len(ss) != 1 || ss[0].(map[string]any)["stored"].(float64) != 3 {
		t.Errorf("sync status: %v", m)
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if code, _ := get(t, ts.URL+p); code != 200 {
			t.Errorf("%s: %d", p, code)
		}
	}
	// The overview answers, and this server, without metrics, says so.
	resp, err := http.Get(ts.URL + "/?project=acme/web")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `id="metrics-off"`) || !strings.Contains(string(body), `<option value="acme/web" selected>`) {
		t.Errorf("overview: %d\n%s", resp.StatusCode, body)
	}
}

func TestReadyzWhenStoreClosed(t *testing.T) {
	ts, st := setup(t)
	st.Close()
	if code, _ := get(t, ts.URL+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("readyz with a closed store: %d", code)
	}
}

func TestAudit(t *testing.T) {
	ts, st := setup(t)
	var es []store.AuditEntry
	for i := 0; i < 12; i++ {
		es = append(es, store.AuditEntry{Time: base.Add(time.Duration(i) * time.Minute), Method: "GET",
			Path: fmt.Sprintf("/api/v4/projects/%d/pipelines", 10+i%2), Status: 200, Duration: 3 * time.Millisecond,
			RateLimitRemaining: 500 - i, Job: fmt.Sprintf("sync:%d", 10+i%2)})
	}
	es[3].Status, es[3].Error = 0, "connection refused"
	if err := st.AppendAudit(context.Background(), es...); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		query string
		want  int
	}{
		{"", 12},
		{"job=sync:10", 6},
		{"status=0", 1},
		{"status=200&path=/api/v4/projects/11/", 5},
		{"since=" + url.QueryEscape(base.Add(10*time.Minute).Format(time.RFC3339)), 2},
	}
	for _, tc := range tests {
		code, m := get(t, ts.URL+"/api/v1/audit?"+tc.query)
		if code != 200 {
			t.Fatalf("%s: %d %v", tc.query, code, m)
		}
		if n := len(m["entries"].([]any)); n != tc.want {
			t.Errorf("%s: %d entries, want %d", tc.query, n, tc.want)
		}
	}
	_, m := get(t, ts.URL+"/api/v1/audit?limit=5")
	first := m["entries"].([]any)[0].(map[string]any)
	if first["path"] != "/api/v4/projects/11/pipelines" || first["duration_ms"].(float64) != 3 || first["rate_limit_remaining"].(float64) != 489 {
		t.Errorf("newest entry: %v", first)
	}
	if _, ok := m["next_cursor"].(string); !ok {
		t.Error("no next_cursor on a full page")
	}
	for _, bad := range []string{"status=abc", "limit=0", "since=now", "cursor=zz"} {
		if code, _ := get(t, ts.URL+"/api/v1/audit?"+bad); code != 400 {
			t.Errorf("%s: %d, want 400", bad, code)
		}
	}
}
