package gitlabsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Project webhooks (docs.gitlab.com api/project_webhooks.md): list, get,
// add, edit and "trigger a test project webhook". Hooks live in memory per
// project and are independent of Options.WebhookURL, which stands for hooks
// configured before the simulator started.
//
//	GET  /projects/:id/hooks
//	POST /projects/:id/hooks                        201 with the hook
//	GET  /projects/:id/hooks/:hook_id
//	PUT  /projects/:id/hooks/:hook_id
//	POST /projects/:id/hooks/:hook_id/test/:trigger 201 {"message":"201 Created"}, 422 when the URL fails
//
// Writing needs a token with the api scope, and Maintainer access: DenyHooks
// makes the token's user a Developer of a project, so its hook routes answer
// 403 as GitLab's do.

// hookEventFields are the events a project hook subscribes to, by their
// API attribute names.
var hookEventFields = []string{
	"push_events", "tag_push_events", "merge_requests_events", "issues_events",
	"confidential_issues_events", "note_events", "confidential_note_events",
	"job_events", "pipeline_events", "wiki_page_events", "deployment_events",
	"releases_events", "milestone_events", "feature_flag_events", "emoji_events",
	"repository_update_events", "resource_access_token_events",
}

// hookTriggers are the triggers GitLab's test endpoint accepts.
var hookTriggers = []string{
	"push_events", "tag_push_events", "issues_events", "confidential_issues_events",
	"note_events", "merge_requests_events", "job_events", "pipeline_events",
	"wiki_page_events", "releases_events", "emoji_events", "resource_access_token_events",
}

type projectHook struct {
	id, projectID     int64
	url, token        string
	name, description string
	branchFilter      string
	events            map[string]bool
	ssl               bool
	createdAt         time.Time
}

// projectHooks is the simulator's hook state; the zero value is ready.
type projectHooks struct {
	mu     sync.Mutex
	next   int64
	byProj map[int64][]*projectHook
	denied map[int64]bool
	tests  uint64 // test deliveries sent, for their UUIDs
}

// DenyHooks makes the token's user a Developer of the given projects (ids):
// their hook routes answer 403 Forbidden.
func (s *Sim) DenyHooks(projectIDs ...int64) {
	h := &s.projHooks
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.denied == nil {
		h.denied = map[int64]bool{}
	}
	for _, id := range projectIDs {
		h.denied[id] = true
	}
}

// projectHookJSON is a hook as GitLab's API returns it; the token never is.
type projectHookJSON struct {
	ID                        int64   `json:"id"`
	URL                       string  `json:"url"`
	Name                      string  `json:"name"`
	Description               string  `json:"description"`
	ProjectID                 int64   `json:"project_id"`
	PushEvents                bool    `json:"push_events"`
	PushEventsBranchFilter    string  `json:"push_events_branch_filter"`
	IssuesEvents              bool    `json:"issues_events"`
	ConfidentialIssuesEvents  bool    `json:"confidential_issues_events"`
	MergeRequestsEvents       bool    `json:"merge_requests_events"`
	TagPushEvents             bool    `json:"tag_push_events"`
	NoteEvents                bool    `json:"note_events"`
	ConfidentialNoteEvents    bool    `json:"confidential_note_events"`
	JobEvents                 bool    `json:"job_events"`
	PipelineEvents            bool    `json:"pipeline_events"`
	WikiPageEvents            bool    `json:"wiki_page_events"`
	DeploymentEvents          bool    `json:"deployment_events"`
	ReleasesEvents            bool    `json:"releases_events"`
	MilestoneEvents           bool    `json:"milestone_events"`
	FeatureFlagEvents         bool    `json:"feature_flag_events"`
	EmojiEvents               bool    `json:"emoji_events"`
	RepositoryUpdateEvents    bool    `json:"repository_update_events"`
	ResourceAccessTokenEvents bool    `json:"resource_access_token_events"`
	EnableSSLVerification     bool    `json:"enable_ssl_verification"`
	AlertStatus               string  `json:"alert_status"`
	DisabledUntil             *string `json:"disabled_until"`
	URLVariables              []any   `json:"url_variables"`
	CustomWebhookTemplate     string  `json:"custom_webhook_template"`
	CustomHeaders             []any   `json:"custom_headers"`
	BranchFilterStrategy      string  `json:"branch_filter_strategy"`
	CreatedAt                 string  `json:"created_at"`
}

func (h *projectHook) json() projectHookJSON {
	e := h.events
	return projectHookJSON{
		ID: h.id, URL: h.url, Name: h.name, Description: h.description, ProjectID: h.projectID,
		PushEvents: e["push_events"], PushEventsBranchFilter: h.branchFilter,
		IssuesEvents: e["issues_events"], ConfidentialIssuesEvents: e["confidential_issues_events"],
		MergeRequestsEvents: e["merge_requests_events"], TagPushEvents: e["tag_push_events"],
		NoteEvents: e["note_events"], ConfidentialNoteEvents: e["confidential_note_events"],
		JobEvents: e["job_events"], PipelineEvents: e["pipeline_events"], WikiPageEvents: e["wiki_page_events"],
		DeploymentEvents: e["deployment_events"], ReleasesEvents: e["releases_events"],
		MilestoneEvents: e["milestone_events"], FeatureFlagEvents: e["feature_flag_events"],
		EmojiEvents: e["emoji_events"], RepositoryUpdateEvents: e["repository_update_events"],
		ResourceAccessTokenEvents: e["resource_access_token_events"],
		EnableSSLVerification:     h.ssl, AlertStatus: "executable",
		URLVariables: []any{}, CustomHeaders: []any{}, BranchFilterStrategy: "wildcard",
		CreatedAt: h.createdAt.UTC().Format("2006-01-02T15:04:05.000Z"),
	}
}

// matchHookRoute matches the hook routes, which unlike the rest include
// writes.
func matchHookRoute(method string, segs []string) (route, []string) {
	n := len(segs)
	if n < 3 || segs[0] != "projects" || segs[2] != "hooks" {
		return route{}, nil
	}
	r := func(t string, h func(*Sim, *call)) route { return route{t, h, false} }
	switch {
	case n == 3 && method == http.MethodGet:
		return r("/projects/:id/hooks", (*Sim).listHooks), segs[1:2]
	case n == 3 && method == http.MethodPost:
		return r("/projects/:id/hooks", (*Sim).addHook), segs[1:2]
	case n == 4 && method == http.MethodGet:
		return r("/projects/:id/hooks/:hook_id", (*Sim).getHook), []string{segs[1], segs[3]}
	case n == 4 && method == http.MethodPut:
		return r("/projects/:id/hooks/:hook_id", (*Sim).editHook), []string{segs[1], segs[3]}
	case n == 6 && segs[4] == "test" && method == http.MethodPost:
		return r("/projects/:id/hooks/:hook_id/test/:trigger", (*Sim).testHook), []string{segs[1], segs[3], segs[5]}
	}
	return route{}, nil
}

// hookProject resolves the project of a hook route and checks access; it
// answers the error itself and returns 0 on failure.
func (s *Sim) hookProject(c *call, write bool) int64 {
	s.mu.RLock()
	p := s.findProject(c.params[0])
	var id int64
	if p != nil {
		id = p.id
	}
	s.mu.RUnlock()
	if p == nil {
		c.notFound("Project Not Found")
		return 0
	}
	if write && !slices.Contains(s.opts.Scopes, "api") {
		insufficientScope(c.w, "api")
		return 0
	}
	h := &s.projHooks
	h.mu.Lock()
	denied := h.denied[id]
	h.mu.Unlock()
	if denied {
		writeJSON(c.w, http.StatusForbidden, map[string]string{"message": "403 Forbidden"})
		return 0
	}
	return id
}

// findHook returns the hook named by c.params[1] of project pid; h.mu held.
func (h *projectHooks) find(pid int64, hookID string) *projectHook {
	id, err := strconv.ParseInt(hookID, 10, 64)
	if err != nil {
		return nil
	}
	for _, k := range h.byProj[pid] {
		if k.id == id {
			return k
		}
	}
	return nil
}

func (s *Sim) listHooks(c *call) {
	pid := s.hookProject(c, false)
	if pid == 0 {
		return
	}
	h := &s.projHooks
	h.mu.Lock()
	out := make([]projectHookJSON, 0, len(h.byProj[pid]))
	for _, k := range h.byProj[pid] {
		out = append(out, k.json())
	}
	h.mu.Unlock()
	p := c.paging()
	lo, hi := p.bounds(len(out))
	p.headers(c, len(out))
	c.ok(out[lo:hi])
}

func (s *Sim) getHook(c *call) {
	pid := s.hookProject(c, false)
	if pid == 0 {
		return
	}
	h := &s.projHooks
	h.mu.Lock()
	k := h.find(pid, c.params[1])
	var out projectHookJSON
	if k != nil {
		out = k.json()
	}
	h.mu.Unlock()
	if k == nil {
		c.notFound("Not found")
		return
	}
	c.ok(out)
}

// hookParams reads a hook's attributes from a JSON body (as client-go sends
// them), a form body or the query string (as curl users do).
func hookParams(c *call) (map[string]string, error) {
	out := map[string]string{}
	for k, v := range c.q {
		if len(v) > 0 {
			out[k] = v[0]
		}
	}
	ct := c.r.Header.Get("Content-Type")
	switch {
	case strings.HasPrefix(ct, "application/json"):
		var body map[string]any
		dec := json.NewDecoder(c.r.Body)
		dec.UseNumber()
		if err := dec.Decode(&body); err != nil {
			return nil, fmt.Errorf("body is not valid JSON")
		}
		for k, v := range body {
			switch v := v.(type) {
			case string:
				out[k] = v
			case bool:
				out[k] = strconv.FormatBool(v)
			case json.Number:
				out[k] = v.String()
			case nil:
			default:
				b, _ := json.Marshal(v)
				out[k] = string(b)
			}
		}
	case strings.HasPrefix(ct, "application/x-www-form-urlencoded"):
		if err := c.r.ParseForm(); err != nil {
			return nil, err
		}
		for k, v := range c.r.PostForm {
			if len(v) > 0 {
				out[k] = v[0]
			}
		}
	}
	return out, nil
}

// apply sets the attributes given in in on k; it reports the first invalid
// one as GitLab's 400 message.
func (k *projectHook) apply(in map[string]string) string {
	for _, f := range append(slices.Clone(hookEventFields), "enable_ssl_verification") {
		v, ok := in[f]
		if !ok {
			continue
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return f + " is invalid"
		}
		if f == "enable_ssl_verification" {
			k.ssl = b
		} else {
			k.events[f] = b
		}
	}
	if v, ok := in["url"]; ok {
		k.url = v
	}
	if v, ok := in["token"]; ok {
		k.token = v
	}
	if v, ok := in["name"]; ok {
		k.name = v
	}
	if v, ok := in["description"]; ok {
		k.description = v
	}
	if v, ok := in["push_events_branch_filter"]; ok {
		k.branchFilter = v
	}
	return ""
}

func validHookURL(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

func (s *Sim) addHook(c *call) {
	pid := s.hookProject(c, true)
	if pid == 0 {
		return
	}
	in, err := hookParams(c)
	if err != nil {
		c.badRequest(err.Error())
		return
	}
	if strings.TrimSpace(in["url"]) == "" {
		c.badRequest("url is missing")
		return
	}
	// GitLab's column defaults: push events and SSL verification on.
	k := &projectHook{projectID: pid, events: map[string]bool{"push_events": true}, ssl: true, createdAt: s.now()}
	if msg := k.apply(in); msg != "" {
		c.badRequest(msg)
		return
	}
	if !validHookURL(k.url) {
		writeJSON(c.w, http.StatusUnprocessableEntity, map[string]any{"message": map[string][]string{"url": {"is blocked: Only allowed schemes are http, https"}}})
		return
	}
	h := &s.projHooks
	h.mu.Lock()
	if h.byProj == nil {
		h.byProj = map[int64][]*projectHook{}
	}
	h.next++
	k.id = h.next
	h.byProj[pid] = append(h.byProj[pid], k)
	out := k.json()
	h.mu.Unlock()
	writeJSON(c.w, http.StatusCreated, out)
}

func (s *Sim) editHook(c *call) {
	pid := s.hookProject(c, true)
	if pid == 0 {
		return
	}
	in, err := hookParams(c)
	if err != nil {
		c.badRequest(err.Error())
		return
	}
	h := &s.projHooks
	h.mu.Lock()
	defer h.mu.Unlock()
	k := h.find(pid, c.params[1])
	if k == nil {
		c.notFound("Not found")
		return
	}
	// Validate on a copy so a bad request changes nothing.
	cp := *k
	cp.events = map[string]bool{}
	for e, on := range k.events {
		cp.events[e] = on
	}
	if msg := cp.apply(in); msg != "" {
		c.badRequest(msg)
		return
	}
	if !validHookURL(cp.url) {
		writeJSON(c.w, http.StatusUnprocessableEntity, map[string]any{"message": map[string][]string{"url": {"is blocked: Only allowed schemes are http, https"}}})
		return
	}
	*k = cp
	c.ok(k.json())
}

// testHook sends a sample event to the hook's URL at once and answers by
// its outcome, as GitLab's TestHooks::ProjectService does. push_events and
// tag_push_events are simulated; other valid triggers answer 422.
func (s *Sim) testHook(c *call) {
	pid := s.hookProject(c, true)
	if pid == 0 {
		return
	}
	trigger := c.params[2]
	h := &s.projHooks
	h.mu.Lock()
	k := h.find(pid, c.params[1])
	var hk projectHook
	if k != nil {
		hk = *k
	}
	h.tests++
	n := h.tests
	h.mu.Unlock()
	if k == nil {
		c.notFound("Not found")
		return
	}
	if !slices.Contains(hookTriggers, trigger) {
		c.badRequest("trigger does not have a valid value")
		return
	}

	var event string
	var payload obj
	s.mu.RLock()
	p := s.w.byID[pid]
	base := s.opts.BaseURL
	head := p.headAt(s.now())
	switch trigger {
	case "push_events", "tag_push_events":
		// Gitlab::DataBuilder::Push.build_sample: the last three commits
		// of the default branch, newest first.
		var cs []commitInfo
		for i := head; i >= -1 && len(cs) < 3; i-- {
			cs = append(cs, p.commit(p.mainRef(i)))
		}
		before, after := cs[len(cs)-1].sha, cs[0].sha
		if trigger == "push_events" {
			event, payload = "Push Hook", p.push(base, "push", "refs/heads/"+p.defaultBranch(), before, after, s.w.me, cs)
		} else {
			event, payload = "Tag Push Hook", p.push(base, "tag_push", "refs/tags/v1.0.0", zeroSHA, after, s.w.me, nil)
			delete(payload, "ref_protected")
		}
	}
	s.mu.RUnlock()
	if payload == nil {
		writeJSON(c.w, http.StatusUnprocessableEntity, map[string]string{"message": "Testing not available for " + trigger + " in the simulator"})
		return
	}
	body, err := json.Marshal(payload)
	if err != nil {
		writeJSON(c.w, http.StatusInternalServerError, map[string]string{"message": "500 Internal Server Error"})
		return
	}
	if msg := s.sendTestHook(c, &hk, event, body, n); msg != "" {
		writeJSON(c.w, http.StatusUnprocessableEntity, map[string]string{"message": msg})
		return
	}
	writeJSON(c.w, http.StatusCreated, map[string]string{"message": "201 Created"})
}

// sendTestHook POSTs body to k's URL with GitLab's delivery headers and
// returns GitLab's message when that fails, or "".
func (s *Sim) sendTestHook(c *call, k *projectHook, event string, body []byte, n uint64) string {
	req, err := http.NewRequestWithContext(c.r.Context(), http.MethodPost, k.url, bytes.NewReader(body))
	if err != nil {
		return err.Error()
	}
	seed := uint64(s.opts.Seed) ^ 0x7465737468
	id := func(kind uint64) string {
		a, b := mix(seed, kind, n), mix(seed, kind^0xabcdef, n)
		a = a&^(0xf<<12) | 4<<12
		b = b&^(0x3<<62) | 0x2<<62
		return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", a>>32, (a>>16)&0xffff, a&0xffff, b>>48, b&0xffffffffffff)
	}
	hd := req.Header
	hd.Set("Content-Type", "application/json")
	hd.Set("User-Agent", "GitLab/"+s.opts.Version)
	hd.Set("X-Gitlab-Event", event)
	hd.Set("X-Gitlab-Instance", s.opts.BaseURL)
	hd.Set("X-Gitlab-Webhook-UUID", id(3))
	hd.Set("X-Gitlab-Event-UUID", id(1))
	hd.Set("Idempotency-Key", id(2))
	if k.token != "" {
		hd.Set("X-Gitlab-Token", k.token)
	}
	cl := &http.Client{Timeout: 10 * time.Second}
	resp, err := cl.Do(req)
	if err != nil {
		if ue, ok := err.(*url.Error); ok {
			return ue.Err.Error()
		}
		return err.Error()
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Sprintf("%d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	return ""
}
