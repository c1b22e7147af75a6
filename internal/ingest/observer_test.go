package ingest_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/gitlab"
	"github.com/labtrail/labtrail/internal/gitlabsim"
	"github.com/labtrail/labtrail/internal/ingest"
	"github.com/labtrail/labtrail/internal/store/sqlite"
)

// observed is an Observer that keeps what it is told.
type observed struct {
	mu       sync.Mutex
	calls    map[int]int
	runs     map[string]int // project kind result
	webhooks map[string]int // event|result
}

func newObserved() *observed {
	return &observed{calls: map[int]int{}, runs: map[string]int{}, webhooks: map[string]int{}}
}

func (r *observed) GitLabCall(status, _ int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls[status]++
}

func (r *observed) SyncRun(project string, kind change.Kind, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	result := "success"
	if err != nil {
		result = "error"
	}
	r.runs[project+" "+string(kind)+" "+result]++
}

func (r *observed) Webhook(event, result string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.webhooks[event+"|"+result]++
}

// TestObserverSeesEachSyncRun: one report per project and kind a poll
// walks, an error for the project GitLab refuses.
func TestObserverSeesEachSyncRun(t *testing.T) {
	r := newRig(t, gitlabsim.Options{Seed: 4, Projects: 2, MRs: 2, Pipelines: 2})
	rec := newObserved()
	r.poller.Observer = rec
	res, err := r.poller.SyncAll(context.Background())
	if err != nil || res.Err() != nil || len(res.Projects) != 2 {
		t.Fatalf("sync: %v %v %d projects", err, res.Err(), len(res.Projects))
	}
	for _, p := range res.Projects {
		for _, k := range gitlab.SyncKinds() {
			if n := rec.runs[p.Project.Path+" "+string(k)+" success"]; n != 1 {
				t.Errorf("%s %s: %d successful runs reported, want 1 (%v)", p.Project.Path, k, n, rec.runs)
			}
		}
	}

	bad := res.Projects[0].Project.Path
	r.sim.SetProjectFault(bad, http.StatusForbidden)
	r.poller.FullSweep = -1
	rec = newObserved()
	r.poller.Observer = rec
	_, _ = r.poller.SyncAll(context.Background())
	errs := 0
	for k, n := range rec.runs {
		if strings.HasSuffix(k, " error") {
			if !strings.HasPrefix(k, bad+" ") {
				t.Errorf("error reported for another project: %s", k)
			}
			errs += n
		}
	}
	if errs != 1 {
		t.Errorf("%d failed runs reported for the refused project, want 1 (its sync stops at the first kind): %v", errs, rec.runs)
	}
}

// TestObserverSeesEachDelivery: receipt results, then conversion
// results, with event names bounded.
func TestObserverSeesEachDelivery(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "o.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rec := newObserved()
	conv := &ingest.Converter{Store: st, Log: quiet, Observer: rec}
	h, err := ingest.NewWebhookHandler(ingest.WebhookConfig{Secrets: []string{"s"}}, st, conv, quiet)
	if err != nil {
		t.Fatal(err)
	}
	h.SetObserver(rec)
	srv := httptest.NewServer(h)
	defer srv.Close()
	post := func(token, event, key, body string) int {
		req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(body))
		req.Header.Set("X-Gitlab-Token", token)
		req.Header.Set("X-Gitlab-Event", event)
		req.Header.Set("Idempotency-Key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	mr := string(mrHook(t, 77, "acme/web", "2026-03-01 10:00:00 UTC", "2026-03-01 11:00:00 UTC"))
	for _, c := range []struct {
		token, event, key, body string
		status                  int
	}{
		{"s", "Merge Request Hook", "a", mr, 200},
		{"s", "Merge Request Hook", "a", mr, 200},                    // a retry
		{"s", "Merge Request Hook", "b", `{"object_kind":"x"}`, 200}, // malformed for its type
		{"s", "  Push Hook ", "c", `{`, 400},
		{"nope", "Issue Hook", "d", `{}`, 401},
		{"s", strings.Repeat("Z", 300), "e", `{}`, 200}, // no such type
	} {
		if got := post(c.token, c.event, c.key, c.body); got != c.status {
			t.Fatalf("%q %q: %d, want %d", c.event, c.key, got, c.status)
		}
	}
	if err := conv.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	st.Close() // the store is gone: the next delivery cannot be stored
	if got := post("s", "Note Hook", "f", `{}`); got != http.StatusServiceUnavailable {
		t.Fatalf("store closed: %d", got)
	}
	want := map[string]int{
		"Merge Request Hook|stored": 2, "Merge Request Hook|duplicate": 1,
		"Push Hook|rejected": 1, "Issue Hook|rejected": 1, "other|stored": 1, "Note Hook|error": 1,
		"Merge Request Hook|processed": 1, "Merge Request Hook|failed": 1, "other|stored_raw": 1,
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for k, n := range want {
		if rec.webhooks[k] != n {
			t.Errorf("%s: %d, want %d", k, rec.webhooks[k], n)
		}
	}
	if len(rec.webhooks) != len(want) {
		t.Errorf("reported %v, want %v", rec.webhooks, want)
	}
}
