package ingest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/gitlab"
	"github.com/labtrail/labtrail/internal/gitlabsim"
	"github.com/labtrail/labtrail/internal/ingest"
	"github.com/labtrail/labtrail/internal/store/sqlite"
)

// capturedHook is one webhook the simulator sent.
type capturedHook struct {
	event string
	body  []byte
}

// hookCapture is an endpoint that keeps what the simulator sends.
type hookCapture struct {
	mu    sync.Mutex
	hooks []capturedHook
}

func (c *hookCapture) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	c.hooks = append(c.hooks, capturedHook{r.Header.Get("X-Gitlab-Event"), b})
	c.mu.Unlock()
}

func (c *hookCapture) take() []capturedHook {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.hooks
	c.hooks = nil
	return out
}

// deliverHook converts a webhook as the converter does (ParseWebhook, each
// event observed at the delivery's arrival) and stores its events. The
// converter itself is being reworked into batches (convert.go); this goes
// through the same parser and store call.
func deliverHook(t *testing.T, st *sqlite.Store, n *int, event string, body []byte) {
	t.Helper()
	*n++
	wh, err := gitlab.ParseWebhook(event, body)
	if errors.Is(err, gitlab.ErrUnknownEvent) {
		return
	}
	if err != nil {
		t.Fatalf("%s: %v", event, err)
	}
	received := time.Now().UTC()
	for i := range wh.Events {
		wh.Events[i].ObservedAt = received
	}
	if len(wh.Events) == 0 {
		return
	}
	if _, err := st.Upsert(context.Background(), wh.Events...); err != nil {
		t.Fatalf("%s: %v", event, err)
	}
}

// edit rewrites a webhook body's object_attributes (and top level, under
// the key "")
func edit(t *testing.T, body []byte, fn func(oa map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	fn(m["object_attributes"].(map[string]any))
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rubyTime is how older GitLab versions write webhook times: whole seconds.
func rubyTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }

func shifted(t *testing.T, v any, d time.Duration) string {
	t.Helper()
	s, _ := v.(string)
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		at, err = time.Parse("2006-01-02 15:04:05 UTC", s)
	}
	if err != nil {
		t.Fatalf("time %q: %v", s, err)
	}
	return rubyTime(at.Add(d))
}

// TestOnePollHealsWhatWebhooksSaid feeds the real conversion the
// simulator's webhooks (in GitLab's order, then again with second-precision
// times, as older GitLab sends them), then forged, equal-time and skewed
// payloads, then polls once: every merge request must then be what a poll
// into an empty store reads from the same GitLab, field by field, with the
// same timeline (docs/architecture.md, "One history").
func TestOnePollHealsWhatWebhooksSaid(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	capture := &hookCapture{}
	hs := httptest.NewServer(capture)
	t.Cleanup(hs.Close)
	r := newRig(t, gitlabsim.Options{Seed: 11, Projects: 1, MRs: 40, Pipelines: 4, Issues: -1, WebhookURL: hs.URL})
	syncOnce(t, r.poller)

	for range 8 {
		r.sim.AdvanceOnly(gitlabsim.ActivityMergeRequests)
	}
	if err := r.sim.FlushWebhooks(ctx); err != nil {
		t.Fatal(err)
	}
	hooks := capture.take()
	n := 0
	var mrHooks []capturedHook
	for _, h := range hooks {
		deliverHook(t, r.store, &n, h.event, h.body)
		if h.event == "Merge Request Hook" {
			mrHooks = append(mrHooks, h)
		}
	}
	if len(mrHooks) < 3 {
		t.Fatalf("only %d merge request hooks", len(mrHooks))
	}
	// The same again with whole-second times: no timeline entry twice.
	for _, h := range mrHooks {
		deliverHook(t, r.store, &n, h.event, edit(t, h.body, func(oa map[string]any) {
			for _, k := range []string{"created_at", "updated_at", "merged_at", "closed_at"} {
				if v, ok := oa[k].(string); ok && v != "" {
					oa[k] = shifted(t, v, 0)
				}
			}
		}))
	}

	var mrIIDs []int64
	for _, e := range r.sim.Truth() {
		if e.Kind == change.KindMergeRequest {
			var p, iid int64
			fmt.Sscanf(strings.ReplaceAll(e.ID, "-", " "), "mr %d %d", &p, &iid)
			mrIIDs = append(mrIIDs, iid)
		}
	}
	base := mrHooks[0].body
	forge := func(iid int64, fn func(oa map[string]any)) string {
		var id string
		deliverHook(t, r.store, &n, "Merge Request Hook", edit(t, base, func(oa map[string]any) {
			oa["iid"] = iid
			id = change.MergeRequestID(int64(oa["target_project_id"].(float64)), iid)
			fn(oa)
		}))
		return id
	}
	stored := func(id string) change.Event {
		e, _, err := r.store.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	// Forged: an old MR closed in 2100.
	forged := forge(mrIIDs[0], func(oa map[string]any) {
		oa["updated_at"], oa["state"], oa["action"], oa["title"] = "2100-01-01 00:00:00 UTC", "closed", "close", "forged"
	})
	// Equal time, another state.
	eq := change.MergeRequestID(0, 0)
	{
		id := change.MergeRequestID(stored(forged).ProjectID, mrIIDs[1])
		cur := stored(id)
		eq = forge(mrIIDs[1], func(oa map[string]any) {
			oa["created_at"], oa["updated_at"] = cur.CreatedAt.Format(time.RFC3339Nano), cur.UpdatedAt.Format(time.RFC3339Nano)
			oa["state"], oa["action"] = "closed", "update"
			if cur.State == "closed" {
				oa["state"] = "merged"
			}
		})
	}
	// Skewed clocks, ahead and behind, and none (times to the second).
	for i, d := range []time.Duration{2 * time.Hour, -2 * time.Hour, 0} {
		id := change.MergeRequestID(stored(forged).ProjectID, mrIIDs[2+i])
		cur := stored(id)
		forge(mrIIDs[2+i], func(oa map[string]any) {
			oa["created_at"], oa["updated_at"] = rubyTime(cur.CreatedAt.Add(d)), rubyTime(cur.UpdatedAt.Add(d))
			oa["state"], oa["action"], oa["merged_at"], oa["closed_at"] = cur.State, "update", nil, nil
			switch cur.State {
			case "merged":
				oa["merged_at"] = rubyTime(cur.OccurredAt.Add(d))
			case "closed":
				oa["closed_at"] = rubyTime(cur.OccurredAt.Add(d))
			}
		})
	}
	// The forgeries took: what the poll has to heal.
	if e := stored(forged); e.State != "closed" || e.UpdatedAt.Year() != 2100 {
		t.Fatalf("forged payload not stored: %+v", e)
	}
	if e := stored(eq); e.Source != change.SourcePoll {
		t.Logf("equal-time payload stored as %s, state %s", e.Source, e.State)
	}

	// One poll.
	syncOnce(t, r.poller)

	// What a poll into an empty store reads from the same GitLab.
	fresh, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "fresh.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fresh.Close() })
	syncOnce(t, &ingest.Poller{GitLab: r.client, Store: fresh, Log: quiet})

	r.compare(t, change.KindMergeRequest)
	var want []change.Event
	eachStored(t, fresh, change.KindMergeRequest, func(e change.Event) { want = append(want, e) })
	if len(want) != len(mrIIDs) {
		t.Fatalf("fresh store has %d merge requests, GitLab %d", len(want), len(mrIIDs))
	}
	for _, w := range want {
		g, gtl, err := r.store.Get(ctx, w.ID)
		if err != nil {
			t.Fatal(err)
		}
		_, wtl, err := fresh.Get(ctx, w.ID)
		if err != nil {
			t.Fatal(err)
		}
		g.Source, w.Source = "", ""
		if !reflect.DeepEqual(g, w) {
			t.Errorf("%s after one poll:\n got %+v\nwant %+v", w.ID, g, w)
		}
		if gs, ws := steps(gtl), steps(wtl); gs != ws {
			t.Errorf("%s timeline after one poll:\n got %s\nwant %s", w.ID, gs, ws)
		}
	}
}

// steps is a timeline as its states with their times to the second, the
// precision both ways in share.
func steps(tl []change.TimelineEntry) string {
	var s []string
	for _, e := range tl {
		s = append(s, e.State+"@"+e.At.UTC().Truncate(time.Second).Format(time.RFC3339))
	}
	return strings.Join(s, " ")
}

func syncOnce(t *testing.T, p *ingest.Poller) {
	t.Helper()
	res, err := p.SyncAll(context.Background())
	if err != nil || res.Err() != nil {
		t.Fatal(err, res.Err())
	}
}
