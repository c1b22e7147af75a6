package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/gitlabsim"
	"github.com/labtrail/labtrail/internal/server"
	"github.com/labtrail/labtrail/internal/store"
	"github.com/labtrail/labtrail/internal/store/sqlite"
)

// TestMain lets a test start this binary as labtrail itself (for kill -9).
func TestMain(m *testing.M) {
	if os.Getenv("LABTRAIL_E2E_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

const simToken = "glpat-e2e-secret-token-value"

func startSim(t *testing.T, o gitlabsim.Options) (*gitlabsim.Sim, string) {
	t.Helper()
	o.Token = simToken
	if o.RateLimit == 0 {
		// Far above what a test needs, so GitLab.com's 2,000 a minute
		// (the simulator's figure otherwise) does not pace these tests.
		o.RateLimit = 1 << 30
	}
	sim := gitlabsim.New(o)
	ts := httptest.NewServer(sim)
	t.Cleanup(ts.Close)
	return sim, ts.URL
}

// labtrail runs a command in-process with the given environment.
func labtrail(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	for _, k := range labtrailEnvCleared {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return out.String(), errb.String(), code
}

// labtrailProc runs a command as labtrail() does, but in a child process
// of this test binary, so that the test leaves this process's environment
// alone and may run in parallel with others.
func labtrailProc(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return labtrailProcStdin(t, "", env, args...)
}

// labtrailProcStdin is labtrailProc with in as the command's standard input.
func labtrailProcStdin(t *testing.T, in string, env map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cleared := map[string]bool{}
	for _, k := range labtrailEnvCleared {
		cleared[k] = true
	}
	for k := range env {
		cleared[k] = true
	}
	var vars []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !cleared[k] {
			vars = append(vars, kv)
		}
	}
	vars = append(vars, "LABTRAIL_E2E_MAIN=1")
	for k, v := range env {
		vars = append(vars, k+"="+v)
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = vars
	cmd.Stdin = strings.NewReader(in)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("labtrail %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), code
}

// labtrailEnvCleared are the settings labtrail() and labtrailProc() clear
// before setting a command's own.
var labtrailEnvCleared = []string{"GITLAB_TOKEN", "GITLAB_URL", "REPOS", "GROUPS", "LABTRAIL_GROUPS", "BRANCHES", "LABTRAIL_DB", "POLL_INTERVAL",
	"LABTRAIL_ADDR", "LABTRAIL_REQUESTS_PER_MINUTE"}

// api serves labtrail's HTTP API over the database at path.
func api(t *testing.T, path string) *httptest.Server {
	t.Helper()
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(server.New(st, nil))
	t.Cleanup(func() { ts.Close(); st.Close() })
	return ts
}

type apiEvent struct {
	ID        string    `json:"id"`
	Kind      string    `json:"kind"`
	UpdatedAt time.Time `json:"updated_at"`
}

// listAll walks GET /api/v1/events for one kind through every cursor.
func listAll(t *testing.T, base, kind string) map[string]time.Time {
	t.Helper()
	got := map[string]time.Time{}
	for _, e := range listEvents(t, base, url.Values{"kind": {kind}}) {
		if _, dup := got[e.ID]; dup {
			t.Fatalf("event %s listed twice", e.ID)
		}
		got[e.ID] = e.UpdatedAt
	}
	return got
}

// listEvents walks GET /api/v1/events with the filters of q through every
// cursor, 1,000 a page.
func listEvents(t *testing.T, base string, q url.Values) []apiEvent {
	t.Helper()
	var all []apiEvent
	q.Set("limit", "1000")
	for {
		var page struct {
			Events     []apiEvent `json:"events"`
			NextCursor string     `json:"next_cursor"`
		}
		getJSON(t, base+"/api/v1/events?"+q.Encode(), &page)
		all = append(all, page.Events...)
		if page.NextCursor == "" {
			return all
		}
		q.Set("cursor", page.NextCursor)
	}
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", u, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}

func truthOf(sim *gitlabsim.Sim, kind change.Kind) map[string]time.Time {
	m := map[string]time.Time{}
	for _, e := range sim.Truth() {
		if e.Kind == kind {
			m[e.ID] = e.UpdatedAt
		}
	}
	return m
}

// diff describes how got differs from want (ids and updated_at).
func diff(want, got map[string]time.Time) string {
	var missing, extra, stale []string
	for id, w := range want {
		g, ok := got[id]
		switch {
		case !ok:
			missing = append(missing, id)
		case !g.Equal(w):
			stale = append(stale, fmt.Sprintf("%s (have %s, want %s)", id, g, w))
		}
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			extra = append(extra, id)
		}
	}
	if len(missing)+len(extra)+len(stale) == 0 {
		return ""
	}
	sort.Strings(missing)
	sort.Strings(extra)
	sort.Strings(stale)
	trim := func(s []string) []string {
		if len(s) > 5 {
			return append(s[:5], fmt.Sprintf("... %d in all", len(s)))
		}
		return s
	}
	return fmt.Sprintf("missing %v, extra %v, stale %v", trim(missing), trim(extra), trim(stale))
}

func assertStoreEqualsTruth(t *testing.T, sim *gitlabsim.Sim, base string) {
	t.Helper()
	for _, k := range change.Kinds {
		if d := diff(truthOf(sim, k), listAll(t, base, string(k))); d != "" {
			t.Errorf("%s: store differs from the simulator's truth: %s", k, d)
		}
	}
}

func syncEnv(simURL, db string) map[string]string {
	return map[string]string{"GITLAB_URL": simURL, "GITLAB_TOKEN": simToken, "LABTRAIL_DB": db, "LABTRAIL_LOG_LEVEL": "warn",
		"LABTRAIL_REQUESTS_PER_MINUTE": "100000"}
}

func TestSyncOnceMatchesTruthAndIsIncremental(t *testing.T) {
	sim, simURL := startSim(t, gitlabsim.Options{Seed: 7, Projects: 3, MRs: 60, Pipelines: 80})
	db := filepath.Join(t.TempDir(), "labtrail.db")
	env := syncEnv(simURL, db)

	out, errOut, code := labtrail(t, env, "sync", "--once")
	if code != 0 {
		t.Fatalf("first sync exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if strings.Contains(out+errOut, simToken) {
		t.Fatal("the token appears in the output")
	}
	for _, want := range []string{"TOTAL", "merge_request", "pipeline"} {
		if !strings.Contains(out, want) {
			t.Errorf("sync output lacks %q:\n%s", want, out)
		}
	}
	srv := api(t, db)
	assertStoreEqualsTruth(t, sim, srv.URL)

	// Nothing moved: nothing stored, only a handful of requests.
	sim.ResetStats()
	out, errOut, code = labtrail(t, env, "sync", "--once")
	if code != 0 {
		t.Fatalf("second sync exit %d\n%s\n%s", code, out, errOut)
	}
	if n := totalStored(t, out); n != 0 {
		t.Errorf("a sync with no new activity stored %d objects:\n%s", n, out)
	}
	// One project listing plus one listing per project and kind (two for
	// registry images: repositories, then tags), and no detail request.
	if req := sim.Stats().Requests; req > int64(1+3*(len(change.Kinds)+1)) {
		t.Errorf("a sync with no new activity made %d requests (by path %v)", req, sim.Stats().ByPath)
	}
	for path := range sim.Stats().ByPath {
		if strings.Count(path, ":") > 1 && !strings.HasSuffix(path, "/registry/repositories/:repository_id/tags") {
			t.Errorf("a sync with no new activity asked for details: %s", path)
		}
	}

	// New activity: exactly the new and changed objects are stored.
	before := map[change.Kind]map[string]time.Time{}
	for _, k := range []change.Kind{change.KindMergeRequest, change.KindPipeline} {
		before[k] = truthOf(sim, k)
	}
	sim.Advance()
	sim.Advance()
	changed := 0
	for k, old := range before {
		for id, u := range truthOf(sim, k) {
			if o, ok := old[id]; !ok || !o.Equal(u) {
				changed++
			}
		}
	}
	if changed == 0 {
		t.Fatal("Advance changed nothing")
	}
	out, errOut, code = labtrail(t, env, "sync", "--once")
	if code != 0 {
		t.Fatalf("third sync exit %d\n%s\n%s", code, out, errOut)
	}
	if got := storedOf(t, out, "merge_request") + storedOf(t, out, "pipeline"); got != changed {
		t.Errorf("after activity the sync stored %d merge requests and pipelines, want the %d that changed:\n%s", got, changed, out)
	}
	assertStoreEqualsTruth(t, sim, srv.URL)
}

// storedOf sums the STORED column of the TOTAL lines for a kind: notes
// have one per what they are on ("note (merge_request)").
func storedOf(t *testing.T, out, kind string) int {
	t.Helper()
	n := 0
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 && f[0] == "TOTAL" && f[1] == kind {
			var s int
			fmt.Sscan(f[len(f)-1], &s)
			n += s
		}
	}
	return n
}

func totalStored(t *testing.T, out string) int {
	n := 0
	for _, k := range change.Kinds {
		n += storedOf(t, out, string(k))
	}
	return n
}

func eventCount(t *testing.T, db string) int {
	t.Helper()
	st, err := sqlite.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	n, err := st.Count(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestClearErrorsKeepTheStore(t *testing.T) {
	sim, simURL := startSim(t, gitlabsim.Options{Seed: 3, Projects: 2, MRs: 20, Pipelines: 20})
	db := filepath.Join(t.TempDir(), "labtrail.db")
	if out, errOut, code := labtrail(t, syncEnv(simURL, db), "sync", "--once"); code != 0 {
		t.Fatalf("sync: %s %s", out, errOut)
	}
	stored := eventCount(t, db)
	if stored == 0 {
		t.Fatal("nothing stored")
	}
	sim.Advance() // there is something to fetch, so a failing run could lose it

	tests := []struct {
		name  string
		env   func(map[string]string)
		setup func()
		want  string
	}{
		{"no token", func(e map[string]string) { delete(e, "GITLAB_TOKEN") }, nil, "GITLAB_TOKEN not set"},
		{"wrong token", func(e map[string]string) { e["GITLAB_TOKEN"] = "glpat-wrong-token-1234" }, nil, "rejected the token"},
		{"unreachable", func(e map[string]string) { e["GITLAB_URL"] = "http://127.0.0.1:1" }, nil, "cannot reach GitLab"},
		{"bad url", func(e map[string]string) { e["GITLAB_URL"] = "not a url" }, nil, "GITLAB_URL"},
		{"429 storm", nil, func() { sim.SetStorm(time.Second) }, "rate limit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := syncEnv(simURL, db)
			if tc.env != nil {
				tc.env(env)
			}
			if tc.setup != nil {
				tc.setup()
				defer sim.SetStorm(0)
			}
			out, errOut, code := labtrail(t, env, "sync", "--once")
			if code == 0 {
				t.Fatalf("exit 0, want failure\n%s\n%s", out, errOut)
			}
			if !strings.Contains(out+errOut, tc.want) {
				t.Errorf("output lacks %q:\nstdout:\n%s\nstderr:\n%s", tc.want, out, errOut)
			}
			for _, secret := range []string{simToken, "glpat-wrong-token-1234"} {
				if strings.Contains(out+errOut, secret) {
					t.Errorf("a token appears in the output:\n%s\n%s", out, errOut)
				}
			}
			if n := eventCount(t, db); n < stored {
				t.Errorf("store lost events: %d before, %d after", stored, n)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	_, simURL := startSim(t, gitlabsim.Options{Seed: 1, Projects: 1, MRs: 1, Pipelines: 1})
	env := syncEnv(simURL, filepath.Join(t.TempDir(), "x.db"))
	out, errOut, code := labtrail(t, env, "check")
	if code != 0 {
		t.Fatalf("check exit %d: %s %s", code, out, errOut)
	}
	for _, want := range []string{"GitLab ", "Authenticated as @", "api"} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
	env["GITLAB_TOKEN"] = "nope"
	if _, errOut, code := labtrail(t, env, "check"); code != 1 || !strings.Contains(errOut, "rejected the token") {
		t.Errorf("check with a wrong token: exit %d, %s", code, errOut)
	}
}

func TestHelpAndUsage(t *testing.T) {
	for _, c := range commands() {
		out, errOut, code := labtrail(t, nil, c.name, "--help")
		if c.name == "version" {
			continue
		}
		if code != 0 || !strings.Contains(out+errOut, "Usage: labtrail "+c.name) {
			t.Errorf("%s --help: exit %d\n%s%s", c.name, code, out, errOut)
		}
	}
	if _, _, code := labtrail(t, nil, "frobnicate"); code != 2 {
		t.Errorf("unknown command: exit %d, want 2", code)
	}
	if _, _, code := labtrail(t, nil, "sync", "--no-such-flag"); code != 2 {
		t.Errorf("unknown flag: exit %d, want 2", code)
	}
}

// TestServeKilledMidSyncLosesNothing kills `labtrail serve` with SIGKILL while
// it is backfilling, starts it again and checks the store equals the truth
// with nothing lost and nothing twice.
func TestServeKilledMidSyncLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts labtrail processes")
	}
	t.Parallel()
	sim, simURL := startSim(t, gitlabsim.Options{Seed: 11, Projects: 3, MRs: 400, Pipelines: 300, Latency: 15 * time.Millisecond})
	db := filepath.Join(t.TempDir(), "labtrail.db")
	start := func() (*exec.Cmd, *syncBuffer) {
		cmd := exec.Command(os.Args[0], "serve", "--addr", "127.0.0.1:0", "--poll-interval", "3600")
		cmd.Env = append(os.Environ(), "LABTRAIL_E2E_MAIN=1", "GITLAB_URL="+simURL, "GITLAB_TOKEN="+simToken,
			"LABTRAIL_DB="+db, "LABTRAIL_LOG_LEVEL=warn", "REPOS=", "LABTRAIL_REQUESTS_PER_MINUTE=100000")
		logs := &syncBuffer{}
		cmd.Stdout, cmd.Stderr = logs, logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			if t.Failed() {
				t.Logf("labtrail serve output:\n%s", logs.String())
			}
		})
		return cmd, logs
	}
	total := 0
	for _, e := range sim.Truth() {
		if e.Kind == change.KindMergeRequest || e.Kind == change.KindPipeline {
			total++
		}
	}
	first, _ := start()
	// Wait until part of the backfill is stored, then kill it hard.
	deadline := time.Now().Add(60 * time.Second)
	for {
		n := eventCountIfExists(db)
		if n > 100 && n < total {
			break
		}
		if n >= total || time.Now().After(deadline) {
			t.Fatalf("could not catch the sync mid-way: %d of %d stored", n, total)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	killedAt := eventCountIfExists(db)
	t.Logf("killed with %d of %d merge requests and pipelines stored", killedAt, total)

	_, logs := start()
	// A second serve on the same file is refused while the first runs.
	for !strings.Contains(logs.String(), "labtrail serving on") {
		if time.Now().After(deadline.Add(time.Minute)) {
			t.Fatalf("labtrail serve did not start:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	env := syncEnv(simURL, db)
	env["LABTRAIL_ADDR"] = "127.0.0.1:0"
	if _, errOut, code := labtrailProc(t, env, "serve"); code != 1 || !strings.Contains(errOut, "another labtrail serve") {
		t.Errorf("second serve on one database: exit %d, %s", code, errOut)
	}
	srvDeadline := time.Now().Add(120 * time.Second)
	for {
		srv, closeSrv := apiOnce(t, db)
		d := ""
		for _, k := range []change.Kind{change.KindMergeRequest, change.KindPipeline} {
			d += diff(truthOf(sim, k), listAll(t, srv.URL, string(k)))
		}
		closeSrv()
		if d == "" {
			break
		}
		if time.Now().After(srvDeadline) {
			t.Fatalf("after restart the store never reached the truth: %s", d)
		}
		// A whole listing each time: not so often that it slows the
		// sync it waits for.
		time.Sleep(time.Second)
	}
}

// eventCountIfExists counts stored merge requests and pipelines, 0 while the
// database is not there yet.
func eventCountIfExists(db string) int {
	if _, err := os.Stat(db); err != nil {
		return 0
	}
	// Read-only and without the store's write probe: polled while a
	// labtrail serve writes, a reader must not take its turns at the lock.
	conn, err := sql.Open("sqlite", "file:"+db+"?mode=ro&_pragma=busy_timeout(1000)")
	if err != nil {
		return 0
	}
	defer conn.Close()
	var n int
	if err := conn.QueryRow(`SELECT count(*) FROM events WHERE kind IN (?, ?)`,
		string(change.KindMergeRequest), string(change.KindPipeline)).Scan(&n); err != nil {
		return 0
	}
	return n
}

func apiOnce(t *testing.T, db string) (*httptest.Server, func()) {
	// Opening probes for write access, which waits for a labtrail serve
	// storing pages back to back; under -race a busy timeout can pass
	// before its turn comes.
	st, err := sqlite.Open(context.Background(), db)
	for deadline := time.Now().Add(time.Minute); err != nil && strings.Contains(err.Error(), "SQLITE_BUSY") && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		st, err = sqlite.Open(context.Background(), db)
	}
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(server.New(st, nil))
	return ts, func() { ts.Close(); st.Close() }
}

// syncBuffer is a bytes.Buffer safe to read while a process writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestKilledUnderWebhookLoadKeepsEveryAcknowledgedDelivery sends webhooks
// to `labtrail serve` from several senders, kills it with SIGKILL in the
// middle, and checks that every delivery that got a 2xx is in the store.
func TestKilledUnderWebhookLoadKeepsEveryAcknowledgedDelivery(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a labtrail process")
	}
	_, simURL := startSim(t, gitlabsim.Options{Seed: 5, Projects: 1, MRs: 5, Pipelines: 5})
	db := filepath.Join(t.TempDir(), "labtrail.db")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(os.Args[0], "serve", "--addr", addr, "--poll-interval", "3600")
	cmd.Env = append(os.Environ(), "LABTRAIL_E2E_MAIN=1", "GITLAB_URL="+simURL, "GITLAB_TOKEN="+simToken,
		"LABTRAIL_DB="+db, "LABTRAIL_LOG_LEVEL=warn", "LABTRAIL_WEBHOOK_SECRET=load-secret", "LABTRAIL_REQUESTS_PER_MINUTE=100000")
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(logs.String(), "labtrail serving on") {
		if time.Now().After(deadline) {
			t.Fatalf("serve did not start:\n%s", logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	body, err := os.ReadFile(filepath.Join("..", "..", "internal", "gitlab", "testdata", "webhooks", "pipeline.json"))
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		acked []string
		stop  atomic.Bool
		wg    sync.WaitGroup
	)
	client := &http.Client{Timeout: 5 * time.Second}
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				key := fmt.Sprintf("load-%d-%d", w, i)
				req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/api/v1/webhooks/gitlab", bytes.NewReader(body))
				req.Header.Set("X-Gitlab-Event", "Pipeline Hook")
				req.Header.Set("X-Gitlab-Token", "load-secret")
				req.Header.Set("Idempotency-Key", key)
				resp, err := client.Do(req)
				if err != nil {
					return // the server is gone
				}
				resp.Body.Close()
				if resp.StatusCode/100 == 2 {
					mu.Lock()
					acked = append(acked, key)
					mu.Unlock()
				}
			}
		}(w)
	}
	// Kill it once a few hundred deliveries are through (sooner on a fast
	// machine, later under -race).
	for loadDeadline := time.Now().Add(30 * time.Second); time.Now().Before(loadDeadline); time.Sleep(20 * time.Millisecond) {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 300 {
			break
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	stop.Store(true)
	wg.Wait()
	if len(acked) < 100 {
		t.Fatalf("only %d deliveries acknowledged before the kill", len(acked))
	}
	st, err := sqlite.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	stored := map[string]bool{}
	f := store.DeliveryFilter{Limit: store.MaxLimit}
	for {
		p, err := st.ListDeliveries(context.Background(), f)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range p.Deliveries {
			stored[d.IdempotencyKey] = true
		}
		if p.NextCursor == "" {
			break
		}
		f.Cursor = p.NextCursor
	}
	lost := 0
	for _, k := range acked {
		if !stored[k] {
			lost++
		}
	}
	t.Logf("%d deliveries acknowledged before SIGKILL, %d stored", len(acked), len(stored))
	if lost > 0 {
		t.Errorf("%d acknowledged deliveries lost", lost)
	}
}

// TestWebhookPathEndToEnd: `labtrail hooks install` registers labtrail's
// webhook on GitLab, then POST /api/v1/webhooks/test on a running `labtrail
// serve` has GitLab send a test push through it, which is stored.
func TestWebhookPathEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a labtrail process")
	}
	_, simURL := startSim(t, gitlabsim.Options{Seed: 6, Projects: 2, MRs: 3, Pipelines: 3})
	db := filepath.Join(t.TempDir(), "labtrail.db")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	hookURL := "http://" + addr + "/api/v1/webhooks/gitlab"

	env := syncEnv(simURL, filepath.Join(t.TempDir(), "other.db"))
	env["LABTRAIL_WEBHOOK_SECRET"] = "e2e-hook-secret"
	if out, errOut, code := labtrail(t, env, "hooks", "install", "--url", hookURL); code != 0 {
		t.Fatalf("hooks install: %d\n%s%s", code, out, errOut)
	}

	cmd := exec.Command(os.Args[0], "serve", "--addr", addr, "--poll-interval", "3600")
	cmd.Env = append(os.Environ(), "LABTRAIL_E2E_MAIN=1", "GITLAB_URL="+simURL, "GITLAB_TOKEN="+simToken,
		"LABTRAIL_DB="+db, "LABTRAIL_LOG_LEVEL=warn", "LABTRAIL_WEBHOOK_SECRET=e2e-hook-secret",
		"LABTRAIL_WEBHOOK_URL="+hookURL, "LABTRAIL_REQUESTS_PER_MINUTE=100000")
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(logs.String(), "labtrail serving on"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("serve did not start:\n%s", logs)
		}
	}
	resp, err := http.Post("http://"+addr+"/api/v1/webhooks/test", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		OK      bool `json:"ok"`
		Results []struct {
			Project string `json:"project"`
			OK      bool   `json:"ok"`
			Error   string `json:"error"`
		} `json:"results"`
	}
	err = json.NewDecoder(resp.Body).Decode(&res)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || !res.OK || len(res.Results) != 2 {
		t.Fatalf("webhook test: %d %+v %v\n%s", resp.StatusCode, res, err, logs)
	}
	var deliveries struct {
		Deliveries []struct {
			EventType string `json:"event_type"`
		} `json:"deliveries"`
	}
	getJSON(t, "http://"+addr+"/api/v1/webhooks/deliveries", &deliveries)
	if len(deliveries.Deliveries) != 2 || deliveries.Deliveries[0].EventType != "Push Hook" {
		t.Errorf("deliveries after the test: %+v", deliveries)
	}
}
