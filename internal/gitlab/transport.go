package gitlab

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Retry timing. A Retry-After longer than maxRetryAfterWait is not slept
// through: the caller gets ErrRateLimited and can reschedule instead of
// holding a poll open.
const (
	backoffBase       = 200 * time.Millisecond
	backoffCap        = 30 * time.Second
	maxRetryAfterWait = 5 * time.Minute
)

type attemptsKey struct{}

// errLimiterDeadline is returned when waiting for the client-side limit
// would outlast the context's deadline; rate.Limiter knows this up front,
// so the request fails at once instead of sleeping into the deadline.
var errLimiterDeadline = fmt.Errorf("waiting for the client-side rate limit would pass the deadline: %w", context.DeadlineExceeded)

var limiters sync.Map // key -> *rate.Limiter

// sharedLimiter returns the limiter for one token at one GitLab, so that
// several clients built from the same configuration (the poller, a CLI
// check) draw from one budget, as GitLab counts them.
func sharedLimiter(base, token string, rpm int) *rate.Limiter {
	sum := sha256.Sum256([]byte(base + "\x00" + token))
	key := hex.EncodeToString(sum[:]) + "/" + strconv.Itoa(rpm)
	l, _ := limiters.LoadOrStore(key, newLimiter(rpm))
	return l.(*rate.Limiter)
}

// newLimiter spreads rpm requests evenly over a minute and allows a burst
// of one second's share, so in any minute at most rpm plus that burst go
// out.
func newLimiter(rpm int) *rate.Limiter {
	return rate.NewLimiter(rate.Limit(float64(rpm)/60), max(1, rpm/60))
}

// transport waits for the limiter before every attempt (retries included)
// and counts attempts, both per client and per call.
type transport struct {
	next http.RoundTripper
	c    *Client
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	if err := t.c.limiter.Wait(ctx); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, errLimiterDeadline
	}
	t.c.requests.Add(1)
	if n, ok := ctx.Value(attemptsKey{}).(interface{ Add(int64) int64 }); ok {
		n.Add(1)
	}
	return t.next.RoundTrip(req)
}

// checkRetry decides whether retryablehttp tries again. Every request we
// make is a GET, so any network failure may be repeated; what cannot get
// better by waiting (unknown host, bad certificate, our own deadline) is
// not.
func (c *Client) checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if err != nil {
		var dnsErr *net.DNSError
		var certErr *tls.CertificateVerificationError
		var unknownAuth x509.UnknownAuthorityError
		var hostErr x509.HostnameError
		switch {
		case errors.Is(err, context.Canceled), errors.Is(err, errLimiterDeadline):
			return false, nil
		case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
			return false, nil
		case errors.As(err, &certErr), errors.As(err, &unknownAuth), errors.As(err, &hostErr):
			return false, nil
		}
		return true, nil
	}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		wait, _ := retryAfter(resp.Header, time.Now())
		return wait <= maxRetryAfterWait, nil
	case resp.StatusCode == 0 || (resp.StatusCode >= 500 && resp.StatusCode != http.StatusNotImplemented):
		return true, nil
	}
	return false, nil
}

// backoff is how long to wait before retry attempt+1: what GitLab asked
// for on 429, exponential otherwise, both with jitter so that clients
// turned away together do not come back together.
func (c *Client) backoff(_, _ time.Duration, attempt int, resp *http.Response) time.Duration {
	var wait time.Duration
	if resp != nil && resp.StatusCode == http.StatusTooManyRequests {
		var hinted bool
		if wait, hinted = retryAfter(resp.Header, time.Now()); !hinted {
			wait = exponential(attempt + 2) // start near a second
		}
		wait += rand.N(wait/10 + 50*time.Millisecond)
	} else {
		d := exponential(attempt)
		wait = d/2 + rand.N(d/2+1)
	}
	if resp == nil {
		// No answer at all (refused, reset, timed out): the error itself
		// is reported if the last retry fails too.
		c.log.Warn("GitLab did not answer; retrying", "retry", attempt+1, "of", c.retries, "wait", wait.Round(time.Millisecond))
		return wait
	}
	path := ""
	if resp.Request != nil {
		path = resp.Request.URL.Path
	}
	c.log.Warn("GitLab request failed; retrying", "status", resp.StatusCode, "path", path, "retry", attempt+1, "of", c.retries, "wait", wait.Round(time.Millisecond))
	return wait
}

func exponential(attempt int) time.Duration {
	if attempt > 20 {
		return backoffCap
	}
	return min(backoffBase<<attempt, backoffCap)
}

// retryAfter reads the wait GitLab asks for: Retry-After in seconds or as
// an HTTP date, else RateLimit-Reset (a Unix time). ok is false when the
// response gives no hint.
func retryAfter(h http.Header, now time.Time) (wait time.Duration, ok bool) {
	if h == nil {
		return 0, false
	}
	if v := h.Get("Retry-After"); v != "" {
		if s, err := strconv.ParseInt(v, 10, 64); err == nil && s >= 0 {
			return time.Duration(s) * time.Second, true
		}
		if t, err := http.ParseTime(v); err == nil {
			return max(t.Sub(now), 0), true
		}
	}
	if v := h.Get("RateLimit-Reset"); v != "" {
		if s, err := strconv.ParseInt(v, 10, 64); err == nil && s > 0 {
			return max(time.Unix(s, 0).Sub(now), 0), true
		}
	}
	return 0, false
}
