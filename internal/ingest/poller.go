// Package ingest holds labtrail's two ways in. The poller here walks the
// GitLab REST API incrementally and is the safety net: after a poll the
// store equals GitLab whatever webhooks were lost.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/gitlab"
	"github.com/labtrail/labtrail/internal/store"
)

// GitLab is what the poller needs from the API client; *gitlab.Client has it.
type GitLab interface {
	SelectProjects(ctx context.Context, s gitlab.Selection) (gitlab.ProjectList, error)
	Fetch(ctx context.Context, kind change.Kind, p gitlab.Project, since time.Time, opts gitlab.FetchOptions, fn func(gitlab.Page) error) error
}

// Poller syncs GitLab projects into the store.
type Poller struct {
	GitLab GitLab
	Store  ProcessStore
	// Selection says which projects to sync (named projects, groups,
	// archived ones, the project cap).
	Selection gitlab.Selection
	// Branches are the branches whose commits are synced; empty means each
	// project's default branch.
	Branches []string
	// Kinds to sync, in order; empty means gitlab.SyncKinds().
	Kinds []change.Kind
	// Recheck is how long a project found gone or forbidden is left alone
	// before labtrail asks GitLab about it again; default 24 hours.
	Recheck time.Duration
	// ImageSweep is how often the details of every stored container image
	// tag are read again; default 24 hours.
	ImageSweep time.Duration
	// FullSweep is how often every project is synced whatever its
	// last_activity_at says: pipelines, deployments, registry pushes and
	// edits that create no GitLab event do not move it. Between sweeps a
	// project is synced only when it shows activity. Zero means
	// DefaultFullSweep; negative means every poll syncs every project.
	FullSweep time.Duration
	// ActivityGrace widens "moved since the last sync": a project is synced
	// when its last_activity_at is within ActivityGrace before its last
	// sync, or later. GitLab moves last_activity_at at most once an hour
	// (Event::RESET_PROJECT_ACTIVITY_INTERVAL), so activity within the hour
	// after the last move does not show; default one hour.
	ActivityGrace time.Duration
	// Sweep is how often each quiet project is asked, through GitLab's
	// GraphQL API, a batch of projects per request, whether anything of
	// each kind changed since that kind's last sync; only the kinds that
	// changed are then synced (sweep.go). Zero means DefaultSweep;
	// negative turns it off (the FullSweep alone catches what does not
	// move last_activity_at). It needs a GitLab that implements
	// ChangeDetector.
	Sweep time.Duration
	// Walks is how many kinds of one project are walked at once; zero
	// means DefaultWalks. Requests stay within the client's rate limit
	// and concurrency whatever it is.
	Walks int
	Log   *slog.Logger
	// Progress, if set, is called after each stored page.
	Progress func(Progress)
	// Observer, if set, is told how each poll of a project and kind ended.
	Observer Observer
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Progress reports a sync in flight.
type Progress struct {
	Project string
	// Kind is the kind being walked; Fetched and Stored count objects of
	// that kind only. With counts the others the walk brings along (the
	// notes of merge requests and issues, the jobs of pipelines), so far.
	Kind    change.Kind
	Fetched int
	Stored  int
	With    []Count
	// Done and Due count the projects of a SyncAll: finished, and to sync
	// in this run (zero outside SyncAll).
	Done, Due int
	// Started is when this project's sync of Kind began. Fraction is how
	// much of Kind's time range it has walked: listings run from the
	// oldest updated_at to now, so Fetched/Fraction estimates the total
	// and the elapsed time the rest (0 while unknown).
	Started  time.Time
	Fraction float64
}

// Count is what one sync did for one project and kind: every object is
// counted once, under its own kind. Notes come by three walks, so a
// note's count also names what the notes are on: Parent is
// merge_request, issue or commit (empty for other kinds).
type Count struct {
	ProjectID   int64       `json:"project_id"`
	ProjectPath string      `json:"project_path"`
	Kind        change.Kind `json:"kind"`
	Parent      change.Kind `json:"parent,omitempty"`
	Fetched     int         `json:"fetched"`
	Stored      int         `json:"stored"`
}

// noteParent is what the notes a walk of kind brings are on: the merge
// requests or issues walked, or, for the note walk itself, commits.
func noteParent(walk change.Kind) change.Kind {
	if walk == change.KindNote {
		return change.KindCommit
	}
	return walk
}

// ProjectResult is the outcome of syncing one project.
type ProjectResult struct {
	Project store.Project
	Counts  []Count
	Err     error
}

// Result is the outcome of syncing every selected project.
type Result struct {
	Projects []ProjectResult
	Missing  []gitlab.MissingProject // selected but not found or not accessible
	Capped   int                     // selected but left out by the project cap
	Quiet    int                     // selected, no activity since their last sync: skipped
	Duration time.Duration
}

// Totals sums counts per kind over every project.
func (r Result) Totals() map[change.Kind]Count {
	t := map[change.Kind]Count{}
	for _, p := range r.Projects {
		for _, c := range p.Counts {
			s := t[c.Kind]
			s.Kind = c.Kind
			s.Fetched += c.Fetched
			s.Stored += c.Stored
			t[c.Kind] = s
		}
	}
	return t
}

// Err joins the errors of every failed project, nil if none failed.
func (r Result) Err() error {
	var errs []error
	for _, m := range r.Missing {
		errs = append(errs, fmt.Errorf("%s: %w", m.Selector, m.Err))
	}
	for _, p := range r.Projects {
		if p.Err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p.Project.Path, p.Err))
		}
	}
	return errors.Join(errs...)
}

func (p *Poller) log() *slog.Logger {
	if p.Log != nil {
		return p.Log
	}
	return slog.Default()
}

func (p *Poller) now() time.Time {
	if p.Now != nil {
		return p.Now().UTC()
	}
	return time.Now().UTC()
}

func (p *Poller) recheck() time.Duration {
	if p.Recheck > 0 {
		return p.Recheck
	}
	return 24 * time.Hour
}

func (p *Poller) imageSweep() time.Duration {
	if p.ImageSweep > 0 {
		return p.ImageSweep
	}
	return 24 * time.Hour
}

// DefaultFullSweep is how often every project is synced when
// Poller.FullSweep is zero.
const DefaultFullSweep = 6 * time.Hour

func (p *Poller) fullSweep() time.Duration {
	if p.FullSweep == 0 {
		return DefaultFullSweep
	}
	return p.FullSweep
}

func (p *Poller) activityGrace() time.Duration {
	if p.ActivityGrace > 0 {
		return p.ActivityGrace
	}
	return time.Hour
}

func (p *Poller) kinds() []change.Kind {
	if len(p.Kinds) > 0 {
		return p.Kinds
	}
	return gitlab.SyncKinds()
}

// Discovery is what Discover found.
type Discovery struct {
	Projects []store.Project         // active projects, by path
	Missing  []gitlab.MissingProject // selected projects or groups GitLab did not give us
	Capped   int                     // matching projects left out by the cap
	// Due are the Projects to sync now: those that show activity since
	// their last sync, have never been synced completely, or are due for
	// a full sweep. Quiet counts the others.
	Due   []store.Project
	Quiet int
	// Kinds, for a Due project found by the change detection sweep, are
	// the kinds to sync; a project not in it syncs every kind.
	Kinds map[int64][]change.Kind
}

// Discover resolves the selected projects on GitLab, records them and
// returns the ones to sync: active projects only. A project that has gone
// or lost access is marked so and asked about again only after Recheck.
func (p *Poller) Discover(ctx context.Context) (Discovery, error) {
	if gitlab.JobFrom(ctx) == "" {
		ctx = gitlab.WithJob(ctx, "discover projects")
	}
	stored, err := p.Store.Projects(ctx)
	if err != nil {
		return Discovery{}, fmt.Errorf("read projects: %w", err)
	}
	k := indexKnown(stored)
	now := p.now()
	sel, ok := p.selectionToAsk(k, now)
	if !ok {
		return Discovery{}, nil // every configured project is marked gone; nothing to ask GitLab
	}
	list, err := p.GitLab.SelectProjects(ctx, sel)
	if err != nil {
		return Discovery{}, err
	}
	if list.Capped > 0 {
		p.log().Warn("project cap reached: some selected projects are not synced; raise the project cap or narrow the project selection",
			"synced", len(list.Projects), "left_out", list.Capped)
	}
	r := p.reconcile(k, list, now)
	// A project no longer listed by a membership or group selection has
	// gone for this token (deleted, moved, access removed) — or its
	// activity moved it across a page of the listing while it was read:
	// GitLab is asked about it directly before it is marked.
	if len(p.Selection.Repos) == 0 {
		if err := p.settleUnlisted(ctx, k, &r, now); err != nil {
			return Discovery{}, err
		}
	}
	if err := p.Store.PutProjects(ctx, r.changed...); err != nil {
		return Discovery{}, fmt.Errorf("record projects: %w", err)
	}
	sort.Slice(r.active, func(i, j int) bool { return r.active[i].Path < r.active[j].Path })
	d := Discovery{Projects: r.active, Missing: list.Missing, Capped: list.Capped}
	// The sync state, read once for due and the change detection sweep.
	var states []store.SyncState
	if p.fullSweep() >= 0 {
		if states, err = p.Store.SyncStates(ctx); err != nil {
			return Discovery{}, fmt.Errorf("read sync state: %w", err)
		}
	}
	var gated map[int64]bool
	d.Due, gated = p.due(r.active, states)
	if err := p.detect(ctx, r.active, states, gated, &d); err != nil {
		return Discovery{}, err
	}
	d.Quiet = len(r.active) - len(d.Due)
	return d, nil
}

// known is the stored projects, by id and by what a selection may call
// them (path or id).
type known struct {
	all        []store.Project
	byID       map[int64]store.Project
	bySelector map[string]store.Project
}

func indexKnown(ps []store.Project) known {
	k := known{all: ps, byID: map[int64]store.Project{}, bySelector: map[string]store.Project{}}
	for _, p := range ps {
		k.byID[p.ID] = p
		k.bySelector[p.Path] = p
		k.bySelector[fmt.Sprint(p.ID)] = p
	}
	return k
}

// selectionToAsk is the selection without the named projects marked gone
// or forbidden less than Recheck ago; ok is false when nothing is left to
// ask GitLab about.
func (p *Poller) selectionToAsk(k known, now time.Time) (sel gitlab.Selection, ok bool) {
	sel = p.Selection
	sel.Repos = nil
	for _, r := range p.Selection.Repos {
		if kp, ok := k.bySelector[r]; ok && !isActive(kp) && now.Sub(kp.StatusAt) < p.recheck() {
			p.log().Debug("skipping project marked "+kp.Status, "project", kp.Path, "since", kp.StatusAt)
			continue
		}
		sel.Repos = append(sel.Repos, r)
	}
	return sel, len(p.Selection.Repos) == 0 || len(sel.Repos) > 0 || len(sel.Groups) > 0
}

// isActive reports whether a stored project is synced (never marked, or
// marked active).
func isActive(k store.Project) bool { return k.Status == store.ProjectActive || k.Status == "" }

// reconciled is what a listing changes in the stored projects.
type reconciled struct {
	changed []store.Project // to record
	active  []store.Project // to sync
	seen    map[int64]bool  // accounted for by the listing
}

// reconcile takes GitLab's listing into the stored projects: the listed
// ones are active (keeping the date they became so), the missing ones
// known to the store are marked gone, and those left out by the cap are
// accounted for without a change.
func (p *Poller) reconcile(k known, list gitlab.ProjectList, now time.Time) reconciled {
	r := reconciled{active: make([]store.Project, 0, len(list.Projects)), seen: map[int64]bool{}}
	for _, g := range list.Projects {
		sp := fromGitLab(g)
		sp.Status, sp.StatusAt = store.ProjectActive, now
		if kp, ok := k.byID[g.ID]; ok && isActive(kp) {
			sp.StatusAt = kp.StatusAt
		}
		r.seen[g.ID] = true
		r.changed = append(r.changed, sp)
		r.active = append(r.active, sp)
	}
	for _, m := range list.Missing {
		kp, ok := k.bySelector[m.Selector]
		if !ok {
			// Never seen, so there is no project record to mark: say it loudly.
			p.log().Error("selected project not found on GitLab or not accessible", "project", m.Selector, "err", m.Err)
			continue
		}
		r.changed = append(r.changed, markGone(kp, m.Err, now))
		r.seen[kp.ID] = true
	}
	for _, id := range list.CappedIDs {
		r.seen[id] = true // left out by the cap, not gone
	}
	return r
}

// settleUnlisted asks GitLab about the active stored projects the listing
// did not account for: those it still gives are active, the others are
// marked gone.
func (p *Poller) settleUnlisted(ctx context.Context, k known, r *reconciled, now time.Time) error {
	var unseen []store.Project
	for _, kp := range k.all {
		if !r.seen[kp.ID] && isActive(kp) {
			unseen = append(unseen, kp)
		}
	}
	if len(unseen) == 0 {
		return nil
	}
	found, err := p.recheckUnlisted(ctx, unseen)
	if err != nil {
		return err
	}
	for _, kp := range unseen {
		if g, ok := found[kp.ID]; ok {
			sp := fromGitLab(g)
			sp.Status, sp.StatusAt = store.ProjectActive, kp.StatusAt
			r.changed = append(r.changed, sp)
			r.active = append(r.active, sp)
			continue
		}
		r.changed = append(r.changed, markGone(kp, fmt.Errorf("%w: no longer listed for this token", gitlab.ErrNotFound), now))
	}
	return nil
}

// recheckUnlisted asks GitLab for known projects a listing left out and
// returns those it still gives, unarchived (or archived ones if selected)
// and, for a selection of groups named by path, still in one of them.
func (p *Poller) recheckUnlisted(ctx context.Context, ps []store.Project) (map[int64]gitlab.Project, error) {
	sel := gitlab.Selection{IncludeArchived: p.Selection.IncludeArchived, Max: -1}
	for _, k := range ps {
		sel.Repos = append(sel.Repos, strconv.FormatInt(k.ID, 10))
	}
	list, err := p.GitLab.SelectProjects(ctx, sel)
	if err != nil {
		return nil, err
	}
	out := map[int64]gitlab.Project{}
	for _, g := range list.Projects {
		if inGroups(g.Path, p.Selection.Groups) {
			out[g.ID] = g
		}
	}
	return out, nil
}

// inGroups reports whether path is in one of groups (or a subgroup); a
// group named by numeric id cannot be told from the path and counts.
func inGroups(path string, groups []string) bool {
	if len(groups) == 0 {
		return true
	}
	for _, g := range groups {
		g = strings.Trim(strings.TrimSpace(g), "/")
		if _, err := strconv.ParseInt(g, 10, 64); err == nil || strings.HasPrefix(path, g+"/") {
			return true
		}
	}
	return false
}

// due picks the projects to sync now. A project is quiet — skipped — when
// every kind has synced successfully, the oldest of those syncs is newer
// than the full sweep interval, and last_activity_at is older than that
// sync by more than the activity grace: nothing GitLab counts as activity
// can have happened since. With a negative FullSweep every project is due.
// gated are the due projects picked by their activity alone (synced
// completely before, no full sweep due). states is the stored sync state.
func (p *Poller) due(ps []store.Project, states []store.SyncState) (out []store.Project, gated map[int64]bool) {
	sweep := p.fullSweep()
	if sweep < 0 {
		return ps, nil
	}
	type synced struct {
		kinds  int
		never  bool      // some kind has never synced successfully
		oldest time.Time // the oldest last success of the others
	}
	last := map[int64]*synced{}
	want := map[change.Kind]bool{}
	for _, k := range p.kinds() {
		want[k] = true
	}
	for _, st := range states {
		if !want[st.Kind] {
			continue
		}
		s := last[st.ProjectID]
		if s == nil {
			s = &synced{}
			last[st.ProjectID] = s
		}
		s.kinds++
		switch {
		case st.LastSuccess.IsZero():
			s.never = true
		case s.oldest.IsZero() || st.LastSuccess.Before(s.oldest):
			s.oldest = st.LastSuccess
		}
	}
	now := p.now()
	gated = map[int64]bool{}
	for _, proj := range ps {
		s := last[proj.ID]
		switch {
		case s == nil || s.kinds < len(want) || s.never:
			out = append(out, proj) // never synced completely
		case now.Sub(s.oldest) >= sweep-sweepJitter(proj.ID, sweep):
			out = append(out, proj) // full sweep
		case !proj.LastActivityAt.Before(s.oldest.Add(-p.activityGrace())):
			out = append(out, proj) // activity since (or just before) the last sync
			gated[proj.ID] = true
		}
	}
	return out, gated
}

// sweepJitter spreads full sweeps of many projects over the first eighth of
// the interval, so they do not all fall due in the same poll for ever.
func sweepJitter(id int64, sweep time.Duration) time.Duration {
	span := int64(sweep / 8)
	if span <= 0 {
		return 0
	}
	h := uint64(id) * 0x9E3779B97F4A7C15
	return time.Duration(h % uint64(span))
}

// markGone records why a project is no longer synced.
func markGone(k store.Project, err error, now time.Time) store.Project {
	status := store.ProjectNotFound
	if errors.Is(err, gitlab.ErrForbidden) {
		status = store.ProjectForbidden
	}
	if k.Status != status {
		k.StatusAt = now
	}
	k.Status = status
	if err != nil {
		k.StatusDetail = err.Error()
	}
	return k
}

func fromGitLab(g gitlab.Project) store.Project {
	return store.Project{
		ID: g.ID, Path: g.Path, Name: g.Name, WebURL: g.WebURL,
		DefaultBranch: g.DefaultBranch, Archived: g.Archived, LastActivityAt: g.LastActivityAt,
	}
}

func toGitLab(p store.Project) gitlab.Project {
	return gitlab.Project{
		ID: p.ID, Path: p.Path, Name: p.Name, WebURL: p.WebURL,
		DefaultBranch: p.DefaultBranch, Archived: p.Archived, LastActivityAt: p.LastActivityAt,
	}
}

// SyncAll discovers the selected projects and syncs each in turn. A failing
// project does not stop the others; an error that no project can get past
// (bad token, unreachable GitLab, cancelled context) stops the run.
func (p *Poller) SyncAll(ctx context.Context) (Result, error) {
	start := time.Now()
	d, err := p.Discover(ctx)
	if err != nil {
		return Result{Duration: time.Since(start)}, err
	}
	res := Result{Missing: d.Missing, Capped: d.Capped, Quiet: d.Quiet}
	for i, proj := range d.Due {
		var prog func(Progress)
		if p.Progress != nil {
			prog = func(pr Progress) {
				pr.Done, pr.Due = i, len(d.Due)
				p.Progress(pr)
			}
		}
		counts, err := p.syncProject(ctx, proj, d.Kinds[proj.ID], prog)
		res.Projects = append(res.Projects, ProjectResult{Project: proj, Counts: counts, Err: err})
		if err != nil && fatal(ctx, err) {
			res.Duration = time.Since(start)
			return res, err
		}
	}
	res.Duration = time.Since(start)
	return res, nil
}

// fatal reports errors that would fail every other project the same way.
func fatal(ctx context.Context, err error) bool {
	return ctx.Err() != nil || errors.Is(err, gitlab.ErrUnauthorized) ||
		errors.Is(err, gitlab.ErrUnreachable) || errors.Is(err, gitlab.ErrRateLimited)
}

// SyncProject syncs every kind of one project from its cursors. Each page is
// stored before its cursor is saved, so a run killed at any point resumes
// without gaps, and a page fetched twice changes nothing the second time.
func (p *Poller) SyncProject(ctx context.Context, proj store.Project) ([]Count, error) {
	return p.syncProject(ctx, proj, nil, p.Progress)
}

// SyncProjectKinds is SyncProject for some kinds only (in the poller's
// order); none means every kind.
func (p *Poller) SyncProjectKinds(ctx context.Context, proj store.Project, kinds []change.Kind) ([]Count, error) {
	return p.syncProject(ctx, proj, kinds, p.Progress)
}

func (p *Poller) syncProject(ctx context.Context, proj store.Project, only []change.Kind, prog func(Progress)) ([]Count, error) {
	gp := toGitLab(proj)
	if gitlab.JobFrom(ctx) == "" {
		ctx = gitlab.WithJob(ctx, "sync "+proj.Path)
	}
	var kinds []change.Kind
	for _, kind := range p.kinds() {
		if len(only) == 0 || slices.Contains(only, kind) {
			kinds = append(kinds, kind)
		}
	}
	runs := p.walkKinds(ctx, gp, kinds, prog)
	var counts []Count
	var errs []error
	for i, kind := range kinds {
		c, err := runs[i].counts, runs[i].err
		counts = append(counts, c...)
		if errors.Is(err, context.Canceled) && ctx.Err() == nil {
			continue // stopped by another walk's failure, which says why
		}
		if p.Observer != nil {
			// Nothing to fetch is a complete sync, as syncKind records it.
			if errors.Is(err, gitlab.ErrFeatureDisabled) {
				p.Observer.SyncRun(proj.Path, kind, nil)
			} else {
				p.Observer.SyncRun(proj.Path, kind, err)
			}
		}
		switch {
		case err == nil:
		case errors.Is(err, gitlab.ErrFeatureDisabled):
			p.log().Info("feature disabled on project; skipped", "project", proj.Path, "kind", kind, "detail", err)
		case errors.Is(err, gitlab.ErrNotFound), errors.Is(err, gitlab.ErrForbidden):
			// The project itself has gone or shut us out: mark it and stop.
			if perr := p.Store.PutProjects(ctx, markGone(proj, err, p.now())); perr != nil {
				errs = append(errs, perr)
			}
			errs = append(errs, fmt.Errorf("%s: %w", kind, err))
			return counts, errors.Join(errs...)
		default:
			errs = append(errs, fmt.Errorf("%s: %w", kind, err))
			if fatal(ctx, err) {
				return counts, errors.Join(errs...)
			}
		}
	}
	for _, c := range counts {
		if c.Fetched > 0 {
			args := []any{"project", proj.Path, "kind", c.Kind, "fetched", c.Fetched, "stored", c.Stored}
			if c.Parent != "" {
				args = append(args, "on", c.Parent)
			}
			p.log().Info("synced", args...)
		}
	}
	return counts, errors.Join(errs...)
}

// DefaultWalks is how many kinds of one project are walked at once when
// Poller.Walks is zero.
const DefaultWalks = 3

func (p *Poller) walks() int {
	if p.Walks > 0 {
		return p.Walks
	}
	return DefaultWalks
}

// kindRun is how one kind's walk of a project ended.
type kindRun struct {
	counts []Count
	err    error
}

// walkKinds walks kinds of one project, up to Walks at once, started in
// the poller's order: each walk is sequential (a page is asked for after
// the previous one is stored), but a walk spends most of its time waiting
// for GitLab's answer, so walks side by side fill the request budget
// where one alone leaves it idle. A walk that finds the project gone, or
// an error no other walk can get past, stops the others; the caller reads
// the outcomes in the poller's order, as if they had run one by one.
// Progress is reported one page at a time.
func (p *Poller) walkKinds(ctx context.Context, gp gitlab.Project, kinds []change.Kind, prog func(Progress)) []kindRun {
	runs := make([]kindRun, len(kinds))
	if prog != nil {
		var mu sync.Mutex
		report := prog
		prog = func(pr Progress) {
			mu.Lock()
			defer mu.Unlock()
			report(pr)
		}
	}
	walkCtx, stop := context.WithCancel(ctx)
	defer stop()
	slots := make(chan struct{}, p.walks())
	var wg sync.WaitGroup
	for i, kind := range kinds {
		select {
		case slots <- struct{}{}:
		case <-walkCtx.Done():
		}
		if walkCtx.Err() != nil {
			// Stopped: the kinds not started are left as a sequential sync
			// would have left them, unwalked.
			runs[i].err = walkCtx.Err()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			c, err := p.syncKind(walkCtx, gp, kind, prog)
			runs[i] = kindRun{counts: c, err: err}
			if errors.Is(err, gitlab.ErrNotFound) || errors.Is(err, gitlab.ErrForbidden) || (err != nil && fatal(ctx, err)) {
				stop()
			}
		}()
	}
	wg.Wait()
	return runs
}

func (p *Poller) syncKind(ctx context.Context, gp gitlab.Project, kind change.Kind, prog func(Progress)) ([]Count, error) {
	st, err := p.Store.SyncState(ctx, gp.ID, kind)
	if err != nil {
		return nil, fmt.Errorf("read sync state: %w", err)
	}
	st.ProjectID, st.ProjectPath, st.Kind = gp.ID, gp.Path, kind
	byKind := map[change.Kind]*Count{}
	var order []change.Kind
	count := func(k change.Kind) *Count {
		c, ok := byKind[k]
		if !ok {
			c = &Count{ProjectID: gp.ID, ProjectPath: gp.Path, Kind: k}
			if k == change.KindNote {
				c.Parent = noteParent(kind)
			}
			byKind[k] = c
			order = append(order, k)
		}
		return c
	}
	own := count(kind) // reported even when nothing moved
	opts := gitlab.FetchOptions{Branches: p.Branches, Known: p.Store.Versions, KnownPrefix: p.Store.VersionsByPrefix, Now: p.now}
	// Image tags are only listed by name; their digests cost a request
	// each, so stored tags are re-read only on a periodic full sweep (to
	// catch a tag pushed again). For images the cursor records that sweep.
	// A successful run is dated by its start: everything GitLab had then is
	// stored, and activity during the run is after it.
	started := p.now()
	sweep := kind == change.KindImage && started.Sub(st.Cursor) >= p.imageSweep()
	since, err := p.walkFrom(ctx, gp, kind, st.Cursor, started)
	if err != nil {
		return nil, err
	}
	from := since // where the walk starts, for Progress.Fraction
	opts.FullSweep = sweep
	// The walk is sequential: a page is read by requests sent after the
	// previous page was handed back (the first, after the start), and
	// that time stamps it (ObservedAt). It is never later than the read,
	// so a poll never looks newer than it is when the upsert rule lets it
	// overrule what a webhook received earlier said (docs/architecture.md).
	// A walk that lists pages before handing back earlier ones (merge
	// requests, issues) stamps them itself, by opts.Now.
	observed := started
	runErr := p.GitLab.Fetch(ctx, kind, gp, since, opts, func(pg gitlab.Page) error {
		defer func() { observed = p.now() }()
		for i := range pg.Events {
			if pg.Events[i].ObservedAt.IsZero() {
				pg.Events[i].ObservedAt = observed
			}
		}
		if err := p.upsertCounted(ctx, pg.Events, kind, count); err != nil {
			return fmt.Errorf("store: %w", err)
		}
		if kind != change.KindImage && pg.Cursor.After(st.Cursor) {
			st.Cursor = pg.Cursor
			if err := p.Store.PutSyncState(ctx, st); err != nil {
				return fmt.Errorf("save cursor: %w", err)
			}
		}
		if prog != nil {
			if from.IsZero() {
				from = oldest(pg.Events)
			}
			pr := Progress{Project: gp.Path, Kind: kind, Fetched: own.Fetched, Stored: own.Stored, Started: started}
			for _, k := range order[1:] {
				pr.With = append(pr.With, *byKind[k])
			}
			if span := started.Sub(from); span > 0 && !pg.Cursor.IsZero() {
				pr.Fraction = min(1, max(0, float64(pg.Cursor.Sub(from))/float64(span)))
			}
			prog(pr)
		}
		return nil
	})
	st.LastRunAt = p.now()
	// The walk's state counts its own kind, as Count does.
	st.Fetched, st.Stored = own.Fetched, own.Stored
	st.LastError = ""
	switch {
	case errors.Is(runErr, gitlab.ErrFeatureDisabled):
		// Nothing to fetch is a complete sync: without this a project with
		// a disabled feature would never count as synced and never go quiet.
		st.LastError = runErr.Error()
		st.LastSuccess = started
	case runErr != nil:
		st.LastError = runErr.Error()
	default:
		st.LastSuccess = started
		if sweep {
			st.Cursor = st.LastRunAt
		}
	}
	// Record the outcome even when the run was cancelled: a fresh context
	// keeps a killed sync's status honest without extending the run.
	saveCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := p.Store.PutSyncState(saveCtx, st); err != nil && runErr == nil {
		runErr = fmt.Errorf("save sync state: %w", err)
	}
	out := make([]Count, 0, len(order))
	for _, k := range order {
		out = append(out, *byKind[k])
	}
	return out, runErr
}

// unverifiedStore is what both backends offer beyond SyncStore: what a
// webhook stored that no poll has read since (store/sqlite.Unverified).
type unverifiedStore interface {
	Unverified(ctx context.Context, projectID int64, kind change.Kind) (int, time.Time, error)
}

// reread are the kinds walked by update time whose walk reads each object
// whole (with its notes or jobs), so walking back re-reads what a webhook
// stored of them.
var reread = map[change.Kind]bool{
	change.KindMergeRequest: true, change.KindIssue: true, change.KindPipeline: true, change.KindDeployment: true,
}

// walkFrom is where a walk of kind starts: the cursor, or earlier when a
// webhook stored objects of that kind that no poll has read since, so that
// this poll reads them and overrules what the webhook said (a forged or
// skewed payload can claim any updated_at; the object's own is at or after
// its creation). A time after the walk's start, or none, walks from the
// beginning.
func (p *Poller) walkFrom(ctx context.Context, gp gitlab.Project, kind change.Kind, cursor, started time.Time) (time.Time, error) {
	u, ok := p.Store.(unverifiedStore)
	if !ok || !reread[kind] || cursor.IsZero() {
		return cursor, nil
	}
	n, earliest, err := u.Unverified(ctx, gp.ID, kind)
	switch {
	case err != nil:
		return cursor, fmt.Errorf("read what webhooks stored: %w", err)
	case n == 0:
		return cursor, nil
	case earliest.IsZero() || earliest.After(started):
		return time.Time{}, nil
	case earliest.Before(cursor):
		return earliest.Truncate(time.Second), nil
	}
	return cursor, nil
}

// oldest is the earliest updated_at among events (zero if none).
func oldest(events []change.Event) time.Time {
	var t time.Time
	for _, e := range events {
		if t.IsZero() || e.UpdatedAt.Before(t) {
			t = e.UpdatedAt
		}
	}
	return t
}

// upsertCounted stores events and attributes the fetched/stored counts to
// their kinds (a pipeline page also carries jobs). The walk's own kind is
// stored last: a merge request or pipeline stored at its updated_at is
// not read again with its notes or jobs (FetchOptions.Known), so a sync
// stopped between two of these upserts must not leave a parent stored
// without what came with it.
func (p *Poller) upsertCounted(ctx context.Context, events []change.Event, own change.Kind, count func(change.Kind) *Count) error {
	groups := map[change.Kind][]change.Event{}
	var order []change.Kind
	for _, e := range events {
		if _, ok := groups[e.Kind]; !ok && e.Kind != own {
			order = append(order, e.Kind)
		}
		groups[e.Kind] = append(groups[e.Kind], e)
	}
	if len(groups[own]) > 0 {
		order = append(order, own)
	}
	for _, k := range order {
		res, err := p.Store.Upsert(ctx, groups[k]...)
		if err != nil {
			return err
		}
		c := count(k)
		c.Fetched += len(groups[k])
		c.Stored += res.Stored()
	}
	return nil
}
