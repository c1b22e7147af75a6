package gitlab

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// syncBuffer collects log output from concurrent handlers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// server answers every request with h and counts them.
func server(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	n := new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, n
}

// skipClock is a Clock whose sleeps return at once and move its time on by
// what was asked: tests assert the waits the client asked for, and spend
// none of them.
type skipClock struct {
	mu     sync.Mutex
	offset time.Duration
	slept  []time.Duration
}

func (c *skipClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *skipClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.slept = append(c.slept, d)
	c.offset += max(d, 0)
	return nil
}

func (c *skipClock) waits() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.slept)
}

// newClient builds a client of url that skips its waits; mod may set a
// clock of the test's own.
func newClient(t *testing.T, url string, logs *syncBuffer, mod ...func(*Config)) *Client {
	t.Helper()
	cfg := Config{URL: url, Token: testToken, MaxRetries: 2, RequestsPerMinute: 600000, Clock: new(skipClock),
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestErrors(t *testing.T) {
	refused := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		return "http://" + addr
	}()

	for _, tc := range []struct {
		name     string
		handler  http.HandlerFunc // nil: use url
		url      string
		call     func(*Client) error
		mod      func(*Config)
		sentinel error
		message  string // exact, or prefix when it ends in "..."
		requests int64
		// waits, when set, are the bounds [lo, hi) of each wait before a
		// retry.
		waits [][2]time.Duration
	}{
		{
			name: "401",
			handler: func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, 401, map[string]string{"message": "401 Unauthorized"})
			},
			sentinel: ErrUnauthorized,
			message:  "GitLab rejected the token (401 Unauthorized): check that it is valid, not expired and not revoked",
			requests: 1,
		},
		{
			name: "403 insufficient scope",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="Protected by OAuth 2.0", error="insufficient_scope", error_description="The request requires higher privileges than provided by the access token.", scope="api read_api"`)
				writeJSON(w, 403, map[string]string{"error": "insufficient_scope",
					"error_description": "The request requires higher privileges than provided by the access token.", "scope": "api read_api"})
			},
			call: func(c *Client) error {
				_, err := c.Projects(context.Background(), []string{"group/app"})
				return err
			},
			sentinel: ErrForbidden,
			message:  `GitLab token lacks the read_api scope needed to read project "group/app" (403 insufficient_scope): create a token with read_api (or api)`,
			requests: 1,
		},
		{
			name: "404 project",
			handler: func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, 404, map[string]string{"message": "404 Project Not Found"})
			},
			call: func(c *Client) error {
				_, err := c.Projects(context.Background(), []string{"group/missing"})
				return err
			},
			sentinel: ErrNotFound,
			message:  `GitLab project "group/missing" not found (404): check the id or path and that the token's user is a member`,
			requests: 1,
		},
		{
			name: "404 merge requests of a deleted project",
			handler: func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, 404, map[string]string{"message": "404 Project Not Found"})
			},
			call: func(c *Client) error {
				return c.MergeRequests(context.Background(), Project{ID: 9, Path: "group/gone"}, time.Time{}, func(Page) error { return nil })
			},
			sentinel: ErrNotFound,
			message:  `GitLab project "group/gone" not found (404): check the id or path and that the token's user is a member`,
			requests: 1,
		},
		{
			name: "429 storm",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", "1")
				writeJSON(w, 429, map[string]string{"message": "Retry later"})
			},
			sentinel: ErrRateLimited,
			message:  "GitLab rate limit exceeded (429) after 2 retries; retry after 1s",
			requests: 3,
			// Retry-After and up to a tenth more and 50ms of jitter.
			waits: [][2]time.Duration{{time.Second, 1150 * time.Millisecond}, {time.Second, 1150 * time.Millisecond}},
		},
		{
			name: "429 with a long Retry-After is not slept through",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", "600")
				writeJSON(w, 429, map[string]string{"message": "Retry later"})
			},
			sentinel: ErrRateLimited,
			message:  "GitLab rate limit exceeded (429) after 0 retries; retry after 600s",
			requests: 1,
		},
		{
			name: "502 persists",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(502)
			},
			sentinel: ErrUnreachable,
			message:  "GitLab at ... answered 502 Bad Gateway to the request for the current user after 2 retries",
			requests: 3,
			// Exponential from 200ms, each between half and all of it.
			waits: [][2]time.Duration{{100 * time.Millisecond, 200*time.Millisecond + 1}, {200 * time.Millisecond, 400*time.Millisecond + 1}},
		},
		{
			name: "timeout",
			handler: func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-r.Context().Done():
				case <-time.After(2 * time.Second):
				}
			},
			mod:      func(c *Config) { c.HTTPClient = &http.Client{Timeout: 50 * time.Millisecond} },
			sentinel: ErrUnreachable,
			message:  "cannot reach GitLab at ...: ...",
			requests: 3,
		},
		{
			name: "404 from something that is not GitLab",
			handler: func(w http.ResponseWriter, r *http.Request) {
				http.NotFound(w, r)
			},
			sentinel: ErrNotFound,
			message:  "GitLab at ... answered 404 Not Found to the request for the current user: is that the GitLab URL?",
			requests: 1,
		},
		{
			name:     "connection refused",
			url:      refused,
			sentinel: ErrUnreachable,
			message:  "cannot reach GitLab at " + refused + ": dial tcp ...",
		},
		{
			name:     "unknown host",
			url:      "https://gitlab.invalid",
			sentinel: ErrUnreachable,
			message:  "cannot reach GitLab at https://gitlab.invalid: ...",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := new(syncBuffer)
			url, n := tc.url, new(atomic.Int64)
			if tc.handler != nil {
				var srv *httptest.Server
				srv, n = server(t, tc.handler)
				url = srv.URL
			}
			clock := new(skipClock)
			mods := []func(*Config){func(c *Config) { c.Clock = clock }}
			if tc.mod != nil {
				mods = append(mods, tc.mod)
			}
			c := newClient(t, url, logs, mods...)
			call := tc.call
			if call == nil {
				call = func(c *Client) error { _, err := c.Check(context.Background()); return err }
			}
			err := call(c)
			if !errors.Is(err, tc.sentinel) {
				t.Fatalf("got %v, want %v", err, tc.sentinel)
			}
			// "..." stands for the server's URL and, at the end, for
			// whatever the operating system says.
			msg := strings.ReplaceAll(err.Error(), url, "...")
			want := strings.ReplaceAll(tc.message, url, "...")
			if pre, ok := strings.CutSuffix(want, "..."); ok {
				if !strings.HasPrefix(msg, pre) {
					t.Errorf("message %q, want prefix %q", msg, pre)
				}
			} else if msg != want {
				t.Errorf("message %q, want %q", msg, want)
			}
			if tc.handler != nil && n.Load() != tc.requests {
				t.Errorf("server saw %d requests, want %d", n.Load(), tc.requests)
			}
			if strings.Contains(err.Error(), testToken) || strings.Contains(logs.String(), testToken) {
				t.Errorf("token leaked: %q / %q", err, logs)
			}
			if tc.waits != nil {
				checkWaits(t, clock.waits(), tc.waits)
			}
		})
	}
}

// checkWaits compares the waits a client asked for with bounds [lo, hi).
func checkWaits(t *testing.T, got []time.Duration, want [][2]time.Duration) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("waited %v, want %d waits within %v", got, len(want), want)
		return
	}
	for i, w := range want {
		if got[i] < w[0] || got[i] >= w[1] {
			t.Errorf("wait %d is %s, want [%s, %s)", i, got[i], w[0], w[1])
		}
	}
}

func TestRetryAfterIsReported(t *testing.T) {
	srv, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "600")
		w.WriteHeader(429)
	})
	_, err := newClient(t, srv.URL, new(syncBuffer)).Check(context.Background())
	if d, ok := RetryAfter(err); !ok || d != 10*time.Minute {
		t.Errorf("RetryAfter = %s, %v", d, ok)
	}
	if _, ok := RetryAfter(errors.New("x")); ok {
		t.Error("RetryAfter of another error")
	}
}

func TestTransientFailuresAreRetried(t *testing.T) {
	for _, status := range []int{429, 500, 502, 503} {
		var n atomic.Int64
		srv, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
			if n.Add(1) <= 2 {
				w.Header().Set("Retry-After", "0")
				w.WriteHeader(status)
				return
			}
			writeJSON(w, 200, map[string]any{"id": 7, "path_with_namespace": "group/app"})
		})
		clock := new(skipClock)
		c := newClient(t, srv.URL, new(syncBuffer), func(c *Config) { c.Clock = clock })
		ps, err := c.Projects(context.Background(), []string{"7"})
		if err != nil || len(ps) != 1 || ps[0].Path != "group/app" {
			t.Errorf("%d: %v %v", status, ps, err)
		}
		if c.Requests() != 3 {
			t.Errorf("%d: Requests() = %d, want 3", status, c.Requests())
		}
		// A 429's Retry-After: 0 is honoured with jitter only; a 5xx's
		// is not GitLab's to set.
		want := [][2]time.Duration{{0, 50 * time.Millisecond}, {0, 50 * time.Millisecond}}
		if status != 429 {
			want = [][2]time.Duration{{100 * time.Millisecond, 200*time.Millisecond + 1}, {200 * time.Millisecond, 400*time.Millisecond + 1}}
		}
		checkWaits(t, clock.waits(), want)
	}
}

// The wait before a retry after a 429 is what GitLab asked for, in any of
// the forms it asks in, or exponential from near a second without a hint.
func TestRetryWaitFollowsGitLab(t *testing.T) {
	for _, tc := range []struct {
		name  string
		hint  func(h http.Header, now time.Time)
		waits [][2]time.Duration
	}{
		{"Retry-After seconds", func(h http.Header, _ time.Time) { h.Set("Retry-After", "3") },
			[][2]time.Duration{{3 * time.Second, 3350 * time.Millisecond}, {3 * time.Second, 3350 * time.Millisecond}}},
		// Dates have whole seconds, so up to one is lost.
		{"Retry-After date", func(h http.Header, now time.Time) {
			h.Set("Retry-After", now.Add(3*time.Second).UTC().Format(http.TimeFormat))
		},
			[][2]time.Duration{{2 * time.Second, 3350 * time.Millisecond}, {2 * time.Second, 3350 * time.Millisecond}}},
		{"RateLimit-Reset", func(h http.Header, now time.Time) {
			h.Set("RateLimit-Reset", strconv.FormatInt(now.Add(3*time.Second).Unix(), 10))
		},
			[][2]time.Duration{{2 * time.Second, 3350 * time.Millisecond}, {2 * time.Second, 3350 * time.Millisecond}}},
		{"no hint", func(http.Header, time.Time) {},
			[][2]time.Duration{{800 * time.Millisecond, 930 * time.Millisecond}, {1600 * time.Millisecond, 1810 * time.Millisecond}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := new(skipClock)
			srv, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
				tc.hint(w.Header(), clock.Now())
				w.WriteHeader(429)
			})
			c := newClient(t, srv.URL, new(syncBuffer), func(c *Config) { c.Clock = clock })
			if _, err := c.Check(context.Background()); !errors.Is(err, ErrRateLimited) {
				t.Fatalf("got %v, want ErrRateLimited", err)
			}
			checkWaits(t, clock.waits(), tc.waits)
		})
	}
}

func TestCancellationStopsWaiting(t *testing.T) {
	arrived := make(chan struct{}, 10)
	srv, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		// Within what the client sleeps through.
		w.Header().Set("Retry-After", "240")
		w.WriteHeader(429)
	})
	// The system clock: only a wait that really blocks shows that
	// cancellation ends it.
	c := newClient(t, srv.URL, new(syncBuffer), func(c *Config) { c.Clock = nil })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := c.Check(ctx); done <- err }()
	<-arrived
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("got %v, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Check kept waiting out Retry-After after cancellation")
	}
}

func TestBadURL(t *testing.T) {
	for _, u := range []string{"", "gitlab.com", "ftp://gitlab.com", "https://", "http:///path", "https://user:s3cret@gitlab.com", "https://gitlab.com/?x=1", "::"} {
		_, err := New(Config{URL: u, Token: testToken})
		if !errors.Is(err, ErrBadURL) {
			t.Errorf("%q: got %v, want ErrBadURL", u, err)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), testToken) {
			t.Errorf("%q: secret in %q", u, err)
		}
	}
	if _, err := New(Config{URL: testToken, Token: testToken}); !errors.Is(err, ErrBadURL) || strings.Contains(err.Error(), testToken) {
		t.Errorf("token pasted as URL: %v", err)
	}
	if _, err := New(Config{URL: "https://gitlab.com"}); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("no token: %v", err)
	}
}

func TestURLForms(t *testing.T) {
	for _, suffix := range []string{"", "/", "/api/v4", "/api/v4/"} {
		var path string
		srv, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
			path = r.URL.Path
			writeJSON(w, 200, map[string]any{"id": 7})
		})
		c := newClient(t, srv.URL+suffix, new(syncBuffer))
		if _, err := c.Projects(context.Background(), []string{"7"}); err != nil || path != "/api/v4/projects/7" {
			t.Errorf("%q: path %q, %v", suffix, path, err)
		}
	}
}
