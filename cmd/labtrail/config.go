package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"
)

// config is labtrail's settings: environment variables (compatible with the
// connector labtrail grew from: GITLAB_TOKEN, GITLAB_URL, POLL_INTERVAL,
// REPOS), overridden by flags.
type config struct {
	GitLabURL         string
	Token             string
	PollInterval      time.Duration
	Repos             []string
	Groups            []string
	Branches          []string
	MaxProjects       int
	IncludeArchived   bool
	AuditRetention    time.Duration
	HTTPTimeout       time.Duration
	Concurrency       int
	GraphQL           string // LABTRAIL_GRAPHQL: gitlab.GraphQLAuto or gitlab.GraphQLOff
	WebhookSecrets    []string
	SigningSecrets    []string
	WebhookAllow      []netip.Prefix
	DB                string
	Addr              string
	RequestsPerMinute int
	LogLevel          slog.Level
	// JobTimeout bounds one background job; RescueAfter is how long a
	// job may stay running before it counts as a dead replica's and is
	// handed to another (zero: the job queue's defaults).
	JobTimeout  time.Duration
	RescueAfter time.Duration
	// FullSweep is how often every project is synced whatever its
	// activity; negative: every poll (no activity gating).
	FullSweep time.Duration
}

// loadDotEnv sets variables from a .env file in the working directory,
// leaving alone any already set in the environment (the real environment
// wins, as with every dotenv loader). A missing file is not an error.
func loadDotEnv(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, v, ok := strings.Cut(line, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return fmt.Errorf("%s:%d: expected KEY=VALUE", path, n)
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		} else if i := strings.Index(v, " #"); i >= 0 {
			v = strings.TrimSpace(v[:i])
		}
		if _, set := os.LookupEnv(k); !set {
			os.Setenv(k, v)
		}
	}
	return sc.Err()
}

func envOr(k, def string) string {
	if v, ok := os.LookupEnv(k); ok && strings.TrimSpace(v) != "" {
		return strings.TrimSpace(v)
	}
	return def
}

// splitList splits a comma-separated list, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// configFlags registers the shared flags on fs with defaults from the
// environment, and returns a function that builds the config after parsing.
func configFlags(fs *flag.FlagSet) func() (config, error) {
	url := fs.String("gitlab-url", envOr("GITLAB_URL", "https://gitlab.com"), "GitLab base URL (env GITLAB_URL)")
	interval := fs.String("poll-interval", envOr("POLL_INTERVAL", "300"), "seconds between polls (env POLL_INTERVAL)")
	repos := fs.String("repos", envOr("REPOS", ""), "comma-separated project paths or ids; empty: every project the token is a member of (env REPOS)")
	groups := fs.String("groups", envOr("GROUPS", ""), "comma-separated group paths or ids whose projects (subgroups included) are synced (env GROUPS)")
	branches := fs.String("branches", envOr("BRANCHES", ""), "comma-separated branches whose commits are synced; empty: each project's default branch (env BRANCHES)")
	maxProjects := fs.String("max-projects", envOr("LABTRAIL_MAX_PROJECTS", "100"), "most projects synced; a log line says when the cap bites (env LABTRAIL_MAX_PROJECTS)")
	archived := fs.String("include-archived", envOr("LABTRAIL_INCLUDE_ARCHIVED", "false"), "also sync archived projects (env LABTRAIL_INCLUDE_ARCHIVED)")
	auditDays := fs.String("audit-days", envOr("LABTRAIL_AUDIT_DAYS", "30"), "days the audit log of GitLab API calls is kept; 0 keeps it forever (env LABTRAIL_AUDIT_DAYS)")
	timeout := fs.String("http-timeout", envOr("LABTRAIL_HTTP_TIMEOUT", "30"), "seconds before one GitLab request is abandoned and retried (env LABTRAIL_HTTP_TIMEOUT)")
	concurrency := fs.String("concurrency", envOr("LABTRAIL_CONCURRENCY", "4"), "most GitLab requests in flight at once (env LABTRAIL_CONCURRENCY)")
	graphQL := fs.String("graphql", envOr("LABTRAIL_GRAPHQL", "auto"), "auto: merge request and pipeline details in batches from GitLab's GraphQL API, REST where it is not available; off: REST only (env LABTRAIL_GRAPHQL)")
	allow := fs.String("webhook-allow", envOr("LABTRAIL_WEBHOOK_ALLOW", ""), "comma-separated CIDRs webhooks may come from; empty: any (env LABTRAIL_WEBHOOK_ALLOW)")
	db := fs.String("db", envOr("LABTRAIL_DB", "labtrail.db"), "SQLite database file, or a postgres:// URL (env LABTRAIL_DB)")
	jobTimeout := fs.String("job-timeout", envOr("LABTRAIL_JOB_TIMEOUT", "600"), "seconds one background job (a project's sync) may run before it is cut off, to resume on its retry (env LABTRAIL_JOB_TIMEOUT)")
	rescueAfter := fs.String("rescue-after", envOr("LABTRAIL_RESCUE_AFTER", ""), "seconds a job may stay running before it counts as a dead replica's and another takes it; default job timeout + 300 (env LABTRAIL_RESCUE_AFTER)")
	addr := fs.String("addr", envOr("LABTRAIL_ADDR", "127.0.0.1:8080"), "HTTP listen address (env LABTRAIL_ADDR)")
	rpm := fs.String("requests-per-minute", envOr("LABTRAIL_REQUESTS_PER_MINUTE", "600"), "GitLab API requests per minute, per token (env LABTRAIL_REQUESTS_PER_MINUTE)")
	level := fs.String("log-level", envOr("LABTRAIL_LOG_LEVEL", "info"), "debug, info, warn or error (env LABTRAIL_LOG_LEVEL)")
	sweep := fs.String("full-sweep", envOr("LABTRAIL_FULL_SWEEP", "6h"), "how often every project is synced even without activity, e.g. 6h or 30m; 0: every poll (env LABTRAIL_FULL_SWEEP)")
	return func() (config, error) {
		c := config{GitLabURL: *url, Token: strings.TrimSpace(os.Getenv("GITLAB_TOKEN")), Repos: splitList(*repos),
			Groups: splitList(*groups), Branches: splitList(*branches), DB: *db, Addr: *addr}
		var err error
		if c.MaxProjects, err = strconv.Atoi(*maxProjects); err != nil || c.MaxProjects <= 0 {
			return c, fmt.Errorf("LABTRAIL_MAX_PROJECTS must be a positive whole number, got %q", *maxProjects)
		}
		if c.IncludeArchived, err = strconv.ParseBool(*archived); err != nil {
			return c, fmt.Errorf("LABTRAIL_INCLUDE_ARCHIVED must be true or false, got %q", *archived)
		}
		days, err := strconv.ParseFloat(*auditDays, 64)
		if err != nil || days < 0 {
			return c, fmt.Errorf("LABTRAIL_AUDIT_DAYS must be a number of days (0: keep forever), got %q", *auditDays)
		}
		c.AuditRetention = time.Duration(days * 24 * float64(time.Hour))
		to, err := strconv.ParseFloat(*timeout, 64)
		if err != nil || to <= 0 {
			return c, fmt.Errorf("LABTRAIL_HTTP_TIMEOUT must be a positive number of seconds, got %q", *timeout)
		}
		c.HTTPTimeout = time.Duration(to * float64(time.Second))
		if c.Concurrency, err = strconv.Atoi(*concurrency); err != nil || c.Concurrency <= 0 {
			return c, fmt.Errorf("LABTRAIL_CONCURRENCY must be a positive whole number, got %q", *concurrency)
		}
		switch c.GraphQL = strings.ToLower(strings.TrimSpace(*graphQL)); c.GraphQL {
		case "auto", "off":
		default:
			return c, fmt.Errorf("LABTRAIL_GRAPHQL must be auto or off, got %q", *graphQL)
		}
		// Secrets only from the environment, like the token: never in ps.
		c.WebhookSecrets = splitList(os.Getenv("LABTRAIL_WEBHOOK_SECRET"))
		c.SigningSecrets = splitList(os.Getenv("LABTRAIL_WEBHOOK_SIGNING_SECRET"))
		for _, a := range splitList(*allow) {
			p, err := netip.ParsePrefix(a)
			if err != nil {
				ip, ierr := netip.ParseAddr(a)
				if ierr != nil {
					return c, fmt.Errorf("LABTRAIL_WEBHOOK_ALLOW: %q is not a CIDR such as 10.0.0.0/8 or an address", a)
				}
				p = netip.PrefixFrom(ip, ip.BitLen())
			}
			c.WebhookAllow = append(c.WebhookAllow, p.Masked())
		}
		secs, err := strconv.ParseFloat(*interval, 64)
		if err != nil || secs <= 0 {
			return c, fmt.Errorf("POLL_INTERVAL must be a positive number of seconds, got %q", *interval)
		}
		c.PollInterval = time.Duration(secs * float64(time.Second))
		if c.RequestsPerMinute, err = strconv.Atoi(*rpm); err != nil || c.RequestsPerMinute <= 0 {
			return c, fmt.Errorf("LABTRAIL_REQUESTS_PER_MINUTE must be a positive whole number, got %q", *rpm)
		}
		if err := c.LogLevel.UnmarshalText([]byte(*level)); err != nil {
			return c, fmt.Errorf("LABTRAIL_LOG_LEVEL: %w", err)
		}
		if c.FullSweep, err = parseSweep(*sweep); err != nil {
			return c, err
		}
		jt, err := strconv.ParseFloat(*jobTimeout, 64)
		if err != nil || jt <= 0 {
			return c, fmt.Errorf("LABTRAIL_JOB_TIMEOUT must be a positive number of seconds, got %q", *jobTimeout)
		}
		c.JobTimeout = time.Duration(jt * float64(time.Second))
		if *rescueAfter != "" {
			ra, err := strconv.ParseFloat(*rescueAfter, 64)
			if err != nil || ra <= 0 {
				return c, fmt.Errorf("LABTRAIL_RESCUE_AFTER must be a positive number of seconds, got %q", *rescueAfter)
			}
			c.RescueAfter = time.Duration(ra * float64(time.Second))
			if c.RescueAfter <= c.JobTimeout {
				return c, fmt.Errorf("LABTRAIL_RESCUE_AFTER (%s) must be longer than LABTRAIL_JOB_TIMEOUT (%s): "+
					"a job still running on a live replica would be started again elsewhere", c.RescueAfter, c.JobTimeout)
			}
		}
		return c, nil
	}
}

// parseSweep reads LABTRAIL_FULL_SWEEP: a duration such as 6h, or 0 for
// "sync every project on every poll".
func parseSweep(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if v == "0" {
		return -1, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("LABTRAIL_FULL_SWEEP must be a duration such as 6h or 30m, or 0 for every poll; got %q", v)
	}
	if d == 0 {
		return -1, nil
	}
	return d, nil
}

// requireToken is the check serve, sync and check make before anything else.
func (c config) requireToken() error {
	if c.Token == "" {
		return errors.New("GITLAB_TOKEN not set: create a personal access token with the read_api scope and export GITLAB_TOKEN (or put it in .env)")
	}
	return nil
}
