package ingest_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/ingest"
	"github.com/labtrail/labtrail/internal/store"
	"github.com/labtrail/labtrail/internal/store/storetest"
)

// webhookMix is a realistic mix of GitLab's own payloads, weighted roughly
// as a busy project sends them: jobs and pipelines most, then pushes, MRs,
// notes and the rest.
func webhookMix(b *testing.B) (bodies [][]byte, events []string) {
	b.Helper()
	mix := []struct {
		file, event string
		weight      int
	}{
		{"job.json", "Job Hook", 8}, {"pipeline.json", "Pipeline Hook", 4}, {"push.json", "Push Hook", 3},
		{"merge_request.json", "Merge Request Hook", 3}, {"note_merge_request.json", "Note Hook", 2},
		{"issue.json", "Issue Hook", 1}, {"deployment.json", "Deployment Hook", 1}, {"release.json", "Release Hook", 1},
	}
	for _, m := range mix {
		body, err := os.ReadFile(filepath.Join("..", "gitlab", "testdata", "webhooks", m.file))
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < m.weight; i++ {
			bodies, events = append(bodies, body), append(events, m.event)
		}
	}
	return bodies, events
}

// BenchmarkWebhookIngest measures deliveries acknowledged per second over
// real HTTP on loopback, each stored durably (SQLite in WAL mode, or
// PostgreSQL) before its 200.
func BenchmarkWebhookIngest(b *testing.B) {
	for _, be := range storetest.Backends() {
		b.Run(be.Name, func(b *testing.B) { benchIngest(b, be.Open(b)) })
	}
}

func benchIngest(b *testing.B, st store.Store) {
	srv := httptest.NewServer(benchHandler(b, st))
	defer srv.Close()
	bodies, events := webhookMix(b)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var seq atomic.Int64
	b.SetParallelism(16) // many GitLab workers deliver at once
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := seq.Add(1)
			k := int(i) % len(bodies)
			if code := deliver(client, srv.URL, bodies[k], events[k], fmt.Sprintf("bench-%d", i)); code != 200 {
				b.Errorf("status %d", code)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "deliveries/s")
}

// benchHandler is the webhook endpoint on st, queueing nowhere: the
// benchmarks measure storing, not River.
func benchHandler(b *testing.B, st store.Store) *ingest.WebhookHandler {
	h, err := ingest.NewWebhookHandler(ingest.WebhookConfig{Secrets: []string{"other-group-secret", hookSecret}}, st, &recorder{}, quiet)
	if err != nil {
		b.Fatal(err)
	}
	return h
}

func deliver(c *http.Client, url string, body []byte, event, key string) int {
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Gitlab-Event", event)
	req.Header.Set("X-Gitlab-Token", hookSecret)
	req.Header.Set("Idempotency-Key", key)
	resp, err := c.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// BenchmarkWebhookLatencyAt1000 offers 1,000 deliveries a second (open
// loop: each is sent on schedule whether or not earlier ones have been
// answered) and reports the acknowledgement latency percentiles.
func BenchmarkWebhookLatencyAt1000(b *testing.B) {
	for _, be := range storetest.Backends() {
		b.Run(be.Name, func(b *testing.B) { benchLatency(b, be.Open(b)) })
	}
}

func benchLatency(b *testing.B, st store.Store) {
	srv := httptest.NewServer(benchHandler(b, st))
	defer srv.Close()
	bodies, events := webhookMix(b)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	const rate = 1000
	n := max(b.N, 2000) // at least two seconds of load for stable percentiles
	lat := make([]time.Duration, n)
	var wg sync.WaitGroup
	var failed atomic.Int64
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < n; i++ {
		due := start.Add(time.Duration(i) * time.Second / rate)
		time.Sleep(time.Until(due))
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			t0 := time.Now()
			k := i % len(bodies)
			if deliver(client, srv.URL, bodies[k], events[k], fmt.Sprintf("lat-%d-%d", b.N, i)) != 200 {
				failed.Add(1)
			}
			lat[i] = time.Since(t0)
		}(i)
	}
	wg.Wait()
	b.StopTimer()
	if failed.Load() > 0 {
		b.Fatalf("%d deliveries failed", failed.Load())
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[n/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[n*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(runtime.NumCPU()), "cpus")
}

// BenchmarkWebhookProcess measures the converter's side: stored
// deliveries of the same mix converted into events and stored, in batches
// of ingest.DefaultConvertBatch. Each delivery names a project of its own,
// so its events are new ones rather than unchanged re-deliveries.
func BenchmarkWebhookProcess(b *testing.B) {
	for _, be := range storetest.Backends() {
		b.Run(be.Name, func(b *testing.B) { benchProcess(b, be.Open(b)) })
	}
}

func benchProcess(b *testing.B, st store.Store) {
	bodies, events := webhookMix(b)
	ids := make([]int64, b.N)
	for i := range ids {
		k := i % len(bodies)
		body := ownProject(b, bodies[k], int64(1_000_000+i))
		id, _, err := st.PutDelivery(b.Context(), store.Delivery{
			IdempotencyKey: fmt.Sprintf("process-%d", i), EventType: events[k], Body: body,
			ReceivedAt: time.Now().UTC(), Status: store.DeliveryPending,
		})
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = id
	}
	var stored atomic.Int64
	conv := &ingest.Converter{Store: st, Branches: []string{"master", "main"}, Log: quiet,
		OnBatch: func(r store.ConvertResult) { stored.Add(int64(r.Upsert.Stored())) }}
	b.ResetTimer()
	start := time.Now()
	if err := conv.Drain(b.Context()); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if stored.Load() == 0 {
		b.Fatal("processing stored no event")
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(float64(stored.Load())/elapsed.Seconds(), "events/s")
}

// ownProject rewrites a payload's project id (top-level project_id and
// project.id, whichever it has) to pid: every stable id includes it.
func ownProject(b *testing.B, body []byte, pid int64) []byte {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber() // leave every other number exactly as GitLab wrote it
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		b.Fatal(err)
	}
	if _, ok := m["project_id"]; ok {
		m["project_id"] = pid
	}
	if p, ok := m["project"].(map[string]any); ok {
		p["id"] = pid
	}
	out, err := json.Marshal(m)
	if err != nil {
		b.Fatal(err)
	}
	return out
}
