package ingest_test

import (
	"bytes"
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
// real HTTP on loopback, each stored durably in SQLite before its 200.
func BenchmarkWebhookIngest(b *testing.B) {
	h, _, _ := newHook(b, nil)
	srv := httptest.NewServer(h)
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
	h, _, _ := newHook(b, nil)
	srv := httptest.NewServer(h)
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
