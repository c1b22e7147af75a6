// Package serverless runs labtrail as an AWS Lambda function: a scheduled
// EventBridge event runs one sync pass with the poller, a Function URL
// request is served by the API server's own handlers (the GitLab webhook
// and three reads). Nothing here syncs, verifies a webhook or answers a
// route itself; it adapts Lambda's events to ingest and server.
package serverless

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labtrail/labtrail/internal/export"
	"github.com/labtrail/labtrail/internal/gitlab"
)

// Defaults of the SSM parameters the secrets are read from.
const (
	DefaultTokenParameter         = "/labtrail/gitlab/token"
	DefaultWebhookSecretParameter = "/labtrail/gitlab/webhook-secret"
	DefaultAPITokenParameter      = "/labtrail/api/token"
)

// Config is the function's configuration: the same variables as labtrail
// sync and serve (GITLAB_URL, REPOS, GROUPS, BRANCHES, ...) plus where
// the secrets are kept.
type Config struct {
	// GitLab is the API client's; its Token comes from GITLAB_TOKEN or,
	// when that is unset, from SSM (LoadSecrets).
	GitLab    gitlab.Config
	Selection gitlab.Selection
	Branches  []string
	FullSweep time.Duration
	Sweep     time.Duration
	// WebhookSecrets are LABTRAIL_WEBHOOK_SECRET's, or the SSM
	// parameter's; SigningSecrets LABTRAIL_WEBHOOK_SIGNING_SECRET's.
	WebhookSecrets []string
	SigningSecrets []string
	// APIToken is the bearer token the reads need (from SSM); empty
	// leaves only the store's API tokens, when it keeps them.
	APIToken string
	// Table is LABTRAIL_DYNAMODB_TABLE; Retention LABTRAIL_RETENTION, how
	// long its history is kept (zero: the store's default).
	Table     string
	Retention export.Retention
	// The SSM parameters; an empty one is not read.
	TokenParameter, WebhookSecretParameter, APITokenParameter string
	LogLevel                                                  slog.Level
	// Margin is the most a sync pass leaves before the function's
	// deadline (it leaves a tenth of the time left when that is less).
	Margin time.Duration
}

// DefaultMargin is Config.Margin's default.
const DefaultMargin = 10 * time.Second

// ConfigFromEnv reads the configuration through lookup (os.LookupEnv in
// the function: it says whether a variable is set at all, so that an SSM
// parameter variable set to "" turns that secret off). A bad value is an
// error naming its variable.
func ConfigFromEnv(lookup func(string) (string, bool)) (Config, error) {
	get := func(k string) string {
		v, _ := lookup(k)
		return strings.TrimSpace(v)
	}
	c := Config{
		GitLab: gitlab.Config{URL: cmp.Or(get("GITLAB_URL"), "https://gitlab.com"), Token: get("GITLAB_TOKEN")},
		Selection: gitlab.Selection{
			Repos:  splitList(get("REPOS")),
			Groups: splitList(cmp.Or(get("LABTRAIL_GROUPS"), get("GROUPS"))),
		},
		Branches:       splitList(get("BRANCHES")),
		WebhookSecrets: splitList(get("LABTRAIL_WEBHOOK_SECRET")),
		SigningSecrets: splitList(get("LABTRAIL_WEBHOOK_SIGNING_SECRET")),
		Table:          get("LABTRAIL_DYNAMODB_TABLE"),
		Margin:         DefaultMargin,
	}
	param := func(k, def string) string {
		if v, set := lookup(k); set {
			return strings.TrimSpace(v)
		}
		return def
	}
	c.TokenParameter = param("LABTRAIL_SSM_TOKEN_PARAMETER", DefaultTokenParameter)
	c.WebhookSecretParameter = param("LABTRAIL_SSM_WEBHOOK_SECRET_PARAMETER", DefaultWebhookSecretParameter)
	c.APITokenParameter = param("LABTRAIL_SSM_API_TOKEN_PARAMETER", DefaultAPITokenParameter)
	// Unset numbers and durations stay zero: the GitLab client and the
	// poller then use their own defaults, the ones labtrail sync has.
	var errs []error
	num := func(k string, dst *int) {
		v := get(k)
		if v == "" {
			return
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			errs = append(errs, fmt.Errorf("%s must be a positive whole number, got %q", k, v))
		}
		*dst = n
	}
	num("LABTRAIL_REQUESTS_PER_MINUTE", &c.GitLab.RequestsPerMinute)
	num("LABTRAIL_CONCURRENCY", &c.GitLab.Concurrency)
	num("LABTRAIL_MAX_PROJECTS", &c.Selection.Max)
	// zero is what "0" means: -1 for the sweeps ("every poll" for the full
	// sweep, "never" for the change detection sweep, as for labtrail
	// sync); 0 is refused where it means nothing.
	dur := func(k string, zero time.Duration, dst *time.Duration) {
		v := get(k)
		if v == "" {
			return
		}
		d, err := time.ParseDuration(v)
		if v == "0" {
			d, err = 0, nil
		}
		if err != nil || d < 0 || (d == 0 && zero == 0) {
			errs = append(errs, fmt.Errorf("%s must be a duration such as 30s or 5m, got %q", k, v))
		}
		if d == 0 {
			d = zero
		}
		*dst = d
	}
	dur("LABTRAIL_HTTP_TIMEOUT", 0, &c.GitLab.Timeout)
	dur("LABTRAIL_FULL_SWEEP", -1, &c.FullSweep)
	dur("LABTRAIL_SWEEP", -1, &c.Sweep)
	dur("LABTRAIL_SYNC_MARGIN", 0, &c.Margin)
	if v := get("LABTRAIL_RETENTION"); v != "" {
		r, err := export.ParseRetention(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("LABTRAIL_RETENTION: %w", err))
		}
		c.Retention = r
	}
	if v := get("LABTRAIL_INCLUDE_ARCHIVED"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("LABTRAIL_INCLUDE_ARCHIVED must be true or false, got %q", v))
		}
		c.Selection.IncludeArchived = b
	}
	switch c.GitLab.GraphQL = strings.ToLower(get("LABTRAIL_GRAPHQL")); c.GitLab.GraphQL {
	case "":
	case gitlab.GraphQLAuto, gitlab.GraphQLOff:
	default:
		errs = append(errs, fmt.Errorf("LABTRAIL_GRAPHQL must be auto or off, got %q", c.GitLab.GraphQL))
	}
	if err := c.LogLevel.UnmarshalText([]byte(cmp.Or(get("LABTRAIL_LOG_LEVEL"), "info"))); err != nil {
		errs = append(errs, fmt.Errorf("LABTRAIL_LOG_LEVEL must be debug, info, warn or error, got %q", get("LABTRAIL_LOG_LEVEL")))
	}
	return c, errors.Join(errs...)
}

// splitList splits a comma-separated list, dropping blanks.
func splitList(s string) []string {
	parts := strings.Split(s, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return slices.DeleteFunc(parts, func(p string) bool { return p == "" })
}
