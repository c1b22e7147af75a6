package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labtrail/labtrail/internal/store"
)

// The sync page, GET /sync: how labtrail's copy of GitLab is kept — each
// project's status and each kind's poll (cursor, last run, counts,
// error), the GitLab rate-limit budget as the audit log last saw it, and
// the recent webhook deliveries, each of which can be replayed with
// POST /sync/deliveries/{id}/replay.

// syncDeliveryLimit is how many deliveries one page of the sync page lists.
const syncDeliveryLimit = 50

// syncAuditLimit is how many of the newest GitLab calls the rate-limit
// budget is read from.
const syncAuditLimit = 200

// syncCountLimit bounds the deliveries counted per status: past it the
// page says "1,000+" instead of counting on.
const syncCountLimit = 1000

// syncProject is one project with its kinds' sync states.
type syncProject struct {
	store.Project
	// Connection is the GitLab connection it is of.
	Connection string
	States     []store.SyncState
	// Errors is how many of its kinds' last polls failed.
	Errors int
	// Complete is when all of its history is stored up to: the oldest of
	// its kinds' last successes (zero when a kind never succeeded).
	Complete time.Time
}

// Anchor is the page's id of the project: its id, after its
// connection's name for an added one (two GitLabs may have a project of
// one id).
func (p syncProject) Anchor() string {
	if p.Connection == store.DefaultConnection {
		return strconv.FormatInt(p.ID, 10)
	}
	return p.Connection + "-" + strconv.FormatInt(p.ID, 10)
}

// Active tells whether labtrail still syncs the project.
func (p syncProject) Active() bool { return p.Status == store.ProjectActive || p.Status == "" }

// StatusText says in words why a stopped project is not synced.
func (p syncProject) StatusText() string {
	switch p.Status {
	case store.ProjectActive, "":
		return "active"
	case store.ProjectNotFound:
		return "stopped: GitLab answers 404 (deleted, moved, or not visible to the token)"
	case store.ProjectForbidden:
		return "stopped: GitLab answers 403 (the token lost access)"
	}
	return "stopped: " + p.Status
}

// rateBudget is the GitLab rate-limit budget as the audit log of GitLab
// calls recorded it: the newest answer that carried RateLimit-Remaining.
type rateBudget struct {
	// Audited is whether any GitLab call is in the audit log at all.
	Audited bool
	// Seen is whether one of the calls read carried RateLimit-Remaining.
	Seen      bool
	Remaining int
	At        time.Time
	Path, Job string
	// Calls is how many of the newest calls were read, since Oldest;
	// Refused of them were answered 429, Unanswered got no answer.
	Calls, Refused, Unanswered int
	Oldest                     time.Time
}

// countText is a bounded count: N, or N+ when there were more.
type countText struct {
	N    int
	More bool
}

func (c countText) String() string {
	if c.More {
		return number(c.N) + "+"
	}
	return number(c.N)
}

// replayNote is what the page says after a replay redirected to it.
type replayNote struct {
	ID        int64
	Found     bool
	Delivery  store.Delivery
	Succeeded bool
}

type syncPageData struct {
	Projects        []syncProject
	Selected        []string // the project filter as given
	Group           string
	Filtered        bool
	Active, Stopped int
	Kinds, KindErrs int
	NeverSynced     bool
	HistoryUntil    time.Time
	// Incomplete is how many active projects have a kind never polled
	// to the end, left out of HistoryUntil.
	Incomplete      int
	Rate            rateBudget
	Webhooks        bool
	WebhooksHint    string
	Status          string
	Statuses        []string
	Cursor          string
	Deliveries      []store.Delivery
	NextCursor      string
	Failed, Pending countText
	Replayed        *replayNote
	AllProjects     []store.Project
	// Connections is how many GitLab connections' projects are shown:
	// with more than one, each project names its own.
	Connections int
	// ReplayQuery is the page's filter for the Replay forms' action, so
	// their redirect comes back to the same view.
	ReplayQuery string
	// F is the project filter, for links that keep it.
	F *pageFilter
	// Digests are the newest digest sends; DigestsFailed how many of
	// them failed.
	Digests       []digestSend
	DigestsFailed int
}

// syncParams are the parameters GET /sync takes.
var syncParams = []string{"project", "group", "status", "cursor", "replayed"}

// syncPage answers GET /sync.
func (s *Server) syncPage(w http.ResponseWriter, r *http.Request) {
	d, err := s.syncData(r.Context(), r.URL.Query(), time.Now().UTC())
	if err != nil {
		s.failPage(w, r, err)
		return
	}
	s.render(w, r, "sync", page{Title: "Sync", Data: d})
}

// syncData reads everything the sync page shows: a handful of bounded
// queries, none per project or per delivery.
func (s *Server) syncData(ctx context.Context, q url.Values, now time.Time) (*syncPageData, error) {
	if err := checkParams(q, syncParams); err != nil {
		return nil, err
	}
	for _, k := range []string{"group", "status", "cursor", "replayed"} {
		if len(q[k]) > 1 {
			return nil, badRequest("%s is given more than once", k)
		}
	}
	d := &syncPageData{
		Selected: values(q, "project"), Group: strings.Trim(strings.TrimSpace(q.Get("group")), "/"),
		Status: strings.TrimSpace(q.Get("status")), Cursor: strings.TrimSpace(q.Get("cursor")),
		Statuses: store.DeliveryStatuses, Webhooks: s.webhook != nil, WebhooksHint: s.hints.Webhooks,
	}
	if d.Status != "" && !slices.Contains(store.DeliveryStatuses, d.Status) {
		return nil, badRequest("status must be %s, got %q", strings.Join(store.DeliveryStatuses, ", "), d.Status)
	}
	var replayed int64
	if v := strings.TrimSpace(q.Get("replayed")); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return nil, badRequest("replayed must be a delivery id, a positive number, got %q", v)
		}
		replayed = n
	}
	var groups []string
	if d.Group != "" {
		groups = []string{d.Group}
	}
	ids, err := s.projectSelection(ctx, d.Selected, groups)
	if err != nil {
		return nil, err
	}
	d.Filtered = ids != nil
	if err := s.syncProjects(ctx, d, ids); err != nil {
		return nil, err
	}
	if d.Rate, err = s.rateBudget(ctx); err != nil {
		return nil, err
	}
	if err := s.syncDeliveries(ctx, d); err != nil {
		return nil, err
	}
	if replayed > 0 {
		note := &replayNote{ID: replayed}
		dl, err := s.store.Delivery(ctx, replayed)
		switch {
		case err == nil:
			note.Found, note.Delivery = true, dl
			note.Succeeded = dl.Status != store.DeliveryFailed && dl.Status != store.DeliveryPending
		case !errors.Is(err, store.ErrNotFound):
			return nil, err
		}
		d.Replayed = note
	}
	if d.Digests, err = s.digestSends(ctx); err != nil {
		return nil, err
	}
	for _, ds := range d.Digests {
		if ds.State == "failed" {
			d.DigestsFailed++
		}
	}
	d.F = &pageFilter{Path: "/sync", Projects: d.Selected, Group: d.Group}
	d.ReplayQuery = queryLink("", d.F, "status", d.Status, "cursor", d.Cursor)
	return d, nil
}

// syncProjects fills the projects with their sync states and the counts
// over them, every connection's; ids, when not nil, narrows them to those
// projects of the default connection (the filter's).
func (s *Server) syncProjects(ctx context.Context, d *syncPageData, ids []int64) error {
	ps, err := s.store.Projects(ctx)
	if err != nil {
		return err
	}
	d.AllProjects = ps
	named := ""
	if ids != nil {
		named = store.DefaultConnection
	}
	stores, err := s.projectStores(ctx, named)
	if err != nil {
		return err
	}
	d.NeverSynced, d.Connections = true, len(stores)
	for _, c := range stores {
		if err := d.addProjects(ctx, c, ids); err != nil {
			return err
		}
	}
	// Stopped projects and those with errors first: they are why one
	// opens this page.
	slices.SortStableFunc(d.Projects, func(a, b syncProject) int {
		ra, rb := syncRank(a), syncRank(b)
		if ra != rb {
			return ra - rb
		}
		return strings.Compare(strings.ToLower(a.Path), strings.ToLower(b.Path))
	})
	return nil
}

// addProjects adds connection c's projects (those of ids, when not nil)
// with their sync states to d.
func (d *syncPageData) addProjects(ctx context.Context, c connectionProjects, ids []int64) error {
	ps, err := c.Store.Projects(ctx)
	if err != nil {
		return err
	}
	sts, err := c.Store.SyncStates(ctx)
	if err != nil {
		return err
	}
	byProject := map[int64][]store.SyncState{}
	for _, st := range sts {
		byProject[st.ProjectID] = append(byProject[st.ProjectID], st)
	}
	d.NeverSynced = d.NeverSynced && len(sts) == 0
	for _, p := range ps {
		if ids != nil && !slices.Contains(ids, p.ID) {
			continue
		}
		sp := syncProject{Project: p, Connection: c.Name, States: byProject[p.ID]}
		slices.SortFunc(sp.States, func(a, b store.SyncState) int { return strings.Compare(string(a.Kind), string(b.Kind)) })
		for i, st := range sp.States {
			if st.LastError != "" {
				sp.Errors++
			}
			if i == 0 || st.LastSuccess.Before(sp.Complete) {
				sp.Complete = st.LastSuccess
			}
		}
		if sp.Active() {
			d.Active++
			switch {
			case sp.Complete.IsZero():
				d.Incomplete++
			case d.HistoryUntil.IsZero() || sp.Complete.Before(d.HistoryUntil):
				d.HistoryUntil = sp.Complete
			}
		} else {
			d.Stopped++
		}
		d.Kinds += len(sp.States)
		d.KindErrs += sp.Errors
		d.Projects = append(d.Projects, sp)
	}
	return nil
}

func syncRank(p syncProject) int {
	switch {
	case !p.Active():
		return 0
	case p.Errors > 0:
		return 1
	}
	return 2
}

// rateBudget reads the newest GitLab calls from the audit log: the last
// RateLimit-Remaining GitLab sent, and how many of them were refused.
func (s *Server) rateBudget(ctx context.Context) (rateBudget, error) {
	var b rateBudget
	page, err := s.store.ListAudit(ctx, store.AuditFilter{Limit: syncAuditLimit})
	if err != nil {
		return b, err
	}
	b.Calls = len(page.Entries)
	b.Audited = b.Calls > 0
	for _, e := range page.Entries { // newest first
		if !b.Seen && e.RateLimitRemaining >= 0 {
			b.Seen, b.Remaining, b.At, b.Path, b.Job = true, e.RateLimitRemaining, e.Time, e.Path, e.Job
		}
		switch e.Status {
		case http.StatusTooManyRequests:
			b.Refused++
		case 0:
			b.Unanswered++
		}
		b.Oldest = e.Time
	}
	return b, nil
}

// syncDeliveries lists one page of deliveries and counts the failed and
// pending ones.
func (s *Server) syncDeliveries(ctx context.Context, d *syncPageData) error {
	page, err := s.store.ListDeliveries(ctx, store.DeliveryFilter{Status: d.Status, Limit: syncDeliveryLimit, Cursor: d.Cursor})
	if err != nil {
		if errors.Is(err, store.ErrInvalidCursor) {
			return badRequest("invalid cursor: follow the page's own Older link")
		}
		return err
	}
	d.Deliveries, d.NextCursor = page.Deliveries, page.NextCursor
	for _, c := range []struct {
		status string
		dst    *countText
	}{{store.DeliveryFailed, &d.Failed}, {store.DeliveryPending, &d.Pending}} {
		p, err := s.store.ListDeliveries(ctx, store.DeliveryFilter{Status: c.status, Limit: syncCountLimit})
		if err != nil {
			return err
		}
		*c.dst = countText{N: len(p.Deliveries), More: p.NextCursor != ""}
	}
	return nil
}

// replayByID replays delivery idText as POST
// /api/v1/webhooks/deliveries/{id}/replay and the sync page's button do.
func (s *Server) replayByID(ctx context.Context, idText string) (int64, error) {
	id, err := strconv.ParseInt(idText, 10, 64)
	if err != nil || id <= 0 {
		return 0, badRequest("delivery id must be a positive number")
	}
	if _, err := s.store.Delivery(ctx, id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			err = &apiError{http.StatusNotFound, fmt.Sprintf("no delivery %d", id)}
		}
		return id, err
	}
	if s.replay == nil {
		return id, &apiError{http.StatusServiceUnavailable, s.hints.Webhooks}
	}
	return id, s.replay(ctx, id)
}

// replayPage answers POST /sync/deliveries/{id}/replay, the sync page's
// Replay button: the delivery is converted again, then 303 back to the
// sync page (its filter kept), which says how the replay went.
func (s *Server) replayPage(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		s.errorPage(w, http.StatusForbidden, "this form may only be sent from labtrail's own pages (the request's Origin names another site)")
		return
	}
	q := r.URL.Query()
	if err := checkParams(q, []string{"project", "group", "status", "cursor"}); err != nil {
		s.failPage(w, r, err)
		return
	}
	id, err := s.replayByID(r.Context(), r.PathValue("id"))
	if err != nil {
		s.failPage(w, r, err)
		return
	}
	q.Set("replayed", strconv.FormatInt(id, 10))
	http.Redirect(w, r, "/sync?"+q.Encode()+"#deliveries", http.StatusSeeOther)
}

// sameOrigin refuses a form posted from another site: a request whose
// Origin (or, without one, Sec-Fetch-Site) says it came from elsewhere. A
// request with neither is a client that is no browser, and passes.
func sameOrigin(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		return err == nil && o != "null" && strings.EqualFold(u.Host, r.Host)
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
		return true
	}
	return false
}

// OlderLink is the next page of deliveries; NewestLink the first.
func (d *syncPageData) OlderLink() string {
	return queryLink("/sync", d.F, "status", d.Status, "cursor", d.NextCursor) + "#deliveries"
}

func (d *syncPageData) NewestLink() string {
	return queryLink("/sync", d.F, "status", d.Status) + "#deliveries"
}
