package ingest_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/gitlab"
	"github.com/labtrail/labtrail/internal/gitlabsim"
	"github.com/labtrail/labtrail/internal/ingest"
	"github.com/labtrail/labtrail/internal/store"
	"github.com/labtrail/labtrail/internal/store/sqlite"
)

// TestProgressStaysAccurate: with kinds walked side by side, progress
// still comes one page at a time (the race detector sees the callback's
// unguarded state), each walk's counts only grow, and the last report of
// every walk is what the sync's result counts for it, its notes and jobs
// included; Done and Due count the projects.
func TestProgressStaysAccurate(t *testing.T) {
	t.Parallel()
	r := newRig(t, gitlabsim.Options{Seed: 13, Projects: 2, MRs: 250, Pipelines: 40, Issues: 30})
	type key struct {
		project string
		kind    change.Kind
		parent  change.Kind
	}
	last := map[key]ingest.Count{}
	reports := 0 // deliberately unguarded: the poller must serialise its calls
	var walked []key
	r.poller.Progress = func(pr ingest.Progress) {
		reports++
		if pr.Due != 2 || pr.Done < 0 || pr.Done >= pr.Due {
			t.Errorf("project %d of %d", pr.Done, pr.Due)
		}
		if pr.Fraction < 0 || pr.Fraction > 1 {
			t.Errorf("%s %s: fraction %v", pr.Project, pr.Kind, pr.Fraction)
		}
		own := ingest.Count{Kind: pr.Kind, Fetched: pr.Fetched, Stored: pr.Stored}
		if pr.Kind == change.KindNote {
			own.Parent = change.KindCommit
		}
		for _, c := range append([]ingest.Count{own}, pr.With...) {
			k := key{pr.Project, c.Kind, c.Parent}
			prev, seen := last[k]
			if !seen {
				walked = append(walked, k)
			}
			if c.Fetched < prev.Fetched || c.Stored < prev.Stored || c.Stored > c.Fetched {
				t.Errorf("%v: went from %d fetched, %d stored to %d, %d", k, prev.Fetched, prev.Stored, c.Fetched, c.Stored)
			}
			last[k] = c
		}
	}
	res, err := r.poller.SyncAll(context.Background())
	if err != nil || res.Err() != nil {
		t.Fatal(err, res.Err())
	}
	r.compare(t, change.Kinds...)
	if reports == 0 || len(walked) == 0 {
		t.Fatal("no progress reported")
	}
	final := map[key]ingest.Count{}
	for _, p := range res.Projects {
		for _, c := range p.Counts {
			final[key{p.Project.Path, c.Kind, c.Parent}] = c
		}
	}
	for _, k := range walked {
		got, want := last[k], final[k]
		if got.Fetched != want.Fetched || got.Stored != want.Stored {
			t.Errorf("%v: last progress %d fetched, %d stored; the sync counted %d, %d", k, got.Fetched, got.Stored, want.Fetched, want.Stored)
		}
	}
	// Every kind that fetched something reported it.
	for k, c := range final {
		if _, ok := last[k]; c.Fetched > 0 && !ok {
			t.Errorf("%v: %d fetched, never reported", k, c.Fetched)
		}
	}
}

// meetingGitLab's merge request walk ends only once the pipeline walk has
// begun: a sync that walks one kind at a time never gets there.
type meetingGitLab struct{ pipelines chan struct{} }

func (*meetingGitLab) SelectProjects(context.Context, gitlab.Selection) (gitlab.ProjectList, error) {
	return gitlab.ProjectList{}, nil
}

func (g *meetingGitLab) Fetch(ctx context.Context, kind change.Kind, _ gitlab.Project, _ time.Time, _ gitlab.FetchOptions, _ func(gitlab.Page) error) error {
	switch kind {
	case change.KindPipeline:
		close(g.pipelines)
	case change.KindMergeRequest:
		select {
		case <-g.pipelines:
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Second):
			return errors.New("merge requests walked alone")
		}
	}
	return nil
}

// TestKindsWalkedSideBySide: a project's kinds are walked at once (three
// by default), one alone with Walks 1.
func TestKindsWalkedSideBySide(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "l.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	proj := store.Project{ID: 1, Path: "g/p"}
	kinds := []change.Kind{change.KindMergeRequest, change.KindPipeline}
	for _, tc := range []struct {
		walks int
		side  bool
	}{{0, true}, {1, false}} {
		p := &ingest.Poller{GitLab: &meetingGitLab{pipelines: make(chan struct{})}, Store: st, Log: quiet, Walks: tc.walks}
		_, err := p.SyncProjectKinds(context.Background(), proj, kinds)
		if side := err == nil; side != tc.side {
			t.Errorf("walks %d: side by side %v (%v), want %v", tc.walks, side, err, tc.side)
		}
	}
}
