package server

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"math"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labtrail/labtrail/internal/auth"
	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/store"
)

// The dashboard's frame: pages rendered from html/template on a shared
// layout, assets embedded in the binary and served under /static/, and the
// filter every page reads from its URL.

//go:embed static
var staticFS embed.FS

// staticVersion names the embedded assets' content: links carry it as
// ?v=, so a browser may keep them forever and still sees a new release.
var staticVersion = func() string {
	h := sha256.New()
	_ = fs.WalkDir(staticFS, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := staticFS.ReadFile(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %d\n", p, len(b))
		h.Write(b)
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))[:12]
}()

// serveStatic answers GET /static/{path...} from the embedded assets.
func (s *Server) serveStatic(w http.ResponseWriter, r *http.Request) {
	p := path.Clean("static/" + r.PathValue("path"))
	b, err := staticFS.ReadFile(p)
	if err != nil || !strings.HasPrefix(p, "static/") {
		s.pageError(w, r, http.StatusNotFound, "no such file: "+r.URL.Path)
		return
	}
	if r.URL.Query().Get("v") == staticVersion {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, path.Base(p), time.Time{}, bytes.NewReader(b))
}

// pageSecurity are the headers every page is sent with: nothing is loaded
// from another host, and no other site may frame a page.
func pageSecurity(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
}

// navItem is one entry of the main navigation.
type navItem struct {
	Path, Label string
	Current     bool
}

var navPages = []navItem{
	{Path: "/", Label: "Overview"},
	{Path: "/timeline", Label: "Timeline"},
	{Path: "/merge-requests", Label: "Merge requests"},
	{Path: "/pipelines", Label: "Pipelines"},
	{Path: "/deployments", Label: "Deployments"},
	{Path: "/sync", Label: "Sync"},
}

// page is what every page template is given: the layout's parts and the
// page's own Data.
type page struct {
	Title    string
	Nav      []navItem
	Static   string
	F        *pageFilter
	Projects []store.Project
	Groups   []string
	Kinds    []change.Kind
	States   []string
	Now      time.Time
	Data     any
	// SignedIn names whoever is signed in to a session, and CSRF is the
	// form token its forms carry; both empty without a session.
	SignedIn, CSRF string
}

var pageFuncs = template.FuncMap{
	"time":     timeTag,
	"date":     dateTag,
	"dur":      humanDuration,
	"pct":      percent,
	"num":      number,
	"float":    floatText,
	"json":     jsonData,
	"list":     func(v ...string) []string { return v },
	"max1":     func(n int) int { return max(n, 1) },
	"stateCls": func(s string) string { return "state state-" + strings.ToLower(s) },
	"levelCls": func(l any) string { return "level level-" + strings.ToLower(fmt.Sprint(l)) },
	"query":    queryLink,
	"eventURL": func(id string) string { return "/events/" + url.PathEscape(id) },
}

// pages holds each page's template, parsed with the layout.
var pages = map[string]*template.Template{}

// pageTemplate parses templates/<name>.html on the layout once, at start:
// a broken template stops the binary from starting, not a request.
func pageTemplate(name string) *template.Template {
	t := template.Must(template.New(name).Funcs(pageFuncs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html"))
	pages[name] = t
	return t
}

// render writes page name with status 200. It renders into a buffer first,
// so a template error is a clean 500 page rather than half a page.
func (s *Server) render(w http.ResponseWriter, r *http.Request, name string, p page) {
	s.renderStatus(w, r, http.StatusOK, name, p)
}

// renderStatus is render with another status.
func (s *Server) renderStatus(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	t := pages[name]
	if t == nil {
		t = pageTemplate(name)
	}
	p.Static = staticVersion
	p.Nav = make([]navItem, len(navPages))
	for i, n := range navPages {
		n.Current = n.Path == r.URL.Path
		p.Nav[i] = n
	}
	if p.Kinds == nil {
		p.Kinds = change.Kinds
	}
	if p.Now.IsZero() {
		p.Now = time.Now().UTC()
	}
	if pr := auth.FromContext(r.Context()); pr != nil && pr.Kind == "session" {
		p.SignedIn, p.CSRF = pr.Name, pr.CSRF
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", p); err != nil {
		s.log.Error("render page", "page", name, "err", err)
		s.errorPage(w, http.StatusInternalServerError, "this page could not be shown; the server log says why")
		return
	}
	writeHTMLStatus(w, status, buf.Bytes())
}

// writeHTML sends a rendered page, or part of one, with status 200 and
// the headers every page has.
func writeHTML(w http.ResponseWriter, b []byte) { writeHTMLStatus(w, http.StatusOK, b) }

func writeHTMLStatus(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	pageSecurity(h)
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// failPage is fail for pages: the same status and message as the API
// would give, always as a page.
func (s *Server) failPage(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		s.errorPage(w, ae.status, ae.msg)
	case errors.Is(err, store.ErrNotFound):
		s.errorPage(w, http.StatusNotFound, "not found")
	case errors.Is(err, context.Canceled):
		// the client went away
	default:
		s.log.Error("page failed", "path", r.URL.Path, "err", err)
		s.errorPage(w, http.StatusInternalServerError, "this page could not be shown; the server log says why")
	}
}

// pageFilter is the filter of a page, read from its URL: which projects,
// which time window, and for the timeline which kinds, author and state.
type pageFilter struct {
	// Path is the page's own path, the form's action.
	Path string
	// Projects are the project filters as given (paths or ids); Group is a
	// path prefix. IDs are what they select, nil for every project.
	Projects []string
	Group    string
	IDs      []int64
	// Window is today, week, 7d, 30d, 90d, all or custom; Since and Until
	// (exclusive) are its bounds, zero when open.
	Window       string
	Since, Until time.Time
	// SinceText and UntilText are the custom window's dates as the form
	// shows them (Until inclusive).
	SinceText, UntilText string
	Bucket               string
	Kinds                []string
	Author, State        string
	WithKinds            bool
	WithBucket           bool
	// AllowAll offers the window "all time".
	AllowAll bool
}

type windowOption struct{ Value, Label string }

// Windows are the time windows the form offers.
func (f *pageFilter) Windows() []windowOption {
	w := []windowOption{{"today", "Today"}, {"week", "This week"}, {"7d", "Last 7 days"}, {"30d", "Last 30 days"}, {"90d", "Last 90 days"}}
	if f.AllowAll {
		w = append(w, windowOption{"all", "All time"})
	}
	return append(w, windowOption{"custom", "Dates below"})
}

// HasProject tells whether project p is selected.
func (f *pageFilter) HasProject(p string) bool {
	return slices.ContainsFunc(f.Projects, func(x string) bool { return strings.EqualFold(x, p) })
}

// HasKind tells whether kind k is selected.
func (f *pageFilter) HasKind(k change.Kind) bool { return slices.Contains(f.Kinds, string(k)) }

// Values are the filter as URL parameters, for links that keep it.
func (f *pageFilter) Values() url.Values {
	v := url.Values{}
	for _, p := range f.Projects {
		v.Add("project", p)
	}
	if f.Group != "" {
		v.Set("group", f.Group)
	}
	if f.Window == "custom" {
		if f.SinceText != "" {
			v.Set("since", f.SinceText)
		}
		if f.UntilText != "" {
			v.Set("until", f.UntilText)
		}
	} else if f.Window != "" {
		v.Set("window", f.Window)
	}
	for _, k := range f.Kinds {
		v.Add("kind", k)
	}
	if f.Author != "" {
		v.Set("author", f.Author)
	}
	if f.State != "" {
		v.Set("state", f.State)
	}
	if f.WithBucket && f.Bucket != "" {
		v.Set("bucket", f.Bucket)
	}
	return v
}

// filterOptions say which fields a page's filter has and its default window.
type filterOptions struct {
	window     string
	kinds      bool
	bucket     bool
	allowAll   bool
	extraParam []string
}

// parsePageFilter reads a page's filter from the URL. A bad value is a 400
// naming it; an unknown project or group a 404, as in the API.
func (s *Server) parsePageFilter(ctx context.Context, r *http.Request, o filterOptions, now time.Time) (*pageFilter, error) {
	q := r.URL.Query()
	known := []string{"project", "group", "window", "since", "until"}
	if o.kinds {
		known = append(known, "kind", "author", "state")
	}
	if o.bucket {
		known = append(known, "bucket")
	}
	if err := checkParams(q, append(known, o.extraParam...)); err != nil {
		return nil, err
	}
	f := &pageFilter{Path: r.URL.Path, WithKinds: o.kinds, WithBucket: o.bucket, AllowAll: o.allowAll}
	f.Projects = values(q, "project")
	f.Group = strings.Trim(strings.TrimSpace(q.Get("group")), "/")
	var groups []string
	if f.Group != "" {
		groups = []string{f.Group}
	}
	ids, err := s.projectSelection(ctx, f.Projects, groups)
	if err != nil {
		return nil, err
	}
	f.IDs = ids
	if o.kinds {
		for _, k := range values(q, "kind") {
			if _, err := change.ParseKind(k); err != nil {
				return nil, badRequest("%s", err)
			}
			f.Kinds = append(f.Kinds, k)
		}
		f.Author = strings.TrimSpace(q.Get("author"))
		f.State = strings.TrimSpace(q.Get("state"))
	}
	if o.bucket {
		f.Bucket = cmp.Or(strings.TrimSpace(q.Get("bucket")), "week")
		if !slices.Contains([]string{"day", "week", "month"}, f.Bucket) {
			return nil, badRequest("bucket must be day, week or month, got %q", f.Bucket)
		}
	}
	if err := f.window(q, o, now.UTC()); err != nil {
		return nil, err
	}
	return f, nil
}

// window sets the time window: dates given win over a named window, since
// a person who typed dates meant them.
func (f *pageFilter) window(q url.Values, o filterOptions, now time.Time) error {
	sinceText, untilText := strings.TrimSpace(q.Get("since")), strings.TrimSpace(q.Get("until"))
	f.Window = strings.TrimSpace(q.Get("window"))
	if sinceText != "" || untilText != "" {
		f.Window = "custom"
	}
	if f.Window == "" {
		f.Window = o.window
	}
	day := now.Truncate(24 * time.Hour)
	switch f.Window {
	case "today":
		f.Since = day
	case "week":
		f.Since = day.AddDate(0, 0, -((int(day.Weekday()) + 6) % 7))
	case "7d", "30d", "90d":
		n, _ := strconv.Atoi(strings.TrimSuffix(f.Window, "d"))
		f.Since = now.AddDate(0, 0, -n)
	case "all":
		if !o.allowAll {
			return badRequest("window all is not offered on this page: use today, week, 7d, 30d, 90d or dates")
		}
	case "custom":
		if sinceText != "" {
			t, err := parseTime("since", sinceText)
			if err != nil {
				return err
			}
			f.Since, f.SinceText = t, t.Format(time.DateOnly)
		}
		if untilText != "" {
			t, err := parseTime("until", untilText)
			if err != nil {
				return err
			}
			// A date is a whole day: "to 5 December" includes it.
			if _, derr := time.Parse(time.DateOnly, untilText); derr == nil {
				f.UntilText = untilText
				t = t.AddDate(0, 0, 1)
			} else {
				f.UntilText = t.Format(time.DateOnly)
			}
			f.Until = t
		}
		if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
			return badRequest("the window's end (%s) must be after its start (%s)", f.UntilText, f.SinceText)
		}
	default:
		return badRequest("window must be today, week, 7d, 30d, 90d%s or custom dates, got %q", map[bool]string{true: ", all", false: ""}[o.allowAll], f.Window)
	}
	return nil
}

// bounded is the window with open ends closed for a metric: until now, and
// since the default metrics window before it.
func (f *pageFilter) bounded(now time.Time) (since, until time.Time) {
	since, until = f.Since, f.Until
	if until.IsZero() || until.After(now) {
		until = now.UTC()
	}
	if since.IsZero() {
		since = until.Add(-DefaultMetricsWindow)
	}
	return since, until
}

// pageContext loads what the layout's filter form lists: the projects,
// their groups, and the states events can have.
func (s *Server) pageContext(ctx context.Context, f *pageFilter) (page, error) {
	ps, err := s.store.Projects(ctx)
	if err != nil {
		return page{}, err
	}
	groups := map[string]bool{}
	for _, p := range ps {
		parts := strings.Split(p.Path, "/")
		for i := 1; i < len(parts); i++ {
			groups[strings.Join(parts[:i], "/")] = true
		}
	}
	gs := make([]string, 0, len(groups))
	for g := range groups {
		gs = append(gs, g)
	}
	slices.Sort(gs)
	return page{F: f, Projects: ps, Groups: gs, States: knownStates}, nil
}

// knownStates are the states the form suggests; any other may be typed.
var knownStates = []string{"opened", "merged", "closed", "approved", "created", "pending", "running", "success", "failed", "canceled", "skipped", "manual", "active", "stopped", "pushed", "deleted", "published"}

// timeTag renders t as a <time> in UTC; the page's script shows it in the
// viewer's time zone.
func timeTag(t any) template.HTML {
	var tt time.Time
	switch v := t.(type) {
	case time.Time:
		tt = v
	case *time.Time:
		if v != nil {
			tt = *v
		}
	}
	if tt.IsZero() {
		return "—"
	}
	tt = tt.UTC()
	return template.HTML(fmt.Sprintf(`<time datetime="%s">%s UTC</time>`, tt.Format(time.RFC3339), tt.Format("2006-01-02 15:04")))
}

// dateTag is timeTag showing the day only.
func dateTag(t time.Time) template.HTML {
	if t.IsZero() {
		return "—"
	}
	t = t.UTC()
	return template.HTML(fmt.Sprintf(`<time datetime="%s" data-format="date">%s</time>`, t.Format(time.RFC3339), t.Format(time.DateOnly)))
}

// toFloat reads a number, a pointer to one, or nil (ok false).
func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case *float64:
		if x != nil {
			return *x, true
		}
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case *int:
		if x != nil {
			return float64(*x), true
		}
	}
	return 0, false
}

// humanDuration shows seconds as a person reads them: 45s, 12m, 3.5h, 2.1d.
func humanDuration(v any) string {
	s, ok := toFloat(v)
	if !ok || math.IsNaN(s) {
		return "—"
	}
	switch {
	case s < 60:
		return fmt.Sprintf("%.0fs", s)
	case s < 3600:
		return fmt.Sprintf("%.0fm", s/60)
	case s < 86400:
		return fmt.Sprintf("%.1fh", s/3600)
	}
	return fmt.Sprintf("%.1fd", s/86400)
}

// percent shows a ratio (0..1) as a percentage.
func percent(v any) string {
	r, ok := toFloat(v)
	if !ok || math.IsNaN(r) {
		return "—"
	}
	return fmt.Sprintf("%.1f%%", r*100)
}

// floatText shows a number with at most two decimals.
func floatText(v any) string {
	f, ok := toFloat(v)
	if !ok || math.IsNaN(f) {
		return "—"
	}
	return strconv.FormatFloat(math.Round(f*100)/100, 'f', -1, 64)
}

// number shows a count with thousands separated: 1,234,567.
func number(v any) string {
	f, ok := toFloat(v)
	if !ok {
		return "—"
	}
	s := strconv.FormatInt(int64(f), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// jsonData is v as JSON for a <script type="application/json"> block.
func jsonData(v any) (template.JS, error) {
	b, err := json.Marshal(v)
	return template.JS(b), err
}

// queryLink is path with the filter's parameters and pairs of key, value
// set over them ("" removes the key): links that keep the filter.
func queryLink(path string, f *pageFilter, kv ...string) string {
	v := url.Values{}
	if f != nil {
		v = f.Values()
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			v.Del(kv[i])
		} else {
			v.Set(kv[i], kv[i+1])
		}
	}
	if len(v) == 0 {
		return path
	}
	return path + "?" + v.Encode()
}
