package gitlab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
)

// auditLog collects audit records from concurrent requests.
type auditLog struct {
	mu   sync.Mutex
	recs []AuditRecord
}

func (a *auditLog) add(r AuditRecord) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.recs = append(a.recs, r)
}

func (a *auditLog) all() []AuditRecord {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]AuditRecord(nil), a.recs...)
}

func TestAuditReportsEveryAttempt(t *testing.T) {
	var n atomic.Int64
	srv, served := server(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			writeJSON(w, 502, map[string]string{"message": "502 Bad Gateway"})
			return
		}
		w.Header().Set("RateLimit-Remaining", "42")
		if r.URL.Query().Get("page") != "2" {
			w.Header().Set("X-Next-Page", "2")
			writeJSON(w, 200, []map[string]any{{"id": 1, "path_with_namespace": "g/one"}})
			return
		}
		writeJSON(w, 200, []map[string]any{})
	})
	log := new(auditLog)
	c := newClient(t, srv.URL, new(syncBuffer), func(c *Config) { c.Audit = log.add })
	ctx := WithJob(context.Background(), "sync:group/app")
	before := time.Now()
	ps, err := c.Projects(ctx, nil)
	if err != nil || len(ps) != 1 {
		t.Fatalf("projects %v, %v", ps, err)
	}
	recs := log.all()
	if int64(len(recs)) != served.Load() || len(recs) != 3 {
		t.Fatalf("%d records for %d requests: %+v", len(recs), served.Load(), recs)
	}
	for i, r := range recs {
		if r.Job != "sync:group/app" || r.Method != "GET" || r.Time.Before(before) || r.Duration <= 0 || r.Err != "" {
			t.Errorf("record %d: %+v", i, r)
		}
		if strings.Contains(r.Path, testToken) || strings.Contains(r.Path, "private_token") {
			t.Errorf("record %d leaks the token: %s", i, r.Path)
		}
		if !strings.HasPrefix(r.Path, "/api/v4/projects?") {
			t.Errorf("record %d path %q", i, r.Path)
		}
	}
	if recs[0].Status != 502 || recs[0].RateLimitRemaining != -1 || recs[1].Status != 200 || recs[1].RateLimitRemaining != 42 {
		t.Errorf("statuses: %+v", recs)
	}
	if !strings.Contains(recs[2].Path, "page=2") {
		t.Errorf("next page not followed: %s", recs[2].Path)
	}
}

func TestAuditPathRemovesSecrets(t *testing.T) {
	for in, want := range map[string]string{
		"/api/v4/projects/group%2Fapp?private_token=x&page=2": "/api/v4/projects/group%2Fapp?page=2",
		"/api/v4/user?access_token=x&job_token=y&Token=z":     "/api/v4/user",
		"/api/v4/x?a=1&CI_JOB_TOKEN=s&client_secret=t":        "/api/v4/x?a=1",
		"/api/v4/x?%zz": "/api/v4/x?(unparsable query)",
	} {
		u, err := url.Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := auditPath(u); got != want {
			t.Errorf("auditPath(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestAuditRefusedConnection(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	log := new(auditLog)
	c := newClient(t, "http://"+addr, new(syncBuffer), func(c *Config) { c.Audit = log.add; c.MaxRetries = 1 })
	_, err = c.Projects(context.Background(), []string{"7"})
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("error %v", err)
	}
	recs := log.all()
	if len(recs) != 2 {
		t.Fatalf("%d records: %+v", len(recs), recs)
	}
	for _, r := range recs {
		if r.Status != 0 || r.Err == "" || !strings.Contains(r.Err, "refused") || strings.Contains(r.Err, testToken) ||
			r.Path != "/api/v4/projects/7" || r.Job != "" || r.RateLimitRemaining != -1 {
			t.Errorf("record %+v", r)
		}
	}
}

func TestTimeoutIsRetriedThenFails(t *testing.T) {
	release := make(chan struct{})
	srv, served := server(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)
	log := new(auditLog)
	clock := new(skipClock)
	c := newClient(t, srv.URL, new(syncBuffer), func(c *Config) {
		c.Audit, c.Timeout, c.MaxRetries, c.Clock = log.add, 100*time.Millisecond, 2, clock
	})
	start := time.Now()
	_, err := c.Projects(context.Background(), []string{"7"})
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("error %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s", d)
	}
	recs := log.all()
	if len(recs) != 3 {
		t.Fatalf("%d attempts audited: %+v", len(recs), recs)
	}
	for _, r := range recs {
		if r.Status != 0 || !strings.Contains(r.Err, "no answer within 100ms") || r.Duration < 100*time.Millisecond {
			t.Errorf("record %+v", r)
		}
	}
	// A timeout is backed off from like a 5xx.
	checkWaits(t, clock.waits(), [][2]time.Duration{{100 * time.Millisecond, 200*time.Millisecond + 1}, {200 * time.Millisecond, 400*time.Millisecond + 1}})
	// The server may still be seeing the last attempt arrive.
	if n := served.Load(); n < 2 || n > 3 {
		t.Errorf("%d requests served", n)
	}
}

// A caller's own deadline is not an attempt timeout: it ends the call at
// once, without retries.
func TestCallerDeadlineIsNotRetried(t *testing.T) {
	srv, served := server(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	c := newClient(t, srv.URL, new(syncBuffer), func(c *Config) { c.Timeout = 10 * time.Second })
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	if _, err := c.Projects(ctx, []string{"7"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v", err)
	}
	if served.Load() != 1 {
		t.Errorf("%d requests", served.Load())
	}
}

func TestConcurrencyBound(t *testing.T) {
	f := newRouteFake(t)
	var mrs []any
	for i := 1; i <= 6; i++ {
		mrs = append(mrs, mrJSON(100+i, i, fmt.Sprintf("2024-03-01T10:00:0%dZ", i)))
		base := fmt.Sprintf("/projects/7/merge_requests/%d", i)
		f.add(base+"/approvals", &route{one: map[string]any{"approved": false}})
		f.add(base+"/diffs", &route{items: []any{}})
		f.add(base+"/commits", &route{items: []any{}})
		f.add(base+"/notes", &route{items: []any{}, allowed: []string{"order_by", "sort"}})
	}
	// Time paging reads a short page as the end, so the listing comes
	// whole.
	f.add("/projects/7/merge_requests", &route{items: mrs, size: 100, allowed: []string{"state", "order_by", "sort", "updated_after"}})
	var inFlight, peak atomic.Int64
	inner := f.srv.Config.Handler
	f.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
		inner.ServeHTTP(w, r)
	})
	c := f.client(t, func(c *Config) { c.Concurrency = 3 })
	pages, err := collect(t, c, change.KindMergeRequest, proj, time.Time{}, FetchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p := peak.Load(); p > 3 || p < 2 {
		t.Errorf("peak %d requests in flight, want 2..3", p)
	}
	want := []string{"mr-7-1", "mr-7-2", "mr-7-3", "mr-7-4", "mr-7-5", "mr-7-6"}
	if got := ids(pages, change.KindMergeRequest); !reflect.DeepEqual(got, want) {
		t.Errorf("order %v", got)
	}
}

// forEach returns the first error and starts no item after it; a cancelled
// caller gets an error, never a silent nil.
func TestForEachStopsAtFirstError(t *testing.T) {
	boom := errors.New("boom")
	c := newClient(t, "http://127.0.0.1:1", new(syncBuffer), func(c *Config) { c.Concurrency = 1 })
	var called []int
	err := c.forEach(context.Background(), 5, func(ctx context.Context, i int) error {
		called = append(called, i) // one worker: no race
		if i == 1 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || !reflect.DeepEqual(called, []int{0, 1}) {
		t.Errorf("error %v after items %v, want boom after [0 1]", err, called)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = c.forEach(ctx, 3, func(ctx context.Context, i int) error { return ctx.Err() })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled caller: %v", err)
	}
	if err := c.forEach(context.Background(), 0, nil); err != nil {
		t.Errorf("no items: %v", err)
	}
}
