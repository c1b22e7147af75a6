package main

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/config"
)

// settings is the stack's configuration (`pulumi config set KEY VALUE`),
// checked before any resource is declared so a typo fails the preview with
// the key's name instead of failing half way through an update.
type settings struct {
	Name                   string        // function, table and log group name
	Bootstrap              string        // path of the bootstrap binary (or a zip holding it)
	Memory                 int           // MB
	Timeout                time.Duration // whole seconds, at most 15 minutes
	Schedule               string        // EventBridge rate(...) or cron(...)
	PollInterval           string        // the schedule's period for POLL_INTERVAL; "" for cron
	GitLabURL              string
	Repos                  string
	Groups                 string
	Retention              string // LABTRAIL_RETENTION, a Go duration
	TokenParameter         string
	WebhookSecretParameter string
	APITokenParameter      string
	KMSKey                 string // key id, ARN or alias that encrypts the parameters
	LogRetentionDays       int
	PointInTimeRecovery    bool
	Env                    map[string]string // more of labtrail's settings, e.g. LABTRAIL_LOG_LEVEL
}

// Defaults: seed 000's schedule and 30-day TTL, the parameter names the
// function reads when its environment names none.
const (
	defaultBootstrap              = "../../bootstrap"
	defaultMemory                 = 256
	defaultTimeout                = 5 * time.Minute
	defaultSchedule               = "rate(5 minutes)"
	defaultGitLabURL              = "https://gitlab.com"
	defaultRetention              = "720h"
	defaultTokenParameter         = "/labtrail/gitlab/token"
	defaultWebhookSecretParameter = "/labtrail/gitlab/webhook-secret"
	defaultAPITokenParameter      = "/labtrail/api/token"
	defaultKMSKey                 = "alias/aws/ssm"
	defaultLogRetentionDays       = 30
)

// logRetentionDays are the values CloudWatch Logs accepts for a log group's
// retention (PutRetentionPolicy); anything else fails only at apply time.
var logRetentionDays = []int{1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}

var (
	rateExpr = regexp.MustCompile(`^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$`)
	cronExpr = regexp.MustCompile(`^cron\(\S+( \S+){5}\)$`)
	// Lambda function names: letters, digits, hyphens and underscores, at most 64.
	nameExpr = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	// SSM parameter names in a hierarchy start with a slash.
	parameterExpr = regexp.MustCompile(`^/[A-Za-z0-9_.\-/]+$`)
	envNameExpr   = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)
)

// secretEnv are settings that hold secrets: in the function's environment
// they would be readable by anyone who may read its configuration, so they
// belong in SSM, which the function reads them from.
var secretEnv = []string{"GITLAB_TOKEN", "LABTRAIL_WEBHOOK_SECRET", "LABTRAIL_WEBHOOK_SIGNING_SECRET",
	"LABTRAIL_SECRET_KEY", "LABTRAIL_OAUTH_CLIENT_SECRET", "LABTRAIL_SLACK_WEBHOOK_URL"}

// loadSettings reads the project's configuration namespace (labtrail:KEY).
func loadSettings(ctx *pulumi.Context) (settings, error) {
	c := config.New(ctx, "")
	str := func(key, def string) string {
		if v := strings.TrimSpace(c.Get(key)); v != "" {
			return v
		}
		return def
	}
	var errs []string
	s := settings{
		Name:                   str("name", "labtrail-"+ctx.Stack()),
		Bootstrap:              str("bootstrap", defaultBootstrap),
		Schedule:               str("schedule", defaultSchedule),
		GitLabURL:              str("gitlabUrl", defaultGitLabURL),
		Repos:                  str("repos", ""),
		Groups:                 str("groups", ""),
		Retention:              str("retention", defaultRetention),
		TokenParameter:         str("tokenParameter", defaultTokenParameter),
		WebhookSecretParameter: str("webhookSecretParameter", defaultWebhookSecretParameter),
		APITokenParameter:      str("apiTokenParameter", defaultAPITokenParameter),
		KMSKey:                 str("kmsKey", defaultKMSKey),
	}
	intOf := func(key string, def, lo, hi int) int {
		v := str(key, "")
		if v == "" {
			return def
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			errs = append(errs, fmt.Sprintf("labtrail:%s is %q; want a whole number from %d to %d", key, v, lo, hi))
			return def
		}
		return n
	}
	s.Memory = intOf("memory", defaultMemory, 128, 10240)
	s.LogRetentionDays = intOf("logRetentionDays", defaultLogRetentionDays, 1, 3653)
	if !slices.Contains(logRetentionDays, s.LogRetentionDays) {
		errs = append(errs, fmt.Sprintf("labtrail:logRetentionDays is %d; CloudWatch Logs accepts only %v", s.LogRetentionDays, logRetentionDays))
	}

	s.Timeout = defaultTimeout
	if v := str("timeout", ""); v != "" {
		d, err := time.ParseDuration(v)
		if n, nerr := strconv.Atoi(v); nerr == nil { // a bare number is seconds
			d, err = time.Duration(n)*time.Second, nil
		}
		if err != nil || d < time.Second || d > 15*time.Minute || d%time.Second != 0 {
			errs = append(errs, fmt.Sprintf("labtrail:timeout is %q; want whole seconds from 1s to 15m (Lambda's limit), e.g. 5m", v))
		} else {
			s.Timeout = d
		}
	}

	s.PointInTimeRecovery = true
	if v := str("pointInTimeRecovery", ""); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Sprintf("labtrail:pointInTimeRecovery is %q; want true or false", v))
		} else {
			s.PointInTimeRecovery = b
		}
	}

	if !nameExpr.MatchString(s.Name) {
		errs = append(errs, fmt.Sprintf("labtrail:name is %q; want 1 to 64 letters, digits, - or _", s.Name))
	}
	if m := rateExpr.FindStringSubmatch(s.Schedule); m != nil {
		n, _ := strconv.Atoi(m[1])
		unit := map[string]time.Duration{"minute": time.Minute, "hour": time.Hour, "day": 24 * time.Hour}[strings.TrimSuffix(m[2], "s")]
		// EventBridge wants the singular for 1 and the plural otherwise.
		if n == 0 || (n == 1) != !strings.HasSuffix(m[2], "s") {
			errs = append(errs, fmt.Sprintf("labtrail:schedule is %q; write rate(1 minute) or rate(N minutes) with N > 1", s.Schedule))
		}
		s.PollInterval = (time.Duration(n) * unit).String()
	} else if !cronExpr.MatchString(s.Schedule) {
		errs = append(errs, fmt.Sprintf("labtrail:schedule is %q; want an EventBridge expression such as rate(5 minutes) or cron(0/10 * * * ? *)", s.Schedule))
	}
	if !validRetention(s.Retention) {
		errs = append(errs, fmt.Sprintf("labtrail:retention is %q; want positive Go durations as LABTRAIL_RETENTION takes them, such as 720h or 720h,job=168h", s.Retention))
	}
	if !strings.HasPrefix(s.GitLabURL, "https://") && !strings.HasPrefix(s.GitLabURL, "http://") {
		errs = append(errs, fmt.Sprintf("labtrail:gitlabUrl is %q; want an http(s) URL", s.GitLabURL))
	}
	for _, p := range []struct{ key, v string }{
		{"tokenParameter", s.TokenParameter},
		{"webhookSecretParameter", s.WebhookSecretParameter},
		{"apiTokenParameter", s.APITokenParameter},
	} {
		if !parameterExpr.MatchString(p.v) {
			errs = append(errs, fmt.Sprintf("labtrail:%s is %q; want a parameter name such as /labtrail/gitlab/token", p.key, p.v))
		}
	}
	if err := c.TryObject("env", &s.Env); err != nil && !errors.Is(err, config.ErrMissingVar) {
		errs = append(errs, fmt.Sprintf("labtrail:env: %v; want a map of variable names to strings, e.g. pulumi config set --path env.LABTRAIL_LOG_LEVEL debug", err))
	}
	for _, k := range slices.Sorted(maps.Keys(s.Env)) {
		switch {
		case !envNameExpr.MatchString(k) || strings.HasPrefix(k, "AWS_") || strings.HasPrefix(k, "LAMBDA_") || strings.HasPrefix(k, "_"):
			errs = append(errs, fmt.Sprintf("labtrail:env.%s: not a variable the function may be given (AWS_ and LAMBDA_ are Lambda's own)", k))
		case slices.Contains(programEnv, k):
			errs = append(errs, fmt.Sprintf("labtrail:env.%s: the program sets %s from its own settings; use those", k, k))
		case slices.Contains(secretEnv, k):
			errs = append(errs, fmt.Sprintf("labtrail:env.%s holds a secret: put it into SSM Parameter Store, where the function reads it from, not into its environment", k))
		}
	}
	if len(errs) > 0 {
		return s, fmt.Errorf("configuration: %s", strings.Join(errs, "; "))
	}
	return s, nil
}

// validRetention checks LABTRAIL_RETENTION's form: comma-separated
// positive durations, at most one bare (every kind), the others KIND=D.
// Whether each KIND is one of labtrail's the function says at its start.
func validRetention(v string) bool {
	bare := 0
	for part := range strings.SplitSeq(v, ",") {
		kind, dur, hasKind := strings.Cut(strings.TrimSpace(part), "=")
		if !hasKind {
			kind, dur = "", kind
			bare++
		}
		d, err := time.ParseDuration(strings.TrimSpace(dur))
		if err != nil || d <= 0 || (hasKind && !envNameExpr.MatchString(strings.ToUpper(strings.TrimSpace(kind)))) {
			return false
		}
	}
	return bare <= 1
}

// programEnv are the variables the program sets from its settings (and
// the table it creates), which labtrail:env may not set again.
var programEnv = []string{"LABTRAIL_DYNAMODB_TABLE", "LABTRAIL_SSM_TOKEN_PARAMETER", "LABTRAIL_SSM_WEBHOOK_SECRET_PARAMETER",
	"LABTRAIL_SSM_API_TOKEN_PARAMETER", "GITLAB_URL", "REPOS", "GROUPS", "LABTRAIL_GROUPS", "LABTRAIL_RETENTION", "POLL_INTERVAL"}

// environment is the function's environment but for the table's name: the
// settings the function reads as labtrail sync and serve do, plus env.
func (s settings) environment() map[string]string {
	env := map[string]string{
		"LABTRAIL_SSM_TOKEN_PARAMETER":          s.TokenParameter,
		"LABTRAIL_SSM_WEBHOOK_SECRET_PARAMETER": s.WebhookSecretParameter,
		"LABTRAIL_SSM_API_TOKEN_PARAMETER":      s.APITokenParameter,
		"GITLAB_URL":                            s.GitLabURL,
		"LABTRAIL_RETENTION":                    s.Retention,
	}
	for k, v := range map[string]string{"REPOS": s.Repos, "GROUPS": s.Groups, "POLL_INTERVAL": s.PollInterval} {
		if v != "" {
			env[k] = v
		}
	}
	maps.Copy(env, s.Env)
	return env
}

// parameters are the SSM parameter names the function reads, without repeats.
func (s settings) parameters() []string {
	var out []string
	for _, p := range []string{s.TokenParameter, s.WebhookSecretParameter, s.APITokenParameter} {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}
