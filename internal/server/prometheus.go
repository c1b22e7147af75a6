package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/store"
)

// DefaultTelemetryRefresh is how often Telemetry.Run reads the gauges that
// need a store query. A scrape never queries the store: counting a
// million events on every scrape would make /metrics the slowest
// endpoint.
const DefaultTelemetryRefresh = 30 * time.Second

// TelemetryStore is what Telemetry's background refresh reads.
type TelemetryStore interface {
	Count(ctx context.Context, kind change.Kind) (int, error)
	ListDeliveries(ctx context.Context, f store.DeliveryFilter) (store.DeliveryPage, error)
	Projects(ctx context.Context) ([]store.Project, error)
	SyncStates(ctx context.Context) ([]store.SyncState, error)
}

// Telemetry is labtrail's own operation as Prometheus metrics, on a
// registry of its own (never the global one, so nothing a library
// registers there leaks into /metrics): the process and Go collectors,
// counters the ways in move as things happen (it implements
// ingest.Observer), gauges read from the store by Run, and the DORA
// gauges SetDORA is handed. Serve it with Server.EnableTelemetry.
type Telemetry struct {
	st      TelemetryStore
	log     *slog.Logger
	reg     *prometheus.Registry
	handler http.Handler

	syncRuns       *prometheus.CounterVec
	gitlabRequests *prometheus.CounterVec
	rateRemaining  *prometheus.GaugeVec // no labels: absent until GitLab sends the header
	webhooks       *prometheus.CounterVec
	stored         *storedGauges
	dora           *doraGauges
}

// Sync run results (labtrail_sync_runs_total's result label).
const (
	SyncSuccess = "success"
	SyncError   = "error"
)

// NewTelemetry builds the registry; Run keeps its store gauges current.
func NewTelemetry(st TelemetryStore, log *slog.Logger) *Telemetry {
	if log == nil {
		log = slog.Default()
	}
	t := &Telemetry{
		st: st, log: log, reg: prometheus.NewRegistry(),
		syncRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "labtrail_sync_runs_total",
			Help: "Polls of one project and kind that ended, by kind and result (success or error).",
		}, []string{"kind", "result"}),
		gitlabRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "labtrail_gitlab_requests_total",
			Help: "HTTP requests to GitLab's API, retries included, by the status GitLab answered; 0 when no answer came (refused, timed out).",
		}, []string{"status"}),
		rateRemaining: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "labtrail_gitlab_rate_limit_remaining",
			Help: "RateLimit-Remaining of the last GitLab answer that sent one: requests left in GitLab's current rate-limit window.",
		}, nil),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "labtrail_webhook_deliveries_total",
			Help: "Webhook deliveries by X-Gitlab-Event (other for a type labtrail does not know) and result: on receipt stored, duplicate, rejected (4xx), busy or error (503); on conversion processed, failed, ignored or stored_raw.",
		}, []string{"event", "result"}),
		stored: &storedGauges{
			pending: prometheus.NewDesc("labtrail_webhook_pending",
				"Webhook deliveries stored and waiting for conversion (read from the store periodically).", nil, nil),
			events: prometheus.NewDesc("labtrail_events",
				"Events stored, by kind (read from the store periodically).", []string{"kind"}, nil),
			lastSuccess: prometheus.NewDesc("labtrail_sync_last_success_timestamp_seconds",
				"Unix time up to which all of an active project's history is stored: the oldest of its kinds' last successful polls, each dated by its start (read from the store periodically).",
				[]string{"project"}, nil),
		},
		dora: newDORAGauges(),
	}
	// Every kind and result from the start, so that a rate over the first
	// failure is not lost to a series that did not exist before it.
	for _, k := range change.Kinds {
		t.syncRuns.WithLabelValues(string(k), SyncSuccess)
		t.syncRuns.WithLabelValues(string(k), SyncError)
	}
	t.reg.MustRegister(
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector(),
		t.syncRuns, t.gitlabRequests, t.rateRemaining, t.webhooks, t.stored, t.dora,
	)
	// A collector that fails leaves out its series, not the whole answer.
	t.handler = promhttp.HandlerFor(t.reg, promhttp.HandlerOpts{
		ErrorLog: promLog{log}, ErrorHandling: promhttp.ContinueOnError,
	})
	return t
}

// Registry is the registry /metrics serves.
func (t *Telemetry) Registry() *prometheus.Registry { return t.reg }

// Handler serves the registry in Prometheus' exposition formats.
func (t *Telemetry) Handler() http.Handler { return t.handler }

// GitLabCall implements ingest.Observer.
func (t *Telemetry) GitLabCall(status, rateRemaining int) {
	if status < 100 || status > 599 {
		status = 0
	}
	t.gitlabRequests.WithLabelValues(strconv.Itoa(status)).Inc()
	if rateRemaining >= 0 {
		t.rateRemaining.WithLabelValues().Set(float64(rateRemaining))
	}
}

// SyncRun implements ingest.Observer.
func (t *Telemetry) SyncRun(project string, kind change.Kind, err error) {
	result := SyncSuccess
	if err != nil {
		result = SyncError
	}
	label := string(kind)
	if !kind.Valid() {
		label = "other"
	}
	t.syncRuns.WithLabelValues(label, result).Inc()
}

// webhookResults are the result label's values (ingest's receipt results
// and the delivery statuses a conversion records).
var webhookResults = map[string]bool{
	"stored": true, "duplicate": true, "rejected": true, "busy": true, "error": true,
	store.DeliveryProcessed: true, store.DeliveryFailed: true, store.DeliveryIgnored: true, store.DeliveryStoredRaw: true,
}

// Webhook implements ingest.Observer. event comes bounded from ingest
// (ingest.WebhookEventLabel); result is checked here.
func (t *Telemetry) Webhook(event, result string) {
	if !webhookResults[result] {
		result = "other"
	}
	t.webhooks.WithLabelValues(event, result).Inc()
}

// Run reads the store gauges now and then every every (0:
// DefaultTelemetryRefresh) until ctx ends. A read that fails keeps the
// values of the last that did, and is logged.
func (t *Telemetry) Run(ctx context.Context, every time.Duration) {
	t.repeat(ctx, every, DefaultTelemetryRefresh, t.Refresh,
		"metrics: reading the store gauges failed; they keep their last values")
}

// repeat runs refresh now and then every every (def when not positive),
// each run bounded by the period, until ctx ends; a run that fails is
// logged with failed and leaves the gauges as they were.
func (t *Telemetry) repeat(ctx context.Context, every, def time.Duration, refresh func(context.Context) error, failed string) {
	if every <= 0 {
		every = def
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, every)
		err := refresh(rctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			t.log.Warn(failed, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Refresh reads the gauges that need a store query: pending deliveries,
// events per kind, and each active project's last complete sync. Each
// that fails keeps its last value; the errors are returned joined.
func (t *Telemetry) Refresh(ctx context.Context) error {
	var errs []error
	if n, err := t.countPending(ctx); err != nil {
		errs = append(errs, fmt.Errorf("pending deliveries: %w", err))
	} else {
		t.stored.set(func(s *storedSnapshot) { s.pending = &n })
	}
	events := make(map[change.Kind]int, len(change.Kinds))
	var err error
	for _, k := range change.Kinds {
		if events[k], err = t.st.Count(ctx, k); err != nil {
			errs = append(errs, fmt.Errorf("events of kind %s: %w", k, err))
			break
		}
	}
	if err == nil {
		t.stored.set(func(s *storedSnapshot) { s.events = events })
	}
	if last, err := t.lastSuccesses(ctx); err != nil {
		errs = append(errs, fmt.Errorf("last syncs: %w", err))
	} else {
		t.stored.set(func(s *storedSnapshot) { s.lastSuccess = last })
	}
	return errors.Join(errs...)
}

// countPending pages through the pending deliveries (headers only, on
// the status index): few at any time, as the converter drains them.
func (t *Telemetry) countPending(ctx context.Context) (int, error) {
	n := 0
	f := store.DeliveryFilter{Status: store.DeliveryPending, Limit: store.MaxLimit}
	for {
		page, err := t.st.ListDeliveries(ctx, f)
		if err != nil {
			return 0, err
		}
		n += len(page.Deliveries)
		if page.NextCursor == "" || len(page.Deliveries) == 0 {
			return n, nil
		}
		f.Cursor = page.NextCursor
	}
}

// lastSuccesses is, per active project path, the oldest of its kinds'
// last successful polls: everything GitLab held at that time is stored.
// A project some kind of which has not synced successfully yet (of the
// kinds any project has synced) has none.
func (t *Telemetry) lastSuccesses(ctx context.Context) (map[string]float64, error) {
	ps, err := t.st.Projects(ctx)
	if err != nil {
		return nil, err
	}
	states, err := t.st.SyncStates(ctx)
	if err != nil {
		return nil, err
	}
	kinds := map[change.Kind]bool{}
	byProject := map[int64]map[change.Kind]time.Time{}
	for _, s := range states {
		if !s.Kind.Valid() {
			continue // not a kind the poller syncs (the environment URL callback's status)
		}
		kinds[s.Kind] = true
		if byProject[s.ProjectID] == nil {
			byProject[s.ProjectID] = map[change.Kind]time.Time{}
		}
		byProject[s.ProjectID][s.Kind] = s.LastSuccess
	}
	out := map[string]float64{}
	for _, p := range ps {
		if p.Status != store.ProjectActive && p.Status != "" {
			continue // gone or shut out: /api/v1/sync/status says why
		}
		got := byProject[p.ID]
		var oldest time.Time
		complete := len(got) == len(kinds) && len(kinds) > 0
		for _, at := range got {
			if at.IsZero() {
				complete = false
			}
			if oldest.IsZero() || at.Before(oldest) {
				oldest = at
			}
		}
		if complete {
			out[p.Path] = float64(oldest.UnixNano()) / 1e9
		}
	}
	return out, nil
}

// storedGauges exports the last snapshot Refresh read, all of it from
// one moment: a scrape never sees a half-replaced set.
type storedGauges struct {
	pending, events, lastSuccess *prometheus.Desc

	mu   sync.Mutex
	snap storedSnapshot
}

type storedSnapshot struct {
	pending     *int // nil until first read
	events      map[change.Kind]int
	lastSuccess map[string]float64
}

func (g *storedGauges) set(f func(*storedSnapshot)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	f(&g.snap)
}

func (g *storedGauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- g.pending
	ch <- g.events
	ch <- g.lastSuccess
}

func (g *storedGauges) Collect(ch chan<- prometheus.Metric) {
	g.mu.Lock()
	s := g.snap
	g.mu.Unlock()
	if s.pending != nil {
		ch <- prometheus.MustNewConstMetric(g.pending, prometheus.GaugeValue, float64(*s.pending))
	}
	for k, n := range s.events {
		ch <- prometheus.MustNewConstMetric(g.events, prometheus.GaugeValue, float64(n), string(k))
	}
	for p, at := range s.lastSuccess {
		ch <- prometheus.MustNewConstMetric(g.lastSuccess, prometheus.GaugeValue, at, p)
	}
}

// DORAGauge is one project's DORA figures over the last 30 days, as
// SetDORA exports them. A nil figure is unknown (no deployment, no
// change to measure): its series is left out, never exported as 0.
type DORAGauge struct {
	Project                    string // path_with_namespace
	Deployments                float64
	LeadTimeMedianSeconds      *float64
	ChangeFailureRate          *float64
	TimeToRestoreMedianSeconds *float64
}

// SetDORA replaces the DORA gauges with rows, one set per project (a
// project given twice keeps its last row); projects not in rows have
// none. Whoever computes the figures calls it whenever they change.
func (t *Telemetry) SetDORA(rows []DORAGauge) {
	byProject := make(map[string]DORAGauge, len(rows))
	for _, r := range rows {
		byProject[r.Project] = r
	}
	t.dora.mu.Lock()
	t.dora.rows = slices.Collect(maps.Values(byProject))
	t.dora.mu.Unlock()
}

// doraGauges exports the rows SetDORA was last given, all at once.
type doraGauges struct {
	deployments, leadTime, failureRate, restore *prometheus.Desc

	mu   sync.Mutex
	rows []DORAGauge
}

func newDORAGauges() *doraGauges {
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, []string{"project"}, nil)
	}
	return &doraGauges{
		deployments: desc("labtrail_dora_deployments",
			"Deployments to production over the last 30 days (DORA deployment frequency)."),
		leadTime: desc("labtrail_dora_lead_time_median_seconds",
			"Median lead time for changes over the last 30 days, in seconds: from a change's first commit to its deployment to production."),
		failureRate: desc("labtrail_dora_change_failure_rate",
			"Change failure rate over the last 30 days: the share (0 to 1) of deployments to production that caused a failure."),
		restore: desc("labtrail_dora_time_to_restore_median_seconds",
			"Median time to restore service over the last 30 days, in seconds: from a failed deployment to the one that restored production."),
	}
}

func (g *doraGauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- g.deployments
	ch <- g.leadTime
	ch <- g.failureRate
	ch <- g.restore
}

func (g *doraGauges) Collect(ch chan<- prometheus.Metric) {
	g.mu.Lock()
	rows := g.rows
	g.mu.Unlock()
	for _, r := range rows {
		ch <- prometheus.MustNewConstMetric(g.deployments, prometheus.GaugeValue, r.Deployments, r.Project)
		for _, f := range []struct {
			d *prometheus.Desc
			v *float64
		}{{g.leadTime, r.LeadTimeMedianSeconds}, {g.failureRate, r.ChangeFailureRate}, {g.restore, r.TimeToRestoreMedianSeconds}} {
			if f.v != nil {
				ch <- prometheus.MustNewConstMetric(f.d, prometheus.GaugeValue, *f.v, r.Project)
			}
		}
	}
}

// promLog passes promhttp's errors (a collector failing, a client gone
// mid-answer) to the server's log.
type promLog struct{ log *slog.Logger }

func (l promLog) Println(v ...any) { l.log.Warn("metrics: " + fmt.Sprint(v...)) }

// EnableTelemetry serves t at GET /metrics.
func (s *Server) EnableTelemetry(t *Telemetry) { s.telemetry = t.Handler() }

func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	if s.refuseRestricted(w, r, "the Prometheus metrics") {
		return
	}
	if s.telemetry == nil {
		writeError(w, http.StatusServiceUnavailable, "metrics are not set up on this server")
		return
	}
	s.telemetry.ServeHTTP(w, r)
}
