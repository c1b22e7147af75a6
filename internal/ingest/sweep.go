package ingest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/gitlab"
	"github.com/labtrail/labtrail/internal/store"
)

// ChangeDetector is what the change detection sweep needs from the API
// client; *gitlab.Client has it.
type ChangeDetector interface {
	DetectChanges(ctx context.Context, probes []gitlab.ChangeProbe, known gitlab.KnownFunc) (map[int64][]change.Kind, error)
}

// DefaultSweep is how often each quiet project is asked what changed when
// Poller.Sweep is zero.
const DefaultSweep = 15 * time.Minute

func (p *Poller) sweep() time.Duration {
	if p.Sweep == 0 {
		return DefaultSweep
	}
	return p.Sweep
}

// covered are the kinds whose changes a sweep answer settles: the kinds
// asked about, and environments (asked with their deployments).
func covered() []change.Kind {
	return append(gitlab.DetectableKinds(), change.KindEnvironment)
}

// EventDetector is what the per-kind sync of active projects needs
// besides ChangeDetector; *gitlab.Client has it.
type EventDetector interface {
	EventKinds(ctx context.Context, p gitlab.Project, since time.Time) ([]change.Kind, error)
}

// detect runs the change detection sweep. It asks, a batch per GraphQL
// query, which kinds changed since their last sync in
//
//   - the quiet projects whose covered kinds were last settled (synced, or
//     found unchanged) a Sweep or more ago, and
//   - the projects due by their activity alone (gated), whose event-driven
//     kinds (pushes, comments on commits) are also read from their newest
//     events, so that an active project syncs the kinds that changed
//     rather than every kind on every poll of GitLab's hour of
//     last_activity_at throttling.
//
// Projects with changes are due with those kinds in d.Kinds; for the
// kinds found unchanged the time asked is recorded as their last success,
// since GitLab then had nothing of them the store lacks. A GitLab that
// cannot answer leaves quiet projects to the full sweep and active ones
// to a sync of every kind, as before. states is the stored sync state.
func (p *Poller) detect(ctx context.Context, active []store.Project, states []store.SyncState, gated map[int64]bool, d *Discovery) error {
	det, ok := p.GitLab.(ChangeDetector)
	if !ok || p.sweep() < 0 || p.fullSweep() < 0 {
		return nil
	}
	perKind := map[int64]bool{}
	if _, ok := p.GitLab.(EventDetector); ok {
		perKind = gated
	}
	due := map[int64]bool{}
	for _, proj := range d.Due {
		due[proj.ID] = true
	}
	want := map[change.Kind]bool{}
	for _, k := range p.kinds() {
		want[k] = true
	}
	byProject := map[int64]map[change.Kind]store.SyncState{}
	for _, st := range states {
		if byProject[st.ProjectID] == nil {
			byProject[st.ProjectID] = map[change.Kind]store.SyncState{}
		}
		byProject[st.ProjectID][st.Kind] = st
	}
	now := p.now()
	var probes []gitlab.ChangeProbe
	for _, proj := range active {
		if due[proj.ID] && !perKind[proj.ID] {
			continue
		}
		sts := byProject[proj.ID]
		pr := gitlab.ChangeProbe{Project: toGitLab(proj), Since: map[change.Kind]time.Time{}}
		var oldest time.Time
		for _, k := range covered() {
			if !want[k] {
				continue
			}
			t := sts[k].LastSuccess
			pr.Since[k] = t
			if oldest.IsZero() || t.Before(oldest) {
				oldest = t
			}
		}
		if !perKind[proj.ID] && now.Sub(oldest) < p.sweep() {
			continue
		}
		if want[change.KindImage] {
			var err error
			if pr.Images, err = p.storedImageTags(ctx, proj.ID); err != nil {
				return err
			}
		}
		probes = append(probes, pr)
	}
	if len(probes) == 0 {
		return nil
	}
	if gitlab.JobFrom(ctx) == "" {
		ctx = gitlab.WithJob(ctx, "change detection sweep")
	}
	changed, err := det.DetectChanges(ctx, probes, p.Store.Versions)
	if err != nil {
		if errors.Is(err, gitlab.ErrDetectionUnavailable) {
			p.log().Warn("change detection sweep not available; quiet projects wait for the full sweep", "reason", err.Error())
		} else {
			p.log().Warn("change detection sweep failed; quiet projects wait for the next one", "err", err)
		}
		return nil
	}
	if d.Kinds == nil {
		d.Kinds = map[int64][]change.Kind{}
	}
	byID := map[int64]store.Project{}
	for _, proj := range active {
		byID[proj.ID] = proj
	}
	// The active projects asked about are due for the kinds found below.
	d.Due = slices.DeleteFunc(d.Due, func(proj store.Project) bool { return perKind[proj.ID] })
	for _, pr := range probes {
		kinds := changed[pr.Project.ID]
		settled := covered()
		if perKind[pr.Project.ID] && p.eventsDue(byID[pr.Project.ID], byProject[pr.Project.ID], now) {
			ev, err := p.eventKinds(ctx, pr.Project, byProject[pr.Project.ID])
			if err != nil {
				// Today's path: every kind.
				p.log().Warn("reading the project's events failed; syncing every kind", "project", pr.Project.Path, "err", err)
				d.Due = append(d.Due, byID[pr.Project.ID])
				continue
			}
			kinds = append(kinds, ev...)
			settled = append(settled, gitlab.EventDrivenKinds()...)
		}
		if len(kinds) > 0 {
			d.Due = append(d.Due, byID[pr.Project.ID])
			d.Kinds[pr.Project.ID] = kinds
		}
		// The kinds found unchanged are settled as of the question.
		for _, k := range settled {
			if !want[k] || slices.Contains(kinds, k) {
				continue
			}
			st, ok := byProject[pr.Project.ID][k]
			if !ok || st.LastSuccess.IsZero() {
				continue
			}
			st.LastSuccess = now
			if err := p.Store.PutSyncState(ctx, st); err != nil {
				return fmt.Errorf("save sync state: %w", err)
			}
		}
	}
	return nil
}

// eventsDue reports whether an active project's events are to be read:
// when its last_activity_at moved past the event-driven kinds' last
// success (so events happened since), or when those were settled a Sweep
// or more ago (events within GitLab's hour of throttling do not move
// last_activity_at). Between, the event-driven kinds wait: pushes through
// merge requests come with them (their branches), and pipelines,
// deployments and the other kinds are asked about on every poll.
func (p *Poller) eventsDue(proj store.Project, sts map[change.Kind]store.SyncState, now time.Time) bool {
	since := eventsSince(sts)
	return proj.LastActivityAt.After(since) || now.Sub(since) >= p.sweep()
}

// eventsSince is the oldest last success of the event-driven kinds.
func eventsSince(sts map[change.Kind]store.SyncState) time.Time {
	var since time.Time
	for i, k := range gitlab.EventDrivenKinds() {
		if t := sts[k].LastSuccess; i == 0 || t.Before(since) {
			since = t
		}
	}
	return since
}

// eventKinds asks GitLab which event-driven kinds changed in a project
// since the oldest of their last successes.
func (p *Poller) eventKinds(ctx context.Context, gp gitlab.Project, sts map[change.Kind]store.SyncState) ([]change.Kind, error) {
	return p.GitLab.(EventDetector).EventKinds(ctx, gp, eventsSince(sts))
}

// storedImageTags counts the container image tags (repository and tag)
// stored for a project: ids are image-<project>-<repository>-<tag>-<digest>.
func (p *Poller) storedImageTags(ctx context.Context, projectID int64) (int, error) {
	ids, err := p.Store.VersionsByPrefix(ctx, fmt.Sprintf("image-%d-", projectID))
	if err != nil {
		return 0, fmt.Errorf("read stored images: %w", err)
	}
	tags := map[string]bool{}
	for id := range ids {
		if i := strings.LastIndex(id, "-sha256:"); i > 0 {
			id = id[:i]
		}
		tags[id] = true
	}
	return len(tags), nil
}
