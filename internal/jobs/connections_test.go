package jobs_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/gitlabsim"
	"github.com/labtrail/labtrail/internal/jobs"
)

// conns stands in for serve's connection manager: the stored names, and a
// sync that reports each one run.
type conns struct {
	mu     sync.Mutex
	stored []string
	synced chan string
}

func newConns(names ...string) *conns { return &conns{stored: names, synced: make(chan string, 100)} }

func (c *conns) set(names ...string) {
	c.mu.Lock()
	c.stored = names
	c.mu.Unlock()
}

// jobs lists listed as the stored connections, so the schedule can queue
// one that is gone by the time its job runs.
func (c *conns) jobs(listed ...string) *jobs.Connections {
	return &jobs.Connections{
		Interval: time.Hour,
		Names:    func(context.Context) ([]string, error) { return listed, nil },
		Sync: func(_ context.Context, name string) error {
			c.mu.Lock()
			ok := slices.Contains(c.stored, name)
			c.mu.Unlock()
			if !ok {
				return fmt.Errorf("connection %q: %w", name, jobs.ErrNoConnection)
			}
			c.synced <- name
			return nil
		},
	}
}

func (c *conns) wait(t *testing.T, name string) {
	t.Helper()
	for deadline := time.After(60 * time.Second); ; {
		select {
		case got := <-c.synced:
			if got == name {
				return
			}
		case <-deadline:
			t.Fatalf("connection %s was never synced", name)
		}
	}
}

// jobStates are the states of a kind's jobs by their args' name, and each
// one's attempts.
func (r *rig) jobStates(t *testing.T, b backend, kind string) map[string]string {
	t.Helper()
	name := `args->>'name'`
	if b.name == "sqlite" {
		name = `json_extract(args, '$.name')` // River keeps args as JSONB there
	}
	rows, err := r.qdb.Query(`SELECT ` + name + `, state, attempt FROM river_job WHERE kind = '` + kind + `' ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var (
			args, state string
			attempt     int
		)
		if err := rows.Scan(&args, &state, &attempt); err != nil {
			t.Fatal(err)
		}
		out[args] = fmt.Sprintf("%s/%d", state, attempt)
	}
	return out
}

// The added connections' periodic schedule queues one sync job per stored
// connection; a job whose connection was removed before it ran is
// cancelled at its first attempt, never retried; a sync asked for at once
// (a connection just added) runs beside the schedule.
func TestAddedConnectionsAreSyncedOnTheQueue(t *testing.T) {
	forEachBackend(t, testAddedConnections)
}

func testAddedConnections(t *testing.T, b backend) {
	c := newConns("second")
	r := newRigConfig(t, b, gitlabsim.Options{Seed: 4, Projects: 1, MRs: 2, Pipelines: 2},
		jobs.Config{Interval: time.Hour, Connections: c.jobs("second", "gone")})
	ctx := context.Background()
	if err := r.queue.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer r.queue.Stop(context.Background())
	c.wait(t, "second")
	r.waitIdle(t)
	if n := r.countJobs(t, jobs.ScheduleConnectionsKind); n != 1 {
		t.Errorf("%d connection schedules in the first hour, want 1", n)
	}
	want := map[string]string{"second": "completed/1", "gone": "cancelled/1"}
	if got := r.jobStates(t, b, jobs.SyncConnectionKind); !maps.Equal(got, want) {
		t.Errorf("connection sync jobs: %v, want %v", got, want)
	}

	// One added now is synced at once, not at the next interval.
	c.set("second", "third")
	if ok, err := r.queue.SyncConnection(ctx, "third"); err != nil || !ok {
		t.Fatalf("sync third: %v %v", ok, err)
	}
	c.wait(t, "third")
}

// A connection's sync is unique while queued: asking again adds nothing.
func TestConnectionSyncIsUniquePerConnection(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		r := newRig(t, b, gitlabsim.Options{Seed: 4, Projects: 1}, time.Hour)
		ctx := context.Background()
		for _, c := range []struct {
			name string
			new  bool
		}{{"second", true}, {"second", false}, {"third", true}} {
			if ok, err := r.queue.SyncConnection(ctx, c.name); err != nil || ok != c.new {
				t.Errorf("sync %s: queued %v (%v), want %v", c.name, ok, err, c.new)
			}
		}
	})
}

// A replica that runs no connections (no secret key) and takes a
// connection's job hands it back with an error, so River runs it again,
// on a replica that can: the job is not dropped.
// (Replicas are PostgreSQL's.)
func TestConnectionSyncTakenByAReplicaWithoutConnections(t *testing.T) {
	b := backends[1]
	r := newRig(t, b, gitlabsim.Options{Seed: 4, Projects: 1, MRs: 2, Pipelines: 2}, time.Hour)
	ctx := context.Background()
	if _, err := r.queue.SyncConnection(ctx, "second"); err != nil {
		t.Fatal(err)
	}
	if err := r.queue.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var state, errs string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		err := r.qdb.QueryRow(`SELECT state, coalesce(CAST(errors AS TEXT), '') FROM river_job WHERE kind = '`+jobs.SyncConnectionKind+`'`).Scan(&state, &errs)
		if err != nil {
			t.Fatal(err)
		}
		if state == "retryable" || time.Now().After(deadline) {
			break
		}
	}
	if state != "retryable" || !strings.Contains(errs, "LABTRAIL_SECRET_KEY") {
		t.Fatalf("job taken by a replica without connections: %s, errors %s", state, errs)
	}
	if err := r.queue.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	c := newConns("second")
	q2, err := r.newQ(ctx, jobs.Config{Poller: r.pollerForRescue(), Interval: time.Hour, Log: quiet, ID: "with-key",
		Connections: c.jobs("second")})
	if err != nil {
		t.Fatal(err)
	}
	if err := q2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer q2.Stop(context.Background())
	c.wait(t, "second")
}
