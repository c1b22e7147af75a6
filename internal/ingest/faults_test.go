package ingest_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/gitlab"
	"github.com/labtrail/labtrail/internal/gitlabsim"
	"github.com/labtrail/labtrail/internal/ingest"
	"github.com/labtrail/labtrail/internal/store"
	"github.com/labtrail/labtrail/internal/store/sqlite"
)

const faultToken = "glpat-fault-test-token-0123456789"

// faultRig is a sync against a simulator with faults on, recording every
// GitLab call in the audit log.
type faultRig struct {
	rig
	audit *ingest.AuditLog
}

// virtualClock is a clock the simulator and the client share in which
// waiting takes no real time: Sleep moves the clock forward by the wait
// and returns at once, so a minute of rate-limit pacing passes in
// milliseconds while both sides agree on the time. Between waits it runs
// at real speed. Concurrent sleepers each move it, so it can run ahead of
// what they needed, which only spreads requests out: a client that did
// not pace would still put all its requests in one simulated minute.
type virtualClock struct {
	mu    sync.Mutex
	start time.Time // real time at creation
	ahead time.Duration
}

func newVirtualClock() *virtualClock { return &virtualClock{start: time.Now()} }

func (c *virtualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.start.Add(time.Since(c.start) + c.ahead)
}

func (c *virtualClock) Sleep(ctx context.Context, d time.Duration) error {
	if d > 0 {
		c.mu.Lock()
		c.ahead += d
		c.mu.Unlock()
	}
	return ctx.Err()
}

// newFaultRig builds the rig. With clock set, the simulator and the client
// both run on it.
func newFaultRig(t *testing.T, o gitlabsim.Options, rpm int, timeout time.Duration, clock *virtualClock) *faultRig {
	t.Helper()
	o.Token = faultToken
	var gclock gitlab.Clock
	if clock != nil {
		o.Now = clock.Now
		gclock = clock
	}
	sim := gitlabsim.New(o)
	ts := httptest.NewServer(sim)
	t.Cleanup(ts.Close)
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "f.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	audit := ingest.NewAuditLog(st, 0, quiet)
	cl, err := gitlab.New(gitlab.Config{URL: ts.URL, Token: faultToken, RequestsPerMinute: rpm, Timeout: timeout,
		MaxRetries: 8, Audit: audit.Record, Logger: quiet, Clock: gclock})
	if err != nil {
		t.Fatal(err)
	}
	return &faultRig{
		rig:   rig{sim: sim, client: cl, store: st, poller: &ingest.Poller{GitLab: cl, Store: st, Log: quiet}},
		audit: audit,
	}
}

// TestFaultySyncEqualsTruth syncs through 5% server errors, timeouts in the
// middle of paginated walks and a 429 storm; the store must still equal
// GitLab for every kind, and the audit log must hold every request GitLab
// saw, with no token in it.
func TestFaultySyncEqualsTruth(t *testing.T) {
	t.Parallel()
	r := newFaultRig(t, gitlabsim.Options{Seed: 21, Projects: 8, MRs: 40, Pipelines: 40,
		FailRate: 0.05, TimeoutRate: 0.01, Hang: 5 * time.Second}, 100000, 300*time.Millisecond, nil)
	ctx := context.Background()

	// A 429 storm partway through the backfill, lifted a little later:
	// from a page of merge requests, a walk whose next request follows at
	// once (kinds are walked side by side; another may be at its end).
	stormOnce := sync.Once{}
	r.poller.Progress = func(pr ingest.Progress) {
		if pr.Kind != change.KindMergeRequest {
			return
		}
		stormOnce.Do(func() {
			r.sim.SetStorm(time.Second)
			time.AfterFunc(1500*time.Millisecond, func() { r.sim.SetStorm(0) })
		})
	}
	res, err := r.poller.SyncAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A page whose retries all failed leaves its cursor behind; the next
	// run picks it up. Two runs at most are allowed to converge.
	if res.Err() != nil {
		t.Logf("first run: %v", res.Err())
		if res, err = r.poller.SyncAll(ctx); err != nil || res.Err() != nil {
			t.Fatal(err, res.Err())
		}
	}
	r.sim.SetFailRate(0)
	r.sim.SetTimeoutRate(0)
	r.compare(t, change.Kinds...)

	if err := r.audit.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	var entries []store.AuditEntry
	f := store.AuditFilter{Limit: store.MaxLimit}
	for {
		p, err := r.store.ListAudit(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, p.Entries...)
		if p.NextCursor == "" {
			break
		}
		f.Cursor = p.NextCursor
	}
	stats := r.sim.Stats()
	if int64(len(entries)) != stats.Requests {
		t.Errorf("audit log holds %d calls, the simulator served %d", len(entries), stats.Requests)
	}
	var fails, noAnswer, throttled int
	for _, e := range entries {
		switch {
		case e.Status == 0:
			noAnswer++
		case e.Status == http.StatusTooManyRequests:
			throttled++
		case e.Status >= 500:
			fails++
		}
		if e.Job == "" {
			t.Errorf("call without a job: %+v", e)
			break
		}
	}
	if fails == 0 || noAnswer == 0 || throttled == 0 {
		t.Errorf("faults not exercised: %d 5xx, %d timeouts, %d 429", fails, noAnswer, throttled)
	}
	b, _ := json.Marshal(entries)
	if strings.Contains(string(b), faultToken) {
		t.Error("the token appears in the audit log")
	}
}

// TestRequestsStayUnderTheLimit runs a sync that needs more requests than
// a minute allows and checks that no 60-second window the simulator saw
// had more than the configured limit. Simulator and client share a
// virtual clock, so the minute of pacing takes no real time.
func TestRequestsStayUnderTheLimit(t *testing.T) {
	t.Parallel()
	const limit = 120
	// Nine small projects: with merge request and pipeline details and
	// container image tags batched by GraphQL, fewer would not fill a
	// minute.
	r := newFaultRig(t, gitlabsim.Options{Seed: 8, Projects: 9, MRs: 8, Pipelines: 8, Issues: 2}, limit, 10*time.Second, newVirtualClock())
	res, err := r.poller.SyncAll(context.Background())
	if err != nil || res.Err() != nil {
		t.Fatal(err, res.Err())
	}
	st := r.sim.Stats()
	if st.Requests <= limit {
		t.Fatalf("the sync made only %d requests; the test needs more than %d", st.Requests, limit)
	}
	t.Logf("%d requests, at most %d in one minute", st.Requests, st.PeakPerMinute)
	if st.PeakPerMinute > limit {
		t.Errorf("%d requests in one minute, limit %d", st.PeakPerMinute, limit)
	}
	r.compare(t, change.Kinds...)
}
