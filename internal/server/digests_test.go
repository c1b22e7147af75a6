package server_test

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestDigestSendsInSyncStatus: a digest that failed, one sent and one
// being sent show in GET /api/v1/sync/status and on the sync page, the
// failure with its error.
func TestDigestSendsInSyncStatus(t *testing.T) {
	ts, st := setup(t)
	ctx := context.Background()
	if code, m := get(t, ts.URL+"/api/v1/sync/status"); code != 200 || m["digests"] == nil || len(m["digests"].([]any)) != 0 {
		t.Fatalf("no digest yet: %d %v", code, m["digests"])
	}
	if code, body := page(t, ts.URL+"/sync"); code != 200 || strings.Contains(body, `id="digests"`) {
		t.Errorf("the sync page shows digests before any: %d", code)
	}
	at := time.Date(2026, 3, 16, 9, 0, 0, 0, time.UTC)
	claim := func(key, dest string) {
		t.Helper()
		if _, ok, err := st.ClaimDigest(ctx, key, dest, at, time.Hour); err != nil || !ok {
			t.Fatalf("claim %s %s: %v %v", key, dest, ok, err)
		}
	}
	claim("week:2026-03-09:UTC:all", "slack")
	claim("week:2026-03-09:UTC:all", "webhook")
	claim("day:2026-03-15:UTC:all", "slack")
	if err := st.FinishDigest(ctx, "week:2026-03-09:UTC:all", "slack", at.Add(time.Minute),
		"https://hooks.slack.com/services/*** answered 500: <oops>"); err != nil {
		t.Fatal(err)
	}
	if err := st.FinishDigest(ctx, "week:2026-03-09:UTC:all", "webhook", at.Add(2*time.Minute), ""); err != nil {
		t.Fatal(err)
	}

	_, m := get(t, ts.URL+"/api/v1/sync/status")
	states := map[string]map[string]any{}
	for _, d := range m["digests"].([]any) {
		d := d.(map[string]any)
		states[d["key"].(string)+" "+d["destination"].(string)] = d
	}
	if len(states) != 3 {
		t.Fatalf("digests: %v", m["digests"])
	}
	for k, want := range map[string]string{"week:2026-03-09:UTC:all slack": "failed", "week:2026-03-09:UTC:all webhook": "sent",
		"day:2026-03-15:UTC:all slack": "sending"} {
		if got := states[k]["state"]; got != want {
			t.Errorf("%s: %v, want %s", k, got, want)
		}
	}
	if e := states["week:2026-03-09:UTC:all slack"]["last_error"]; e != "https://hooks.slack.com/services/*** answered 500: <oops>" {
		t.Errorf("the failure's error: %v", e)
	}

	code, body := page(t, ts.URL+"/sync")
	if code != 200 {
		t.Fatalf("GET /sync: %d", code)
	}
	i := strings.Index(body, `id="digests"`)
	if i < 0 {
		t.Fatalf("no digests section:\n%s", body)
	}
	section := body[i:]
	for _, want := range []string{`id="digests-failed">1 failed.`, "<code>week:2026-03-09:UTC:all</code>", "answered 500: &lt;oops&gt;",
		`<span class="state-success">sent</span>`, `<span class="muted">sending</span>`} {
		if !strings.Contains(section, want) {
			t.Errorf("%q is missing from the digests section:\n%s", want, section)
		}
	}
}

// TestDigestSendsOnlyForWhoSeesEveryProject: someone signed in with GitLab
// who sees some projects sees no digest send; the admin, who sees every
// project, does.
func TestDigestSendsOnlyForWhoSeesEveryProject(t *testing.T) {
	w := newGitLabWorld(t)
	if _, _, err := w.st.ClaimDigest(context.Background(), "week:2026-03-09:UTC:projects=1,2,3,4", "slack", time.Now(), time.Hour); err != nil {
		t.Fatal(err)
	}
	var status struct{ Digests []map[string]any }
	b := w.browser(t)
	b.signIn(w.user, "/")
	if code := b.api("/api/v1/sync/status", &status); code != 200 || status.Digests == nil || len(status.Digests) != 0 {
		t.Errorf("a user who sees 2 projects: %d, digests %v", code, status.Digests)
	}
	if _, body := b.page("/sync"); strings.Contains(body, `id="digests"`) {
		t.Error("the sync page shows the user the digests")
	}
	admin := w.browser(t)
	admin.signIn(w.admin, "/")
	if code := admin.api("/api/v1/sync/status", &status); code != 200 || len(status.Digests) != 1 {
		t.Errorf("the admin: %d, digests %v", code, status.Digests)
	}
}
