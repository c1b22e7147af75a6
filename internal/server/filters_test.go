package server_test

import (
	"bytes"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/server"
	"github.com/labtrail/labtrail/internal/store"
)

// Repeated filters mean any of their values; dates are midnight UTC; a
// project must be known (by id or path, any case).
func TestEventsFilterListsDatesAndProjects(t *testing.T) {
	ts, _ := setup(t)
	for _, tc := range []struct {
		query string
		want  int
	}{
		{"kind=merge_request&kind=pipeline", 30},
		{"kind=pipeline&kind=pipeline", 10},
		{"kind=pipeline&kind=", 10},
		{"project=acme/web&project=11", 30},
		{"project=ACME/Api", 10},
		{"author=alice&author=bob", 30},
		{"author=bob&author=mallory", 15},
		{"state=failed&state=merged&project=acme/api", 10},
		{"kind=pipeline&author=alice&author=bob&project=acme/web&project=acme/api", 10},
		// base is 2026-03-01T12:00Z and event i happens i hours later.
		{"since=2026-03-02", 19},
		{"until=2026-03-02", 11},
		{"since=2026-03-02&until=2026-03-02T06:00:00Z", 6},
	} {
		t.Run(tc.query, func(t *testing.T) {
			code, m := get(t, ts.URL+"/api/v1/events?"+tc.query)
			if code != 200 {
				t.Fatalf("status %d: %v", code, m)
			}
			if n := len(m["events"].([]any)); n != tc.want {
				t.Errorf("got %d events, want %d", n, tc.want)
			}
		})
	}
}

// Bad filters are 4xx with a message saying what is wrong, never 500.
func TestEventsFilterErrors(t *testing.T) {
	_, st := setup(t)
	var logs bytes.Buffer
	ts := httptest.NewServer(server.New(st, slog.New(slog.NewTextHandler(&logs, nil))))
	t.Cleanup(ts.Close)
	// The smallest and largest times any backend stores, and outside them.
	rangeMsg := "outside the range labtrail stores, 1677-09-22T00:00:00Z to 2262-04-11T00:00:00Z"
	for _, tc := range []struct {
		path string
		code int
		msg  string
	}{
		{"/api/v1/events?project=nope/nope", 404, `unknown project "nope/nope"`},
		{"/api/v1/events?project=acme/web&project=nope/nope", 404, `unknown project "nope/nope"`},
		{"/api/v1/events?project=999", 404, `unknown project "999"`},
		{"/api/v1/events?kind=pipeline&kind=wiki", 400, `unknown kind "wiki"`},
		{"/api/v1/events?since=9999-12-31T23:59:59Z", 400, "since 9999-12-31T23:59:59Z is " + rangeMsg},
		{"/api/v1/events?since=0001-01-01", 400, "since 0001-01-01 is " + rangeMsg},
		{"/api/v1/events?since=0001-01-01T00:00:00Z", 400, rangeMsg},
		{"/api/v1/events?until=2263-01-01T00:00:00Z", 400, "until 2263-01-01T00:00:00Z is " + rangeMsg},
		{"/api/v1/events?until=1600-01-01", 400, rangeMsg},
		{"/api/v1/events?since=2026-13-01", 400, "or a date such as 2024-05-01"},
		{"/api/v1/events?since=2026-03-02&until=2026-03-02", 400, "until must be after since"},
		{"/api/v1/events?cursor=" + url.QueryEscape(store.EventCursor(time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), "mr-1-1")), 400, "invalid cursor"},
		{"/api/v1/audit?since=9999-12-31T23:59:59Z", 400, rangeMsg},
		{"/api/v1/audit?until=2263-01-01", 400, rangeMsg},
		{"/api/v1/audit?since=2026-03-02", 200, ""},
	} {
		code, m := get(t, ts.URL+tc.path)
		if code != tc.code {
			t.Errorf("%s: status %d, want %d (%v)", tc.path, code, tc.code, m)
		}
		if msg, _ := m["error"].(string); !strings.Contains(msg, tc.msg) {
			t.Errorf("%s: error %q lacks %q", tc.path, msg, tc.msg)
		}
	}
	// The ends of the range are accepted.
	for _, q := range []string{"since=1677-09-22", "until=2262-04-11T00:00:00Z", "since=1677-09-22T00:00:00Z&until=2262-04-11"} {
		if code, m := get(t, ts.URL+"/api/v1/events?"+q); code != 200 {
			t.Errorf("%s: status %d (%v)", q, code, m)
		}
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("bad filters logged errors:\n%s", logs.String())
	}
}

// Events stored with unsafe URLs (before they were checked where events
// are made) are handed out without them.
func TestUnsafeStoredURLsNotServed(t *testing.T) {
	ts, st := setup(t)
	e := change.Event{ID: "issue-10-1", Kind: change.KindIssue, ProjectID: 10, ProjectPath: "acme/web",
		WebURL: "javascript:alert(1)", UpdatedAt: base, OccurredAt: base, Source: change.SourceWebhook,
		Attrs: map[string]any{"links": []any{map[string]any{"url": "data:x"}, map[string]any{"url": "https://ok.example/"}}}}
	if _, err := st.Upsert(t.Context(), e); err != nil {
		t.Fatal(err)
	}
	_, one := get(t, ts.URL+"/api/v1/events/issue-10-1")
	_, list := get(t, ts.URL+"/api/v1/events?kind=issue")
	for _, m := range []map[string]any{one, list["events"].([]any)[0].(map[string]any)} {
		links := m["attributes"].(map[string]any)["links"].([]any)
		if m["web_url"] != "" || links[0].(map[string]any)["url"] != "" || links[1].(map[string]any)["url"] != "https://ok.example/" {
			t.Errorf("served %v", m)
		}
	}
	// The overview lists incidents: TestOverviewUnsafeStoredURL checks
	// that it shows one without its unsafe URL.
}
