package digest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/labtrail/labtrail/internal/gitlab"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labtrail/labtrail/internal/store"
)

// Destination is where a digest goes: a name for the record of sends
// ("slack", "webhook"), a URL, and the body it takes.
type Destination struct {
	Name string
	URL  string
	Body func(*Digest) ([]byte, error)
}

// Slack is the destination of a Slack incoming webhook.
func Slack(webhookURL string) Destination {
	return Destination{Name: "slack", URL: webhookURL, Body: func(d *Digest) ([]byte, error) { return json.Marshal(d.Slack()) }}
}

// Webhook is the destination of a generic JSON webhook: the digest as
// JSON.
func Webhook(webhookURL string) Destination {
	return Destination{Name: "webhook", URL: webhookURL, Body: (*Digest).JSON}
}

// Sender posts digests, each period once per destination.
type Sender struct {
	// Store records the sends; required.
	Store store.DigestStore
	// Client posts; nil is a client with a 30 s timeout.
	Client *http.Client
	Log    *slog.Logger
	// Attempts bounds the posts of one digest; default 5.
	Attempts int
	// Backoff is the wait after the first failed post, doubled after
	// each; default 2 s.
	Backoff time.Duration
	// MaxWait bounds a wait a 429's Retry-After asks for; one asking
	// longer ends the attempts. Default 5 minutes.
	MaxWait time.Duration
	// Lease is how long a claim stands before another sender takes it
	// for a dead one's; default 15 minutes (longer than all attempts).
	Lease time.Duration
	// Now is the clock of the records; default time.Now.
	Now func() time.Time
}

// Result is what sending a digest to one destination did.
type Result struct {
	Destination string `json:"destination"`
	// Sent: this call delivered it. Skipped: it was sent before, or
	// another sender holds it now (Record says which).
	Sent     bool             `json:"sent"`
	Skipped  bool             `json:"skipped"`
	Attempts int              `json:"attempts"`
	Record   store.DigestSend `json:"record"`
	Err      error            `json:"-"`
}

func (s *Sender) defaults() {
	if s.Client == nil {
		s.Client = &http.Client{Timeout: 30 * time.Second}
	}
	if s.Log == nil {
		s.Log = slog.Default()
	}
	if s.Attempts <= 0 {
		s.Attempts = 5
	}
	if s.Backoff <= 0 {
		s.Backoff = 2 * time.Second
	}
	if s.MaxWait <= 0 {
		s.MaxWait = 5 * time.Minute
	}
	if s.Lease <= 0 {
		s.Lease = 15 * time.Minute
	}
	if s.Now == nil {
		s.Now = time.Now
	}
}

// Send sends d to each destination that has not had it: the period is
// claimed in the store before the first post and marked sent after a 2xx,
// or failed with the error (the URL's secret part masked), which sync
// status then shows.
func (s *Sender) Send(ctx context.Context, d *Digest, dests ...Destination) []Result {
	s.defaults()
	out := make([]Result, 0, len(dests))
	for _, dst := range dests {
		r := Result{Destination: dst.Name}
		rec, ok, err := s.Store.ClaimDigest(ctx, d.Key, dst.Name, s.Now(), s.Lease)
		r.Record = rec
		if err != nil {
			r.Err = err
			s.Log.Error("digest: record the send", "digest", d.Key, "destination", dst.Name, "err", err)
			out = append(out, r)
			continue
		}
		if !ok {
			r.Skipped = true
			s.Log.Info("digest: already sent or being sent", "digest", d.Key, "destination", dst.Name,
				"sent_at", rec.SentAt, "claimed_at", rec.ClaimedAt)
			out = append(out, r)
			continue
		}
		r.Attempts, r.Err = s.post(ctx, d, dst)
		msg := ""
		if r.Err != nil {
			msg = r.Err.Error()
		}
		// The outcome is recorded even when ctx ended: a claim left
		// standing would hold the period for a whole lease.
		if err := s.Store.FinishDigest(context.WithoutCancel(ctx), d.Key, dst.Name, s.Now(), msg); err != nil {
			s.Log.Error("digest: record the outcome", "digest", d.Key, "destination", dst.Name, "err", err)
		}
		if r.Err != nil {
			s.Log.Error("digest: send failed", "digest", d.Key, "destination", dst.Name, "url", Mask(dst.URL),
				"attempts", r.Attempts, "err", r.Err)
		} else {
			r.Sent = true
			s.Log.Info("digest sent", "digest", d.Key, "destination", dst.Name, "url", Mask(dst.URL), "attempts", r.Attempts)
		}
		out = append(out, r)
	}
	return out
}

// post posts d to dst, retrying 5xx, 429 and failures to connect or
// answer, and says how many posts it made.
func (s *Sender) post(ctx context.Context, d *Digest, dst Destination) (int, error) {
	body, err := dst.Body(d)
	if err != nil {
		return 0, fmt.Errorf("render: %w", err)
	}
	wait := s.Backoff
	for attempt := 1; ; attempt++ {
		retry, after, err := s.postOnce(ctx, dst, body)
		if err == nil {
			return attempt, nil
		}
		if !retry || attempt >= s.Attempts || ctx.Err() != nil {
			if retry && attempt >= s.Attempts {
				err = fmt.Errorf("%w (gave up after %d attempts)", err, attempt)
			}
			return attempt, err
		}
		next := wait
		if after > 0 {
			if after > s.MaxWait {
				return attempt, fmt.Errorf("%w; asked to retry after %s, longer than the %s labtrail waits", err, after, s.MaxWait)
			}
			next = after
		}
		s.Log.Warn("digest: post failed, retrying", "destination", dst.Name, "url", Mask(dst.URL), "attempt", attempt,
			"retry_in", next, "err", err)
		t := time.NewTimer(next)
		select {
		case <-ctx.Done():
			t.Stop()
			return attempt, fmt.Errorf("%w; stopped waiting to retry: %v", err, ctx.Err())
		case <-t.C:
		}
		wait *= 2
	}
}

// postOnce posts once and says whether a failure is worth retrying and
// how long the destination asked to wait (Retry-After).
func (s *Sender) postOnce(ctx context.Context, dst Destination, body []byte) (retry bool, after time.Duration, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, dst.URL, bytes.NewReader(body))
	if err != nil {
		return false, 0, fmt.Errorf("post to %s: %s", Mask(dst.URL), maskErr(err, dst.URL))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "labtrail-digest")
	resp, err := s.Client.Do(req)
	if err != nil {
		// A timeout or a refused connection may pass; an error of ours
		// (a malformed URL) will not, but it is cheaper to retry it than
		// to tell every network error apart.
		var ne net.Error
		timeout := errors.As(err, &ne) && ne.Timeout()
		what := "post"
		if timeout {
			what = "timed out posting"
		}
		return true, 0, fmt.Errorf("%s to %s: %s", what, Mask(dst.URL), maskErr(err, dst.URL))
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return false, 0, nil
	}
	err = fmt.Errorf("%s answered %d: %s", Mask(dst.URL), resp.StatusCode, strings.TrimSpace(cut(string(snippet), 200)))
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		return true, retryAfter(resp.Header.Get("Retry-After"), s.Now()), err
	case resp.StatusCode >= 500:
		return true, retryAfter(resp.Header.Get("Retry-After"), s.Now()), err
	}
	return false, 0, err
}

// retryAfter is how long a Retry-After value asks to wait, 0 for none.
func retryAfter(v string, now time.Time) time.Duration {
	wait, _ := gitlab.ParseRetryAfter(v, now)
	return wait
}

// Mask writes a webhook URL without its secret: user info, query values
// and every path segment after the first are replaced by "***"
// (https://hooks.slack.com/services/***).
func Mask(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(a malformed URL)"
	}
	m := u.Scheme + "://"
	if u.User != nil {
		m += "***@"
	}
	m += u.Host
	segs := strings.Split(strings.TrimPrefix(u.EscapedPath(), "/"), "/")
	if segs[0] != "" {
		m += "/" + segs[0]
	}
	if len(segs) > 1 {
		m += "/***"
	}
	if u.RawQuery != "" {
		m += "?***"
	}
	return m
}

// maskErr is err's message with the URL in it masked (net/http quotes
// the whole URL in its errors).
func maskErr(err error, raw string) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	msg := err.Error()
	if raw != "" {
		msg = strings.ReplaceAll(msg, raw, Mask(raw))
	}
	return msg
}
