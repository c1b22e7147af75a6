package ingest_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"runtime"
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

type rig struct {
	sim    *gitlabsim.Sim
	client *gitlab.Client
	store  *sqlite.Store
	poller *ingest.Poller
}

func newRig(t testing.TB, o gitlabsim.Options) *rig {
	t.Helper()
	o.Token = "tok"
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
	return &rig{sim: sim, client: cl, store: st, poller: &ingest.Poller{GitLab: cl, Store: st, Log: slog.New(slog.DiscardHandler)}}
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
		f := store.Filter{Kind: k, Limit: store.MaxLimit}
		for {
			p, err := r.store.List(context.Background(), f)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range p.Events {
				got[e.ID] = e.UpdatedAt
			}
			if p.NextCursor == "" {
				break
			}
			f.Cursor = p.NextCursor
		}
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

func TestSyncAllEqualsTruth(t *testing.T) {
	r := newRig(t, gitlabsim.Options{Seed: 5, Projects: 3, MRs: 150, Pipelines: 120})
	res, err := r.poller.SyncAll(context.Background())
	if err != nil || res.Err() != nil {
		t.Fatal(err, res.Err())
	}
	r.compare(t, change.KindMergeRequest, change.KindPipeline)
	tot := res.Totals()
	if tot[change.KindMergeRequest].Stored != 450 || tot[change.KindPipeline].Stored != 360 {
		t.Errorf("totals %+v", tot)
	}
	// Jobs of failed pipelines come along, and only those.
	jobs, _ := r.store.Count(context.Background(), change.KindJob)
	if jobs == 0 || tot[change.KindJob].Stored != jobs {
		t.Errorf("jobs stored %d, counted %+v", jobs, tot[change.KindJob])
	}
	for _, s := range mustStates(t, r.store) {
		if s.LastError != "" || s.LastSuccess.IsZero() || s.Cursor.IsZero() {
			t.Errorf("sync state %+v", s)
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
	r := newRig(t, gitlabsim.Options{Seed: 9, Projects: 2, MRs: 500, Pipelines: 50})
	ctx, cancel := context.WithCancel(context.Background())
	var pages atomic.Int32
	r.poller.Progress = func(ingest.Progress) {
		if pages.Add(1) == 3 {
			cancel() // stop in the middle of the first project's backfill
		}
	}
	_, err := r.poller.SyncAll(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted sync: %v", err)
	}
	n, _ := r.store.Count(context.Background(), change.KindMergeRequest)
	if n == 0 || n >= 1000 {
		t.Fatalf("expected a partial backfill, have %d merge requests", n)
	}
	// Activity while we were down, then the next sync picks up from the cursors.
	r.sim.Advance()
	r.poller.Progress = nil
	if _, err := r.poller.SyncAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.compare(t, change.KindMergeRequest, change.KindPipeline)
}

func TestMissingProjectIsReportedNotFatal(t *testing.T) {
	r := newRig(t, gitlabsim.Options{Seed: 2, Projects: 2, MRs: 5, Pipelines: 5})
	r.poller.Repos = []string{"no/such-project"}
	_, err := r.poller.SyncAll(context.Background())
	if !errors.Is(err, gitlab.ErrNotFound) {
		t.Fatalf("want ErrNotFound, got %v", err)
	}
}

// BenchmarkFullSync syncs the default simulator world (5 projects, 300 merge
// requests and 300 pipelines each) into a fresh SQLite file and reports wall
// time, API requests per stored object and peak heap.
func BenchmarkFullSync(b *testing.B) {
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		r := newRig(b, gitlabsim.Options{Seed: 1})
		var peak atomic.Uint64
		stop := sampleHeap(&peak)
		b.StartTimer()
		start := time.Now()
		res, err := r.poller.SyncAll(context.Background())
		wall := time.Since(start)
		b.StopTimer()
		stop()
		if err != nil || res.Err() != nil {
			b.Fatal(err, res.Err())
		}
		stored := 0
		for _, c := range res.Totals() {
			stored += c.Stored
		}
		r.compare(b, change.KindMergeRequest, change.KindPipeline)
		b.ReportMetric(wall.Seconds(), "wall-s")
		b.ReportMetric(float64(r.sim.Stats().Requests)/float64(stored), "requests/object")
		b.ReportMetric(float64(stored), "objects")
		b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MiB")
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
