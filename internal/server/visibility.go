package server

import (
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/labtrail/labtrail/internal/auth"
	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/export"
	"github.com/labtrail/labtrail/internal/store"
)

// Who sees which projects (docs/security.md): a person signed in with
// GitLab sees the projects they can see in GitLab, nothing of the others.
// Every read the server makes goes through visibleStore, which narrows it
// to the request's principal's projects, so no route can forget to: an
// invisible project is unknown (404), as on GitLab, and a listing or a
// metric covers the visible projects only. Webhook deliveries belong to
// no project labtrail has checked, so they are for principals who see
// every project.

// noProject is a project id no GitLab project has (0 is "none given" to
// the store): the selection of a principal who sees no project at all.
const noProject int64 = -1

// visibleStore is the server's store seen by the request's principal.
type visibleStore struct{ Store }

// restricted is the principal of ctx when it sees only some projects.
func restricted(ctx context.Context) *auth.Principal {
	if p := auth.FromContext(ctx); p != nil && p.Projects != nil {
		return p
	}
	return nil
}

// visibleIDs are the projects ctx's principal may see, sorted, or nil
// when it sees every one; never empty.
func visibleIDs(ctx context.Context) []int64 {
	p := restricted(ctx)
	if p == nil {
		return nil
	}
	ids := make([]int64, 0, len(p.Projects))
	for id, ok := range p.Projects {
		if ok {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return []int64{noProject}
	}
	slices.Sort(ids)
	return ids
}

// narrow is ids (nil: every project) cut to what ctx's principal sees.
func narrow(ctx context.Context, ids []int64) []int64 {
	p := restricted(ctx)
	if p == nil {
		return ids
	}
	if ids == nil {
		return visibleIDs(ctx)
	}
	out := slices.DeleteFunc(slices.Clone(ids), func(id int64) bool { return !p.CanSee(id) })
	if len(out) == 0 {
		return []int64{noProject}
	}
	return out
}

func (v visibleStore) List(ctx context.Context, f store.Filter) (store.Page, error) {
	f.ProjectIDs = narrow(ctx, f.ProjectIDs)
	pg, err := v.Store.List(ctx, f)
	pg.Events = visibleEvents(ctx, pg.Events)
	return pg, err
}

func (v visibleStore) Get(ctx context.Context, id string) (change.Event, []change.TimelineEntry, error) {
	ev, tl, err := v.Store.Get(ctx, id)
	if err == nil && !visible(ctx, ev) {
		return change.Event{}, nil, store.ErrNotFound
	}
	return ev, tl, err
}

func (v visibleStore) Projects(ctx context.Context) ([]store.Project, error) {
	ps, err := v.Store.Projects(ctx)
	if p := restricted(ctx); p != nil && err == nil {
		ps = slices.DeleteFunc(ps, func(pr store.Project) bool { return !p.CanSee(pr.ID) })
	}
	return ps, err
}

func (v visibleStore) SyncStates(ctx context.Context) ([]store.SyncState, error) {
	sts, err := v.Store.SyncStates(ctx)
	if p := restricted(ctx); p != nil && err == nil {
		sts = slices.DeleteFunc(sts, func(st store.SyncState) bool { return !p.CanSee(st.ProjectID) })
	}
	return sts, err
}

func (v visibleStore) ListDeliveries(ctx context.Context, f store.DeliveryFilter) (store.DeliveryPage, error) {
	if restricted(ctx) != nil {
		return store.DeliveryPage{}, nil
	}
	return v.Store.ListDeliveries(ctx, f)
}

// DigestSends narrows the sends to principals who see every project: a
// digest sums up projects a restricted principal may not see, and its key
// names them (as webhook deliveries, it belongs to no one project).
func (v visibleStore) DigestSends(ctx context.Context, limit int) ([]store.DigestSend, error) {
	if restricted(ctx) != nil {
		return nil, nil
	}
	return v.Store.DigestSends(ctx, limit)
}

func (v visibleStore) Delivery(ctx context.Context, id int64) (store.Delivery, error) {
	if restricted(ctx) != nil {
		return store.Delivery{}, store.ErrNotFound
	}
	return v.Store.Delivery(ctx, id)
}

// refuseRestricted answers 403 to a principal who sees only some projects
// asking for what spans every project; it reports whether it did.
func (s *Server) refuseRestricted(w http.ResponseWriter, r *http.Request, what string) bool {
	p := restricted(r.Context())
	if p == nil {
		return false
	}
	s.pageError(w, r, http.StatusForbidden, what+" span every project; "+p.Name+" sees only the projects they can see in GitLab")
	return true
}

// inner is the store the server's view is over.
func (s *Server) inner() any {
	if v, ok := s.store.(visibleStore); ok {
		return v.Store
	}
	return s.store
}

// related is the store's RelatedStore, when it has one, over the facts
// of connection (a project id is one GitLab's), seen by the request's
// principal: a project it cannot see has no related events.
func (s *Server) related(connection string) (store.RelatedStore, bool) {
	r, ok := viewed(s, func(r store.RelatedStore) store.RelatedStore { return visibleRelated{r} })
	if m, isFacts := s.inner().(store.MetricsStore); ok && isFacts {
		if cr, isRelated := m.FactsOf(connection).(store.RelatedStore); isRelated {
			return visibleRelated{cr}, true
		}
	}
	return r, ok
}

// viewed is the store's role R, when it has it, through view.
func viewed[R any](s *Server, view func(R) R) (R, bool) {
	r, ok := s.inner().(R)
	if !ok {
		return r, false
	}
	return view(r), true
}

type visibleRelated struct{ store.RelatedStore }

func (v visibleRelated) PipelineJobs(ctx context.Context, projectID, pipelineID int64, sha string, limit int) ([]change.Event, error) {
	evs, err := v.RelatedStore.PipelineJobs(ctx, projectID, pipelineID, sha, limit)
	return visibleEvents(ctx, evs), err
}

func (v visibleRelated) RefPipelines(ctx context.Context, projectID int64, refs []string, sha string, since, until time.Time, limit int) ([]change.Event, error) {
	evs, err := v.RelatedStore.RefPipelines(ctx, projectID, refs, sha, since, until, limit)
	return visibleEvents(ctx, evs), err
}

// linked is the store's LinkedStore, when it has one, seen by the
// request's principal.
func (s *Server) linked() (store.LinkedStore, bool) {
	return viewed(s, func(l store.LinkedStore) store.LinkedStore { return visibleLinked{l} })
}

type visibleLinked struct{ store.LinkedStore }

func (v visibleLinked) LinkedDeployments(ctx context.Context, id string) ([]change.Event, error) {
	evs, err := v.LinkedStore.LinkedDeployments(ctx, id)
	return visibleEvents(ctx, evs), err
}

// exportSource is the store's export.Source, when it has one, seen by
// the request's principal.
func (s *Server) exportSource() (export.Source, bool) {
	return viewed(s, func(src export.Source) export.Source { return visibleHistories{src} })
}

type visibleHistories struct{ export.Source }

func (v visibleHistories) ListHistories(ctx context.Context, f store.Filter) (store.HistoryPage, error) {
	f.ProjectIDs = narrow(ctx, f.ProjectIDs)
	pg, err := v.Source.ListHistories(ctx, f)
	if restricted(ctx) != nil {
		pg.Histories = slices.DeleteFunc(pg.Histories, func(h store.History) bool { return !visible(ctx, h.Event) })
	}
	return pg, err
}

// visible reports whether ctx's principal may see ev: a project it sees,
// of the default connection, whose GitLab it signed in with (an added
// connection's project ids are another GitLab's).
func visible(ctx context.Context, ev change.Event) bool {
	if restricted(ctx) == nil {
		return true
	}
	return auth.FromContext(ctx).CanSee(ev.ProjectID) && store.ConnectionOf(ev.ID) == store.DefaultConnection
}

// visibleEvents is evs without those ctx's principal may not see.
func visibleEvents(ctx context.Context, evs []change.Event) []change.Event {
	if restricted(ctx) == nil {
		return evs
	}
	return slices.DeleteFunc(evs, func(e change.Event) bool { return !visible(ctx, e) })
}

// ViewedStoreMethods are the methods of Store whose answers visibleStore
// has been checked for: narrowed to the principal's projects (List, Get,
// Projects, SyncStates, ListDeliveries, Delivery), admin-only (ListAudit),
// writes, or no project's data. A method added to Store must be added
// here once it is narrowed, or a GitLab user could read every project
// through it; a test holds the two together.
var ViewedStoreMethods = []string{
	"AppendAudit", "Count", "Delivery", "Get", "List", "ListAudit", "ListDeliveries", "MarkDelivery", "Ping",
	"Projects", "PruneAudit", "PutDelivery", "PutProjects", "PutSyncState", "SyncState", "SyncStates", "Upsert",
	"Versions", "VersionsByPrefix",
	"ClaimDigest", "FinishDigest", "DigestSends", // digest sends: writes, and for who sees every project
}
