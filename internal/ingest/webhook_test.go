package ingest_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/ingest"
	"github.com/labtrail/labtrail/internal/store"
	"github.com/labtrail/labtrail/internal/store/sqlite"
)

type recorder struct {
	mu  sync.Mutex
	ids []int64
}

func (r *recorder) EnqueueDelivery(_ context.Context, id int64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ids = append(r.ids, id)
	return nil
}

const hookSecret = "s3cret-token"

var signingKey = []byte("0123456789abcdef0123456789abcdef")

func newHook(t testing.TB, mutate func(*ingest.WebhookConfig)) (*ingest.WebhookHandler, store.Store, *recorder) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "w.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg := ingest.WebhookConfig{Secrets: []string{"other-group-secret", hookSecret}}
	if mutate != nil {
		mutate(&cfg)
	}
	rec := &recorder{}
	h, err := ingest.NewWebhookHandler(cfg, st, rec, quiet)
	if err != nil {
		t.Fatal(err)
	}
	return h, st, rec
}

const mrPayload = `{"object_kind":"merge_request","event_type":"merge_request","project":{"id":1,"path_with_namespace":"a/b"},"object_attributes":{"iid":3}}`

func post(h http.Handler, body string, headers map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/api/v1/webhooks/gitlab", strings.NewReader(body))
	req.RemoteAddr = "10.1.2.3:4567"
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Gitlab-Event", "Merge Request Hook")
	req.Header.Set("X-Gitlab-Token", hookSecret)
	for k, v := range headers {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func countDeliveries(t testing.TB, st store.Store) int {
	t.Helper()
	p, err := st.ListDeliveries(context.Background(), store.DeliveryFilter{Limit: store.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	return len(p.Deliveries)
}

func TestWebhookRefusalsStoreNothing(t *testing.T) {
	allowNet := func(c *ingest.WebhookConfig) { c.Allow = []netip.Prefix{netip.MustParsePrefix("192.168.0.0/16")} }
	small := func(c *ingest.WebhookConfig) { c.MaxBody = 64 }
	tests := []struct {
		name    string
		mutate  func(*ingest.WebhookConfig)
		body    string
		headers map[string]string
		code    int
	}{
		{"no token", nil, mrPayload, map[string]string{"X-Gitlab-Token": ""}, 401},
		{"wrong token", nil, mrPayload, map[string]string{"X-Gitlab-Token": "s3cret-toke"}, 401},
		{"outside allowlist", allowNet, mrPayload, nil, 403},
		{"too large", small, mrPayload, nil, 413},
		{"not json", nil, `{"object_kind":`, nil, 400},
		{"json array", nil, `[1,2]`, nil, 400},
		{"empty", nil, ``, nil, 400},
		{"no event header", nil, mrPayload, map[string]string{"X-Gitlab-Event": ""}, 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, st, rec := newHook(t, tc.mutate)
			if w := post(h, tc.body, tc.headers); w.Code != tc.code || !strings.Contains(w.Body.String(), `"error"`) {
				t.Errorf("status %d %s, want %d", w.Code, w.Body, tc.code)
			}
			if n := countDeliveries(t, st); n != 0 || len(rec.ids) != 0 {
				t.Errorf("refused delivery stored (%d) or queued (%v)", n, rec.ids)
			}
		})
	}
}

func TestWebhookStoredOnceAcrossRetries(t *testing.T) {
	h, st, rec := newHook(t, nil)
	ctx := context.Background()
	first := post(h, mrPayload, map[string]string{"Idempotency-Key": "k-1", "X-Gitlab-Webhook-UUID": "u-1", "X-Gitlab-Event-UUID": "e-1"})
	retry := post(h, mrPayload, map[string]string{"Idempotency-Key": "k-1", "X-Gitlab-Webhook-UUID": "u-2", "X-Gitlab-Event-UUID": "e-1"})
	// Another hook of the same user action: same Event-UUID, its own key.
	sibling := post(h, `{"object_kind":"push","project":{"id":1}}`, map[string]string{"X-Gitlab-Event": "Push Hook",
		"Idempotency-Key": "k-2", "X-Gitlab-Webhook-UUID": "u-3", "X-Gitlab-Event-UUID": "e-1"})
	for i, w := range []*httptest.ResponseRecorder{first, retry, sibling} {
		if w.Code != 200 {
			t.Fatalf("delivery %d: %d %s", i, w.Code, w.Body)
		}
	}
	if !strings.Contains(retry.Body.String(), `"duplicate":true`) {
		t.Errorf("retry not reported as duplicate: %s", retry.Body)
	}
	if n := countDeliveries(t, st); n != 2 {
		t.Errorf("%d deliveries stored, want 2 (a retry once, the sibling hook kept)", n)
	}
	if len(rec.ids) != 2 {
		t.Errorf("queued %v, want each new delivery once", rec.ids)
	}
	d, err := st.Delivery(ctx, rec.ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if d.Body == nil || d.EventType != "Merge Request Hook" || d.WebhookUUID != "u-1" {
		t.Errorf("stored %+v", d)
	}
	if _, leaked := d.Headers["X-Gitlab-Token"]; leaked {
		t.Error("the secret token was stored with the delivery")
	}
	// Without an Idempotency-Key (older GitLab), identical payloads are one delivery.
	post(h, mrPayload, nil)
	post(h, mrPayload, nil)
	if n := countDeliveries(t, st); n != 3 {
		t.Errorf("%d deliveries after two key-less identical posts, want 3", n)
	}
}

func sign(id, ts string, body []byte, key []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "." + string(body)))
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func TestWebhookSignatures(t *testing.T) {
	signed := func(c *ingest.WebhookConfig) {
		c.SigningSecrets = []string{"whsec_" + base64.StdEncoding.EncodeToString(signingKey)}
	}
	h, st, _ := newHook(t, signed)
	now := strconv.FormatInt(time.Now().Unix(), 10)
	old := strconv.FormatInt(time.Now().Add(-time.Hour).Unix(), 10)
	good := sign("msg_1", now, []byte(mrPayload), signingKey)
	tests := []struct {
		name    string
		headers map[string]string
		code    int
	}{
		{"valid", map[string]string{"webhook-id": "msg_1", "webhook-timestamp": now, "webhook-signature": "v1,Zm9v " + good, "Idempotency-Key": "s1"}, 200},
		{"unsigned", map[string]string{"Idempotency-Key": "s2"}, 401},
		{"wrong key", map[string]string{"webhook-id": "msg_1", "webhook-timestamp": now, "webhook-signature": sign("msg_1", now, []byte(mrPayload), []byte("nope")), "Idempotency-Key": "s3"}, 401},
		{"other body", map[string]string{"webhook-id": "msg_2", "webhook-timestamp": now, "webhook-signature": good, "Idempotency-Key": "s4"}, 401},
		{"replayed later", map[string]string{"webhook-id": "msg_1", "webhook-timestamp": old, "webhook-signature": sign("msg_1", old, []byte(mrPayload), signingKey), "Idempotency-Key": "s5"}, 401},
	}
	for _, tc := range tests {
		if w := post(h, mrPayload, tc.headers); w.Code != tc.code {
			t.Errorf("%s: %d %s, want %d", tc.name, w.Code, w.Body, tc.code)
		}
	}
	if n := countDeliveries(t, st); n != 1 {
		t.Errorf("%d deliveries stored, want only the valid one", n)
	}
	if _, err := ingest.NewWebhookHandler(ingest.WebhookConfig{Secrets: []string{"x"}, SigningSecrets: []string{"not-whsec"}}, st, nil, quiet); err == nil {
		t.Error("a malformed signing secret was accepted")
	}
	if _, err := ingest.NewWebhookHandler(ingest.WebhookConfig{}, st, nil, quiet); err == nil {
		t.Error("a handler without a secret was built")
	}
}

// FuzzWebhookHandler: whatever arrives, the handler never panics and never
// answers 5xx, and what it refuses stores nothing.
func FuzzWebhookHandler(f *testing.F) {
	f.Add([]byte(mrPayload), "Merge Request Hook", hookSecret, "k")
	f.Add([]byte(`{"object_kind":"push"}`), "Push Hook", hookSecret, "")
	f.Add([]byte(`not json`), "Merge Request Hook", hookSecret, "k")
	f.Add([]byte(`{}`), "", "bad", "k")
	h, st, _ := newHook(f, nil)
	f.Fuzz(func(t *testing.T, body []byte, event, token, key string) {
		before := countDeliveries(t, st)
		req := httptest.NewRequest(http.MethodPost, "/api/v1/webhooks/gitlab", bytes.NewReader(body))
		req.Header.Set("X-Gitlab-Event", event)
		req.Header.Set("X-Gitlab-Token", token)
		req.Header.Set("Idempotency-Key", key)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("status %d for %q", w.Code, body)
		}
		if w.Code != 200 && countDeliveries(t, st) != before {
			t.Fatalf("refused (%d) but stored", w.Code)
		}
	})
}

// TestRealPayloadsThroughTheHandler posts every GitLab sample payload
// through the handler and processes it: each is acknowledged and stored,
// and its events land in the store under the poller's ids.
func TestRealPayloadsThroughTheHandler(t *testing.T) {
	samples := map[string]string{
		"build.json": "Job Hook", "job.json": "Job Hook", "deployment.json": "Deployment Hook",
		"emoji_issue.json": "Emoji Hook", "feature_flag.json": "Feature Flag Hook", "issue.json": "Issue Hook",
		"member.json": "Member Hook", "merge_request.json": "Merge Request Hook", "service_merge_request.json": "Merge Request Hook",
		"milestone_project.json": "Milestone Hook", "note_commit.json": "Note Hook", "note_issue.json": "Note Hook",
		"note_merge_request.json": "Note Hook", "pipeline.json": "Pipeline Hook", "project.json": "Project Hook",
		"push.json": "Push Hook", "release.json": "Release Hook", "subgroup.json": "Subgroup Hook",
		"tag_push.json": "Tag Push Hook", "wiki_page.json": "Wiki Page Hook", "vulnerability.json": "Vulnerability Hook",
	}
	h, st, rec := newHook(t, nil)
	ctx := context.Background()
	heal := &healRecorder{}
	// A push only keeps commits of synced branches; the sample pushes to master.
	conv := &ingest.Converter{Store: st, Branches: []string{"master", "main"}, Heal: heal, Log: quiet}
	var last store.ConvertResult
	conv.OnBatch = func(r store.ConvertResult) { last = r }
	converted := 0
	for file, event := range samples {
		body, err := os.ReadFile(filepath.Join("..", "gitlab", "testdata", "webhooks", file))
		if err != nil {
			t.Fatal(err)
		}
		w := post(h, string(body), map[string]string{"X-Gitlab-Event": event, "Idempotency-Key": file})
		if w.Code != 200 {
			t.Errorf("%s: %d %s", file, w.Code, w.Body)
			continue
		}
		id := rec.ids[len(rec.ids)-1]
		healed := len(heal.projects)
		if err := conv.Replay(ctx, id); err != nil {
			t.Errorf("%s: %v", file, err)
			continue
		}
		cv := last.Conversions[0]
		d, _ := st.Delivery(ctx, id)
		if d.Status != cv.Status || d.LastError != cv.Reason || d.Attempts != 1 || d.ProcessedAt.IsZero() {
			t.Errorf("%s: stored as %s (%q, %d attempts, processed at %s), converted as %s (%q)",
				file, d.Status, d.LastError, d.Attempts, d.ProcessedAt, cv.Status, cv.Reason)
		}
		if file == "tag_push.json" && d.Status != store.DeliveryProcessed {
			// Understood: its tag stored, or its project's sync scheduled.
			t.Errorf("%s: status %s", file, d.Status)
		}
		if len(cv.Events) == 0 {
			if d.Status != store.DeliveryStoredRaw && !(d.Status == store.DeliveryProcessed && len(heal.projects) > healed) {
				t.Errorf("%s: no events, no sync scheduled, but status %s", file, d.Status)
			}
			continue
		}
		if d.Status != store.DeliveryProcessed {
			t.Errorf("%s: status %s", file, d.Status)
		}
		for _, e := range cv.Events {
			if !e.ObservedAt.Equal(d.ReceivedAt) {
				t.Errorf("%s: event %s observed at %s, delivery received at %s", file, e.ID, e.ObservedAt, d.ReceivedAt)
			}
			got, _, err := st.Get(ctx, e.ID)
			if err != nil || got.Kind != e.Kind || got.Source != change.SourceWebhook {
				t.Errorf("%s: event %s not stored as sent: %+v %v", file, e.ID, got, err)
			}
			if !strings.HasPrefix(e.ID, map[change.Kind]string{
				change.KindMergeRequest: "mr-", change.KindPipeline: "pipeline-", change.KindJob: "job-",
				change.KindCommit: "commit-", change.KindIssue: "issue-", change.KindNote: "note-",
				change.KindBranch: "branch-", change.KindTag: "tag-", change.KindRelease: "release-",
				change.KindDeployment: "deployment-",
			}[e.Kind]) {
				t.Errorf("%s: id %s for kind %s", file, e.ID, e.Kind)
			}
		}
		converted++
	}
	if converted < 12 {
		t.Errorf("only %d sample types converted into events", converted)
	}
	// Converting a delivery again changes nothing.
	for _, id := range rec.ids {
		err := conv.Replay(ctx, id)
		if err != nil || last.Upsert.Stored() != 0 {
			t.Errorf("converting delivery %d again: stored %d, %v", id, last.Upsert.Stored(), err)
		}
	}
}

// healRecorder records the projects whose sync a converter scheduled.
type healRecorder struct{ projects []int64 }

func (h *healRecorder) HealProject(_ context.Context, id int64, _ string) error {
	h.projects = append(h.projects, id)
	return nil
}
