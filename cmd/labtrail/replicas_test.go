package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/gitlabsim"
	"github.com/labtrail/labtrail/internal/jobs"
	"github.com/labtrail/labtrail/internal/store/postgres/pgtest"
)

// replica is one `labtrail serve` process.
type replica struct {
	cmd  *exec.Cmd
	logs *syncBuffer
	url  string // http://host:port/
	dead atomic.Bool
}

// roundRobin is the load balancer in front of the replicas: each webhook
// goes to the next one, and to the one after when it is down.
type roundRobin struct {
	mu       sync.Mutex
	replicas []*replica
	next     int
	acked    atomic.Int64
}

func (rr *roundRobin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rr.mu.Lock()
	n := len(rr.replicas)
	start := rr.next
	rr.next++
	rr.mu.Unlock()
	client := &http.Client{Timeout: 10 * time.Second}
	for i := range n {
		rep := rr.replicas[(start+i)%n]
		if rep.dead.Load() {
			continue
		}
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, strings.TrimSuffix(rep.url, "/")+r.URL.Path, bytes.NewReader(body))
		req.Header = r.Header.Clone()
		resp, err := client.Do(req)
		if err != nil {
			continue // down: the next one
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 == 2 {
			rr.acked.Add(1)
		}
		w.WriteHeader(resp.StatusCode)
		w.Write(b)
		return
	}
	http.Error(w, "no replica answered", http.StatusBadGateway)
}

var pidInID = regexp.MustCompile(`_pid(\d+)_`)

// TestReplicasOnPostgres runs three `labtrail serve` processes on one
// PostgreSQL schema behind a round-robin balancer that GitLab's webhooks go
// through, with activity and polls every 2 s, and kills the leader with
// SIGKILL while it works jobs. Then: the store equals GitLab, every
// delivery was converted by exactly one job, the periodic sync ran at most
// once per interval, and the killed replica's jobs were finished by the
// others.
func TestReplicasOnPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("starts labtrail processes")
	}
	t.Parallel()
	db := pgtest.SchemaURL(t)
	if out, errOut, code := labtrailProc(t, nil, "migrate", "--db", db); code != 0 {
		t.Fatalf("migrate: %s%s", out, errOut)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pool, queryInt := openCounter(ctx, t, db)

	rr := &roundRobin{}
	front := httptest.NewServer(rr)
	defer front.Close()
	const secret = "replica-hook-secret"
	sim, simURL := startSim(t, gitlabsim.Options{Seed: 21, Projects: 4, MRs: 12, Pipelines: 12, Latency: 5 * time.Millisecond,
		WebhookURL: front.URL + "/api/v1/webhooks/gitlab", WebhookSecret: secret})

	const interval = 2 * time.Second
	started := time.Now()
	rr.replicas = startReplicas(t, 3, "GITLAB_URL="+simURL, "GITLAB_TOKEN="+simToken,
		"LABTRAIL_DB="+db, "LABTRAIL_LOG_LEVEL=warn", "LABTRAIL_WEBHOOK_SECRET="+secret,
		"LABTRAIL_JOB_TIMEOUT=8", "LABTRAIL_RESCUE_AFTER=9")

	// GitLab keeps changing, and tells labtrail by webhook.
	stopActivity := keepAdvancing(sim, 300*time.Millisecond)

	// Kill the leader while it works jobs of its own.
	var victim *replica
	var victimID string
	var victimJobs []int64
	for deadline := time.Now().Add(40 * time.Second); victim == nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("never caught the leader working a job")
		}
		var leader string
		if err := pool.QueryRow(ctx, `SELECT leader_id FROM river_leader`).Scan(&leader); err != nil {
			continue
		}
		rows, err := pool.Query(ctx, `SELECT id FROM river_job WHERE state = 'running' AND attempted_by[array_length(attempted_by, 1)] = $1`, leader)
		if err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for rows.Next() {
			var id int64
			rows.Scan(&id)
			ids = append(ids, id)
		}
		rows.Close()
		if len(ids) == 0 || queryInt(`SELECT count(*) FROM deliveries`) < 20 {
			continue
		}
		m := pidInID.FindStringSubmatch(leader)
		if m == nil {
			t.Fatalf("leader id %q names no pid", leader)
		}
		for _, rep := range rr.replicas {
			if fmt.Sprint(rep.cmd.Process.Pid) == m[1] {
				victim, victimID, victimJobs = rep, leader, ids
			}
		}
		if victim == nil {
			t.Fatalf("leader %s is none of the replicas", leader)
		}
	}
	victim.dead.Store(true)
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = victim.cmd.Wait()
	killedAt := time.Now()
	// A job the leader finished between the look and the kill is not
	// the rescuer's to take: only those still marked running are.
	var interrupted []int64
	if rows, err := pool.Query(ctx, `SELECT id FROM river_job WHERE id = ANY($1) AND state = 'running'`, victimJobs); err == nil {
		for rows.Next() {
			var id int64
			rows.Scan(&id)
			interrupted = append(interrupted, id)
		}
		rows.Close()
	}
	if len(interrupted) == 0 {
		t.Logf("the leader finished its jobs %v before it died; no rescue to check", victimJobs)
	}
	victimJobs = interrupted
	t.Logf("killed the leader %s %s after start, running jobs %v", victimID, killedAt.Sub(started).Round(time.Millisecond), victimJobs)

	// More activity with a replica down: webhooks the survivors take.
	for acked, deadline := rr.acked.Load(), time.Now().Add(30*time.Second); rr.acked.Load() < acked+20; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the survivors acknowledged %d webhooks in 30s, waited for 20", rr.acked.Load()-acked)
		}
	}
	stopActivity()
	if err := sim.FlushWebhooks(ctx); err != nil {
		t.Fatal(err)
	}

	// The survivors take over: the killed leader's jobs are rescued and
	// finished, every delivery is converted, polls bring the store to
	// GitLab's state.
	var live *replica
	for _, rep := range rr.replicas {
		if !rep.dead.Load() {
			live = rep
		}
	}
	base := strings.TrimSuffix(live.url, "/")
	for deadline := time.Now().Add(120 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		unfinished := queryInt(`SELECT count(*) FROM river_job WHERE id = ANY($1) AND state <> 'completed'`, victimJobs)
		pending := queryInt(`SELECT count(*) FROM deliveries WHERE status NOT IN ('processed', 'stored_raw')`)
		d := ""
		if unfinished == 0 && pending == 0 {
			for _, k := range change.Kinds {
				d += diff(truthOf(sim, k), listAll(t, base, string(k)))
			}
		}
		if unfinished == 0 && pending == 0 && d == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no convergence: %d of the killed replica's jobs unfinished, %d deliveries pending, store vs GitLab: %s",
				unfinished, pending, d)
		}
	}
	t.Logf("converged %s after the kill", time.Since(killedAt).Round(time.Millisecond))
	assertStoreEqualsTruth(t, sim, base)

	// The killed leader's jobs were finished by another replica.
	rows, err := pool.Query(ctx, `SELECT id, attempted_by FROM river_job WHERE id = ANY($1)`, victimJobs)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var (
			id int64
			by []string
		)
		if err := rows.Scan(&id, &by); err != nil {
			t.Fatal(err)
		}
		if len(by) < 2 || by[len(by)-1] == victimID {
			t.Errorf("job %d of the killed replica: attempted by %v", id, by)
		}
	}
	rows.Close()

	// Every delivery is stored once and converted exactly once: each
	// conversion that commits counts one attempt, and the replicas'
	// converters claim disjoint deliveries.
	stats := sim.Deliveries()
	deliveries := queryInt(`SELECT count(*) FROM deliveries`)
	if int64(deliveries) != stats.Hooks {
		t.Errorf("%d deliveries stored, the simulator sent %d", deliveries, stats.Hooks)
	}
	if n := queryInt(`SELECT count(*) FROM deliveries WHERE attempts <> 1 OR status NOT IN ('processed', 'stored_raw')`); n > 0 {
		t.Errorf("%d deliveries not converted exactly once into events or raw", n)
	}

	// The periodic sync ran at most once per interval, also across the
	// change of leader, and kept running after it.
	elapsed := time.Since(started)
	runs := queryInt(`SELECT count(*) FROM river_job WHERE kind = $1`, jobs.ScheduleKind)
	if max := int(elapsed/interval) + 2; runs > max {
		t.Errorf("%d periodic syncs in %s at a %s interval: at most %d", runs, elapsed.Round(time.Second), interval, max)
	}
	// Unique by period: every run holds the key of its interval (a retry
	// moves scheduled_at, so only first attempts still show theirs).
	if n := queryInt(`SELECT count(*) - count(DISTINCT unique_key) FROM river_job WHERE kind = $1`, jobs.ScheduleKind); n != 0 {
		t.Errorf("%d periodic syncs share their interval's unique key with another", n)
	}
	if n := queryInt(`SELECT count(*) FROM river_job WHERE kind = $1 AND unique_key IS NULL`, jobs.ScheduleKind); n != 0 {
		t.Errorf("%d periodic syncs are not unique by interval", n)
	}
	if n := queryInt(`SELECT count(*) FROM (SELECT floor(extract(epoch FROM scheduled_at) / $2) FROM river_job
		WHERE kind = $1 AND coalesce(cardinality(errors), 0) = 0 GROUP BY 1 HAVING count(*) > 1) AS twice`,
		jobs.ScheduleKind, interval.Seconds()); n > 0 {
		t.Errorf("%d intervals had more than one periodic sync", n)
	}
	if n := queryInt(`SELECT count(*) FROM river_job WHERE kind = $1 AND scheduled_at > $2`, jobs.ScheduleKind, killedAt); n == 0 {
		t.Error("no periodic sync after the leader was killed")
	}
	t.Logf("%d periodic syncs in %s; %d deliveries (%d acknowledged through the balancer)", runs, elapsed.Round(time.Second), deliveries, rr.acked.Load())
}

// servingURL waits for replica i's "labtrail serving on" line in logs and
// returns the address it names.
func servingURL(t *testing.T, i int, logs *syncBuffer) string {
	t.Helper()
	serving := regexp.MustCompile(`labtrail serving on (\S+)`)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if m := serving.FindStringSubmatch(logs.String()); m != nil {
			return strings.TrimSuffix(m[1], "/")
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica %d did not start:\n%s", i, logs.String())
		}
	}
}

// keepAdvancing advances sim every so often until stop is called; stop
// returns once it has.
func keepAdvancing(sim *gitlabsim.Sim, every time.Duration) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(every):
				sim.Advance()
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// startReplicas starts n `labtrail serve` processes polling every 2 s with
// env (beside the environment, no request limit, no full sweep, no repos
// or groups), and returns them once each serves; they are killed when
// the test ends, their output logged if it failed.
func startReplicas(t *testing.T, n int, env ...string) []*replica {
	t.Helper()
	var reps []*replica
	for i := range n {
		rep := &replica{logs: &syncBuffer{}}
		rep.cmd = exec.Command(os.Args[0], "serve", "--addr", "127.0.0.1:0", "--poll-interval", "2")
		rep.cmd.Env = append(append(os.Environ(), "LABTRAIL_E2E_MAIN=1", "LABTRAIL_REQUESTS_PER_MINUTE=1000000",
			"LABTRAIL_FULL_SWEEP=0", "REPOS=", "GROUPS="), env...)
		rep.cmd.Stdout, rep.cmd.Stderr = rep.logs, rep.logs
		if err := rep.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = rep.cmd.Process.Kill()
			_ = rep.cmd.Wait()
			if t.Failed() {
				t.Logf("replica %d output:\n%s", i, rep.logs.String())
			}
		})
		reps = append(reps, rep)
	}
	for i, rep := range reps {
		rep.url = servingURL(t, i, rep.logs)
	}
	return reps
}

// openCounter opens a pool on db, closed when the test ends, and a
// function that runs a query of one integer.
func openCounter(ctx context.Context, t *testing.T, db string) (*pgxpool.Pool, func(q string, args ...any) int) {
	t.Helper()
	pool, err := pgxpool.New(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool, func(q string, args ...any) int {
		t.Helper()
		var n int
		if err := pool.QueryRow(ctx, q, args...).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}
}
