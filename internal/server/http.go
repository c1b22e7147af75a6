package server

import (
	"net/http"
	"time"
)

// Timeouts bound how long one client may hold the server. Zero fields
// take the Default* values: a listener without them lets a client that
// sends a byte a minute hold a connection, and a goroutine, forever.
type Timeouts struct {
	// ReadHeader is the longest a client may take to send a request's
	// headers.
	ReadHeader time.Duration
	// Read is the longest a client may take to send a whole request,
	// headers and body.
	Read time.Duration
	// WebhookRead replaces Read for GitLab's webhooks, whose bodies reach
	// 25 MB; it counts from the end of the headers.
	WebhookRead time.Duration
	// Write is the longest from the end of a request's headers to the end
	// of its answer; a webhook gets WebhookRead on top of it.
	Write time.Duration
	// Idle is how long a kept-alive connection waits for its next request.
	Idle time.Duration
}

// Defaults of Timeouts.
const (
	DefaultReadHeaderTimeout  = 10 * time.Second
	DefaultReadTimeout        = 30 * time.Second
	DefaultWebhookReadTimeout = 60 * time.Second
	DefaultWriteTimeout       = 2 * time.Minute
	DefaultIdleTimeout        = 2 * time.Minute
)

func (t Timeouts) withDefaults() Timeouts {
	for _, f := range []struct {
		v   *time.Duration
		def time.Duration
	}{
		{&t.ReadHeader, DefaultReadHeaderTimeout}, {&t.Read, DefaultReadTimeout},
		{&t.WebhookRead, DefaultWebhookReadTimeout}, {&t.Write, DefaultWriteTimeout}, {&t.Idle, DefaultIdleTimeout},
	} {
		if *f.v <= 0 {
			*f.v = f.def
		}
	}
	return t
}

// NewHTTPServer returns an http.Server for h with every timeout of t set.
// Every listener labtrail opens is served by one.
func NewHTTPServer(h http.Handler, t Timeouts) *http.Server {
	t = t.withDefaults()
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: t.ReadHeader,
		ReadTimeout:       t.Read,
		WriteTimeout:      t.Write,
		IdleTimeout:       t.Idle,
	}
}

// HTTPServer returns an http.Server for s with every timeout of t set, the
// webhook route's own among them.
func (s *Server) HTTPServer(t Timeouts) *http.Server {
	t = t.withDefaults()
	s.webhookRead, s.write = t.WebhookRead, t.Write
	return NewHTTPServer(s, t)
}

// extendDeadlines gives a webhook's body its own read deadline, counted
// from now (the headers are in), and its answer the write timeout after
// that. Served by an http.Server not built by HTTPServer, it changes
// nothing.
func (s *Server) extendDeadlines(w http.ResponseWriter) {
	if s.webhookRead <= 0 {
		return
	}
	rc := http.NewResponseController(w)
	now := time.Now()
	if err := rc.SetReadDeadline(now.Add(s.webhookRead)); err != nil {
		s.log.Debug("webhook read deadline not set", "err", err)
	}
	if err := rc.SetWriteDeadline(now.Add(s.webhookRead + s.write)); err != nil {
		s.log.Debug("webhook write deadline not set", "err", err)
	}
}
