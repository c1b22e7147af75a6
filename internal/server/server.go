// Package server is labtrail's HTTP face: the JSON API over the store, the
// dashboard's pages, and health checks.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labtrail/labtrail/internal/auth"
	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/metrics"
	"github.com/labtrail/labtrail/internal/store"
)

// Store is what the server reads: events, projects and their sync state,
// webhook deliveries and the audit log. A store.Store is one; a consumer
// built on another backend implements only these roles.
type Store interface {
	store.EventStore
	store.ProjectStore
	store.DeliveryStore
	store.AuditStore
	store.DigestStore
	// Ping reports whether the store can serve requests.
	Ping(ctx context.Context) error
}

// HookTestResult is the outcome of one project's webhook test, as
// POST /api/v1/webhooks/test reports it.
type HookTestResult struct {
	Project string `json:"project"`
	HookID  int64  `json:"hook_id,omitempty"`
	OK      bool   `json:"ok"`
	Error   string `json:"error,omitempty"`
}

// Hints tell a user how to turn on an endpoint that is off. Whoever runs
// the server words them, in terms of its own settings.
type Hints struct {
	// Webhooks answers POST /api/v1/webhooks/gitlab without EnableWebhooks.
	Webhooks string
	// WebhookTest answers POST /api/v1/webhooks/test without
	// EnableWebhooks and EnableWebhookTest.
	WebhookTest string
}

// Server serves the API. Build it with New; it is an http.Handler.
type Server struct {
	store Store
	log   *slog.Logger
	mux   *http.ServeMux
	hints Hints

	webhook   http.Handler
	replay    func(ctx context.Context, id int64) error
	testHooks func(ctx context.Context) ([]HookTestResult, error)
	delivery  *metrics.Metrics // EnableMetrics
	telemetry http.Handler     // Telemetry's, by EnableTelemetry
	// webhookRead bounds reading one webhook's body (Timeouts.WebhookRead);
	// zero leaves the server's read deadline.
	webhookRead, write time.Duration

	routes   []route
	tokens   *auth.Tokens // EnableAuth; nil: access control off
	authOpts AuthOptions
	sessions *auth.Sessions
	oauth    *auth.GitLabOAuth // EnableGitLabSignin
	limits   limiters
	reported DeploymentReported // OnDeploymentReported

	connections Connections // EnableConnections
}

// route is one method and path, what it needs and what answers it.
type route struct {
	method, path string
	need         auth.Scope
	h            http.HandlerFunc
	limit        *limitRule // per caller, when set
	action       string     // the admin audit's name for it, when it is an admin action
}

// New returns a server reading from st.
func New(st Store, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	s := &Server{store: visibleStore{st}, log: log, mux: http.NewServeMux(), hints: Hints{
		Webhooks:    "webhooks are not set up on this server",
		WebhookTest: "the webhook test is not set up on this server",
	}}
	read, admin := auth.ScopeRead, auth.ScopeAdmin
	s.routes = []route{
		{method: "GET", path: "/healthz", need: scopeOpen, h: s.healthz},
		{method: "GET", path: "/readyz", need: scopeOpen, h: s.readyz},
		{method: "GET", path: "/api/v1/events", need: read, h: s.listEvents},
		{method: "GET", path: "/api/v1/events/{id}", need: read, h: s.getEvent},
		{method: "GET", path: "/api/v1/projects", need: read, h: s.projects},
		{method: "GET", path: "/api/v1/sync/status", need: read, h: s.syncStatus},
		{method: "GET", path: "/api/v1/audit", need: admin, h: s.audit},
		{method: "GET", path: "/api/v1/admin/audit", need: admin, h: s.adminAudit},
		{method: "GET", path: "/api/v1/metrics/dora", need: read, h: serveMetric(s, (*metrics.Metrics).DORA)},
		{method: "GET", path: "/api/v1/metrics/merge-requests", need: read, h: serveMetric(s, (*metrics.Metrics).MergeRequests)},
		{method: "GET", path: "/api/v1/metrics/pipelines", need: read, h: serveMetric(s, (*metrics.Metrics).Pipelines)},
		{method: "GET", path: "/api/v1/changes/before", need: read, h: s.changesBefore},
		{method: "POST", path: "/api/v1/webhooks/gitlab", need: scopeOpen, h: s.receiveWebhook}, // its own secret
		{method: "GET", path: "/api/v1/webhooks/deliveries", need: read, h: s.deliveries},
		{method: "POST", path: "/api/v1/webhooks/deliveries/{id}/replay", need: admin, h: s.replayDelivery, limit: replayLimit, action: "delivery.replay"},
		{method: "POST", path: "/api/v1/webhooks/test", need: admin, h: s.testWebhooks, limit: hookTestLimit, action: "webhook.test"},
		{method: "GET", path: "/metrics", need: scopeMetrics, h: s.serveMetrics},
		{method: "GET", path: "/{$}", need: read, h: s.overview},
		{method: "GET", path: "/merge-requests", need: read, h: s.mergeRequestsPage},
		{method: "GET", path: "/pipelines", need: read, h: s.pipelinesPage},
		{method: "GET", path: "/deployments", need: read, h: s.deploymentsPage},
		{method: "GET", path: "/timeline", need: read, h: s.timelinePage},
		{method: "GET", path: "/events/{id}", need: read, h: s.eventPage},
		{method: "GET", path: "/static/{path...}", need: scopeOpen, h: s.serveStatic},
		{method: "GET", path: "/sync", need: read, h: s.syncPage},
		{method: "POST", path: "/sync/deliveries/{id}/replay", need: admin, h: s.replayPage, limit: replayLimit, action: "delivery.replay"},
		{method: "GET", path: "/signin", need: scopeOpen, h: s.signinPage},
		{method: "POST", path: "/signin", need: scopeOpen, h: s.signin, limit: signinLimit},
		{method: "POST", path: "/signout", need: scopeOpen, h: s.signout},
		{method: "POST", path: "/api/v1/deployments", need: auth.ScopeDeploy, h: s.reportDeployment},
		{method: "POST", path: "/api/v1/webhooks/gitlab/{connection}", need: scopeOpen, h: s.receiveConnectionWebhook}, // its connection's secret
		{method: "GET", path: "/api/v1/admin/connections", need: admin, h: s.listConnections},
		{method: "POST", path: "/api/v1/admin/connections", need: admin, h: s.addConnection, action: "connection.add"},
		{method: "DELETE", path: "/api/v1/admin/connections/{id}", need: admin, h: s.removeConnection, action: "connection.remove"},
		{method: "GET", path: "/api/v1/export", need: read, h: s.exportEvents},
		{method: "GET", path: "/auth/gitlab", need: scopeOpen, h: s.gitlabSignin, limit: signinLimit},
		{method: "GET", path: "/auth/gitlab/callback", need: scopeOpen, h: s.gitlabCallback, limit: signinLimit},
	}
	allowed := map[string][]string{}
	var paths []string
	for _, rt := range s.routes {
		s.mux.HandleFunc(rt.method+" "+rt.path, s.guard(rt))
		if allowed[rt.path] == nil {
			paths = append(paths, rt.path)
		}
		allowed[rt.path] = append(allowed[rt.path], rt.method)
		if rt.method == "GET" {
			allowed[rt.path] = append(allowed[rt.path], "HEAD")
		}
	}
	// A known path asked with another method gets 405 and the methods it
	// takes, in JSON like every other error; ServeMux's own would be text.
	for _, p := range paths {
		allow := strings.Join(allowed[p], ", ")
		s.mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			s.pageError(w, r, http.StatusMethodNotAllowed, r.Method+" is not allowed on "+r.URL.Path+"; use "+allow)
		})
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.pageError(w, r, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	return s
}

// SetHints replaces the default hints.
func (s *Server) SetHints(h Hints) {
	if h.Webhooks != "" {
		s.hints.Webhooks = h.Webhooks
	}
	if h.WebhookTest != "" {
		s.hints.WebhookTest = h.WebhookTest
	}
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// apiError is an error with the status and message a user should see.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &apiError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

// fail answers err: its own status for an apiError, 404 for a missing
// record, and otherwise 500 with the details only in the log.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		writeError(w, ae.status, ae.msg)
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "not found")
	case errors.Is(err, context.Canceled):
		// the client went away; nobody reads the answer
	default:
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, "internal error")
	}
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		s.log.Warn("not ready", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": "store unavailable"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// limitParam reads a listing's limit: absent is 0 (the store's default).
func limitParam(v string) (int, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > store.MaxLimit {
		return 0, badRequest("limit must be a number from 1 to %d, got %q", store.MaxLimit, v)
	}
	return n, nil
}

// parseTime reads a time filter: an RFC 3339 time, or a date (2026-12-05)
// meaning its midnight UTC, inside the range every store holds.
func parseTime(name, v string) (time.Time, error) {
	ts, err := time.Parse(time.RFC3339, v)
	if err != nil {
		d, derr := time.Parse(time.DateOnly, v)
		if derr != nil {
			return time.Time{}, badRequest("%s must be an RFC 3339 time such as 2024-05-01T00:00:00Z or a date such as 2024-05-01, got %q", name, v)
		}
		ts = d
	}
	ts = ts.UTC()
	if ts.IsZero() || !store.InTimeRange(ts) {
		return time.Time{}, badRequest("%s %s is outside the range labtrail stores, %s", name, v, store.TimeRange())
	}
	return ts, nil
}

// parseWindow reads since and until (since before until) with parseTime.
func parseWindow(get func(string) string) (since, until time.Time, err error) {
	for _, t := range []struct {
		name string
		dst  *time.Time
	}{{"since", &since}, {"until", &until}} {
		if v := get(t.name); v != "" {
			if *t.dst, err = parseTime(t.name, v); err != nil {
				return since, until, err
			}
		}
	}
	if !since.IsZero() && !until.IsZero() && !until.After(since) {
		return since, until, badRequest("until must be after since")
	}
	return since, until, nil
}

// values are a repeated parameter's non-empty values, trimmed.
func values(q url.Values, k string) []string {
	var out []string
	for _, v := range q[k] {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// parseFilter reads the events listing's query parameters. A repeated
// kind, project, author or state means any of its values; a project (an
// id or a path) must be one the store knows, or the answer is 404.
func (s *Server) parseFilter(ctx context.Context, q url.Values) (store.Filter, error) {
	get := func(k string) string {
		if v := values(q, k); len(v) > 0 {
			return v[0]
		}
		return ""
	}
	var f store.Filter
	for _, v := range values(q, "kind") {
		k, err := change.ParseKind(v)
		if err != nil {
			return f, badRequest("%s", err)
		}
		f.Kinds = append(f.Kinds, k)
	}
	if ps := values(q, "project"); len(ps) > 0 {
		ids, err := s.projectIDs(ctx, ps)
		if err != nil {
			return f, err
		}
		f.ProjectIDs = ids
	}
	f.Authors = values(q, "author")
	f.States = values(q, "state")
	f.Connections = values(q, "connection")
	var err error
	if f.Since, f.Until, err = parseWindow(get); err != nil {
		return f, err
	}
	if f.Limit, err = limitParam(get("limit")); err != nil {
		return f, err
	}
	f.Cursor = get("cursor")
	return f, nil
}

// projectIDs resolves project filters, ids or paths (any case, as GitLab
// reads them), to the ids of stored projects: a path stands for its
// project's id, so its events from before a rename are listed too.
func (s *Server) projectIDs(ctx context.Context, refs []string) ([]int64, error) {
	ps, err := s.store.Projects(ctx)
	if err != nil {
		return nil, err
	}
	return idsOf(ps, refs)
}

// idsOf is projectIDs over the stored projects ps.
func idsOf(ps []store.Project, refs []string) ([]int64, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	return selectionError(store.SelectProjects(ps, refs, nil))
}

type eventsPage struct {
	Events     []change.Event `json:"events"`
	NextCursor string         `json:"next_cursor,omitempty"`
}

func (s *Server) listEvents(w http.ResponseWriter, r *http.Request) {
	f, err := s.parseFilter(r.Context(), r.URL.Query())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	page, err := s.store.List(r.Context(), f)
	if err != nil {
		if f.Cursor != "" && errors.Is(err, store.ErrInvalidCursor) {
			err = badRequest("invalid cursor: pass next_cursor from a previous answer unchanged")
		}
		s.fail(w, r, err)
		return
	}
	if page.Events == nil {
		page.Events = []change.Event{}
	}
	for i := range page.Events {
		page.Events[i].SafeURLs("")
	}
	writeJSON(w, http.StatusOK, eventsPage{Events: page.Events, NextCursor: page.NextCursor})
}

func (s *Server) getEvent(w http.ResponseWriter, r *http.Request) {
	ev, tl, err := s.store.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			err = &apiError{http.StatusNotFound, "no event with id " + strconv.Quote(r.PathValue("id"))}
		}
		s.fail(w, r, err)
		return
	}
	// A second line of defence: what was stored before URLs were checked
	// where events are made is not handed out either (withLinks, NewRecorded).
	v, err := s.withLinks(r.Context(), ev, tl)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// connProject is a project with the connection it is of.
type connProject struct {
	store.Project
	Connection string `json:"connection"`
}

// connSyncState is a sync state with the connection it is of.
type connSyncState struct {
	store.SyncState
	Connection string `json:"connection"`
}

func (s *Server) projects(w http.ResponseWriter, r *http.Request) {
	stores, err := s.projectStores(r.Context(), r.URL.Query().Get("connection"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := []connProject{}
	for _, c := range stores {
		ps, err := c.Store.Projects(r.Context())
		if err != nil {
			s.fail(w, r, err)
			return
		}
		for _, p := range ps {
			out = append(out, connProject{p, c.Name})
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"projects": out})
}

func (s *Server) syncStatus(w http.ResponseWriter, r *http.Request) {
	stores, err := s.projectStores(r.Context(), r.URL.Query().Get("connection"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// Projects labtrail stopped syncing (gone, access lost) are listed with
	// the reason, so a silent gap in history has an explanation.
	type projectStatus struct {
		ID         int64     `json:"id"`
		Path       string    `json:"path"`
		Status     string    `json:"status"`
		Detail     string    `json:"detail,omitempty"`
		Since      time.Time `json:"since"`
		Connection string    `json:"connection"`
	}
	sts, statuses := []connSyncState{}, []projectStatus{}
	for _, c := range stores {
		ss, err := c.Store.SyncStates(r.Context())
		if err != nil {
			s.fail(w, r, err)
			return
		}
		for _, st := range ss {
			sts = append(sts, connSyncState{st, c.Name})
		}
		ps, err := c.Store.Projects(r.Context())
		if err != nil {
			s.fail(w, r, err)
			return
		}
		for _, p := range ps {
			statuses = append(statuses, projectStatus{p.ID, p.Path, p.Status, p.StatusDetail, p.StatusAt, c.Name})
		}
	}
	// Digests sent or failing (docs/digests.md).
	digests, err := s.digestSends(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"sync": sts, "projects": statuses, "digests": digests})
}

// audit lists recorded GitLab API calls, newest first.
func (s *Server) audit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.AuditFilter{Job: q.Get("job"), PathPrefix: q.Get("path"), Cursor: q.Get("cursor")}
	var err error
	if f.Since, f.Until, err = parseWindow(func(k string) string { return strings.TrimSpace(q.Get(k)) }); err != nil {
		s.fail(w, r, err)
		return
	}
	if v := q.Get("status"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 599 {
			s.fail(w, r, badRequest("status must be an HTTP status code, or 0 for calls that got no answer, got %q", v))
			return
		}
		f.Status = n
		if n == 0 {
			f.Status = -1
		}
	}
	if f.Limit, err = limitParam(q.Get("limit")); err != nil {
		s.fail(w, r, err)
		return
	}
	page, err := s.store.ListAudit(r.Context(), f)
	if err != nil {
		if errors.Is(err, store.ErrInvalidCursor) {
			err = badRequest("invalid cursor: pass next_cursor from a previous answer unchanged")
		}
		s.fail(w, r, err)
		return
	}
	if page.Entries == nil {
		page.Entries = []store.AuditEntry{}
	}
	writeJSON(w, http.StatusOK, struct {
		Entries    []store.AuditEntry `json:"entries"`
		NextCursor string             `json:"next_cursor,omitempty"`
	}{page.Entries, page.NextCursor})
}

// EnableWebhooks serves GitLab webhooks with h (ingest.WebhookHandler) and
// lets a stored delivery be processed again with replay.
func (s *Server) EnableWebhooks(h http.Handler, replay func(ctx context.Context, id int64) error) {
	s.webhook, s.replay = h, replay
}

func (s *Server) receiveWebhook(w http.ResponseWriter, r *http.Request) {
	if s.webhook == nil {
		writeError(w, http.StatusServiceUnavailable, s.hints.Webhooks)
		return
	}
	s.extendDeadlines(w)
	s.webhook.ServeHTTP(w, r)
}

func (s *Server) deliveries(w http.ResponseWriter, r *http.Request) {
	if s.refuseRestricted(w, r, "webhook deliveries") {
		return
	}
	q := r.URL.Query()
	f := store.DeliveryFilter{Status: q.Get("status"), Cursor: q.Get("cursor")}
	switch f.Status {
	case "", store.DeliveryPending, store.DeliveryProcessed, store.DeliveryStoredRaw, store.DeliveryIgnored, store.DeliveryFailed:
	default:
		s.fail(w, r, badRequest("status must be pending, processed, stored_raw, ignored or failed, got %q", f.Status))
		return
	}
	var err error
	if f.Limit, err = limitParam(q.Get("limit")); err != nil {
		s.fail(w, r, err)
		return
	}
	page, err := s.store.ListDeliveries(r.Context(), f)
	if err != nil {
		if errors.Is(err, store.ErrInvalidCursor) {
			err = badRequest("invalid cursor: pass next_cursor from a previous answer unchanged")
		}
		s.fail(w, r, err)
		return
	}
	if page.Deliveries == nil {
		page.Deliveries = []store.Delivery{}
	}
	writeJSON(w, http.StatusOK, struct {
		Deliveries []store.Delivery `json:"deliveries"`
		NextCursor string           `json:"next_cursor,omitempty"`
	}{page.Deliveries, page.NextCursor})
}

func (s *Server) replayDelivery(w http.ResponseWriter, r *http.Request) {
	id, err := s.replayByID(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"status": "queued", "delivery_id": id})
}

// EnableWebhookTest lets POST /api/v1/webhooks/test ask GitLab to send a
// test event through labtrail's webhooks and report how each project's went.
func (s *Server) EnableWebhookTest(test func(ctx context.Context) ([]HookTestResult, error)) {
	s.testHooks = test
}

func (s *Server) testWebhooks(w http.ResponseWriter, r *http.Request) {
	if s.webhook == nil || s.testHooks == nil {
		writeError(w, http.StatusServiceUnavailable, s.hints.WebhookTest)
		return
	}
	results, err := s.testHooks(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ok := len(results) > 0
	for _, res := range results {
		ok = ok && res.OK
	}
	if results == nil {
		results = []HookTestResult{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": ok, "results": results})
}
