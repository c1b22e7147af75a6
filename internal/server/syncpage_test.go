package server_test

import (
	"context"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/server"
	"github.com/labtrail/labtrail/internal/store"
	"github.com/labtrail/labtrail/internal/store/sqlite"
)

// syncWorld is a store with what the sync page shows: an active project
// with a failing kind, one GitLab stopped answering for, deliveries (one
// failed) and GitLab calls in the audit log.
type syncWorld struct {
	st       store.Store
	url      string
	failedID int64
	okIDs    []int64
	replayed atomic.Int64
}

func newSyncWorld(t *testing.T, webhooks bool, deliveries int) *syncWorld {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "sync.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	w := &syncWorld{st: st}
	at := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	if err := st.PutProjects(ctx,
		store.Project{ID: 1, Path: "acme/web", Name: "web", Status: store.ProjectActive},
		store.Project{ID: 2, Path: "acme/gone", Name: "gone", Status: store.ProjectNotFound,
			StatusDetail: "GET /api/v4/projects/2: 404 Project Not Found", StatusAt: at},
		store.Project{ID: 3, Path: "tools/cli", Name: "cli", Status: store.ProjectActive},
		// Selected, never polled yet.
		store.Project{ID: 4, Path: "tools/new", Name: "new", Status: store.ProjectActive},
	); err != nil {
		t.Fatal(err)
	}
	for _, s := range []store.SyncState{
		{ProjectID: 1, ProjectPath: "acme/web", Kind: change.KindMergeRequest, Cursor: at, LastRunAt: at, LastSuccess: at, Fetched: 12, Stored: 7},
		{ProjectID: 1, ProjectPath: "acme/web", Kind: change.KindPipeline, Cursor: at.Add(-time.Hour), LastRunAt: at,
			LastSuccess: at.Add(-48 * time.Hour), LastError: "pipelines: GitLab answered 500 Internal Server Error"},
		{ProjectID: 2, ProjectPath: "acme/gone", Kind: change.KindMergeRequest, Cursor: at.Add(-72 * time.Hour), LastRunAt: at.Add(-72 * time.Hour), LastSuccess: at.Add(-72 * time.Hour)},
		{ProjectID: 3, ProjectPath: "tools/cli", Kind: change.KindIssue, LastRunAt: at, LastSuccess: at, Fetched: 3, Stored: 3},
	} {
		if err := st.PutSyncState(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.AppendAudit(ctx,
		store.AuditEntry{Time: at.Add(-time.Minute), Method: "GET", Path: "/api/v4/projects/1/merge_requests", Status: 200, RateLimitRemaining: 1999},
		store.AuditEntry{Time: at.Add(-30 * time.Second), Method: "GET", Path: "/api/v4/projects/1/pipelines", Status: 429, RateLimitRemaining: 1234},
		store.AuditEntry{Time: at, Method: "GET", Path: "/api/v4/projects/1/issues", Status: 0, RateLimitRemaining: -1, Error: "connection refused"},
	); err != nil {
		t.Fatal(err)
	}
	for i := range deliveries {
		id, _, err := st.PutDelivery(ctx, store.Delivery{
			IdempotencyKey: fmt.Sprintf("key-%d", i), EventType: "Merge Request Hook", Body: []byte(`{}`),
			ReceivedAt: at.Add(time.Duration(i) * time.Second), Status: store.DeliveryPending,
		})
		if err != nil {
			t.Fatal(err)
		}
		status, reason := store.DeliveryProcessed, ""
		if i == deliveries-1 {
			status, reason = store.DeliveryFailed, "merge request hook: no project in the body"
			w.failedID = id
		} else {
			w.okIDs = append(w.okIDs, id)
		}
		if err := st.MarkDelivery(ctx, id, status, reason); err != nil {
			t.Fatal(err)
		}
	}
	api := server.New(st, nil)
	if webhooks {
		hook := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
		api.EnableWebhooks(hook, func(ctx context.Context, id int64) error {
			w.replayed.Store(id)
			return st.MarkDelivery(ctx, id, store.DeliveryProcessed, "")
		})
	}
	ts := httptest.NewServer(api)
	t.Cleanup(ts.Close)
	w.url = ts.URL
	return w
}

// syncSection is the HTML of the element with the given id up to the next
// </section>: enough to tell what a part of the page lists.
func syncSection(t *testing.T, body, id string) string {
	t.Helper()
	i := strings.Index(body, `id="`+id+`"`)
	if i < 0 {
		t.Fatalf("no element with id %q in the page", id)
	}
	rest := body[i:]
	if j := strings.Index(rest, "</section>"); j >= 0 {
		rest = rest[:j]
	}
	return rest
}

func TestSyncPageShowsProjectsKindsRateLimitAndDeliveries(t *testing.T) {
	w := newSyncWorld(t, true, 3)
	code, body := page(t, w.url+"/sync")
	if code != 200 {
		t.Fatalf("GET /sync: %d\n%s", code, body)
	}
	projects := syncSection(t, body, "projects")
	for _, want := range []string{
		"acme/web", "tools/cli", "acme/gone",
		"stopped: GitLab answers 404", "404 Project Not Found", // why it stopped
		"pipelines: GitLab answered 500 Internal Server Error", // a failing kind's error
		"No poll of this project has finished yet",             // tools/new
		`class="row-bad"`,
	} {
		if !strings.Contains(projects, html.EscapeString(want)) && !strings.Contains(projects, want) {
			t.Errorf("projects section lacks %q", want)
		}
	}
	// The stopped project comes first, then the failing one, then the rest.
	if g, f, c := strings.Index(projects, "acme/gone"), strings.Index(projects, "acme/web"), strings.Index(projects, "tools/cli"); !(g < f && f < c) {
		t.Errorf("projects not ordered stopped, failing, fine: gone %d, web %d, cli %d", g, f, c)
	}
	summary := syncSection(t, body, "sync-summary")
	for _, want := range []string{
		`id="sync-active" data-value="3"`, `id="sync-errors" data-value="1"`, `id="sync-failed" data-value="1"`,
		// tools/new was never polled: left out of the date, and said so.
		`id="sync-incomplete" data-value="1"`,
		// The newest answer carrying RateLimit-Remaining, not the newest call.
		`data-value="1234"`, "1 refused (429)", "1 unanswered",
		// History is complete up to the oldest success of an active project.
		`datetime="2026-11-28T09:00:00Z"`,
	} {
		if !strings.Contains(summary, want) {
			t.Errorf("summary lacks %q:\n%s", want, summary)
		}
	}
	deliveries := syncSection(t, body, "deliveries")
	for _, id := range append([]int64{w.failedID}, w.okIDs...) {
		if !strings.Contains(deliveries, fmt.Sprintf(`action="/sync/deliveries/%d/replay"`, id)) {
			t.Errorf("delivery %d has no Replay form", id)
		}
	}
	if !strings.Contains(deliveries, fmt.Sprintf(`<tr id="delivery-%d" class="row-bad">`, w.failedID)) {
		t.Errorf("the failed delivery %d is not highlighted:\n%s", w.failedID, deliveries)
	}
	if strings.Contains(body, "Webhooks are off") {
		t.Error("webhooks are on, yet the page says they are off")
	}
	syncCheckLinks(t, w.url, body)
}

func TestSyncPageFilters(t *testing.T) {
	w := newSyncWorld(t, true, 3)
	_, all := page(t, w.url+"/sync")
	for _, c := range []struct {
		query        string
		shown, least []string
	}{
		{"project=acme/web", []string{"acme/web"}, []string{"acme/gone", "tools/cli"}},
		{"project=ACME/WEB&project=tools/cli", []string{"acme/web", "tools/cli"}, []string{"acme/gone"}},
		{"group=acme", []string{"acme/web", "acme/gone"}, []string{"tools/cli"}},
		{"project=3", []string{"tools/cli"}, []string{"acme/web", "acme/gone"}},
	} {
		code, body := page(t, w.url+"/sync?"+c.query)
		if code != 200 {
			t.Fatalf("%s: %d", c.query, code)
		}
		projects := syncSection(t, body, "projects")
		for _, p := range c.shown {
			if !strings.Contains(projects, "<strong>"+p+"</strong>") {
				t.Errorf("%s: %s not shown", c.query, p)
			}
		}
		for _, p := range c.least {
			if strings.Contains(projects, "<strong>"+p+"</strong>") {
				t.Errorf("%s: %s shown", c.query, p)
			}
		}
	}
	code, failed := page(t, w.url+"/sync?status=failed")
	if code != 200 {
		t.Fatal(code)
	}
	d := syncSection(t, failed, "deliveries")
	if !strings.Contains(d, fmt.Sprintf(`id="delivery-%d"`, w.failedID)) {
		t.Errorf("status=failed does not list the failed delivery")
	}
	for _, id := range w.okIDs {
		if strings.Contains(d, fmt.Sprintf(`id="delivery-%d"`, id)) {
			t.Errorf("status=failed lists processed delivery %d", id)
		}
		if !strings.Contains(all, fmt.Sprintf(`id="delivery-%d"`, id)) {
			t.Errorf("without a filter delivery %d is not listed", id)
		}
	}
	_, ignored := page(t, w.url+"/sync?status=ignored")
	if !strings.Contains(ignored, "No ignored delivery") {
		t.Errorf("status=ignored with none: no empty state")
	}
}

func TestSyncPageDeliveriesArePaged(t *testing.T) {
	w := newSyncWorld(t, true, 75)
	_, first := page(t, w.url+"/sync")
	m := regexp.MustCompile(`href="(/sync\?cursor=[^"#]+)#deliveries" rel="next"`).FindStringSubmatch(first)
	if m == nil {
		t.Fatal("75 deliveries and no link to older ones")
	}
	code, second := page(t, w.url+html.UnescapeString(m[1]))
	if code != 200 {
		t.Fatalf("older page: %d", code)
	}
	rows := regexp.MustCompile(`<tr id="delivery-(\d+)"`)
	seen := map[string]bool{}
	for _, body := range []string{first, second} {
		for _, r := range rows.FindAllStringSubmatch(body, -1) {
			if seen[r[1]] {
				t.Errorf("delivery %s listed on both pages", r[1])
			}
			seen[r[1]] = true
		}
	}
	if len(seen) != 75 {
		t.Errorf("the two pages list %d deliveries, want 75", len(seen))
	}
	if strings.Contains(second, `rel="next"`) {
		t.Error("the last page links to an older one")
	}
	syncCheckLinks(t, w.url, first)
	syncCheckLinks(t, w.url, second)
}

func TestSyncPageEmptyStates(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "empty.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	api := server.New(st, nil)
	api.SetHints(server.Hints{Webhooks: "webhooks are not set up: set LABTRAIL_WEBHOOK_SECRET to the webhook's Secret token"})
	ts := httptest.NewServer(api)
	t.Cleanup(ts.Close)
	code, body := page(t, ts.URL+"/sync")
	if code != 200 {
		t.Fatalf("empty store: %d\n%s", code, body)
	}
	for _, want := range []string{"Nothing synced yet", "labtrail sync", "Webhooks are off", "set LABTRAIL_WEBHOOK_SECRET", "docs/webhooks.md", "no GitLab call recorded yet"} {
		if !strings.Contains(body, want) && !strings.Contains(body, html.EscapeString(want)) {
			t.Errorf("empty page lacks %q", want)
		}
	}

	// Webhooks on, none received yet.
	w := newSyncWorld(t, true, 0)
	_, body = page(t, w.url+"/sync")
	if !strings.Contains(body, "No webhook delivery received yet") {
		t.Error("webhooks on and no delivery: no empty state")
	}
	// Webhooks off with deliveries stored from before: listed, no Replay.
	w = newSyncWorld(t, false, 2)
	_, body = page(t, w.url+"/sync")
	if !strings.Contains(body, "Webhooks are off") || !strings.Contains(body, fmt.Sprintf(`id="delivery-%d"`, w.failedID)) {
		t.Error("webhooks off: the page should say so and still list stored deliveries")
	}
	if strings.Contains(body, "/replay") {
		t.Error("webhooks off: a Replay button that could only fail")
	}
}

func TestSyncPageBadParameters(t *testing.T) {
	w := newSyncWorld(t, true, 2)
	for _, c := range []struct {
		query string
		code  int
		msg   string
	}{
		{"status=bogus", 400, "status must be"},
		{"projet=acme/web", 400, "unknown parameter"},
		{"project=nope/nope", 404, "unknown project"},
		{"group=nope", 404, "unknown group"},
		{"cursor=garbage", 400, "invalid cursor"},
		{"replayed=x", 400, "replayed must be"},
		{"status=failed&status=pending", 400, "more than once"},
	} {
		code, body := page(t, w.url+"/sync?"+c.query)
		if code != c.code || !strings.Contains(body, c.msg) {
			t.Errorf("/sync?%s: %d, want %d naming %q", c.query, code, c.code, c.msg)
		}
		if !strings.Contains(body, "<main") {
			t.Errorf("/sync?%s: the error is not a page", c.query)
		}
	}
}

// syncPost posts the Replay form with the given Origin ("" for none) and
// does not follow the redirect.
func syncPost(t *testing.T, u, origin string) *http.Response {
	t.Helper()
	req, err := http.NewRequest("POST", u, strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "text/html")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func TestSyncPageReplay(t *testing.T) {
	w := newSyncWorld(t, true, 3)
	replay := fmt.Sprintf("%s/sync/deliveries/%d/replay", w.url, w.failedID)

	// From another site: refused, nothing replayed.
	if resp := syncPost(t, replay, "https://evil.example"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site replay: %d, want 403", resp.StatusCode)
	}
	if resp := syncPost(t, replay, "null"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("replay from an opaque origin: %d, want 403", resp.StatusCode)
	}
	if w.replayed.Load() != 0 {
		t.Fatal("a refused replay ran")
	}

	// From the page itself, the filter kept: 303 back, the delivery replayed.
	resp := syncPost(t, replay+"?status=failed", w.url)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("replay: %d, want 303", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Path != "/sync" || loc.Query().Get("status") != "failed" || loc.Query().Get("replayed") != fmt.Sprint(w.failedID) {
		t.Fatalf("replay redirected to %q", resp.Header.Get("Location"))
	}
	if w.replayed.Load() != w.failedID {
		t.Fatalf("replay ran for %d, want %d", w.replayed.Load(), w.failedID)
	}
	code, body := page(t, w.url+loc.RequestURI())
	if code != 200 || !strings.Contains(body, fmt.Sprintf("Delivery %d (Merge Request Hook) was replayed: it is now", w.failedID)) ||
		!strings.Contains(syncSection(t, body, "replay-result"), "processed") {
		t.Errorf("after the replay the page does not say how it went: %d", code)
	}

	// No Origin at all (curl, a script): allowed, as the API's replay is.
	if resp := syncPost(t, fmt.Sprintf("%s/sync/deliveries/%d/replay", w.url, w.okIDs[0]), ""); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("replay without Origin: %d, want 303", resp.StatusCode)
	}
	for _, c := range []struct {
		path string
		code int
	}{
		{"/sync/deliveries/999999/replay", 404},
		{"/sync/deliveries/abc/replay", 400},
		{"/sync/deliveries/0/replay", 400},
		{fmt.Sprintf("/sync/deliveries/%d/replay?bogus=1", w.failedID), 400},
	} {
		if resp := syncPost(t, w.url+c.path, w.url); resp.StatusCode != c.code {
			t.Errorf("POST %s: %d, want %d", c.path, resp.StatusCode, c.code)
		}
	}

	// Webhooks off: the replay cannot run, and says why.
	off := newSyncWorld(t, false, 1)
	if resp := syncPost(t, fmt.Sprintf("%s/sync/deliveries/%d/replay", off.url, off.failedID), off.url); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("replay with webhooks off: %d, want 503", resp.StatusCode)
	}
}

// syncCheckLinks fetches every same-host link in body's <main>: each must
// answer 200. (The layout's navigation is the browser test's to follow.)
func syncCheckLinks(t *testing.T, base, body string) {
	t.Helper()
	if i, j := strings.Index(body, "<main"), strings.Index(body, "</main>"); i >= 0 && j > i {
		body = body[i:j]
	}
	seen := map[string]bool{}
	for _, m := range regexp.MustCompile(`href="([^"]+)"`).FindAllStringSubmatch(body, -1) {
		href := html.UnescapeString(m[1])
		if i := strings.Index(href, "#"); i >= 0 {
			href = href[:i]
		}
		if href == "" || !strings.HasPrefix(href, "/") || strings.HasPrefix(href, "//") || seen[href] {
			continue
		}
		seen[href] = true
		resp, err := http.Get(base + href)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("link %s: %d", href, resp.StatusCode)
		}
	}
	if len(seen) == 0 {
		t.Error("no link found")
	}
}
