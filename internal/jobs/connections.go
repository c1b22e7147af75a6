package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// Connections are the GitLab connections added at run time (labtrail
// connections add, the admin API), synced on the queue like the default
// one's projects: once per interval across every replica, each by
// whichever replica takes its job. The caller hands in functions, so this
// package needs none of the connections' parts (keys, clients).
type Connections struct {
	// Interval between a connection's syncs (POLL_INTERVAL).
	Interval time.Duration
	// Names lists the connections to sync, as stored: the store every
	// replica shares, so the leader that schedules them knows those
	// added or removed through any replica or the CLI.
	Names func(ctx context.Context) ([]string, error)
	// Sync syncs the named connection once, with this replica's poller of
	// it. An error wrapping ErrNoConnection says the connection is no
	// longer stored: its job is cancelled. Any other error is retried.
	Sync func(ctx context.Context, name string) error
}

// ErrNoConnection is Connections.Sync's error for a connection that is no
// longer stored.
var ErrNoConnection = errors.New("no such GitLab connection")

// ScheduleConnectionsArgs is the periodic job of the added connections:
// it lists them and enqueues a SyncConnectionArgs for each.
//
// Why one periodic job that reads the store, not a periodic job per
// connection: River runs periodic jobs on the elected leader only, from
// the list that replica was built with, so a connection added through
// another replica's API (or the CLI) would never be scheduled until the
// leader restarted, and a removed one would be scheduled on. Reading the
// store each interval sees every replica's additions and removals. Like
// ScheduleSyncArgs it is unique per interval, so a new leader's run on
// start is a no-op when the interval's run already happened.
type ScheduleConnectionsArgs struct{}

// Kind names the job in River's table.
func (ScheduleConnectionsArgs) Kind() string { return ScheduleConnectionsKind }

// SyncConnectionArgs syncs one added connection: every selected project
// of it, as its poller's SyncAll does. It is unique per connection while
// pending or running, so a slow sync is never run twice at once, and
// never by two replicas: the connection's token is spent by one poller at
// a time.
type SyncConnectionArgs struct {
	Name string `json:"name" river:"unique"`
}

// Kind names the job in River's table.
func (SyncConnectionArgs) Kind() string { return SyncConnectionKind }

// InsertOpts makes the job unique per connection among unfinished jobs.
func (SyncConnectionArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{MaxAttempts: 3, UniqueOpts: river.UniqueOpts{
		ByArgs: true,
		ByState: []rivertype.JobState{
			rivertype.JobStateAvailable, rivertype.JobStatePending,
			rivertype.JobStateRunning, rivertype.JobStateRetryable, rivertype.JobStateScheduled,
		},
	}}
}

// The River job kinds of the added connections' schedule and syncs.
const (
	ScheduleConnectionsKind = "labtrail_schedule_connections"
	SyncConnectionKind      = "labtrail_sync_connection"
)

// SyncConnection enqueues a sync of an added connection now (one just
// added is synced at once). It reports false when one is already queued
// or running, which then covers the request.
func (q *Queue) SyncConnection(ctx context.Context, name string) (bool, error) {
	res, err := q.insert(ctx, SyncConnectionArgs{Name: name})
	if err != nil {
		return false, err
	}
	return !res.UniqueSkippedAsDuplicate, nil
}

type scheduleConnectionsWorker struct {
	river.WorkerDefaults[ScheduleConnectionsArgs]
	names      func(context.Context) ([]string, error)
	log        *slog.Logger
	insertMany func(context.Context, []river.InsertManyParams) error
}

func (w *scheduleConnectionsWorker) Work(ctx context.Context, _ *river.Job[ScheduleConnectionsArgs]) error {
	if w.names == nil {
		// Enqueued by a leader that runs connections, taken here: River
		// tries again, maybe on another replica.
		return errors.New("this replica runs no added connections (LABTRAIL_SECRET_KEY is not set)")
	}
	names, err := w.names(ctx)
	if err != nil {
		return fmt.Errorf("list GitLab connections: %w", err)
	}
	if len(names) == 0 {
		return nil
	}
	params := make([]river.InsertManyParams, 0, len(names))
	for _, n := range names {
		params = append(params, river.InsertManyParams{Args: SyncConnectionArgs{Name: n}})
	}
	if err := w.insertMany(ctx, params); err != nil {
		return fmt.Errorf("enqueue connection syncs: %w", err)
	}
	w.log.Debug("scheduled connection syncs", "connections", len(names))
	return nil
}

type syncConnectionWorker struct {
	river.WorkerDefaults[SyncConnectionArgs]
	sync func(context.Context, string) error // nil: this replica runs no connections
	log  *slog.Logger
}

func (w *syncConnectionWorker) Work(ctx context.Context, job *river.Job[SyncConnectionArgs]) error {
	name := job.Args.Name
	if w.sync == nil {
		// Queued by a replica that has LABTRAIL_SECRET_KEY, taken by one
		// that has not and cannot open the connection's token: an error
		// (not a cancel), so River tries again, maybe on another replica.
		err := fmt.Errorf("connection %q: this replica runs no added connections (LABTRAIL_SECRET_KEY is not set)", name)
		w.log.Warn("connection sync handed back", "connection", name, "attempt", job.Attempt, "of", job.MaxAttempts, "err", err)
		return err
	}
	err := w.sync(ctx, name)
	if errors.Is(err, ErrNoConnection) {
		// Removed after the job was queued: nothing to retry. River logs
		// a cancel at debug only, so this is the one line about it.
		w.log.Info("connection removed: its queued sync is cancelled", "connection", name, "job", job.ID)
		return river.JobCancel(err)
	}
	if err != nil {
		w.log.Warn("connection sync not run", "connection", name, "attempt", job.Attempt, "of", job.MaxAttempts, "err", err)
	}
	return err
}

// connectionJobs adds the connections' workers to workers and returns
// their periodic schedule, nil when c is nil. The sync worker is added
// either way: a replica without connections may still take a job another
// replica queued, and River fails a job of a kind it has no worker for
// without saying why in labtrail's words.
func connectionJobs(workers *river.Workers, c *Connections, log *slog.Logger,
	insertMany func(context.Context, []river.InsertManyParams) error,
	once func(time.Duration) *river.InsertOpts) ([]*river.PeriodicJob, error) {
	if c == nil {
		river.AddWorker(workers, &syncConnectionWorker{log: log})
		river.AddWorker(workers, &scheduleConnectionsWorker{log: log})
		return nil, nil
	}
	if c.Interval <= 0 || c.Names == nil || c.Sync == nil {
		return nil, errors.New("jobs: the connections need a positive interval, their names and their sync")
	}
	river.AddWorker(workers, &syncConnectionWorker{sync: c.Sync, log: log})
	river.AddWorker(workers, &scheduleConnectionsWorker{names: c.Names, log: log, insertMany: insertMany})
	interval := c.Interval
	return []*river.PeriodicJob{river.NewPeriodicJob(
		river.PeriodicInterval(interval),
		func() (river.JobArgs, *river.InsertOpts) { return ScheduleConnectionsArgs{}, once(interval) },
		&river.PeriodicJobOpts{ID: "schedule_connections", RunOnStart: true},
	)}, nil
}
