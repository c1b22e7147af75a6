package serverless_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/gitlabsim"
	"github.com/labtrail/labtrail/internal/serverless"
	"github.com/labtrail/labtrail/internal/serverless/lambdatest"
	"github.com/labtrail/labtrail/internal/store"
	"github.com/labtrail/labtrail/internal/store/sqlite"
)

const (
	simToken  = "glpat-serverless-test-token"
	hookToken = "webhook-secret-value-1234"
	apiToken  = "api-token-value-5678"
)

// onlyCore hides the SQLite store's API tokens, as a store without them
// (DynamoDB's) has none.
type onlyCore struct{ serverless.Store }

func setup(t *testing.T, o gitlabsim.Options, st serverless.Store, env map[string]string) (*serverless.Function, *gitlabsim.Sim, *lambdatest.Log) {
	t.Helper()
	o.Token = simToken
	o.RateLimit = 1 << 30
	sim := gitlabsim.New(o)
	ts := httptest.NewServer(sim)
	t.Cleanup(ts.Close)
	vars := map[string]string{"GITLAB_URL": ts.URL, "GITLAB_TOKEN": simToken, "LABTRAIL_WEBHOOK_SECRET": hookToken,
		"LABTRAIL_REQUESTS_PER_MINUTE": "100000", "LABTRAIL_SSM_API_TOKEN_PARAMETER": ""}
	for k, v := range env {
		vars[k] = v
	}
	c, err := serverless.ConfigFromEnv(func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	c.APIToken = vars["TEST_API_TOKEN"]
	logs := &lambdatest.Log{}
	f, err := serverless.New(c, st, slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return f, sim, logs
}

func openSQLite(t *testing.T) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "labtrail.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func get(path, query, auth string) serverless.URLRequest {
	e := serverless.URLRequest{Version: "2.0", RawPath: path, RawQueryString: query, Headers: map[string]string{}}
	e.RequestContext.HTTP.Method = "GET"
	e.RequestContext.HTTP.SourceIP = "203.0.113.9"
	if auth != "" {
		e.Headers["authorization"] = auth
	}
	return e
}

func TestReadsNeedTheAPITokenAndOtherRoutesAre404(t *testing.T) {
	ctx := context.Background()
	f, _, _ := setup(t, gitlabsim.Options{Seed: 3, Projects: 1, MRs: 5, Pipelines: 5}, onlyCore{openSQLite(t)},
		map[string]string{"TEST_API_TOKEN": apiToken})
	for _, tc := range []struct {
		name, method, path, auth string
		want                     int
		challenge                string
	}{
		{"no token", "GET", "/api/v1/events", "", 401, `Bearer realm="labtrail"`},
		{"wrong token", "GET", "/api/v1/events", "Bearer nope", 401, `Bearer realm="labtrail", error="invalid_token"`},
		{"token of another length", "GET", "/api/v1/sync/status", "Bearer " + apiToken + "x", 401, `Bearer realm="labtrail", error="invalid_token"`},
		{"basic scheme", "GET", "/api/v1/events", "Basic " + apiToken, 401, `Bearer realm="labtrail", error="invalid_token"`},
		{"token", "GET", "/api/v1/events", "Bearer " + apiToken, 200, ""},
		{"lower-case scheme", "GET", "/api/v1/sync/status", "bearer " + apiToken, 200, ""},
		{"missing event", "GET", "/api/v1/events/mr-1-999999", "Bearer " + apiToken, 404, ""},
		{"route the function does not serve", "GET", "/api/v1/projects", "Bearer " + apiToken, 404, ""},
		{"dashboard", "GET", "/", "Bearer " + apiToken, 404, ""},
		{"webhook by GET", "GET", "/api/v1/webhooks/gitlab", "", 404, ""},
		{"post to a read", "POST", "/api/v1/events", "Bearer " + apiToken, 404, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := get(tc.path, "", tc.auth)
			e.RequestContext.HTTP.Method = tc.method
			resp := f.ServeURL(ctx, e)
			if resp.StatusCode != tc.want {
				t.Fatalf("%s %s: %d %s, want %d", tc.method, tc.path, resp.StatusCode, resp.Body, tc.want)
			}
			if got := resp.Headers["Www-Authenticate"]; got != tc.challenge {
				t.Errorf("WWW-Authenticate %q, want %q", got, tc.challenge)
			}
			if resp.StatusCode >= 400 && !json.Valid([]byte(resp.Body)) {
				t.Errorf("error body is not JSON: %q", resp.Body)
			}
		})
	}
}

func TestStoreAPITokensOpenTheReadsToo(t *testing.T) {
	ctx := context.Background()
	st := openSQLite(t)
	f, _, _ := setup(t, gitlabsim.Options{Seed: 3, Projects: 1, MRs: 5, Pipelines: 5}, st, map[string]string{"TEST_API_TOKEN": apiToken})
	raw := createToken(t, st)
	for _, tc := range []struct {
		auth string
		want int
	}{{"Bearer " + raw, 200}, {"Bearer " + apiToken, 200}, {"Bearer lt_unknown", 401}, {"", 401}} {
		if resp := f.ServeURL(ctx, get("/api/v1/events", "limit=5", tc.auth)); resp.StatusCode != tc.want {
			t.Errorf("%q: %d %s, want %d", tc.auth, resp.StatusCode, resp.Body, tc.want)
		}
	}
}

func TestWebhookThroughTheFunctionURL(t *testing.T) {
	ctx := context.Background()
	st := openSQLite(t)
	f, _, _ := setup(t, gitlabsim.Options{Seed: 5, Projects: 1, MRs: 5, Pipelines: 5}, st, nil)
	if rep := f.Sync(ctx); !rep.Complete || rep.Stored == 0 {
		t.Fatalf("sync: %+v", rep)
	}
	projects, err := st.Projects(ctx)
	if err != nil || len(projects) != 1 {
		t.Fatalf("projects %v %v", projects, err)
	}
	p := projects[0]
	body := `{"object_kind":"merge_request","event_type":"merge_request","project":{"id":` + jsonInt(p.ID) + `,"path_with_namespace":"` + p.Path + `"},` +
		`"object_attributes":{"id":990001,"iid":990,"title":"from a hook","state":"opened","action":"open","source_branch":"f","target_branch":"main",` +
		`"created_at":"2026-12-01 10:00:00 UTC","updated_at":"2026-12-01 10:00:00 UTC","author_id":1,"url":"http://gitlab.sim/x/-/merge_requests/990"},` +
		`"user":{"id":1,"username":"root","name":"Root"}}`
	hook := func(token, key string, b []byte, b64 bool) serverless.URLResponse {
		e := serverless.URLRequest{Version: "2.0", RawPath: "/api/v1/webhooks/gitlab", Headers: map[string]string{
			"x-gitlab-token": token, "x-gitlab-event": "Merge Request Hook", "idempotency-key": key, "content-type": "application/json"}}
		e.RequestContext.HTTP.Method = "POST"
		e.RequestContext.HTTP.SourceIP = "198.51.100.7"
		e.Body = string(b)
		if b64 {
			e.Body, e.IsBase64Encoded = base64.StdEncoding.EncodeToString(b), true
		}
		return f.ServeURL(ctx, e)
	}
	if r := hook("wrong", "k1", []byte(body), false); r.StatusCode != 401 {
		t.Fatalf("wrong token: %d %s", r.StatusCode, r.Body)
	}
	first := hook(hookToken, "k1", []byte(body), true)
	if first.StatusCode != 200 || !strings.Contains(first.Body, `"duplicate":false`) {
		t.Fatalf("valid hook: %d %s", first.StatusCode, first.Body)
	}
	// Converted in the same invocation: the event is there at once.
	if _, _, err := st.Get(ctx, "mr-"+jsonInt(p.ID)+"-990"); err != nil {
		t.Fatalf("the hook's merge request was not converted: %v", err)
	}
	again := hook(hookToken, "k1", []byte(body), false)
	if again.StatusCode != 200 || !strings.Contains(again.Body, `"duplicate":true`) {
		t.Fatalf("retry: %d %s", again.StatusCode, again.Body)
	}
	big := bytes.Repeat([]byte(" "), serverless.MaxWebhookBody+1)
	copy(big, body)
	if r := hook(hookToken, "k2", big, false); r.StatusCode != 413 {
		t.Fatalf("oversized: %d %s", r.StatusCode, r.Body)
	}
	if r := hook(hookToken, "k3", []byte("not json"), false); r.StatusCode != 400 {
		t.Fatalf("not JSON: %d %s", r.StatusCode, r.Body)
	}
	bad := serverless.URLRequest{RawPath: "/api/v1/webhooks/gitlab", Body: "%%%", IsBase64Encoded: true}
	bad.RequestContext.HTTP.Method = "POST"
	if r := f.ServeURL(ctx, bad); r.StatusCode != 400 {
		t.Fatalf("bad base64: %d %s", r.StatusCode, r.Body)
	}
	dp, err := st.ListDeliveries(ctx, store.DeliveryFilter{})
	if ds := dp.Deliveries; err != nil || len(ds) != 1 {
		t.Fatalf("deliveries stored: %d (%v), want 1", len(dp.Deliveries), err)
	}
}

func jsonInt(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestSyncStopsBeforeTheDeadlineAndResumes(t *testing.T) {
	st := openSQLite(t)
	// About 34 requests, three walks at a time: at 250 ms each the pass
	// needs some 3 s, whatever the request budget lets through at once.
	f, sim, logs := setup(t, gitlabsim.Options{Seed: 11, Projects: 2, MRs: 12, Pipelines: 12, Latency: 250 * time.Millisecond}, st, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	rep := f.Sync(ctx)
	t.Logf("cut short: %+v", rep)
	if took := time.Since(start); took >= 2*time.Second {
		t.Errorf("the pass took %s of a 2s deadline: it must stop a margin (200ms) before", took)
	}
	// What it stored stays (the report leaves out the counts of walks
	// it cut off, not what they stored).
	if page, err := st.List(context.Background(), store.Filter{Limit: 1}); err != nil || len(page.Events) == 0 {
		t.Errorf("the pass cut short stored nothing, so nothing shows it resumes (%v): %+v", err, rep)
	}
	if rep.Complete || len(rep.Errors) == 0 || !strings.Contains(strings.Join(rep.Errors, ";"), "resumes from the cursors") {
		t.Fatalf("a pass cut short reports %+v", rep)
	}
	sim.SetLatency(0)
	for i := 0; i < 5; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		rep = f.Sync(ctx)
		cancel()
		t.Logf("pass %d: %+v", i+1, rep)
		if rep.Complete {
			break
		}
	}
	if !rep.Complete {
		t.Fatalf("the pass never completed: %+v", rep)
	}
	for _, k := range change.Kinds {
		want := map[string]time.Time{}
		for _, e := range sim.Truth() {
			if e.Kind == k {
				want[e.ID] = e.UpdatedAt
			}
		}
		got, err := st.List(context.Background(), store.Filter{Kinds: []change.Kind{k}, Limit: store.MaxLimit})
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Events) != len(want) {
			t.Errorf("%s: %d stored, %d in the truth", k, len(got.Events), len(want))
		}
		for _, e := range got.Events {
			if w, ok := want[e.ID]; !ok || !w.Equal(e.UpdatedAt) {
				t.Errorf("%s: %s stored at %s, truth %s", k, e.ID, e.UpdatedAt, w)
			}
		}
	}
	if !strings.Contains(logs.String(), `"msg":"sync pass","project"`) {
		t.Errorf("no per project and kind log line:\n%.2000s", logs.String())
	}
}

func TestSecretsFromSSMAndNeverLogged(t *testing.T) {
	ssmSrv := lambdatest.StartSSM(t, map[string]string{
		serverless.DefaultTokenParameter:         simToken,
		serverless.DefaultWebhookSecretParameter: hookToken,
		"/custom/api":                            apiToken,
	})
	t.Setenv("AWS_ENDPOINT_URL_SSM", ssmSrv.URL)
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	ctx := context.Background()
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	client := ssm.NewFromConfig(awsCfg)
	env := map[string]string{"LABTRAIL_SSM_API_TOKEN_PARAMETER": "/custom/api"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	c, err := serverless.ConfigFromEnv(lookup)
	if err != nil {
		t.Fatal(err)
	}
	if err := serverless.LoadSecrets(ctx, &c, client); err != nil {
		t.Fatal(err)
	}
	if c.GitLab.Token != simToken || len(c.WebhookSecrets) != 1 || c.WebhookSecrets[0] != hookToken || c.APIToken != apiToken {
		t.Fatalf("secrets read: token ok %v, webhook %d, api ok %v", c.GitLab.Token == simToken, len(c.WebhookSecrets), c.APIToken == apiToken)
	}
	// The three in one GetParameters request.
	if n, one := ssmSrv.Requests("GetParameters"), ssmSrv.Requests("GetParameter"); n != 1 || one != 0 {
		t.Errorf("%d GetParameters and %d GetParameter requests; want 1 and 0", n, one)
	}
	for _, p := range []string{serverless.DefaultTokenParameter, serverless.DefaultWebhookSecretParameter, "/custom/api"} {
		if n := ssmSrv.Calls(p); n != 1 {
			t.Errorf("parameter %s asked %d times, want once", p, n)
		}
	}
	// The environment wins: GITLAB_TOKEN and LABTRAIL_WEBHOOK_SECRET are
	// not looked up.
	env["GITLAB_TOKEN"], env["LABTRAIL_WEBHOOK_SECRET"] = "from-env", "hook-from-env"
	c, _ = serverless.ConfigFromEnv(lookup)
	if err := serverless.LoadSecrets(ctx, &c, client); err != nil {
		t.Fatal(err)
	}
	if c.GitLab.Token != "from-env" || c.WebhookSecrets[0] != "hook-from-env" || c.APIToken != apiToken {
		t.Errorf("with the environment set: token from env %v, webhook from env %v, api ok %v", c.GitLab.Token == "from-env", c.WebhookSecrets[0] == "hook-from-env", c.APIToken == apiToken)
	}
	if n := ssmSrv.Requests("GetParameters"); n != 2 {
		t.Errorf("with the environment set: %d more GetParameters requests, want 1", n-1)
	}
	for p, want := range map[string]int{serverless.DefaultTokenParameter: 1, serverless.DefaultWebhookSecretParameter: 1, "/custom/api": 2} {
		if n := ssmSrv.Calls(p); n != want {
			t.Errorf("with the environment set: parameter %s asked %d times in all, want %d", p, n, want)
		}
	}
	// Nothing left to read: no request at all.
	env["LABTRAIL_SSM_API_TOKEN_PARAMETER"] = ""
	c, _ = serverless.ConfigFromEnv(lookup)
	if err := serverless.LoadSecrets(ctx, &c, client); err != nil || ssmSrv.Requests("GetParameters") != 2 {
		t.Errorf("with every secret in the environment: %v, %d GetParameters requests in all (want 2)", err, ssmSrv.Requests("GetParameters"))
	}
	// A missing parameter: a clear error that names it.
	env = map[string]string{"LABTRAIL_SSM_TOKEN_PARAMETER": "/missing/token"}
	c, _ = serverless.ConfigFromEnv(lookup)
	err = serverless.LoadSecrets(ctx, &c, client)
	if err == nil || !strings.Contains(err.Error(), "/missing/token") || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("missing parameter: %v", err)
	}
	// Another missing one, asked for with those that exist: its own error.
	env = map[string]string{"LABTRAIL_SSM_API_TOKEN_PARAMETER": "/missing/api"}
	c, _ = serverless.ConfigFromEnv(lookup)
	err = serverless.LoadSecrets(ctx, &c, client)
	if err == nil || !strings.Contains(err.Error(), "/missing/api") || !strings.Contains(err.Error(), "LABTRAIL_SSM_API_TOKEN_PARAMETER") || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("missing API token parameter: %v", err)
	}

	// A whole run with the secrets read: none of them is logged.
	env = map[string]string{"LABTRAIL_SSM_API_TOKEN_PARAMETER": "/custom/api"}
	c, _ = serverless.ConfigFromEnv(lookup)
	if err := serverless.LoadSecrets(ctx, &c, client); err != nil {
		t.Fatal(err)
	}
	sim := gitlabsim.New(gitlabsim.Options{Seed: 2, Projects: 1, MRs: 5, Pipelines: 5, Token: simToken, RateLimit: 1 << 30})
	simSrv := httptest.NewServer(sim)
	defer simSrv.Close()
	c.GitLab.URL = simSrv.URL
	c.GitLab.RequestsPerMinute = 100000
	logs := &lambdatest.Log{}
	f, err := serverless.New(c, onlyCore{openSQLite(t)}, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	if rep := f.Sync(ctx); !rep.Complete {
		t.Fatalf("sync: %+v", rep)
	}
	_ = f.ServeURL(ctx, get("/api/v1/events", "", "Bearer "+apiToken))
	_ = f.ServeURL(ctx, get("/api/v1/events", "", "Bearer wrong"))
	e := get("/api/v1/webhooks/gitlab", "", "")
	e.RequestContext.HTTP.Method = "POST"
	e.Headers["x-gitlab-token"] = "bad-" + hookToken
	_ = f.ServeURL(ctx, e)
	out := logs.String()
	if out == "" {
		t.Fatal("nothing logged")
	}
	for _, s := range []string{simToken, hookToken, apiToken} {
		if strings.Contains(out, s) {
			t.Errorf("a secret is in the log: %s", s)
		}
	}
}

func TestFunctionURLAdapter(t *testing.T) {
	ctx := context.Background()
	f, _, _ := setup(t, gitlabsim.Options{Seed: 3, Projects: 1, MRs: 5, Pipelines: 5}, onlyCore{openSQLite(t)},
		map[string]string{"TEST_API_TOKEN": apiToken})
	f.Sync(ctx)
	// Raw query strings are passed as sent: a repeated parameter and an
	// escaped value reach the server's filter.
	resp := f.ServeURL(ctx, get("/api/v1/events", "kind=merge_request&kind=pipeline&limit=3", "Bearer "+apiToken))
	var page struct {
		Events []struct {
			Kind string `json:"kind"`
		} `json:"events"`
		NextCursor string `json:"next_cursor"`
	}
	if resp.StatusCode != 200 || resp.IsBase64Encoded || json.Unmarshal([]byte(resp.Body), &page) != nil {
		t.Fatalf("%d base64 %v %s", resp.StatusCode, resp.IsBase64Encoded, resp.Body)
	}
	if len(page.Events) != 3 || page.NextCursor == "" {
		t.Fatalf("limit=3 gave %d events, cursor %q", len(page.Events), page.NextCursor)
	}
	for _, e := range page.Events {
		if e.Kind != "merge_request" && e.Kind != "pipeline" {
			t.Errorf("kind filter let %s through", e.Kind)
		}
	}
	if ct := resp.Headers["Content-Type"]; !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q", ct)
	}
	if r := f.ServeURL(ctx, get("/api/v1/events", "kind=nonsense", "Bearer "+apiToken)); r.StatusCode != 400 {
		t.Errorf("bad filter: %d %s", r.StatusCode, r.Body)
	}
	// The event shape that tells the two events apart.
	for _, tc := range []struct {
		payload string
		ok      bool
	}{
		{`{"version":"0","id":"x","detail-type":"Scheduled Event","source":"aws.events","time":"2026-12-06T00:00:00Z","detail":{}}`, true},
		{`{"version":"2.0","rawPath":"/api/v1/sync/status","rawQueryString":"","headers":{"authorization":"Bearer ` + apiToken + `"},"requestContext":{"http":{"method":"GET","sourceIp":"127.0.0.1"}}}`, true},
		{`{"hello":"world"}`, false},
		{`[1,2]`, false},
	} {
		out, err := f.Invoke(ctx, json.RawMessage(tc.payload))
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.payload, err)
		}
		switch v := out.(type) {
		case serverless.SyncReport:
			if !v.Complete {
				t.Errorf("scheduled: %+v", v)
			}
		case serverless.URLResponse:
			if v.StatusCode != 200 {
				t.Errorf("URL: %d %s", v.StatusCode, v.Body)
			}
		}
	}
	_ = http.StatusOK
}
