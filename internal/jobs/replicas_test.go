package jobs_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/gitlab"
	"github.com/labtrail/labtrail/internal/gitlabsim"
	"github.com/labtrail/labtrail/internal/ingest"
	"github.com/labtrail/labtrail/internal/jobs"
)

// sweepKind is the periodic delivery sweep's River job kind.
var sweepKind = jobs.SweepDeliveriesArgs{}.Kind()

// countSchedules counts the periodic sync's jobs River holds.
func (r *rig) countSchedules(t *testing.T) int {
	t.Helper()
	return r.countJobs(t, jobs.ScheduleKind)
}

// countJobs counts the jobs of a kind River holds.
func (r *rig) countJobs(t *testing.T, kind string) int {
	t.Helper()
	var n int
	if err := r.qdb.QueryRow(`SELECT count(*) FROM river_job WHERE kind = '` + kind + `'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// waitJobs waits until River holds n jobs of a kind.
func (r *rig) waitJobs(t *testing.T, kind string, n int) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		got := r.countJobs(t, kind)
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d %s jobs, waited for %d", got, kind, n)
		}
	}
}

// clockAt is a clock that reads at now and runs on with the wall clock.
func clockAt(at time.Time) func() time.Time {
	start := time.Now()
	return func() time.Time { return at.Add(time.Since(start)) }
}

// waitLeader waits until the River client named id leads.
func (r *rig) waitLeader(t *testing.T, id string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var leader string
		err := r.qdb.QueryRow(`SELECT leader_id FROM river_leader`).Scan(&leader)
		if err == nil && leader == id {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never became leader (leader %q, %v)", id, leader, err)
		}
	}
}

// A replica taking over leadership (another died, or a restart) runs the
// periodic sync at once, unless this interval's run already happened: the
// periodic sync runs once per interval, not once per leader.
func TestNewLeaderDoesNotRepeatTheIntervalsSync(t *testing.T) {
	forEachBackend(t, testNewLeaderOncePerInterval)
}

func testNewLeaderOncePerInterval(t *testing.T, b backend) {
	// The interval is an hour, aligned to the clock. The first leader runs
	// ten minutes into an hour, the second takes over forty minutes into
	// it: the same interval, wherever the wall clock is. The hour is the
	// last one, so River finds the jobs it dates by these clocks due.
	hour := time.Now().Truncate(time.Hour).Add(-time.Hour)
	r := newRigConfig(t, b, gitlabsim.Options{Seed: 4, Projects: 2, MRs: 3, Pipelines: 3},
		jobs.Config{Interval: time.Hour, Now: clockAt(hour.Add(10 * time.Minute))})
	ctx := context.Background()
	if err := r.queue.Start(ctx); err != nil {
		t.Fatal(err)
	}
	r.waitSyncs(t, 2)
	r.waitIdle(t)
	if err := r.queue.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if n := r.countSchedules(t); n != 1 {
		t.Fatalf("%d schedule jobs after the first leader's start, want 1", n)
	}
	sweeps := r.countJobs(t, sweepKind)
	q2, err := r.newQ(ctx, jobs.Config{Poller: &ingest.Poller{Store: r.store, Log: quiet}, Interval: time.Hour, Log: quiet, ID: "second",
		Now: clockAt(hour.Add(40 * time.Minute))})
	if err != nil {
		t.Fatal(err)
	}
	if err := q2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer q2.Stop(context.Background())
	r.waitLeader(t, "second")
	// The new leader's periodic jobs run on start, the sync first, in one
	// batch: the delivery sweep, unique per minute, is new in this minute,
	// so once it shows, the sync's turn has come and gone.
	r.waitJobs(t, sweepKind, sweeps+1)
	if n := r.countSchedules(t); n != 1 {
		t.Errorf("%d schedule jobs after a new leader took over within the interval, want 1", n)
	}
	// An explicit sync is not bound by the interval.
	if err := q2.SyncNow(ctx); err != nil {
		t.Fatal(err)
	}
	if n := r.countSchedules(t); n != 2 {
		t.Errorf("%d schedule jobs after SyncNow, want 2", n)
	}
}

// A job left running by a replica that died is not touched when another
// replica starts (it could be alive), and is rescued by River and worked
// by a living replica once RescueAfter has passed.
func TestRunningJobsOfADeadReplicaAreRescued(t *testing.T) {
	b := backends[1]
	r := newRig(t, b, gitlabsim.Options{Seed: 4, Projects: 1, MRs: 5, Pipelines: 5}, time.Hour)
	ctx := context.Background()
	if err := r.queue.Start(ctx); err != nil {
		t.Fatal(err)
	}
	r.waitSyncs(t, 1)
	r.waitIdle(t)
	if err := r.queue.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	ps, err := r.store.Projects(ctx)
	if err != nil || len(ps) != 1 {
		t.Fatalf("projects: %v %v", ps, err)
	}
	if ok, err := r.queue.SyncProject(ctx, ps[0].ID, ps[0].Path); err != nil || !ok {
		t.Fatalf("enqueue: %v %v", ok, err)
	}
	// What a replica killed mid-sync leaves behind.
	if _, err := r.qdb.Exec(`UPDATE river_job SET state = 'running', attempt = 1, attempted_at = now() - interval '1 hour',
		attempted_by = ARRAY['dead-replica'] WHERE kind = 'labtrail_sync_project' AND state = 'available'`); err != nil {
		t.Fatal(err)
	}
	done := make(chan string, 10)
	q2, err := r.newQ(ctx, jobs.Config{
		Poller: r.pollerForRescue(), Interval: time.Hour, Log: quiet, ID: "survivor",
		JobTimeout: time.Second, RescueAfter: 2 * time.Second,
		OnSynced: func(pr ingest.ProjectResult) { done <- pr.Project.Path },
	})
	if err != nil {
		t.Fatal(err)
	}
	var state string
	if err := r.qdb.QueryRow(`SELECT state FROM river_job WHERE kind = 'labtrail_sync_project' ORDER BY id DESC LIMIT 1`).Scan(&state); err != nil || state != "running" {
		t.Fatalf("starting a replica changed the running job to %q (%v): it may belong to a live replica", state, err)
	}
	if err := q2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer q2.Stop(context.Background())
	select {
	case p := <-done:
		if p != ps[0].Path {
			t.Errorf("synced %s, want %s", p, ps[0].Path)
		}
	case <-time.After(45 * time.Second):
		t.Fatal("the dead replica's job was never rescued and run")
	}
	r.waitIdle(t)
	var (
		attempt int
		errs    string
	)
	if err := r.qdb.QueryRow(`SELECT state, attempt, errors::text FROM river_job
		WHERE kind = 'labtrail_sync_project' ORDER BY id DESC LIMIT 1`).Scan(&state, &attempt, &errs); err != nil {
		t.Fatal(err)
	}
	if state != "completed" || attempt != 2 || !strings.Contains(errs, "rescued") {
		t.Errorf("rescued job: state %s, attempt %d, errors %s", state, attempt, errs)
	}
}

// pollerForRescue is a poller of the rig's simulator for a second queue.
func (r *rig) pollerForRescue() *ingest.Poller {
	cl, err := gitlab.New(gitlab.Config{URL: r.simURL, Token: "tok", RequestsPerMinute: 1 << 20})
	if err != nil {
		panic(err)
	}
	return &ingest.Poller{GitLab: cl, Store: r.store, Log: quiet, FullSweep: -1}
}
