package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/labtrail/labtrail/internal/gitlabsim"
)

func TestHooksInstallStatusTest(t *testing.T) {
	// The stand-in for labtrail's webhook endpoint records what arrives.
	var mu sync.Mutex
	var events, tokens []string
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		events = append(events, r.Header.Get("X-Gitlab-Event"))
		tokens = append(tokens, r.Header.Get("X-Gitlab-Token"))
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	defer recv.Close()
	hookURL := recv.URL + "/api/v1/webhooks/gitlab"

	sim, simURL := startSim(t, gitlabsim.Options{Seed: 3, Projects: 2, MRs: 2, Pipelines: 2})
	env := syncEnv(simURL, filepath.Join(t.TempDir(), "x.db"))
	env["LABTRAIL_WEBHOOK_SECRET"] = "hook-s3cret"

	out, errOut, code := labtrail(t, env, "hooks", "install", "--url", hookURL)
	if code != 0 || strings.Count(out, ": created hook") != 2 || !strings.Contains(out, "2 created, 0 updated, 0 failed, of 2 projects") {
		t.Fatalf("first install: exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = labtrail(t, env, "hooks", "install", "--url", hookURL)
	if code != 0 || strings.Count(out, ": updated hook") != 2 || !strings.Contains(out, "0 created, 2 updated") {
		t.Fatalf("second install: exit %d\n%s%s", code, out, errOut)
	}
	if strings.Contains(out+errOut, "hook-s3cret") {
		t.Error("the webhook secret is printed")
	}

	out, errOut, code = labtrail(t, env, "hooks", "status", "--url", hookURL)
	if code != 0 || strings.Count(out, hookURL) != 2 || strings.Count(out, " yes ") != 2 {
		t.Fatalf("status: exit %d\n%s%s", code, out, errOut)
	}
	for _, e := range []string{"push", "merge_requests", "pipeline", "deployment", "releases", "emoji"} {
		if !strings.Contains(out, e) {
			t.Errorf("status lacks event %s:\n%s", e, out)
		}
	}

	out, errOut, code = labtrail(t, env, "hooks", "test", "--url", hookURL)
	if code != 0 || strings.Count(out, " OK\n") != 2 || !strings.Contains(out, "2 OK, 0 failed") {
		t.Fatalf("test: exit %d\n%s%s", code, out, errOut)
	}
	mu.Lock()
	if len(events) != 2 || events[0] != "Push Hook" || tokens[0] != "hook-s3cret" || tokens[1] != "hook-s3cret" {
		t.Errorf("deliveries: events %v tokens %v", events, tokens)
	}
	mu.Unlock()

	// A URL that fails is reported per project, and the exit code says so.
	recv.Close()
	out, _, code = labtrail(t, env, "hooks", "test", "--url", hookURL)
	if code != 1 || strings.Count(out, "failed:") != 2 {
		t.Errorf("test against a dead URL: exit %d\n%s", code, out)
	}

	// A Developer cannot manage hooks: the error says what is needed.
	ids := map[int64]bool{}
	for _, e := range sim.Truth() {
		var pid int64
		if _, err := fmt.Sscanf(e.ID, "mr-%d-", &pid); err == nil {
			ids[pid] = true
		}
	}
	if len(ids) != 2 {
		t.Fatalf("project ids from the truth: %v", ids)
	}
	for id := range ids {
		sim.DenyHooks(id)
	}
	out, _, code = labtrail(t, env, "hooks", "install", "--url", "https://other.example.com/hook")
	if code != 1 || !strings.Contains(out, "token needs Maintainer role on") {
		t.Errorf("install as developer: exit %d\n%s", code, out)
	}
}

func TestHooksUsage(t *testing.T) {
	for _, sub := range []string{"install", "status", "test"} {
		out, errOut, code := labtrail(t, nil, "hooks", sub, "--help")
		if code != 0 || !strings.Contains(out+errOut, "Usage: labtrail hooks "+sub) || !strings.Contains(out+errOut, "-url") {
			t.Errorf("hooks %s --help: exit %d\n%s%s", sub, code, out, errOut)
		}
	}
	if _, errOut, code := labtrail(t, nil, "hooks", "install"); code != 2 || !strings.Contains(errOut, "--url is required") {
		t.Errorf("install without --url: exit %d %s", code, errOut)
	}
	if _, _, code := labtrail(t, nil, "hooks", "frob"); code != 2 {
		t.Errorf("unknown subcommand: exit %d", code)
	}
	env := map[string]string{"GITLAB_TOKEN": "x", "LABTRAIL_WEBHOOK_SECRET": ""}
	if _, errOut, code := labtrail(t, env, "hooks", "install", "--url", "https://x.example/h", "--gitlab-url", "http://127.0.0.1:1"); code != 1 || !strings.Contains(errOut, "LABTRAIL_WEBHOOK_SECRET not set") {
		t.Errorf("install without a secret: exit %d %s", code, errOut)
	}
}
