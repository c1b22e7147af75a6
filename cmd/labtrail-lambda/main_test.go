package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/gitlabsim"
	"github.com/labtrail/labtrail/internal/serverless"
	"github.com/labtrail/labtrail/internal/serverless/lambdatest"
	"github.com/labtrail/labtrail/internal/store/dynamodb"
	"github.com/labtrail/labtrail/internal/store/dynamodb/dynalitetest"
)

const (
	simToken  = "glpat-lambda-e2e-token-value"
	hookToken = "lambda-e2e-webhook-secret"
	apiToken  = "lambda-e2e-api-token"
)

// buildBootstrap builds this command as Lambda runs it (-tags
// lambda.norpc, CGO off), for the host, into dir.
func buildBootstrap(t testing.TB, dir string) string {
	t.Helper()
	out := filepath.Join(dir, "bootstrap")
	cmd := exec.Command("go", "build", "-tags", "lambda.norpc", "-o", out, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the bootstrap: %v\n%s", err, b)
	}
	return out
}

// counter counts the DynamoDB requests the function made, by operation
// (X-Amz-Target), in front of dynalite as a reverse proxy, and estimates
// the request units they would cost from their sizes on the wire: a write
// unit per started KB of each item written, a read unit per started 4 KB
// of each answer (strongly consistent, so an upper bound for eventually
// consistent reads). dynalite does not report consumed capacity.
type counter struct {
	mu       sync.Mutex
	byOp     map[string]int
	wru, rru int
}

type dynamoUse struct {
	Requests int
	ByOp     map[string]int
	WRU, RRU int
}

func (u dynamoUse) String() string {
	return fmt.Sprintf("%d requests (%d write units, %d read units) %v", u.Requests, u.WRU, u.RRU, u.ByOp)
}

func countingProxy(t testing.TB, target string) (*counter, string) {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	c := &counter{byOp: map[string]int{}}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(resp *http.Response) error {
		op := resp.Request.Header.Get("X-Amz-Target")
		if !isRead(op) {
			return nil
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		c.mu.Lock()
		c.rru += (len(body) + 4095) / 4096
		c.mu.Unlock()
		return nil
	}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		op := r.Header.Get("X-Amz-Target")
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		units := writeUnits(op, body)
		if i := strings.LastIndexByte(op, '.'); i >= 0 {
			op = op[i+1:]
		}
		c.mu.Lock()
		c.byOp[op]++
		c.wru += units
		c.mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	return c, ts.URL
}

func isRead(target string) bool {
	for _, op := range []string{".GetItem", ".BatchGetItem", ".Query", ".Scan"} {
		if strings.HasSuffix(target, op) {
			return true
		}
	}
	return false
}

// writeUnits estimates a write request's write units from its items'
// JSON sizes (DynamoDB counts attribute names and values; the JSON's
// type tags and quotes make this an overestimate).
func writeUnits(target string, body []byte) int {
	kb := func(n int) int { return max(1, (n+1023)/1024) }
	switch {
	case strings.HasSuffix(target, ".BatchWriteItem"):
		var in struct {
			RequestItems map[string][]json.RawMessage
		}
		if json.Unmarshal(body, &in) != nil {
			return 0
		}
		n := 0
		for _, reqs := range in.RequestItems {
			for _, r := range reqs {
				n += kb(len(r))
			}
		}
		return n
	case strings.HasSuffix(target, ".PutItem"), strings.HasSuffix(target, ".UpdateItem"), strings.HasSuffix(target, ".DeleteItem"):
		return kb(len(body))
	}
	return 0
}

// take returns the use since the last take.
func (c *counter) take() dynamoUse {
	c.mu.Lock()
	defer c.mu.Unlock()
	u := dynamoUse{ByOp: c.byOp, WRU: c.wru, RRU: c.rru}
	c.byOp, c.wru, c.rru = map[string]int{}, 0, 0
	for _, n := range u.ByOp {
		u.Requests += n
	}
	return u
}

// function is a bootstrap process under the local Runtime API.
type function struct {
	rt      *lambdatest.Runtime
	cmd     *exec.Cmd
	logs    *lambdatest.Log
	started time.Time
	exited  chan error
}

func startFunction(t testing.TB, bootstrap string, env map[string]string) *function {
	t.Helper()
	rt := lambdatest.StartRuntime(t)
	f := &function{rt: rt, logs: &lambdatest.Log{}, exited: make(chan error, 1)}
	f.cmd = exec.Command(bootstrap)
	// Only what Lambda sets and the function's own configuration: nothing
	// of the test's environment leaks in.
	f.cmd.Env = []string{"AWS_LAMBDA_RUNTIME_API=" + rt.Addr, "AWS_LAMBDA_FUNCTION_NAME=labtrail",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=512", "HOME=" + t.TempDir(),
		"AWS_CONFIG_FILE=" + filepath.Join(t.TempDir(), "none"), "AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(t.TempDir(), "none")}
	for k, v := range env {
		f.cmd.Env = append(f.cmd.Env, k+"="+v)
	}
	f.cmd.Stdout, f.cmd.Stderr = f.logs, f.logs
	f.started = time.Now()
	if err := f.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { f.exited <- f.cmd.Wait() }()
	t.Cleanup(func() {
		_ = f.cmd.Process.Kill()
		<-f.exited
	})
	return f
}

// invoke hands payload to the function and returns its response.
func (f *function) invoke(t testing.TB, payload []byte, timeout time.Duration) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout+10*time.Second)
	defer cancel()
	res, err := f.rt.Invoke(ctx, payload, timeout)
	if err != nil {
		t.Fatalf("%v\nfunction log:\n%s", err, f.logs.String())
	}
	if res.Error != nil {
		t.Fatalf("the function answered an error: %v\nfunction log:\n%s", res.Error, f.logs.String())
	}
	return res.Payload
}

func scheduledEvent() []byte {
	b, _ := json.Marshal(events.EventBridgeEvent{Version: "0", ID: "cdc73f9d-aea9-11e3-9d5a-835b769c0d9c", DetailType: "Scheduled Event",
		Source: "aws.events", AccountID: "123456789012", Time: time.Now().UTC(), Region: "us-east-1",
		Resources: []string{"arn:aws:events:us-east-1:123456789012:rule/labtrail-sync"}, Detail: json.RawMessage(`{}`)})
	return b
}

// urlEvent is a Function URL request as Lambda delivers it: lower-case
// header names, repeated values joined by commas, the body base64 when
// binary.
func urlEvent(method, path, query string, h http.Header, body []byte, b64 bool) []byte {
	e := events.LambdaFunctionURLRequest{Version: "2.0", RawPath: path, RawQueryString: query, Headers: map[string]string{},
		RequestContext: events.LambdaFunctionURLRequestContext{AccountID: "anonymous", RequestID: "r", APIID: "abc123",
			DomainName: "abc123.lambda-url.us-east-1.on.aws", DomainPrefix: "abc123", TimeEpoch: time.Now().UnixMilli(),
			HTTP: events.LambdaFunctionURLRequestContextHTTPDescription{Method: method, Path: path, Protocol: "HTTP/1.1",
				SourceIP: "198.51.100.7", UserAgent: "GitLab/17.11.0"}}}
	for k, vs := range h {
		e.Headers[strings.ToLower(k)] = strings.Join(vs, ",")
	}
	if b64 {
		e.Body, e.IsBase64Encoded = base64.StdEncoding.EncodeToString(body), true
	} else {
		e.Body = string(body)
	}
	b, _ := json.Marshal(e)
	return b
}

// call serves one Function URL request; safe from any goroutine.
func (f *function) call(method, path, query string, h http.Header, body []byte, b64 bool) (events.LambdaFunctionURLResponse, error) {
	var resp events.LambdaFunctionURLResponse
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	res, err := f.rt.Invoke(ctx, urlEvent(method, path, query, h, body, b64), 30*time.Second)
	if err != nil {
		return resp, err
	}
	if res.Error != nil {
		return resp, res.Error
	}
	if err := json.Unmarshal(res.Payload, &resp); err != nil {
		return resp, fmt.Errorf("a Function URL answer that does not parse: %v: %s", err, res.Payload)
	}
	if resp.IsBase64Encoded {
		b, err := base64.StdEncoding.DecodeString(resp.Body)
		if err != nil {
			return resp, err
		}
		resp.Body = string(b)
	}
	return resp, nil
}

func (f *function) http(t testing.TB, method, path, query string, h http.Header, body []byte, b64 bool) events.LambdaFunctionURLResponse {
	t.Helper()
	resp, err := f.call(method, path, query, h, body, b64)
	if err != nil {
		t.Fatalf("%s %s: %v\nfunction log:\n%s", method, path, err, f.logs.String())
	}
	return resp
}

func bearer(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

// listAll reads every event of kind through the function's read API.
func (f *function) listAll(t testing.TB, kind change.Kind) map[string]time.Time {
	t.Helper()
	got := map[string]time.Time{}
	cursor := ""
	for {
		q := url.Values{"kind": {string(kind)}, "limit": {"1000"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		resp := f.http(t, "GET", "/api/v1/events", q.Encode(), bearer(apiToken), nil, false)
		if resp.StatusCode != 200 {
			t.Fatalf("GET /api/v1/events?%s: %d %s", q.Encode(), resp.StatusCode, resp.Body)
		}
		var page struct {
			Events []struct {
				ID        string    `json:"id"`
				UpdatedAt time.Time `json:"updated_at"`
			} `json:"events"`
			NextCursor string `json:"next_cursor"`
		}
		if err := json.Unmarshal([]byte(resp.Body), &page); err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Events {
			if _, dup := got[e.ID]; dup {
				t.Fatalf("event %s listed twice", e.ID)
			}
			got[e.ID] = e.UpdatedAt
		}
		if page.NextCursor == "" {
			return got
		}
		cursor = page.NextCursor
	}
}

// differences lists how the store differs from the simulator's truth.
func (f *function) differences(t testing.TB, sim *gitlabsim.Sim) []string {
	t.Helper()
	var out []string
	for _, k := range change.Kinds {
		want := map[string]time.Time{}
		for _, e := range sim.Truth() {
			if e.Kind == k {
				want[e.ID] = e.UpdatedAt
			}
		}
		got := f.listAll(t, k)
		for id, w := range want {
			if g, ok := got[id]; !ok || !g.Equal(w) {
				out = append(out, fmt.Sprintf("%s: have %s, want %s", id, g, w))
			}
		}
		for id := range got {
			if _, ok := want[id]; !ok {
				out = append(out, id+": not in the truth")
			}
		}
	}
	sort.Strings(out)
	return out
}

func (f *function) sync(t testing.TB, timeout time.Duration) serverless.SyncReport {
	t.Helper()
	var rep serverless.SyncReport
	if err := json.Unmarshal(f.invoke(t, scheduledEvent(), timeout), &rep); err != nil {
		t.Fatal(err)
	}
	return rep
}

// rig is the function under the local Runtime API with its stand-ins:
// dynalite (behind a counting proxy), SSM and the simulator, whose
// webhooks (when hooks is set) reach the function as Function URL
// requests.
type rig struct {
	f      *function
	sim    *gitlabsim.Sim
	dynamo *counter
	ssm    *lambdatest.SSM

	bootstrap string
	env       map[string]string

	mu    sync.Mutex
	hooks int // webhook deliveries bridged
}

// restart starts another cold start of the function on the same table,
// with env's settings over the rig's.
func (r *rig) restart(tb testing.TB, env map[string]string) {
	tb.Helper()
	all := map[string]string{}
	for k, v := range r.env {
		all[k] = v
	}
	for k, v := range env {
		all[k] = v
	}
	r.f = startFunction(tb, r.bootstrap, all)
}

func newRig(tb testing.TB, o gitlabsim.Options, hooks bool) *rig {
	tb.Helper()
	bootstrap := buildBootstrap(tb, tb.TempDir())
	dynamoURL := dynalitetest.Env(tb)
	table := fmt.Sprintf("labtrail-e2e-%d", time.Now().UnixNano())
	if _, err := dynamodb.Create(context.Background(), table, nil); err != nil {
		tb.Fatal(err)
	}
	r := &rig{}
	var dynamoProxy string
	r.dynamo, dynamoProxy = countingProxy(tb, dynamoURL)
	r.ssm = lambdatest.StartSSM(tb, map[string]string{
		serverless.DefaultTokenParameter:         simToken,
		serverless.DefaultWebhookSecretParameter: hookToken,
		serverless.DefaultAPITokenParameter:      apiToken,
	})
	o.Token, o.RateLimit = simToken, 1<<30
	if hooks {
		// GitLab's webhooks reach the function through its Function URL:
		// the bridge turns each POST into a Function URL event.
		bridge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			body, _ := io.ReadAll(req.Body)
			r.mu.Lock()
			defer r.mu.Unlock()
			r.hooks++
			resp, err := r.f.call(req.Method, req.URL.Path, req.URL.RawQuery, req.Header, body, false)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			w.WriteHeader(resp.StatusCode)
			_, _ = io.WriteString(w, resp.Body)
		}))
		tb.Cleanup(bridge.Close)
		o.WebhookURL, o.WebhookSecret = bridge.URL+"/api/v1/webhooks/gitlab", hookToken
	}
	r.sim = gitlabsim.New(o)
	simSrv := httptest.NewServer(r.sim)
	tb.Cleanup(simSrv.Close)
	r.bootstrap, r.env = bootstrap, map[string]string{
		"AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "dynalite", "AWS_SECRET_ACCESS_KEY": "dynalite",
		"AWS_ENDPOINT_URL_DYNAMODB": dynamoProxy, "AWS_ENDPOINT_URL_SSM": r.ssm.URL,
		"LABTRAIL_DYNAMODB_TABLE": table, "GITLAB_URL": simSrv.URL, "LABTRAIL_REQUESTS_PER_MINUTE": "100000",
	}
	r.f = startFunction(tb, bootstrap, r.env)
	return r
}

// TestFunctionAsLambdaRunsIt runs the built bootstrap under a local
// Runtime API against the simulator, dynalite and an SSM stand-in: a
// scheduled event, then the simulator's webhooks through the Function URL,
// the webhook endpoint's refusals and the reads, and at the end the store
// equals the simulator's truth. Under -v it prints the figures
// docs/serverless.md quotes.
func TestFunctionAsLambdaRunsIt(t *testing.T) {
	r := newRig(t, gitlabsim.Options{Seed: 18, Projects: 3, MRs: 30, Pipelines: 30}, true)
	f, sim, dynamo, ssmSrv := r.f, r.sim, r.dynamo, r.ssm

	// Cold start to the first answer: a read of the (empty) sync status.
	if r := f.http(t, "GET", "/api/v1/sync/status", "", bearer(apiToken), nil, false); r.StatusCode != 200 {
		t.Fatalf("first read: %d %s", r.StatusCode, r.Body)
	}
	coldToFirst := time.Since(f.started)
	dynamo.take()

	// A pass that cannot finish before the deadline Lambda gives it
	// (Lambda-Runtime-Deadline-Ms) answers before it, incomplete; the
	// next one resumes from the cursors. The backfill is some 160
	// requests, three walks at a time: at 100 ms each, over 5 s, whatever
	// the request budget lets through at once.
	sim.SetLatency(100 * time.Millisecond)
	start := time.Now()
	short := f.sync(t, 2*time.Second)
	if took := time.Since(start); took >= 2*time.Second || short.Complete || len(short.Errors) == 0 {
		t.Fatalf("a pass with a 2 s deadline answered after %s: %+v", took, short)
	}
	sim.SetLatency(0)
	dynamo.take()

	// The first whole pass: a backfill of the rest of the world.
	rep := f.sync(t, 5*time.Minute)
	if !rep.Complete || rep.Stored == 0 || len(rep.Errors) != 0 {
		t.Fatalf("first pass: %+v\n%s", rep, f.logs.String())
	}
	backfillDynamo := dynamo.take()
	if d := f.differences(t, sim); len(d) > 0 {
		t.Fatalf("after the first pass the store differs from the truth (%d): %v", len(d), d[:min(5, len(d))])
	}
	dynamo.take()
	if n, one := ssmSrv.Requests("GetParameters"), ssmSrv.Requests("GetParameter"); n != 1 || one != 0 {
		t.Errorf("%d GetParameters and %d GetParameter requests; want one GetParameters per cold start", n, one)
	}
	for _, p := range []string{serverless.DefaultTokenParameter, serverless.DefaultWebhookSecretParameter, serverless.DefaultAPITokenParameter} {
		if n := ssmSrv.Calls(p); n != 1 {
			t.Errorf("SSM parameter %s read %d times, want once per cold start", p, n)
		}
	}

	// A quiet pass: nothing changed on GitLab.
	sim.ResetStats()
	quiet := f.sync(t, time.Minute)
	quietDynamo := dynamo.take()
	quietGitLab := sim.Stats().Requests
	if !quiet.Complete || quiet.Stored != 0 {
		t.Errorf("quiet pass: %+v", quiet)
	}

	// Activity, delivered as webhooks through the Function URL.
	sim.Advance()
	sim.Advance()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := sim.FlushWebhooks(ctx); err != nil {
		t.Fatal(err)
	}
	ds := sim.Deliveries()
	if ds.Hooks == 0 || ds.Acknowledged < ds.Hooks || ds.GaveUp != 0 {
		t.Fatalf("webhook deliveries through the Function URL: %+v", ds)
	}
	hookDynamo := dynamo.take()
	r.mu.Lock()
	hookInvocations := r.hooks
	r.mu.Unlock()

	// The webhook endpoint's refusals and its idempotency.
	hook := func(token, key string, body []byte, b64 bool) events.LambdaFunctionURLResponse {
		h := http.Header{"X-Gitlab-Token": {token}, "X-Gitlab-Event": {"Push Hook"}, "Idempotency-Key": {key},
			"Content-Type": {"application/json"}}
		return f.http(t, "POST", "/api/v1/webhooks/gitlab", "", h, body, b64)
	}
	push := []byte(`{"object_kind":"push","event_name":"push","ref":"refs/heads/elsewhere","project_id":1,"project":{"id":1,"path_with_namespace":"x/y"},"commits":[]}`)
	if r := hook("wrong-secret", "dup-1", push, false); r.StatusCode != 401 {
		t.Errorf("wrong token: %d %s", r.StatusCode, r.Body)
	}
	first := hook(hookToken, "dup-1", push, false)
	again := hook(hookToken, "dup-1", push, true)
	if first.StatusCode != 200 || again.StatusCode != 200 || !strings.Contains(again.Body, `"duplicate":true`) {
		t.Errorf("a delivery and its retry: %d %s, then %d %s", first.StatusCode, first.Body, again.StatusCode, again.Body)
	}
	var a, b struct {
		ID int64 `json:"delivery_id"`
	}
	if json.Unmarshal([]byte(first.Body), &a) != nil || json.Unmarshal([]byte(again.Body), &b) != nil || a.ID == 0 || a.ID != b.ID {
		t.Errorf("the retry's delivery is not the first's: %s vs %s", first.Body, again.Body)
	}
	big := bytes.Repeat([]byte(" "), serverless.MaxWebhookBody+1)
	copy(big, push)
	if r := hook(hookToken, "big-1", big, true); r.StatusCode != 413 {
		t.Errorf("oversized: %d %s", r.StatusCode, r.Body)
	}

	// Reads: only with the API token.
	for _, tc := range []struct {
		path string
		h    http.Header
		want int
	}{
		{"/api/v1/events", nil, 401},
		{"/api/v1/events", bearer("not-the-token"), 401},
		{"/api/v1/sync/status", nil, 401},
		{"/api/v1/sync/status", bearer(apiToken), 200},
		{"/api/v1/events/" + sim.Truth()[0].ID, bearer(apiToken), 200},
		{"/api/v1/events/" + sim.Truth()[0].ID, nil, 401},
		{"/api/v1/projects", bearer(apiToken), 404},
		{"/metrics", nil, 404},
	} {
		r := f.http(t, "GET", tc.path, "", tc.h, nil, false)
		if r.StatusCode != tc.want {
			t.Errorf("GET %s (auth %v): %d %s, want %d", tc.path, tc.h != nil, r.StatusCode, r.Body, tc.want)
		}
		if tc.want == 401 && !strings.HasPrefix(r.Headers["Www-Authenticate"], "Bearer") {
			t.Errorf("GET %s: 401 without a Bearer challenge: %v", tc.path, r.Headers)
		}
	}

	// The next scheduled pass: the store equals GitLab.
	sim.ResetStats()
	dynamo.take()
	active := f.sync(t, time.Minute)
	activeDynamo := dynamo.take()
	activeGitLab := sim.Stats().Requests
	if !active.Complete {
		t.Fatalf("pass after activity: %+v", active)
	}
	if d := f.differences(t, sim); len(d) > 0 {
		t.Fatalf("at the end the store differs from the truth (%d): %v", len(d), d[:min(5, len(d))])
	}

	logs := f.logs.String()
	for _, s := range []string{simToken, hookToken, apiToken} {
		if strings.Contains(logs, s) {
			t.Errorf("a secret is in the function's log")
		}
	}
	if !strings.Contains(logs, `"msg":"sync pass","project"`) {
		t.Errorf("no log line per project and kind")
	}
	t.Logf("figures: cold start to the first response: %s", coldToFirst.Round(time.Millisecond))
	t.Logf("figures: a pass cut short by a 2 s deadline stored %d; the rest of the backfill (%d stored): %d ms, %d GitLab requests, DynamoDB %s", short.Stored, rep.Stored, rep.DurationMS, rep.GitLabRequests, backfillDynamo)
	t.Logf("figures: quiet pass of 3 projects: %d ms, %d GitLab requests, DynamoDB %s", quiet.DurationMS, quietGitLab, quietDynamo)
	t.Logf("figures: %d webhook deliveries = %d Lambda invocations, DynamoDB %s", ds.Hooks, hookInvocations, hookDynamo)
	t.Logf("figures: pass after activity (%d stored): %d ms, %d GitLab requests, DynamoDB %s", active.Stored, active.DurationMS, activeGitLab, activeDynamo)
}

// TestMissingSSMParameterIsAnInitError starts the function with its
// GitLab token's parameter absent: it reports a clear init error to the
// Runtime API and exits.
func TestMissingSSMParameterIsAnInitError(t *testing.T) {
	bootstrap := buildBootstrap(t, t.TempDir())
	ssmSrv := lambdatest.StartSSM(t, map[string]string{serverless.DefaultWebhookSecretParameter: hookToken})
	f := startFunction(t, bootstrap, map[string]string{
		"AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
		"AWS_ENDPOINT_URL_SSM": ssmSrv.URL, "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:1",
		"LABTRAIL_DYNAMODB_TABLE": "labtrail", "LABTRAIL_SSM_TOKEN_PARAMETER": "/team/gitlab/token",
	})
	e, ok := f.rt.InitError(20 * time.Second)
	if !ok {
		t.Fatalf("no init error reported\n%s", f.logs.String())
	}
	if !strings.Contains(e.Message, "/team/gitlab/token") || !strings.Contains(e.Message, "not found") ||
		!strings.Contains(e.Message, "LABTRAIL_SSM_TOKEN_PARAMETER") || e.Header == "" {
		t.Errorf("init error %+v (header %q)", e, e.Header)
	}
	select {
	case err := <-f.exited:
		if err == nil {
			t.Error("the function exited 0 after an init error")
		}
		f.exited <- err // for the cleanup
	case <-time.After(10 * time.Second):
		t.Error("the function did not exit after its init error")
	}
	if ssmSrv.Calls("/team/gitlab/token") != 1 || ssmSrv.Requests("GetParameters") != 1 || ssmSrv.Requests("GetParameter") != 0 {
		t.Errorf("the missing parameter was asked %d times, in %d GetParameters and %d GetParameter requests (want 1, 1, 0)",
			ssmSrv.Calls("/team/gitlab/token"), ssmSrv.Requests("GetParameters"), ssmSrv.Requests("GetParameter"))
	}
}
