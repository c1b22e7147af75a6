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
)

// apiError is a failure with a user-facing message. It deliberately keeps
// no underlying cause, so nothing can print the request (and its token) by
// unwrapping it.
type apiError struct {
	kind       error
	msg        string
	retryAfter time.Duration
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
func (c *Client) classify(ctx context.Context, desc, project string, resp *gl.Response, err error, attempts int64) error {
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
		return c.statusError(desc, project, er.StatusCode, h, er.Body, er.Message, retries)
	}

	var ue *url.Error
	if errors.As(err, &ue) {
		c.log.Debug("GitLab unreachable", "url", c.base, "attempts", attempts, "error", c.redact(ue.Err.Error()))
		return c.fail(ErrUnreachable, "cannot reach GitLab at %s: %v", c.base, ue.Err)
	}
	return c.fail(nil, "gitlab: reading %s from %s: %v", desc, c.base, err)
}

func (c *Client) statusError(desc, project string, status int, h http.Header, body []byte, message string, retries int64) error {
	statusText := fmt.Sprintf("%d %s", status, http.StatusText(status))
	switch {
	case status == http.StatusUnauthorized:
		return c.fail(ErrUnauthorized, "GitLab rejected the token (401 Unauthorized): check GITLAB_TOKEN")
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
			return c.fail(ErrForbidden, "GitLab token lacks the %s scope needed to read %s (403 insufficient_scope): create a token with %s", need, desc, hint)
		}
		return c.fail(ErrForbidden, "GitLab denied access to %s (403 Forbidden): check that the token's user has at least Reporter access", desc)
	case status == http.StatusNotFound:
		if project != "" {
			return c.fail(ErrNotFound, "GitLab project %q not found (404): check the id or path and that the token's user is a member", project)
		}
		return c.fail(ErrNotFound, "GitLab at %s answered 404 Not Found to the request for %s: is that the GitLab URL?", c.base, desc)
	case status == http.StatusTooManyRequests:
		wait, ok := retryAfter(h, time.Now())
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
