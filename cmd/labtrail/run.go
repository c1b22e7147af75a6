package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/labtrail/labtrail/internal/gitlab"
	"github.com/labtrail/labtrail/internal/ingest"
	"github.com/labtrail/labtrail/internal/jobs"
	"github.com/labtrail/labtrail/internal/metrics"
	"github.com/labtrail/labtrail/internal/server"
	"github.com/labtrail/labtrail/internal/store"
)

func newClient(c config, log *slog.Logger, audit func(gitlab.AuditRecord)) (*gitlab.Client, error) {
	cl, err := gitlab.New(gitlab.Config{
		URL: c.GitLabURL, Token: c.Token, RequestsPerMinute: c.RequestsPerMinute, Logger: log,
		Timeout: c.HTTPTimeout, Concurrency: c.Concurrency, Audit: audit, GraphQL: c.GraphQL,
	})
	if errors.Is(err, gitlab.ErrBadURL) {
		return nil, fmt.Errorf("GITLAB_URL: %w", err)
	}
	return cl, err
}

func runCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("check", "check [flags]", stderr)
	build := useSettings(fs, []*setting{gitlabURLSetting, tokenSetting, httpTimeoutSetting, logLevelSetting, environmentCallbackSetting})
	if err := parse(fs, args); err != nil {
		return err
	}
	c, err := build()
	if err != nil {
		return err
	}
	if err := c.requireToken(); err != nil {
		return err
	}
	gl, err := newClient(c, newLogger(stderr, c.LogLevel), nil)
	if err != nil {
		return err
	}
	id, err := gl.Check(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "GitLab %s (revision %s) at %s\n", id.Version, id.Revision, c.GitLabURL)
	fmt.Fprintf(stdout, "Authenticated as @%s (%s, id %d)\n", id.Username, id.Name, id.ID)
	if len(id.Scopes) > 0 {
		fmt.Fprintf(stdout, "Token scopes: %s\n", strings.Join(id.Scopes, ", "))
	}
	return checkCallbackScope(c, id.Scopes, stdout)
}

func runSync(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("sync", "sync [--once] [flags]", stderr)
	once := fs.Bool("once", false, "sync once and exit (exit code 0 only if every project synced)")
	full := fs.Bool("full", false, "sync every project, also those with no activity since their last sync")
	build := useSettings(fs, gitlabSettings, selectionSettings, syncSettings, []*setting{logLevelSetting, dynamoRetentionSetting})
	if err := parse(fs, args); err != nil {
		return err
	}
	c, err := build()
	if err != nil {
		return err
	}
	if err := c.requireToken(); err != nil {
		return err
	}
	log := newLogger(stderr, c.LogLevel)
	if err := checkBeforeCreate(ctx, c, log, false); err != nil {
		return err
	}
	st, err := openCore(ctx, c.DB, c.Export.Retention)
	if err != nil {
		return err
	}
	defer st.Close()
	audit, stopAudit := startAudit(ctx, c, st, log)
	defer stopAudit()
	gl, err := newClient(c, log, audit.Record)
	if err != nil {
		return err
	}
	p := c.poller(gl, st, log)
	p.Progress = progressPrinter(stderr, gl.Requests, gl.HeldByBudgetSince, c.RequestsPerMinute)
	if *full {
		p.FullSweep = -1
	}
	for {
		res, err := p.SyncAll(ctx)
		printCounts(stdout, res, err)
		if err == nil {
			err = res.Err()
		}
		fmt.Fprintf(stdout, "%d API requests in %s\n", gl.Requests(), res.Duration.Round(time.Millisecond))
		if *once {
			return err
		}
		if err != nil {
			log.Error("sync failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(c.PollInterval):
		}
	}
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve", "serve [flags]", stderr)
	build := useSettings(fs, gitlabSettings, selectionSettings, syncSettings, webhookSettings, jobSettings,
		serveSettings, listenerSettings, []*setting{logLevelSetting}, archiveSettings, secretKeySettings, digestSettings, digestScheduleSettings)
	if err := parse(fs, args); err != nil {
		return err
	}
	c, err := build()
	if err != nil {
		return err
	}
	if err := c.requireToken(); err != nil {
		return err
	}
	return serve(ctx, c, newLogger(stderr, c.LogLevel), func(url string) {
		fmt.Fprintf(stdout, "labtrail serving on %s\n", url)
	})
}

// serve runs the poller on River, the webhook converter and the HTTP API
// until ctx ends.
func serve(ctx context.Context, c config, log *slog.Logger, ready func(url string)) error {
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (set LABTRAIL_ADDR or --addr to another address)", c.Addr, err)
	}
	defer ln.Close()
	if err := checkBeforeCreate(ctx, c, log, true); err != nil {
		return err
	}
	db, err := openForServe(ctx, c.DB)
	if err != nil {
		return err
	}
	defer db.Close()
	st := db.Store
	// labtrail's own metrics, served at /metrics: the ways in report to
	// it as things happen; its store gauges are read in the background.
	tel := server.NewTelemetry(st, log)
	telCtx, stopTel := context.WithCancel(ctx)
	telDone := make(chan struct{})
	delivery := metrics.New(st, c.Metrics)
	go func() { tel.Run(telCtx, 0); close(telDone) }()
	doraDone := make(chan struct{})
	go func() { tel.RunDORA(telCtx, delivery, 0); close(doraDone) }()
	defer func() { stopTel(); <-telDone; <-doraDone }() // before the store closes
	audit, stopAudit := startAudit(ctx, c, st, log)
	defer stopAudit()
	audit.SetObserver(tel)
	gl, err := newClient(c, log, audit.Record)
	if err != nil {
		return err
	}
	poller := c.poller(gl, st, log)
	poller.Observer = tel
	// Webhook deliveries are converted in batches on a goroutine of their
	// own, never behind the syncs River runs; the queue schedules the
	// syncs the deliveries ask for.
	conv := &ingest.Converter{Store: st, Branches: c.Branches, Selection: poller.Selection, Log: log, Batch: c.ConvertBatch,
		Observer: tel}
	tasks, err := archiveTasks(ctx, c, st, log)
	if err != nil {
		return err
	}
	conns, stopConns, err := startConnections(ctx, c, st, conv, audit.Record, tel, log)
	if err != nil {
		return err
	}
	defer stopConns()
	dg, err := c.scheduledDigest(st, log)
	if err != nil {
		return err
	}
	qc := jobs.Config{Poller: poller, Interval: c.PollInterval, Log: log,
		JobTimeout: c.JobTimeout, RescueAfter: c.RescueAfter, ID: replicaID(), Converter: conv, Tasks: tasks,
		EnvironmentURLs: environmentURLs(c, gl), Digest: dg}
	if conns != nil {
		// The added connections are synced on the queue too: once per
		// interval across the replicas, not by each.
		qc.Connections = conns.queueJobs()
	}
	q, err := db.newQueue(ctx, qc)
	if err != nil {
		return err
	}
	if conns != nil {
		conns.useQueue(q)
	}
	conv.Heal = q
	if err := q.Start(ctx); err != nil {
		return fmt.Errorf("start job queue: %w", err)
	}
	convCtx, stopConv := context.WithCancel(context.WithoutCancel(ctx))
	defer stopConv()
	convDone := make(chan struct{})
	go func() { conv.Run(convCtx); close(convDone) }()
	api := server.New(st, log)
	if conns != nil {
		api.EnableConnections(conns)
	}
	api.EnableTelemetry(tel)
	api.EnableMetrics(delivery)
	if err := enableAuth(ctx, api, st, &c, log); err != nil {
		return err
	}
	if c.EnvironmentCallback {
		api.OnDeploymentReported(environmentCallback(q))
	}
	api.SetHints(server.Hints{
		Webhooks:    "webhooks are not set up: set LABTRAIL_WEBHOOK_SECRET to the webhook's Secret token",
		WebhookTest: "webhook test needs LABTRAIL_WEBHOOK_SECRET and LABTRAIL_WEBHOOK_URL (labtrail's webhook address as GitLab reaches it)",
	})
	if len(c.WebhookSecrets) > 0 {
		wh, err := ingest.NewWebhookHandler(ingest.WebhookConfig{
			Secrets: c.WebhookSecrets, SigningSecrets: c.SigningSecrets, Allow: c.WebhookAllow,
			Memory: c.WebhookMemory,
		}, st, conv, log)
		if err != nil {
			return fmt.Errorf("LABTRAIL_WEBHOOK_SIGNING_SECRET: %w", err)
		}
		wh.SetObserver(tel)
		api.EnableWebhooks(wh, conv.Replay)
		if c.WebhookURL != "" {
			api.EnableWebhookTest(hookTest(gl, poller.Selection, c.WebhookURL))
		}
	} else {
		log.Info("webhooks off: set LABTRAIL_WEBHOOK_SECRET to receive GitLab webhooks; polling alone keeps the history")
	}
	srv := api.HTTPServer(c.HTTP)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("labtrail started", "addr", ln.Addr().String(), "gitlab", c.GitLabURL, "db", displayDB(c.DB), "poll_interval", c.PollInterval)
	if ready != nil {
		ready("http://" + ln.Addr().String() + "/")
	}
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	// First no new requests, and those in flight answered; then the
	// deliveries they stored are converted, and the jobs finished, within
	// the queue's shutdown time. Whatever is left stays pending (or
	// queued) for the next start.
	shutdownHTTP(srv, c.ShutdownTimeout, log)
	qctx, cancel := context.WithTimeout(context.Background(), orDefault(c.QueueShutdownTimeout, 15*time.Second))
	defer cancel()
	stopConv()
	<-convDone
	if cerr := conv.Drain(qctx); cerr != nil {
		log.Warn("webhook deliveries left pending at shutdown; they are converted on the next start", "err", cerr)
	}
	if qerr := q.Stop(qctx); qerr != nil {
		log.Warn("job queue stopped before its running jobs finished; they resume on the next start", "err", qerr)
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// shutdownHTTP stops srv, waiting up to timeout (default 10s) for the
// requests in flight, then closing what is left.
func shutdownHTTP(srv *http.Server, timeout time.Duration, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), orDefault(timeout, 10*time.Second))
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Warn("HTTP requests still in flight at shutdown were cut off", "err", err)
		_ = srv.Close()
	}
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// hookTest is what POST /api/v1/webhooks/test runs: a test event through
// each selected project's webhook to url.
func hookTest(gl *gitlab.Client, sel gitlab.Selection, url string) func(context.Context) ([]server.HookTestResult, error) {
	return func(ctx context.Context) ([]server.HookTestResult, error) {
		list, err := gl.SelectProjects(ctx, sel)
		if err != nil {
			return nil, err
		}
		var out []server.HookTestResult
		for _, r := range ingest.TestHooks(ctx, gl, list.Projects, url) {
			out = append(out, server.HookTestResult(r))
		}
		return out, nil
	}
}

// poller builds the poller the config describes.
func (c config) poller(gl *gitlab.Client, st ingest.ProcessStore, log *slog.Logger) *ingest.Poller {
	return &ingest.Poller{
		GitLab: gl, Store: st, Log: log, Branches: c.Branches,
		Selection: gitlab.Selection{Repos: c.Repos, Groups: c.Groups, IncludeArchived: c.IncludeArchived, Max: c.MaxProjects},
		FullSweep: c.FullSweep,
		Sweep:     c.Sweep,
	}
}

// startAudit runs the audit log of GitLab calls beside a command. Its stop
// writes what is still buffered, even after ctx was cancelled by a signal.
func startAudit(ctx context.Context, c config, st store.AuditStore, log *slog.Logger) (*ingest.AuditLog, func()) {
	audit := ingest.NewAuditLog(st, c.AuditRetention, log)
	actx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() { audit.Run(actx); close(done) }()
	return audit, func() { cancel(); <-done }
}
