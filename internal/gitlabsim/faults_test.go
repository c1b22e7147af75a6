package gitlabsim_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/gitlabsim"
)

func TestFailRate(t *testing.T) {
	sim, srv := newServer(t, gitlabsim.Options{Projects: 1, MRs: 5, Pipelines: 5, FailRate: 0.3})
	codes := map[int]int{}
	const n = 400
	for range n {
		resp, body := get(t, srv, "/api/v4/version")
		codes[resp.StatusCode]++
		switch resp.StatusCode {
		case 500:
			if string(body) != `{"message":"500 Internal Server Error"}` {
				t.Errorf("500 body %s", body)
			}
		case 502:
			if !strings.Contains(string(body), "GitLab is not responding") {
				t.Errorf("502 body %s", body)
			}
		case 503:
			if string(body) != `{"message":"503 Service Unavailable"}` {
				t.Errorf("503 body %s", body)
			}
		}
	}
	failed := codes[500] + codes[502] + codes[503]
	if failed < n*20/100 || failed > n*40/100 || codes[500] == 0 || codes[502] == 0 || codes[503] == 0 || failed+codes[200] != n {
		t.Errorf("codes %v for rate 0.3", codes)
	}
	if st := sim.Stats(); st.Requests != n {
		t.Errorf("failed answers not counted: %d", st.Requests)
	}
	// Faults never change the world, and 0 turns them off.
	sim.SetFailRate(0)
	for range 20 {
		if resp, _ := get(t, srv, "/api/v4/version"); resp.StatusCode != 200 {
			t.Fatalf("fail rate 0: %d", resp.StatusCode)
		}
	}
	sim.SetFailRate(1)
	if resp, _ := get(t, srv, "/api/v4/projects"); resp.StatusCode < 500 {
		t.Errorf("fail rate 1: %d", resp.StatusCode)
	}
}

func TestTimeoutRate(t *testing.T) {
	sim, srv := newServer(t, gitlabsim.Options{Projects: 1, MRs: 50, Pipelines: 5, TimeoutRate: 1, Hang: time.Hour})
	// A client with a shorter timeout gives up; the hang ends with it.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/v4/version", nil)
	req.Header.Set("PRIVATE-TOKEN", "sim-token")
	start := time.Now()
	if _, err := srv.Client().Do(req); err == nil {
		t.Fatal("want a timeout")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("hung for %v", d)
	}
	// A short hang answers 504.
	sim.SetHang(20 * time.Millisecond)
	resp, body := get(t, srv, "/api/v4/version")
	if resp.StatusCode != 504 || !strings.Contains(string(body), "504") {
		t.Fatalf("after the hang: %d %s", resp.StatusCode, body)
	}
	// Mid-pagination: some pages time out for a client with a timeout.
	sim.SetTimeoutRate(0)
	pid := firstProjectID(t, srv)
	sim.SetHang(time.Hour)
	sim.SetTimeoutRate(0.3)
	client := &http.Client{Timeout: 50 * time.Millisecond}
	var ok, timedOut int
	for page := 1; page <= 20; page++ {
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/api/v4/projects/%d/merge_requests?per_page=5&page=%d", srv.URL, pid, page), nil)
		req.Header.Set("PRIVATE-TOKEN", "sim-token")
		resp, err := client.Do(req)
		if err != nil {
			timedOut++
			continue
		}
		resp.Body.Close()
		ok++
	}
	if timedOut == 0 || ok == 0 {
		t.Errorf("ok %d, timed out %d of 20 at rate 0.3", ok, timedOut)
	}
	sim.SetTimeoutRate(0)
}

func TestProjectFault(t *testing.T) {
	sim, srv := newServer(t, gitlabsim.Options{Projects: 3, MRs: 5, Pipelines: 5})
	pid := firstProjectID(t, srv)
	_, body := get(t, srv, fmt.Sprintf("/api/v4/projects/%d", pid))
	path := decode[map[string]any](t, body)["path_with_namespace"].(string)
	count := func() int { return len(walkAll(t, srv, "/api/v4/projects?per_page=100")) }
	n := count()

	sim.SetProjectFault(fmt.Sprint(pid), 404)
	for _, p := range []string{fmt.Sprint(pid), url.PathEscape(path), fmt.Sprintf("%d/merge_requests", pid), fmt.Sprintf("%d/repository/commits", pid)} {
		resp, body := get(t, srv, "/api/v4/projects/"+p)
		if resp.StatusCode != 404 || string(body) != `{"message":"404 Project Not Found"}` {
			t.Errorf("%s: %d %s", p, resp.StatusCode, body)
		}
	}
	if count() != n-1 {
		t.Errorf("404'd project still listed")
	}
	sim.SetProjectFault(path, 403)
	resp, body := get(t, srv, fmt.Sprintf("/api/v4/projects/%d/pipelines", pid))
	if resp.StatusCode != 403 || string(body) != `{"message":"403 Forbidden"}` {
		t.Errorf("403: %d %s", resp.StatusCode, body)
	}
	if count() != n {
		t.Errorf("403'd project left out of listings")
	}
	sim.SetProjectFault(fmt.Sprint(pid), 0)
	if resp, _ := get(t, srv, fmt.Sprintf("/api/v4/projects/%d/pipelines", pid)); resp.StatusCode != 200 {
		t.Errorf("cleared: %d", resp.StatusCode)
	}
}

func TestPeakPerMinute(t *testing.T) {
	var mu sync.Mutex
	now := epoch
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	set := func(d time.Duration) { mu.Lock(); now = epoch.Add(d); mu.Unlock() }
	sim, srv := newServer(t, gitlabsim.Options{Projects: 1, MRs: 2, Pipelines: 2, Now: clock, FailRate: 0.5})
	hit := func(n int) {
		for range n {
			get(t, srv, "/api/v4/version")
		}
	}
	hit(5)
	set(30 * time.Second)
	hit(3)
	set(61 * time.Second) // the first five fall out of the window
	hit(4)
	set(200 * time.Second)
	hit(1)
	if st := sim.Stats(); st.PeakPerMinute != 8 || st.Requests != 13 {
		t.Errorf("peak %d, requests %d; want 8 and 13", st.PeakPerMinute, st.Requests)
	}
	sim.ResetStats()
	if sim.Stats().PeakPerMinute != 0 {
		t.Error("reset kept the peak")
	}
}
