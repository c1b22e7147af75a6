package gitlab

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// AuditRecord describes one HTTP attempt made to GitLab. Nothing in it can
// carry the token: the token travels in a header, which is not recorded,
// and query parameters that hold secrets are dropped.
type AuditRecord struct {
	Time   time.Time // when the attempt started
	Method string
	Path   string // path and query, secrets removed
	Status int    // 0 when no answer came (refused, timed out)
	// Duration runs until the answer was read to its end.
	Duration time.Duration
	// RateLimitRemaining is GitLab's RateLimit-Remaining; -1 when absent.
	RateLimitRemaining int
	Job                string // from WithJob; "" if none
	Err                string // why the attempt failed without an answer
}

type jobKey struct{}

// WithJob labels the requests made with ctx, so audit records can be told
// apart by the job (a sync, a check) that caused them.
func WithJob(ctx context.Context, job string) context.Context {
	return context.WithValue(ctx, jobKey{}, job)
}

// JobFrom returns the label WithJob put on ctx, "" if none.
func JobFrom(ctx context.Context) string {
	job, _ := ctx.Value(jobKey{}).(string)
	return job
}

// secretParams are query parameters GitLab accepts credentials in; this
// client never sends them, but a Link header or a caller's URL might.
var secretParams = []string{"private_token", "access_token", "job_token", "token", "password", "secret", "client_secret", "refresh_token", "sig", "signature"}

func auditPath(u *url.URL) string {
	p := u.EscapedPath()
	if u.RawQuery == "" {
		return p
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		// A query that does not parse cannot be cleaned piecewise; it is
		// left out rather than risk a secret.
		return p + "?(unparsable query)"
	}
	for k := range q {
		lk := strings.ToLower(k)
		for _, s := range secretParams {
			if lk == s || strings.HasSuffix(lk, "_"+s) {
				q.Del(k)
				break
			}
		}
	}
	if len(q) == 0 {
		return p
	}
	return p + "?" + q.Encode()
}

func (c *Client) report(req *http.Request, start time.Time, resp *http.Response, err error) {
	if c.audit == nil {
		return
	}
	rec := AuditRecord{
		Time:               start,
		Method:             req.Method,
		Path:               auditPath(req.URL),
		Duration:           time.Since(start),
		RateLimitRemaining: -1,
	}
	rec.Job = JobFrom(req.Context())
	if resp != nil {
		rec.Status = resp.StatusCode
		if v := resp.Header.Get("RateLimit-Remaining"); v != "" {
			if n, perr := strconv.Atoi(strings.TrimSpace(v)); perr == nil {
				rec.RateLimitRemaining = n
			}
		}
	}
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			// url.Error repeats the URL, query and all; the cause is
			// enough.
			err = ue.Err
		}
		rec.Err = c.redact(err.Error())
	}
	c.audit(rec)
}
