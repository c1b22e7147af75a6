// Package jobs runs labtrail's background work on River: a periodic job that
// decides which projects to sync and one sync job per project. Webhook
// deliveries are converted outside River, by ingest.Converter; the queue
// only schedules the sync a delivery asks for (HealProject). River keeps
// the jobs in the same database as the store, so a killed process leaves
// them to be picked up again on restart (or by another replica).
package jobs

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/ingest"
	"github.com/labtrail/labtrail/internal/store"
)

// ScheduleSyncArgs is the periodic job: it discovers the selected projects
// and enqueues a SyncProjectArgs for each.
type ScheduleSyncArgs struct{}

// Kind names the job in River's table.
func (ScheduleSyncArgs) Kind() string { return ScheduleKind }

// SyncProjectArgs syncs one project. It is unique per project while pending
// or running, so a slow sync is never run twice at once: the next periodic
// run finds it still queued and adds nothing.
type SyncProjectArgs struct {
	ProjectID int64  `json:"project_id" river:"unique"`
	Path      string `json:"path"`
	// Kinds, when the change detection sweep found only some kinds
	// changed, are those to sync; empty means every kind.
	Kinds []change.Kind `json:"kinds,omitempty"`
}

// Kind names the job in River's table.
func (SyncProjectArgs) Kind() string { return "labtrail_sync_project" }

// InsertOpts makes the job unique per project among unfinished jobs.
func (SyncProjectArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		MaxAttempts: 3,
		UniqueOpts: river.UniqueOpts{
			ByArgs: true,
			ByState: []rivertype.JobState{
				rivertype.JobStateAvailable, rivertype.JobStatePending,
				rivertype.JobStateRunning, rivertype.JobStateRetryable, rivertype.JobStateScheduled,
			},
		},
	}
}

// ProcessDeliveryArgs is the job by which earlier versions converted one
// stored webhook delivery. None is queued any more; one left by an older
// version only wakes the converter (Config.Converter), which converts
// every pending delivery.
type ProcessDeliveryArgs struct {
	DeliveryID int64 `json:"delivery_id" river:"unique"`
}

// Kind names the job in River's table.
func (ProcessDeliveryArgs) Kind() string { return DeliveryKind }

// SweepDeliveriesArgs is the periodic job that once queued deliveries left
// pending; the converter looks for them itself now, and the job only wakes
// it (Config.Converter).
type SweepDeliveriesArgs struct{}

// Kind names the job in River's table.
func (SweepDeliveriesArgs) Kind() string { return "labtrail_sweep_deliveries" }

// Config sets up the queue.
type Config struct {
	Poller *ingest.Poller
	// Interval between periodic syncs.
	Interval time.Duration
	// Workers bounds concurrent project syncs; default 2.
	Workers int
	Log     *slog.Logger
	// OnSynced, if set, is called after each project sync (tests use it).
	OnSynced func(ingest.ProjectResult)
	// Converter is woken by the delivery jobs an older version queued;
	// may be nil.
	Converter ingest.Enqueuer
	// HealDelay is how long after a webhook that lacks details the
	// project's sync runs, so a burst of hooks costs one sync; default 30s.
	HealDelay time.Duration
	// JobTimeout is the longest one job runs before it is cancelled;
	// default DefaultJobTimeout. A sync cut off resumes from its cursors
	// on its retry or the next poll, losing nothing.
	JobTimeout time.Duration
	// RescueAfter is how long a job may stay running before River's
	// rescuer (on the elected leader) takes it for a crashed process's and
	// hands it to another replica; default JobTimeout + 5 minutes. It must
	// be longer than JobTimeout, or a live replica's job could be run
	// twice at once.
	RescueAfter time.Duration
	// ID names this process among the replicas (River's client id, seen
	// in river_leader and each job's attempted_by); default River's own.
	ID string
	// EnvironmentURLs, when set, runs the environment URL callback's jobs
	// (EnvironmentURLArgs); without it they are cancelled.
	EnvironmentURLs EnvironmentURLSetter
	// Now is the clock River schedules by: when periodic jobs fall due and
	// which interval a periodic sync belongs to for its one-per-interval
	// uniqueness; default time.Now. The database's clock still dates jobs.
	Now func() time.Time
	// Tasks are other parts' periodic jobs (tasks.go).
	Tasks []Task
	// Digest is the scheduled digest; nil: none.
	Digest *Digest
	// Connections are the added GitLab connections' syncs (connections.go);
	// nil: this replica runs none.
	Connections *Connections
}

// DigestArgs is the scheduled digest of the period that ends at Until.
// It is unique by its arguments (whatever its state but cancelled or
// discarded), so the period's job is inserted once across replicas and
// leaders; its retries make the same period's digest.
type DigestArgs struct {
	Until time.Time `json:"until" river:"unique"`
}

// Kind names the job in River's table.
func (DigestArgs) Kind() string { return DigestKind }

// DigestKind is the River job kind of the scheduled digest.
const DigestKind = "labtrail_digest"

// InsertOpts makes the job once per period and bounds its retries (the
// sender retries each post itself first).
func (DigestArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{MaxAttempts: 5, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// Digest is the scheduled digest (nil: none): when it runs, and how the
// period and its sending are made outside this package.
type Digest struct {
	// Schedule says when the periodic job falls due (a cron expression in
	// the digest's zone, as the caller parsed it).
	Schedule river.PeriodicSchedule
	// PeriodEnd is the end of the last complete period at a time.
	PeriodEnd func(time.Time) time.Time
	// Send makes and sends the digest of the period ending at until, each
	// destination once; an error (a destination that refused it) makes
	// the queue retry the job.
	Send func(ctx context.Context, until time.Time) error
}

// DefaultJobTimeout bounds a job when Config.JobTimeout is zero.
const DefaultJobTimeout = 10 * time.Minute

// defaultRescueMargin is how much longer than the job timeout a job must
// have been running before it is taken for a dead replica's.
const defaultRescueMargin = 5 * time.Minute

// Queue is a running River client with labtrail's workers.
type Queue struct {
	start  func(context.Context) error
	stop   func(context.Context) error
	insert func(context.Context, river.JobArgs) (*rivertype.JobInsertResult, error)
	heal   func(ctx context.Context, projectID int64, path string) error
}

// Start begins working jobs and scheduling syncs.
func (q *Queue) Start(ctx context.Context) error { return q.start(ctx) }

// Stop waits for running jobs to finish (or ctx to end).
func (q *Queue) Stop(ctx context.Context) error { return q.stop(ctx) }

// HealProject implements ingest.Healer: it schedules the project's sync
// Config.HealDelay from now, unless one is queued already (the sync job is
// unique per project), so a burst of webhooks costs one sync.
func (q *Queue) HealProject(ctx context.Context, projectID int64, path string) error {
	return q.heal(ctx, projectID, path)
}

// SyncNow enqueues a schedule job at once, outside the periodic interval
// (and outside its one-per-interval uniqueness).
func (q *Queue) SyncNow(ctx context.Context) error {
	_, err := q.insert(ctx, ScheduleSyncArgs{})
	return err
}

// ScheduleKind and DeliveryKind are the River job kinds of the periodic
// sync and of webhook conversion, for looking them up in river_job.
const (
	ScheduleKind = "labtrail_schedule_sync"
	DeliveryKind = "labtrail_process_delivery"
)

// SyncProject enqueues a sync of one project. It reports false when a sync of
// that project is already queued or running, which then covers the request.
func (q *Queue) SyncProject(ctx context.Context, id int64, path string) (bool, error) {
	res, err := q.insert(ctx, SyncProjectArgs{ProjectID: id, Path: path})
	if err != nil {
		return false, err
	}
	return !res.UniqueSkippedAsDuplicate, nil
}

// MigrateSQLite creates or upgrades River's tables in a SQLite database
// and says which migrations it applied.
func MigrateSQLite(ctx context.Context, db *sql.DB) ([]store.Migration, error) {
	return migrate(ctx, riversqlite.New(db))
}

// MigratePostgres creates or upgrades River's tables in the pool's
// database, in the schema its search_path selects (where the store's
// tables are), and says which migrations it applied. An advisory lock per
// schema makes concurrent runs wait for each other.
func MigratePostgres(ctx context.Context, pool *pgxpool.Pool) ([]store.Migration, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("job queue migrations: %w", err)
	}
	defer conn.Release()
	key := `hashtext('labtrail-river-migrate:' || coalesce(current_schema(), ''))`
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(`+key+`)`); err != nil {
		return nil, fmt.Errorf("job queue migrations: lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(`+key+`)`)
	return migrate(ctx, riverpgxv5.New(pool))
}

func migrate[TTx any](ctx context.Context, d riverdriver.Driver[TTx]) ([]store.Migration, error) {
	m, err := rivermigrate.New(d, nil)
	if err != nil {
		return nil, fmt.Errorf("job queue migrations: %w", err)
	}
	if err := checkSchema(ctx, m, false); err != nil {
		return nil, err
	}
	res, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return nil, fmt.Errorf("job queue migrations: %w", err)
	}
	var out []store.Migration
	for _, v := range res.Versions {
		out = append(out, store.Migration{Part: "job queue", Version: int64(v.Version), Name: v.Name})
	}
	return out, nil
}

// checkSchema refuses River tables migrated by a newer River than this
// build's, and with exact, also ones lacking a migration.
func checkSchema[TTx any](ctx context.Context, m *rivermigrate.Migrator[TTx], exact bool) error {
	all := m.AllVersions()
	known := int64(all[len(all)-1].Version)
	existing, err := m.ExistingVersions(ctx)
	if err != nil {
		// ExistingVersions fails on a version it has no migration for.
		if strings.Contains(err.Error(), "not found in migrator bundle") {
			return &store.SchemaError{Part: "job queue", Have: known + 1, Known: known}
		}
		return fmt.Errorf("job queue migrations: %w", err)
	}
	have := int64(0)
	if len(existing) > 0 {
		have = int64(existing[len(existing)-1].Version)
	}
	if have > known || (exact && len(existing) != len(all)) {
		return &store.SchemaError{Part: "job queue", Have: have, Known: known}
	}
	return nil
}

// NewSQLite builds a queue on a SQLite database. River's SQLite driver wants
// a pool of one connection (SQLite takes one writer at a time); the store
// keeps its own pool on the same file.
func NewSQLite(ctx context.Context, db *sql.DB, cfg Config) (*Queue, error) {
	db.SetMaxOpenConns(1)
	d := riversqlite.New(db)
	if _, err := migrate(ctx, d); err != nil {
		return nil, err
	}
	// A SQLite database has one labtrail serve at a time (the caller holds
	// its lock), so a job still marked running was cut off by a killed
	// process. River would only rescue it after its stuck-job timeout, and
	// meanwhile it would block its project's unique sync job: make it
	// available again now.
	res, err := db.ExecContext(ctx, `UPDATE river_job SET state = 'available' WHERE state = 'running'`)
	if err != nil {
		return nil, fmt.Errorf("job queue: requeue interrupted jobs: %w", err)
	}
	if n, _ := res.RowsAffected(); n > 0 && cfg.Log != nil {
		cfg.Log.Info("requeued jobs interrupted by the last shutdown", "jobs", n)
	}
	return newQueue(d, cfg)
}

// NewPostgres builds a queue on the pool's database, with River's tables
// in the schema its search_path selects. It does not migrate: River's
// tables must be exactly this build's (`labtrail migrate` makes them so),
// or it fails with a *store.SchemaError. Unlike NewSQLite it leaves
// running jobs alone: other replicas may be working them; those of a dead
// replica are handed to the living ones by River's rescuer after
// Config.RescueAfter.
func NewPostgres(ctx context.Context, pool *pgxpool.Pool, cfg Config) (*Queue, error) {
	d := riverpgxv5.New(pool)
	m, err := rivermigrate.New(d, nil)
	if err != nil {
		return nil, fmt.Errorf("job queue migrations: %w", err)
	}
	if err := checkSchema(ctx, m, true); err != nil {
		return nil, err
	}
	return newQueue(d, cfg)
}

func newQueue[TTx any](d riverdriver.Driver[TTx], cfg Config) (*Queue, error) {
	if cfg.Poller == nil {
		return nil, errors.New("jobs: no poller")
	}
	if cfg.Interval <= 0 {
		return nil, errors.New("jobs: poll interval must be positive")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 2
	}
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	var client *river.Client[TTx]
	workers := river.NewWorkers()
	river.AddWorker(workers, &scheduleWorker{poller: cfg.Poller, log: log, insertMany: func(ctx context.Context, ps []river.InsertManyParams) error {
		_, err := client.InsertMany(ctx, ps)
		return err
	}})
	river.AddWorker(workers, &syncWorker{poller: cfg.Poller, log: log, onSynced: cfg.OnSynced})
	if cfg.HealDelay <= 0 {
		cfg.HealDelay = 30 * time.Second
	}
	if cfg.JobTimeout <= 0 {
		cfg.JobTimeout = DefaultJobTimeout
	}
	if cfg.RescueAfter <= 0 {
		cfg.RescueAfter = cfg.JobTimeout + defaultRescueMargin
	}
	if cfg.RescueAfter <= cfg.JobTimeout {
		return nil, fmt.Errorf("jobs: the rescue delay (%s) must be longer than the job timeout (%s), "+
			"or a job still running on a live replica could be started again elsewhere", cfg.RescueAfter, cfg.JobTimeout)
	}
	// One periodic job per interval in the whole database: River runs
	// periodic jobs on the elected leader only, and a new leader (after a
	// replica died or a restart) runs them at once; uniqueness by period
	// makes that first run a no-op when the interval's run already happened.
	once := func(period time.Duration) *river.InsertOpts {
		if period < time.Second { // River's smallest unique period
			return nil
		}
		return &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByPeriod: period}}
	}
	if cfg.Digest != nil {
		if cfg.Digest.Schedule == nil || cfg.Digest.PeriodEnd == nil || cfg.Digest.Send == nil {
			return nil, errors.New("jobs: the digest needs a schedule, its periods and a sender")
		}
		river.AddWorker(workers, &digestWorker{send: cfg.Digest.Send, log: log})
	}
	river.AddWorker(workers, &deliveryWorker{wake: cfg.Converter})
	river.AddWorker(workers, &sweepWorker{wake: cfg.Converter})
	tasks, err := taskJobs(workers, cfg.Tasks)
	if err != nil {
		return nil, err
	}
	connJobs, err := connectionJobs(workers, cfg.Connections, log, func(ctx context.Context, ps []river.InsertManyParams) error {
		_, err := client.InsertMany(ctx, ps)
		return err
	}, once)
	if err != nil {
		return nil, err
	}
	tasks = append(tasks, connJobs...)
	river.AddWorker(workers, &envURLWorker{set: cfg.EnvironmentURLs, state: cfg.Poller.Store, log: log, now: clock(cfg.Now)})
	c, err := river.NewClient(d, &river.Config{
		Logger:  slog.New(quietInfo{log.Handler()}).With("component", "river"),
		Queues:  map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: cfg.Workers}},
		Workers: workers,
		ID:      cfg.ID,
		// A backfill of a large project takes longer than one job: it is
		// cut off after JobTimeout and resumes from its cursors.
		JobTimeout:           cfg.JobTimeout,
		RescueStuckJobsAfter: cfg.RescueAfter,
		Test:                 river.TestConfig{Time: timeGenerator(cfg.Now)},
		PeriodicJobs: append([]*river.PeriodicJob{
			river.NewPeriodicJob(
				river.PeriodicInterval(cfg.Interval),
				func() (river.JobArgs, *river.InsertOpts) { return ScheduleSyncArgs{}, once(cfg.Interval) },
				&river.PeriodicJobOpts{ID: "schedule_sync", RunOnStart: true},
			),
			// The converter looks for pending deliveries by itself; the
			// sweep only wakes it, as a second way to catch deliveries
			// left pending, at the cost of one small job a minute.
			river.NewPeriodicJob(
				river.PeriodicInterval(time.Minute),
				func() (river.JobArgs, *river.InsertOpts) { return SweepDeliveriesArgs{}, once(time.Minute) },
				&river.PeriodicJobOpts{ID: "sweep_deliveries", RunOnStart: true},
			),
		}, tasks...),
	})
	if err != nil {
		return nil, fmt.Errorf("job queue: %w", err)
	}
	client = c
	if dg := cfg.Digest; dg != nil {
		now := clock(cfg.Now)
		// Only the leader runs periodic jobs; a new leader does not run
		// this one on start, and if it did the period's job exists.
		c.PeriodicJobs().Add(river.NewPeriodicJob(dg.Schedule,
			func() (river.JobArgs, *river.InsertOpts) { return DigestArgs{Until: dg.PeriodEnd(now()).UTC()}, nil },
			&river.PeriodicJobOpts{ID: "digest"}))
	}
	return &Queue{
		start: c.Start,
		stop:  c.Stop,
		insert: func(ctx context.Context, a river.JobArgs) (*rivertype.JobInsertResult, error) {
			return c.Insert(ctx, a, nil)
		},
		heal: newHealer(cfg.HealDelay, func(ctx context.Context, id int64, path string, at time.Time) (bool, error) {
			res, err := c.Insert(ctx, SyncProjectArgs{ProjectID: id, Path: path}, &river.InsertOpts{
				ScheduledAt: at, MaxAttempts: 3,
				UniqueOpts: SyncProjectArgs{}.InsertOpts().UniqueOpts,
			})
			return err == nil && !res.UniqueSkippedAsDuplicate, err
		}),
	}, nil
}

// clock is now, or time.Now when nil.
func clock(now func() time.Time) func() time.Time {
	if now == nil {
		return time.Now
	}
	return now
}

// newHealer schedules a project's sync delay from now with insert (which
// says whether it queued a new job), skipping the insert while a sync it
// queued itself is still ahead: that sync runs after the delivery asking
// for it was stored, so it reads what the delivery lacks. A burst of
// webhooks then costs one insert per project and delay instead of one per
// converted batch (each a unique insert River must check). A sync found
// already queued or running is not remembered: it may have started before
// the delivery.
func newHealer(delay time.Duration, insert func(ctx context.Context, id int64, path string, at time.Time) (bool, error)) func(context.Context, int64, string) error {
	var (
		mu     sync.Mutex
		queued = map[int64]time.Time{} // project -> when its sync runs
	)
	// Margin for the job starting a little early on another replica's
	// clock.
	const margin = time.Second
	return func(ctx context.Context, id int64, path string) error {
		now := time.Now()
		mu.Lock()
		ahead := now.Add(margin).Before(queued[id])
		mu.Unlock()
		if ahead {
			return nil
		}
		at := now.Add(delay)
		fresh, err := insert(ctx, id, path, at)
		if fresh {
			mu.Lock()
			queued[id] = at
			for p, t := range queued {
				if !now.Before(t) {
					delete(queued, p)
				}
			}
			mu.Unlock()
		}
		return err
	}
}

// riverClock is Config.Now as River's time generator.
type riverClock func() time.Time

func (c riverClock) Now() time.Time { return c() }

// NowOrNil is nil so that River leaves dating jobs to the database.
func (riverClock) NowOrNil() *time.Time { return nil }

func timeGenerator(now func() time.Time) rivertype.TimeGenerator {
	if now == nil {
		return nil // River's own clock
	}
	return riverClock(now)
}

// quietInfo passes River's records on with INFO lowered to DEBUG: River
// reports routine work ("Producer job counts", "JobScheduler: Ran
// successfully") at INFO every few seconds, which would drown labtrail's
// own INFO lines. Its warnings and errors keep their level.
type quietInfo struct{ slog.Handler }

func quieter(l slog.Level) slog.Level {
	if l >= slog.LevelInfo && l < slog.LevelWarn {
		return slog.LevelDebug
	}
	return l
}

func (h quietInfo) Enabled(ctx context.Context, l slog.Level) bool {
	return h.Handler.Enabled(ctx, quieter(l))
}

func (h quietInfo) Handle(ctx context.Context, r slog.Record) error {
	r.Level = quieter(r.Level)
	return h.Handler.Handle(ctx, r)
}

func (h quietInfo) WithAttrs(as []slog.Attr) slog.Handler { return quietInfo{h.Handler.WithAttrs(as)} }

func (h quietInfo) WithGroup(name string) slog.Handler { return quietInfo{h.Handler.WithGroup(name)} }

type scheduleWorker struct {
	river.WorkerDefaults[ScheduleSyncArgs]
	poller     *ingest.Poller
	log        *slog.Logger
	insertMany func(context.Context, []river.InsertManyParams) error
}

func (w *scheduleWorker) Work(ctx context.Context, job *river.Job[ScheduleSyncArgs]) error {
	d, err := w.poller.Discover(ingest.WithJob(ctx, fmt.Sprintf("river job %d: schedule", job.ID)))
	if err != nil {
		w.log.Error("discover projects", "err", err)
		return err
	}
	// Only projects with activity since their last sync, or due for the
	// full sweep; the others cost nothing this round.
	ps := d.Due
	params := make([]river.InsertManyParams, 0, len(ps))
	for _, p := range ps {
		params = append(params, river.InsertManyParams{Args: SyncProjectArgs{ProjectID: p.ID, Path: p.Path, Kinds: d.Kinds[p.ID]}})
	}
	if len(d.Projects) == 0 {
		w.log.Warn("no projects to sync: check the selected projects and groups, and the token's memberships")
		return nil
	}
	if len(params) == 0 {
		w.log.Info("no project shows activity since its last sync", "quiet", d.Quiet)
		return nil
	}
	if err := w.insertMany(ctx, params); err != nil {
		return fmt.Errorf("enqueue project syncs: %w", err)
	}
	w.log.Info("scheduled sync", "projects", len(params), "quiet", d.Quiet)
	return nil
}

type syncWorker struct {
	river.WorkerDefaults[SyncProjectArgs]
	poller   *ingest.Poller
	log      *slog.Logger
	onSynced func(ingest.ProjectResult)
}

func (w *syncWorker) Work(ctx context.Context, job *river.Job[SyncProjectArgs]) error {
	proj, err := w.project(ctx, job.Args)
	if err != nil {
		return err
	}
	ctx = ingest.WithJob(ctx, fmt.Sprintf("river job %d: sync %s", job.ID, proj.Path))
	counts, err := w.poller.SyncProjectKinds(ctx, proj, job.Args.Kinds)
	if w.onSynced != nil {
		w.onSynced(ingest.ProjectResult{Project: proj, Counts: counts, Err: err})
	}
	if err != nil {
		w.log.Error("sync project", "project", proj.Path, "err", err)
		return err
	}
	return nil
}

// project finds the stored project record the schedule job wrote.
func (w *syncWorker) project(ctx context.Context, a SyncProjectArgs) (store.Project, error) {
	ps, err := w.poller.Store.Projects(ctx)
	if err != nil {
		return store.Project{}, err
	}
	for _, p := range ps {
		if p.ID == a.ProjectID {
			return p, nil
		}
	}
	return store.Project{}, river.JobCancel(fmt.Errorf("project %d (%s) is no longer selected", a.ProjectID, a.Path))
}

// deliveryWorker drains the delivery jobs an older version queued: the
// converter converts every pending delivery, so waking it is the whole job.
type deliveryWorker struct {
	river.WorkerDefaults[ProcessDeliveryArgs]
	wake ingest.Enqueuer
}

func (w *deliveryWorker) Work(ctx context.Context, job *river.Job[ProcessDeliveryArgs]) error {
	if w.wake == nil {
		return nil
	}
	return w.wake.EnqueueDelivery(ctx, job.Args.DeliveryID)
}

// sweepWorker wakes the converter once a minute.
type sweepWorker struct {
	river.WorkerDefaults[SweepDeliveriesArgs]
	wake ingest.Enqueuer
}

func (w *sweepWorker) Work(ctx context.Context, _ *river.Job[SweepDeliveriesArgs]) error {
	if w.wake == nil {
		return nil
	}
	return w.wake.EnqueueDelivery(ctx, 0)
}

// digestWorker sends the scheduled digest of a period.
type digestWorker struct {
	river.WorkerDefaults[DigestArgs]
	send func(ctx context.Context, until time.Time) error
	log  *slog.Logger
}

func (w *digestWorker) Work(ctx context.Context, job *river.Job[DigestArgs]) error {
	if err := w.send(ctx, job.Args.Until); err != nil {
		w.log.Error("scheduled digest", "until", job.Args.Until, "attempt", job.Attempt, "of", job.MaxAttempts, "err", err)
		return err
	}
	return nil
}
