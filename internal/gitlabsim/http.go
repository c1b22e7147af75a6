package gitlabsim

import (
	"bytes"
	"cmp"
	"encoding/json"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ServeHTTP answers GitLab's REST API under /api/v4 and the simulator's own
// controls under /-/sim/.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.EscapedPath()
	switch {
	case strings.HasPrefix(path, "/-/sim/"):
		s.serveSim(w, r, strings.TrimPrefix(path, "/-/sim/"))
	case path == "/api/graphql" || path == "/api/graphql/":
		s.serveGraphQL(w, r)
	case path == "/api/v4" || strings.HasPrefix(path, "/api/v4/"):
		s.serveAPI(w, r, strings.TrimPrefix(path, "/api/v4"))
	case s.serveOAuth(w, r, path):
	default:
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "404 Not Found"})
	}
}

func (s *Sim) serveSim(w http.ResponseWriter, r *http.Request, what string) {
	switch {
	case what == "stats" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, s.Stats())
	case what == "truth" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, map[string]any{"events": s.Truth()})
	case what == "advance" && r.Method == http.MethodPost:
		s.Advance()
		s.mu.RLock()
		n := len(s.w.truth())
		s.mu.RUnlock()
		writeJSON(w, http.StatusOK, map[string]int{"count": n})
	default:
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "404 Not Found"})
	}
}

// route is a matched API route: its template (for stats) and handler.
type route struct {
	template string
	handle   func(s *Sim, c *call)
	// readUser marks routes a read_user token may call.
	readUser bool
}

// call is one API request being answered.
type call struct {
	w      http.ResponseWriter
	r      *http.Request
	q      url.Values
	params []string // unescaped path parameters, in order
	base   string   // scheme://host for web URLs
	// user is an OAuth access token's user; nil for Options.Token's,
	// who is a member of every project.
	user *user
}

func matchRoute(method string, segs []string) (route, []string) {
	if rt, params := matchHookRoute(method, segs); rt.handle != nil {
		return rt, params
	}
	if rt, params := matchEnvironmentWrite(method, segs); rt.handle != nil {
		return rt, params
	}
	if method != http.MethodGet && method != http.MethodHead {
		return route{}, nil
	}
	n := len(segs)
	at := func(i int, s string) bool { return i < n && segs[i] == s }
	switch {
	case n == 1 && at(0, "user"):
		return route{"/user", (*Sim).getUser, true}, nil
	case n == 1 && at(0, "version"):
		return route{"/version", (*Sim).getVersion, true}, nil
	case n == 1 && at(0, "metadata"):
		return route{"/metadata", (*Sim).getMetadata, true}, nil
	case n == 2 && at(0, "personal_access_tokens") && at(1, "self"):
		return route{"/personal_access_tokens/self", (*Sim).getTokenSelf, true}, nil
	case n == 1 && at(0, "projects"):
		return route{"/projects", (*Sim).listProjects, false}, nil
	case n == 2 && at(0, "projects"):
		return route{"/projects/:id", (*Sim).getProject, false}, segs[1:2]
	case n == 3 && at(0, "projects") && at(2, "merge_requests"):
		return route{"/projects/:id/merge_requests", (*Sim).listMRs, false}, segs[1:2]
	case n == 4 && at(0, "projects") && at(2, "merge_requests"):
		return route{"/projects/:id/merge_requests/:merge_request_iid", (*Sim).getMR, false}, []string{segs[1], segs[3]}
	case n == 3 && at(0, "projects") && at(2, "pipelines"):
		return route{"/projects/:id/pipelines", (*Sim).listPipelines, false}, segs[1:2]
	case n == 4 && at(0, "projects") && at(2, "pipelines"):
		return route{"/projects/:id/pipelines/:pipeline_id", (*Sim).getPipeline, false}, []string{segs[1], segs[3]}
	case n == 5 && at(0, "projects") && at(2, "pipelines") && at(4, "jobs"):
		return route{"/projects/:id/pipelines/:pipeline_id/jobs", (*Sim).listJobs, false}, []string{segs[1], segs[3]}
	case n == 5 && at(0, "projects") && at(2, "pipelines") && at(4, "bridges"):
		return route{"/projects/:id/pipelines/:pipeline_id/bridges", (*Sim).listBridges, false}, []string{segs[1], segs[3]}
	case n == 3 && at(0, "groups") && at(2, "projects"):
		return route{"/groups/:id/projects", (*Sim).listGroupProjects, false}, segs[1:2]
	}
	return matchKindRoute(segs)
}

func (s *Sim) serveAPI(w http.ResponseWriter, r *http.Request, rest string) {
	var segs []string
	for _, seg := range strings.Split(strings.Trim(rest, "/"), "/") {
		if seg == "" {
			continue
		}
		if u, err := url.PathUnescape(seg); err == nil {
			seg = u
		}
		segs = append(segs, seg)
	}
	rt, params := matchRoute(r.Method, segs)
	if rt.handle == nil {
		s.count(r.Method + " /api/v4/*")
	} else {
		s.count(r.Method + " /api/v4" + rt.template)
	}
	token, authed, ok := s.admit(w, r)
	if !ok {
		return
	}
	// An OAuth access token is its user's (oauth.go).
	var ot *oauthToken
	if !authed {
		ot = s.oauthUser(token)
		authed = ot != nil
	}

	if rt.handle == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "404 Not Found"})
		return
	}
	if !authed {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"message": "401 Unauthorized"})
		return
	}
	var as *user
	if ot != nil {
		if !s.oauthAdmit(w, r, ot, rt, segs) {
			return
		}
		as = ot.user
	} else if !rt.readUser && !s.canReadAPI() {
		insufficientScope(w, "api read_api")
		return
	}
	if len(segs) >= 2 && segs[0] == "projects" {
		switch s.projectFault(segs[1]) {
		case http.StatusNotFound:
			c := call{w: w}
			c.notFound("Project Not Found")
			return
		case http.StatusForbidden:
			writeJSON(w, http.StatusForbidden, map[string]string{"message": "403 Forbidden"})
			return
		}
	}
	base := "http://gitlab.sim"
	if r.Host != "" {
		base = "http://" + r.Host
	}
	rt.handle(s, &call{w: w, r: r, q: r.URL.Query(), params: params, base: base, user: as})
}

// admit does for every API request, REST or GraphQL, what GitLab does
// before the request reaches its handler: injected faults, latency, the
// token, Rack::Attack's throttle and a throttle storm. ok is false when
// it has answered the request itself.
func (s *Sim) admit(w http.ResponseWriter, r *http.Request) (token string, authed, ok bool) {
	if s.inject(w, r) {
		return "", false, false
	}

	if d := time.Duration(s.latency.Load()); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-r.Context().Done():
			t.Stop()
			return "", false, false
		case <-t.C:
		}
	}

	token = r.Header.Get("PRIVATE-TOKEN")
	if token == "" {
		if a := r.Header.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
			token = strings.TrimSpace(a[7:])
		}
	}
	if token == "" {
		token = r.URL.Query().Get("private_token")
	}
	if token == "" {
		token = r.URL.Query().Get("access_token") // an OAuth token, as GitLab's docs allow
	}
	authed = token != "" && token == s.opts.Token

	// The headers go on every answer, as on GitLab.com; without a
	// configured limit they show GitLab.com's authenticated API figure and
	// nothing is refused.
	{
		limit, enforce := int(s.rateLimit.Load()), true
		if limit <= 0 {
			limit, enforce = defaultHeaderLimit, false
		}
		key, name := "token:"+token, "throttle_authenticated_api"
		if !authed {
			key, name = "ip:"+remoteIP(r), "throttle_unauthenticated_api"
		}
		if !s.limiter.allow(w, key, name, limit, enforce, s.now()) {
			return "", false, false
		}
	}
	if d := time.Duration(s.storm.Load()); d > 0 {
		now := s.now()
		// A storm is a throttle whose window ends d from now: the headers
		// say so consistently, as GitLab's do.
		w.Header().Set("RateLimit-Remaining", "0")
		w.Header().Set("RateLimit-Reset", strconv.FormatInt(now.Add(d).Unix(), 10))
		tooManyRequests(w, now.Add(d), now)
		return "", false, false
	}

	return token, authed, true
}

func (s *Sim) canReadAPI() bool {
	return slices.Contains(s.opts.Scopes, "api") || slices.Contains(s.opts.Scopes, "read_api")
}

func remoteIP(r *http.Request) string {
	if i := strings.LastIndexByte(r.RemoteAddr, ':'); i > 0 {
		return r.RemoteAddr[:i]
	}
	return r.RemoteAddr
}

// limiter counts requests per key in fixed one-minute windows, like
// Rack::Attack's throttles with a 60 second period.
type limiter struct {
	mu      sync.Mutex
	windows map[string]*window
}

// defaultHeaderLimit is GitLab.com's per-user limit for authenticated API
// requests, shown in the headers when no limit is enforced.
const defaultHeaderLimit = 2000

type window struct {
	start int64 // unix minute
	count int
}

// allow records a request and sets the RateLimit-* headers. Past the limit
// it answers 429 itself and reports false.
func (l *limiter) allow(w http.ResponseWriter, key, name string, limit int, enforce bool, now time.Time) bool {
	minute := now.Unix() / 60
	l.mu.Lock()
	win := l.windows[key]
	if win == nil || win.start != minute {
		win = &window{start: minute}
		l.windows[key] = win
	}
	win.count++
	observed := win.count
	l.mu.Unlock()

	reset := time.Unix((minute+1)*60, 0).UTC()
	h := w.Header()
	h.Set("RateLimit-Name", name)
	h.Set("RateLimit-Limit", strconv.Itoa(limit))
	h.Set("RateLimit-Observed", strconv.Itoa(observed))
	h.Set("RateLimit-Remaining", strconv.Itoa(max(limit-observed, 0)))
	h.Set("RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10))
	if observed <= limit || !enforce {
		return true
	}
	tooManyRequests(w, reset, now)
	return false
}

// tooManyRequests answers 429 as Rack::Attack does on GitLab.
func tooManyRequests(w http.ResponseWriter, reset, now time.Time) {
	h := w.Header()
	retry := int(math.Ceil(reset.Sub(now).Seconds()))
	h.Set("RateLimit-ResetTime", reset.Format(http.TimeFormat))
	h.Set("Retry-After", strconv.Itoa(max(retry, 1)))
	h.Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusTooManyRequests)
	_, _ = w.Write([]byte("Retry later\n"))
}

// writeJSON answers v as JSON, without Go's HTML escaping of <, > and &,
// which GitLab does not do.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}

func (c *call) ok(v any) { writeJSON(c.w, http.StatusOK, v) }

// insufficientScope is GitLab's 403 for a token without scope.
func insufficientScope(w http.ResponseWriter, scope string) {
	writeJSON(w, http.StatusForbidden, map[string]string{
		"error":             "insufficient_scope",
		"error_description": "The request requires higher privileges than provided by the access token.",
		"scope":             scope,
	})
}

func (c *call) badRequest(msg string) {
	writeJSON(c.w, http.StatusBadRequest, map[string]string{"error": msg})
}

func (c *call) notFound(what string) {
	writeJSON(c.w, http.StatusNotFound, map[string]string{"message": "404 " + what})
}

// ---- instance and user ----

func (s *Sim) getUser(c *call) {
	s.mu.RLock()
	me := s.w.me
	if c.user != nil {
		me = c.user
	}
	u := me.current(c.base, s.now())
	s.mu.RUnlock()
	c.ok(u)
}

func (s *Sim) getVersion(c *call) {
	c.ok(struct {
		Version  string `json:"version"`
		Revision string `json:"revision"`
	}{s.opts.Version, revision(s.opts.Version)})
}

func revision(v string) string {
	h := uint32(2166136261)
	for i := 0; i < len(v); i++ {
		h = (h ^ uint32(v[i])) * 16777619
	}
	return strconv.FormatUint(uint64(h)|1<<40, 16)[:11]
}

type metadataJSON struct {
	Version  string `json:"version"`
	Revision string `json:"revision"`
	KAS      struct {
		Enabled             bool    `json:"enabled"`
		ExternalURL         *string `json:"externalUrl"`
		ExternalK8sProxyURL *string `json:"externalK8sProxyUrl"`
		Version             *string `json:"version"`
	} `json:"kas"`
	Enterprise bool `json:"enterprise"`
}

func (s *Sim) getMetadata(c *call) {
	m := metadataJSON{Version: s.opts.Version, Revision: revision(s.opts.Version)}
	m.Enterprise = strings.HasSuffix(s.opts.Version, "-ee")
	c.ok(m)
}

type tokenJSON struct {
	ID          int64    `json:"id"`
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Revoked     bool     `json:"revoked"`
	CreatedAt   ts       `json:"created_at"`
	Scopes      []string `json:"scopes"`
	UserID      int64    `json:"user_id"`
	LastUsedAt  ts       `json:"last_used_at"`
	Active      bool     `json:"active"`
	ExpiresAt   *string  `json:"expires_at"`
}

func (s *Sim) getTokenSelf(c *call) {
	s.mu.RLock()
	created := s.w.created.Add(-30 * 24 * time.Hour)
	uid := s.w.me.id
	s.mu.RUnlock()
	expires := created.Add(365 * 24 * time.Hour).Format(time.DateOnly)
	c.ok(tokenJSON{
		ID: 17, Name: "labtrail", Description: "labtrail poller (gitlabsim)", CreatedAt: ts(created),
		Scopes: slices.Clone(s.opts.Scopes), UserID: uid, LastUsedAt: ts(ms(s.now())), Active: true,
		ExpiresAt: &expires,
	})
}

// ---- projects ----

// findProject takes a numeric id or a URL-decoded full path. Call with s.mu held.
func (s *Sim) findProject(id string) *project {
	if n, err := strconv.ParseInt(id, 10, 64); err == nil {
		return s.w.byID[n]
	}
	return s.w.byPath[id]
}

func (s *Sim) getProject(c *call) {
	s.mu.RLock()
	p := s.findProject(c.params[0])
	var out projectJSON
	if p != nil {
		out = p.fullJSON(c.base)
	}
	s.mu.RUnlock()
	if p == nil {
		c.notFound("Project Not Found")
		return
	}
	c.ok(out)
}

func (s *Sim) listProjects(c *call) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	s.projectsPage(c, s.w.projects)
}

func (s *Sim) listGroupProjects(c *call) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	id := c.params[0]
	var g *group
	for _, gg := range s.w.groups {
		if strconv.FormatInt(gg.id, 10) == id || gg.fullPath() == id {
			g = gg
		}
	}
	if g == nil {
		c.notFound("Group Not Found")
		return
	}
	list := slices.Clone(g.projects)
	if c.q.Get("include_subgroups") == "true" {
		var walk func(*group)
		walk = func(g *group) {
			for _, sg := range g.subgroups {
				list = append(list, sg.projects...)
				walk(sg)
			}
		}
		walk(g)
	}
	s.projectsPage(c, list)
}

// projectsPage filters, orders and pages projects. The token's user is a
// member of every project; an OAuth token's user sees the projects they
// are a member of (every project is private), so membership=true changes
// nothing for either. Projects
// with an injected 404 are left out, as projects the token cannot see.
func (s *Sim) projectsPage(c *call, all []*project) {
	orderBy := c.q.Get("order_by")
	if orderBy == "" {
		orderBy = "created_at"
	}
	keyset := c.q.Get("pagination") == "keyset"
	if keyset && orderBy != "id" {
		// GitLab offers keyset pagination for projects ordered by id only.
		writeJSON(c.w, http.StatusMethodNotAllowed, map[string]string{"error": "Keyset pagination is not yet available for this type of request"})
		return
	}
	var idAfter, idBefore int64
	for name, dst := range map[string]*int64{"id_after": &idAfter, "id_before": &idBefore} {
		if v := c.q.Get(name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				c.badRequest(name + " is invalid")
				return
			}
			*dst = n
		}
	}
	var key func(a, b *project) int
	switch orderBy {
	case "id":
		key = func(a, b *project) int { return cmpInt(a.id, b.id) }
	case "name":
		key = func(a, b *project) int { return strings.Compare(a.name, b.name) }
	case "path":
		key = func(a, b *project) int { return strings.Compare(a.path, b.path) }
	case "created_at":
		key = func(a, b *project) int { return a.createdAt.Compare(b.createdAt) }
	case "updated_at", "last_activity_at":
		key = func(a, b *project) int { return a.lastActive.Compare(b.lastActive) }
	default:
		c.badRequest("order_by does not have a valid value")
		return
	}
	desc, ok := sortDesc(c, "desc")
	if !ok {
		return
	}
	archived := c.q.Get("archived")
	search := strings.ToLower(c.q.Get("search"))
	list := make([]*project, 0, len(all))
	for _, p := range all {
		if archived != "" && p.archived != (archived == "true") {
			continue
		}
		if s.hidden(p) || !s.member(c.user, p) || idAfter != 0 && p.id <= idAfter || idBefore != 0 && p.id >= idBefore {
			continue
		}
		if search != "" && !strings.Contains(strings.ToLower(p.name), search) &&
			!strings.Contains(strings.ToLower(p.fullPath()), search) {
			continue
		}
		list = append(list, p)
	}
	slices.SortStableFunc(list, func(a, b *project) int {
		r := key(a, b)
		if r == 0 {
			r = cmpInt(a.id, b.id)
		}
		if desc {
			r = -r
		}
		return r
	})
	pg := c.paging()
	var lo, hi int
	if keyset {
		// Keyset pages: the Link header alone leads on, with id_after (or
		// id_before when descending) set to the page's last id; GitLab
		// sends no X-Total, X-Page or X-Next-Page here.
		lo, hi = 0, min(pg.perPage, len(list))
		if hi < len(list) {
			key, val := "id_after", itoa(list[hi-1].id)
			q := c.queryWith(key, val, "per_page", strconv.Itoa(pg.perPage))
			if desc {
				q.Del("id_after")
				q.Set("id_before", val)
			}
			c.w.Header().Set("Link", c.linkTo(q, "next"))
		}
	} else {
		lo, hi = pg.bounds(len(list))
		pg.headers(c, len(list))
	}
	simple := c.q.Get("simple") == "true"
	out := make([]any, 0, hi-lo)
	for _, p := range list[lo:hi] {
		if simple {
			out = append(out, p.simpleJSON(c.base))
		} else {
			out = append(out, p.fullJSON(c.base))
		}
	}
	c.ok(out)
}

// ---- pagination ----

type paging struct{ page, perPage int }

func (c *call) paging() paging {
	p := paging{page: 1, perPage: 20}
	if n, err := strconv.Atoi(c.q.Get("page")); err == nil && n > 0 {
		p.page = n
	}
	if n, err := strconv.Atoi(c.q.Get("per_page")); err == nil && n > 0 {
		p.perPage = min(n, 100)
	}
	return p
}

func (p paging) offset() int { return (p.page - 1) * p.perPage }

func (p paging) bounds(total int) (int, int) {
	lo := min(p.offset(), total)
	return lo, min(lo+p.perPage, total)
}

// maxCounted is where GitLab stops counting: past it a listing has no
// X-Total, X-Total-Pages or rel="last".
const maxCounted = 10000

// headers writes GitLab's offset pagination headers for a listing of total
// records.
func (p paging) headers(c *call, total int) { p.headersCounted(c, total, total <= maxCounted) }

// headersCounted writes the offset pagination headers, with X-Total,
// X-Total-Pages and rel="last" only when counted: GitLab leaves them out
// past 10,000 records and on some endpoints (commits) always.
func (p paging) headersCounted(c *call, total int, counted bool) {
	h := c.w.Header()
	pages := max((total+p.perPage-1)/p.perPage, 1)
	next, prev := "", ""
	if p.page*p.perPage < total {
		next = strconv.Itoa(p.page + 1)
	}
	if p.page > 1 {
		prev = strconv.Itoa(p.page - 1)
	}
	h.Set("X-Page", strconv.Itoa(p.page))
	h.Set("X-Per-Page", strconv.Itoa(p.perPage))
	h.Set("X-Next-Page", next)
	h.Set("X-Prev-Page", prev)
	if counted {
		h.Set("X-Total", strconv.Itoa(total))
		h.Set("X-Total-Pages", strconv.Itoa(pages))
	}
	link := func(page int, rel string) string {
		q := url.Values{}
		for k, v := range c.q {
			q[k] = v
		}
		q.Set("page", strconv.Itoa(page))
		q.Set("per_page", strconv.Itoa(p.perPage))
		return "<" + c.base + c.r.URL.EscapedPath() + "?" + q.Encode() + `>; rel="` + rel + `"`
	}
	var links []string
	if prev != "" {
		links = append(links, link(p.page-1, "prev"))
	}
	if next != "" {
		links = append(links, link(p.page+1, "next"))
	}
	links = append(links, link(1, "first"))
	if counted {
		links = append(links, link(pages, "last"))
	}
	h.Set("Link", strings.Join(links, ", "))
}

// scan walks list[lo:hi] forwards or backwards, counting the items keep
// accepts and returning those that fall on page p.
func scan[T any](list []T, lo, hi int, desc bool, keep func(T) bool, p paging) (page []T, total int) {
	off := p.offset()
	if keep == nil { // nothing to filter: slice the page out directly
		total = hi - lo
		a, b := min(off, total), min(off+p.perPage, total)
		if desc {
			for i := hi - 1 - a; i > hi-1-b; i-- {
				page = append(page, list[i])
			}
		} else {
			page = append(page, list[lo+a:lo+b]...)
		}
		return page, total
	}
	visit := func(x T) {
		if !keep(x) {
			return
		}
		if total >= off && total < off+p.perPage {
			page = append(page, x)
		}
		total++
	}
	if desc {
		for i := hi - 1; i >= lo; i-- {
			visit(list[i])
		}
	} else {
		for i := lo; i < hi; i++ {
			visit(list[i])
		}
	}
	return page, total
}

// ---- query parsing ----

func sortDesc(c *call, def string) (bool, bool) {
	s := c.q.Get("sort")
	if s == "" {
		s = def
	}
	switch s {
	case "asc":
		return false, true
	case "desc":
		return true, true
	}
	c.badRequest("sort does not have a valid value")
	return false, false
}

var timeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05", time.DateOnly}

// timeRange reads name_after and name_before, both inclusive like GitLab's
// "on or after" / "on or before".
func timeRange(c *call, name string) (after, before time.Time, ok bool) {
	parse := func(param string) (time.Time, bool) {
		v := c.q.Get(param)
		if v == "" {
			return time.Time{}, true
		}
		for _, l := range timeLayouts {
			if t, err := time.Parse(l, v); err == nil {
				return t, true
			}
		}
		c.badRequest(param + " is invalid")
		return time.Time{}, false
	}
	if after, ok = parse(name + "_after"); !ok {
		return
	}
	before, ok = parse(name + "_before")
	return
}

// span narrows [0, n) to the items whose time at(i), ascending in i, lies
// within [after, before]; zero bounds are open.
func span(n int, at func(int) time.Time, after, before time.Time) (int, int) {
	lo, hi := 0, n
	if !after.IsZero() {
		lo = sortSearch(n, func(i int) bool { return !at(i).Before(after) })
	}
	if !before.IsZero() {
		hi = sortSearch(n, func(i int) bool { return at(i).After(before) })
	}
	return lo, max(hi, lo)
}

func sortSearch(n int, f func(int) bool) int {
	i, j := 0, n
	for i < j {
		h := int(uint(i+j) >> 1)
		if !f(h) {
			i = h + 1
		} else {
			j = h
		}
	}
	return i
}

func within(t, after, before time.Time) bool {
	return (after.IsZero() || !t.Before(after)) && (before.IsZero() || !t.After(before))
}

func multi(q url.Values, name string) []string {
	vs := append(slices.Clone(q[name+"[]"]), q[name]...)
	var out []string
	for _, v := range vs {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// all combines predicates; nil when there are none, so scans can skip
// filtering.
func all[T any](preds []func(T) bool) func(T) bool {
	switch len(preds) {
	case 0:
		return nil
	case 1:
		return preds[0]
	}
	return func(x T) bool {
		for _, p := range preds {
			if !p(x) {
				return false
			}
		}
		return true
	}
}

// ---- merge requests ----

func (s *Sim) listMRs(c *call) {
	state := c.q.Get("state")
	switch state {
	case "", "all":
		state = ""
	case "opened", "closed", "merged", "locked":
	default:
		c.badRequest("state does not have a valid value")
		return
	}
	orderBy := cmp.Or(c.q.Get("order_by"), "created_at")
	switch orderBy {
	case "created_at", "updated_at", "title", "merged_at":
	default:
		c.badRequest("order_by does not have a valid value")
		return
	}
	desc, ok := sortDesc(c, "desc")
	if !ok {
		return
	}
	upAfter, upBefore, ok := timeRange(c, "updated")
	if !ok {
		return
	}
	crAfter, crBefore, ok := timeRange(c, "created")
	if !ok {
		return
	}
	var iids []int64
	for _, v := range multi(c.q, "iids") {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			c.badRequest("iids is invalid")
			return
		}
		iids = append(iids, n)
	}
	labels := multi(c.q, "labels")
	srcBranch, tgtBranch := c.q.Get("source_branch"), c.q.Get("target_branch")
	authorUsername, authorID := c.q.Get("author_username"), c.q.Get("author_id")
	draft := c.q.Get("draft")
	if draft == "" {
		draft = c.q.Get("wip")
	}

	s.mu.RLock()
	p := s.findProject(c.params[0])
	if p == nil {
		s.mu.RUnlock()
		c.notFound("Project Not Found")
		return
	}
	var preds []func(*mergeRequest) bool
	if state != "" {
		preds = append(preds, func(m *mergeRequest) bool { return m.state == state })
	}
	if !upAfter.IsZero() || !upBefore.IsZero() {
		preds = append(preds, func(m *mergeRequest) bool { return within(m.updatedAt, upAfter, upBefore) })
	}
	if !crAfter.IsZero() || !crBefore.IsZero() {
		preds = append(preds, func(m *mergeRequest) bool { return within(m.createdAt, crAfter, crBefore) })
	}
	if iids != nil {
		preds = append(preds, func(m *mergeRequest) bool { return slices.Contains(iids, m.iid) })
	}
	if srcBranch != "" || tgtBranch != "" {
		preds = append(preds, func(m *mergeRequest) bool {
			return (srcBranch == "" || m.sourceBranch == srcBranch) && (tgtBranch == "" || m.targetBranch == tgtBranch)
		})
	}
	if authorUsername != "" || authorID != "" {
		preds = append(preds, func(m *mergeRequest) bool {
			return (authorUsername == "" || m.author.username == authorUsername) &&
				(authorID == "" || strconv.FormatInt(m.author.id, 10) == authorID)
		})
	}
	if draft == "yes" || draft == "no" {
		preds = append(preds, func(m *mergeRequest) bool { return m.draft == (draft == "yes") })
	}
	if len(labels) > 0 {
		preds = append(preds, func(m *mergeRequest) bool {
			for _, l := range labels {
				if !slices.Contains(m.labels, l) {
					return false
				}
			}
			return true
		})
	}
	keep := all(preds)
	pg := c.paging()
	var page []*mergeRequest
	var total int
	switch orderBy {
	case "created_at":
		lo, hi := span(len(p.mrs), func(i int) time.Time { return p.mrs[i].createdAt }, crAfter, crBefore)
		page, total = scan(p.mrs, lo, hi, desc, keep, pg)
	case "updated_at":
		lo, hi := span(len(p.mrsByUpdated), func(i int) time.Time { return p.mrsByUpdated[i].updatedAt }, upAfter, upBefore)
		page, total = scan(p.mrsByUpdated, lo, hi, desc, keep, pg)
	default:
		var sorted []*mergeRequest
		for _, m := range p.mrs {
			if keep == nil || keep(m) {
				sorted = append(sorted, m)
			}
		}
		slices.SortStableFunc(sorted, func(a, b *mergeRequest) int {
			var r int
			if orderBy == "title" {
				r = strings.Compare(a.title, b.title)
			} else {
				r = a.mergedAt.Compare(b.mergedAt)
			}
			if r == 0 {
				r = cmpInt(a.id, b.id)
			}
			if desc {
				r = -r
			}
			return r
		})
		lo, hi := pg.bounds(len(sorted))
		page, total = sorted[lo:hi], len(sorted)
	}
	out := make([]mrJSON, len(page))
	for i, m := range page {
		out[i] = m.listJSON(c.base)
	}
	s.mu.RUnlock()
	pg.headers(c, total)
	c.ok(out)
}

func (s *Sim) getMR(c *call) {
	s.inMR(c, func(m *mergeRequest) any { return m.detailJSON(c.base) })
}

// getMRChanges answers GET /projects/:id/merge_requests/:iid/changes,
// deprecated since GitLab 15.7 and still served: the merge request with
// every file of its diff. The simulator's diffs are small, so none is cut
// and overflow is false, access_raw_diffs or not.
func (s *Sim) getMRChanges(c *call) {
	s.inMR(c, func(m *mergeRequest) any {
		return mrChangesJSON{mrSingleJSON: m.detailJSON(c.base), Changes: mapJSON(m.diffFiles(), diffFile.json)}
	})
}

// detailJSON is the merge request as GET .../merge_requests/:iid shows it,
// with its head pipeline: the newest pipeline of its branch. Call with
// s.mu held.
func (m *mergeRequest) detailJSON(base string) mrSingleJSON {
	p := m.p
	out := m.singleJSON(base)
	for i := len(p.pipes) - 1; i >= 0; i-- {
		pl := p.pipes[i]
		if pl.head.m == m && pl.ref != p.defaultBranch() {
			b, sj := pl.basicJSON(base), pl.singleJSON(base)
			out.Pipeline, out.HeadPipeline = &b, &sj
			out.LatestBuildStartedAt, out.LatestBuildFinishedAt = ts(pl.startedAt), ts(pl.finishedAt)
			break
		}
	}
	return out
}

// ---- pipelines and jobs ----

var pipelineStatuses = []string{"created", "waiting_for_resource", "preparing", "pending", "running", "success", "failed", "canceled", "skipped", "manual", "scheduled"}

func (s *Sim) listPipelines(c *call) {
	orderBy := cmp.Or(c.q.Get("order_by"), "id")
	switch orderBy {
	case "id", "status", "ref", "updated_at", "user_id":
	default:
		c.badRequest("order_by does not have a valid value")
		return
	}
	desc, ok := sortDesc(c, "desc")
	if !ok {
		return
	}
	status := c.q.Get("status")
	if status != "" && !slices.Contains(pipelineStatuses, status) {
		c.badRequest("status does not have a valid value")
		return
	}
	scope := c.q.Get("scope")
	switch scope {
	case "", "running", "pending", "finished", "branches", "tags":
	default:
		c.badRequest("scope does not have a valid value")
		return
	}
	upAfter, upBefore, ok := timeRange(c, "updated")
	if !ok {
		return
	}
	crAfter, crBefore, ok := timeRange(c, "created")
	if !ok {
		return
	}
	ref, sha, source, username := c.q.Get("ref"), c.q.Get("sha"), c.q.Get("source"), c.q.Get("username")

	s.mu.RLock()
	p := s.findProject(c.params[0])
	if p == nil {
		s.mu.RUnlock()
		c.notFound("Project Not Found")
		return
	}
	var preds []func(*pipeline) bool
	if status != "" || ref != "" || sha != "" || source != "" || username != "" {
		preds = append(preds, func(pl *pipeline) bool {
			return (status == "" || pl.status == status) && (ref == "" || pl.ref == ref) && (sha == "" || pl.sha == sha) &&
				(source == "" || pl.source == source) && (username == "" || pl.user.username == username)
		})
	}
	switch scope {
	case "running", "pending":
		preds = append(preds, func(pl *pipeline) bool { return pl.status == scope })
	case "finished":
		preds = append(preds, func(pl *pipeline) bool { return !pl.finishedAt.IsZero() })
	case "tags":
		preds = append(preds, func(*pipeline) bool { return false }) // the simulator makes no tag pipelines
	}
	if !upAfter.IsZero() || !upBefore.IsZero() {
		preds = append(preds, func(pl *pipeline) bool { return within(pl.updatedAt, upAfter, upBefore) })
	}
	if !crAfter.IsZero() || !crBefore.IsZero() {
		preds = append(preds, func(pl *pipeline) bool { return within(pl.createdAt, crAfter, crBefore) })
	}
	keep := all(preds)
	pg := c.paging()
	var page []*pipeline
	var total int
	switch orderBy {
	case "id":
		lo, hi := span(len(p.pipes), func(i int) time.Time { return p.pipes[i].createdAt }, crAfter, crBefore)
		page, total = scan(p.pipes, lo, hi, desc, keep, pg)
	case "updated_at":
		lo, hi := span(len(p.pipesByUpdated), func(i int) time.Time { return p.pipesByUpdated[i].updatedAt }, upAfter, upBefore)
		page, total = scan(p.pipesByUpdated, lo, hi, desc, keep, pg)
	default:
		var sorted []*pipeline
		for _, pl := range p.pipes {
			if keep == nil || keep(pl) {
				sorted = append(sorted, pl)
			}
		}
		slices.SortStableFunc(sorted, func(a, b *pipeline) int {
			var r int
			switch orderBy {
			case "status":
				r = strings.Compare(a.status, b.status)
			case "ref":
				r = strings.Compare(a.ref, b.ref)
			default:
				r = cmpInt(a.user.id, b.user.id)
			}
			if r == 0 {
				r = cmpInt(a.id, b.id)
			}
			if desc {
				r = -r
			}
			return r
		})
		lo, hi := pg.bounds(len(sorted))
		page, total = sorted[lo:hi], len(sorted)
	}
	out := make([]pipelineBasicJSON, len(page))
	for i, pl := range page {
		out[i] = pl.basicJSON(c.base)
	}
	s.mu.RUnlock()
	pg.headers(c, total)
	c.ok(out)
}

// findPipeline looks up params [project, pipeline]; it answers 400 (an id
// that is not a number, which Grape refuses before the project is looked
// up) or 404 itself. Call with s.mu held.
func (s *Sim) findPipeline(c *call) *pipeline {
	id, err := strconv.ParseInt(c.params[1], 10, 64)
	if err != nil {
		c.badRequest("pipeline_id is invalid")
		return nil
	}
	p := s.findProject(c.params[0])
	if p == nil {
		c.notFound("Project Not Found")
		return nil
	}
	pl := p.pipeByID[id]
	if pl == nil {
		c.notFound("Not found")
	}
	return pl
}

func (s *Sim) getPipeline(c *call) {
	s.mu.RLock()
	pl := s.findPipeline(c)
	if pl == nil {
		s.mu.RUnlock()
		return
	}
	out := pl.singleJSON(c.base)
	s.mu.RUnlock()
	c.ok(out)
}

var jobStatuses = []string{"created", "pending", "running", "failed", "success", "canceled", "skipped", "waiting_for_resource", "manual"}

// jobScopes reads the scope[] filter of job listings; it answers 400
// itself.
func jobScopes(c *call) ([]string, bool) {
	scopes := multi(c.q, "scope")
	for _, sc := range scopes {
		if !slices.Contains(jobStatuses, sc) {
			c.badRequest("scope does not have a valid value")
			return nil, false
		}
	}
	return scopes, true
}

func (s *Sim) listJobs(c *call) {
	scopes, ok := jobScopes(c)
	if !ok {
		return
	}
	s.mu.RLock()
	pl := s.findPipeline(c)
	if pl == nil {
		s.mu.RUnlock()
		return
	}
	jobs := pl.jobs()
	keep := func(j job) bool { return len(scopes) == 0 || slices.Contains(scopes, j.status) }
	pg := c.paging()
	// Newest first: GitLab sorts pipeline jobs by id descending.
	page, total := scan(jobs, 0, len(jobs), true, keep, pg)
	commit := pl.commitJSON(c.base)
	out := make([]jobJSON, len(page))
	for i, j := range page {
		out[i] = pl.jobJSON(c.base, j, commit)
	}
	s.mu.RUnlock()
	pg.headers(c, total)
	c.ok(out)
}

// listBridges answers GET /projects/:id/pipelines/:pipeline_id/bridges, a
// pipeline's trigger jobs (Entities::Ci::Bridge). The simulated projects
// trigger no multi-project or child pipelines, so no pipeline has one: a
// pipeline that exists answers an empty page with GitLab's headers, one
// that does not answers 404, as GitLab does.
func (s *Sim) listBridges(c *call) {
	if _, ok := jobScopes(c); !ok {
		return
	}
	s.mu.RLock()
	pl := s.findPipeline(c)
	s.mu.RUnlock()
	if pl == nil {
		return
	}
	c.paging().headers(c, 0)
	c.ok([]any{})
}
