package server_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/gitlab"
	"github.com/labtrail/labtrail/internal/gitlabsim"
	"github.com/labtrail/labtrail/internal/ingest"
	"github.com/labtrail/labtrail/internal/server"
	"github.com/labtrail/labtrail/internal/store"
	"github.com/labtrail/labtrail/internal/store/sqlite"
)

// The telemetry is what the ways in report to.
var _ ingest.Observer = (*server.Telemetry)(nil)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// scrape is GET /metrics, parsed.
func scrape(t *testing.T, base string) (map[string]*dto.MetricFamily, string) {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s: %s", resp.Status, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return fams, string(body)
}

// series are a family's samples: each its labels and value.
type sample struct {
	labels map[string]string
	value  float64
}

func series(fams map[string]*dto.MetricFamily, name string) []sample {
	f := fams[name]
	if f == nil {
		return nil
	}
	var out []sample
	for _, m := range f.GetMetric() {
		s := sample{labels: map[string]string{}}
		for _, l := range m.GetLabel() {
			s.labels[l.GetName()] = l.GetValue()
		}
		switch {
		case m.Counter != nil:
			s.value = m.GetCounter().GetValue()
		case m.Gauge != nil:
			s.value = m.GetGauge().GetValue()
		case m.Untyped != nil:
			s.value = m.GetUntyped().GetValue()
		}
		out = append(out, s)
	}
	return out
}

// value is the sample of name with exactly labels; ok false if absent.
func value(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	for _, s := range series(fams, name) {
		if len(s.labels) != len(labels) {
			continue
		}
		match := true
		for k, v := range labels {
			match = match && s.labels[k] == v
		}
		if match {
			return s.value, true
		}
	}
	return 0, false
}

// total sums the samples of name whose label k is v (k "" for all).
func total(fams map[string]*dto.MetricFamily, name, k, v string) float64 {
	n := 0.0
	for _, s := range series(fams, name) {
		if k == "" || s.labels[k] == v {
			n += s.value
		}
	}
	return n
}

const hookSecret = "metrics-hook-secret"

// metricsRig is labtrail's parts wired as serve wires them, over a real
// SQLite file, the simulator as GitLab, and a real HTTP server.
type metricsRig struct {
	st     store.Store
	tel    *server.Telemetry
	api    *httptest.Server
	sim    *gitlabsim.Sim
	audit  *ingest.AuditLog
	poller *ingest.Poller
	conv   *ingest.Converter
}

func newMetricsRig(t *testing.T) *metricsRig {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	r := &metricsRig{st: st, tel: server.NewTelemetry(st, quiet)}
	api := server.New(st, quiet)
	api.EnableTelemetry(r.tel)
	r.conv = &ingest.Converter{Store: st, Log: quiet, Observer: r.tel}
	wh, err := ingest.NewWebhookHandler(ingest.WebhookConfig{Secrets: []string{hookSecret}}, st, r.conv, quiet)
	if err != nil {
		t.Fatal(err)
	}
	wh.SetObserver(r.tel)
	api.EnableWebhooks(wh, r.conv.Replay)
	r.api = httptest.NewServer(api)
	t.Cleanup(r.api.Close)

	r.sim = gitlabsim.New(gitlabsim.Options{Seed: 11, Projects: 2, MRs: 4, Pipelines: 4, Token: "tok", RateLimit: 1 << 30,
		WebhookURL: r.api.URL + "/api/v1/webhooks/gitlab", WebhookSecret: hookSecret, DuplicateRate: 0.3})
	simSrv := httptest.NewServer(r.sim)
	t.Cleanup(simSrv.Close)
	r.audit = ingest.NewAuditLog(st, 0, quiet)
	r.audit.SetObserver(r.tel)
	cl, err := gitlab.New(gitlab.Config{URL: simSrv.URL, Token: "tok", RequestsPerMinute: 1 << 20, Audit: r.audit.Record})
	if err != nil {
		t.Fatal(err)
	}
	r.poller = &ingest.Poller{GitLab: cl, Store: st, Log: quiet, Observer: r.tel}
	return r
}

func (r *metricsRig) sync(t *testing.T) ingest.Result {
	t.Helper()
	res, err := r.poller.SyncAll(context.Background())
	if err == nil {
		err = res.Err()
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := r.audit.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	return res
}

// auditCount is how many GitLab calls the audit log holds.
func (r *metricsRig) auditCount(t *testing.T) int {
	t.Helper()
	n := 0
	f := store.AuditFilter{Limit: store.MaxLimit}
	for {
		page, err := r.st.ListAudit(context.Background(), f)
		if err != nil {
			t.Fatal(err)
		}
		n += len(page.Entries)
		if page.NextCursor == "" {
			return n
		}
		f.Cursor = page.NextCursor
	}
}

func postHook(t *testing.T, base, token, event, key, body string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/webhooks/gitlab", strings.NewReader(body))
	req.Header.Set("X-Gitlab-Token", token)
	if event != "" {
		req.Header.Set("X-Gitlab-Event", event)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestMetricsAfterSyncAndWebhooks(t *testing.T) {
	r := newMetricsRig(t)
	ctx := context.Background()

	// Before anything happened: the process and Go collectors, every
	// sync series at 0, and no store gauge before it is first read.
	fams, _ := scrape(t, r.api.URL)
	for _, name := range []string{"process_cpu_seconds_total", "go_goroutines"} {
		if fams[name] == nil {
			t.Errorf("%s missing", name)
		}
	}
	if n := len(series(fams, "labtrail_sync_runs_total")); n != 2*len(change.Kinds) {
		t.Errorf("labtrail_sync_runs_total: %d series before any sync, want %d (each kind and result at 0)", n, 2*len(change.Kinds))
	}
	for _, name := range []string{"labtrail_events", "labtrail_webhook_pending", "labtrail_gitlab_rate_limit_remaining"} {
		if fams[name] != nil {
			t.Errorf("%s present before it was known", name)
		}
	}
	for _, name := range []string{"labtrail_sync_runs_total", "labtrail_gitlab_requests_total", "labtrail_webhook_deliveries_total"} {
		if f := fams[name]; f != nil && f.GetType() != dto.MetricType_COUNTER {
			t.Errorf("%s is a %s", name, f.GetType())
		}
	}

	// A sync: one run per project and kind, every GitLab call counted.
	res := r.sync(t)
	fams, _ = scrape(t, r.api.URL)
	kinds := gitlab.SyncKinds()
	for _, k := range kinds {
		if v, _ := value(fams, "labtrail_sync_runs_total", map[string]string{"kind": string(k), "result": "success"}); v != float64(len(res.Projects)) {
			t.Errorf("sync runs of %s: %v successes, want %d", k, v, len(res.Projects))
		}
	}
	if v := total(fams, "labtrail_sync_runs_total", "result", "error"); v != 0 {
		t.Errorf("%v failed sync runs, want 0", v)
	}
	calls := r.auditCount(t)
	if v := total(fams, "labtrail_gitlab_requests_total", "", ""); v != float64(calls) || calls == 0 {
		t.Errorf("labtrail_gitlab_requests_total sums to %v; the audit log holds %d calls", v, calls)
	}
	if v := float64(r.sim.Stats().Requests); total(fams, "labtrail_gitlab_requests_total", "", "") != v {
		t.Errorf("labtrail_gitlab_requests_total sums to %v; the simulator served %v", total(fams, "labtrail_gitlab_requests_total", "", ""), v)
	}
	if v, ok := value(fams, "labtrail_gitlab_rate_limit_remaining", map[string]string{}); !ok || v <= 0 || v >= 1<<30 {
		t.Errorf("labtrail_gitlab_rate_limit_remaining = %v (present %v), want the simulator's remaining budget", v, ok)
	}

	// Counters move: a second sync of every project (none skipped as
	// quiet) adds one run per project and kind.
	r.poller.FullSweep = -1
	r.sync(t)
	fams2, _ := scrape(t, r.api.URL)
	for _, k := range kinds {
		before, _ := value(fams, "labtrail_sync_runs_total", map[string]string{"kind": string(k), "result": "success"})
		after, _ := value(fams2, "labtrail_sync_runs_total", map[string]string{"kind": string(k), "result": "success"})
		if after != before+float64(len(res.Projects)) {
			t.Errorf("sync runs of %s: %v then %v", k, before, after)
		}
	}
	if a, b := total(fams, "labtrail_gitlab_requests_total", "", ""), total(fams2, "labtrail_gitlab_requests_total", "", ""); b <= a {
		t.Errorf("GitLab requests did not move: %v then %v", a, b)
	}

	// Webhooks: the simulator's (some sent twice), and a few by hand.
	for range 3 {
		r.sim.Advance()
	}
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := r.sim.FlushWebhooks(fctx); err != nil {
		t.Fatal(err)
	}
	sent := r.sim.Deliveries()
	if sent.Acknowledged == 0 || sent.Duplicated == 0 {
		t.Fatalf("the simulator's webhooks: %+v; want some, some sent twice", sent)
	}
	const junk = "Made Up Hook 7f3a9c"
	if code := postHook(t, r.api.URL, "wrong", "Push Hook", "", `{}`); code != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d", code)
	}
	if code := postHook(t, r.api.URL, hookSecret, "", "", `{}`); code != http.StatusBadRequest {
		t.Fatalf("no event: %d", code)
	}
	if code := postHook(t, r.api.URL, hookSecret, "Push Hook", "", `[1]`); code != http.StatusBadRequest {
		t.Fatalf("not an object: %d", code)
	}
	for range 2 {
		if code := postHook(t, r.api.URL, hookSecret, junk, "junk-1", `{"object_kind":"made_up"}`); code != http.StatusOK {
			t.Fatalf("unknown event: %d", code)
		}
	}
	if err := r.tel.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	fams, body := scrape(t, r.api.URL)
	stored := total(fams, "labtrail_webhook_deliveries_total", "result", "stored")
	dups := total(fams, "labtrail_webhook_deliveries_total", "result", "duplicate")
	if want := float64(sent.Acknowledged) + 2; stored+dups != want {
		t.Errorf("stored %v + duplicate %v deliveries; %v were acknowledged", stored, dups, want)
	}
	if dups < float64(sent.Duplicated)+1 {
		t.Errorf("%v duplicates counted; the simulator sent %d twice, and one by hand", dups, sent.Duplicated)
	}
	if v := total(fams, "labtrail_webhook_deliveries_total", "result", "rejected"); v != 3 {
		t.Errorf("%v rejected deliveries, want 3", v)
	}
	for _, s := range series(fams, "labtrail_webhook_deliveries_total") {
		if ev := s.labels["event"]; ev != ingest.WebhookEventOther && !gitlab.KnownWebhookEvent(ev) {
			t.Errorf("unbounded event label %q", ev)
		}
	}
	if strings.Contains(body, junk) {
		t.Errorf("a sender's X-Gitlab-Event reached the metrics:\n%s", body)
	}
	if v, _ := value(fams, "labtrail_webhook_deliveries_total", map[string]string{"event": "other", "result": "stored"}); v != 1 {
		t.Errorf("unknown event stored once: %v", v)
	}
	// Stored, not converted yet: all pending.
	if v, ok := value(fams, "labtrail_webhook_pending", map[string]string{}); !ok || v != stored {
		t.Errorf("labtrail_webhook_pending = %v (present %v), want %v", v, ok, stored)
	}

	// Conversion: each stored delivery counted once more, by outcome.
	if err := r.conv.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.tel.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	fams, _ = scrape(t, r.api.URL)
	converted := 0.0
	for _, res := range []string{store.DeliveryProcessed, store.DeliveryFailed, store.DeliveryIgnored, store.DeliveryStoredRaw} {
		converted += total(fams, "labtrail_webhook_deliveries_total", "result", res)
	}
	if converted != stored {
		t.Errorf("%v deliveries converted, %v stored", converted, stored)
	}
	if v := total(fams, "labtrail_webhook_deliveries_total", "result", store.DeliveryProcessed); v == 0 {
		t.Error("no delivery counted processed")
	}
	if v, _ := value(fams, "labtrail_webhook_deliveries_total", map[string]string{"event": "other", "result": "stored_raw"}); v != 1 {
		t.Errorf("unknown event kept raw: %v", v)
	}
	if v, ok := value(fams, "labtrail_webhook_pending", map[string]string{}); !ok || v != 0 {
		t.Errorf("labtrail_webhook_pending = %v after conversion", v)
	}

	// The store gauges equal the store.
	for _, k := range change.Kinds {
		n, err := r.st.Count(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if v, ok := value(fams, "labtrail_events", map[string]string{"kind": string(k)}); !ok || v != float64(n) {
			t.Errorf("labtrail_events{kind=%q} = %v (present %v), want %d", k, v, ok, n)
		}
	}
	states, err := r.st.SyncStates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	oldest := map[string]time.Time{}
	for _, s := range states {
		if o, ok := oldest[s.ProjectPath]; !ok || s.LastSuccess.Before(o) {
			oldest[s.ProjectPath] = s.LastSuccess
		}
	}
	if got := len(series(fams, "labtrail_sync_last_success_timestamp_seconds")); got != len(res.Projects) {
		t.Errorf("%d last-success series for %d projects", got, len(res.Projects))
	}
	for _, p := range res.Projects {
		v, ok := value(fams, "labtrail_sync_last_success_timestamp_seconds", map[string]string{"project": p.Project.Path})
		want := float64(oldest[p.Project.Path].UnixNano()) / 1e9
		if !ok || math.Abs(v-want) > 1e-3 {
			t.Errorf("last success of %s: %v (present %v), want %v", p.Project.Path, v, ok, want)
		}
	}
}

// TestMetricsStoreGaugesRefreshInTheBackground: a scrape does not query
// the store; Run does, at once and then periodically.
func TestMetricsStoreGaugesRefreshInTheBackground(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "r.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tel := server.NewTelemetry(st, quiet)
	api := server.New(st, quiet)
	api.EnableTelemetry(tel)
	ts := httptest.NewServer(api)
	defer ts.Close()
	release := func(i int) change.Event {
		at := base.Add(time.Duration(i) * time.Hour)
		return change.Event{ID: change.ReleaseID(10, "v1."+string(rune('0'+i))), Kind: change.KindRelease, ProjectID: 10,
			ProjectPath: "acme/web", Title: "release", State: "released", CreatedAt: at, UpdatedAt: at, OccurredAt: at, Source: change.SourcePoll}
	}
	if _, err := st.Upsert(context.Background(), release(1)); err != nil {
		t.Fatal(err)
	}
	releases := func() (float64, bool) {
		fams, _ := scrape(t, ts.URL)
		return value(fams, "labtrail_events", map[string]string{"kind": "release"})
	}
	if _, ok := releases(); ok {
		t.Fatal("labtrail_events read on a scrape, before any refresh")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { tel.Run(ctx, 50*time.Millisecond); close(done) }()
	defer func() { cancel(); <-done }()
	waitFor := func(want float64) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if v, ok := releases(); ok && v == want {
				return
			}
			if time.Now().After(deadline) {
				v, ok := releases()
				t.Fatalf("labtrail_events{kind=release} = %v (present %v), want %v", v, ok, want)
			}
		}
	}
	waitFor(1)
	if _, err := st.Upsert(context.Background(), release(2), release(3)); err != nil {
		t.Fatal(err)
	}
	waitFor(3)
}

func TestMetricsDORAGauges(t *testing.T) {
	ts, st := setup(t)
	ts.Close()
	tel := server.NewTelemetry(st, quiet)
	api := server.New(st, quiet)
	api.EnableTelemetry(tel)
	srv := httptest.NewServer(api)
	defer srv.Close()
	f := func(v float64) *float64 { return &v }
	tel.SetDORA([]server.DORAGauge{
		{Project: "acme/web", Deployments: 12, LeadTimeMedianSeconds: f(3600), ChangeFailureRate: f(0.25), TimeToRestoreMedianSeconds: f(1800)},
		{Project: "acme/api", Deployments: 0}, // nothing measured: only the count
	})
	fams, body := scrape(t, srv.URL)
	for _, c := range []struct {
		name, project string
		want          float64
		present       bool
	}{
		{"labtrail_dora_deployments", "acme/web", 12, true},
		{"labtrail_dora_lead_time_median_seconds", "acme/web", 3600, true},
		{"labtrail_dora_change_failure_rate", "acme/web", 0.25, true},
		{"labtrail_dora_time_to_restore_median_seconds", "acme/web", 1800, true},
		{"labtrail_dora_deployments", "acme/api", 0, true},
		{"labtrail_dora_lead_time_median_seconds", "acme/api", 0, false},
		{"labtrail_dora_change_failure_rate", "acme/api", 0, false},
		{"labtrail_dora_time_to_restore_median_seconds", "acme/api", 0, false},
	} {
		v, ok := value(fams, c.name, map[string]string{"project": c.project})
		if ok != c.present || v != c.want {
			t.Errorf("%s{project=%q} = %v (present %v), want %v (present %v)", c.name, c.project, v, ok, c.want, c.present)
		}
	}
	if !strings.Contains(body, "# HELP labtrail_dora_lead_time_median_seconds") || !strings.Contains(body, "over the last 30 days") {
		t.Errorf("DORA HELP texts missing:\n%s", body)
	}
	// A new set replaces the old whole: a project left out has no series.
	tel.SetDORA([]server.DORAGauge{{Project: "acme/api", Deployments: 3, LeadTimeMedianSeconds: f(60)}})
	fams, _ = scrape(t, srv.URL)
	if _, ok := value(fams, "labtrail_dora_deployments", map[string]string{"project": "acme/web"}); ok {
		t.Error("acme/web's DORA series outlived the set it was in")
	}
	if v, ok := value(fams, "labtrail_dora_lead_time_median_seconds", map[string]string{"project": "acme/api"}); !ok || v != 60 {
		t.Errorf("acme/api lead time = %v (present %v)", v, ok)
	}
}

func TestMetricsRoute(t *testing.T) {
	ts, _ := setup(t) // a server without telemetry
	code, m := get(t, ts.URL+"/metrics")
	if code != http.StatusServiceUnavailable || m["error"] == nil {
		t.Errorf("/metrics without telemetry: %d %v", code, m)
	}
	resp, err := http.Post(ts.URL+"/metrics", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /metrics: %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
}
