package gitlabsim_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/gitlabsim"
)

var epoch = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func fixedClock() time.Time { return epoch }

func newServer(t testing.TB, o gitlabsim.Options) (*gitlabsim.Sim, *httptest.Server) {
	t.Helper()
	if o.Now == nil {
		o.Now = fixedClock
	}
	sim := gitlabsim.New(o)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return sim, srv
}

// get fetches path (relative to srv, or absolute) with the default token.
func get(t testing.TB, srv *httptest.Server, path string) (*http.Response, []byte) {
	t.Helper()
	return getWith(t, srv, path, map[string]string{"PRIVATE-TOKEN": "sim-token"})
}

func getWith(t testing.TB, srv *httptest.Server, path string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	u := path
	if !strings.HasPrefix(path, "http") {
		u = srv.URL + path
	}
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func decode[T any](t testing.TB, body []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	return v
}

type idItem struct {
	ID        int64     `json:"id"`
	IID       int64     `json:"iid"`
	UpdatedAt time.Time `json:"updated_at"`
	Status    string    `json:"status"`
	State     string    `json:"state"`
}

func firstProjectID(t testing.TB, srv *httptest.Server) int64 {
	t.Helper()
	resp, body := get(t, srv, "/api/v4/projects?order_by=id&sort=asc&per_page=1")
	if resp.StatusCode != 200 {
		t.Fatalf("projects: %d %s", resp.StatusCode, body)
	}
	ps := decode[[]idItem](t, body)
	if len(ps) != 1 {
		t.Fatalf("projects: %s", body)
	}
	return ps[0].ID
}

func TestDeterminism(t *testing.T) {
	o := gitlabsim.Options{Seed: 42, Projects: 3, MRs: 40, Pipelines: 40, Now: fixedClock}
	a, b := gitlabsim.New(o), gitlabsim.New(o)
	if !reflect.DeepEqual(a.Truth(), b.Truth()) {
		t.Fatal("same seed, different truth")
	}
	for range 3 {
		a.Advance()
		b.Advance()
	}
	if !reflect.DeepEqual(a.Truth(), b.Truth()) {
		t.Fatal("same seed and steps, different truth after Advance")
	}
	o.Seed = 43
	if reflect.DeepEqual(gitlabsim.New(o).Truth(), gitlabsim.New(gitlabsim.Options{Seed: 42, Projects: 3, MRs: 40, Pipelines: 40, Now: fixedClock}).Truth()) {
		t.Fatal("different seeds, same truth")
	}

	// Same seed over HTTP: byte-identical pages.
	_, s1 := newServer(t, gitlabsim.Options{Seed: 7, Projects: 2, MRs: 30, Pipelines: 30})
	_, s2 := newServer(t, gitlabsim.Options{Seed: 7, Projects: 2, MRs: 30, Pipelines: 30})
	pid := firstProjectID(t, s1)
	for _, path := range []string{"/api/v4/projects/%d/merge_requests?state=all", "/api/v4/projects/%d/pipelines"} {
		_, b1 := get(t, s1, fmt.Sprintf(path, pid))
		_, b2 := get(t, s2, fmt.Sprintf(path, pid))
		b2 = []byte(strings.ReplaceAll(string(b2), s2.Listener.Addr().String(), s1.Listener.Addr().String()))
		if string(b1) != string(b2) {
			t.Errorf("%s differs between two sims with one seed", path)
		}
	}
}

func TestTruthShape(t *testing.T) {
	sim := gitlabsim.New(gitlabsim.Options{Projects: 2, MRs: 10, Pipelines: 10, Now: fixedClock})
	truth := sim.Truth()
	kinds := map[change.Kind]int{}
	for i, e := range truth {
		kinds[e.Kind]++
		if i > 0 && truth[i-1].ID >= e.ID {
			t.Fatalf("truth not sorted by id at %d: %s >= %s", i, truth[i-1].ID, e.ID)
		}
		if e.UpdatedAt.After(epoch) || e.UpdatedAt.Before(epoch.Add(-181*24*time.Hour)) {
			t.Errorf("%s updated_at %v outside the 180 days before the clock", e.ID, e.UpdatedAt)
		}
	}
	if kinds[change.KindMergeRequest] != 20 || kinds[change.KindPipeline] != 20 || kinds[change.KindJob] < 60 {
		t.Fatalf("kinds = %v", kinds)
	}
}

func TestAuth(t *testing.T) {
	_, srv := newServer(t, gitlabsim.Options{Projects: 1, MRs: 3, Pipelines: 3})
	tests := []struct {
		name string
		hdr  map[string]string
		want int
	}{
		{"no token", nil, 401},
		{"wrong private token", map[string]string{"PRIVATE-TOKEN": "nope"}, 401},
		{"wrong bearer", map[string]string{"Authorization": "Bearer nope"}, 401},
		{"private token", map[string]string{"PRIVATE-TOKEN": "sim-token"}, 200},
		{"bearer", map[string]string{"Authorization": "Bearer sim-token"}, 200},
	}
	for _, tc := range tests {
		for _, path := range []string{"/api/v4/user", "/api/v4/projects"} {
			t.Run(tc.name+path, func(t *testing.T) {
				resp, body := getWith(t, srv, path, tc.hdr)
				if resp.StatusCode != tc.want {
					t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.want, body)
				}
				if tc.want == 401 && string(body) != `{"message":"401 Unauthorized"}` {
					t.Fatalf("body %s", body)
				}
			})
		}
	}
}

func TestReadUserScope(t *testing.T) {
	_, srv := newServer(t, gitlabsim.Options{Projects: 1, MRs: 3, Pipelines: 3, Scopes: []string{"read_user"}})
	for path, want := range map[string]int{
		"/api/v4/user": 200, "/api/v4/version": 200, "/api/v4/personal_access_tokens/self": 200,
		"/api/v4/projects": 403, "/api/v4/projects/2741/merge_requests": 403,
	} {
		resp, body := get(t, srv, path)
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d: %s", path, resp.StatusCode, want, body)
		}
		if want == 403 && !strings.Contains(string(body), `"error":"insufficient_scope"`) {
			t.Errorf("%s: body %s", path, body)
		}
	}
	_, body := get(t, srv, "/api/v4/personal_access_tokens/self")
	tok := decode[struct{ Scopes []string }](t, body)
	if !reflect.DeepEqual(tok.Scopes, []string{"read_user"}) {
		t.Errorf("scopes = %v", tok.Scopes)
	}
}

func TestNotFound(t *testing.T) {
	_, srv := newServer(t, gitlabsim.Options{Projects: 1, MRs: 3, Pipelines: 3})
	tests := []struct{ path, body string }{
		{"/api/v4/nothing/here", `{"error":"404 Not Found"}`},
		{"/api/v4/projects/999999", `{"message":"404 Project Not Found"}`},
		{"/api/v4/projects/nope%2Fnope/merge_requests", `{"message":"404 Project Not Found"}`},
		{"/api/v4/groups/nope/projects", `{"message":"404 Group Not Found"}`},
	}
	for _, tc := range tests {
		resp, body := get(t, srv, tc.path)
		if resp.StatusCode != 404 || string(body) != tc.body {
			t.Errorf("%s: %d %s, want 404 %s", tc.path, resp.StatusCode, body, tc.body)
		}
	}
}

func TestProjectByPath(t *testing.T) {
	_, srv := newServer(t, gitlabsim.Options{Projects: 4, Groups: 2, MRs: 2, Pipelines: 2})
	_, body := get(t, srv, "/api/v4/projects?per_page=100")
	ps := decode[[]struct {
		ID   int64  `json:"id"`
		Path string `json:"path_with_namespace"`
	}](t, body)
	if len(ps) != 4 {
		t.Fatalf("got %d projects", len(ps))
	}
	for _, p := range ps {
		resp, body := get(t, srv, "/api/v4/projects/"+url.PathEscape(p.Path))
		if resp.StatusCode != 200 || decode[idItem](t, body).ID != p.ID {
			t.Errorf("project %s by path: %d %s", p.Path, resp.StatusCode, body)
		}
		group := strings.Split(p.Path, "/")[0]
		_, body = get(t, srv, "/api/v4/groups/"+group+"/projects?include_subgroups=true")
		if !strings.Contains(string(body), `"path_with_namespace":"`+p.Path+`"`) {
			t.Errorf("group %s projects do not list %s", group, p.Path)
		}
	}
	_, body = get(t, srv, "/api/v4/projects?simple=true&membership=true&order_by=name&sort=asc")
	simple := decode[[]map[string]any](t, body)
	if _, ok := simple[0]["permissions"]; ok || len(simple) != 4 {
		t.Errorf("simple=true gave the full shape or wrong count: %s", body)
	}
}

// walk follows X-Next-Page from first and returns every item, checking
// each page's headers against GitLab's rules.
func walk(t *testing.T, srv *httptest.Server, first string) []idItem {
	t.Helper()
	var all []idItem
	next := first
	for page := 1; next != ""; page++ {
		resp, body := get(t, srv, next)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", next, resp.StatusCode, body)
		}
		h := resp.Header
		if h.Get("X-Page") != strconv.Itoa(page) {
			t.Fatalf("X-Page %q on page %d", h.Get("X-Page"), page)
		}
		if page == 1 && h.Get("X-Prev-Page") != "" || page > 1 && h.Get("X-Prev-Page") != strconv.Itoa(page-1) {
			t.Fatalf("X-Prev-Page %q on page %d", h.Get("X-Prev-Page"), page)
		}
		if !strings.Contains(h.Get("Link"), `rel="first"`) {
			t.Fatalf("Link without first: %s", h.Get("Link"))
		}
		all = append(all, decode[[]idItem](t, body)...)
		if n := h.Get("X-Next-Page"); n != "" {
			if !strings.Contains(h.Get("Link"), `rel="next"`) {
				t.Fatalf("X-Next-Page %s without Link next", n)
			}
			u, _ := url.Parse(first)
			q := u.Query()
			q.Set("page", n)
			u.RawQuery = q.Encode()
			next = u.String()
		} else {
			if strings.Contains(h.Get("Link"), `rel="next"`) {
				t.Fatalf("last page has Link next: %s", h.Get("Link"))
			}
			next = ""
		}
	}
	return all
}

func TestPaginationWalk(t *testing.T) {
	sim, srv := newServer(t, gitlabsim.Options{Projects: 2, MRs: 53, Pipelines: 61})
	pid := firstProjectID(t, srv)
	want := map[string]map[string]bool{"mr": {}, "pipeline": {}}
	for _, e := range sim.Truth() {
		switch {
		case e.Kind == change.KindMergeRequest && strings.HasPrefix(e.ID, fmt.Sprintf("mr-%d-", pid)):
			want["mr"][e.ID] = true
		case e.Kind == change.KindPipeline && strings.HasPrefix(e.ID, fmt.Sprintf("pipeline-%d-", pid)):
			want["pipeline"][e.ID] = true
		}
	}
	tests := []struct {
		kind, path string
		id         func(idItem) string
	}{
		{"mr", "/api/v4/projects/%d/merge_requests?state=all&per_page=7", func(i idItem) string { return change.MergeRequestID(pid, i.IID) }},
		{"mr", "/api/v4/projects/%d/merge_requests?state=all&per_page=10&order_by=updated_at&sort=asc", func(i idItem) string { return change.MergeRequestID(pid, i.IID) }},
		{"mr", "/api/v4/projects/%d/merge_requests?per_page=100&order_by=title", func(i idItem) string { return change.MergeRequestID(pid, i.IID) }},
		{"pipeline", "/api/v4/projects/%d/pipelines?per_page=9", func(i idItem) string { return change.PipelineID(pid, i.ID) }},
		{"pipeline", "/api/v4/projects/%d/pipelines?per_page=20&order_by=updated_at&sort=asc", func(i idItem) string { return change.PipelineID(pid, i.ID) }},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			got := map[string]bool{}
			for _, it := range walk(t, srv, srv.URL+fmt.Sprintf(tc.path, pid)) {
				id := tc.id(it)
				if got[id] {
					t.Fatalf("duplicate %s", id)
				}
				got[id] = true
			}
			if !reflect.DeepEqual(got, want[tc.kind]) {
				t.Fatalf("walked %d %ss, truth has %d", len(got), tc.kind, len(want[tc.kind]))
			}
		})
	}

	// Totals and the Link header on a middle page.
	resp, _ := get(t, srv, fmt.Sprintf("/api/v4/projects/%d/merge_requests?state=all&per_page=10&page=3", pid))
	h := resp.Header
	if h.Get("X-Total") != "53" || h.Get("X-Total-Pages") != "6" || h.Get("X-Per-Page") != "10" ||
		h.Get("X-Next-Page") != "4" || h.Get("X-Prev-Page") != "2" {
		t.Fatalf("headers %v", h)
	}
	link := h.Get("Link")
	for _, rel := range []string{"prev", "next", "first", "last"} {
		if !strings.Contains(link, `rel="`+rel+`"`) {
			t.Errorf("Link lacks %s: %s", rel, link)
		}
	}
	if !strings.Contains(link, srv.URL+fmt.Sprintf("/api/v4/projects/%d/merge_requests?", pid)) ||
		!strings.Contains(link, "state=all") || !strings.Contains(link, `page=6&per_page=10&state=all>; rel="last"`) {
		t.Errorf("Link does not keep the request URL and query: %s", link)
	}
	// Empty listing: one page, no next.
	resp, body := get(t, srv, fmt.Sprintf("/api/v4/projects/%d/merge_requests?state=locked", pid))
	if string(body) != "[]" || resp.Header.Get("X-Total") != "0" || resp.Header.Get("X-Total-Pages") != "1" || resp.Header.Get("X-Next-Page") != "" {
		t.Errorf("empty listing: %s %v", body, resp.Header)
	}
}

func TestLargeListingOmitsTotals(t *testing.T) {
	_, srv := newServer(t, gitlabsim.Options{Projects: 1, MRs: 10000, Pipelines: 10001})
	pid := firstProjectID(t, srv)
	resp, body := get(t, srv, fmt.Sprintf("/api/v4/projects/%d/pipelines?per_page=100", pid))
	h := resp.Header
	if len(decode[[]idItem](t, body)) != 100 {
		t.Fatal("want a full page")
	}
	if _, ok := h["X-Total"]; ok {
		t.Errorf("X-Total present past 10,000: %s", h.Get("X-Total"))
	}
	if _, ok := h["X-Total-Pages"]; ok {
		t.Errorf("X-Total-Pages present past 10,000")
	}
	if strings.Contains(h.Get("Link"), `rel="last"`) || h.Get("X-Next-Page") != "2" {
		t.Errorf("Link %q, X-Next-Page %q", h.Get("Link"), h.Get("X-Next-Page"))
	}
	// Exactly 10,000 is still counted.
	resp, _ = get(t, srv, fmt.Sprintf("/api/v4/projects/%d/merge_requests?state=all&per_page=100", pid))
	if resp.Header.Get("X-Total") != "10000" || !strings.Contains(resp.Header.Get("Link"), `rel="last"`) {
		t.Errorf("10,000 MRs: X-Total %q Link %q", resp.Header.Get("X-Total"), resp.Header.Get("Link"))
	}
}

func TestUpdatedAfterInclusive(t *testing.T) {
	_, srv := newServer(t, gitlabsim.Options{Projects: 1, MRs: 80, Pipelines: 80})
	pid := firstProjectID(t, srv)
	for _, kind := range []string{"merge_requests", "pipelines"} {
		t.Run(kind, func(t *testing.T) {
			all := walk(t, srv, srv.URL+fmt.Sprintf("/api/v4/projects/%d/%s?state=all&per_page=100", pid, kind))
			pivot := all[len(all)/2].UpdatedAt
			count := func(f func(time.Time) bool) int {
				n := 0
				for _, it := range all {
					if f(it.UpdatedAt) {
						n++
					}
				}
				return n
			}
			tests := []struct {
				query string
				want  int
			}{
				{"updated_after=" + pivot.Format(time.RFC3339Nano), count(func(u time.Time) bool { return !u.Before(pivot) })},
				{"updated_after=" + pivot.Add(time.Millisecond).Format(time.RFC3339Nano), count(func(u time.Time) bool { return u.After(pivot) })},
				{"updated_before=" + pivot.Format(time.RFC3339Nano), count(func(u time.Time) bool { return !u.After(pivot) })},
				{"updated_after=" + pivot.Format(time.RFC3339Nano) + "&updated_before=" + pivot.Format(time.RFC3339Nano), count(func(u time.Time) bool { return u.Equal(pivot) })},
			}
			for _, tc := range tests {
				for _, order := range []string{"", "&order_by=updated_at"} {
					q := url.Values{}
					for _, kv := range strings.Split(tc.query, "&") {
						k, v, _ := strings.Cut(kv, "=")
						q.Set(k, v)
					}
					got := walk(t, srv, srv.URL+fmt.Sprintf("/api/v4/projects/%d/%s?state=all&per_page=100&", pid, kind)+q.Encode()+order)
					if len(got) != tc.want || tc.want == 0 {
						t.Errorf("%s%s: %d items, want %d (> 0)", tc.query, order, len(got), tc.want)
					}
				}
			}
		})
	}
}

func TestMRFiltersAndOrder(t *testing.T) {
	_, srv := newServer(t, gitlabsim.Options{Projects: 1, MRs: 120, Pipelines: 5})
	pid := firstProjectID(t, srv)
	all := walk(t, srv, srv.URL+fmt.Sprintf("/api/v4/projects/%d/merge_requests?state=all&per_page=100", pid))
	states := map[string]int{}
	for i, m := range all {
		states[m.State]++
		if i > 0 && all[i-1].IID <= m.IID {
			t.Fatalf("default order is not created_at desc: iid %d before %d", all[i-1].IID, m.IID)
		}
	}
	if states["merged"] == 0 || states["opened"] == 0 || states["closed"] == 0 {
		t.Fatalf("states %v", states)
	}
	for state, n := range states {
		got := walk(t, srv, srv.URL+fmt.Sprintf("/api/v4/projects/%d/merge_requests?state=%s&per_page=100", pid, state))
		if len(got) != n {
			t.Errorf("state=%s: %d, want %d", state, len(got), n)
		}
	}
	// Default state is all, as GitLab's.
	if got := walk(t, srv, srv.URL+fmt.Sprintf("/api/v4/projects/%d/merge_requests?per_page=100", pid)); len(got) != len(all) {
		t.Errorf("no state: %d, want %d", len(got), len(all))
	}
	resp, body := get(t, srv, fmt.Sprintf("/api/v4/projects/%d/merge_requests?order_by=nope", pid))
	if resp.StatusCode != 400 {
		t.Errorf("bad order_by: %d %s", resp.StatusCode, body)
	}
}

func TestPipelinesAndJobs(t *testing.T) {
	_, srv := newServer(t, gitlabsim.Options{Projects: 1, MRs: 20, Pipelines: 150})
	pid := firstProjectID(t, srv)
	all := walk(t, srv, srv.URL+fmt.Sprintf("/api/v4/projects/%d/pipelines?per_page=100", pid))
	statuses := map[string]int{}
	for i, p := range all {
		statuses[p.Status]++
		if i > 0 && all[i-1].ID <= p.ID {
			t.Fatal("default order is not id desc")
		}
	}
	if statuses["success"] == 0 || statuses["failed"] == 0 {
		t.Fatalf("statuses %v", statuses)
	}
	failed := walk(t, srv, srv.URL+fmt.Sprintf("/api/v4/projects/%d/pipelines?status=failed&per_page=100", pid))
	if len(failed) != statuses["failed"] {
		t.Fatalf("status=failed: %d, want %d", len(failed), statuses["failed"])
	}
	for _, p := range failed[:min(5, len(failed))] {
		resp, body := get(t, srv, fmt.Sprintf("/api/v4/projects/%d/pipelines/%d/jobs?scope[]=failed", pid, p.ID))
		if resp.StatusCode != 200 {
			t.Fatalf("jobs: %d %s", resp.StatusCode, body)
		}
		jobs := decode[[]struct {
			Status        string  `json:"status"`
			FailureReason string  `json:"failure_reason"`
			Stage         string  `json:"stage"`
			Duration      float64 `json:"duration"`
		}](t, body)
		if len(jobs) == 0 {
			t.Fatalf("failed pipeline %d has no failed job", p.ID)
		}
		for _, j := range jobs {
			if j.Status != "failed" || j.FailureReason == "" || j.Duration <= 0 {
				t.Errorf("job %+v", j)
			}
		}
		_, body = get(t, srv, fmt.Sprintf("/api/v4/projects/%d/pipelines/%d/jobs", pid, p.ID))
		for _, j := range decode[[]map[string]any](t, body) {
			if _, has := j["failure_reason"]; has != (j["status"] == "failed") {
				t.Errorf("failure_reason on a %v job: %v", j["status"], has)
			}
		}
	}
	for _, p := range all[:3] {
		resp, body := get(t, srv, fmt.Sprintf("/api/v4/projects/%d/pipelines/%d", pid, p.ID))
		if resp.StatusCode != 200 || decode[idItem](t, body).ID != p.ID {
			t.Fatalf("single pipeline: %d %s", resp.StatusCode, body)
		}
	}
	resp, body := get(t, srv, fmt.Sprintf("/api/v4/projects/%d/pipelines/1", pid))
	if resp.StatusCode != 404 {
		t.Errorf("missing pipeline: %d %s", resp.StatusCode, body)
	}
}

func TestRateLimit(t *testing.T) {
	sim, srv := newServer(t, gitlabsim.Options{Projects: 1, MRs: 2, Pipelines: 2})
	resp, _ := get(t, srv, "/api/v4/version")
	// Headers on every answer; without a limit they show GitLab.com's figure.
	if resp.StatusCode != 200 || resp.Header.Get("RateLimit-Limit") != "2000" || resp.Header.Get("RateLimit-Observed") != "1" {
		t.Errorf("without a limit: %d %v", resp.StatusCode, resp.Header)
	}
	sim.SetRateLimit(3) // the first request still counts in this minute
	for i := 2; i <= 3; i++ {
		resp, _ := get(t, srv, "/api/v4/user")
		h := resp.Header
		if resp.StatusCode != 200 || h.Get("RateLimit-Limit") != "3" || h.Get("RateLimit-Observed") != strconv.Itoa(i) ||
			h.Get("RateLimit-Remaining") != strconv.Itoa(3-i) || h.Get("RateLimit-Name") != "throttle_authenticated_api" {
			t.Fatalf("request %d: %d %v", i, resp.StatusCode, h)
		}
		reset, err := strconv.ParseInt(h.Get("RateLimit-Reset"), 10, 64)
		if err != nil || reset <= epoch.Unix() || reset > epoch.Unix()+60 {
			t.Fatalf("RateLimit-Reset %q", h.Get("RateLimit-Reset"))
		}
	}
	resp, body := get(t, srv, "/api/v4/user")
	h := resp.Header
	if resp.StatusCode != 429 || strings.TrimSpace(string(body)) != "Retry later" {
		t.Fatalf("4th request: %d %q", resp.StatusCode, body)
	}
	if ra, err := strconv.Atoi(h.Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
		t.Errorf("Retry-After %q", h.Get("Retry-After"))
	}
	if rt, err := http.ParseTime(h.Get("RateLimit-ResetTime")); err != nil || rt.Unix() != mustInt(t, h.Get("RateLimit-Reset")) {
		t.Errorf("RateLimit-ResetTime %q vs Reset %q", h.Get("RateLimit-ResetTime"), h.Get("RateLimit-Reset"))
	}
	if h.Get("RateLimit-Remaining") != "0" {
		t.Errorf("RateLimit-Remaining %q", h.Get("RateLimit-Remaining"))
	}
	if got := sim.Stats().ByPath["GET /api/v4/user"]; got != 3 {
		t.Errorf("429s not counted: %d", got)
	}
	sim.SetRateLimit(0)
	if resp, _ := get(t, srv, "/api/v4/user"); resp.StatusCode != 200 {
		t.Errorf("after lifting the limit: %d", resp.StatusCode)
	}
}

func mustInt(t *testing.T, s string) int64 {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestAdvance(t *testing.T) {
	sim, srv := newServer(t, gitlabsim.Options{Projects: 3, MRs: 30, Pipelines: 30})
	before := sim.Truth()
	maxBefore := map[string]time.Time{} // "<kind>-<project>" -> newest updated_at
	prev := map[string]time.Time{}
	for _, e := range before {
		k := string(e.Kind) + "-" + strings.Split(e.ID, "-")[1]
		if e.UpdatedAt.After(maxBefore[k]) {
			maxBefore[k] = e.UpdatedAt
		}
		prev[e.ID] = e.UpdatedAt
	}
	resp, err := srv.Client().Post(srv.URL+"/-/sim/advance", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	after := sim.Truth()
	if n := decode[struct{ Count int }](t, body).Count; n != len(after) || n <= len(before) {
		t.Fatalf("advance answered %s; truth went %d -> %d", body, len(before), len(after))
	}
	changed := map[change.Kind]int{}
	for _, e := range after {
		old, existed := prev[e.ID]
		if existed && old.Equal(e.UpdatedAt) {
			continue
		}
		changed[e.Kind]++
		if e.Kind == change.KindJob {
			continue
		}
		k := string(e.Kind) + "-" + strings.Split(e.ID, "-")[1]
		if !e.UpdatedAt.After(maxBefore[k]) {
			t.Errorf("%s: updated_at %v not after the project's newest %v", e.ID, e.UpdatedAt, maxBefore[k])
		}
	}
	if changed[change.KindMergeRequest] == 0 || changed[change.KindPipeline] == 0 || changed[change.KindJob] == 0 {
		t.Fatalf("changed %v", changed)
	}
	// The API shows what Truth says.
	pid := firstProjectID(t, srv)
	for _, it := range walk(t, srv, srv.URL+fmt.Sprintf("/api/v4/projects/%d/merge_requests?per_page=100", pid)) {
		id := change.MergeRequestID(pid, it.IID)
		for _, e := range after {
			if e.ID == id && !e.UpdatedAt.Equal(it.UpdatedAt) {
				t.Errorf("%s: API updated_at %v, truth %v", id, it.UpdatedAt, e.UpdatedAt)
			}
		}
	}
}

func TestRunAdvances(t *testing.T) {
	sim := gitlabsim.New(gitlabsim.Options{Projects: 1, MRs: 5, Pipelines: 5, Activity: time.Millisecond})
	n := len(sim.Truth())
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	sim.Run(ctx)
	if len(sim.Truth()) <= n {
		t.Fatal("Run did not advance the world")
	}
}

func TestStats(t *testing.T) {
	sim, srv := newServer(t, gitlabsim.Options{Projects: 1, MRs: 5, Pipelines: 5})
	pid := firstProjectID(t, srv)
	get(t, srv, fmt.Sprintf("/api/v4/projects/%d/merge_requests", pid))
	get(t, srv, fmt.Sprintf("/api/v4/projects/%d/merge_requests?page=2", pid))
	getWith(t, srv, "/api/v4/user", nil) // 401s count too
	get(t, srv, "/api/v4/unknown")
	get(t, srv, "/api/graphql")
	get(t, srv, "/-/sim/truth")
	resp, body := get(t, srv, "/-/sim/stats")
	if resp.StatusCode != 200 {
		t.Fatal(resp.StatusCode)
	}
	st := decode[gitlabsim.Stats](t, body)
	want := map[string]int64{
		"GET /api/v4/projects":                    1,
		"GET /api/v4/projects/:id/merge_requests": 2,
		"GET /api/v4/user":                        1,
		"GET /api/v4/*":                           1,
		"GET /api/graphql":                        1,
	}
	if st.Requests != 6 || !reflect.DeepEqual(st.ByPath, want) {
		t.Fatalf("stats %+v", st)
	}
	sim.ResetStats()
	if st := sim.Stats(); st.Requests != 0 || len(st.ByPath) != 0 {
		t.Fatalf("after reset %+v", st)
	}
}

func TestLatency(t *testing.T) {
	sim, srv := newServer(t, gitlabsim.Options{Projects: 1, MRs: 2, Pipelines: 2})
	sim.SetLatency(30 * time.Millisecond)
	start := time.Now()
	get(t, srv, "/api/v4/version")
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Errorf("answered in %v despite 30ms latency", d)
	}
	// A cancelled request does not wait the latency out.
	sim.SetLatency(time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/v4/version", nil)
	start = time.Now()
	if _, err := srv.Client().Do(req); err == nil {
		t.Error("want a context error")
	}
	if time.Since(start) > 5*time.Second {
		t.Error("latency ignored cancellation")
	}
}

func TestConcurrentUse(t *testing.T) {
	sim, srv := newServer(t, gitlabsim.Options{Projects: 3, MRs: 50, Pipelines: 50})
	pid := firstProjectID(t, srv)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				if i%4 == 0 {
					sim.Advance()
					continue
				}
				get(t, srv, fmt.Sprintf("/api/v4/projects/%d/merge_requests?order_by=updated_at&per_page=50", pid))
				get(t, srv, fmt.Sprintf("/api/v4/projects/%d/pipelines?per_page=50", pid))
				sim.Truth()
				sim.Stats()
			}
		}()
	}
	wg.Wait()
}

// BenchmarkScaleListings times one listing page of each polled kind on the
// worlds the scale benchmarks use (BenchmarkNew times building them).
func BenchmarkScaleListings(b *testing.B) {
	tests := []struct {
		name string
		o    gitlabsim.Options
	}{
		{"1000 projects x 2 MRs", gitlabsim.Options{Projects: 1000, Groups: 8, MRs: 2, Pipelines: 2}},
		{"1 project x 10k MRs x 50k pipelines", gitlabsim.Options{Projects: 1, MRs: 10000, Pipelines: 50000}},
	}
	for _, tc := range tests {
		b.Run(tc.name, func(b *testing.B) {
			_, srv := newServer(b, tc.o)
			pid := firstProjectID(b, srv)
			after := epoch.Add(-24 * time.Hour).Format(time.RFC3339)
			paths := []string{
				"/merge_requests?updated_after=%[2]s&per_page=100",
				"/pipelines?updated_after=%[2]s&order_by=updated_at&per_page=100",
				"/repository/commits?since=%[2]s&with_stats=true&per_page=100",
				"/issues?scope=all&state=all&updated_after=%[2]s&per_page=100",
				"/deployments?order_by=updated_at&sort=asc&updated_after=%[2]s&per_page=100",
				"/events?target_type=note&after=%[3]s&per_page=100",
			}
			for b.Loop() {
				for _, p := range paths {
					get(b, srv, fmt.Sprintf("/api/v4/projects/%[1]d"+p, pid, after, epoch.AddDate(0, 0, -2).Format(time.DateOnly)))
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*len(paths))/1000, "ms/page")
		})
	}
}

func BenchmarkMergeRequestPage(b *testing.B) {
	_, srv := newServer(b, gitlabsim.Options{Projects: 1, MRs: 10000, Pipelines: 100})
	pid := firstProjectID(b, srv)
	path := fmt.Sprintf("/api/v4/projects/%d/merge_requests?state=all&per_page=20&page=3", pid)
	for b.Loop() {
		get(b, srv, path)
	}
}

func BenchmarkNew(b *testing.B) {
	for b.Loop() {
		gitlabsim.New(gitlabsim.Options{Projects: 1, MRs: 10000, Pipelines: 50000, Now: fixedClock})
	}
}

func TestStorm(t *testing.T) {
	sim, srv := newServer(t, gitlabsim.Options{Projects: 1, MRs: 2, Pipelines: 2})
	sim.SetStorm(2 * time.Second)
	for i := 0; i < 3; i++ {
		resp, body := get(t, srv, "/api/v4/user")
		if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "2" || strings.TrimSpace(string(body)) != "Retry later" {
			t.Fatalf("storm answer %d: %d %v %q", i, resp.StatusCode, resp.Header, body)
		}
	}
	sim.SetStorm(0)
	if resp, _ := get(t, srv, "/api/v4/user"); resp.StatusCode != 200 {
		t.Errorf("after the storm: %d", resp.StatusCode)
	}
}
