package ingest_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/ingest"
	"github.com/labtrail/labtrail/internal/store"
)

// TestConnectionDeliveries: a delivery that came in on an added
// connection's endpoint is stored marked with it (a header of that name
// sent by a client is not kept), converted into events under its ids, its
// healing syncs asked of that connection; one of a connection no longer
// configured is kept as ignored.
func TestConnectionDeliveries(t *testing.T) {
	ctx := context.Background()
	h, st, rec := newHook(t, func(c *ingest.WebhookConfig) { c.Connection = "second" })
	def, err := ingest.NewWebhookHandler(ingest.WebhookConfig{Secrets: []string{hookSecret}}, st, rec, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defHeal, secondHeal := &healRecorder{}, &healRecorder{}
	scopes := map[string]ingest.ConnectionScope{"second": {Projects: st.ConnectionProjects("second"), Heal: secondHeal}}
	conv := &ingest.Converter{Store: st, Heal: defHeal, Log: quiet, Connections: func() map[string]ingest.ConnectionScope { return scopes }}
	var last store.ConvertResult
	conv.OnBatch = func(r store.ConvertResult) { last = r }

	mr, err := os.ReadFile(filepath.Join("..", "gitlab", "testdata", "webhooks", "merge_request.json"))
	if err != nil {
		t.Fatal(err)
	}
	// The same payload through both endpoints: two deliveries, two events.
	for _, hh := range []*ingest.WebhookHandler{h, def} {
		if w := post(hh, string(mr), map[string]string{"Idempotency-Key": "same", ingest.ConnectionHeader: "forged"}); w.Code != 200 {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
	}
	if len(rec.ids) != 2 {
		t.Fatalf("%d deliveries stored, want 2 (one per connection)", len(rec.ids))
	}
	d, err := st.Delivery(ctx, rec.ids[0])
	if err != nil || d.Headers[ingest.ConnectionHeader] != "second" {
		t.Fatalf("the connection's delivery: %v %v", d.Headers, err)
	}
	if d2, _ := st.Delivery(ctx, rec.ids[1]); d2.Headers[ingest.ConnectionHeader] != "" {
		t.Fatalf("a client's header was kept: %v", d2.Headers)
	}
	var defaultID string
	for _, i := range []int{1, 0} {
		if err := conv.Replay(ctx, rec.ids[i]); err != nil {
			t.Fatal(err)
		}
		if len(last.Conversions) != 1 || len(last.Conversions[0].Events) != 1 {
			t.Fatalf("delivery %d: %+v", i, last.Conversions)
		}
		id := last.Conversions[0].Events[0].ID
		if i == 1 {
			defaultID = id
		} else if id != "second:"+defaultID {
			t.Fatalf("the connection's event %s, the default's %s", id, defaultID)
		}
		if _, _, err := st.Get(ctx, id); err != nil {
			t.Errorf("%s not stored: %v", id, err)
		}
		// A merge request's webhook lacks details its project's sync
		// fills in: each connection's healer is asked for its own.
		if want := map[int][2]int{1: {1, 0}, 0: {1, 1}}[i]; len(defHeal.projects) != want[0] || len(secondHeal.projects) != want[1] {
			t.Errorf("after delivery %d: healing asked of the default %v, of the connection %v", i, defHeal.projects, secondHeal.projects)
		}
	}

	// The connection removed: its deliveries are kept as ignored.
	delete(scopes, "second")
	if w := post(h, string(mr), map[string]string{"Idempotency-Key": "later"}); w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	id := rec.ids[len(rec.ids)-1]
	if err := conv.Replay(ctx, id); err != nil {
		t.Fatal(err)
	}
	if d, _ := st.Delivery(ctx, id); d.Status != store.DeliveryIgnored || !strings.Contains(d.LastError, "second") {
		t.Errorf("a removed connection's delivery: %s %q", d.Status, d.LastError)
	}
}

// TestConnectionStore: a poller of an added connection writes its events
// under its ids and asks for the versions it holds under its ids, and
// keeps its projects apart.
func TestConnectionStore(t *testing.T) {
	ctx := context.Background()
	_, st, _ := newHook(t, nil)
	if ingest.ConnectionStore(st, store.DefaultConnection, nil) != ingest.ProcessStore(st) {
		t.Error("the default connection's store is not the store")
	}
	cs := ingest.ConnectionStore(st, "second", st.ConnectionProjects("second"))
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	e := change.Event{ID: "mr-1-3", Kind: change.KindMergeRequest, ProjectID: 1, UpdatedAt: at, OccurredAt: at, Source: change.SourcePoll}
	if _, err := cs.Upsert(ctx, e); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Get(ctx, "second:mr-1-3"); err != nil {
		t.Fatalf("stored under its id: %v", err)
	}
	if _, _, err := st.Get(ctx, "mr-1-3"); err == nil {
		t.Fatal("stored under the default's id")
	}
	for name, get := range map[string]func() (map[string]time.Time, error){
		"Versions":         func() (map[string]time.Time, error) { return cs.Versions(ctx, []string{"mr-1-3", "mr-1-4"}) },
		"VersionsByPrefix": func() (map[string]time.Time, error) { return cs.VersionsByPrefix(ctx, "mr-1-") },
	} {
		v, err := get()
		if err != nil || len(v) != 1 || !v["mr-1-3"].Equal(at) {
			t.Errorf("%s: %v %v", name, v, err)
		}
	}
	if v, _ := st.VersionsByPrefix(ctx, "mr-1-"); len(v) != 0 {
		t.Errorf("the default connection holds %v", v)
	}
	if err := cs.PutProjects(ctx, store.Project{ID: 1, Path: "x/y", LastActivityAt: at}); err != nil {
		t.Fatal(err)
	}
	if ps, _ := st.Projects(ctx); len(ps) != 0 {
		t.Errorf("the connection's project is the default's: %+v", ps)
	}
}
