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
	DetectChanges(ctx context.Context, probes []gitlab.ChangeProbe) (map[int64][]change.Kind, error)
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

// detect runs the change detection sweep over the active projects d.Due
// left out: those whose covered kinds were last settled (synced, or found
// unchanged) a Sweep or more ago are asked, a batch per GraphQL query,
// which kinds changed since; projects with changes join d.Due with those
// kinds in d.Kinds, and for the others the time asked is recorded as the
// covered kinds' last success, since GitLab then had nothing of them the
// store lacks. A GitLab that cannot answer leaves the projects to the
// full sweep, as before.
func (p *Poller) detect(ctx context.Context, active []store.Project, d *Discovery) error {
	det, ok := p.GitLab.(ChangeDetector)
	if !ok || p.sweep() < 0 || p.fullSweep() < 0 {
		return nil
	}
	due := map[int64]bool{}
	for _, proj := range d.Due {
		due[proj.ID] = true
	}
	states, err := p.Store.SyncStates(ctx)
	if err != nil {
		return fmt.Errorf("read sync state: %w", err)
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
		if due[proj.ID] {
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
		if now.Sub(oldest) < p.sweep() {
			continue
		}
		if want[change.KindImage] {
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
	changed, err := det.DetectChanges(ctx, probes)
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
	for _, pr := range probes {
		kinds := changed[pr.Project.ID]
		if len(kinds) > 0 {
			for _, proj := range active {
				if proj.ID == pr.Project.ID {
					d.Due = append(d.Due, proj)
				}
			}
			d.Kinds[pr.Project.ID] = kinds
		}
		// The kinds found unchanged are settled as of the question.
		for _, k := range covered() {
			if !want[k] || slices.Contains(kinds, k) {
				continue
			}
			st, ok := byProject[pr.Project.ID][k]
			if !ok {
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
