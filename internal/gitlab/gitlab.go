// Package gitlab is everything in labtrail that speaks GitLab's REST and
// GraphQL APIs: a client built on the official client-go with a per-token
// rate limit, retries, per-attempt timeouts, a bound on requests in flight
// and an audit hook; project selection; fetchers for every kind in
// docs/kinds.md, batching the details of merge requests and pipelines by
// GraphQL with REST as the fallback; and the converters that turn GitLab's
// JSON into change.Event values.
package gitlab

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gl "gitlab.com/gitlab-org/api/client-go/v2"
	"golang.org/x/time/rate"
)

// Defaults for the zero values of Config.
const (
	DefaultRequestsPerMinute = 600
	DefaultMaxRetries        = 5
	// DefaultTimeout bounds one HTTP attempt, so a hung connection becomes
	// a retryable timeout instead of stalling a poll forever.
	DefaultTimeout     = 30 * time.Second
	DefaultConcurrency = 4
	perPage            = 100
)

// Config says where GitLab is and how politely to talk to it.
type Config struct {
	// URL is the GitLab instance, e.g. https://gitlab.com, with or without
	// a trailing /api/v4. It must be http(s) with a host.
	URL   string
	Token string
	// HTTPClient is optional; it is copied, never modified. Its Timeout,
	// if set, bounds each attempt as Timeout does (the shorter wins).
	HTTPClient *http.Client
	// RequestsPerMinute limits requests per token (default 600): at most
	// 98% of it in any 60 seconds, as GitLab counts them, with bursts
	// paced at four times the average rate. Clients built with the same
	// URL, token and limit share one budget.
	RequestsPerMinute int
	// MaxRetries is how often a request is retried on 429, 5xx and
	// network errors (default 5; negative means never).
	MaxRetries int
	Logger     *slog.Logger
	// Audit, when set, hears of every HTTP attempt once it has finished
	// (retries included). It is called synchronously from the request's
	// goroutine, so it must be cheap and safe for concurrent use.
	Audit func(AuditRecord)
	// Timeout bounds one HTTP attempt, from sending the request to
	// reading the last byte of the answer (default 30s). An attempt that
	// runs out of time is retried with backoff like a 5xx.
	Timeout time.Duration
	// Concurrency is how many requests may be in flight at once
	// (default 4); fetches that need details per object use as many
	// workers.
	Concurrency int
	// GraphQL is GraphQLAuto (the default, also for "") or GraphQLOff:
	// whether the details of merge requests and pipelines come in batches
	// from GitLab's GraphQL API, with REST as the fallback, or from the
	// REST API alone.
	GraphQL string
	// Clock is what the client reads the time from and waits on before
	// retries and for GitLab's rate-limit window; nil is the system
	// clock. Tests pass one that records each wait and returns at once.
	Clock Clock
}

// Client talks to one GitLab instance with one token. It is safe for
// concurrent use.
type Client struct {
	gl       *gl.Client
	base     string // scheme://host[/path] without /api/v4, for messages
	token    string
	log      *slog.Logger
	limiter  *limiter
	gate     *gate
	rpm      int
	retries  int
	requests atomic.Int64
	audit    func(AuditRecord)
	timeout  time.Duration
	clock    Clock
	workers  int
	inFlight chan struct{} // a slot per request allowed in flight

	graphql    bool        // Config.GraphQL is auto
	graphqlOff atomic.Bool // GitLab turned out to have no GraphQL API
	// Until GitLab has answered a GraphQL query, queries go one at a time
	// (graphQLProbe), so that walks side by side ask a GitLab without
	// GraphQL once, not once each; graphqlSeen ends that, graphqlGone
	// answers the waiting ones.
	graphqlProbe sync.Mutex
	graphqlSeen  atomic.Bool
	graphqlGone  atomic.Bool
	detect       detectBatch // change detection's batch size (detect.go)
	mrPlan       aliasedPlan // merge request details by GraphQL
	plPlan       graphQLPlan // pipeline details and jobs by GraphQL
	issuePlan    aliasedPlan // issue notes by GraphQL
	imagePlan    graphQLPlan // container image tags with their details by GraphQL
}

// New checks cfg and builds a client; it makes no request.
func New(cfg Config) (*Client, error) {
	base, err := normalizeURL(cfg.URL)
	if err != nil {
		if cfg.Token != "" {
			// Whatever was pasted as the URL is shown; a token pasted
			// there by mistake is not.
			return nil, &apiError{kind: ErrBadURL, msg: strings.ReplaceAll(err.Error(), cfg.Token, "[REDACTED]")}
		}
		return nil, err
	}
	if strings.TrimSpace(cfg.Token) == "" {
		return nil, &apiError{kind: ErrUnauthorized, msg: "no GitLab token given"}
	}
	c := &Client{base: base, token: cfg.Token, log: cfg.Logger, rpm: cfg.RequestsPerMinute, retries: cfg.MaxRetries,
		audit: cfg.Audit, timeout: cfg.Timeout, workers: cfg.Concurrency, clock: cfg.Clock}
	if c.clock == nil {
		c.clock = systemClock{}
	}
	switch strings.ToLower(strings.TrimSpace(cfg.GraphQL)) {
	case "", GraphQLAuto:
		c.graphql = true
	case GraphQLOff:
	default:
		return nil, fmt.Errorf("gitlab: GraphQL mode %q: want %q or %q", cfg.GraphQL, GraphQLAuto, GraphQLOff)
	}
	c.mrPlan.name, c.plPlan.name = "merge request", "pipeline"
	c.issuePlan.name = "issue"
	c.mrPlan.most, c.issuePlan.most = mrDetailsAliases, issueNotesAliases
	c.imagePlan.name = "container image tag"
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.workers <= 0 {
		c.workers = DefaultConcurrency
	}
	c.inFlight = make(chan struct{}, c.workers)
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.rpm <= 0 {
		c.rpm = DefaultRequestsPerMinute
	}
	switch {
	case c.retries == 0:
		c.retries = DefaultMaxRetries
	case c.retries < 0:
		c.retries = 0
	}
	c.limiter = sharedLimiter(base, cfg.Token, c.rpm)
	c.gate = sharedGate(base, cfg.Token)

	// The per-attempt timeout lives in the transport, after the waits for
	// the rate limit and a free slot, so that waiting is not mistaken
	// for a slow GitLab.
	hc := &http.Client{}
	if cfg.HTTPClient != nil {
		copied := *cfg.HTTPClient
		hc = &copied
	}
	if hc.Timeout > 0 {
		// Left on the client it would also run through the waits before
		// each attempt, retries' included.
		c.timeout = min(c.timeout, hc.Timeout)
		hc.Timeout = 0
	}
	next := hc.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	hc.Transport = &transport{next: next, c: c}

	c.gl, err = gl.NewClient(cfg.Token,
		gl.WithBaseURL(base),
		gl.WithHTTPClient(hc),
		gl.WithURLWarningLogger(c.log),
		gl.WithUserAgent("labtrail"),
		// Our limiter sits in the transport so that retries are counted
		// too; an infinite one here keeps client-go from building its own
		// from RateLimit-Limit headers and limiting twice.
		gl.WithCustomLimiter(rate.NewLimiter(rate.Inf, 0)),
		gl.WithCustomRetryMax(c.retries),
		gl.WithCustomRetry(c.checkRetry),
		// The wait before a retry is taken in the transport, on c.clock.
		gl.WithCustomBackoff(func(time.Duration, time.Duration, int, *http.Response) time.Duration { return 0 }),
	)
	if err != nil {
		return nil, &apiError{kind: ErrBadURL, msg: c.redact(fmt.Sprintf("GitLab URL %q: %v", base, err))}
	}
	return c, nil
}

// normalizeURL accepts what users paste (with or without /api/v4, trailing
// slashes) and returns scheme://host[/path], or an ErrBadURL.
func normalizeURL(raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	bad := func(why string) error {
		shown := raw
		if u, err := url.Parse(raw); err == nil && u.User != nil {
			shown = u.Redacted()
		} else if err != nil && strings.Contains(raw, "@") {
			shown = "(unparsable URL)"
		}
		return &apiError{kind: ErrBadURL, msg: fmt.Sprintf("invalid GitLab URL %q: %s (expected e.g. https://gitlab.com)", shown, why)}
	}
	if raw == "" {
		return "", bad("empty")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", bad("cannot parse it")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", bad("scheme must be http or https")
	case u.Host == "" || u.Hostname() == "":
		return "", bad("no host")
	case u.User != nil:
		// A password in the URL would end up in messages and logs; the
		// token belongs in GITLAB_TOKEN.
		return "", bad("must not contain credentials")
	case u.RawQuery != "" || u.Fragment != "":
		return "", bad("must not have a query or fragment")
	}
	p := strings.TrimRight(u.Path, "/")
	p = strings.TrimSuffix(p, "/api/v4")
	p = strings.TrimRight(p, "/")
	return u.Scheme + "://" + u.Host + p, nil
}

// Requests returns the number of HTTP requests sent to GitLab so far,
// retries included.
func (c *Client) Requests() int64 { return c.requests.Load() }

// HeldByBudgetSince reports whether a request has waited for the minute's
// request budget (LABTRAIL_REQUESTS_PER_MINUTE, shared by every client of
// the same token) after t: the rate limit, not GitLab, paced the work.
func (c *Client) HeldByBudgetSince(t time.Time) bool { return c.limiter.fullSince(t) }

// Identity is who the token belongs to and what it may do.
type Identity struct {
	ID       int64
	Username string
	Name     string
	Version  string
	Revision string
	// Scopes is nil when GitLab would not say (tokens other than personal
	// access tokens).
	Scopes []string
}

// Check verifies the URL and token: it fetches the user, GitLab's version
// and, for personal access tokens, their scopes. A token whose scopes are
// known and include neither read_api nor api gives ErrForbidden, since
// every fetch would fail with it later.
func (c *Client) Check(ctx context.Context) (Identity, error) {
	var id Identity
	var u *gl.User
	_, err := c.call(ctx, "the current user", "", func(o ...gl.RequestOptionFunc) (*gl.Response, error) {
		var resp *gl.Response
		var err error
		u, resp, err = c.gl.Users.CurrentUser(o...)
		return resp, err
	})
	if err != nil {
		return id, err
	}
	id.ID, id.Username, id.Name = u.ID, u.Username, u.Name

	var v *gl.Version
	_, err = c.call(ctx, "the GitLab version", "", func(o ...gl.RequestOptionFunc) (*gl.Response, error) {
		var resp *gl.Response
		var err error
		v, resp, err = c.gl.Version.GetVersion(o...)
		return resp, err
	})
	if err != nil {
		return id, err
	}
	id.Version, id.Revision = v.Version, v.Revision

	var pat *gl.PersonalAccessToken
	_, err = c.call(ctx, "the token's scopes", "", func(o ...gl.RequestOptionFunc) (*gl.Response, error) {
		var resp *gl.Response
		var err error
		pat, resp, err = c.gl.PersonalAccessTokens.GetSinglePersonalAccessToken(o...)
		return resp, err
	})
	switch {
	case errors.Is(err, ErrNotFound) || errors.Is(err, ErrForbidden):
		// Project, group and OAuth tokens cannot describe themselves here.
		c.log.Debug("GitLab token scopes unknown", "reason", err.Error())
		return id, nil
	case err != nil:
		return id, err
	}
	id.Scopes = slices.Clone(pat.Scopes)
	if !slices.Contains(id.Scopes, "read_api") && !slices.Contains(id.Scopes, "api") {
		return id, &apiError{kind: ErrForbidden, msg: fmt.Sprintf(
			"GitLab token of %s has scopes %v but labtrail needs read_api (or api): create a token with read_api", id.Username, id.Scopes)}
	}
	return id, nil
}

// call runs one client-go request with ctx, counts its attempts and turns
// its failure into one of the package's errors. desc names what was asked
// for; project, when set, is named by ErrNotFound.
func (c *Client) call(ctx context.Context, desc, project string, fn func(...gl.RequestOptionFunc) (*gl.Response, error)) (*gl.Response, error) {
	st := new(callState)
	ctx = context.WithValue(ctx, callStateKey{}, st)
	resp, err := fn(gl.WithContext(ctx))
	if err != nil {
		return resp, c.classify(ctx, desc, project, resp, err, st)
	}
	return resp, nil
}

func utc(t *time.Time) time.Time {
	if t == nil || t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}
