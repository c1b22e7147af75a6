package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/labtrail/labtrail/internal/digest"
	"github.com/labtrail/labtrail/internal/metrics"
	"github.com/labtrail/labtrail/internal/server"
)

// config is labtrail's settings: environment variables (compatible with the
// connector labtrail grew from: GITLAB_TOKEN, GITLAB_URL, POLL_INTERVAL,
// REPOS), overridden by flags. The settings table below is the one place
// that reads them; each command registers only the settings it uses.
type config struct {
	GitLabURL       string
	Token           string
	PollInterval    time.Duration
	Repos           []string
	Groups          []string
	Branches        []string
	MaxProjects     int
	IncludeArchived bool
	AuditRetention  time.Duration
	HTTPTimeout     time.Duration
	Concurrency     int
	GraphQL         string // gitlab.GraphQLAuto or gitlab.GraphQLOff
	WebhookSecrets  []string
	SigningSecrets  []string
	WebhookAllow    []netip.Prefix
	WebhookURL      string // labtrail's webhook address as GitLab reaches it
	ConvertBatch    int    // deliveries converted in one transaction
	WebhookMemory   int64  // bytes of webhook payloads held at once
	DB              string
	Addr            string
	// Auth is LABTRAIL_AUTH: "on", "off", or "" (on unless Addr is a
	// loopback address). MetricsPublic leaves GET /metrics open.
	Auth              string
	MetricsPublic     bool
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
	// Sweep is how often quiet projects are asked, by GraphQL, which kinds
	// changed; negative: never.
	Sweep time.Duration
	// HTTP bounds the clients of every listener; zero fields: the
	// server's defaults.
	HTTP server.Timeouts
	// ShutdownTimeout is how long requests in flight may take to finish
	// on shutdown; QueueShutdownTimeout, then, running jobs.
	ShutdownTimeout      time.Duration
	QueueShutdownTimeout time.Duration
	// Metrics are the team's conventions the delivery metrics read.
	Metrics metrics.Config
	// Export is the S3 export's and retention's (exports.go).
	Export exportConfig
	// EnvironmentCallback is LABTRAIL_ENVIRONMENT_CALLBACK: set the GitLab
	// environment's external URL to what a reported deployment deployed.
	EnvironmentCallback bool
	// Digest is where digests go and when (docs/digests.md).
	Digest digestConfig
	// SecretKey(File) is the key connection secrets are sealed under;
	// OldSecretKey(File) the one they were, for labtrail secrets rotate.
	SecretKey, SecretKeyFile       string
	OldSecretKey, OldSecretKeyFile string
	// Signing in with GitLab (LABTRAIL_OAUTH_CLIENT_ID and _SECRET), the
	// address browsers reach labtrail at, and the GitLab usernames that
	// are admins.
	OAuthClientID, OAuthClientSecret string
	PublicURL                        string
	Admins                           []string
	// connectionsReconcile is how often serve compares the connections it
	// runs with the stored ones; zero: 15s. Tests shorten it; no setting
	// reads it.
	connectionsReconcile time.Duration
}

// digestConfig is the digests' settings.
type digestConfig struct {
	// Location is LABTRAIL_DIGEST_TZ, where days and weeks begin.
	Location *time.Location
	// SlackURL and WebhookURL are the destinations' URLs (secrets).
	SlackURL, WebhookURL string
	// Schedule is LABTRAIL_DIGEST_SCHEDULE (a cron expression; empty: no
	// scheduled digest), of Period, over Projects and Group.
	Schedule cron.Schedule
	Spec     string
	Period   digest.Period
	Projects []string
	Group    string
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

// A setting is one of labtrail's configuration values: the flag and the
// environment variable that set it, its default, and how its text becomes
// part of the config.
type setting struct {
	flag string // empty: from the environment only (secrets: ps shows flags)
	env  string
	also string // an older variable, read when env is not set
	def  string
	typ  string // what --help shows the value as
	help string
	set  func(c *config, v string) error // its error says what v must be
	// show, if set, is how --help shows a value (a URL's password masked).
	show func(string) string
}

// Settings, in the groups commands use them.
var (
	gitlabSettings = []*setting{
		{flag: "gitlab-url", env: "GITLAB_URL", def: "https://gitlab.com", typ: "url", help: "GitLab base URL",
			set: text(func(c *config) *string { return &c.GitLabURL })},
		{env: "GITLAB_TOKEN", help: "GitLab personal access token (read_api scope; api for labtrail hooks install)",
			set: text(func(c *config) *string { return &c.Token })},
		httpTimeoutSetting,
		{flag: "requests-per-minute", env: "LABTRAIL_REQUESTS_PER_MINUTE", def: "600", typ: "int",
			help: "GitLab API requests per minute, per token", set: positive(func(c *config) *int { return &c.RequestsPerMinute })},
		{flag: "concurrency", env: "LABTRAIL_CONCURRENCY", def: "4", typ: "int",
			help: "most GitLab requests in flight at once", set: positive(func(c *config) *int { return &c.Concurrency })},
		{flag: "graphql", env: "LABTRAIL_GRAPHQL", def: "auto", typ: "string",
			help: "auto: merge request and pipeline details in batches from GitLab's GraphQL API, REST where it is not available; off: REST only",
			set: func(c *config, v string) error {
				switch c.GraphQL = strings.ToLower(v); c.GraphQL {
				case "auto", "off":
					return nil
				}
				return errors.New("must be auto or off")
			}},
	}
	httpTimeoutSetting = &setting{flag: "http-timeout", env: "LABTRAIL_HTTP_TIMEOUT", def: "30s", typ: "duration",
		help: "time before one GitLab request is abandoned and retried", set: duration(func(c *config) *time.Duration { return &c.HTTPTimeout })}
	gitlabURLSetting, tokenSetting = gitlabSettings[0], gitlabSettings[1]

	selectionSettings = []*setting{
		{flag: "repos", env: "REPOS", typ: "list", help: "comma-separated project paths or ids; empty: every project the token is a member of",
			set: list(func(c *config) *[]string { return &c.Repos })},
		// GROUPS is a variable of bash's own, which ignores assignments to
		// it: only LABTRAIL_GROUPS can be set from a shell.
		{flag: "groups", env: "LABTRAIL_GROUPS", also: "GROUPS", typ: "list",
			help: "comma-separated group paths or ids whose projects (subgroups included) are synced",
			set:  list(func(c *config) *[]string { return &c.Groups })},
		{flag: "max-projects", env: "LABTRAIL_MAX_PROJECTS", def: "100", typ: "int",
			help: "most projects synced; a log line says when the cap bites", set: positive(func(c *config) *int { return &c.MaxProjects })},
		{flag: "include-archived", env: "LABTRAIL_INCLUDE_ARCHIVED", def: "false", typ: "bool", help: "also sync archived projects",
			set: func(c *config, v string) (err error) {
				if c.IncludeArchived, err = strconv.ParseBool(v); err != nil {
					return errors.New("must be true or false")
				}
				return nil
			}},
	}

	// syncSettings are what syncing needs beside GitLab and the selection.
	syncSettings = []*setting{
		{flag: "branches", env: "BRANCHES", typ: "list", help: "comma-separated branches whose commits are synced; empty: each project's default branch",
			set: list(func(c *config) *[]string { return &c.Branches })},
		{flag: "poll-interval", env: "POLL_INTERVAL", def: "5m", typ: "duration", help: "time between polls, e.g. 5m (a bare number is seconds)",
			set: duration(func(c *config) *time.Duration { return &c.PollInterval })},
		{flag: "full-sweep", env: "LABTRAIL_FULL_SWEEP", def: "6h", typ: "duration",
			help: "how often every project is synced even without activity, e.g. 6h or 30m; 0: every poll",
			set: func(c *config, v string) (err error) {
				c.FullSweep, err = parseSweep(v)
				return err
			}},
		{flag: "sweep", env: "LABTRAIL_SWEEP", def: "15m", typ: "duration",
			help: "how often quiet projects are asked through GraphQL, many per request, which kinds changed (only those are synced), e.g. 15m; 0: never",
			set: func(c *config, v string) (err error) {
				if c.Sweep, err = parseSweep(v); err != nil {
					return errors.New("must be a duration such as 15m, or 0 for never")
				}
				return nil
			}},
		{flag: "audit-days", env: "LABTRAIL_AUDIT_DAYS", def: "30", typ: "float", help: "days the audit log of GitLab API calls is kept; 0 keeps it forever",
			set: func(c *config, v string) error {
				days, err := strconv.ParseFloat(v, 64)
				if err != nil || days < 0 {
					return errors.New("must be a number of days (0: keep forever)")
				}
				c.AuditRetention = time.Duration(days * 24 * float64(time.Hour))
				return nil
			}},
		dbSetting,
	}
	dbSetting = &setting{flag: "db", env: "LABTRAIL_DB", def: "labtrail.db", typ: "string", help: "SQLite database file, or a postgres:// URL, or dynamodb://TABLE (sync, migrate and tokens only)",
		set: text(func(c *config) *string { return &c.DB }), show: displayDB}

	webhookSecretSetting = &setting{env: "LABTRAIL_WEBHOOK_SECRET", typ: "list",
		help: "the webhook's Secret token (comma-separated during a rotation, current first); turns webhooks on",
		set:  list(func(c *config) *[]string { return &c.WebhookSecrets })}
	webhookURLSetting = &setting{flag: "webhook-url", env: "LABTRAIL_WEBHOOK_URL", typ: "url",
		help: "labtrail's webhook endpoint as GitLab reaches it, e.g. https://labtrail.example.com/api/v1/webhooks/gitlab",
		set:  webhookURL(func(c *config) *string { return &c.WebhookURL }, "https://labtrail.example.com/api/v1/webhooks/gitlab")}
	webhookSettings = []*setting{
		webhookSecretSetting,
		{env: "LABTRAIL_WEBHOOK_SIGNING_SECRET", typ: "list", help: "whsec_<base64> keys: also require GitLab's signed webhooks",
			set: list(func(c *config) *[]string { return &c.SigningSecrets })},
		{flag: "webhook-allow", env: "LABTRAIL_WEBHOOK_ALLOW", typ: "list", help: "comma-separated CIDRs webhooks may come from; empty: any",
			set: func(c *config, v string) error {
				c.WebhookAllow = nil
				for _, a := range splitList(v) {
					p, err := netip.ParsePrefix(a)
					if err != nil {
						ip, ierr := netip.ParseAddr(a)
						if ierr != nil {
							return fmt.Errorf("%q is not a CIDR such as 10.0.0.0/8 or an address", a)
						}
						p = netip.PrefixFrom(ip, ip.BitLen())
					}
					c.WebhookAllow = append(c.WebhookAllow, p.Masked())
				}
				return nil
			}},
		webhookURLSetting,
		{flag: "convert-batch", env: "LABTRAIL_CONVERT_BATCH", def: "256", typ: "int",
			help: "webhook deliveries converted into events in one transaction",
			set:  positive(func(c *config) *int { return &c.ConvertBatch })},
		{flag: "webhook-memory", env: "LABTRAIL_WEBHOOK_MEMORY", def: "64MiB", typ: "size",
			help: "bytes of webhook payloads held in memory at once (e.g. 64MiB, 100MB); larger bursts wait, then get 503 so GitLab retries",
			set: func(c *config, v string) error {
				n, err := parseSize(v)
				if err != nil || n < 1<<20 {
					return errors.New("must be a size of at least 1MiB such as 64MiB or 100MB (a bare number is bytes)")
				}
				c.WebhookMemory = n
				return nil
			}},
	}

	jobSettings = []*setting{
		{flag: "job-timeout", env: "LABTRAIL_JOB_TIMEOUT", def: "10m", typ: "duration",
			help: "time one background job (a project's sync) may run before it is cut off, to resume on its retry (a bare number is seconds)",
			set:  duration(func(c *config) *time.Duration { return &c.JobTimeout })},
		{flag: "rescue-after", env: "LABTRAIL_RESCUE_AFTER", typ: "duration",
			help: "time a job may stay running before it counts as a dead replica's and another takes it; default job timeout + 5m",
			set:  duration(func(c *config) *time.Duration { return &c.RescueAfter })},
		{flag: "queue-shutdown-timeout", env: "LABTRAIL_QUEUE_SHUTDOWN_TIMEOUT", def: "15s", typ: "duration",
			help: "on shutdown, after the HTTP server's, how long running jobs may take to finish (one cut off resumes on the next start)",
			set:  duration(func(c *config) *time.Duration { return &c.QueueShutdownTimeout })},
	}

	addrSetting = &setting{flag: "addr", env: "LABTRAIL_ADDR", def: "127.0.0.1:8080", typ: "address", help: "HTTP listen address",
		set: text(func(c *config) *string { return &c.Addr })}
	// listenerSettings bound the clients of every listener labtrail opens.
	listenerSettings = []*setting{
		{flag: "read-header-timeout", env: "LABTRAIL_READ_HEADER_TIMEOUT", def: server.DefaultReadHeaderTimeout.String(), typ: "duration",
			help: "longest a client may take to send a request's headers",
			set:  duration(func(c *config) *time.Duration { return &c.HTTP.ReadHeader })},
		{flag: "read-timeout", env: "LABTRAIL_READ_TIMEOUT", def: server.DefaultReadTimeout.String(), typ: "duration",
			help: "longest a client may take to send a whole request, headers and body",
			set:  duration(func(c *config) *time.Duration { return &c.HTTP.Read })},
		{flag: "write-timeout", env: "LABTRAIL_WRITE_TIMEOUT", def: server.DefaultWriteTimeout.String(), typ: "duration",
			help: "longest from the end of a request's headers to the end of its answer",
			set:  duration(func(c *config) *time.Duration { return &c.HTTP.Write })},
		{flag: "idle-timeout", env: "LABTRAIL_IDLE_TIMEOUT", def: server.DefaultIdleTimeout.String(), typ: "duration",
			help: "how long a kept-alive connection waits for its next request",
			set:  duration(func(c *config) *time.Duration { return &c.HTTP.Idle })},
		{flag: "shutdown-timeout", env: "LABTRAIL_SHUTDOWN_TIMEOUT", def: "10s", typ: "duration",
			help: "on shutdown, how long requests in flight may take to finish",
			set:  duration(func(c *config) *time.Duration { return &c.ShutdownTimeout })},
	}
	// serveSettings are the API server's own.
	serveSettings = []*setting{
		addrSetting,
		{flag: "auth", env: "LABTRAIL_AUTH", typ: "on|off",
			help: "access control: API tokens and sign-in (docs/security.md); default on, or off when --addr is a loopback address",
			set: func(c *config, v string) error {
				switch v = strings.ToLower(strings.TrimSpace(v)); v {
				case "", "on", "off":
					c.Auth = v
					return nil
				}
				return errors.New("must be on or off")
			}},
		{flag: "metrics-public", env: "LABTRAIL_METRICS_PUBLIC", def: "true", typ: "bool",
			help: "with access control on, serve GET /metrics to anyone (false: to read tokens only)",
			set:  boolean(func(c *config) *bool { return &c.MetricsPublic })},
		{flag: "webhook-read-timeout", env: "LABTRAIL_WEBHOOK_READ_TIMEOUT", def: server.DefaultWebhookReadTimeout.String(), typ: "duration",
			help: "longest GitLab may take to send one webhook's body (up to 25 MB), instead of --read-timeout",
			set:  duration(func(c *config) *time.Duration { return &c.HTTP.WebhookRead })},
		{flag: "production-environments", env: "LABTRAIL_PRODUCTION_ENVIRONMENTS", typ: "list",
			help: "comma-separated globs of environment names that count as production for the metrics, besides those of tier production (e.g. prod*,live)",
			set: func(c *config, v string) error {
				mc := metrics.Config{ProductionEnvironments: splitList(v)}
				if err := mc.Validate(); err != nil {
					return err
				}
				c.Metrics.ProductionEnvironments = mc.ProductionEnvironments
				return nil
			}},
		{flag: "incident-labels", env: "LABTRAIL_INCIDENT_LABELS", def: "incident", typ: "list",
			help: "comma-separated labels that make an issue an incident for the metrics, besides issue type incident",
			set:  list(func(c *config) *[]string { return &c.Metrics.IncidentLabels })},
		environmentCallbackSetting,
		{flag: "oauth-client-id", env: "LABTRAIL_OAUTH_CLIENT_ID", typ: "string",
			help: "the Application ID of labtrail's OAuth application in GitLab: turns on signing in with GitLab (docs/security.md)",
			set:  text(func(c *config) *string { return &c.OAuthClientID })},
		{env: "LABTRAIL_OAUTH_CLIENT_SECRET", help: "the Secret of labtrail's OAuth application in GitLab",
			set: text(func(c *config) *string { return &c.OAuthClientSecret })},
		{flag: "public-url", env: "LABTRAIL_PUBLIC_URL", typ: "url",
			help: "labtrail's address as browsers reach it, e.g. https://labtrail.example.com (the GitLab sign-in's redirect URI is it + /auth/gitlab/callback); default from LABTRAIL_WEBHOOK_URL or a loopback --addr",
			set: func(c *config, v string) error {
				u, err := url.Parse(v)
				if v != "" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "") {
					return errors.New("must be an http(s) URL with no path, such as https://labtrail.example.com")
				}
				c.PublicURL = strings.TrimSuffix(v, "/")
				return nil
			}},
		{flag: "admins", env: "LABTRAIL_ADMINS", typ: "list",
			help: "comma-separated GitLab usernames who get scope admin when they sign in with GitLab; everyone else gets read",
			set:  list(func(c *config) *[]string { return &c.Admins })},
	}

	environmentCallbackSetting = &setting{flag: "environment-callback", env: "LABTRAIL_ENVIRONMENT_CALLBACK", def: "false", typ: "bool",
		help: "set a GitLab environment's external URL to the url of each successful reported deployment (docs/ci.md); the token then needs the api scope",
		set:  boolean(func(c *config) *bool { return &c.EnvironmentCallback })}
	// secretKeySettings are the key connection secrets are sealed under.
	secretKeySettings = []*setting{
		{env: "LABTRAIL_SECRET_KEY", help: "the key (base64 of 32 bytes; labtrail secrets keygen makes one) the GitLab connections' tokens and webhook secrets are encrypted under",
			set: text(func(c *config) *string { return &c.SecretKey })},
		{flag: "secret-key-file", env: "LABTRAIL_SECRET_KEY_FILE", typ: "path", help: "a file holding LABTRAIL_SECRET_KEY, instead of it",
			set: text(func(c *config) *string { return &c.SecretKeyFile })},
	}
	oldSecretKeySettings = []*setting{
		{env: "LABTRAIL_OLD_SECRET_KEY", help: "labtrail secrets rotate: the key the secrets are encrypted under now",
			set: text(func(c *config) *string { return &c.OldSecretKey })},
		{flag: "old-key-file", env: "LABTRAIL_OLD_SECRET_KEY_FILE", typ: "path", help: "a file holding the old key, instead of LABTRAIL_OLD_SECRET_KEY",
			set: text(func(c *config) *string { return &c.OldSecretKeyFile })},
	}

	logLevelSetting = &setting{flag: "log-level", env: "LABTRAIL_LOG_LEVEL", def: "info", typ: "level", help: "debug, info, warn or error",
		set: func(c *config, v string) error {
			if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
				return errors.New("must be debug, info, warn or error")
			}
			return nil
		}}
)

// boolean makes a setting's set for a true/false field of the config.
func boolean(field func(*config) *bool) func(*config, string) error {
	return func(c *config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errors.New("must be true or false")
		}
		*field(c) = b
		return nil
	}
}

// text, list, positive and duration make a setting's set for a field of
// the config.
func text(field func(*config) *string) func(*config, string) error {
	return func(c *config, v string) error { *field(c) = v; return nil }
}

func list(field func(*config) *[]string) func(*config, string) error {
	return func(c *config, v string) error { *field(c) = splitList(v); return nil }
}

func positive(field func(*config) *int) func(*config, string) error {
	return func(c *config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return errors.New("must be a positive whole number")
		}
		*field(c) = n
		return nil
	}
}

// duration reads a positive duration such as 90s or 5m; a bare number is
// seconds, as the settings labtrail grew from were written.
func duration(field func(*config) *time.Duration) func(*config, string) error {
	return func(c *config, v string) error {
		d, err := time.ParseDuration(v)
		if secs, ferr := strconv.ParseFloat(v, 64); ferr == nil {
			d, err = time.Duration(secs*float64(time.Second)), nil
		}
		if err != nil || d <= 0 {
			return errors.New("must be a positive duration such as 30s or 5m (a bare number is seconds)")
		}
		*field(c) = d
		return nil
	}
}

// parseSize reads a size: bytes, or a number with KB, MB, GB (powers of
// 1000) or KiB, MiB, GiB (powers of 1024).
func parseSize(v string) (int64, error) {
	num := strings.TrimSpace(v)
	mult := 1.0
	for _, u := range []struct {
		suffix string
		mult   float64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}} {
		if len(num) > len(u.suffix) && strings.EqualFold(num[len(num)-len(u.suffix):], u.suffix) {
			num, mult = strings.TrimSpace(num[:len(num)-len(u.suffix)]), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 || f*mult > 1<<62 {
		return 0, fmt.Errorf("%q is not a size", v)
	}
	return int64(f * mult), nil
}

// renamed is s under another flag name, for a command where that name
// reads better (labtrail hooks --url).
func renamed(s *setting, flag string) *setting {
	r := *s
	r.flag = flag
	return &r
}

// lookup returns a setting's value from the environment (or .env, loaded
// into it) and the variable it came from; ok is false when neither its
// variable nor its older one is set.
func (s *setting) lookup() (v, from string, ok bool) {
	for _, k := range []string{s.env, s.also} {
		if k == "" {
			continue
		}
		if v, set := os.LookupEnv(k); set && strings.TrimSpace(v) != "" {
			return strings.TrimSpace(v), k, true
		}
	}
	return "", "", false
}

// settingFlag is a setting's flag.Value: it parses into the config as the
// flag is given.
type settingFlag struct {
	s     *setting
	c     *config
	text  string
	given bool
}

func (f *settingFlag) String() string {
	if f == nil {
		return ""
	}
	return f.text
}

func (f *settingFlag) Set(v string) error {
	v = strings.TrimSpace(v)
	if err := f.s.set(f.c, v); err != nil {
		return err
	}
	f.text, f.given = v, true
	return nil
}

func (f *settingFlag) IsBoolFlag() bool { return f.s.typ == "bool" }

// useSettings registers the flags of the settings in groups on fs and
// returns the function that builds the config after fs is parsed: a flag
// given wins, then the environment, then the default. A bad value in the
// environment is an error naming its variable.
func useSettings(fs *flag.FlagSet, groups ...[]*setting) func() (config, error) {
	c := &config{}
	var flags []*settingFlag
	var envOnly []*setting
	for _, g := range groups {
		for _, s := range g {
			f := &settingFlag{s: s, c: c, text: s.def}
			if v, _, ok := s.lookup(); ok {
				f.text = v
			}
			flags = append(flags, f)
			if s.flag == "" {
				envOnly = append(envOnly, s)
				continue
			}
			fs.Var(f, s.flag, s.help)
		}
	}
	usage := fs.Usage
	fs.Usage = func() {
		usage()
		if len(envOnly) == 0 {
			return
		}
		fmt.Fprintln(fs.Output(), "\nFrom the environment only (a flag would show it in ps):")
		for _, s := range envOnly {
			fmt.Fprintf(fs.Output(), "  %s\n    \t%s\n", s.env, s.help)
		}
	}
	return func() (config, error) {
		for _, f := range flags {
			if f.given {
				continue
			}
			v, from, ok := f.s.lookup()
			if !ok && f.s.def == "" {
				continue // unset: the field's zero value means "none" or "the default"
			}
			if !ok {
				v, from = f.s.def, "the default of "+f.s.env
			}
			if err := f.s.set(c, v); err != nil {
				return *c, fmt.Errorf("%s %v, got %q", from, err, v)
			}
		}
		if c.RescueAfter != 0 && c.RescueAfter <= c.JobTimeout {
			return *c, fmt.Errorf("LABTRAIL_RESCUE_AFTER (%s) must be longer than LABTRAIL_JOB_TIMEOUT (%s): "+
				"a job still running on a live replica would be started again elsewhere", c.RescueAfter, c.JobTimeout)
		}
		return *c, nil
	}
}

// printFlags lists fs's flags as flag.PrintDefaults does, with each
// setting's type as it is meant (int, bool, duration, list) and its
// variable.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		typ, usage := flag.UnquoteUsage(f)
		def, env := f.DefValue, ""
		if sf, ok := f.Value.(*settingFlag); ok {
			typ, env = sf.s.typ, "env "+sf.s.env
			if sf.s.also != "" {
				env += ", also read from " + sf.s.also
			}
			if sf.s.show != nil {
				def = sf.s.show(def)
			}
		}
		if typ == "bool" {
			typ = ""
		}
		var notes []string
		if env != "" {
			notes = append(notes, env)
		}
		switch {
		case def == "" || def == "false" || def == "0":
		case typ == "string" || typ == "list" || typ == "url" || typ == "address" || typ == "value":
			notes = append(notes, fmt.Sprintf("default %q", def))
		default:
			notes = append(notes, "default "+def)
		}
		if len(notes) > 0 {
			usage += " (" + strings.Join(notes, "; ") + ")"
		}
		fmt.Fprintf(w, "  -%s", f.Name)
		if typ != "" {
			fmt.Fprintf(w, " %s", typ)
		}
		fmt.Fprintf(w, "\n    \t%s\n", strings.ReplaceAll(usage, "\n", "\n    \t"))
	})
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
		return 0, errors.New("must be a duration such as 6h or 30m, or 0 for every poll")
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

// webhookURL reads an http(s) URL into *field; empty is none.
func webhookURL(field func(*config) *string, example string) func(*config, string) error {
	return func(c *config, v string) error {
		u, err := url.Parse(v)
		if v != "" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "") {
			return errors.New("must be an http(s) URL such as " + example)
		}
		*field(c) = v
		return nil
	}
}

// Digest settings (docs/digests.md): digestSettings are what making and
// sending a digest needs beside the metrics' conventions,
// digestScheduleSettings what serve adds to send one on a schedule.
var (
	digestSettings = []*setting{
		{flag: "tz", env: "LABTRAIL_DIGEST_TZ", def: "UTC", typ: "zone",
			help: "time zone where a digest's days and weeks begin (weeks on Monday), e.g. Europe/Paris",
			set: func(c *config, v string) error {
				loc, err := time.LoadLocation(v)
				if err != nil || v == "" {
					return errors.New("must be a time zone name such as UTC or Europe/Paris")
				}
				c.Digest.Location = loc
				return nil
			}},
		{env: "LABTRAIL_SLACK_WEBHOOK_URL", typ: "url", help: "the Slack incoming webhook digests are posted to",
			set: webhookURL(func(c *config) *string { return &c.Digest.SlackURL }, "https://hooks.slack.com/services/T000/B000/XXXX")},
		{env: "LABTRAIL_DIGEST_WEBHOOK_URL", typ: "url", help: "a URL digests are posted to as JSON",
			set: webhookURL(func(c *config) *string { return &c.Digest.WebhookURL }, "https://example.com/hooks/labtrail")},
	}
	// digestCommandSettings are the digest command's: serve has the
	// others already.
	digestCommandSettings = []*setting{settingOf(serveSettings, "LABTRAIL_PUBLIC_URL"), webhookURLSetting,
		settingOf(serveSettings, "LABTRAIL_PRODUCTION_ENVIRONMENTS"), settingOf(serveSettings, "LABTRAIL_INCIDENT_LABELS")}
	digestScheduleSettings = []*setting{
		{flag: "digest-schedule", env: "LABTRAIL_DIGEST_SCHEDULE", typ: "cron",
			help: "when to send the digest, a cron expression in LABTRAIL_DIGEST_TZ (e.g. \"0 9 * * 1\": Mondays at 9); empty: never",
			set: func(c *config, v string) error {
				c.Digest.Schedule, c.Digest.Spec = nil, v
				if v == "" {
					return nil
				}
				s, err := cron.ParseStandard(v)
				if err != nil {
					return fmt.Errorf("must be a cron expression such as \"0 9 * * 1\" (minute hour day-of-month month day-of-week): %v", err)
				}
				c.Digest.Schedule = s
				return nil
			}},
		{flag: "digest-period", env: "LABTRAIL_DIGEST_PERIOD", def: "week", typ: "day|week", help: "the period a scheduled digest covers",
			set: func(c *config, v string) (err error) {
				c.Digest.Period, err = digest.ParsePeriod(v)
				return err
			}},
		{flag: "digest-projects", env: "LABTRAIL_DIGEST_PROJECTS", typ: "list", help: "comma-separated projects (paths or ids) a scheduled digest covers; empty: every project",
			set: list(func(c *config) *[]string { return &c.Digest.Projects })},
		{flag: "digest-group", env: "LABTRAIL_DIGEST_GROUP", typ: "string", help: "a group whose projects (subgroups included) a scheduled digest covers",
			set: text(func(c *config) *string { return &c.Digest.Group })},
	}
)

// settingOf is the setting of group read from env.
func settingOf(group []*setting, env string) *setting {
	for _, s := range group {
		if s.env == env {
			return s
		}
	}
	panic("no setting " + env)
}
