package gitlab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	gl "gitlab.com/gitlab-org/api/client-go/v2"
)

// The kinds of failure callers act on; every error this package returns for
// them wraps one (errors.Is) and carries a message fit to show users.
var (
	ErrUnauthorized = errors.New("gitlab: unauthorized")
	ErrForbidden    = errors.New("gitlab: forbidden")
	ErrNotFound     = errors.New("gitlab: not found")
	ErrRateLimited  = errors.New("gitlab: rate limited")
	ErrUnreachable  = errors.New("gitlab: unreachable")
	ErrBadURL       = errors.New("gitlab: bad URL")
	// ErrFeatureDisabled: the project exists and is readable, but the
	// feature a kind lives in (issues, the container registry, the
	// repository, CI/CD) is turned off or hidden from the token's user.
	ErrFeatureDisabled = errors.New("gitlab: feature disabled")
)

// apiError is a failure with a user-facing message. It deliberately keeps
// no underlying cause, so nothing can print the request (and its token) by
// unwrapping it.
type apiError struct {
	kind       error
	msg        string
	retryAfter time.Duration
	// status and body are GitLab's answer, kept to tell a project that is
	// gone from a feature turned off (see Client.feature).
	status int
	body   []byte
	scope  bool // a 403 for the token's scope
}

func (e *apiError) Error() string { return e.msg }

// Unwrap returns the sentinel, for errors.Is.
func (e *apiError) Unwrap() error { return e.kind }

// RetryAfter reports how long GitLab asked to wait before the next try,
// when err is an ErrRateLimited.
func RetryAfter(err error) (time.Duration, bool) {
	var e *apiError
	if errors.As(err, &e) && e.kind == ErrRateLimited {
		return e.retryAfter, true
	}
	return 0, false
}

func (c *Client) redact(s string) string {
	if c.token != "" {
		s = strings.ReplaceAll(s, c.token, "[REDACTED]")
	}
	return s
}

func (c *Client) fail(kind error, format string, args ...any) *apiError {
	return &apiError{kind: kind, msg: c.redact(fmt.Sprintf(format, args...))}
}

// classify maps what client-go returned into the package's errors.
func (c *Client) classify(ctx context.Context, desc, project string, resp *gl.Response, err error, st *callState) error {
	attempts := st.attempts.Load()
	if ctx.Err() != nil {
		return fmt.Errorf("gitlab: fetching %s: %w", desc, ctx.Err())
	}
	if errors.Is(err, errLimiterDeadline) {
		return fmt.Errorf("gitlab: fetching %s: %w", desc, err)
	}
	retries := max(attempts-1, 0)

	var er *gl.ErrorResponse
	if errors.As(err, &er) {
		var h http.Header
		switch {
		case er.Response != nil:
			h = er.Response.Header
		case resp != nil && resp.Response != nil:
			h = resp.Header
		}
		body := er.Body
		if er.StatusCode == http.StatusNotFound {
			st.mu.Lock()
			body = st.notFoundBody
			st.mu.Unlock()
		}
		e := c.statusError(desc, project, er.StatusCode, h, body, er.Message, retries)
		e.status, e.body = er.StatusCode, body
		return e
	}

	var ue *url.Error
	if errors.As(err, &ue) {
		c.log.Debug("GitLab unreachable", "url", c.base, "attempts", attempts, "error", c.redact(ue.Err.Error()))
		return c.fail(ErrUnreachable, "cannot reach GitLab at %s: %v", c.base, ue.Err)
	}
	return c.fail(nil, "gitlab: reading %s from %s: %v", desc, c.base, err)
}

func (c *Client) statusError(desc, project string, status int, h http.Header, body []byte, message string, retries int64) *apiError {
	statusText := fmt.Sprintf("%d %s", status, http.StatusText(status))
	switch {
	case status == http.StatusUnauthorized:
		return c.fail(ErrUnauthorized, "GitLab rejected the token (401 Unauthorized): check that it is valid, not expired and not revoked")
	case status == http.StatusForbidden:
		var b struct {
			Error string `json:"error"`
			Scope string `json:"scope"`
		}
		_ = json.Unmarshal(body, &b)
		if b.Error == "insufficient_scope" || strings.Contains(h.Get("WWW-Authenticate"), "insufficient_scope") {
			// GitLab lists the scopes that would do; read_api is the
			// least, older versions only accept api.
			need, hint := "read_api", "read_api (or api)"
			if b.Scope != "" && !strings.Contains(b.Scope, "read_api") {
				need, hint = b.Scope, b.Scope
			}
			e := c.fail(ErrForbidden, "GitLab token lacks the %s scope needed to read %s (403 insufficient_scope): create a token with %s", need, desc, hint)
			e.scope = true
			return e
		}
		return c.fail(ErrForbidden, "GitLab denied access to %s (403 Forbidden): check that the token's user has at least Reporter access", desc)
	case status == http.StatusNotFound:
		if project != "" {
			return c.fail(ErrNotFound, "GitLab project %q not found (404): check the id or path and that the token's user is a member", project)
		}
		return c.fail(ErrNotFound, "GitLab at %s answered 404 Not Found to the request for %s: is that the GitLab URL?", c.base, desc)
	case status == http.StatusTooManyRequests:
		wait, ok := retryAfter(h, c.clock.Now())
		if !ok {
			// GitLab's limits are per minute; without a hint a minute
			// is the safe wait.
			wait = time.Minute
		}
		secs := int64((wait + time.Second - 1) / time.Second)
		e := c.fail(ErrRateLimited, "GitLab rate limit exceeded (429) after %d retries; retry after %ds", retries, secs)
		e.retryAfter = wait
		return e
	case status >= 500 || status == 0:
		return c.fail(ErrUnreachable, "GitLab at %s answered %s to the request for %s after %d retries", c.base, statusText, desc, retries)
	}
	if message != "" {
		return c.fail(nil, "GitLab answered %s to the request for %s: %s", statusText, desc, message)
	}
	return c.fail(nil, "GitLab answered %s to the request for %s", statusText, desc)
}

// projectGone reports whether a 404 body is GitLab's answer for a project
// that does not exist or is hidden from the token's user, rather than for
// a missing sub-resource or feature.
func projectGone(body []byte) bool {
	var b struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &b) != nil {
		return false
	}
	return strings.EqualFold(strings.TrimSpace(b.Message), "404 Project Not Found")
}

// feature turns the error of a listing that belongs to one feature of p
// into ErrFeatureDisabled when the project itself is fine: a 404 that is
// not "404 Project Not Found", or a 403 (not for the token's scope) while
// the project itself can still be read. The second case costs one
// request, only when it happens.
func (c *Client) feature(ctx context.Context, p Project, what string, err error) error {
	var e *apiError
	if !errors.As(err, &e) {
		return err
	}
	switch {
	case e.status == http.StatusNotFound && !projectGone(e.body):
	case e.status == http.StatusForbidden && !e.scope:
		if _, perr := c.project(ctx, p.selector()); perr != nil {
			return perr
		}
	default:
		return err
	}
	return &apiError{kind: ErrFeatureDisabled, status: e.status, msg: c.redact(fmt.Sprintf(
		"GitLab answered %d %s to the request for %s of project %q: the feature is turned off or hidden from the token's user",
		e.status, http.StatusText(e.status), what, p.selector()))}
}
