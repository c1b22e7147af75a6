package jobs_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/gitlabsim"
	"github.com/labtrail/labtrail/internal/ingest"
	"github.com/labtrail/labtrail/internal/jobs"
)

// Tasks (the S3 export, retention) run once per interval across replicas:
// a new leader within the interval does not run them again, and two tasks
// of one interval both run.
func TestTasksRunOncePerIntervalAcrossReplicas(t *testing.T) { forEachBackend(t, testTasksOnce) }

func testTasksOnce(t *testing.T, b backend) {
	var exports, prunes atomic.Int32
	ran := make(chan string, 10)
	tasks := func() []jobs.Task {
		return []jobs.Task{
			{Name: "export", Interval: time.Hour, Run: func(context.Context) error { exports.Add(1); ran <- "export"; return nil }},
			{Name: "retention", Interval: time.Hour, Run: func(context.Context) error { prunes.Add(1); ran <- "retention"; return nil }},
		}
	}
	hour := time.Now().Truncate(time.Hour).Add(-time.Hour)
	r := newRigConfig(t, b, gitlabsim.Options{Seed: 4, Projects: 1, MRs: 1, Pipelines: 1},
		jobs.Config{Interval: time.Hour, Now: clockAt(hour.Add(10 * time.Minute)), Tasks: tasks()})
	ctx := context.Background()
	if err := r.queue.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		select {
		case <-ran:
		case <-time.After(30 * time.Second):
			t.Fatalf("tasks ran: export %d, retention %d", exports.Load(), prunes.Load())
		}
	}
	r.waitIdle(t)
	if err := r.queue.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	sweeps := r.countJobs(t, sweepKind)
	q2, err := r.newQ(ctx, jobs.Config{Poller: &ingest.Poller{Store: r.store, Log: quiet}, Interval: time.Hour, Log: quiet, ID: "second",
		Now: clockAt(hour.Add(40 * time.Minute)), Tasks: tasks()})
	if err != nil {
		t.Fatal(err)
	}
	if err := q2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer q2.Stop(context.Background())
	r.waitLeader(t, "second")
	// The sweep, unique per minute, is new: once it shows, the periodic
	// jobs of the new leader's start have been inserted (or skipped).
	r.waitJobs(t, sweepKind, sweeps+1)
	r.waitIdle(t)
	if exports.Load() != 1 || prunes.Load() != 1 {
		t.Errorf("after a new leader within the interval: export ran %d times, retention %d; want once each", exports.Load(), prunes.Load())
	}
	if n := r.countJobs(t, jobs.TaskArgs{}.Kind()); n != 2 {
		t.Errorf("%d task jobs, want 2", n)
	}
}

func TestTasksNeedNameIntervalAndFunction(t *testing.T) {
	_, _, newQ := backends[0].open(t)
	run := func(context.Context) error { return errors.New("x") }
	for _, bad := range [][]jobs.Task{
		{{Name: "", Interval: time.Hour, Run: run}},
		{{Name: "a", Interval: time.Millisecond, Run: run}},
		{{Name: "a", Interval: time.Hour}},
		{{Name: "a", Interval: time.Hour, Run: run}, {Name: "a", Interval: time.Hour, Run: run}},
	} {
		if _, err := newQ(context.Background(), jobs.Config{Interval: time.Hour, Log: quiet, Tasks: bad}); err == nil {
			t.Errorf("tasks %+v accepted", bad)
		}
	}
}
