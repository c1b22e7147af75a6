package server

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/labtrail/labtrail/internal/auth"
	"github.com/labtrail/labtrail/internal/store"
)

// Access control (docs/security.md). Every route names the scope it needs
// (scopeOpen: none). With access control off, which New starts with,
// every request is an admin's; with it on (EnableAuth), a request proves
// who it is with an API token as a Bearer header, or a dashboard session
// (EnableSessions).

// scopeOpen is what the routes anyone may call need.
const scopeOpen = auth.ScopeNone

// scopeMetrics marks GET /metrics: open or read, as EnableAuth says.
const scopeMetrics auth.Scope = -1

// AuthOptions are EnableAuth's.
type AuthOptions struct {
	// MetricsPublic leaves GET /metrics open; else it needs read.
	MetricsPublic bool
	// Audit, when set, receives the admin actions.
	Audit store.AdminAuditor
}

// openPrincipal is every caller's when access control is off.
var openPrincipal = &auth.Principal{Kind: "open", Name: "anonymous", Scope: auth.ScopeAdmin}

// EnableAuth turns access control on: requests need a token (or a
// session) with the scope of their route.
func (s *Server) EnableAuth(tokens *auth.Tokens, o AuthOptions) {
	s.tokens, s.authOpts = tokens, o
}

// EnableSessions lets people sign in to the dashboard (GET and POST
// /signin) and makes requests without a Bearer token fall back to their
// session cookie. It needs EnableAuth.
func (s *Server) EnableSessions(sess *auth.Sessions) { s.sessions = sess }

// RouteAccess is a route and the scope it needs, as Routes lists them.
type RouteAccess struct {
	Method, Path string
	Scope        string // "open", "read", "deploy", "admin", or "metrics" (open or read)
	Limited      bool   // rate-limited per caller
}

// Routes lists every route the server answers with what it needs: the
// access matrix's test reads it, so a route added without an entry there
// fails it.
func (s *Server) Routes() []RouteAccess {
	out := make([]RouteAccess, 0, len(s.routes))
	for _, rt := range s.routes {
		name := rt.need.String()
		switch rt.need {
		case scopeOpen:
			name = "open"
		case scopeMetrics:
			name = "metrics"
		}
		out = append(out, RouteAccess{Method: rt.method, Path: rt.path, Scope: name, Limited: rt.limit != nil})
	}
	return out
}

// limitRule is how often a caller may do what a route does.
type limitRule struct {
	every time.Duration
	burst int
}

// Actions that spend GitLab's budget or queue work are limited per caller
// (token, session, or client address when anonymous).
var (
	replayLimit   = &limitRule{every: time.Second, burst: 20}     // 60 a minute after a burst of 20
	hookTestLimit = &limitRule{every: 10 * time.Second, burst: 3} // each test calls GitLab for every project
	signinLimit   = &limitRule{every: 6 * time.Second, burst: 10} // guessing a token is hopeless; flooding the store is not
)

// limiters hold each caller's buckets.
type limiters struct {
	mu sync.Mutex
	m  map[string]*rate.Limiter
}

func (l *limiters) allow(key string, rule *limitRule) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil || len(l.m) > 10000 {
		l.m = map[string]*rate.Limiter{} // bounded: forgetting callers only lets them start afresh
	}
	lim := l.m[key]
	if lim == nil {
		lim = rate.NewLimiter(rate.Every(rule.every), rule.burst)
		l.m[key] = lim
	}
	res := lim.Reserve()
	if d := res.Delay(); d > 0 {
		res.Cancel()
		return false, d
	}
	return true, 0
}

// guard wraps a route's handler with its access check, its rate limit
// and, for admin actions, the admin audit.
func (s *Server) guard(rt route) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		need := rt.need
		if need == scopeMetrics {
			need = auth.ScopeRead
			if s.tokens == nil || s.authOpts.MetricsPublic {
				need = scopeOpen
			}
		}
		if r.Method == http.MethodPost && need != scopeOpen && !sameOrigin(r) {
			// A page of another site may make a browser post here (CSRF),
			// with whatever cookie or no credential at all.
			s.pageError(w, r, http.StatusForbidden, "this request came from another site's page (its Origin or Sec-Fetch-Site says so); labtrail refuses it")
			return
		}
		p := openPrincipal
		if s.tokens != nil && need != scopeOpen {
			var status int
			var msg string
			p, status, msg = s.authenticate(r)
			if p == nil {
				if status == http.StatusUnauthorized && s.sessions != nil && r.Method == http.MethodGet &&
					!strings.HasPrefix(r.URL.Path, "/api/") && r.Header.Get("Authorization") == "" {
					// A person at a page: to the sign-in form, and back.
					http.Redirect(w, r, "/signin?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
					return
				}
				if status == http.StatusUnauthorized {
					challenge := `Bearer realm="labtrail"`
					if r.Header.Get("Authorization") != "" {
						challenge += `, error="invalid_token"`
					}
					w.Header().Set("WWW-Authenticate", challenge)
				}
				s.pageError(w, r, status, msg)
				return
			}
			if !p.Scope.Allows(need) {
				s.pageError(w, r, http.StatusForbidden, r.Method+" "+rt.path+" needs a token of scope "+need.String()+"; "+p.Name+"'s is "+p.Scope.String())
				return
			}
		}
		if r.Method == http.MethodPost && p.Kind == "session" && !auth.CheckCSRF(p, r.PostFormValue("csrf")) {
			// A form of a session's page carries its token; one without it
			// was not made by labtrail's page.
			s.pageError(w, r, http.StatusForbidden, "this form's token is missing or wrong: send it from labtrail's own page")
			return
		}
		r = r.WithContext(auth.WithPrincipal(r.Context(), p))
		if rt.limit != nil {
			if ok, wait := s.limits.allow(rt.method+" "+rt.path+" "+callerKey(r, p), rt.limit); !ok {
				secs := int(wait/time.Second) + 1
				w.Header().Set("Retry-After", strconv.Itoa(secs))
				s.adminAction(r, p, rt.action, false, "rate limited")
				s.pageError(w, r, http.StatusTooManyRequests, "too many "+rt.method+" "+rt.path+" requests: try again in "+strconv.Itoa(secs)+" s")
				return
			}
		}
		if rt.action == "" {
			rt.h(w, r)
			return
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		rt.h(sw, r)
		s.adminAction(r, p, rt.action, sw.status < 400, http.StatusText(sw.status))
	}
}

// authenticate finds who r comes from: its Bearer token, else its
// session. No principal comes with the status and message to answer.
func (s *Server) authenticate(r *http.Request) (*auth.Principal, int, string) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
			return nil, http.StatusUnauthorized, "the Authorization header must be: Bearer <token>"
		}
		p, err := s.tokens.Verify(r.Context(), strings.TrimSpace(tok))
		switch {
		case errors.Is(err, auth.ErrInvalidToken):
			s.adminAction(r, nil, "auth.failed", false, err.Error())
			return nil, http.StatusUnauthorized, err.Error()
		case err != nil:
			s.log.Error("token check failed", "err", err)
			return nil, http.StatusServiceUnavailable, "the token could not be checked: the store is unavailable"
		}
		return p, 0, ""
	}
	if s.sessions != nil {
		p, err := s.sessions.Principal(r)
		if err != nil {
			return nil, http.StatusUnauthorized, err.Error()
		}
		if p != nil {
			return p, 0, ""
		}
	}
	return nil, http.StatusUnauthorized, "sign in: send an API token as Authorization: Bearer <token> (labtrail tokens create makes one)"
}

// callerKey names the caller a rate limit counts for.
func callerKey(r *http.Request, p *auth.Principal) string {
	if p != nil && p.TokenID != 0 {
		return "token:" + strconv.FormatInt(p.TokenID, 10)
	}
	if p != nil && p.Kind == "session" {
		return "session:" + p.Name
	}
	return "addr:" + clientHost(r)
}

// clientHost is the address r came from, without its port.
func clientHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// adminAction appends to the admin audit trail, when there is one.
func (s *Server) adminAction(r *http.Request, p *auth.Principal, action string, ok bool, detail string) {
	if action == "" || s.authOpts.Audit == nil {
		return
	}
	actor := "anonymous"
	if p != nil {
		actor = p.Name
	}
	a := store.AdminAction{Time: time.Now().UTC(), Actor: actor, Action: action, Target: r.PathValue("id"),
		Detail: detail, Remote: clientHost(r), OK: ok}
	// Written before the answer ends; a failure to write it is logged,
	// and does not change the answer.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
	defer cancel()
	if err := s.authOpts.Audit.AppendAdminAction(ctx, a); err != nil {
		s.log.Warn("admin audit", "action", action, "err", err)
	}
}

// statusWriter remembers the status a handler answered.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// adminAudit is GET /api/v1/admin/audit: the admin audit trail, newest
// first (limit, and before: an entry's id, to page).
func (s *Server) adminAudit(w http.ResponseWriter, r *http.Request) {
	if s.authOpts.Audit == nil {
		writeError(w, http.StatusNotFound, "the admin audit trail is kept only with access control on (LABTRAIL_AUTH)")
		return
	}
	lister, ok := s.authOpts.Audit.(interface {
		AdminActions(ctx context.Context, before int64, limit int) ([]store.AdminAction, error)
	})
	if !ok {
		writeError(w, http.StatusNotFound, "this store does not list the admin audit trail")
		return
	}
	q := r.URL.Query()
	limit, before := 100, int64(0)
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, http.StatusBadRequest, "limit must be a number from 1 to 1000, got "+strconv.Quote(v))
			return
		}
		limit = n
	}
	if v := q.Get("before"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, "before must be an entry's id, got "+strconv.Quote(v))
			return
		}
		before = n
	}
	as, err := lister.AdminActions(r.Context(), before, limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if as == nil {
		as = []store.AdminAction{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": as})
}
