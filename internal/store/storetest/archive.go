package storetest

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/store"
)

// archiveTests hold the roles of issue 16: histories by filter, the
// export state of days, and retention.
var archiveTests = []struct {
	name string
	fn   func(t *testing.T, s store.Store)
}{
	{"ListHistories", testListHistories},
	{"ExportDaysTrackChanges", testExportDays},
	{"PruneEvents", testPruneEvents},
	{"PruneEventsKeepsUnexported", testPruneKeepsUnexported},
	{"PruneDeliveryBodies", testPruneDeliveryBodies},
}

// day builds an MR occurring (and updated) at hour h of the n-th day after
// base's day.
func dayMR(iid int64, n, h int) change.Event {
	e := mr(1, iid, 0)
	t := store.UTCDay(base).AddDate(0, 0, n).Add(time.Duration(h) * time.Hour)
	e.UpdatedAt, e.OccurredAt, e.CreatedAt = t, t, t
	return e
}

func testListHistories(t *testing.T, s store.Store) {
	var es []change.Event
	for i := int64(1); i <= 5; i++ {
		e := mr(1+i%2, i, int(i))
		e.Attrs["big"] = int64(9007199254740993)
		e.Transitions = []change.Transition{{State: "opened", At: at(0)}, {State: "merged", At: at(int(i))}}
		es = append(es, e)
	}
	es = append(es, pipeline(9, 3, "failed", change.SourcePoll, tr("running", 1), tr("failed", 3)))
	mustUpsert(t, s, es...)

	var got []store.History
	f := store.Filter{Kind: change.KindMergeRequest, Limit: 2}
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("ListHistories does not end")
		}
		p, err := s.ListHistories(ctx(t), f)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p.Histories...)
		if p.NextCursor == "" {
			break
		}
		f.Cursor = p.NextCursor
	}
	if len(got) != 5 {
		t.Fatalf("got %d merge requests, want 5", len(got))
	}
	for i, h := range got {
		if i > 0 && !h.Event.OccurredAt.Before(got[i-1].Event.OccurredAt) {
			t.Errorf("not newest first: %s after %s", h.Event.ID, got[i-1].Event.ID)
		}
		_, tl := mustGet(t, s, h.Event.ID)
		if fmt.Sprint(tl) != fmt.Sprint(h.Timeline) {
			t.Errorf("%s: timeline %v, Get says %v", h.Event.ID, h.Timeline, tl)
		}
		if n, ok := h.Event.Attrs["big"].(json.Number); !ok || n.String() != "9007199254740993" {
			t.Errorf("%s: big = %#v, want the exact json.Number", h.Event.ID, h.Event.Attrs["big"])
		}
	}
	p, err := s.ListHistories(ctx(t), store.Filter{Kind: change.KindPipeline, Since: at(3), Until: at(4)})
	if err != nil || len(p.Histories) != 1 || len(p.Histories[0].Timeline) != 2 {
		t.Fatalf("pipeline in [3,4): %+v, %v", p, err)
	}
	if _, err := s.ListHistories(ctx(t), store.Filter{Cursor: "nope"}); err == nil {
		t.Error("a bad cursor was accepted")
	}
}

func exportDays(t *testing.T, s store.Store, f store.ExportDayFilter) map[string]store.ExportDay {
	t.Helper()
	ds, err := s.ExportDays(ctx(t), f)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]store.ExportDay{}
	for _, d := range ds {
		if !d.Day.Equal(store.UTCDay(d.Day)) {
			t.Errorf("day %v is not a UTC midnight", d.Day)
		}
		out[string(d.Kind)+" "+d.Day.Format(time.DateOnly)] = d
	}
	return out
}

func markAll(t *testing.T, s store.Store, ds map[string]store.ExportDay) {
	t.Helper()
	for _, d := range ds {
		d.ExportedVersion = d.Version
		d.ExportedAt, d.Events, d.Bytes, d.SHA256 = time.Now(), 1, 10, "ab"
		if err := s.MarkExported(ctx(t), d); err != nil {
			t.Fatal(err)
		}
	}
}

func testExportDays(t *testing.T, s store.Store) {
	d0, d1 := store.UTCDay(base).Format(time.DateOnly), store.UTCDay(base).AddDate(0, 0, 1).Format(time.DateOnly)
	mustUpsert(t, s, dayMR(1, 0, 1), dayMR(2, 0, 5), dayMR(3, 1, 2),
		pipeline(1, 0, "running", change.SourcePoll))
	all := exportDays(t, s, store.ExportDayFilter{PendingOnly: true})
	if len(all) != 3 {
		t.Fatalf("pending days %v, want merge_request %s and %s and pipeline %s", all, d0, d1, d0)
	}
	for k, d := range all {
		if !d.Pending() || d.ExportedVersion != 0 {
			t.Errorf("%s: %+v, want pending and never exported", k, d)
		}
	}
	// Before: only days that ended by then.
	if got := exportDays(t, s, store.ExportDayFilter{Before: store.UTCDay(base).AddDate(0, 0, 1)}); len(got) != 2 {
		t.Errorf("days ended by %s: %v", d1, got)
	}
	markAll(t, s, all)
	if got := exportDays(t, s, store.ExportDayFilter{PendingOnly: true}); len(got) != 0 {
		t.Fatalf("pending after marking: %v", got)
	}
	got := exportDays(t, s, store.ExportDayFilter{Day: store.UTCDay(base)})
	if d := got["merge_request "+d0]; d.Pending() || d.Events != 1 || d.SHA256 != "ab" || d.Rewrites != 0 || d.ExportedAt.IsZero() {
		t.Errorf("exported day: %+v", d)
	}

	// The same event again changes nothing and leaves the days exported.
	mustUpsert(t, s, dayMR(1, 0, 1))
	if got := exportDays(t, s, store.ExportDayFilter{PendingOnly: true}); len(got) != 0 {
		t.Fatalf("re-ingesting the same event made days pending: %v", got)
	}
	// A late update of day 0 makes it pending again, and only it.
	late := dayMR(2, 0, 5)
	late.UpdatedAt = late.UpdatedAt.Add(48 * time.Hour)
	late.Title = "edited"
	mustUpsert(t, s, late)
	got = exportDays(t, s, store.ExportDayFilter{PendingOnly: true})
	if _, ok := got["merge_request "+d0]; !ok || len(got) != 1 {
		t.Fatalf("after a late update of %s: pending %v", d0, got)
	}
	markAll(t, s, got)
	if d := exportDays(t, s, store.ExportDayFilter{Day: store.UTCDay(base)})["merge_request "+d0]; d.Rewrites != 1 {
		t.Errorf("rewrites %d, want 1", d.Rewrites)
	}
	// Moving an event to another day changes both days.
	moved := dayMR(3, 0, 7)
	moved.UpdatedAt = moved.UpdatedAt.Add(72 * time.Hour)
	mustUpsert(t, s, moved)
	if got := exportDays(t, s, store.ExportDayFilter{PendingOnly: true}); len(got) != 2 {
		t.Fatalf("after moving an event from %s to %s: pending %v", d1, d0, got)
	}
	markAll(t, s, exportDays(t, s, store.ExportDayFilter{PendingOnly: true}))
	// A timeline entry alone (an import) changes the day too.
	e, tl := mustGet(t, s, change.MergeRequestID(1, 1))
	tl = append(tl, change.TimelineEntry{EventID: e.ID, State: "closed", At: e.OccurredAt.Add(time.Minute), Source: change.SourcePoll})
	if _, err := s.ImportEvents(ctx(t), store.History{Event: e, Timeline: tl}); err != nil {
		t.Fatal(err)
	}
	if got := exportDays(t, s, store.ExportDayFilter{PendingOnly: true}); len(got) != 1 {
		t.Fatalf("after a timeline entry on %s: pending %v", d0, got)
	}
	if err := s.MarkExported(ctx(t), store.ExportDay{Kind: change.KindIssue, Day: store.UTCDay(base), Version: 1}); err == nil {
		t.Error("MarkExported of a day without events succeeded")
	}
}

func testPruneEvents(t *testing.T, s store.Store) {
	var es []change.Event
	for i := range 10 {
		e := dayMR(int64(i+1), i/2, i%2)
		e.Transitions = []change.Transition{{State: "opened", At: e.OccurredAt}}
		es = append(es, e)
	}
	mustUpsert(t, s, es...)
	cut := store.UTCDay(base).AddDate(0, 0, 3) // days 0, 1, 2: 6 events
	total := 0
	for range 10 {
		n, err := s.PruneEvents(ctx(t), store.Prune{Kind: change.KindMergeRequest, Before: cut, Limit: 4})
		if err != nil {
			t.Fatal(err)
		}
		if n > 4 {
			t.Fatalf("pruned %d in a batch of 4", n)
		}
		if n == 0 {
			break
		}
		total += n
	}
	if total != 6 {
		t.Errorf("pruned %d, want 6", total)
	}
	if n, _ := s.Count(ctx(t), change.KindMergeRequest); n != 4 {
		t.Errorf("%d left, want 4", n)
	}
	if _, _, err := s.Get(ctx(t), es[0].ID); err == nil {
		t.Error("a pruned event is still there")
	}
	// Its timeline went with it: importing the event again adds exactly
	// the imported entry.
	r, err := s.ImportEvents(ctx(t), store.History{Event: es[0]})
	if err != nil || r.Events != 1 {
		t.Fatalf("re-import: %+v, %v", r, err)
	}
	if _, tl := mustGet(t, s, es[0].ID); len(tl) != 0 {
		t.Errorf("timeline of a pruned event survived: %v", tl)
	}
	days := exportDays(t, s, store.ExportDayFilter{})
	for k, d := range days {
		wantPruned := d.Day.Before(cut)
		if d.Pruned != wantPruned {
			t.Errorf("%s: pruned %v, want %v", k, d.Pruned, wantPruned)
		}
	}
	for _, bad := range []store.Prune{{Kind: change.KindMergeRequest}, {Before: cut}, {Kind: change.KindMergeRequest, Before: cut, Limit: -1}} {
		if _, err := s.PruneEvents(ctx(t), bad); err == nil {
			t.Errorf("PruneEvents(%+v) succeeded", bad)
		}
	}
}

func testPruneKeepsUnexported(t *testing.T, s store.Store) {
	var es []change.Event
	for i := range 8 {
		es = append(es, dayMR(int64(i+1), i, 3))
	}
	es = append(es, pipeline(1, 0, "running", change.SourcePoll))
	mustUpsert(t, s, es...)
	// Days 0..2 exported; day 3 not; days 4, 5 exported.
	for k, d := range exportDays(t, s, store.ExportDayFilter{}) {
		n := int(d.Day.Sub(store.UTCDay(base)).Hours() / 24)
		if d.Kind == change.KindMergeRequest && n != 3 && n < 6 {
			markAll(t, s, map[string]store.ExportDay{k: d})
		}
	}
	cut := store.UTCDay(base).AddDate(0, 0, 6)
	n, err := s.PruneEvents(ctx(t), store.Prune{Kind: change.KindMergeRequest, Before: cut, ExportedOnly: true, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Errorf("pruned %d, want the 3 events of the exported days before the first unexported one", n)
	}
	for i, e := range es[:6] {
		_, _, err := s.Get(ctx(t), e.ID)
		if gone := err != nil; gone != (i < 3) {
			t.Errorf("day %d: gone %v", i, gone)
		}
	}
	// The pipeline kind was never exported: nothing of it goes.
	if n, err := s.PruneEvents(ctx(t), store.Prune{Kind: change.KindPipeline, Before: cut, ExportedOnly: true}); err != nil || n != 0 {
		t.Errorf("pruned %d unexported pipelines, %v", n, err)
	}
	// Deleting did not make the exported days pending.
	for k, d := range exportDays(t, s, store.ExportDayFilter{PendingOnly: true}) {
		if n := int(d.Day.Sub(store.UTCDay(base)).Hours() / 24); d.Kind == change.KindMergeRequest && n != 3 && n < 6 {
			t.Errorf("%s is pending after pruning", k)
		}
	}
}

func testPruneDeliveryBodies(t *testing.T, s store.Store) {
	var ids []int64
	for i := range 4 {
		id, _, err := s.PutDelivery(ctx(t), store.Delivery{IdempotencyKey: fmt.Sprintf("k%d", i), EventType: "Push Hook",
			Body: []byte(`{"x":1}`), ReceivedAt: at(i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	for _, id := range ids[:3] {
		if id == ids[1] {
			continue // stays pending
		}
		if err := s.MarkDelivery(ctx(t), id, store.DeliveryProcessed, ""); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.PruneDeliveryBodies(ctx(t), at(3), 100)
	if err != nil || n != 2 {
		t.Fatalf("pruned %d bodies, %v; want 2 (processed before minute 3)", n, err)
	}
	for i, id := range ids {
		d, err := s.Delivery(ctx(t), id)
		if err != nil {
			t.Fatal(err)
		}
		if empty := len(d.Body) == 0; empty != (i == 0 || i == 2) {
			t.Errorf("delivery %d: body %q", i, d.Body)
		}
	}
	if n, err := s.PruneDeliveryBodies(ctx(t), at(3), 100); err != nil || n != 0 {
		t.Errorf("second prune: %d, %v", n, err)
	}
	// The row stays, so a retry of a pruned delivery is still one.
	if _, dup, err := s.PutDelivery(ctx(t), store.Delivery{IdempotencyKey: "k0", EventType: "Push Hook", Body: []byte(`{}`), ReceivedAt: at(9)}); err != nil || !dup {
		t.Fatalf("retry of a pruned delivery: duplicate %v, %v", dup, err)
	}
}
