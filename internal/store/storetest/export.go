package storetest

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/store"
)

// fill gives s some of everything a store holds: events with timelines and
// exact large numbers in their attributes, projects, sync states, webhook
// deliveries in several states and audit entries.
func fill(t *testing.T, s store.Core) {
	t.Helper()
	var es []change.Event
	for i := int64(1); i <= 7; i++ {
		e := mr(1+i%2, i, int(i))
		e.Attrs["big"] = int64(9007199254740993) // 2^53+1: float64 would round it
		e.Attrs["nested"] = map[string]any{"list": []any{"a", 1.5, true, nil}}
		e.Transitions = []change.Transition{{State: "opened", At: at(0)}, {State: "approved", At: at(int(i))}}
		es = append(es, e)
	}
	es = append(es, pipeline(9, 3, "running", change.SourceWebhook, tr("created", 1), tr("running", 2)))
	mustUpsert(t, s, es...)
	mustUpsert(t, s, pipeline(9, 5, "failed", change.SourcePoll, tr("failed", 4)))
	if err := s.PutProjects(ctx(t), store.Project{ID: 2, Path: "g/two", Name: "Two", LastActivityAt: at(2)},
		store.Project{ID: 1, Path: "g/one", Name: "One", Status: store.ProjectForbidden, StatusDetail: "403", StatusAt: at(3)}); err != nil {
		t.Fatal(err)
	}
	for _, st := range []store.SyncState{
		{ProjectID: 1, ProjectPath: "g/one", Kind: change.KindMergeRequest, Cursor: at(7), LastRunAt: at(8), LastSuccess: at(8), Fetched: 4, Stored: 4},
		{ProjectID: 2, ProjectPath: "g/two", Kind: change.KindPipeline, LastRunAt: at(9), LastError: "boom"},
	} {
		if err := s.PutSyncState(ctx(t), st); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		id, _, err := s.PutDelivery(ctx(t), store.Delivery{
			IdempotencyKey: fmt.Sprintf("key-%d", i), EventType: "Pipeline Hook", EventUUID: "ev", WebhookUUID: "wh",
			Headers: map[string]string{"X-Gitlab-Event": "Pipeline Hook"}, Body: []byte(fmt.Sprintf(`{"n":%d}`, i)), ReceivedAt: at(i),
		})
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			if err := s.MarkDelivery(ctx(t), id, store.DeliveryProcessed, ""); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.AppendAudit(ctx(t), auditEntries()...); err != nil {
		t.Fatal(err)
	}
}

func exportAll(t *testing.T, s store.Core, page int) []store.History {
	t.Helper()
	var all []store.History
	for after := ""; ; {
		hs, err := s.ExportEvents(ctx(t), after, page)
		if err != nil {
			t.Fatal(err)
		}
		if len(hs) == 0 {
			return all
		}
		if len(hs) > page {
			t.Fatalf("ExportEvents returned %d, limit %d", len(hs), page)
		}
		for _, h := range hs {
			if h.Event.ID <= after {
				t.Fatalf("ExportEvents out of order: %q after %q", h.Event.ID, after)
			}
			after = h.Event.ID
		}
		all = append(all, hs...)
	}
}

func sumsOf(t *testing.T, s store.Core) []store.TableSum {
	t.Helper()
	sums, err := store.Checksums(ctx(t), s, nil)
	if err != nil {
		t.Fatal(err)
	}
	return sums
}

// testExport: ExportEvents hands out every event once, in id order, with
// the timeline Get gives and numbers exactly as stored.
func testExport(t *testing.T, s store.Core) {
	fill(t, s)
	all := exportAll(t, s, 3)
	if n := mustCount(t, s, ""); len(all) != n {
		t.Fatalf("exported %d events, store has %d", len(all), n)
	}
	for _, h := range all {
		e, tl := mustGet(t, s, h.Event.ID)
		if e.ID != h.Event.ID || !e.UpdatedAt.Equal(h.Event.UpdatedAt) || e.Title != h.Event.Title {
			t.Errorf("exported %s differs from Get", h.Event.ID)
		}
		if !reflect.DeepEqual(tl, h.Timeline) {
			t.Errorf("timeline of %s\n export: %v\n    get: %v", h.Event.ID, h.Timeline, tl)
		}
		if h.Event.Kind == change.KindMergeRequest {
			if n, ok := h.Event.Attrs["big"].(json.Number); !ok || n.String() != "9007199254740993" {
				t.Errorf("%s big = %#v, want json.Number 9007199254740993", h.Event.ID, h.Event.Attrs["big"])
			}
		}
	}
	if _, err := s.ExportEvents(ctx(t), "", -1); err == nil {
		t.Error("ExportEvents with a negative limit succeeded")
	}
	ds, err := s.ExportDeliveries(ctx(t), 0, 2)
	if err != nil || len(ds) != 2 || ds[0].ID >= ds[1].ID || string(ds[0].Body) != `{"n":0}` {
		t.Fatalf("ExportDeliveries: %+v %v", ds, err)
	}
	rest, err := s.ExportDeliveries(ctx(t), ds[1].ID, 100)
	if err != nil || len(rest) != 3 {
		t.Fatalf("ExportDeliveries after %d: %d, %v", ds[1].ID, len(rest), err)
	}
	au, err := s.ExportAudit(ctx(t), 0, 10)
	if err != nil || len(au) != 10 || au[0].ID >= au[9].ID || au[0].Path != auditEntries()[0].Path {
		t.Fatalf("ExportAudit: %d %v", len(au), err)
	}
}

// testCopy: a copy into a fresh store has the same counts and checksums,
// reads back the same, writes nothing when run again, and later writes to
// the copy number after what was copied.
func testCopy(t *testing.T, open func(t *testing.T) store.Core) {
	src, dst := open(t), open(t)
	fill(t, src)
	want := map[string]int64{"projects": 2, "events": 8, "timeline": 0, "deliveries": 5, "audit": 25, "sync_state": 2}
	// The added connections' tables are copied between stores that both
	// keep them (Copy); a Core without them copies the rest.
	_, srcConns := src.(store.Store)
	_, dstConns := dst.(store.Store)
	if srcConns && dstConns {
		fillConnections(t, src.(store.Store))
		want["connections"], want["connection_projects"], want["connection_sync_state"] = 2, 3, 2
	}
	sums, written, err := store.Copy(ctx(t), dst, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := sumsOf(t, dst); !reflect.DeepEqual(got, sums) {
		t.Fatalf("checksums differ after copy\n source: %+v\n   copy: %+v", sums, got)
	}
	if len(sums) != len(want) {
		t.Errorf("copy covered %d tables, want %d: %+v", len(sums), len(want), sums)
	}
	for _, s := range sums {
		if s.Table != "timeline" && s.Count != want[s.Table] {
			t.Errorf("%s: %d rows, want %d", s.Table, s.Count, want[s.Table])
		}
		if written[s.Table] != s.Count {
			t.Errorf("%s: wrote %d of %d", s.Table, written[s.Table], s.Count)
		}
	}
	for _, h := range exportAll(t, src, store.MaxLimit) {
		e1, tl1 := mustGet(t, src, h.Event.ID)
		e2, tl2 := mustGet(t, dst, h.Event.ID)
		wantEvent(t, e2, e1)
		if !reflect.DeepEqual(tl1, tl2) {
			t.Errorf("timeline of %s\n source: %v\n   copy: %v", h.Event.ID, tl1, tl2)
		}
	}
	d1, _ := src.ExportDeliveries(ctx(t), 0, 100)
	d2, _ := dst.ExportDeliveries(ctx(t), 0, 100)
	if !reflect.DeepEqual(d1, d2) {
		t.Errorf("deliveries differ\n source: %+v\n   copy: %+v", d1, d2)
	}

	// Again: nothing to write, same sums.
	again, written, err := store.Copy(ctx(t), dst, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	for table, n := range written {
		if n != 0 {
			t.Errorf("second copy wrote %d %s rows", n, table)
		}
	}
	if !reflect.DeepEqual(again, sums) {
		t.Errorf("source checksums changed between copies")
	}

	// New rows in the copy come after the copied ones.
	id, dup, err := dst.PutDelivery(ctx(t), store.Delivery{IdempotencyKey: "new", EventType: "Push Hook", Body: []byte("{}"), ReceivedAt: at(9)})
	if err != nil || dup || id <= d1[len(d1)-1].ID {
		t.Errorf("delivery after the copy: id %d (dup %v, %v), copied up to %d", id, dup, err, d1[len(d1)-1].ID)
	}
	if _, dup, _ := dst.PutDelivery(ctx(t), store.Delivery{IdempotencyKey: "key-1", EventType: "x", Body: []byte("{}"), ReceivedAt: at(9)}); !dup {
		t.Error("a copied delivery's idempotency key was not recognised")
	}
	if err := dst.AppendAudit(ctx(t), store.AuditEntry{Time: at(30), Method: "GET", Path: "/new"}); err != nil {
		t.Fatal(err)
	}
	au, _ := dst.ExportAudit(ctx(t), 25, 10)
	if len(au) != 1 || au[0].Path != "/new" {
		t.Errorf("audit entry appended after the copy: %+v", au)
	}

	// A difference is seen: an event changed in the copy.
	e := mr(2, 1, 50)
	mustUpsert(t, dst, e)
	if got := sumsOf(t, dst); reflect.DeepEqual(got, sums) {
		t.Error("checksums equal after the copy was changed")
	}
}

// testImportRules: an import never replaces a newer stored event and
// adds only timeline entries not stored.
func testImportRules(t *testing.T, s store.Core) {
	newer := mr(1, 1, 10)
	newer.Title = "newer"
	mustUpsert(t, s, newer)
	older := mr(1, 1, 5)
	older.Title = "older"
	h := store.History{Event: older, Timeline: []change.TimelineEntry{
		{EventID: older.ID, State: "opened", At: at(10), Source: change.SourcePoll}, // stored by the Upsert
		{EventID: older.ID, State: "draft", At: at(1), Source: change.SourceWebhook},
	}}
	r, err := s.ImportEvents(ctx(t), h)
	if err != nil {
		t.Fatal(err)
	}
	if r != (store.ImportResult{Events: 0, Timeline: 1}) {
		t.Errorf("import of an older event: %+v, want the one new timeline entry", r)
	}
	got, tl := mustGet(t, s, newer.ID)
	if got.Title != "newer" {
		t.Errorf("an older import replaced the stored event: %q", got.Title)
	}
	wantTimeline(t, newer.ID, tl, []entry{{"draft", at(1), change.SourceWebhook}, {"opened", at(10), change.SourcePoll}})
	newest := mr(1, 1, 20)
	newest.Title = "newest"
	r, err = s.ImportEvents(ctx(t), store.History{Event: newest})
	if err != nil || r.Events != 1 {
		t.Fatalf("import of a newer event: %+v %v", r, err)
	}
	if got, _ := mustGet(t, s, newer.ID); got.Title != "newest" {
		t.Errorf("a newer import did not replace the stored event: %q", got.Title)
	}
	if r, err := s.ImportEvents(ctx(t)); err != nil || r != (store.ImportResult{}) {
		t.Errorf("import of nothing: %+v %v", r, err)
	}
	if _, err := s.ImportEvents(ctx(t), store.History{Event: change.Event{ID: "bad"}}); err == nil {
		t.Error("an invalid event was imported")
	}
}
