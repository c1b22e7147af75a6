package gitlab

import (
	"context"
	"errors"
	"net/http"
	"os"
	"reflect"
	"strconv"
	"sync"
	"testing"
	"time"
)

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name   string
		pat    func(w http.ResponseWriter)
		want   Identity
		wantIs error
	}{
		{
			name: "personal access token",
			pat:  func(w http.ResponseWriter) { _, _ = w.Write(fixture(t, "list_personal_access_tokens_single.json")) },
			want: Identity{ID: 1, Username: "john_smith", Name: "John Smith", Version: "17.5.0-ee", Revision: "abc123", Scopes: []string{"api"}},
		},
		{
			name: "project token cannot describe itself",
			pat:  func(w http.ResponseWriter) { writeJSON(w, 404, map[string]string{"message": "404 Not Found"}) },
			want: Identity{ID: 1, Username: "john_smith", Name: "John Smith", Version: "17.5.0-ee", Revision: "abc123"},
		},
		{
			name: "OAuth token",
			pat:  func(w http.ResponseWriter) { writeJSON(w, 403, map[string]string{"message": "403 Forbidden"}) },
			want: Identity{ID: 1, Username: "john_smith", Name: "John Smith", Version: "17.5.0-ee", Revision: "abc123"},
		},
		{
			name: "token without read_api",
			pat: func(w http.ResponseWriter) {
				writeJSON(w, 200, map[string]any{"id": 2, "scopes": []string{"read_user", "read_repository"}, "active": true})
			},
			want:   Identity{ID: 1, Username: "john_smith", Name: "John Smith", Version: "17.5.0-ee", Revision: "abc123", Scopes: []string{"read_user", "read_repository"}},
			wantIs: ErrForbidden,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, n := server(t, func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("PRIVATE-TOKEN") != testToken {
					writeJSON(w, 401, map[string]string{"message": "401 Unauthorized"})
					return
				}
				switch r.URL.Path {
				case "/api/v4/user":
					_, _ = w.Write(fixture(t, "get_user.json"))
				case "/api/v4/version":
					writeJSON(w, 200, map[string]string{"version": "17.5.0-ee", "revision": "abc123"})
				case "/api/v4/personal_access_tokens/self":
					tc.pat(w)
				default:
					t.Errorf("unexpected %s", r.URL)
				}
			})
			c := newClient(t, srv.URL, new(syncBuffer))
			id, err := c.Check(context.Background())
			if !errors.Is(err, tc.wantIs) || (tc.wantIs == nil && err != nil) {
				t.Fatalf("error %v, want %v", err, tc.wantIs)
			}
			if !reflect.DeepEqual(id, tc.want) {
				t.Errorf("identity %+v, want %+v", id, tc.want)
			}
			if n.Load() != 3 || c.Requests() != 3 {
				t.Errorf("%d requests served, %d counted", n.Load(), c.Requests())
			}
		})
	}
}

func TestProjectsBySelector(t *testing.T) {
	srv, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.EscapedPath() {
		case "/api/v4/projects/7", "/api/v4/projects/group%2Fapp":
			writeJSON(w, 200, map[string]any{"id": 7, "name": "App", "path_with_namespace": "group/app",
				"web_url": "https://gitlab.example.com/group/app", "default_branch": "main", "archived": false,
				"last_activity_at": "2024-03-01T10:00:00.123+01:00"})
		case "/api/v4/projects/group%2Fsub%2Flib":
			writeJSON(w, 200, map[string]any{"id": 9, "name": "Lib", "path_with_namespace": "group/sub/lib", "archived": true})
		default:
			t.Errorf("unexpected %s", r.URL.EscapedPath())
			writeJSON(w, 404, map[string]string{"message": "404 Project Not Found"})
		}
	})
	c := newClient(t, srv.URL, new(syncBuffer))
	ps, err := c.Projects(context.Background(), []string{"7", " group/app ", "group/sub/lib", ""})
	if err != nil {
		t.Fatal(err)
	}
	want := []Project{
		{ID: 7, Path: "group/app", Name: "App", WebURL: "https://gitlab.example.com/group/app", DefaultBranch: "main",
			LastActivityAt: time.Date(2024, 3, 1, 9, 0, 0, 123e6, time.UTC)},
		{ID: 9, Path: "group/sub/lib", Name: "Lib", Archived: true},
	}
	if !reflect.DeepEqual(ps, want) {
		t.Errorf("got %+v\nwant %+v", ps, want)
	}
}

func TestProjectsOfMember(t *testing.T) {
	srv, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if r.URL.Path != "/api/v4/projects" || q.Get("membership") != "true" || q.Get("archived") != "false" || q.Get("per_page") != "100" {
			t.Errorf("unexpected %s", r.URL)
		}
		page, _ := strconv.Atoi(q.Get("page"))
		page = max(page, 1)
		if page < 3 {
			w.Header().Set("X-Next-Page", strconv.Itoa(page+1))
		}
		var out []map[string]any
		for i := range 2 {
			id := page*10 + i
			out = append(out, map[string]any{"id": id, "path_with_namespace": "g/p" + strconv.Itoa(id)})
		}
		writeJSON(w, 200, out)
	})
	c := newClient(t, srv.URL, new(syncBuffer))
	ps, err := c.Projects(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, p := range ps {
		ids = append(ids, p.ID)
	}
	if !reflect.DeepEqual(ids, []int64{10, 11, 20, 21, 30, 31}) {
		t.Errorf("ids %v", ids)
	}
}

func TestLimiterIsPerToken(t *testing.T) {
	srv, served := server(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"id": 7})
	})
	// Limiters outlive clients; a token of its own keeps a rerun of this
	// test (-count) from inheriting an empty budget.
	token := "glpat-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	slow := func(c *Config) { c.RequestsPerMinute, c.Token = 1, token }
	c := newClient(t, srv.URL, new(syncBuffer), slow)
	// The configured figure is the budget, less 2%, in bursts of a
	// second's share.
	if l := c.limiter; l.perWindow != 1 || l.burst != 1 {
		t.Fatalf("limit 1/min: %d a minute, burst %d", l.perWindow, l.burst)
	}
	if d := newClient(t, srv.URL, new(syncBuffer)); d.limiter.perWindow != 588000 || d.limiter.burst != 10000 {
		t.Errorf("configured limit not used: %d a minute, burst %d", d.limiter.perWindow, d.limiter.burst)
	}
	if d, _ := New(Config{URL: srv.URL, Token: "other"}); d.limiter.perWindow != 588 || d.limiter.burst != 10 || d.limiter.interval != 25*time.Millisecond {
		t.Errorf("default limiter: %d a minute, burst %d, one every %s; want 588, 10, 25ms", d.limiter.perWindow, d.limiter.burst, d.limiter.interval)
	}

	if _, err := c.Projects(context.Background(), []string{"7"}); err != nil {
		t.Fatal(err)
	}
	// The next token comes in a minute; a caller with less time is told at
	// once, and nothing reaches GitLab.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Projects(ctx, []string{"7"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("second request within the minute: %v", err)
	}
	// A second client for the same token draws on the same budget.
	twin := newClient(t, srv.URL, new(syncBuffer), slow)
	if twin.limiter != c.limiter {
		t.Error("same URL, token and limit, but a limiter of its own")
	}
	if _, err := twin.Projects(ctx, []string{"7"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("same token, new client: %v", err)
	}
	if served.Load() != 1 || c.Requests() != 1 || twin.Requests() != 0 {
		t.Errorf("served %d, counted %d+%d", served.Load(), c.Requests(), twin.Requests())
	}
	// A cancelled wait ends at once too.
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if _, err := twin.Projects(ctx, []string{"7"}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

// When GitLab says no requests remain in its window, the next request waits
// for the window's reset instead of earning a 429.
func TestWaitsForRateLimitResetWhenNoneRemain(t *testing.T) {
	clock := new(skipClock)
	var mu sync.Mutex
	var times []time.Time
	reset := clock.Now().Add(1500 * time.Millisecond).Truncate(time.Second).Add(time.Second)
	srv, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		times = append(times, clock.Now())
		first := len(times) == 1
		mu.Unlock()
		if first {
			w.Header().Set("RateLimit-Remaining", "0")
			w.Header().Set("RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10))
		}
		writeJSON(w, 200, map[string]any{"id": 7, "path_with_namespace": "a/b"})
	})
	token := "glpat-gate-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	c := newClient(t, srv.URL, new(syncBuffer), func(c *Config) { c.Token, c.Clock = token, clock })
	for i := 0; i < 2; i++ {
		if _, err := c.Projects(context.Background(), []string{"7"}); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(times) != 2 || times[1].Before(reset) {
		t.Errorf("second request at %v, before the reset at %v", times[len(times)-1], reset)
	}
	// One pause, of at most the 2.5s to the reset.
	if w := clock.waits(); len(w) != 1 || w[0] <= 0 || w[0] > 2500*time.Millisecond {
		t.Errorf("waits %v, want one until the reset", w)
	}
}

// The client-side limit is waited out on the client's clock: at 60 a
// minute (a burst of one, paced at four a second), each request after the
// first waits about a quarter of a second, and the waits are what the
// limiter asked, not wall time.
func TestLimiterWaitsOnTheClock(t *testing.T) {
	srv, served := server(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"id": 7})
	})
	clock := new(skipClock)
	token := "glpat-clock-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	c := newClient(t, srv.URL, new(syncBuffer), func(c *Config) { c.Token, c.RequestsPerMinute, c.Clock = token, 60, clock })
	for range 3 {
		if _, err := c.Projects(context.Background(), []string{"7"}); err != nil {
			t.Fatal(err)
		}
	}
	// 60 a minute paced at four times that: one every 250ms, less the
	// (wall) time the request itself took.
	interval := 250 * time.Millisecond
	w := clock.waits()
	if served.Load() != 3 || len(w) != 2 {
		t.Fatalf("served %d, waits %v", served.Load(), w)
	}
	for i, d := range w {
		if d < interval-50*time.Millisecond || d > interval {
			t.Errorf("wait %d is %s, want about %s", i, d, interval)
		}
	}
}
