package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/gitlabsim"
	"github.com/labtrail/labtrail/internal/store/postgres/pgtest"
)

// The end-to-end webhook benchmarks run `labtrail serve` in-process, wired
// as run.go wires it (store, job queue, webhook conversion, HTTP server on
// a real listener), post GitLab's own payloads to it over HTTP and read the
// result back through GET /api/v1/events and the deliveries listing.
//
//	LABTRAIL_TEST_POSTGRES_URL=... go test -run '^$' -bench ServeWebhook -benchtime 1x ./cmd/labtrail/

const benchHookSecret = "bench-hook-secret"

// benchJobBuildID is the build_id of GitLab's sample job hook (job.json).
const benchJobBuildID = 3580121225

// benchMix is the job-heavy mix of GitLab's payloads the ingest benchmarks
// use (internal/ingest/webhook_bench_test.go).
var benchMix = []struct {
	file, event string
	weight      int
}{
	{"job.json", "Job Hook", 8}, {"pipeline.json", "Pipeline Hook", 4}, {"push.json", "Push Hook", 3},
	{"merge_request.json", "Merge Request Hook", 3}, {"note_merge_request.json", "Note Hook", 2},
	{"issue.json", "Issue Hook", 1}, {"deployment.json", "Deployment Hook", 1}, {"release.json", "Release Hook", 1},
}

// benchPayloads are the mix's payloads, decoded so each delivery can name
// a project of its own.
type benchPayloads struct {
	bodies []map[string]any
	events []string
	job    map[string]any
}

func loadBenchPayloads(b *testing.B) benchPayloads {
	b.Helper()
	var p benchPayloads
	for _, m := range benchMix {
		raw, err := os.ReadFile(filepath.Join("..", "..", "internal", "gitlab", "testdata", "webhooks", m.file))
		if err != nil {
			b.Fatal(err)
		}
		for range m.weight {
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.UseNumber() // every other number exactly as GitLab wrote it
			var v map[string]any
			if err := dec.Decode(&v); err != nil {
				b.Fatal(err)
			}
			p.bodies, p.events = append(p.bodies, v), append(p.events, m.event)
			if m.file == "job.json" {
				p.job = v
			}
		}
	}
	return p
}

// withProject is body with its project id (top-level project_id and
// project.id, whichever it has) set to pid: every stable id includes it,
// so the events are new ones. Paths stay: they are in the selection.
func withProject(b *testing.B, body map[string]any, pid int64) []byte {
	m := make(map[string]any, len(body))
	for k, v := range body {
		m[k] = v
	}
	if _, ok := m["project_id"]; ok {
		m["project_id"] = pid
	}
	if p, ok := m["project"].(map[string]any); ok {
		pc := make(map[string]any, len(p))
		for k, v := range p {
			pc[k] = v
		}
		pc["id"] = pid
		m["project"] = pc
	}
	out, err := json.Marshal(m)
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// startServe runs serve on db until the benchmark ends and returns its
// base URL (ending in /).
func startServe(b *testing.B, db string) string {
	b.Helper()
	sim := gitlabsim.New(gitlabsim.Options{Seed: 3, Projects: 1, MRs: 1, Pipelines: 1, Token: simToken, RateLimit: 1 << 30})
	simSrv := httptest.NewServer(sim)
	b.Cleanup(simSrv.Close)
	c := config{
		GitLabURL: simSrv.URL, Token: simToken, DB: db, Addr: "127.0.0.1:0",
		// The payloads' namespaces: their projects are selected.
		Groups:       []string{"gitlab-org", "gitlabhq", "mike", "root", "exm-namespace", "jsmith"},
		PollInterval: time.Hour, RequestsPerMinute: 1 << 30, HTTPTimeout: 30 * time.Second, Concurrency: 4,
		AuditRetention: time.Hour, WebhookSecrets: []string{benchHookSecret},
		ShutdownTimeout: 5 * time.Second, QueueShutdownTimeout: 5 * time.Second,
	}
	ctx, cancel := context.WithCancel(context.Background())
	urlc := make(chan string, 1)
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	go func() { done <- serve(ctx, c, log, func(u string) { urlc <- u }) }()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("serve: %v", err)
		}
	})
	select {
	case u := <-urlc:
		return u
	case err := <-done:
		b.Fatalf("serve: %v", err)
	case <-time.After(60 * time.Second):
		b.Fatal("serve did not start")
	}
	return ""
}

// benchDBs are the backends to run on: SQLite, and PostgreSQL when
// LABTRAIL_TEST_POSTGRES_URL is set.
func benchDBs(*testing.B) []struct{ name, db string } {
	out := []struct{ name, db string }{{"sqlite", ""}}
	if os.Getenv(pgtest.Env) != "" {
		out = append(out, struct{ name, db string }{"postgres", "postgres"})
	}
	return out
}

func openBenchDB(b *testing.B, kind string) string {
	b.Helper()
	if kind == "postgres" {
		db := pgtest.SchemaURL(b)
		if _, err := migrateDB(context.Background(), db); err != nil {
			b.Fatal(err)
		}
		return db
	}
	return filepath.Join(b.TempDir(), "labtrail.db")
}

func postHook(c *http.Client, base string, body []byte, event, key string) error {
	req, _ := http.NewRequest(http.MethodPost, base+"api/v1/webhooks/gitlab", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Gitlab-Event", event)
	req.Header.Set("X-Gitlab-Token", benchHookSecret)
	req.Header.Set("Idempotency-Key", key)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("status %d: %s", resp.StatusCode, msg)
	}
	return nil
}

// pendingCount says whether the listing shows a delivery pending (0 or 1):
// it asks for one, as asking every 5 ms for a page of a thousand, each with
// its headers, took a quarter of the 2 cores the server converts on.
func pendingCount(c *http.Client, base string) (int, error) {
	resp, err := c.Get(base + "api/v1/webhooks/deliveries?status=pending&limit=1")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var page struct {
		Deliveries []json.RawMessage `json:"deliveries"`
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("deliveries listing: status %d", resp.StatusCode)
	}
	err = json.NewDecoder(resp.Body).Decode(&page)
	return len(page.Deliveries), err
}

func waitNonePending(b *testing.B, c *http.Client, base string, timeout time.Duration) {
	b.Helper()
	deadline := time.Now().Add(timeout)
	for {
		n, err := pendingCount(c, base)
		if err != nil {
			b.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("deliveries still pending after %s", timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// BenchmarkServeWebhookConversion posts 3,000 deliveries of the mix (16
// senders at once, each delivery's events new) and reports how many were
// converted per second end to end: from the first POST until the listing
// shows none pending.
func BenchmarkServeWebhookConversion(b *testing.B) {
	for _, be := range benchDBs(b) {
		b.Run(be.name, func(b *testing.B) {
			base := startServe(b, openBenchDB(b, be.db))
			p := loadBenchPayloads(b)
			const n = 3000
			bodies := make([][]byte, n)
			for i := range bodies {
				bodies[i] = withProject(b, p.bodies[i%len(p.bodies)], int64(1_000_000+i%1000))
			}
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			b.ResetTimer()
			for run := range b.N {
				var next atomic.Int64
				var wg sync.WaitGroup
				start := time.Now()
				for range 16 {
					wg.Go(func() {
						for i := next.Add(1) - 1; i < n; i = next.Add(1) - 1 {
							if err := postHook(c, base, bodies[i], p.events[int(i)%len(p.events)], fmt.Sprintf("conv-%d-%d", run, i)); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				acked := time.Since(start)
				waitNonePending(b, c, base, 10*time.Minute)
				elapsed := time.Since(start)
				b.ReportMetric(n/elapsed.Seconds(), "converted/s")
				b.ReportMetric(n/acked.Seconds(), "acked/s")
			}
		})
	}
}

// BenchmarkServeWebhookVisibleAt500 offers 500 deliveries a second for 10
// seconds (open loop: each is sent on schedule whether or not earlier ones
// were answered). One in ten is a job hook for a project of its own,
// watched through GET /api/v1/events/{id}: the time from its POST
// until the API lists its event gives the p50/p99 reported, beside the
// p99 of every delivery's acknowledgement.
func BenchmarkServeWebhookVisibleAt500(b *testing.B) {
	for _, be := range benchDBs(b) {
		b.Run(be.name, func(b *testing.B) {
			base := startServe(b, openBenchDB(b, be.db))
			p := loadBenchPayloads(b)
			const rate, seconds, every = 500, 10, 10
			const n = rate * seconds
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
			b.ResetTimer()
			for run := range b.N {
				bodies := make([][]byte, n)
				events := make([]string, n)
				for i := range bodies {
					if i%every == 0 {
						bodies[i], events[i] = withProject(b, p.job, int64(5_000_000+run*n+i)), "Job Hook"
						continue
					}
					k := i % len(p.bodies)
					bodies[i], events[i] = withProject(b, p.bodies[k], int64(1_000_000+i%1000)), p.events[k]
				}
				lat := make([]time.Duration, 0, n/every)
				ack := make([]time.Duration, n)
				var mu sync.Mutex
				var wg sync.WaitGroup
				var failed atomic.Int64
				start := time.Now()
				for i := range n {
					time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / rate)))
					wg.Go(func() {
						t0 := time.Now()
						if err := postHook(c, base, bodies[i], events[i], fmt.Sprintf("vis-%d-%d", run, i)); err != nil {
							failed.Add(1)
							return
						}
						ack[i] = time.Since(t0)
						if i%every != 0 {
							return
						}
						d, err := waitVisible(c, base, int64(5_000_000+run*n+i), t0)
						if err != nil {
							failed.Add(1)
							return
						}
						mu.Lock()
						lat = append(lat, d)
						mu.Unlock()
					})
				}
				wg.Wait()
				if failed.Load() > 0 {
					b.Fatalf("%d deliveries failed or never became visible", failed.Load())
				}
				slices.Sort(lat)
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "visible-p50-ms")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "visible-p99-ms")
				b.ReportMetric(float64(time.Since(start).Seconds()), "s-until-all-visible")
				slices.Sort(ack)
				b.ReportMetric(float64(ack[n*99/100].Microseconds())/1000, "ack-p99-ms")
			}
		})
	}
}

// waitVisible polls GET /api/v1/events/{id} for the event of the job hook
// sent for project pid (404 until it is stored) and says how long after t0
// it was found. (The listing filtered by project answers 404 for a
// project labtrail has not synced, which these are.) It polls more
// sparsely the longer it waits (a twentieth of the time so far), so that a
// slow conversion is not slowed further by the watchers.
func waitVisible(c *http.Client, base string, pid int64, t0 time.Time) (time.Duration, error) {
	u := base + "api/v1/events/" + url.PathEscape(change.JobID(pid, benchJobBuildID))
	for {
		resp, err := c.Get(u)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
			return time.Since(t0), nil
		case http.StatusNotFound:
		default:
			return 0, fmt.Errorf("%s: status %d", u, resp.StatusCode)
		}
		waited := time.Since(t0)
		if waited > 10*time.Minute {
			return 0, fmt.Errorf("project %d: no event after %s", pid, waited)
		}
		time.Sleep(max(5*time.Millisecond, waited/20))
	}
}
