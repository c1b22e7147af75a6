package jobs_test

import (
	"context"
	"database/sql"
	"log/slog"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/gitlab"
	"github.com/labtrail/labtrail/internal/gitlabsim"
	"github.com/labtrail/labtrail/internal/ingest"
	"github.com/labtrail/labtrail/internal/jobs"
	"github.com/labtrail/labtrail/internal/store"
)

var quiet = slog.New(slog.DiscardHandler)

type rig struct {
	sim    *gitlabsim.Sim
	store  store.Store
	queue  *jobs.Queue
	qdb    *sql.DB
	newQ   newQueueFunc
	simURL string
	mu     sync.Mutex
	synced map[string]int
	done   chan string
}

func newRig(t *testing.T, b backend, o gitlabsim.Options, interval time.Duration) *rig {
	t.Helper()
	return newRigConfig(t, b, o, jobs.Config{Interval: interval})
}

// newRigConfig is newRig with the queue's interval and clock from cfg.
func newRigConfig(t *testing.T, b backend, o gitlabsim.Options, cfg jobs.Config) *rig {
	t.Helper()
	o.Token = "tok"
	r := &rig{sim: gitlabsim.New(o), synced: map[string]int{}, done: make(chan string, 100)}
	ts := httptest.NewServer(r.sim)
	t.Cleanup(ts.Close)
	r.simURL = ts.URL
	cl, err := gitlab.New(gitlab.Config{URL: ts.URL, Token: "tok", RequestsPerMinute: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r.store, r.qdb, r.newQ = b.open(t)
	r.queue, err = r.newQ(ctx, jobs.Config{
		// Every project every round: these tests count project syncs;
		// which projects a round skips is the poller's business, tested
		// in internal/ingest.
		Poller:      &ingest.Poller{GitLab: cl, Store: r.store, Log: quiet, FullSweep: -1},
		Interval:    cfg.Interval,
		Now:         cfg.Now,
		Tasks:       cfg.Tasks,
		Connections: cfg.Connections,
		ID:          cfg.ID,
		Log:         quiet,
		OnSynced: func(pr ingest.ProjectResult) {
			if pr.Err != nil {
				t.Errorf("sync %s: %v", pr.Project.Path, pr.Err)
			}
			r.mu.Lock()
			r.synced[pr.Project.Path]++
			r.mu.Unlock()
			r.done <- pr.Project.Path
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// waitIdle waits until River holds no unfinished job.
func (r *rig) waitIdle(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		err := r.qdb.QueryRow(`SELECT count(*) FROM river_job WHERE state NOT IN ('completed', 'cancelled', 'discarded')`).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d jobs still unfinished", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (r *rig) waitSyncs(t *testing.T, n int) {
	t.Helper()
	timeout := time.After(60 * time.Second)
	for i := 0; i < n; i++ {
		select {
		case <-r.done:
		case <-timeout:
			t.Fatalf("only %d of %d project syncs finished", i, n)
		}
	}
}

func TestPeriodicSyncEnqueuesOneJobPerProject(t *testing.T) { forEachBackend(t, testPeriodicSync) }

func testPeriodicSync(t *testing.T, b backend) {
	r := newRig(t, b, gitlabsim.Options{Seed: 4, Projects: 4, MRs: 30, Pipelines: 30}, time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := r.queue.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer r.queue.Stop(context.Background())
	r.waitSyncs(t, 4) // RunOnStart schedules the first sync at once
	r.mu.Lock()
	if len(r.synced) != 4 {
		t.Errorf("synced projects: %v", r.synced)
	}
	r.mu.Unlock()
	want := 0
	for _, e := range r.sim.Truth() {
		if e.Kind == change.KindMergeRequest || e.Kind == change.KindPipeline {
			want++
		}
	}
	mrs, _ := r.store.Count(ctx, change.KindMergeRequest)
	pls, _ := r.store.Count(ctx, change.KindPipeline)
	if mrs+pls != want {
		t.Errorf("stored %d merge requests and pipelines, GitLab has %d", mrs+pls, want)
	}

	// New activity, then an explicit sync: it is picked up. Wait for River
	// to record the first round complete: until then the projects' sync jobs
	// count as unfinished and a new one for them is (rightly) skipped.
	r.waitIdle(t)
	r.sim.Advance()
	if err := r.queue.SyncNow(ctx); err != nil {
		t.Fatal(err)
	}
	r.waitSyncs(t, 4)
	want = 0
	for _, e := range r.sim.Truth() {
		if e.Kind == change.KindMergeRequest || e.Kind == change.KindPipeline {
			want++
		}
	}
	mrs, _ = r.store.Count(ctx, change.KindMergeRequest)
	pls, _ = r.store.Count(ctx, change.KindPipeline)
	if mrs+pls != want {
		t.Errorf("after activity stored %d, GitLab has %d", mrs+pls, want)
	}
}

func TestSyncJobIsUniquePerProject(t *testing.T) { forEachBackend(t, testSyncJobUnique) }

func testSyncJobUnique(t *testing.T, b backend) {
	r := newRig(t, b, gitlabsim.Options{Seed: 4, Projects: 1, MRs: 5, Pipelines: 5}, time.Hour)
	ctx := context.Background()
	// Not started: the first job stays queued, so a second for the same
	// project is a duplicate while one for another project is not.
	ok, err := r.queue.SyncProject(ctx, 1, "a/b")
	if err != nil || !ok {
		t.Fatalf("first insert: %v %v", ok, err)
	}
	ok, err = r.queue.SyncProject(ctx, 1, "a/b")
	if err != nil || ok {
		t.Fatalf("second insert for the same project was not skipped: %v %v", ok, err)
	}
	ok, err = r.queue.SyncProject(ctx, 2, "a/c")
	if err != nil || !ok {
		t.Fatalf("insert for another project: %v %v", ok, err)
	}
}

// On SQLite one serve owns the file (it holds a lock), so what is running
// when it starts was cut off by a killed process. PostgreSQL replicas leave
// that to River's rescuer: TestRunningJobsOfADeadReplicaAreRescued.
func TestRunningJobsOfAKilledProcessAreRequeued(t *testing.T) {
	r := newRig(t, backends[0], gitlabsim.Options{Seed: 4, Projects: 1, MRs: 5, Pipelines: 5}, time.Hour)
	ctx := context.Background()
	if _, err := r.queue.SyncProject(ctx, 1, "a/b"); err != nil {
		t.Fatal(err)
	}
	// What a process killed mid-job leaves behind.
	if _, err := r.qdb.Exec(`UPDATE river_job SET state = 'running', attempt = 1, attempted_at = CURRENT_TIMESTAMP`); err != nil {
		t.Fatal(err)
	}
	if ok, _ := r.queue.SyncProject(ctx, 1, "a/b"); ok {
		t.Fatal("a running job should block a second one for its project")
	}
	if _, err := jobs.NewSQLite(ctx, r.qdb, jobs.Config{Poller: &ingest.Poller{}, Interval: time.Hour, Log: quiet}); err != nil {
		t.Fatal(err)
	}
	var state string
	if err := r.qdb.QueryRow(`SELECT state FROM river_job`).Scan(&state); err != nil {
		t.Fatal(err)
	}
	if state != "available" {
		t.Errorf("interrupted job is %s, want available", state)
	}
}
