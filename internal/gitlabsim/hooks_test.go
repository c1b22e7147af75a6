package gitlabsim_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/labtrail/labtrail/internal/gitlabsim"
)

// hooksAPISim starts a simulator with two projects and returns their ids
// as p1, p2 for URLs.
func hooksAPISim(t *testing.T, o gitlabsim.Options) (sim *gitlabsim.Sim, api, p1, p2 string, id2 float64) {
	t.Helper()
	o.Projects, o.MRs, o.Pipelines = 2, 3, 3
	sim = gitlabsim.New(o)
	ts := httptest.NewServer(sim)
	t.Cleanup(ts.Close)
	api = ts.URL + "/api/v4"
	_, _, raw := hooksAPIReq(t, "GET", api+"/projects?order_by=id&sort=asc", "")
	var ps []struct {
		ID int64 `json:"id"`
	}
	if err := json.Unmarshal(raw, &ps); err != nil || len(ps) != 2 {
		t.Fatalf("projects: %v %s", err, raw)
	}
	return sim, api, hooksItoa(ps[0].ID), hooksItoa(ps[1].ID), float64(ps[1].ID)
}

func hooksAPIReq(t *testing.T, method, u, body string) (int, map[string]any, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("PRIVATE-TOKEN", "sim-token")
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if bytes.HasPrefix(raw, []byte("{")) {
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("%s %s: %v: %s", method, u, err, raw)
		}
	}
	return resp.StatusCode, m, raw
}

func TestProjectHooksAddListEdit(t *testing.T) {
	_, api, p1, p2, _ := hooksAPISim(t, gitlabsim.Options{})
	code, h, raw := hooksAPIReq(t, "POST", api+"/projects/"+p1+"/hooks",
		`{"url":"https://labtrail.example.com/api/v1/webhooks/gitlab","token":"s3cret","merge_requests_events":true,"push_events":false}`)
	if code != http.StatusCreated {
		t.Fatalf("add: %d %s", code, raw)
	}
	if bytes.Contains(raw, []byte("s3cret")) || h["token"] != nil {
		t.Errorf("the token is returned: %s", raw)
	}
	for k, want := range map[string]any{
		"url":         "https://labtrail.example.com/api/v1/webhooks/gitlab",
		"push_events": false, "merge_requests_events": true, "issues_events": false, "enable_ssl_verification": true,
	} {
		if h[k] != want {
			t.Errorf("%s = %v, want %v", k, h[k], want)
		}
	}
	for _, k := range []string{"id", "created_at", "tag_push_events", "note_events", "confidential_note_events", "job_events",
		"pipeline_events", "wiki_page_events", "deployment_events", "releases_events", "feature_flag_events",
		"emoji_events", "confidential_issues_events", "alert_status", "disabled_until", "push_events_branch_filter"} {
		if _, ok := h[k]; !ok {
			t.Errorf("hook lacks %q: %s", k, raw)
		}
	}
	id := int64(h["id"].(float64))

	code, h, raw = hooksAPIReq(t, "PUT", api+"/projects/"+p1+"/hooks/"+hooksItoa(id), `{"token":"other","pipeline_events":true}`)
	if code != http.StatusOK || h["pipeline_events"] != true || h["merge_requests_events"] != true {
		t.Fatalf("edit: %d %s", code, raw)
	}
	code, _, raw = hooksAPIReq(t, "GET", api+"/projects/"+p1+"/hooks", "")
	var list []map[string]any
	if err := json.Unmarshal(raw, &list); err != nil || code != 200 || len(list) != 1 || list[0]["pipeline_events"] != true {
		t.Fatalf("list: %d %s", code, raw)
	}
	if code, _, raw := hooksAPIReq(t, "GET", api+"/projects/"+p2+"/hooks", ""); code != 200 || string(raw) != "[]" {
		t.Errorf("other project's hooks: %d %s", code, raw)
	}
	if code, _, _ := hooksAPIReq(t, "GET", api+"/projects/"+p1+"/hooks/"+hooksItoa(id), ""); code != 200 {
		t.Errorf("get: %d", code)
	}
	if code, _, _ := hooksAPIReq(t, "GET", api+"/projects/"+p1+"/hooks/999", ""); code != 404 {
		t.Errorf("get missing: %d", code)
	}
	if code, m, _ := hooksAPIReq(t, "POST", api+"/projects/"+p1+"/hooks", `{"push_events":true}`); code != 400 || m["error"] != "url is missing" {
		t.Errorf("add without url: %d %v", code, m)
	}
	if code, _, _ := hooksAPIReq(t, "POST", api+"/projects/999/hooks", `{"url":"http://x.example"}`); code != 404 {
		t.Errorf("add to a missing project: %d", code)
	}
}

func TestProjectHooksNeedMaintainerAndAPIScope(t *testing.T) {
	sim, api, _, p2, id2 := hooksAPISim(t, gitlabsim.Options{})
	sim.DenyHooks(int64(id2))
	if code, m, _ := hooksAPIReq(t, "POST", api+"/projects/"+p2+"/hooks", `{"url":"http://x.example"}`); code != 403 || m["message"] != "403 Forbidden" {
		t.Errorf("developer adds a hook: %d %v", code, m)
	}
	_, api, _, p2, _ = hooksAPISim(t, gitlabsim.Options{Scopes: []string{"read_api"}})
	if code, m, _ := hooksAPIReq(t, "POST", api+"/projects/"+p2+"/hooks", `{"url":"http://x.example"}`); code != 403 || m["error"] != "insufficient_scope" {
		t.Errorf("read_api token adds a hook: %d %v", code, m)
	}
	if code, _, _ := hooksAPIReq(t, "GET", api+"/projects/"+p2+"/hooks", ""); code != 200 {
		t.Errorf("read_api token lists hooks: %d", code)
	}
}

func TestProjectHookTestDelivers(t *testing.T) {
	var mu sync.Mutex
	var got []*http.Request
	var bodies []map[string]any
	status := http.StatusOK
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b map[string]any
		_ = json.NewDecoder(r.Body).Decode(&b)
		mu.Lock()
		got, bodies = append(got, r), append(bodies, b)
		st := status
		mu.Unlock()
		w.WriteHeader(st)
	}))
	defer recv.Close()
	_, api, _, p2, id2 := hooksAPISim(t, gitlabsim.Options{})
	_, h, raw := hooksAPIReq(t, "POST", api+"/projects/"+p2+"/hooks", `{"url":"`+recv.URL+`/hook","token":"s3cret"}`)
	id := hooksItoa(int64(h["id"].(float64)))
	if h["id"] == nil {
		t.Fatal(string(raw))
	}
	code, m, raw := hooksAPIReq(t, "POST", api+"/projects/"+p2+"/hooks/"+id+"/test/push_events", "")
	if code != http.StatusCreated || m["message"] != "201 Created" {
		t.Fatalf("test: %d %s", code, raw)
	}
	mu.Lock()
	if len(got) != 1 {
		t.Fatalf("%d deliveries, want 1", len(got))
	}
	r, b := got[0], bodies[0]
	mu.Unlock()
	if r.URL.Path != "/hook" || r.Header.Get("X-Gitlab-Token") != "s3cret" || r.Header.Get("X-Gitlab-Event") != "Push Hook" {
		t.Errorf("delivery %s headers %v", r.URL.Path, r.Header)
	}
	for _, k := range []string{"X-Gitlab-Event-UUID", "X-Gitlab-Webhook-UUID", "X-Gitlab-Instance", "Idempotency-Key"} {
		if r.Header.Get(k) == "" {
			t.Errorf("delivery lacks %s", k)
		}
	}
	if b["object_kind"] != "push" || b["project_id"] != id2 || b["ref"] != "refs/heads/main" {
		t.Errorf("payload %v", b)
	}
	if cs, _ := b["commits"].([]any); len(cs) == 0 || len(cs) > 3 {
		t.Errorf("payload commits %v", b["commits"])
	}

	mu.Lock()
	status = http.StatusInternalServerError
	mu.Unlock()
	if code, m, _ := hooksAPIReq(t, "POST", api+"/projects/"+p2+"/hooks/"+id+"/test/push_events", ""); code != 422 || !strings.Contains(m["message"].(string), "500") {
		t.Errorf("test against a failing URL: %d %v", code, m)
	}
	if code, _, _ := hooksAPIReq(t, "POST", api+"/projects/"+p2+"/hooks/"+id+"/test/bogus_events", ""); code != 400 {
		t.Errorf("bad trigger: %d", code)
	}
}

func hooksItoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
