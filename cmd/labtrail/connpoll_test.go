package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/auth"
	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/gitlabsim"
	"github.com/labtrail/labtrail/internal/ingest"
	"github.com/labtrail/labtrail/internal/jobs"
	"github.com/labtrail/labtrail/internal/store/postgres/pgtest"
)

// projectListing is the simulator's route of the project listing each
// sync of a connection starts with (its selection is the token's
// memberships).
const projectListing = "GET /api/v4/projects"

// connectionEvents lists an added connection's events of a kind, ids
// without the connection's prefix, as the simulator names them.
func connectionEvents(t *testing.T, base, conn string, kind change.Kind) map[string]time.Time {
	t.Helper()
	got := map[string]time.Time{}
	for _, e := range listEvents(t, base, url.Values{"kind": {string(kind)}, "connection": {conn}}) {
		id, ok := strings.CutPrefix(e.ID, conn+":")
		if !ok {
			t.Fatalf("connection %s lists %s", conn, e.ID)
		}
		got[id] = e.UpdatedAt
	}
	return got
}

// connectionDiff is how the connection's stored events differ from its
// simulator's truth, "" when they are the same.
func connectionDiff(t *testing.T, sim *gitlabsim.Sim, base, conn string) string {
	t.Helper()
	var d string
	for _, k := range change.Kinds {
		if s := diff(truthOf(sim, k), connectionEvents(t, base, conn, k)); s != "" {
			d += string(k) + ": " + s + "; "
		}
	}
	return d
}

// TestAddedConnectionOnReplicas runs two `labtrail serve` processes on one
// PostgreSQL schema with one added connection polled every 2 s: each
// interval the connection is synced once, by one of them, not once by
// each (its simulator sees one project listing per sync job, and at most
// one sync job an interval); the store ends equal to its GitLab. Once the
// connection is removed no sync of it is queued, and one queued anyway is
// cancelled at its first attempt and logged once.
func TestAddedConnectionOnReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("starts labtrail processes")
	}
	t.Parallel()
	db := pgtest.SchemaURL(t)
	const (
		conn        = "second"
		secondToken = "glpat-replicas-second-token-1357"
		interval    = 2 * time.Second
	)
	_, urlA := startSim(t, gitlabsim.Options{Seed: 31, Projects: 1, MRs: 2, Pipelines: 2, Issues: -1})
	simB := gitlabsim.New(gitlabsim.Options{Seed: 32, Projects: 2, MRs: 6, Pipelines: 6, Token: secondToken, RateLimit: 1 << 30,
		Latency: 2 * time.Millisecond})
	tsB := httptest.NewServer(simB)
	t.Cleanup(tsB.Close)

	key, errOut, code := labtrailProc(t, nil, "secrets", "keygen")
	if code != 0 {
		t.Fatalf("keygen: %d %s", code, errOut)
	}
	key = strings.TrimSpace(key)
	env := map[string]string{"LABTRAIL_DB": db, "LABTRAIL_SECRET_KEY": key, "LABTRAIL_CONNECTION_TOKEN": secondToken}
	if out, errOut, code := labtrailProc(t, env, "migrate"); code != 0 {
		t.Fatalf("migrate: %s%s", out, errOut)
	}
	if out, errOut, code := labtrailProc(t, env, "connections", "add", "--name", conn, "--url", tsB.URL); code != 0 {
		t.Fatalf("connections add: %d\n%s%s", code, out, errOut)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pool, queryInt := openCounter(ctx, t, db)

	started := time.Now()
	reps := startReplicas(t, 2, "GITLAB_URL="+urlA, "GITLAB_TOKEN="+simToken, "LABTRAIL_DB="+db,
		"LABTRAIL_SECRET_KEY="+key, "LABTRAIL_LOG_LEVEL=info", "LABTRAIL_CONNECTION_TOKEN=")

	// The connection's GitLab keeps changing while the replicas poll it,
	// for at least five of its syncs.
	stopActivity := keepAdvancing(simB, 400*time.Millisecond)
	completed := func() int {
		return queryInt(`SELECT count(*) FROM river_job WHERE kind = $1 AND state = 'completed'`, jobs.SyncConnectionKind)
	}
	for deadline := time.Now().Add(90 * time.Second); completed() < 5; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d syncs of the connection completed in 90 s at a 2 s interval", completed())
		}
	}
	stopActivity()
	// The next syncs bring the store to the connection's GitLab.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		d := connectionDiff(t, simB, reps[0].url, conn)
		if d == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the connection's events never equalled its GitLab's: %s", d)
		}
	}

	// Removed: no sync of it is queued any more, and one queued by hand
	// (as a schedule that listed it just before could) is cancelled.
	if out, errOut, code := labtrailProc(t, map[string]string{"LABTRAIL_DB": db}, "connections", "remove", conn); code != 0 {
		t.Fatalf("connections remove: %d %s%s", code, out, errOut)
	}
	var removedAt time.Time
	if err := pool.QueryRow(ctx, `SELECT now()`).Scan(&removedAt); err != nil {
		t.Fatal(err)
	}
	q, err := jobs.NewPostgres(ctx, pool, jobs.Config{Poller: &ingest.Poller{}, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	schedules := func() int {
		return queryInt(`SELECT count(*) FROM river_job WHERE kind = $1 AND state = 'completed' AND created_at > $2`,
			jobs.ScheduleConnectionsKind, removedAt)
	}
	unfinished := func() int {
		return queryInt(`SELECT count(*) FROM river_job WHERE kind = $1 AND state NOT IN ('completed', 'cancelled', 'discarded')`,
			jobs.SyncConnectionKind)
	}
	// A sync queued or running when it was removed ends first (the job is
	// unique per connection while unfinished: queued beside it, the one
	// by hand would be skipped as its duplicate).
	for deadline := time.Now().Add(60 * time.Second); unfinished() > 0; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the sync under way when the connection was removed never ended")
		}
	}
	if queued, err := q.SyncConnection(ctx, conn); err != nil || !queued {
		t.Fatalf("queue a sync of the removed connection by hand: queued %v, %v", queued, err)
	}
	for deadline := time.Now().Add(60 * time.Second); schedules() < 2 || unfinished() > 0; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after the removal: %d schedules completed, %d syncs unfinished", schedules(), unfinished())
		}
	}
	if n := queryInt(`SELECT count(*) FROM river_job WHERE kind = $1 AND created_at > $2 AND state <> 'cancelled'`,
		jobs.SyncConnectionKind, removedAt); n > 0 {
		t.Errorf("%d syncs of the removed connection were queued and not cancelled", n)
	}
	cancelled := queryInt(`SELECT count(*) FROM river_job WHERE kind = $1 AND state = 'cancelled'`, jobs.SyncConnectionKind)
	if cancelled == 0 {
		t.Error("the sync queued for the removed connection was not cancelled")
	}
	if n := queryInt(`SELECT count(*) FROM river_job WHERE kind = $1 AND state = 'cancelled' AND attempt <> 1`, jobs.SyncConnectionKind); n > 0 {
		t.Errorf("%d syncs of the removed connection were tried more than once", n)
	}

	// Stopped, so no sync is under way: every sync the replicas ran was
	// one job's attempt, each listing the projects once.
	for _, rep := range reps {
		_ = rep.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, rep := range reps {
		_ = rep.cmd.Wait()
	}
	elapsed := time.Since(started)
	logged := 0
	for _, rep := range reps {
		logged += strings.Count(rep.logs.String(), "connection removed: its queued sync is cancelled")
	}
	if logged != cancelled {
		t.Errorf("%d cancelled syncs of the removed connection logged %d times", cancelled, logged)
	}
	attempts := queryInt(`SELECT coalesce(sum(attempt), 0) FROM river_job WHERE kind = $1 AND state <> 'cancelled'`, jobs.SyncConnectionKind)
	listings := int(simB.Stats().ByPath[projectListing])
	if listings != attempts {
		t.Errorf("the connection's GitLab listed its projects %d times for %d sync attempts", listings, attempts)
	}
	// One replica would sync it once an interval; two do not sync it
	// twice: at most one sync job per interval.
	if max := int(elapsed/interval) + 2; attempts > max {
		t.Errorf("%d syncs of the connection in %s at a %s interval: at most %d", attempts, elapsed.Round(time.Second), interval, max)
	}
	if n := queryInt(`SELECT count(*) FROM (SELECT floor(extract(epoch FROM scheduled_at) / $2) FROM river_job
		WHERE kind = $1 AND coalesce(cardinality(errors), 0) = 0 GROUP BY 1 HAVING count(*) > 1) AS twice`,
		jobs.ScheduleConnectionsKind, interval.Seconds()); n > 0 {
		t.Errorf("%d intervals had more than one schedule of the connections", n)
	}
	if n := queryInt(`SELECT count(*) FROM river_job WHERE kind = $1 AND created_at < $2`, jobs.SyncConnectionKind, removedAt); n > queryInt(
		`SELECT count(*) FROM river_job WHERE kind = $1`, jobs.ScheduleConnectionsKind) {
		t.Errorf("%d syncs of the connection, more than its schedules", n)
	}
	by := map[string]int{}
	for _, rep := range reps {
		by[fmt.Sprint(rep.cmd.Process.Pid)] = strings.Count(rep.logs.String(), "connection synced")
	}
	t.Logf("%d syncs of the connection in %s (%d project listings), by replica %v", attempts, elapsed.Round(time.Second), listings, by)
}

// On one process over SQLite: a connection added through the admin API
// is synced by the job queue at once (the interval is an hour); a replica
// takes a sync of a connection it does not run yet (added elsewhere) by
// starting it, starts it again when the name was removed and added anew,
// and stops it and cancels the job when it is no longer stored.
func TestAddedConnectionSyncedOnTheQueue(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const (
		conn        = "second"
		secondToken = "glpat-sqlite-second-token-2468"
	)
	simB := gitlabsim.New(gitlabsim.Options{Seed: 33, Projects: 2, MRs: 4, Pipelines: 4, Token: secondToken, RateLimit: 1 << 30})
	tsB := httptest.NewServer(simB)
	t.Cleanup(tsB.Close)
	key, err := auth.NewKeyText()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "labtrail.db")
	d, err := openForServe(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	st := d.Store
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	c := config{SecretKey: key, PollInterval: time.Hour, RequestsPerMinute: 1 << 30, HTTPTimeout: 30 * time.Second,
		Concurrency: 4, FullSweep: -1, MaxProjects: 100}
	m, stopConns, err := startConnections(ctx, c, st, &ingest.Converter{Store: st, Log: log}, nil, nil, log)
	if err != nil || m == nil {
		t.Fatalf("start connections: %v", err)
	}
	defer stopConns()
	synced := make(chan struct{}, 10)
	qc := m.queueJobs()
	sync := qc.Sync
	qc.Sync = func(ctx context.Context, name string) error {
		err := sync(ctx, name)
		synced <- struct{}{}
		return err
	}
	_, urlA := startSim(t, gitlabsim.Options{Seed: 34, Projects: 1, MRs: 1, Pipelines: 1, Issues: -1})
	gl, err := newClient(config{GitLabURL: urlA, Token: simToken, RequestsPerMinute: 1 << 30}, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	q, err := d.newQueue(ctx, jobs.Config{Poller: c.poller(gl, st, log), Interval: time.Hour, Log: log, Connections: qc})
	if err != nil {
		t.Fatal(err)
	}
	m.useQueue(q)
	if err := q.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer q.Stop(context.Background())
	projects := func() int {
		ps, err := st.ConnectionProjects(conn).Projects(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return len(ps)
	}

	spec := auth.ConnectionSpec{Name: conn, URL: tsB.URL, Token: secondToken, WebhookSecret: "sqlite-second-hook",
		MaxProjects: 100, RequestsPerMinute: 1 << 20}
	if _, err := m.Add(ctx, spec); err != nil {
		t.Fatal(err)
	}
	select {
	case <-synced:
	case <-time.After(60 * time.Second):
		t.Fatalf("the connection added was not synced\n%s", logs.String())
	}
	if n := projects(); n != 2 {
		t.Fatalf("the connection's sync stored %d projects, its GitLab has 2\n%s", n, logs.String())
	}
	if l := simB.Stats().ByPath[projectListing]; l != 1 {
		t.Errorf("%d project listings for one sync", l)
	}

	// Added by another replica (here: straight into the store) and
	// removed and added anew under the name: this replica's job starts
	// the one stored, with its webhook.
	m.stopConnection(conn)
	if _, ok := m.Webhook(conn); ok {
		t.Fatal("stopped, yet its webhook is served")
	}
	if err := m.sync(ctx, conn); err != nil {
		t.Fatalf("sync of a connection not running here: %v", err)
	}
	if _, ok := m.Webhook(conn); !ok {
		t.Error("started by its sync, its webhook is not served")
	}
	m.mu.Lock()
	old := m.running[conn]
	m.mu.Unlock()
	if err := st.RemoveConnection(ctx, conn); err != nil {
		t.Fatal(err)
	}
	ring, _ := c.keyring()
	again, err := ring.NewConnection(spec, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if again, err = st.AddConnection(ctx, again); err != nil {
		t.Fatal(err)
	}
	if err := m.sync(ctx, conn); err != nil {
		t.Fatalf("sync of a connection added anew: %v", err)
	}
	m.mu.Lock()
	now := m.running[conn]
	m.mu.Unlock()
	if now == old || !sameConnection(now.conn, again) || old.ctx.Err() == nil {
		t.Error("the connection added anew under the name runs as the old one")
	}
	if n := projects(); n != 2 {
		t.Errorf("the connection added anew: %d projects stored", n)
	}
	if l := simB.Stats().ByPath[projectListing]; l != 3 {
		t.Errorf("%d project listings for three syncs", l)
	}

	// Removed: its job ends with jobs.ErrNoConnection (the queue cancels
	// it), and it stops here.
	if err := m.Remove(ctx, conn); err != nil {
		t.Fatal(err)
	}
	if err := m.sync(ctx, conn); !errors.Is(err, jobs.ErrNoConnection) {
		t.Errorf("sync of a removed connection: %v", err)
	}
	if _, ok := m.Webhook(conn); ok {
		t.Error("removed, yet its webhook is served")
	}
	if l := simB.Stats().ByPath[projectListing]; l != 3 {
		t.Errorf("a removed connection's GitLab was asked: %d project listings", l)
	}
}

// TestConnectionsFollowTheStore: a connection added or removed through
// another replica (here: straight in the store) starts or stops on this
// one within its reconcile interval, webhook endpoint included, without a
// sync job; one whose secrets do not open is logged once, not every time.
func TestConnectionsFollowTheStore(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	key, err := auth.NewKeyText()
	if err != nil {
		t.Fatal(err)
	}
	other, err := auth.NewKeyText()
	if err != nil {
		t.Fatal(err)
	}
	d, err := openForServe(ctx, filepath.Join(t.TempDir(), "labtrail.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	st := d.Store
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	c := config{SecretKey: key, PollInterval: time.Hour, RequestsPerMinute: 1 << 30, HTTPTimeout: 30 * time.Second,
		Concurrency: 4, FullSweep: -1, MaxProjects: 100, connectionsReconcile: 20 * time.Millisecond}
	m, stopConns, err := startConnections(ctx, c, st, &ingest.Converter{Store: st, Log: log}, nil, nil, log)
	if err != nil || m == nil {
		t.Fatalf("start connections: %v", err)
	}
	defer stopConns()
	add := func(key, name string) {
		t.Helper()
		ring, err := config{SecretKey: key}.keyring()
		if err != nil {
			t.Fatal(err)
		}
		sealed, err := ring.NewConnection(auth.ConnectionSpec{Name: name, URL: "https://gitlab.example.com", Token: "glpat-" + name + "-token",
			WebhookSecret: name + "-hook", MaxProjects: 10}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.AddConnection(ctx, sealed); err != nil {
			t.Fatal(err)
		}
	}
	served := func(name string) func() bool {
		return func() bool { _, ok := m.Webhook(name); return ok }
	}

	add(key, "second")
	waitFor(t, "the connection added elsewhere serving its webhook here", served("second"))
	add(other, "third") // sealed under a key this replica lacks
	if err := st.RemoveConnection(ctx, "second"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the connection removed elsewhere stopping here", func() bool { return !served("second")() })
	waitFor(t, "a few more rounds", func() bool { return strings.Count(logs.String(), "GitLab connection removed; stopped here") == 1 })
	time.Sleep(10 * c.connectionsReconcile)
	if _, ok := m.Webhook("third"); ok {
		t.Error("a connection whose secrets do not open serves a webhook")
	}
	if n := strings.Count(logs.String(), `msg="GitLab connection not started" connection=third`); n != 1 {
		t.Errorf("the connection that would not start was logged %d times, want once\n%s", n, logs.String())
	}
}
