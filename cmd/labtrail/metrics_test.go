package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/labtrail/labtrail/internal/gitlab"
	"github.com/labtrail/labtrail/internal/gitlabsim"
)

// metricSum is the sum of the samples of name whose label k is one of
// vs (k "" for all); ok false when the family is absent.
func metricSum(fams map[string]*dto.MetricFamily, name, k string, vs ...string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
	sum := 0.0
	for _, m := range f.GetMetric() {
		match := k == ""
		for _, l := range m.GetLabel() {
			for _, v := range vs {
				match = match || l.GetName() == k && l.GetValue() == v
			}
		}
		if match {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum, true
}

func scrapeMetrics(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(base + "metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics: %s, %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// TestServeMetrics: `labtrail serve` wires its parts to /metrics: the
// store gauges read at start, the sync it runs at start, the GitLab calls
// it makes and the webhooks it receives and converts.
func TestServeMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("runs serve against the simulator")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	const secret = "metrics-e2e-secret"
	sim, simURL := startSim(t, gitlabsim.Options{Seed: 8, Projects: 2, MRs: 3, Pipelines: 3,
		WebhookURL: "http://" + addr + "/api/v1/webhooks/gitlab", WebhookSecret: secret})
	db := filepath.Join(t.TempDir(), "labtrail.db")
	if out, errOut, code := labtrail(t, syncEnv(simURL, db), "sync", "--once"); code != 0 {
		t.Fatalf("sync: %d\n%s%s", code, out, errOut)
	}
	events := eventCount(t, db)

	c := config{
		GitLabURL: simURL, Token: simToken, DB: db, Addr: addr,
		PollInterval: time.Hour, RequestsPerMinute: 1 << 30, HTTPTimeout: 30 * time.Second, Concurrency: 4,
		AuditRetention: time.Hour, WebhookSecrets: []string{secret}, FullSweep: -1,
		ShutdownTimeout: 5 * time.Second, QueueShutdownTimeout: 5 * time.Second,
	}
	ctx, cancel := context.WithCancel(context.Background())
	urlc, done := make(chan string, 1), make(chan error, 1)
	go func() {
		done <- serve(ctx, c, slog.New(slog.NewTextHandler(io.Discard, nil)), func(u string) { urlc <- u })
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	var base string
	select {
	case base = <-urlc:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("serve did not start")
	}
	waitMetrics := func(what string, ok func(map[string]*dto.MetricFamily) bool) map[string]*dto.MetricFamily {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			fams := scrapeMetrics(t, base)
			if ok(fams) {
				return fams
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not seen in /metrics", what)
			}
		}
	}

	// Read once at start: the events the earlier sync stored (the sync
	// serve runs at start finds nothing new).
	fams := waitMetrics("labtrail_events", func(f map[string]*dto.MetricFamily) bool {
		_, ok := metricSum(f, "labtrail_events", "")
		return ok
	})
	if n, _ := metricSum(fams, "labtrail_events", ""); n != float64(events) || events == 0 {
		t.Errorf("labtrail_events sums to %v; the store holds %d", n, events)
	}
	// The sync at start: every project and kind.
	want := float64(2 * len(gitlab.SyncKinds()))
	fams = waitMetrics("the start's sync runs", func(f map[string]*dto.MetricFamily) bool {
		n, _ := metricSum(f, "labtrail_sync_runs_total", "result", "success", "error")
		return n >= want
	})
	if n, _ := metricSum(fams, "labtrail_sync_runs_total", "result", "success"); n != want {
		t.Errorf("%v successful sync runs, want %v", n, want)
	}
	if n, _ := metricSum(fams, "labtrail_gitlab_requests_total", "status", "200"); n == 0 {
		t.Error("no GitLab request counted")
	}
	if _, ok := metricSum(fams, "labtrail_gitlab_rate_limit_remaining", ""); !ok {
		t.Error("labtrail_gitlab_rate_limit_remaining missing")
	}

	// Webhooks: each received and then converted by serve's converter.
	sim.Advance()
	fctx, fcancel := context.WithTimeout(ctx, 30*time.Second)
	defer fcancel()
	if err := sim.FlushWebhooks(fctx); err != nil {
		t.Fatal(err)
	}
	acked := float64(sim.Deliveries().Acknowledged)
	if acked == 0 {
		t.Fatal("the simulator sent no webhook")
	}
	waitMetrics("every delivery stored and converted", func(f map[string]*dto.MetricFamily) bool {
		received, _ := metricSum(f, "labtrail_webhook_deliveries_total", "result", "stored", "duplicate")
		stored, _ := metricSum(f, "labtrail_webhook_deliveries_total", "result", "stored")
		converted, _ := metricSum(f, "labtrail_webhook_deliveries_total", "result", "processed", "failed", "ignored", "stored_raw")
		return received == acked && converted == stored
	})
}
