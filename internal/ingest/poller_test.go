package ingest_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/gitlab"
	"github.com/labtrail/labtrail/internal/gitlabsim"
	"github.com/labtrail/labtrail/internal/ingest"
	"github.com/labtrail/labtrail/internal/store"
	"github.com/labtrail/labtrail/internal/store/sqlite"
)

var quiet = slog.New(slog.DiscardHandler)

type rig struct {
	sim    *gitlabsim.Sim
	client *gitlab.Client
	store  *sqlite.Store
	poller *ingest.Poller
}

func newRig(t testing.TB, o gitlabsim.Options) *rig {
	t.Helper()
	o.Token = "tok"
	if o.RateLimit == 0 {
		// Far above what a test needs, so GitLab.com's 2,000 a minute
		// (the simulator's figure otherwise) does not pace these tests.
		o.RateLimit = 1 << 30
	}
	sim := gitlabsim.New(o)
	ts := httptest.NewServer(sim)
	t.Cleanup(ts.Close)
	cl, err := gitlab.New(gitlab.Config{URL: ts.URL, Token: "tok", RequestsPerMinute: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "l.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &rig{sim: sim, client: cl, store: st, poller: &ingest.Poller{GitLab: cl, Store: st, Log: quiet}}
}

// compare checks that the store holds exactly the simulator's objects of the
// given kinds, with the same updated_at.
func (r *rig) compare(t testing.TB, kinds ...change.Kind) {
	t.Helper()
	for _, k := range kinds {
		want := map[string]time.Time{}
		for _, e := range r.sim.Truth() {
			if e.Kind == k {
				want[e.ID] = e.UpdatedAt
			}
		}
		got := map[string]time.Time{}
		eachStored(t, r.store, k, func(e change.Event) { got[e.ID] = e.UpdatedAt })
		for id, u := range want {
			if g, ok := got[id]; !ok || !g.Equal(u) {
				t.Errorf("%s %s: stored %v (present %v), GitLab has %v", k, id, g, ok, u)
			}
		}
		for id := range got {
			if _, ok := want[id]; !ok {
				t.Errorf("%s %s stored but not in GitLab", k, id)
			}
		}
	}
}

// eachStored calls fn for every stored event of kind.
func eachStored(t testing.TB, st store.Store, kind change.Kind, fn func(change.Event)) {
	t.Helper()
	f := store.Filter{Kind: kind, Limit: store.MaxLimit}
	for {
		p, err := st.List(context.Background(), f)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range p.Events {
			fn(e)
		}
		if p.NextCursor == "" {
			return
		}
		f.Cursor = p.NextCursor
	}
}

func TestSyncAllEqualsTruth(t *testing.T) {
	t.Parallel()
	r := newRig(t, gitlabsim.Options{Seed: 5, Projects: 3, MRs: 150, Pipelines: 120})
	res, err := r.poller.SyncAll(context.Background())
	if err != nil || res.Err() != nil {
		t.Fatal(err, res.Err())
	}
	r.compare(t, change.Kinds...)
	tot := res.Totals()
	if tot[change.KindMergeRequest].Stored != 450 || tot[change.KindPipeline].Stored != 360 {
		t.Errorf("totals %+v", tot)
	}
	for _, k := range change.Kinds {
		n, _ := r.store.Count(context.Background(), k)
		if n == 0 || tot[k].Stored != n {
			t.Errorf("%s: %d stored, sync counted %+v", k, n, tot[k])
		}
	}
	for _, s := range mustStates(t, r.store) {
		if s.LastError != "" || s.LastSuccess.IsZero() || s.Cursor.IsZero() {
			t.Errorf("sync state %+v", s)
		}
	}
}

// Every object is counted once under its own kind: a walk's count and its
// sync state hold that walk's kind alone, and notes name what they are on.
func TestCountsArePerKind(t *testing.T) {
	r := newRig(t, gitlabsim.Options{Seed: 5, Projects: 2, MRs: 20, Pipelines: 20})
	res, err := r.poller.SyncAll(context.Background())
	if err != nil || res.Err() != nil {
		t.Fatal(err, res.Err())
	}
	own := map[string]ingest.Count{} // project path and walked kind
	parents := map[change.Kind]bool{}
	for _, p := range res.Projects {
		for _, c := range p.Counts {
			switch {
			case c.Kind == change.KindNote:
				parents[c.Parent] = true
				if c.Parent == change.KindCommit {
					own[c.ProjectPath+" "+string(c.Kind)] = c
				}
			case c.Parent != "":
				t.Errorf("%s counted on %s", c.Kind, c.Parent)
			default:
				own[c.ProjectPath+" "+string(c.Kind)] = c
			}
		}
	}
	for _, k := range []change.Kind{change.KindMergeRequest, change.KindIssue, change.KindCommit} {
		if !parents[k] {
			t.Errorf("no notes counted on %s: %v", k, parents)
		}
	}
	for _, s := range mustStates(t, r.store) {
		c, ok := own[s.ProjectPath+" "+string(s.Kind)]
		if !ok || s.Fetched != c.Fetched || s.Stored != c.Stored {
			t.Errorf("%s %s: sync state %d fetched, %d stored; counted %+v", s.ProjectPath, s.Kind, s.Fetched, s.Stored, c)
		}
	}
}

func mustStates(t *testing.T, st store.Store) []store.SyncState {
	ss, err := st.SyncStates(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) == 0 {
		t.Fatal("no sync state")
	}
	return ss
}

func TestInterruptedSyncResumesWithoutGaps(t *testing.T) {
	t.Parallel()
	r := newRig(t, gitlabsim.Options{Seed: 9, Projects: 2, MRs: 250, Pipelines: 30})
	ctx, cancel := context.WithCancel(context.Background())
	var pages atomic.Int32
	r.poller.Progress = func(pr ingest.Progress) {
		// Kinds are walked side by side: count the merge request pages.
		if pr.Kind == change.KindMergeRequest && pages.Add(1) == 2 {
			cancel() // stop in the middle of the first project's backfill
		}
	}
	_, err := r.poller.SyncAll(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted sync: %v", err)
	}
	n, _ := r.store.Count(context.Background(), change.KindMergeRequest)
	if n == 0 || n >= 500 {
		t.Fatalf("expected a partial backfill, have %d merge requests", n)
	}
	// Activity while we were down, then the next sync picks up from the cursors.
	r.sim.Advance()
	r.poller.Progress = nil
	if _, err := r.poller.SyncAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.compare(t, change.Kinds...)
}

func TestMissingProjectIsReportedNotFatal(t *testing.T) {
	r := newRig(t, gitlabsim.Options{Seed: 2, Projects: 2, MRs: 5, Pipelines: 5})
	ps, err := r.client.SelectProjects(context.Background(), gitlab.Selection{})
	if err != nil || len(ps.Projects) < 2 {
		t.Fatal(err, ps)
	}
	r.poller.Selection.Repos = []string{"no/such-project", ps.Projects[0].Path}
	res, err := r.poller.SyncAll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Projects) != 1 || res.Projects[0].Err != nil {
		t.Fatalf("the existing project did not sync: %+v", res.Projects)
	}
	if !errors.Is(res.Err(), gitlab.ErrNotFound) || !strings.Contains(res.Err().Error(), "no/such-project") {
		t.Fatalf("want the missing project reported, got %v", res.Err())
	}
}

func TestProjectThatDisappearsIsMarkedAndLeftAlone(t *testing.T) {
	r := newRig(t, gitlabsim.Options{Seed: 2, Projects: 3, MRs: 5, Pipelines: 5})
	ctx := context.Background()
	now := time.Now()
	r.poller.Now = func() time.Time { return now }
	if _, err := r.poller.SyncAll(ctx); err != nil {
		t.Fatal(err)
	}
	ps, _ := r.store.Projects(ctx)
	gone, locked := ps[0], ps[1]
	r.poller.Selection.Repos = []string{gone.Path, locked.Path, ps[2].Path}
	r.sim.SetProjectFault(gone.Path, 404)
	r.sim.SetProjectFault(locked.Path, 403)
	res, err := r.poller.SyncAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Err() == nil {
		t.Fatal("a vanished project is not reported")
	}
	status := map[string]string{}
	ps, _ = r.store.Projects(ctx)
	for _, p := range ps {
		status[p.Path] = p.Status
	}
	if status[gone.Path] != store.ProjectNotFound || status[locked.Path] != store.ProjectForbidden || status[ps[2].Path] != store.ProjectActive {
		t.Fatalf("statuses %v", status)
	}
	// Within the recheck window GitLab is not asked about them again.
	r.sim.ResetStats()
	if _, err := r.poller.SyncAll(ctx); err != nil {
		t.Fatal(err)
	}
	for path, n := range r.sim.Stats().ByPath {
		if strings.Contains(path, "/projects/:id") && !strings.Contains(path, "/projects/:id/") && n > 1 {
			t.Errorf("%s asked %d times", path, n)
		}
	}
	// After the window, and with access back, the project returns.
	r.sim.SetProjectFault(locked.Path, 0)
	now = now.Add(25 * time.Hour)
	if _, err := r.poller.SyncAll(ctx); err != nil {
		t.Fatal(err)
	}
	ps, _ = r.store.Projects(ctx)
	for _, p := range ps {
		if p.Path == locked.Path && p.Status != store.ProjectActive {
			t.Errorf("project with access back is %s", p.Status)
		}
	}
}

// BenchmarkFullSync syncs the default simulator world (5 projects, 300 merge
// requests and 300 pipelines each) into a fresh SQLite file and reports wall
// time, API requests per stored object and peak heap.
func BenchmarkFullSync(b *testing.B) {
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		// newRig lifts the simulator's throttle: this measures labtrail.
		r := newRig(b, gitlabsim.Options{Seed: 1})
		res := measuredSync(b, r)
		stored := 0
		for _, c := range res.Totals() {
			stored += c.Stored
		}
		r.compare(b, change.Kinds...)
		b.ReportMetric(float64(r.sim.Stats().Requests)/float64(stored), "requests/object")
		b.ReportMetric(float64(stored), "objects")
	}
}

// sampleHeap records the largest HeapInuse seen until stop is called.
func sampleHeap(peak *atomic.Uint64) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		var ms runtime.MemStats
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done); <-finished }
}

// TestEveryKindHasItsFields checks that, after a sync, every kind is stored
// with the attributes docs/kinds.md promises, filled on at least one object.
func TestEveryKindHasItsFields(t *testing.T) {
	r := newRig(t, gitlabsim.Options{Seed: 13, Projects: 3, MRs: 30, Pipelines: 30})
	if _, err := r.poller.SyncAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := map[change.Kind][]string{
		change.KindMergeRequest: {"description", "assignees", "reviewers", "labels", "source_branch", "target_branch", "merged_by",
			"merged_at", "closed_at", "merge_commit_sha", "approvals", "changed_files", "additions", "deletions", "first_commit_at", "user_notes_count"},
		change.KindPipeline:    {"status", "source", "duration", "queued_duration", "started_at", "finished_at", "failed_jobs"},
		change.KindJob:         {"name", "stage", "status", "failure_reason", "duration", "web_url", "pipeline_id"},
		change.KindCommit:      {"message", "author_name", "authored_date", "committed_date", "additions", "deletions"},
		change.KindIssue:       {"issue_type", "labels", "assignees", "closed_at"},
		change.KindNote:        {"body", "system", "noteable_type"},
		change.KindBranch:      {"name", "commit_sha", "protected"},
		change.KindTag:         {"name", "commit_sha", "release"},
		change.KindRelease:     {"name", "tag_name", "description", "released_at", "links"},
		change.KindDeployment:  {"environment", "status", "deployable"},
		change.KindEnvironment: {"name", "tier", "state", "external_url"},
		change.KindImage:       {"repository", "tag", "digest", "total_size", "created_at"},
	}
	for kind, keys := range want {
		p, err := r.store.List(context.Background(), store.Filter{Kind: kind, Limit: store.MaxLimit})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Events) == 0 {
			t.Errorf("%s: nothing stored", kind)
			continue
		}
		for _, e := range p.Events {
			if e.Title == "" || e.State == "" || e.WebURL == "" && kind != change.KindNote && kind != change.KindImage && kind != change.KindEnvironment {
				t.Errorf("%s %s: title %q, state %q, web_url %q", kind, e.ID, e.Title, e.State, e.WebURL)
				break
			}
		}
		for _, k := range keys {
			filled := false
			for _, e := range p.Events {
				if v, ok := e.Attrs[k]; ok && v != nil && v != "" && v != false {
					if l, isList := v.([]any); !isList || len(l) > 0 {
						filled = true
						break
					}
				}
			}
			if !filled {
				t.Errorf("%s: attribute %q never filled", kind, k)
			}
		}
	}
	// Every incident-type issue keeps its type.
	p, _ := r.store.List(context.Background(), store.Filter{Kind: change.KindIssue, Limit: store.MaxLimit})
	incidents := 0
	for _, e := range p.Events {
		if e.Attrs["issue_type"] == "incident" {
			incidents++
		}
	}
	if incidents == 0 {
		t.Error("no incident among the issues")
	}
}
