package server

import (
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/labtrail/labtrail/internal/auth"
	"github.com/labtrail/labtrail/internal/change"
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
	return v.Store.List(ctx, f)
}

func (v visibleStore) Get(ctx context.Context, id string) (change.Event, []change.TimelineEntry, error) {
	ev, tl, err := v.Store.Get(ctx, id)
	if err == nil && !auth.FromContext(ctx).CanSee(ev.ProjectID) {
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

// related is the store's RelatedStore, when it has one, seen by the
// request's principal: a project it cannot see has no related events.
func (s *Server) related() (store.RelatedStore, bool) {
	var inner any = s.store
	if v, ok := s.store.(visibleStore); ok {
		inner = v.Store
	}
	rs, ok := inner.(store.RelatedStore)
	if !ok {
		return nil, false
	}
	return visibleRelated{rs}, true
}

type visibleRelated struct{ store.RelatedStore }

func (v visibleRelated) PipelineJobs(ctx context.Context, projectID, pipelineID int64, sha string, limit int) ([]change.Event, error) {
	if !auth.FromContext(ctx).CanSee(projectID) {
		return nil, nil
	}
	return v.RelatedStore.PipelineJobs(ctx, projectID, pipelineID, sha, limit)
}

func (v visibleRelated) RefPipelines(ctx context.Context, projectID int64, refs []string, sha string, since, until time.Time, limit int) ([]change.Event, error) {
	if !auth.FromContext(ctx).CanSee(projectID) {
		return nil, nil
	}
	return v.RelatedStore.RefPipelines(ctx, projectID, refs, sha, since, until, limit)
}
