package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/labtrail/labtrail/internal/gitlabsim"
	"github.com/labtrail/labtrail/internal/server"
)

// simFlags registers the simulator's world and behaviour flags.
func simFlags(fs *flag.FlagSet, activity time.Duration, rateLimit int) func() gitlabsim.Options {
	seed := fs.Int64("seed", 1, "random seed: the same seed builds the same world")
	projects := fs.Int("projects", 5, "number of projects")
	groups := fs.Int("groups", 2, "number of groups the projects are spread over")
	mrs := fs.Int("mrs", 300, "merge requests per project")
	pipelines := fs.Int("pipelines", 300, "pipelines per project")
	issues := fs.Int("issues", 0, "issues per project (0: a third of --mrs)")
	archived := fs.Int("archived", 0, "how many projects are archived")
	failRate := fs.Float64("fail-rate", 0, "share of API requests answered with a 5xx, e.g. 0.05")
	timeoutRate := fs.Float64("timeout-rate", 0, "share of API requests that hang for --hang")
	hang := fs.Duration("hang", 30*time.Second, "how long a --timeout-rate request hangs")
	hookURL := fs.String("webhook-url", "", "send GitLab webhooks for the simulated activity to this URL (e.g. http://127.0.0.1:8080/api/v1/webhooks/gitlab)")
	hookSecret := fs.String("webhook-secret", "", "X-Gitlab-Token sent with each webhook")
	signing := fs.String("webhook-signing-secret", "", "whsec_<base64> key: also sign webhooks (webhook-id, webhook-timestamp, webhook-signature)")
	drop := fs.Float64("webhook-drop", 0, "share of webhooks never sent, e.g. 0.1")
	dup := fs.Float64("webhook-duplicate", 0, "share of webhooks sent twice (same Idempotency-Key)")
	reorder := fs.Float64("webhook-reorder", 0, "share of webhooks sent after the next one")
	rate := fs.Int("rate-limit", rateLimit, "requests per minute before answering 429 (0: no limit; the headers then show GitLab.com's 2,000)")
	latency := fs.Duration("latency", 0, "delay added to every API answer, e.g. 50ms")
	act := fs.Duration("activity", activity, "advance the world (new and changed MRs and pipelines) this often; 0: never")
	return func() gitlabsim.Options {
		return gitlabsim.Options{
			Seed: *seed, Projects: *projects, Groups: *groups, MRs: *mrs, Pipelines: *pipelines,
			Issues: *issues, Archived: *archived, FailRate: *failRate, TimeoutRate: *timeoutRate, Hang: *hang,
			RateLimit: *rate, Latency: *latency, Activity: *act,
			WebhookURL: *hookURL, WebhookSecret: *hookSecret, SigningSecret: *signing,
			DropRate: *drop, DuplicateRate: *dup, ReorderRate: *reorder,
		}
	}
}

func runSim(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("sim", "sim [--addr HOST:PORT] [flags]", stderr)
	addr := fs.String("addr", "127.0.0.1:8081", "listen address")
	token := fs.String("token", "sim-token", "the token the simulator accepts (PRIVATE-TOKEN or Authorization: Bearer)")
	opts := simFlags(fs, 0, 0)
	build := useSettings(fs, listenerSettings)
	if err := parse(fs, args); err != nil {
		return err
	}
	c, err := build()
	if err != nil {
		return err
	}
	o := opts()
	o.Token = *token
	o.BaseURL = "http://" + *addr
	sim := gitlabsim.New(o)
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *addr, err)
	}
	fmt.Fprintf(stdout, "GitLab simulator on http://%s (token %q): try GITLAB_URL=http://%s GITLAB_TOKEN=%s labtrail sync --once\n",
		ln.Addr(), *token, ln.Addr(), *token)
	return serveUntilDone(ctx, ln, sim, c, func(ctx context.Context) { sim.Run(ctx) })
}

// serveUntilDone serves h on ln with c's timeouts (and runs bg beside it)
// until ctx ends.
func serveUntilDone(ctx context.Context, ln net.Listener, h http.Handler, c config, bg func(context.Context)) error {
	srv := server.NewHTTPServer(h, c.HTTP)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	if bg != nil {
		go bg(ctx)
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	shutdownHTTP(srv, c.ShutdownTimeout, slog.New(slog.DiscardHandler))
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", "demo [--dir DIR] [--addr HOST:PORT] [flags]", stderr)
	dir := fs.String("dir", "", "keep the demo database in this directory (default: a temporary directory, removed on exit)")
	interval := fs.Duration("poll-interval", 30*time.Second, "time between polls of the simulator")
	// The demo's GitLab is not throttled like GitLab.com, so the first
	// sync fills the page in seconds.
	opts := simFlags(fs, 20*time.Second, 1_000_000)
	build := useSettings(fs, serveSettings, listenerSettings, []*setting{logLevelSetting})
	if err := parse(fs, args); err != nil {
		return err
	}
	c, err := build()
	if err != nil {
		return err
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "labtrail-demo-")
		if err != nil {
			return fmt.Errorf("create demo directory: %w", err)
		}
		// Tens of megabytes nobody asked to keep: gone on exit, Ctrl-C
		// included (the signal ends ctx, and serve returns).
		defer func() {
			if err := os.RemoveAll(d); err != nil {
				fmt.Fprintf(stderr, "labtrail demo: remove %s: %v\n", d, err)
			}
		}()
		*dir = d
	} else if err := os.MkdirAll(*dir, 0o755); err != nil {
		return fmt.Errorf("create demo directory: %w", err)
	}
	c.Token, c.PollInterval, c.DB = "sim-token", *interval, filepath.Join(*dir, "labtrail.db")
	c.RequestsPerMinute, c.MaxProjects, c.AuditRetention = 100_000, 100, 7*24*time.Hour
	c.HTTPTimeout, c.Concurrency = 30*time.Second, 4
	o := opts()
	o.Token = c.Token
	simLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("start simulator: %w", err)
	}
	c.GitLabURL = "http://" + simLn.Addr().String()
	o.BaseURL = c.GitLabURL
	// Both ways in: the simulated GitLab also sends its activity as
	// webhooks, which the poller then checks.
	if o.WebhookURL == "" {
		c.WebhookSecrets = []string{"demo-webhook-secret"}
		o.WebhookURL, o.WebhookSecret = "http://"+c.Addr+"/api/v1/webhooks/gitlab", c.WebhookSecrets[0]
	}
	sim := gitlabsim.New(o)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	simDone := make(chan error, 1)
	go func() { simDone <- serveUntilDone(ctx, simLn, sim, c, func(ctx context.Context) { sim.Run(ctx) }) }()
	log := newLogger(stderr, c.LogLevel)
	err = serve(ctx, c, log, func(url string) {
		fmt.Fprintf(stdout, "labtrail demo: simulated GitLab at %s, data in %s\n", c.GitLabURL, c.DB)
		fmt.Fprintf(stdout, "Open %s  (API: %sapi/v1/events). Ctrl-C stops.\n", url, url)
	})
	cancel()
	<-simDone
	return err
}
