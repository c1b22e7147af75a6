package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/labtrail/labtrail/internal/auth"
	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/gitlabsim"
	"github.com/labtrail/labtrail/internal/metrics"
	"github.com/labtrail/labtrail/internal/server"
	"github.com/labtrail/labtrail/internal/store"
	"github.com/labtrail/labtrail/internal/store/sqlite"
)

// gitlabWorld is labtrail signing people in with the simulated GitLab:
// four projects stored, each with a merge request; user sees the first
// and the third, admin is in LABTRAIL_ADMINS.
type gitlabWorld struct {
	sim         *gitlabsim.Sim
	simURL      string
	hs          *httptest.Server
	st          *sqlite.Store
	projects    []store.Project
	user, admin string
	oauthConf   auth.OAuthConfig
	dbPath      string
	logs        *syncBuffer
	seen        *strings.Builder // every browser's answers
	sessions    *auth.Sessions
	srv         *server.Server
}

func newGitLabWorld(t *testing.T) *gitlabWorld {
	t.Helper()
	ctx := context.Background()
	w := &gitlabWorld{sim: gitlabsim.New(gitlabsim.Options{Projects: 4, MRs: 2, Pipelines: 2})}
	simSrv := httptest.NewServer(w.sim)
	t.Cleanup(simSrv.Close)
	w.simURL = simSrv.URL
	w.dbPath = filepath.Join(t.TempDir(), "l.db")
	st, err := sqlite.Open(ctx, w.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	w.st = st

	req, _ := http.NewRequest("GET", simSrv.URL+"/api/v4/projects?order_by=id&sort=asc", nil)
	req.Header.Set("PRIVATE-TOKEN", "sim-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var ps []struct {
		ID   int64  `json:"id"`
		Path string `json:"path_with_namespace"`
	}
	err = json.NewDecoder(resp.Body).Decode(&ps)
	resp.Body.Close()
	if err != nil || len(ps) != 4 {
		t.Fatalf("the simulator's projects: %v %d", err, len(ps))
	}
	at := time.Now().UTC().Add(-24 * time.Hour).Truncate(time.Second)
	for _, p := range ps {
		w.projects = append(w.projects, store.Project{ID: p.ID, Path: p.Path, Name: p.Path})
		ev := change.Event{ID: change.MergeRequestID(p.ID, 1), Kind: change.KindMergeRequest, ProjectID: p.ID, ProjectPath: p.Path,
			Title: "change in " + p.Path, State: "merged", Author: "alice", CreatedAt: at, UpdatedAt: at, OccurredAt: at,
			Source: change.SourcePoll, Attrs: map[string]any{"iid": 1, "merged_at": at.Format(time.RFC3339)}}
		if _, err := st.Upsert(ctx, ev); err != nil {
			t.Fatal(err)
		}
		if err := st.PutSyncState(ctx, store.SyncState{ProjectID: p.ID, ProjectPath: p.Path, Kind: change.KindMergeRequest, Cursor: at}); err != nil {
			t.Fatal(err)
		}
	}
	// An added connection's event of a project with the same id as one
	// of the default GitLab's: another GitLab's project.
	at2 := at.Add(time.Hour)
	if _, err := st.Upsert(ctx, change.Event{ID: store.ConnectionEventID("second", change.MergeRequestID(ps[0].ID, 1)), Kind: change.KindMergeRequest,
		ProjectID: ps[0].ID, ProjectPath: "elsewhere/x", Title: "change in another GitLab", State: "opened", Author: "zed",
		CreatedAt: at2, UpdatedAt: at2, OccurredAt: at2, Source: change.SourcePoll, Attrs: map[string]any{"iid": 1}}); err != nil {
		t.Fatal(err)
	}
	if err := st.PutProjects(ctx, w.projects...); err != nil {
		t.Fatal(err)
	}

	names := w.sim.Usernames()
	w.user, w.admin = names[1], names[2]
	for _, u := range []string{w.user, w.admin} {
		w.sim.SetPassword(u, "pw-"+u)
	}
	w.sim.SetMembership(w.user, w.projects[0].ID, w.projects[2].ID)
	w.sim.SetMembership(w.admin, w.projects[3].ID)

	w.logs = &syncBuffer{}
	w.srv = server.New(st, slog.New(slog.NewTextHandler(w.logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	w.srv.EnableMetrics(metrics.New(st, metrics.Config{}))
	tokens := auth.NewTokens(st)
	w.srv.EnableAuth(tokens, server.AuthOptions{Audit: st})
	w.sessions = auth.NewSessions(st, tokens, false)
	w.srv.EnableSessions(w.sessions)
	w.hs = httptest.NewServer(w.srv)
	t.Cleanup(w.hs.Close)

	redirect := w.hs.URL + "/auth/gitlab/callback"
	w.sim.AddOAuthApp(gitlabsim.OAuthApp{ID: "labtrail-app", Secret: "labtrail-secret", RedirectURIs: []string{redirect},
		Scopes: []string{"read_user", "read_api"}})
	w.oauthConf = auth.OAuthConfig{GitLabURL: simSrv.URL, ClientID: "labtrail-app", ClientSecret: "labtrail-secret",
		RedirectURL: redirect, Admins: []string{"@" + strings.ToUpper(w.admin)}}
	w.enable(t)
	return w
}

// enable (again) turns signing in with GitLab on, as a start of labtrail
// does: a new process's memory.
func (w *gitlabWorld) enable(t *testing.T) {
	t.Helper()
	g, err := auth.NewGitLabOAuth(w.oauthConf, w.sessions)
	if err != nil {
		t.Fatal(err)
	}
	w.srv.EnableGitLabSignin(g)
}

// syncBuffer is a log shared by the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

// browser is a person's browser: cookies, redirects followed; seen
// collects the answers it got.
type browser struct {
	t    *testing.T
	c    *http.Client
	w    *gitlabWorld
	seen *strings.Builder
}

func (w *gitlabWorld) browser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	if w.seen == nil {
		w.seen = &strings.Builder{}
	}
	return &browser{t: t, c: &http.Client{Jar: jar}, w: w, seen: w.seen}
}

func (b *browser) do(method, u string, form url.Values, accept string) (*http.Response, string) {
	b.t.Helper()
	if strings.HasPrefix(u, "/") {
		u = b.w.hs.URL + u
	}
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, u, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		o, _ := url.Parse(u)
		req.Header.Set("Origin", o.Scheme+"://"+o.Host)
	}
	req.Header.Set("Accept", accept)
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	b.seen.Write(data)
	for k, vs := range resp.Header {
		b.seen.WriteString(k + ": " + strings.Join(vs, ",") + "\n")
	}
	return resp, string(data)
}

func (b *browser) page(path string) (*http.Response, string) {
	return b.do("GET", path, nil, "text/html")
}

func (b *browser) api(path string, v any) int {
	b.t.Helper()
	resp, body := b.do("GET", path, nil, "application/json")
	if v != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal([]byte(body), v); err != nil {
			b.t.Fatalf("%s: %v", path, err)
		}
	}
	return resp.StatusCode
}

// signIn goes from a labtrail page through GitLab's sign-in and back, as
// a person does, and returns the page it ends on.
func (b *browser) signIn(user, next string) (*http.Response, string) {
	b.t.Helper()
	resp, body := b.page(next)
	if resp.Request.URL.Path != "/signin" || !strings.Contains(body, `id="signin-gitlab"`) {
		b.t.Fatalf("%s without a session: at %s, offering GitLab: %v", next, resp.Request.URL, strings.Contains(body, "signin-gitlab"))
	}
	link := regexp.MustCompile(`id="signin-gitlab" class="button" href="([^"]+)"`).FindStringSubmatch(body)
	if link == nil {
		b.t.Fatal("no Sign in with GitLab link")
	}
	resp, _ = b.page(strings.ReplaceAll(link[1], "&amp;", "&"))
	if !strings.HasPrefix(resp.Request.URL.String(), b.w.simURL+"/users/sign_in") {
		b.t.Fatalf("not at GitLab's sign-in: %s", resp.Request.URL)
	}
	return b.do("POST", b.w.simURL+"/users/sign_in", url.Values{"user[login]": {user}, "user[password]": {"pw-" + user}}, "text/html")
}

func (b *browser) cookie(name string) string {
	u, _ := url.Parse(b.w.hs.URL + "/auth/gitlab/callback")
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

func projectPaths(ps []store.Project) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Path)
	}
	slices.Sort(out)
	return out
}

// TestSignInWithGitLab: the whole sign-in against the simulated GitLab
// over real HTTP; the user then sees only their GitLab projects, in the
// API and on the pages, until GitLab says otherwise.
func TestSignInWithGitLab(t *testing.T) {
	w := newGitLabWorld(t)
	ctx := context.Background()
	b := w.browser(t)
	resp, body := b.signIn(w.user, "/timeline?window=all")
	if resp.StatusCode != http.StatusOK || resp.Request.URL.RequestURI() != "/timeline?window=all" || !strings.Contains(body, `class="who">gitlab:`+w.user+`<`) {
		t.Fatalf("signed in with GitLab: %d at %s", resp.StatusCode, resp.Request.URL)
	}
	mine, theirs := []store.Project{w.projects[0], w.projects[2]}, []store.Project{w.projects[1], w.projects[3]}
	// The timeline page shows the user's projects' changes, no other.
	for _, p := range mine {
		if !strings.Contains(body, "change in "+p.Path) {
			t.Errorf("the timeline lacks %s", p.Path)
		}
	}
	for _, p := range theirs {
		if strings.Contains(body, "change in "+p.Path) || strings.Contains(body, ">"+p.Path+"<") {
			t.Errorf("the timeline shows %s, not the user's", p.Path)
		}
	}
	if c := b.cookie(auth.OAuthCookie); c != "" {
		t.Errorf("the sign-in's cookie outlived it: %q", c)
	}

	// The API: listings, one event, filters, metrics, sync status.
	var projects struct{ Projects []store.Project }
	if b.api("/api/v1/projects", &projects) != 200 || !slices.Equal(projectPaths(projects.Projects), projectPaths(mine)) {
		t.Errorf("projects: %v, want %v", projectPaths(projects.Projects), projectPaths(mine))
	}
	var events struct{ Events []change.Event }
	if b.api("/api/v1/events?limit=100", &events) != 200 || len(events.Events) != 2 {
		t.Errorf("events: %d, want the user's 2", len(events.Events))
	}
	for _, e := range events.Events {
		if e.ProjectID != mine[0].ID && e.ProjectID != mine[1].ID {
			t.Errorf("event %s of another project", e.ID)
		}
	}
	resp, body = b.do("GET", "/api/v1/export", nil, "application/x-ndjson")
	if lines := strings.Count(strings.TrimSpace(body), "\n") + 1; resp.StatusCode != 200 || lines != 2 || strings.Contains(body, "another GitLab") {
		t.Errorf("export: %d, %d lines, want the user's 2", resp.StatusCode, lines)
	}
	if got := b.api("/api/v1/events/"+store.ConnectionEventID("second", change.MergeRequestID(mine[0].ID, 1)), nil); got != http.StatusNotFound {
		t.Errorf("another GitLab's event of a project with the same id: %d, want 404", got)
	}
	var sync struct {
		Sync     []store.SyncState
		Projects []struct{ ID int64 }
	}
	if b.api("/api/v1/sync/status", &sync) != 200 || len(sync.Sync) != 2 || len(sync.Projects) != 2 {
		t.Errorf("sync status: %d states, %d projects, want 2 and 2", len(sync.Sync), len(sync.Projects))
	}
	other := theirs[0]
	otherMR := change.MergeRequestID(other.ID, 1)
	for path, want := range map[string]int{
		"/api/v1/events/" + otherMR:                                                       http.StatusNotFound,
		"/api/v1/events/" + change.MergeRequestID(mine[0].ID, 1):                          http.StatusOK,
		"/api/v1/events?project=" + strconv.FormatInt(other.ID, 10):                       http.StatusNotFound,
		"/api/v1/events?project=" + url.QueryEscape(other.Path):                           http.StatusNotFound,
		"/api/v1/metrics/dora?project=" + strconv.FormatInt(other.ID, 10):                 http.StatusNotFound,
		"/api/v1/changes/before?incident=issue-" + strconv.FormatInt(other.ID, 10) + "-1": http.StatusNotFound,
		"/api/v1/webhooks/deliveries":                                                     http.StatusForbidden,
		"/api/v1/admin/audit":                                                             http.StatusForbidden,
	} {
		if got := b.api(path, nil); got != want {
			t.Errorf("GET %s: %d, want %d", path, got, want)
		}
	}
	if resp, _ := b.page("/events/" + otherMR); resp.StatusCode != http.StatusNotFound {
		t.Errorf("the page of another project's event: %d, want 404", resp.StatusCode)
	}
	if resp, body := b.page("/events/" + change.MergeRequestID(mine[1].ID, 1)); resp.StatusCode != 200 || !strings.Contains(body, "change in "+mine[1].Path) {
		t.Errorf("the page of the user's event: %d", resp.StatusCode)
	}
	// Metrics over every project the user sees are the user's projects'.
	var mrs struct{ Merged int }
	if b.api("/api/v1/metrics/merge-requests?since=2000-01-01", &mrs) != 200 || mrs.Merged != 2 {
		t.Errorf("merge-request metrics count %d merged, want the user's 2", mrs.Merged)
	}
	for _, page := range []string{"/", "/merge-requests", "/pipelines", "/deployments", "/sync"} {
		resp, body := b.page(page)
		if resp.StatusCode != 200 {
			t.Errorf("%s: %d", page, resp.StatusCode)
		}
		for _, p := range theirs {
			if strings.Contains(body, p.Path) {
				t.Errorf("%s names %s, not the user's", page, p.Path)
			}
		}
	}

	// A form post of the session without its form token is refused.
	if resp, _ := b.do("POST", "/signout", url.Values{}, "text/html"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("sign out without the form token: %d, want 403", resp.StatusCode)
	}

	// GitLab's membership changes; once the kept list is due, the user's
	// own token reads it again.
	w.sim.SetMembership(w.user, w.projects[1].ID)
	if b.api("/api/v1/projects", &projects) != 200 || len(projects.Projects) != 2 {
		t.Errorf("the kept list was read again before it was due: %v", projectPaths(projects.Projects))
	}
	h := auth.HashToken(b.cookieAt(auth.SessionCookie))
	se, err := w.st.SessionByHash(ctx, h)
	if err != nil || se.Kind != "oauth" || se.Name != w.user || se.UserID == 0 || len(se.Projects) != 2 {
		t.Fatalf("the stored session: %+v %v", se, err)
	}
	if err := w.st.SetSessionProjects(ctx, h, se.Projects, time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	w.sim.ExpireOAuthTokens() // the access token too: refreshed on the way
	if b.api("/api/v1/projects", &projects) != 200 || !slices.Equal(projectPaths(projects.Projects), []string{w.projects[1].Path}) {
		t.Errorf("after GitLab's change: %v, want %s", projectPaths(projects.Projects), w.projects[1].Path)
	}
	if got := b.api("/api/v1/events/"+change.MergeRequestID(mine[0].ID, 1), nil); got != http.StatusNotFound {
		t.Errorf("an event of a project the user left: %d", got)
	}

	// A new labtrail process holds no GitLab token: the session lasts
	// until its list is due, then the user signs in again.
	w.enable(t)
	if b.api("/api/v1/projects", nil) != 200 {
		t.Error("a session whose list is not due ended with the process")
	}
	if err := w.st.SetSessionProjects(ctx, h, []int64{w.projects[1].ID}, time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if resp, _ := b.page("/pipelines"); resp.Request.URL.Path != "/signin" {
		t.Errorf("without its GitLab token, a due session still shows %s", resp.Request.URL)
	}

	// The session's own end.
	b = w.browser(t)
	b.signIn(w.user, "/")
	if _, err := w.st.DB().ExecContext(ctx, `UPDATE sessions SET expires_at = ? WHERE id_hash = ?`,
		time.Now().Add(-time.Second).UnixNano(), auth.HashToken(b.cookieAt(auth.SessionCookie))); err != nil {
		t.Fatal(err)
	}
	if resp, _ := b.page("/timeline"); resp.Request.URL.Path != "/signin" {
		t.Errorf("an expired session still shows %s", resp.Request.URL)
	}
	if got := b.api("/api/v1/events", nil); got != http.StatusUnauthorized {
		t.Errorf("an expired session's API call: %d, want 401", got)
	}

	// No code, GitLab token, client secret or password is in the
	// database, the log or an answer.
	db, _ := os.ReadFile(w.dbPath)
	wal, _ := os.ReadFile(w.dbPath + "-wal")
	secrets := append(w.sim.OAuthSecrets(), "labtrail-secret", "pw-"+w.user)
	if len(secrets) < 8 {
		t.Fatalf("the simulator issued %d secrets", len(secrets))
	}
	for _, secret := range secrets {
		for where, b := range map[string][]byte{"the database": db, "the WAL": wal, "the log": w.logs.Bytes(), "the answers": []byte(w.seen.String())} {
			if bytes.Contains(b, []byte(secret)) {
				t.Errorf("a secret of the sign-in is in %s", where)
			}
		}
	}

	// The sign-ins are in the admin audit trail, by GitLab username.
	as, _ := w.st.AdminActions(ctx, 0, 100)
	n := 0
	for _, a := range as {
		if a.Action == "signin" && a.Actor == "gitlab:"+w.user && a.OK {
			n++
		}
	}
	if n != 2 {
		t.Errorf("admin audit: %d GitLab sign-ins of %s, want 2", n, w.user)
	}
}

func (b *browser) cookieAt(name string) string {
	u, _ := url.Parse(b.w.hs.URL + "/")
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	b.t.Fatalf("no %s cookie", name)
	return ""
}

// TestSignInWithGitLabAdmin: a user named in LABTRAIL_ADMINS is an admin
// and sees every project, whatever their GitLab membership.
func TestSignInWithGitLabAdmin(t *testing.T) {
	w := newGitLabWorld(t)
	b := w.browser(t)
	resp, body := b.signIn(w.admin, "/sync")
	if resp.StatusCode != 200 || resp.Request.URL.Path != "/sync" || !strings.Contains(body, "gitlab:"+w.admin) {
		t.Fatalf("admin signed in: %d at %s", resp.StatusCode, resp.Request.URL)
	}
	var projects struct{ Projects []store.Project }
	if b.api("/api/v1/projects", &projects) != 200 || len(projects.Projects) != 4 {
		t.Errorf("an admin sees %d projects, want 4", len(projects.Projects))
	}
	var events struct{ Events []change.Event }
	if b.api("/api/v1/events?limit=100", &events) != 200 || len(events.Events) != 5 {
		t.Errorf("an admin sees %d events, want every connection's 5", len(events.Events))
	}
	var mrs struct{ Merged int }
	if b.api("/api/v1/metrics/merge-requests?since=2000-01-01", &mrs) != 200 || mrs.Merged != 4 {
		t.Errorf("merge-request metrics count %d merged, want every project's 4", mrs.Merged)
	}
	for path, want := range map[string]int{"/api/v1/admin/audit": 200, "/api/v1/webhooks/deliveries": 200} {
		if got := b.api(path, nil); got != want {
			t.Errorf("GET %s as admin: %d, want %d", path, got, want)
		}
	}
	// An admin's form posts carry the form token too.
	if resp, _ := b.do("POST", "/sync/deliveries/1/replay", url.Values{}, "text/html"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a replay without the form token: %d, want 403", resp.StatusCode)
	}
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(body)
	if csrf == nil {
		t.Fatal("the page has no form token")
	}
	if resp, _ := b.do("POST", "/signout", url.Values{"csrf": {csrf[1]}}, "text/html"); resp.Request.URL.Path != "/signin" {
		t.Errorf("sign out ended at %s", resp.Request.URL)
	}
	if got := b.api("/api/v1/projects", nil); got != http.StatusUnauthorized {
		t.Errorf("after signing out: %d", got)
	}
}

// TestSignInWithGitLabRefusals: a callback whose state is not the
// browser's, a verifier that is not the challenge's, and a callback with
// no sign-in started are refused with 400, and start no session.
func TestSignInWithGitLabRefusals(t *testing.T) {
	w := newGitLabWorld(t)
	// authorizeCode starts a sign-in and lets GitLab answer, stopping
	// before labtrail's callback; it returns the callback's URL.
	authorizeCode := func(b *browser) *url.URL {
		var cb *url.URL
		b.c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
			if req.URL.Path == "/auth/gitlab/callback" {
				cb = req.URL
				return http.ErrUseLastResponse
			}
			return nil
		}
		defer func() { b.c.CheckRedirect = nil }()
		b.page("/auth/gitlab?next=/pipelines")
		b.do("POST", w.simURL+"/users/sign_in", url.Values{"user[login]": {w.user}, "user[password]": {"pw-" + w.user}}, "text/html")
		if cb == nil || cb.Query().Get("code") == "" {
			t.Fatalf("GitLab sent no code back: %v", cb)
		}
		return cb
	}
	refused := func(name string, b *browser, u string) {
		t.Helper()
		resp, body := b.page(u)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "signin-error") {
			t.Errorf("%s: %d, want 400 on the sign-in page", name, resp.StatusCode)
		}
		if b.api("/api/v1/projects", nil) != http.StatusUnauthorized {
			t.Errorf("%s started a session", name)
		}
	}

	b := w.browser(t)
	cb := authorizeCode(b)
	q := cb.Query()
	q.Set("state", "forged"+q.Get("state"))
	refused("a wrong state", b, cb.Path+"?"+q.Encode())

	b = w.browser(t)
	cb = authorizeCode(b)
	// Another sign-in's verifier in the cookie: GitLab refuses the code.
	v, _ := url.ParseQuery(b.cookie(auth.OAuthCookie))
	v.Set("v", "x"+v.Get("v"))
	u, _ := url.Parse(w.hs.URL + "/auth/gitlab")
	b.c.Jar.SetCookies(u, []*http.Cookie{{Name: auth.OAuthCookie, Value: v.Encode(), Path: "/auth/gitlab"}})
	refused("a wrong verifier", b, cb.RequestURI())

	// A callback in a browser that started no sign-in (a link sent to
	// someone else: login CSRF).
	b = w.browser(t)
	cb = authorizeCode(b)
	refused("another browser's callback", w.browser(t), cb.RequestURI())
	// GitLab refusing the request comes back as an error.
	b = w.browser(t)
	authorizeCode(b)
	refused("GitLab's access_denied", b, fmt.Sprintf("/auth/gitlab/callback?error=access_denied&state=%s", url.QueryEscape(mustState(t, b))))

	as, _ := w.st.AdminActions(context.Background(), 0, 100)
	failed := 0
	for _, a := range as {
		if a.Action == "signin.failed" && strings.HasPrefix(a.Detail, "GitLab: ") {
			failed++
		}
	}
	if failed != 4 {
		t.Errorf("admin audit: %d failed GitLab sign-ins, want 4", failed)
	}
}

func mustState(t *testing.T, b *browser) string {
	v, _ := url.ParseQuery(b.cookie(auth.OAuthCookie))
	if v.Get("s") == "" {
		t.Fatal("no sign-in in progress")
	}
	return v.Get("s")
}

// TestSignInWithGitLabNoProjects: a user who is a member of no project
// sees nothing, not everything.
func TestSignInWithGitLabNoProjects(t *testing.T) {
	w := newGitLabWorld(t)
	w.sim.SetMembership(w.user)
	b := w.browser(t)
	if resp, body := b.signIn(w.user, "/timeline?window=all"); resp.StatusCode != 200 || strings.Contains(body, "change in ") {
		t.Fatalf("the timeline of a user without projects: %d, lists changes: %s", resp.StatusCode, body)
	}
	var projects struct{ Projects []store.Project }
	var events struct{ Events []change.Event }
	var mrs struct{ Merged int }
	if b.api("/api/v1/projects", &projects) != 200 || len(projects.Projects) != 0 ||
		b.api("/api/v1/events", &events) != 200 || len(events.Events) != 0 ||
		b.api("/api/v1/metrics/merge-requests?since=2000-01-01", &mrs) != 200 || mrs.Merged != 0 {
		t.Errorf("a user without projects sees %d projects, %d events, %d merged", len(projects.Projects), len(events.Events), mrs.Merged)
	}
}

// TestBrowserSignInWithGitLab: the sign-in in a real headless Chromium:
// from a page of labtrail to the sign-in page, its "Sign in with GitLab",
// GitLab's form, and back to the page, signed in, the session cookie out
// of the page's reach, the user's projects only.
func TestBrowserSignInWithGitLab(t *testing.T) {
	exe := needChromium(t)
	w := newGitLabWorld(t)
	ctx := startBrowser(t, exe, &browserProblems{host: strings.TrimPrefix(w.hs.URL, "http://")})
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx,
		chromedp.Navigate(w.hs.URL+"/timeline?window=all"),
		chromedp.Click(chromedp.ID("signin-gitlab")),
		chromedp.WaitVisible(chromedp.ID("user_login")),
		chromedp.SendKeys(chromedp.ID("user_login"), w.user),
		chromedp.SendKeys(chromedp.ID("user_password"), "pw-"+w.user),
		chromedp.Submit(chromedp.ID("user_password")),
		chromedp.WaitVisible(chromedp.CSS("span.who")),
	); err != nil {
		t.Fatalf("signing in with GitLab in Chromium: %v", err)
	}
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	who, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("span.who")))
	if loc != w.hs.URL+"/timeline?window=all" || who != "gitlab:"+w.user {
		t.Fatalf("signed in at %s as %q", loc, who)
	}
	shown := eval[string](t, ctx, `document.querySelector('main').innerText`)
	for i, p := range w.projects {
		if mine := i == 0 || i == 2; strings.Contains(shown, "change in "+p.Path) != mine {
			t.Errorf("the timeline shows %s: %v, want %v", p.Path, !mine, mine)
		}
	}
	if c := eval[string](t, ctx, `document.cookie`); strings.Contains(c, auth.SessionCookie) || strings.Contains(c, auth.OAuthCookie) {
		t.Errorf("the page's script reads the cookies: %q", c)
	}
}
