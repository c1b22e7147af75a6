package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/metrics"
	"github.com/labtrail/labtrail/internal/store"
)

// The delivery metrics (internal/metrics) and change correlation, over
// HTTP: GET /api/v1/metrics/{dora,merge-requests,pipelines} and
// GET /api/v1/changes/before.

// DefaultMetricsWindow is the window of a metric asked without since.
const DefaultMetricsWindow = 30 * 24 * time.Hour

// EnableMetrics serves the delivery metrics computed by m.
func (s *Server) EnableMetrics(m *metrics.Metrics) { s.delivery = m }

// metricsParams are the parameters every metrics endpoint takes.
var metricsParams = []string{"project", "group", "since", "until", "bucket", "connection"}

// checkParams refuses a parameter an endpoint does not take: a typo such
// as projet= would otherwise widen the answer to every project.
func checkParams(q url.Values, known []string) error {
	var unknown []string
	for k := range q {
		if !slices.Contains(known, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return badRequest("unknown parameter %q: this endpoint takes %s", unknown[0], strings.Join(known, ", "))
	}
	return nil
}

// projectSelection reads project refs (ids or paths) and groups (a path
// prefix, subgroups included) into the default connection's project ids:
// none selects every project the request's principal may see (nil when
// that is every project). A project or group labtrail does not sync is a
// 404.
func (s *Server) projectSelection(ctx context.Context, refs, groups []string) ([]int64, error) {
	return selectionIn(ctx, s.store, refs, groups)
}

// connectionSelection reads q's project and group parameters into the
// project ids of the connection named conn (the default's when empty), as
// projectSelection does; an unknown connection is a 404.
func (s *Server) connectionSelection(ctx context.Context, conn string, q url.Values) ([]int64, error) {
	ps, err := s.projectStoreNamed(ctx, conn)
	if err != nil {
		return nil, err
	}
	return selectionIn(ctx, ps, values(q, "project"), values(q, "group"))
}

// selectionIn is projectSelection over the projects of ps.
func selectionIn(ctx context.Context, ps store.ProjectStore, refs, groups []string) ([]int64, error) {
	if len(refs) == 0 && len(groups) == 0 {
		return visibleIDs(ctx), nil
	}
	all, err := ps.Projects(ctx)
	if err != nil {
		return nil, err
	}
	return selectionError(store.SelectProjects(all, refs, groups))
}

// selectionError makes a project or group of a selection that labtrail
// does not sync a 404 that says where the projects are listed.
func selectionError(ids []int64, err error) ([]int64, error) {
	var ue *store.UnknownSelectionError
	if errors.As(err, &ue) {
		return nil, &apiError{http.StatusNotFound, ue.Error() + " (see GET /api/v1/projects)"}
	}
	return ids, err
}

// metricsOf is the delivery metrics over the facts of connection (""
// when the request names none) for projects (nil: every one), as ctx's
// principal may read them: a selection of projects is one connection's,
// the default one's unless another is named, and a principal who signed
// in with the default connection's GitLab reads its facts alone, whatever
// it asks.
func (s *Server) metricsOf(ctx context.Context, projects []int64, connection string) *metrics.Metrics {
	if restricted(ctx) != nil || (connection == "" && projects != nil) {
		connection = store.DefaultConnection
	}
	return s.delivery.Of(connection)
}

// metricsQuery reads a metrics endpoint's parameters, and the connection
// its projects are of ("" when none is named).
func (s *Server) metricsQuery(ctx context.Context, q url.Values, now time.Time) (mq metrics.Query, conn string, err error) {
	if err := checkParams(q, metricsParams); err != nil {
		return mq, "", err
	}
	for _, k := range []string{"since", "until", "bucket", "connection"} {
		if len(values(q, k)) > 1 {
			return mq, "", badRequest("%s is given more than once", k)
		}
	}
	get := func(k string) string {
		if v := values(q, k); len(v) > 0 {
			return v[0]
		}
		return ""
	}
	since, until, err := parseWindow(get)
	if err != nil {
		return mq, "", err
	}
	if until.IsZero() {
		until = now.UTC()
	}
	if since.IsZero() {
		since = until.Add(-DefaultMetricsWindow)
	}
	if !since.Before(until) {
		return mq, "", badRequest("since (%s) must be before until (%s)", since.Format(time.RFC3339), until.Format(time.RFC3339))
	}
	b, err := metrics.ParseBucket(get("bucket"))
	if err != nil {
		return mq, "", badRequest("%s", err)
	}
	// The projects are those of the connection named (the default's
	// when none is): an unknown connection is a 404.
	conn = get("connection")
	ids, err := s.connectionSelection(ctx, conn, q)
	if err != nil {
		return mq, "", err
	}
	return metrics.Query{ProjectIDs: ids, Since: since, Until: until, Bucket: b, Now: now}, conn, nil
}

// serveMetric answers one metrics endpoint with compute's result.
func serveMetric[T any](s *Server, compute func(*metrics.Metrics, context.Context, metrics.Query) (T, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.delivery == nil {
			writeError(w, http.StatusNotFound, "the delivery metrics are not set up on this server")
			return
		}
		q, conn, err := s.metricsQuery(r.Context(), r.URL.Query(), time.Now())
		if err != nil {
			s.fail(w, r, err)
			return
		}
		v, err := compute(s.metricsOf(r.Context(), q.ProjectIDs, conn), r.Context(), q)
		if errors.Is(err, metrics.ErrInvalidQuery) {
			err = badRequest("%s", err)
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, v)
	}
}

// MaxChangeWindow is the widest window GET /api/v1/changes/before looks
// back over.
const MaxChangeWindow = 30 * 24 * time.Hour

// DefaultChangeWindow is its window when none is asked for.
const DefaultChangeWindow = 6 * time.Hour

// maxChanges is how many changes it returns at most, newest first.
const maxChanges = 1000

// changeKinds are the kinds that change what runs, each with the states
// that do (none: any).
var changeKinds = []struct {
	kind   change.Kind
	states []string
}{
	{change.KindDeployment, nil},
	{change.KindMergeRequest, []string{"merged"}},
	{change.KindPipeline, []string{"success", "failed", "canceled", "skipped"}},
	{change.KindRelease, nil},
	{change.KindTag, nil},
	{change.KindImage, nil},
	{change.KindEnvironment, nil},
}

type changesBefore struct {
	At            time.Time      `json:"at"`
	WindowSeconds float64        `json:"window_seconds"`
	Incident      string         `json:"incident,omitempty"`
	Changes       []change.Event `json:"changes"`
	// Truncated says more changes happened in the window than the
	// maxChanges newest returned.
	Truncated bool `json:"truncated"`
	// incident is the incident's event, when asked by incident.
	incident change.Event
}

// changesBefore answers what changed in the window before a moment, or
// before an incident was opened.
func (s *Server) changesBefore(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if err := checkParams(q, []string{"at", "window", "incident", "project", "group", "connection"}); err != nil {
		s.fail(w, r, err)
		return
	}
	res, f, err := s.changeQuery(r.Context(), q)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if res.Changes, res.Truncated, err = s.listChanges(r.Context(), f, maxChanges); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// listChanges lists the changes changeQuery's filter selects, newest
// first, at most limit of them (never nil); truncated says there were
// more.
func (s *Server) listChanges(ctx context.Context, f store.Filter, limit int) (all []change.Event, truncated bool, err error) {
	f.Limit = limit
	for _, k := range changeKinds {
		f.Kinds, f.States, f.Cursor = []change.Kind{k.kind}, k.states, ""
		page, err := s.store.List(ctx, f)
		if err != nil {
			return nil, false, err
		}
		all = append(all, page.Events...)
		truncated = truncated || page.NextCursor != ""
	}
	sort.SliceStable(all, func(i, j int) bool {
		if !all[i].OccurredAt.Equal(all[j].OccurredAt) {
			return all[i].OccurredAt.After(all[j].OccurredAt)
		}
		return all[i].ID > all[j].ID
	})
	if len(all) > limit {
		all, truncated = all[:limit], true
	}
	for i := range all {
		all[i].SafeURLs("")
	}
	if all == nil {
		all = []change.Event{}
	}
	return all, truncated, nil
}

// changeQuery reads at (or incident), window and the projects into the
// answer's header and the listing's filter.
func (s *Server) changeQuery(ctx context.Context, q url.Values) (changesBefore, store.Filter, error) {
	var (
		res changesBefore
		f   store.Filter
	)
	for _, k := range []string{"at", "window", "incident", "connection"} {
		if len(values(q, k)) > 1 {
			return res, f, badRequest("%s is given more than once", k)
		}
	}
	conn := ""
	if v := values(q, "connection"); len(v) > 0 {
		conn = v[0]
	}
	window := DefaultChangeWindow
	if v := values(q, "window"); len(v) > 0 {
		d, err := time.ParseDuration(v[0])
		if err != nil || d <= 0 || d > MaxChangeWindow {
			return res, f, badRequest("window must be a duration such as 6h or 90m, above 0 and at most 720h (30 days), got %q", v[0])
		}
		window = d
	}
	at, inc := values(q, "at"), values(q, "incident")
	switch {
	case len(at) > 0 && len(inc) > 0:
		return res, f, badRequest("give at or incident, not both")
	case len(inc) > 0:
		id := inc[0]
		// An added connection's ids are its name, a colon and the id.
		own := store.ConnectionOf(id)
		local := id
		if own != store.DefaultConnection {
			local = strings.TrimPrefix(id, own+":")
		}
		if p, err := change.ParseID(local); err != nil || p.Kind != change.KindIssue {
			return res, f, badRequest("incident must be an issue id such as issue-42-7 (or, of an added connection, second:issue-42-7), got %q", id)
		}
		if conn != "" && conn != own {
			return res, f, badRequest("incident %q is of connection %q: leave out connection or give that one", id, own)
		}
		e, _, err := s.store.Get(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return res, f, &apiError{http.StatusNotFound, fmt.Sprintf("unknown incident %q: labtrail holds no such issue", id)}
		}
		if err != nil {
			return res, f, err
		}
		if len(values(q, "project")) > 0 || len(values(q, "group")) > 0 {
			return res, f, badRequest("incident selects its own project: leave out project and group")
		}
		res.At, res.Incident, f.ProjectIDs, res.incident = e.CreatedAt.UTC(), id, []int64{e.ProjectID}, e
		f.Connections = []string{store.ConnectionOf(e.ID)} // its project is its GitLab's
	default:
		res.At = time.Now().UTC()
		if len(at) > 0 {
			t, err := parseTime("at", at[0])
			if err != nil {
				return res, f, err
			}
			res.At = t
		}
		// The projects are those of the connection named (the default's
		// when none is), as the metrics' (metricsQuery): another GitLab's
		// project of the same id is another project. An unknown
		// connection is a 404.
		ids, err := s.connectionSelection(ctx, conn, q)
		if err != nil {
			return res, f, err
		}
		f.ProjectIDs = ids
		switch {
		case conn != "":
			f.Connections = []string{conn}
		case ids != nil:
			f.Connections = []string{store.DefaultConnection}
		}
	}
	res.WindowSeconds = window.Seconds()
	f.Since = res.At.Add(-window)
	// at is inclusive; the listing's until is not. Stored times are
	// microseconds at their finest on every backend.
	f.Until = res.At.Add(time.Microsecond)
	if !store.InTimeRange(f.Since) || !store.InTimeRange(f.Until) {
		return res, f, badRequest("at minus window is outside the range labtrail stores, %s", store.TimeRange())
	}
	f.Limit = maxChanges
	return res, f, nil
}
