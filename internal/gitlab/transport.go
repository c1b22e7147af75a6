package gitlab

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/textproto"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Retry timing. A Retry-After longer than maxRetryAfterWait is not slept
// through: the caller gets ErrRateLimited and can reschedule instead of
// holding a poll open.
const (
	backoffBase       = 200 * time.Millisecond
	backoffCap        = 30 * time.Second
	maxRetryAfterWait = 5 * time.Minute
)

// Clock is the time the client reads and waits by: the pause before a
// retry (Retry-After on 429, exponential backoff otherwise), the wait for
// the client-side rate limit and the pause until GitLab's rate-limit
// window resets.
type Clock interface {
	Now() time.Time
	// Sleep returns after d, or with ctx's error as soon as ctx ends.
	Sleep(ctx context.Context, d time.Duration) error
}

// systemClock is the Clock of production: real time, real waits.
type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// callState is what the transport learns about the attempts of one call
// (one client-go request and its retries).
type callState struct {
	attempts atomic.Int64
	mu       sync.Mutex
	// notFoundBody is the body of the last 404: client-go drops it, and
	// only it tells a deleted project from a feature turned off.
	notFoundBody []byte
	// last is how the latest attempt ended, which sets the wait before
	// the next.
	last attemptEnd
}

// attemptEnd is the part of an attempt's outcome the retry wait depends on.
type attemptEnd struct {
	answered bool // false: refused, reset, timed out
	status   int
	header   http.Header
}

func (st *callState) ended(resp *http.Response) {
	end := attemptEnd{}
	if resp != nil {
		end = attemptEnd{answered: true, status: resp.StatusCode, header: resp.Header}
	}
	st.mu.Lock()
	st.last = end
	st.mu.Unlock()
}

type callStateKey struct{}

// errLimiterDeadline is returned when waiting for the client-side limit
// would outlast the context's deadline; the limiter knows the shortest
// wait up front, so the request fails at once instead of sleeping into the
// deadline.
var errLimiterDeadline = fmt.Errorf("waiting for the client-side rate limit would pass the deadline: %w", context.DeadlineExceeded)

var limiters sync.Map // key -> *limiter

// sharedLimiter returns the limiter for one token at one GitLab, so that
// several clients built from the same configuration (the poller, a CLI
// check) draw from one budget, as GitLab counts them.
func sharedLimiter(base, token string, rpm int) *limiter {
	sum := sha256.Sum256([]byte(base + "\x00" + token))
	key := hex.EncodeToString(sum[:]) + "/" + strconv.Itoa(rpm)
	l, _ := limiters.LoadOrStore(key, newLimiter(rpm))
	return l.(*limiter)
}

// limitWindow is the period GitLab counts requests over: its throttles
// (Rack::Attack) allow so many requests per period, 60 seconds by default.
const limitWindow = time.Minute

// limiter admits a request when two rules allow it:
//
//   - the budget: fewer than perWindow requests were admitted in the last
//     60 seconds, so that no 60-second window, and so none of the fixed
//     windows GitLab counts in, sees more than perWindow;
//   - the pace: a token bucket of burst requests refilled one per interval,
//     at four times the budget's average rate, so that a job smaller than
//     a minute's budget is not spread over the minute, yet does not reach
//     GitLab all at once.
//
// A request that waits holds nothing: only an admitted one is counted, so
// a wait that ends with its context takes nothing from the budget. It is
// safe for concurrent use.
type limiter struct {
	perWindow int           // requests admitted in any 60 seconds, at most
	burst     int           // the pace's bucket size
	interval  time.Duration // the pace's refill: one request per interval

	mu      sync.Mutex
	started bool
	origin  time.Time // the first time seen; the offsets below are from it
	// paced is the pace's theoretical arrival time (GCRA): a request may
	// go at now when paced - now <= (burst-1) × interval.
	paced time.Duration
	// admitted holds the times of the requests admitted in the last 60
	// seconds, oldest first, from index head on: at most perWindow of
	// them, and no more than were actually sent in that minute.
	admitted []time.Duration
	head     int
	// full is the last time a request found the minute's budget spent.
	full time.Time
}

// fullSince reports whether a request has found the minute's budget spent
// (not just the pace) after t.
func (l *limiter) fullSince(t time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.full.After(t)
}

// newLimiter allows at most 98% of rpm in any 60 seconds (the 2% margin is
// for requests that leave spaced but arrive bunched), in bursts of a
// second's share (rpm/60) refilled at four times the average rate (one
// every 15s/rpm). rpm below 1 (which New never passes: it makes 0 the
// default) is taken as DefaultRequestsPerMinute.
func newLimiter(rpm int) *limiter {
	if rpm < 1 {
		rpm = DefaultRequestsPerMinute
	}
	per := int64(rpm) * 98 / 100 // integer, so 50 gives 49, not 48.99…
	pace := 15 * time.Second
	return &limiter{
		perWindow: int(max(1, per)),
		burst:     max(1, rpm/60),
		// rounded up: the pace never runs faster than four times the average.
		interval: (pace + time.Duration(rpm) - 1) / time.Duration(rpm),
	}
}

// take admits one request at now and returns 0, or returns how long after
// now the next request may be admitted, admitting nothing. The wait it
// returns is a lower bound: others may be admitted first.
func (l *limiter) take(now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.started {
		l.started, l.origin = true, now
	}
	at := now.Sub(l.origin)
	// Forget what has left the window: a request admitted at t counts in
	// [t, t+60s).
	for l.head < len(l.admitted) && l.admitted[l.head]+limitWindow <= at {
		l.head++
	}
	if l.head > 64 && l.head*2 > len(l.admitted) {
		l.admitted = append(l.admitted[:0], l.admitted[l.head:]...)
		l.head = 0
	}
	var wait time.Duration
	if n := len(l.admitted) - l.head; n >= l.perWindow {
		// The window frees a place when the request perWindow places from
		// the newest leaves it.
		wait = l.admitted[l.head+n-l.perWindow] + limitWindow - at
		l.full = now
	}
	wait = max(wait, l.paced-time.Duration(l.burst-1)*l.interval-at)
	if wait > 0 {
		return wait
	}
	// Times are kept in order even if a clock steps back (several clocks
	// share a limiter only in tests): a later time counts for longer.
	if n := len(l.admitted); n > l.head && l.admitted[n-1] > at {
		at = l.admitted[n-1]
	}
	l.admitted = append(l.admitted, at)
	l.paced = max(l.paced, at) + l.interval
	return 0
}

// wait returns once a request is admitted, or with ctx's error, taking
// nothing, if ctx ends first. It fails at once with errLimiterDeadline,
// taking nothing, when the wait would outlast ctx's deadline. Waiters are
// not queued: each asks again when its wait is up, and whoever asks first
// then goes (the few in flight per token make this cheap).
func (l *limiter) wait(ctx context.Context, clock Clock) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		d := l.take(clock.Now())
		if d <= 0 {
			return nil
		}
		if dl, ok := ctx.Deadline(); ok && d > time.Until(dl) {
			return errLimiterDeadline
		}
		if err := clock.Sleep(ctx, d); err != nil {
			return err
		}
	}
}

var gates sync.Map // key -> *gate

// gate holds every request for one token back until GitLab's rate-limit
// window resets, once GitLab has said none remain (RateLimit-Remaining: 0):
// waiting then costs nothing, while sending earns a 429 and a longer wait.
type gate struct {
	mu    sync.Mutex
	until time.Time
}

func sharedGate(base, token string) *gate {
	sum := sha256.Sum256([]byte(base + "\x00" + token))
	g, _ := gates.LoadOrStore(hex.EncodeToString(sum[:]), &gate{})
	return g.(*gate)
}

// maxGateWait bounds a pause read from headers, so a bad clock or header
// cannot stall labtrail.
const maxGateWait = 2 * time.Minute

// observe reads an answer's rate-limit headers.
func (g *gate) observe(h http.Header, now time.Time) {
	if h.Get("RateLimit-Remaining") != "0" {
		return
	}
	reset, err := strconv.ParseInt(h.Get("RateLimit-Reset"), 10, 64)
	if err != nil {
		return
	}
	until := time.Unix(reset, 0)
	if until.After(now.Add(maxGateWait)) {
		until = now.Add(maxGateWait)
	}
	g.mu.Lock()
	if until.After(g.until) {
		g.until = until
	}
	g.mu.Unlock()
}

// wait blocks until the gate opens or ctx ends.
func (g *gate) wait(ctx context.Context, clock Clock) error {
	g.mu.Lock()
	d := g.until.Sub(clock.Now())
	g.mu.Unlock()
	if d <= 0 {
		return nil
	}
	return clock.Sleep(ctx, d)
}

// transport, for every attempt (retries included): waits before a retry,
// takes one of the client's in-flight slots, waits for the limiter, bounds the attempt with
// the client's timeout, counts it and reports it to the audit hook once
// its answer has been read.
type transport struct {
	next http.RoundTripper
	c    *Client
}

// errAttemptTimeout marks an attempt cut off by Config.Timeout, as opposed
// to the caller's own deadline.
var errAttemptTimeout = errors.New("attempt timed out")

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	st, _ := ctx.Value(callStateKey{}).(*callState)
	if err := t.c.pauseBeforeRetry(ctx, st, req); err != nil {
		return nil, err
	}
	select {
	case t.c.inFlight <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	release := func() { <-t.c.inFlight }
	if err := t.c.gate.wait(ctx, t.c.clock); err != nil {
		release()
		return nil, err
	}
	if err := t.c.waitLimiter(ctx); err != nil {
		release()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, errLimiterDeadline
	}
	t.c.requests.Add(1)
	if st != nil {
		st.attempts.Add(1)
	}

	start := time.Now()
	actx, cancel := context.WithTimeoutCause(ctx, t.c.timeout, errAttemptTimeout)
	resp, err := t.next.RoundTrip(req.WithContext(actx))
	if st != nil {
		st.ended(resp)
	}
	if err != nil {
		if context.Cause(actx) == errAttemptTimeout && ctx.Err() == nil {
			err = fmt.Errorf("no answer within %s: %w", t.c.timeout, err)
		}
		cancel()
		release()
		t.c.report(req, start, nil, err)
		return nil, err
	}
	t.c.gate.observe(resp.Header, t.c.clock.Now())
	if resp.StatusCode == http.StatusNotFound && st != nil {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
		st.mu.Lock()
		st.notFoundBody = b
		st.mu.Unlock()
		resp.Body = io.NopCloser(bytes.NewReader(b))
	}
	resp.Body = &finishBody{ReadCloser: resp.Body, finish: func(readErr error) {
		cancel()
		release()
		t.c.report(req, start, resp, readErr)
	}}
	return resp, nil
}

// waitLimiter waits, on the client's clock, until the limiter admits the
// attempt; see limiter.wait.
func (c *Client) waitLimiter(ctx context.Context) error {
	return c.limiter.wait(ctx, c.clock)
}

// finishBody runs finish once, when the body is closed: only then has the
// attempt ended and its slot become free.
type finishBody struct {
	io.ReadCloser
	once    sync.Once
	finish  func(error)
	readErr error
}

func (b *finishBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF && b.readErr == nil {
		b.readErr = err
	}
	return n, err
}

func (b *finishBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(func() { b.finish(b.readErr) })
	return err
}

// checkRetry decides whether retryablehttp tries again. Every request we
// make reads (GETs, and GraphQL queries, which are POSTs), so any network
// failure may be repeated; what cannot get better by waiting (unknown
// host, bad certificate, our own deadline) is not.
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
		wait, _ := retryAfter(resp.Header, c.clock.Now())
		return wait <= maxRetryAfterWait, nil
	case resp.StatusCode == 0 || (resp.StatusCode >= 500 && resp.StatusCode != http.StatusNotImplemented):
		return true, nil
	}
	return false, nil
}

// pauseBeforeRetry waits before a retry of the call st: what GitLab asked
// for on 429, exponential otherwise, both with jitter so that clients
// turned away together do not come back together. The wait is taken here,
// on the client's Clock, rather than in client-go's retry loop, which
// sleeps on the system clock; it comes before the in-flight slot is taken,
// so waiting holds no slot, and before the attempt's timeout starts.
func (c *Client) pauseBeforeRetry(ctx context.Context, st *callState, req *http.Request) error {
	if st == nil {
		return nil
	}
	retry := int(st.attempts.Load())
	if retry == 0 {
		return nil
	}
	st.mu.Lock()
	last := st.last
	st.mu.Unlock()
	wait := retryWait(retry-1, last, c.clock.Now())
	if !last.answered {
		// No answer at all (refused, reset, timed out): the error itself
		// is reported if the last retry fails too.
		c.log.Warn("GitLab did not answer; retrying", "retry", retry, "of", c.retries, "wait", wait.Round(time.Millisecond))
	} else {
		c.log.Warn("GitLab request failed; retrying", "status", last.status, "path", req.URL.Path, "retry", retry, "of", c.retries, "wait", wait.Round(time.Millisecond))
	}
	return c.clock.Sleep(ctx, wait)
}

// retryWait is how long to wait after attempt (0 for the first) ended as
// last.
func retryWait(attempt int, last attemptEnd, now time.Time) time.Duration {
	if last.answered && last.status == http.StatusTooManyRequests {
		wait, hinted := retryAfter(last.header, now)
		if !hinted {
			wait = exponential(attempt + 2) // start near a second
		}
		return wait + rand.N(wait/10+50*time.Millisecond)
	}
	d := exponential(attempt)
	return d/2 + rand.N(d/2+1)
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
// ParseRetryAfter reads a Retry-After value (RFC 9110): seconds, or an HTTP
// date (a past one waits 0); ok is false for an empty or malformed value.
func ParseRetryAfter(v string, now time.Time) (wait time.Duration, ok bool) {
	v = textproto.TrimString(v)
	if s, err := strconv.ParseInt(v, 10, 64); err == nil && s >= 0 {
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

func retryAfter(h http.Header, now time.Time) (wait time.Duration, ok bool) {
	if h == nil {
		return 0, false
	}
	if wait, ok := ParseRetryAfter(h.Get("Retry-After"), now); ok {
		return wait, true
	}
	if v := h.Get("RateLimit-Reset"); v != "" {
		if s, err := strconv.ParseInt(v, 10, 64); err == nil && s > 0 {
			return max(time.Unix(s, 0).Sub(now), 0), true
		}
	}
	return 0, false
}
