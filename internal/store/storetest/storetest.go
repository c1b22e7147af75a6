// Package storetest is the conformance suite every store.Store backend must
// pass. It tests behaviour only through the interface, so SQLite, PostgreSQL
// and later backends are held to the same contract.
//
// Beyond store.go's doc comments, the suite pins these choices so backends
// agree with each other:
//
//   - Upsert applies the events of one call in order, as if upserted one by
//     one inside the transaction: a duplicate id later in the batch sees the
//     earlier one (new then newer counts Inserted+Updated; newer then older
//     counts Inserted+Unchanged).
//   - An event whose UpdatedAt is newer than the stored one replaces it whole,
//     attributes included. One with an equal UpdatedAt but different content
//     is an update that merges attributes (stored attributes overlaid with
//     the new ones, top-level keys) and takes the new scalar fields; if that
//     merge changes nothing it is Unchanged. Source and Transitions are not
//     content: the same event from the other way in is Unchanged.
//   - Timeline: for each of Event.SortedTransitions an entry (id, state, at,
//     source) is appended unless one with the same (id, state, at) exists or
//     the latest entry at or before that time has the same state. This holds
//     even when the event itself is older than the stored one. An event
//     without transitions that is inserted, or that is applied and changes
//     the stored State, appends (State, OccurredAt, or UpdatedAt when
//     OccurredAt is zero); an empty State appends nothing. Get returns the
//     timeline oldest first.
//   - List orders by OccurredAt descending, ties broken by id descending in
//     byte order (PostgreSQL: COLLATE "C"). Limit 0 means 100, a limit above
//     store.MaxLimit is clamped to it, a negative limit and a cursor List did
//     not produce are errors. NextCursor is empty on the last page, also when
//     the last page is exactly full. A bad cursor's error wraps
//     store.ErrInvalidCursor.
//   - Times come back in UTC, exact to at least the microsecond; zero times
//     come back zero. Attributes come back as decoded JSON (numbers are
//     float64); no or empty attributes come back nil.
//   - Upsert rejects a call with any event failing Validate, or with a
//     cancelled context, with an error and stores nothing of that call.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/store"
)

// Run runs the suite. open must return a fresh, empty store for each call
// and arrange for it to be closed when t ends (t.Cleanup).
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	RunCore(t, func(t *testing.T) store.Core { return open(t) })
	var tests []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}
	tests = append(tests, factTests...)
	tests = append(tests, tokenTests...)
	tests = append(tests, archiveTests...)
	tests = append(tests, linkTests...)
	tests = append(tests, connectionTests...)
	runEach(t, tests, open)
}

// runEach runs each test on a store of its own.
func runEach[S any](t *testing.T, tests []struct {
	name string
	fn   func(t *testing.T, s S)
}, open func(t *testing.T) S) {
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, open(t))
		})
	}
}

// RunCore runs the tests that need only store.Core: every backend's part
// of the suite, DynamoDB's included. open is as for Run.
func RunCore(t *testing.T, open func(t *testing.T) store.Core) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Core)
	}{
		{"RoundTrip", testRoundTrip},
		{"ZeroTimesAndEmptyAttrs", testZeroTimesAndEmptyAttrs},
		{"TimePrecisionAndUTC", testTimePrecisionAndUTC},
		{"Idempotent", testIdempotent},
		{"IdempotentReingestOfStored", testIdempotentReingestOfStored},
		{"OlderNeverOverwrites", testOlderNeverOverwrites},
		{"NewerOverwrites", testNewerOverwrites},
		{"EqualUpdatedAtMergesAttrs", testEqualUpdatedAtMergesAttrs},
		{"EqualUpdatedAtOtherSourceUnchanged", testEqualUpdatedAtOtherSource},
		{"MixedBatchCounts", testMixedBatchCounts},
		{"DuplicateIDsInOneCall", testDuplicateIDs},
		{"EmptyUpsert", testEmptyUpsert},
		{"ValidateRejectsWholeCall", testValidateRejects},
		{"UnencodableAttrsStoreNothing", testUnencodableAttrs},
		{"CancelledContextStoresNothing", testCancelledContext},
		{"GetUnknown", testGetUnknown},
		{"TimelineFromTransitions", testTimelineFromTransitions},
		{"TimelineSameStateLater", testTimelineSameStateLater},
		{"TimelineLateOlderEvent", testTimelineLateOlderEvent},
		{"TimelineRevisitedState", testTimelineRevisitedState},
		{"TimelineOutOfOrderInsert", testTimelineOutOfOrderInsert},
		{"TimelineWithoutTransitions", testTimelineWithoutTransitions},
		{"ListFilters", testListFilters},
		{"ListFilterListsAndTimeRange", testFilters},
		{"ListOrderTies", testListOrderTies},
		{"ListPagination", testListPagination},
		{"ListPaginationExactPages", testListPaginationExact},
		{"ListLimits", testListLimits},
		{"ListInvalidCursor", testListInvalidCursor},
		{"Count", testCount},
		{"Projects", testProjects},
		{"SyncState", testSyncState},
		{"ConcurrentUpserts", testConcurrentUpserts},
		{"Ping", testPing},
		{"Versions", testVersions},
		{"Deliveries", testDeliveries},
		{"Audit", testAudit},
		{"AuditFiltersAndPrune", testAuditFilters},
		{"Export", testExport},
		{"ImportRules", testImportRules},
		{"EqualUpdatedAtExactNumbers", testEqualUpdatedAtExactNumbers},
		{"EqualUpdatedAtNumberForms", testEqualUpdatedAtNumberForms},
		{"DeliveryWithoutBodyOrHeaders", testDeliveryWithoutBodyOrHeaders},
		{"AuditPathPrefixUnicode", testAuditPathPrefixUnicode},
	}
	tests = append(tests, healTests...)
	tests = append(tests, deliveryTests...)
	tests = append(tests, digestTests...)
	runEach(t, tests, open)
	t.Run("CopyBetweenStores", func(t *testing.T) { testCopy(t, open) })
}

// base is a microsecond-aligned instant: PostgreSQL keeps microseconds, so
// every test but the precision one stays on that grid.
var base = time.Date(2025, 3, 14, 9, 26, 53, 589793000, time.UTC)

func at(minutes int) time.Time { return base.Add(time.Duration(minutes) * time.Minute) }

func ctx(t *testing.T) context.Context { return t.Context() }

// mr builds a valid merge-request event updated at minute u.
func mr(projectID, iid int64, u int) change.Event {
	return change.Event{
		ID:          change.MergeRequestID(projectID, iid),
		Kind:        change.KindMergeRequest,
		ProjectID:   projectID,
		ProjectPath: fmt.Sprintf("group/project-%d", projectID),
		Title:       fmt.Sprintf("MR %d", iid),
		State:       "opened",
		Author:      "alice",
		WebURL:      fmt.Sprintf("https://gitlab.example.com/group/project-%d/-/merge_requests/%d", projectID, iid),
		Ref:         "feature",
		SHA:         "0123456789abcdef0123456789abcdef01234567",
		CreatedAt:   at(0),
		UpdatedAt:   at(u),
		OccurredAt:  at(u),
		Source:      change.SourcePoll,
		Attrs:       map[string]any{"iid": iid, "draft": false},
	}
}

func mustUpsert(t *testing.T, s store.Core, es ...change.Event) store.UpsertResult {
	t.Helper()
	r, err := s.Upsert(ctx(t), es...)
	if err != nil {
		t.Fatalf("Upsert: %v", err)
	}
	return r
}

func mustGet(t *testing.T, s store.Core, id string) (change.Event, []change.TimelineEntry) {
	t.Helper()
	e, tl, err := s.Get(ctx(t), id)
	if err != nil {
		t.Fatalf("Get(%q): %v", id, err)
	}
	return e, tl
}

func mustCount(t *testing.T, s store.Core, k change.Kind) int {
	t.Helper()
	n, err := s.Count(ctx(t), k)
	if err != nil {
		t.Fatalf("Count(%q): %v", k, err)
	}
	return n
}

func wantResult(t *testing.T, got store.UpsertResult, ins, upd, unch int) {
	t.Helper()
	want := store.UpsertResult{Inserted: ins, Updated: upd, Unchanged: unch}
	if got != want {
		t.Errorf("UpsertResult = %+v, want %+v", got, want)
	}
}

// norm is e as a store gives it back: UTC times, no transitions, attributes
// through JSON, nil for none.
func norm(t *testing.T, e change.Event) change.Event {
	t.Helper()
	e.Transitions = nil
	e.CreatedAt = e.CreatedAt.UTC()
	e.UpdatedAt = e.UpdatedAt.UTC()
	e.OccurredAt = e.OccurredAt.UTC()
	if len(e.Attrs) == 0 {
		e.Attrs = nil
	} else {
		b, err := json.Marshal(e.Attrs)
		if err != nil {
			t.Fatalf("marshal attrs: %v", err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("unmarshal attrs: %v", err)
		}
		e.Attrs = m
	}
	return e
}

func wantEvent(t *testing.T, got, want change.Event) {
	t.Helper()
	if got.Transitions != nil {
		t.Errorf("Get returned Transitions %v; the timeline is returned separately", got.Transitions)
	}
	g, w := norm(t, got), norm(t, want)
	if !reflect.DeepEqual(g, w) {
		t.Errorf("event mismatch\n got: %s\nwant: %s", dump(g), dump(w))
	}
}

func dump(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

type entry struct {
	State  string
	At     time.Time
	Source change.Source
}

func wantTimeline(t *testing.T, id string, got []change.TimelineEntry, want []entry) {
	t.Helper()
	var g []entry
	for _, e := range got {
		if e.EventID != id {
			t.Errorf("timeline entry %+v has EventID %q, want %q", e, e.EventID, id)
		}
		if e.At.Location() != time.UTC {
			t.Errorf("timeline entry %+v not in UTC", e)
		}
		g = append(g, entry{e.State, e.At.UTC(), e.Source})
	}
	if len(g) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(g, want) {
		t.Errorf("timeline of %s\n got: %v\nwant: %v", id, g, want)
	}
}

func testRoundTrip(t *testing.T, s store.Core) {
	e := change.Event{
		ID:          change.PipelineID(42, 1001),
		Kind:        change.KindPipeline,
		ProjectID:   42,
		ProjectPath: "platform/api",
		Title:       "Pipeline #1001 — “quotes” & <html> ✓",
		State:       "success",
		Author:      "bob",
		WebURL:      "https://gitlab.example.com/platform/api/-/pipelines/1001",
		Ref:         "main",
		SHA:         "deadbeefdeadbeefdeadbeefdeadbeefdeadbeef",
		CreatedAt:   at(1),
		UpdatedAt:   at(9),
		OccurredAt:  at(8),
		Source:      change.SourceWebhook,
		Attrs: map[string]any{
			"duration":    412,
			"coverage":    87.5,
			"tag":         false,
			"stages":      []string{"build", "test", "deploy"},
			"user":        map[string]any{"id": 7, "username": "bob"},
			"nothing":     nil,
			"big":         int64(1) << 40,
			"unicode key": "値",
		},
	}
	wantResult(t, mustUpsert(t, s, e), 1, 0, 0)
	got, _ := mustGet(t, s, e.ID)
	wantEvent(t, got, e)
	if n, ok := got.Attrs["duration"].(float64); !ok || n != 412 {
		t.Errorf("attrs duration = %#v, want float64 412", got.Attrs["duration"])
	}
}

func testZeroTimesAndEmptyAttrs(t *testing.T, s store.Core) {
	e := change.Event{
		ID:        change.BranchID(3, "main"),
		Kind:      change.KindBranch,
		ProjectID: 3,
		UpdatedAt: at(5),
		Source:    change.SourcePoll,
		Attrs:     map[string]any{},
	}
	mustUpsert(t, s, e)
	got, _ := mustGet(t, s, e.ID)
	if !got.CreatedAt.IsZero() || !got.OccurredAt.IsZero() {
		t.Errorf("zero times came back as created %v occurred %v", got.CreatedAt, got.OccurredAt)
	}
	if got.Attrs != nil {
		t.Errorf("empty attrs came back as %#v, want nil", got.Attrs)
	}
	wantEvent(t, got, e)
}

func testTimePrecisionAndUTC(t *testing.T, s store.Core) {
	zone := time.FixedZone("UTC+2", 2*3600)
	e := mr(1, 1, 0)
	e.CreatedAt = time.Date(2024, 2, 29, 23, 59, 59, 123456789, zone)
	e.UpdatedAt = time.Date(2024, 3, 1, 1, 2, 3, 987654321, zone)
	e.OccurredAt = time.Date(2024, 3, 1, 0, 0, 0, 1000, zone)
	mustUpsert(t, s, e)
	got, _ := mustGet(t, s, e.ID)
	for _, c := range []struct {
		name      string
		got, want time.Time
	}{
		{"created_at", got.CreatedAt, e.CreatedAt},
		{"updated_at", got.UpdatedAt, e.UpdatedAt},
		{"occurred_at", got.OccurredAt, e.OccurredAt},
	} {
		if c.got.Location() != time.UTC {
			t.Errorf("%s location %v, want UTC", c.name, c.got.Location())
		}
		if d := c.got.Sub(c.want).Abs(); d >= time.Microsecond {
			t.Errorf("%s = %v, want %v (off by %v)", c.name, c.got, c.want.UTC(), d)
		}
	}
	// A microsecond apart is still ordered.
	newer := e
	newer.UpdatedAt = e.UpdatedAt.Truncate(time.Microsecond).Add(time.Microsecond)
	newer.Title = "newer"
	older := e
	older.UpdatedAt = e.UpdatedAt.Truncate(time.Microsecond).Add(-time.Microsecond)
	older.Title = "older"
	wantResult(t, mustUpsert(t, s, newer, older), 0, 1, 1)
	got, _ = mustGet(t, s, e.ID)
	if got.Title != "newer" {
		t.Errorf("title %q, want newer", got.Title)
	}
}

func testIdempotent(t *testing.T, s store.Core) {
	es := []change.Event{mr(1, 1, 1), mr(1, 2, 2), mr(2, 1, 3)}
	es[0].Transitions = []change.Transition{{State: "opened", At: at(1)}}
	wantResult(t, mustUpsert(t, s, es...), 3, 0, 0)
	before := snapshot(t, s, es)
	wantResult(t, mustUpsert(t, s, es...), 0, 0, 3)

	// The same instants in another zone are the same content.
	zone := time.FixedZone("EST", -5*3600)
	moved := slices.Clone(es)
	for i := range moved {
		moved[i].CreatedAt = moved[i].CreatedAt.In(zone)
		moved[i].UpdatedAt = moved[i].UpdatedAt.In(zone)
		moved[i].OccurredAt = moved[i].OccurredAt.In(zone)
	}
	wantResult(t, mustUpsert(t, s, moved...), 0, 0, 3)
	if after := snapshot(t, s, es); !reflect.DeepEqual(before, after) {
		t.Errorf("store changed by re-upsert\nbefore: %s\n after: %s", before, after)
	}
}

// snapshot renders everything a store shows about es, to compare states.
func snapshot(t *testing.T, s store.Core, es []change.Event) string {
	t.Helper()
	var b strings.Builder
	for _, e := range es {
		got, tl := mustGet(t, s, e.ID)
		fmt.Fprintf(&b, "%s\n%s\n", dump(norm(t, got)), dump(tl))
	}
	fmt.Fprintf(&b, "count %d\n", mustCount(t, s, ""))
	return b.String()
}

func testIdempotentReingestOfStored(t *testing.T, s store.Core) {
	e := mr(1, 1, 1)
	e.Attrs = map[string]any{"n": 3, "f": 1.25, "list": []int{1, 2}, "obj": map[string]int{"a": 1}}
	mustUpsert(t, s, e)
	got, _ := mustGet(t, s, e.ID)
	// What the store hands out is what it holds: storing it again is a no-op.
	wantResult(t, mustUpsert(t, s, got), 0, 0, 1)
}

func testOlderNeverOverwrites(t *testing.T, s store.Core) {
	newer := mr(1, 1, 10)
	newer.State = "merged"
	mustUpsert(t, s, newer)
	older := mr(1, 1, 5)
	older.Title = "stale title"
	older.Attrs = map[string]any{"stale": true}
	wantResult(t, mustUpsert(t, s, older), 0, 0, 1)
	got, _ := mustGet(t, s, newer.ID)
	wantEvent(t, got, newer)
}

func testNewerOverwrites(t *testing.T, s store.Core) {
	old := mr(1, 1, 5)
	old.Attrs = map[string]any{"a": 1, "b": 2}
	mustUpsert(t, s, old)
	newer := mr(1, 1, 10)
	newer.State = "merged"
	newer.Title = "renamed"
	newer.Source = change.SourceWebhook
	newer.Attrs = map[string]any{"b": 3}
	wantResult(t, mustUpsert(t, s, newer), 0, 1, 0)
	got, _ := mustGet(t, s, old.ID)
	// A webhook never blanks what is stored: the keys it lacks are kept.
	newer.Attrs = map[string]any{"a": 1, "b": 3}
	wantEvent(t, got, newer)
	wantResult(t, mustUpsert(t, s, newer), 0, 0, 1)
}

func testEqualUpdatedAtMergesAttrs(t *testing.T, s store.Core) {
	first := mr(1, 1, 5)
	first.Attrs = map[string]any{"a": 1, "b": "x"}
	mustUpsert(t, s, first)

	second := mr(1, 1, 5)
	second.Title = "retitled"
	second.Attrs = map[string]any{"b": "y", "c": true}
	wantResult(t, mustUpsert(t, s, second), 0, 1, 0)

	want := second
	want.Attrs = map[string]any{"a": 1, "b": "y", "c": true}
	got, _ := mustGet(t, s, first.ID)
	wantEvent(t, got, want)

	// Merging the same again, or a subset of what is stored, changes nothing.
	wantResult(t, mustUpsert(t, s, second), 0, 0, 1)
	subset := second
	subset.Attrs = map[string]any{"a": 1}
	wantResult(t, mustUpsert(t, s, subset), 0, 0, 1)
	got, _ = mustGet(t, s, first.ID)
	wantEvent(t, got, want)
}

func testEqualUpdatedAtOtherSource(t *testing.T, s store.Core) {
	e := mr(1, 1, 5)
	mustUpsert(t, s, e)
	w := e
	w.Source = change.SourceWebhook
	wantResult(t, mustUpsert(t, s, w), 0, 0, 1)
	got, _ := mustGet(t, s, e.ID)
	wantEvent(t, got, e)
}

func testMixedBatchCounts(t *testing.T, s store.Core) {
	mustUpsert(t, s, mr(1, 1, 5), mr(1, 2, 5), mr(1, 3, 5))
	r := mustUpsert(t, s,
		mr(1, 1, 5), // same
		mr(1, 2, 6), // newer
		mr(1, 3, 4), // older
		mr(1, 4, 1), // new
		mr(1, 5, 1), // new
	)
	wantResult(t, r, 2, 1, 2)
	if r.Stored() != 3 {
		t.Errorf("Stored() = %d, want 3", r.Stored())
	}
	if n := mustCount(t, s, ""); n != 5 {
		t.Errorf("Count = %d, want 5", n)
	}
}

func testDuplicateIDs(t *testing.T, s store.Core) {
	v1, v2, v3 := mr(1, 1, 1), mr(1, 1, 2), mr(1, 1, 3)
	v2.Title, v3.Title = "v2", "v3"
	wantResult(t, mustUpsert(t, s, v1, v3, v2, v1), 1, 1, 2)
	got, _ := mustGet(t, s, v1.ID)
	wantEvent(t, got, v3)

	w1, w2 := mr(2, 1, 1), mr(2, 1, 2)
	w2.State = "merged"
	wantResult(t, mustUpsert(t, s, w1, w2, w2), 1, 1, 1)
	got, _ = mustGet(t, s, w1.ID)
	wantEvent(t, got, w2)
	if n := mustCount(t, s, ""); n != 2 {
		t.Errorf("Count = %d, want 2", n)
	}
}

func testEmptyUpsert(t *testing.T, s store.Core) {
	wantResult(t, mustUpsert(t, s), 0, 0, 0)
}

func testValidateRejects(t *testing.T, s store.Core) {
	valid := mr(1, 1, 1)
	noID := mr(1, 2, 1)
	noID.ID = ""
	badKind := mr(1, 3, 1)
	badKind.Kind = "wiki"
	noUpdated := mr(1, 4, 1)
	noUpdated.UpdatedAt = time.Time{}
	badSource := mr(1, 5, 1)
	badSource.Source = "carrier-pigeon"
	for _, c := range []struct {
		name string
		bad  change.Event
	}{
		{"no id", noID}, {"unknown kind", badKind}, {"no updated_at", noUpdated}, {"unknown source", badSource},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := c.bad.Validate(); err == nil {
				t.Fatalf("fixture passes Validate")
			}
			// The invalid event last: everything before it must be rolled back too.
			if _, err := s.Upsert(ctx(t), valid, mr(1, 9, 1), c.bad); err == nil {
				t.Fatal("Upsert accepted an invalid event")
			}
			if n := mustCount(t, s, ""); n != 0 {
				t.Errorf("Count = %d after rejected Upsert, want 0", n)
			}
			if _, _, err := s.Get(ctx(t), valid.ID); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Get of event from rejected call: err %v, want ErrNotFound", err)
			}
		})
	}
}

func testUnencodableAttrs(t *testing.T, s store.Core) {
	// Valid by Validate, but no backend can keep NaN as JSON: the call fails
	// part-way and must leave nothing behind.
	bad := mr(1, 3, 1)
	bad.Attrs = map[string]any{"ratio": math.NaN()}
	mustUpsert(t, s, mr(1, 1, 1))
	newer := mr(1, 1, 2)
	newer.State = "merged"
	newer.Transitions = []change.Transition{{State: "merged", At: at(2)}}
	if _, err := s.Upsert(ctx(t), newer, mr(1, 2, 1), bad); err == nil {
		t.Fatal("Upsert accepted NaN in attributes")
	}
	if n := mustCount(t, s, ""); n != 1 {
		t.Errorf("Count = %d after failed Upsert, want 1", n)
	}
	got, tl := mustGet(t, s, mr(1, 1, 1).ID)
	wantEvent(t, got, mr(1, 1, 1))
	wantTimeline(t, got.ID, tl, []entry{{"opened", at(1), change.SourcePoll}})
}

func testCancelledContext(t *testing.T, s store.Core) {
	c, cancel := context.WithCancel(ctx(t))
	cancel()
	if _, err := s.Upsert(c, mr(1, 1, 1), mr(1, 2, 1)); err == nil {
		t.Fatal("Upsert with cancelled context succeeded")
	}
	if n := mustCount(t, s, ""); n != 0 {
		t.Errorf("Count = %d after cancelled Upsert, want 0", n)
	}
}

func testGetUnknown(t *testing.T, s store.Core) {
	_, _, err := s.Get(ctx(t), "mr-404-404")
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get unknown: err %v, want ErrNotFound", err)
	}
	mustUpsert(t, s, mr(1, 1, 1))
	if _, _, err := s.Get(ctx(t), "mr-1-10"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get unknown in non-empty store: err %v, want ErrNotFound", err)
	}
}

func pipeline(id int64, u int, state string, src change.Source, ts ...change.Transition) change.Event {
	return change.Event{
		ID:          change.PipelineID(7, id),
		Kind:        change.KindPipeline,
		ProjectID:   7,
		ProjectPath: "team/app",
		State:       state,
		UpdatedAt:   at(u),
		OccurredAt:  at(u),
		Source:      src,
		Transitions: ts,
	}
}

func tr(state string, m int) change.Transition { return change.Transition{State: state, At: at(m)} }

func testTimelineFromTransitions(t *testing.T, s store.Core) {
	e := pipeline(1, 3, "success", change.SourcePoll,
		tr("success", 3), tr("created", 1), tr("running", 2), tr("running", 2),
		change.Transition{State: "skipped"}, change.Transition{At: at(9)})
	mustUpsert(t, s, e)
	_, tl := mustGet(t, s, e.ID)
	want := []entry{{"created", at(1), change.SourcePoll}, {"running", at(2), change.SourcePoll}, {"success", at(3), change.SourcePoll}}
	wantTimeline(t, e.ID, tl, want)

	mustUpsert(t, s, e)
	_, tl = mustGet(t, s, e.ID)
	wantTimeline(t, e.ID, tl, want)
}

func testTimelineSameStateLater(t *testing.T, s store.Core) {
	mustUpsert(t, s, pipeline(1, 2, "running", change.SourcePoll, tr("created", 1), tr("running", 2)))
	// The next poll sees it still running and reports the state at its
	// updated_at: not a new state.
	mustUpsert(t, s, pipeline(1, 4, "running", change.SourceWebhook, tr("running", 4)))
	e, tl := mustGet(t, s, change.PipelineID(7, 1))
	if !e.UpdatedAt.Equal(at(4)) {
		t.Errorf("updated_at %v, want %v", e.UpdatedAt, at(4))
	}
	wantTimeline(t, e.ID, tl, []entry{{"created", at(1), change.SourcePoll}, {"running", at(2), change.SourcePoll}})
}

func testTimelineLateOlderEvent(t *testing.T, s store.Core) {
	latest := pipeline(1, 10, "success", change.SourcePoll, tr("running", 2), tr("success", 10))
	mustUpsert(t, s, latest)
	late := pipeline(1, 5, "running", change.SourceWebhook, tr("created", 1), tr("running", 2))
	wantResult(t, mustUpsert(t, s, late), 0, 0, 1)
	e, tl := mustGet(t, s, latest.ID)
	wantEvent(t, e, latest)
	wantTimeline(t, e.ID, tl, []entry{
		{"created", at(1), change.SourceWebhook},
		{"running", at(2), change.SourcePoll},
		{"success", at(10), change.SourcePoll},
	})
}

func testTimelineRevisitedState(t *testing.T, s store.Core) {
	mustUpsert(t, s, pipeline(1, 3, "failed", change.SourcePoll, tr("running", 2), tr("failed", 3)))
	mustUpsert(t, s, pipeline(1, 6, "success", change.SourcePoll, tr("running", 5), tr("success", 6)))
	_, tl := mustGet(t, s, change.PipelineID(7, 1))
	wantTimeline(t, change.PipelineID(7, 1), tl, []entry{
		{"running", at(2), change.SourcePoll},
		{"failed", at(3), change.SourcePoll},
		{"running", at(5), change.SourcePoll},
		{"success", at(6), change.SourcePoll},
	})
}

func testTimelineOutOfOrderInsert(t *testing.T, s store.Core) {
	mustUpsert(t, s, pipeline(1, 10, "success", change.SourcePoll, tr("created", 1), tr("success", 10)))
	mustUpsert(t, s, pipeline(1, 10, "success", change.SourceWebhook, tr("running", 5)))
	_, tl := mustGet(t, s, change.PipelineID(7, 1))
	wantTimeline(t, change.PipelineID(7, 1), tl, []entry{
		{"created", at(1), change.SourcePoll},
		{"running", at(5), change.SourceWebhook},
		{"success", at(10), change.SourcePoll},
	})
}

func testTimelineWithoutTransitions(t *testing.T, s store.Core) {
	id := change.MergeRequestID(1, 1)
	e := mr(1, 1, 1)
	e.OccurredAt = at(0)
	mustUpsert(t, s, e)
	_, tl := mustGet(t, s, id)
	want := []entry{{"opened", at(0), change.SourcePoll}}
	wantTimeline(t, id, tl, want)

	// Newer, same state: no entry.
	e = mr(1, 1, 2)
	e.Title = "edited"
	mustUpsert(t, s, e)
	_, tl = mustGet(t, s, id)
	wantTimeline(t, id, tl, want)

	// State changes: entry at OccurredAt.
	e = mr(1, 1, 3)
	e.State = "merged"
	e.OccurredAt = at(3)
	e.Source = change.SourceWebhook
	mustUpsert(t, s, e)
	want = append(want, entry{"merged", at(3), change.SourceWebhook})
	_, tl = mustGet(t, s, id)
	wantTimeline(t, id, tl, want)

	// Older event with another state and no transitions: not applied, no entry.
	e = mr(1, 1, 1)
	e.State = "closed"
	mustUpsert(t, s, e)
	_, tl = mustGet(t, s, id)
	wantTimeline(t, id, tl, want)

	// No OccurredAt: entry at UpdatedAt.
	e = mr(1, 1, 4)
	e.State = "locked"
	e.OccurredAt = time.Time{}
	mustUpsert(t, s, e)
	want = append(want, entry{"locked", at(4), change.SourcePoll})
	_, tl = mustGet(t, s, id)
	wantTimeline(t, id, tl, want)

	// An object without a state has no timeline.
	c := change.Event{ID: change.CommitID(1, "abc"), Kind: change.KindCommit, ProjectID: 1, UpdatedAt: at(1), OccurredAt: at(1), Source: change.SourcePoll}
	mustUpsert(t, s, c)
	_, tl = mustGet(t, s, c.ID)
	wantTimeline(t, c.ID, tl, nil)
}

// fixture is a spread of events for List tests.
func fixture() []change.Event {
	var es []change.Event
	authors := []string{"alice", "bob", "carol"}
	states := []string{"opened", "merged", "closed"}
	for i := range 30 {
		var e change.Event
		p := int64(1 + i%3)
		if i%2 == 0 {
			e = mr(p, int64(i), i)
		} else {
			e = pipeline(int64(i), i, "success", change.SourceWebhook)
			e.ProjectID = p
			e.ProjectPath = fmt.Sprintf("group/project-%d", p)
			e.ID = change.PipelineID(p, int64(i))
		}
		e.Author = authors[i%len(authors)]
		e.State = states[(i/2)%len(states)]
		e.OccurredAt = at(i / 3 * 3) // groups of equal OccurredAt exercise the id tiebreak
		es = append(es, e)
	}
	return es
}

func expect(es []change.Event, f store.Filter) []string {
	var out []change.Event
	for _, e := range es {
		switch {
		case f.Kind != "" && e.Kind != f.Kind,
			f.ProjectID != 0 && e.ProjectID != f.ProjectID,
			f.ProjectPath != "" && e.ProjectPath != f.ProjectPath,
			f.Author != "" && e.Author != f.Author,
			f.State != "" && e.State != f.State,
			!f.Since.IsZero() && e.OccurredAt.Before(f.Since),
			!f.Until.IsZero() && !e.OccurredAt.Before(f.Until):
			continue
		}
		out = append(out, e)
	}
	sortNewestFirst(out)
	return ids(out)
}

func sortNewestFirst(es []change.Event) {
	sort.Slice(es, func(i, j int) bool {
		if !es[i].OccurredAt.Equal(es[j].OccurredAt) {
			return es[i].OccurredAt.After(es[j].OccurredAt)
		}
		return es[i].ID > es[j].ID
	})
}

func ids(es []change.Event) []string {
	out := make([]string, 0, len(es))
	for _, e := range es {
		out = append(out, e.ID)
	}
	return out
}

func mustList(t *testing.T, s store.Core, f store.Filter) store.Page {
	t.Helper()
	p, err := s.List(ctx(t), f)
	if err != nil {
		t.Fatalf("List(%+v): %v", f, err)
	}
	return p
}

func testListFilters(t *testing.T, s store.Core) {
	es := fixture()
	mustUpsert(t, s, es...)
	for _, c := range []struct {
		name string
		f    store.Filter
	}{
		{"all", store.Filter{}},
		{"kind", store.Filter{Kind: change.KindPipeline}},
		{"project id", store.Filter{ProjectID: 2}},
		{"project path", store.Filter{ProjectPath: "group/project-3"}},
		{"author", store.Filter{Author: "bob"}},
		{"state", store.Filter{State: "merged"}},
		{"since", store.Filter{Since: at(12)}},
		{"until", store.Filter{Until: at(12)}},
		{"since and until", store.Filter{Since: at(6), Until: at(18)}},
		{"empty window", store.Filter{Since: at(18), Until: at(18)}},
		{"kind and project", store.Filter{Kind: change.KindMergeRequest, ProjectID: 1}},
		{"kind, state, author, window", store.Filter{Kind: change.KindMergeRequest, State: "opened", Author: "alice", Since: at(0), Until: at(100)}},
		{"project path and id disagree", store.Filter{ProjectID: 1, ProjectPath: "group/project-2"}},
		{"no match", store.Filter{Author: "mallory"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			want := expect(es, c.f)
			p := mustList(t, s, c.f)
			if got := ids(p.Events); !slices.Equal(got, want) {
				t.Errorf("List(%+v)\n got: %v\nwant: %v", c.f, got, want)
			}
			if p.NextCursor != "" {
				t.Errorf("NextCursor %q on the only page", p.NextCursor)
			}
		})
	}
	// Listed events are whole events.
	p := mustList(t, s, store.Filter{Kind: change.KindMergeRequest, Limit: 1})
	if len(p.Events) != 1 {
		t.Fatalf("got %d events, want 1", len(p.Events))
	}
	for _, e := range es {
		if e.ID == p.Events[0].ID {
			wantEvent(t, p.Events[0], e)
		}
	}
}

func testListOrderTies(t *testing.T, s store.Core) {
	// Byte order puts '-' (0x2d) before digits; locale collations that
	// ignore punctuation do not.
	var es []change.Event
	for _, id := range []string{"x1", "x-2", "x10", "x-10", "X3", "x_1"} {
		e := mr(1, 1, 1)
		e.ID = id
		e.OccurredAt = at(5)
		es = append(es, e)
	}
	older := mr(1, 2, 1)
	older.OccurredAt = at(4)
	newer := mr(1, 3, 1)
	newer.OccurredAt = at(6)
	es = append(es, older, newer)
	mustUpsert(t, s, es...)
	want := []string{newer.ID, "x_1", "x10", "x1", "x-2", "x-10", "X3", older.ID}
	if got := ids(mustList(t, s, store.Filter{}).Events); !slices.Equal(got, want) {
		t.Errorf("order\n got: %v\nwant: %v", got, want)
	}
	var paged []string
	f := store.Filter{Limit: 3}
	for {
		p := mustList(t, s, f)
		paged = append(paged, ids(p.Events)...)
		if p.NextCursor == "" {
			break
		}
		f.Cursor = p.NextCursor
	}
	if !slices.Equal(paged, want) {
		t.Errorf("paged order\n got: %v\nwant: %v", paged, want)
	}
}

func testListPagination(t *testing.T, s store.Core) {
	all := fixture()
	mustUpsert(t, s, all...)
	extra := 1000
	for _, f := range []store.Filter{{Limit: 7}, {Limit: 1}, {Kind: change.KindMergeRequest, Limit: 4}} {
		name := fmt.Sprintf("limit %d", f.Limit)
		if f.Kind != "" {
			name = fmt.Sprintf("%s limit %d", f.Kind, f.Limit)
		}
		t.Run(name, func(t *testing.T) {
			want := expect(all, f)
			var got []string
			for page := 0; ; page++ {
				if page > len(all)+5 {
					t.Fatal("pagination does not end")
				}
				p := mustList(t, s, f)
				if len(p.Events) > f.Limit {
					t.Fatalf("page of %d events, limit %d", len(p.Events), f.Limit)
				}
				if p.NextCursor != "" && len(p.Events) != f.Limit {
					t.Errorf("short page (%d of %d) with a next cursor", len(p.Events), f.Limit)
				}
				got = append(got, ids(p.Events)...)
				if p.NextCursor == "" {
					break
				}
				// Newer events arriving between pages must not shift the
				// pages already handed out.
				n := mr(9, int64(extra), 1)
				n.OccurredAt = at(extra)
				extra++
				mustUpsert(t, s, n)
				all = append(all, n)
				f.Cursor = p.NextCursor
			}
			if !slices.Equal(got, want) {
				t.Errorf("pages\n got: %v\nwant: %v", got, want)
			}
		})
	}

	t.Run("older event between pages", func(t *testing.T) {
		f := store.Filter{Limit: 10}
		p := mustList(t, s, f)
		seen := map[string]int{}
		for _, e := range p.Events {
			seen[e.ID]++
		}
		late := mr(8, 1, 1)
		late.OccurredAt = base.Add(-time.Hour)
		mustUpsert(t, s, late)
		for f.Cursor = p.NextCursor; f.Cursor != ""; f.Cursor = p.NextCursor {
			p = mustList(t, s, f)
			for _, e := range p.Events {
				seen[e.ID]++
			}
		}
		for _, e := range append(all, late) {
			if seen[e.ID] != 1 {
				t.Errorf("%s listed %d times, want once", e.ID, seen[e.ID])
			}
		}
		if len(seen) != len(all)+1 {
			t.Errorf("listed %d distinct events, want %d", len(seen), len(all)+1)
		}
	})
}

func testListPaginationExact(t *testing.T, s store.Core) {
	var es []change.Event
	for i := range 14 {
		es = append(es, mr(1, int64(i), i))
	}
	mustUpsert(t, s, es...)
	p1 := mustList(t, s, store.Filter{Limit: 7})
	if len(p1.Events) != 7 || p1.NextCursor == "" {
		t.Fatalf("first page: %d events, cursor %q", len(p1.Events), p1.NextCursor)
	}
	p2 := mustList(t, s, store.Filter{Limit: 7, Cursor: p1.NextCursor})
	if len(p2.Events) != 7 {
		t.Errorf("second page: %d events, want 7", len(p2.Events))
	}
	if p2.NextCursor != "" {
		t.Errorf("last page, exactly full, has cursor %q", p2.NextCursor)
	}
}

func testListLimits(t *testing.T, s store.Core) {
	var es []change.Event
	for i := range store.MaxLimit + 50 {
		e := mr(1+int64(i%5), int64(i), 1)
		e.OccurredAt = at(i)
		es = append(es, e)
	}
	mustUpsert(t, s, es...)
	for _, c := range []struct {
		limit, want int
	}{{0, 100}, {1, 1}, {250, 250}, {store.MaxLimit, store.MaxLimit}, {store.MaxLimit + 1, store.MaxLimit}, {1 << 30, store.MaxLimit}} {
		p := mustList(t, s, store.Filter{Limit: c.limit})
		if len(p.Events) != c.want {
			t.Errorf("Limit %d: %d events, want %d", c.limit, len(p.Events), c.want)
		}
		if p.NextCursor == "" {
			t.Errorf("Limit %d: no next cursor with more events stored", c.limit)
		}
	}
	if _, err := s.List(ctx(t), store.Filter{Limit: -1}); err == nil {
		t.Error("List with negative limit: no error")
	}
}

func testListInvalidCursor(t *testing.T, s store.Core) {
	mustUpsert(t, s, fixture()...)
	for _, c := range []string{"not a cursor!", "AAAA", "eyJ4IjoxfQ", "%%%", strings.Repeat("z", 64)} {
		if _, err := s.List(ctx(t), store.Filter{Cursor: c}); !errors.Is(err, store.ErrInvalidCursor) {
			t.Errorf("List with cursor %q: err %v, want ErrInvalidCursor", c, err)
		}
	}
}

func testCount(t *testing.T, s store.Core) {
	for _, k := range append([]change.Kind{""}, change.Kinds...) {
		if n := mustCount(t, s, k); n != 0 {
			t.Errorf("empty store: Count(%q) = %d", k, n)
		}
	}
	es := fixture()
	mustUpsert(t, s, es...)
	mustUpsert(t, s, es...)
	want := map[change.Kind]int{}
	for _, e := range es {
		want[e.Kind]++
	}
	for _, k := range change.Kinds {
		if n := mustCount(t, s, k); n != want[k] {
			t.Errorf("Count(%q) = %d, want %d", k, n, want[k])
		}
	}
	if n := mustCount(t, s, ""); n != len(es) {
		t.Errorf("Count(\"\") = %d, want %d", n, len(es))
	}
}

func testProjects(t *testing.T, s store.Core) {
	ps, err := s.Projects(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 0 {
		t.Fatalf("empty store has projects %v", ps)
	}
	b := store.Project{ID: 2, Path: "b/zeta", Name: "Zeta", WebURL: "https://gitlab.example.com/b/zeta", DefaultBranch: "main", LastActivityAt: at(3)}
	a := store.Project{ID: 5, Path: "a/alpha", Name: "Alpha", WebURL: "https://gitlab.example.com/a/alpha", Archived: true,
		Status: store.ProjectNotFound, StatusDetail: "404 Project Not Found", StatusAt: at(7)}
	c := store.Project{ID: 1, Path: "c/gamma", Name: "Gamma", LastActivityAt: time.Date(2024, 1, 1, 0, 0, 0, 5000, time.FixedZone("x", 3600))}
	if err := s.PutProjects(ctx(t), b, a, c); err != nil {
		t.Fatal(err)
	}
	if err := s.PutProjects(ctx(t)); err != nil {
		t.Fatalf("PutProjects with none: %v", err)
	}
	// Replace by id, moving it to another path.
	c2 := c
	c2.Path, c2.Name, c2.Archived, c2.DefaultBranch = "a/beta", "Beta", true, "trunk"
	if err := s.PutProjects(ctx(t), c2); err != nil {
		t.Fatal(err)
	}
	ps, err = s.Projects(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	want := []store.Project{a, c2, b}
	for i := range want {
		want[i].LastActivityAt = want[i].LastActivityAt.UTC()
		if want[i].Status == "" {
			want[i].Status = store.ProjectActive // the default
		}
	}
	if !reflect.DeepEqual(ps, want) {
		t.Errorf("Projects\n got: %s\nwant: %s", dump(ps), dump(want))
	}
	for _, p := range ps {
		if loc := p.LastActivityAt.Location(); loc != time.UTC {
			t.Errorf("project %d last_activity_at in %v", p.ID, loc)
		}
	}
}

func testSyncState(t *testing.T, s store.Core) {
	got, err := s.SyncState(ctx(t), 42, change.KindPipeline)
	if err != nil {
		t.Fatalf("SyncState of unknown: %v", err)
	}
	if want := (store.SyncState{ProjectID: 42, Kind: change.KindPipeline}); !reflect.DeepEqual(got, want) {
		t.Errorf("SyncState of unknown = %+v, want %+v", got, want)
	}
	list, err := s.SyncStates(ctx(t))
	if err != nil || len(list) != 0 {
		t.Fatalf("SyncStates of empty store = %v, %v", list, err)
	}

	full := store.SyncState{
		ProjectID: 42, ProjectPath: "z/last", Kind: change.KindPipeline,
		Cursor: at(10), LastRunAt: at(11), LastSuccess: at(9),
		Fetched: 120, Stored: 7, LastError: "GET /projects/42/pipelines: 502 Bad Gateway",
	}
	states := []store.SyncState{
		full,
		{ProjectID: 42, ProjectPath: "z/last", Kind: change.KindMergeRequest, LastRunAt: at(1)},
		{ProjectID: 3, ProjectPath: "a/first", Kind: change.KindRelease, Cursor: at(2)},
		{ProjectID: 3, ProjectPath: "a/first", Kind: change.KindCommit},
		{ProjectID: 8, ProjectPath: "m/middle", Kind: change.KindJob, Fetched: 1},
	}
	for _, st := range states {
		if err := s.PutSyncState(ctx(t), st); err != nil {
			t.Fatalf("PutSyncState(%+v): %v", st, err)
		}
	}
	got, err = s.SyncState(ctx(t), 42, change.KindPipeline)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, full) {
		t.Errorf("SyncState\n got: %+v\nwant: %+v", got, full)
	}

	// Replace: the error clears, counts change.
	ok := full
	ok.LastError, ok.Fetched, ok.Stored, ok.Cursor, ok.LastSuccess = "", 3, 3, at(20), at(21)
	if err := s.PutSyncState(ctx(t), ok); err != nil {
		t.Fatal(err)
	}
	got, _ = s.SyncState(ctx(t), 42, change.KindPipeline)
	if !reflect.DeepEqual(got, ok) {
		t.Errorf("replaced SyncState\n got: %+v\nwant: %+v", got, ok)
	}

	list, err = s.SyncStates(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, st := range list {
		order = append(order, fmt.Sprintf("%s/%s", st.ProjectPath, st.Kind))
	}
	want := []string{"a/first/commit", "a/first/release", "m/middle/job", "z/last/merge_request", "z/last/pipeline"}
	if !slices.Equal(order, want) {
		t.Errorf("SyncStates order\n got: %v\nwant: %v", order, want)
	}
	if len(list) == len(want) && !reflect.DeepEqual(list[4], ok) {
		t.Errorf("SyncStates entry\n got: %+v\nwant: %+v", list[4], ok)
	}
}

func testConcurrentUpserts(t *testing.T, s store.Core) {
	const (
		workers  = 8
		nIDs     = 20
		versions = 10
	)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(w)))
			for range 5 {
				var batch []change.Event
				for _, i := range rng.Perm(nIDs) {
					v := 1 + rng.Intn(versions)
					e := mr(1, int64(i), v)
					e.Title = fmt.Sprintf("v%d", v)
					e.Transitions = []change.Transition{{State: "opened", At: at(0)}}
					batch = append(batch, e)
				}
				if _, err := s.Upsert(ctx(t), batch...); err != nil {
					errs <- err
					return
				}
			}
			// Every worker ends with the newest version of every id, so the
			// final state does not depend on scheduling.
			var last []change.Event
			for i := range nIDs {
				e := mr(1, int64(i), versions+1)
				e.Title = "final"
				last = append(last, e)
			}
			if _, err := s.Upsert(ctx(t), last...); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent Upsert: %v", err)
	}
	if n := mustCount(t, s, ""); n != nIDs {
		t.Errorf("Count = %d, want %d", n, nIDs)
	}
	for i := range nIDs {
		want := mr(1, int64(i), versions+1)
		want.Title = "final"
		got, tl := mustGet(t, s, want.ID)
		wantEvent(t, got, want)
		wantTimeline(t, want.ID, tl, []entry{{"opened", at(0), change.SourcePoll}})
	}
}

func testPing(t *testing.T, s store.Core) {
	if err := s.Ping(ctx(t)); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

func auditEntries() []store.AuditEntry {
	var es []store.AuditEntry
	for i := 0; i < 25; i++ {
		e := store.AuditEntry{
			Time: at(i), Method: "GET", Path: fmt.Sprintf("/api/v4/projects/%d/merge_requests?page=%d", 40+i%2, i),
			Status: 200, Duration: time.Duration(i) * time.Millisecond, RateLimitRemaining: 600 - i, Job: fmt.Sprintf("sync:%d", 40+i%2),
		}
		if i%5 == 4 {
			e.Status, e.Error, e.RateLimitRemaining = 0, "connection refused", -1
		}
		es = append(es, e)
	}
	return es
}

func testAudit(t *testing.T, s store.Core) {
	if err := s.AppendAudit(ctx(t)); err != nil {
		t.Fatalf("AppendAudit with none: %v", err)
	}
	es := auditEntries()
	if err := s.AppendAudit(ctx(t), es[:10]...); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendAudit(ctx(t), es[10:]...); err != nil {
		t.Fatal(err)
	}
	// Walk every page, newest first, without gaps or repeats.
	var got []store.AuditEntry
	f := store.AuditFilter{Limit: 7}
	for {
		p, err := s.ListAudit(ctx(t), f)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p.Entries...)
		if p.NextCursor == "" {
			break
		}
		f.Cursor = p.NextCursor
	}
	if len(got) != len(es) {
		t.Fatalf("listed %d entries, appended %d", len(got), len(es))
	}
	for i, g := range got {
		w := es[len(es)-1-i]
		if g.ID == 0 || !g.Time.Equal(w.Time) || g.Time.Location() != time.UTC || g.Method != w.Method || g.Path != w.Path ||
			g.Status != w.Status || g.Duration != w.Duration || g.RateLimitRemaining != w.RateLimitRemaining ||
			g.Job != w.Job || g.Error != w.Error || g.DurationMS != float64(w.Duration)/1e6 {
			t.Fatalf("entry %d\n got %+v\nwant %+v", i, g, w)
		}
	}
	if _, err := s.ListAudit(ctx(t), store.AuditFilter{Cursor: "nonsense"}); !errors.Is(err, store.ErrInvalidCursor) {
		t.Errorf("invalid cursor: %v", err)
	}
}

func testAuditFilters(t *testing.T, s store.Core) {
	if err := s.AppendAudit(ctx(t), auditEntries()...); err != nil {
		t.Fatal(err)
	}
	count := func(f store.AuditFilter) int {
		t.Helper()
		f.Limit = store.MaxLimit
		p, err := s.ListAudit(ctx(t), f)
		if err != nil {
			t.Fatal(err)
		}
		return len(p.Entries)
	}
	tests := []struct {
		name string
		f    store.AuditFilter
		want int
	}{
		{"all", store.AuditFilter{}, 25},
		{"job", store.AuditFilter{Job: "sync:40"}, 13},
		{"status 200", store.AuditFilter{Status: 200}, 20},
		{"no answer", store.AuditFilter{Status: -1}, 5},
		{"path prefix", store.AuditFilter{PathPrefix: "/api/v4/projects/41/"}, 12},
		{"since", store.AuditFilter{Since: at(20)}, 5},
		{"until", store.AuditFilter{Until: at(3)}, 3},
		{"combined", store.AuditFilter{Job: "sync:41", Since: at(10), Status: 200}, 6},
	}
	for _, tc := range tests {
		if got := count(tc.f); got != tc.want {
			t.Errorf("%s: %d entries, want %d", tc.name, got, tc.want)
		}
	}
	n, err := s.PruneAudit(ctx(t), at(10))
	if err != nil || n != 10 {
		t.Fatalf("PruneAudit: %d, %v", n, err)
	}
	if got := count(store.AuditFilter{}); got != 15 {
		t.Errorf("after prune %d entries, want 15", got)
	}
}

func testVersions(t *testing.T, s store.Core) {
	var evs []change.Event
	for i := 1; i <= 700; i++ { // more than one query's worth of ids
		evs = append(evs, change.Event{ID: fmt.Sprintf("image-7-%d-v%d-sha256:%04x", i%3, i, i), Kind: change.KindImage,
			UpdatedAt: at(i), Source: change.SourcePoll})
	}
	evs = append(evs, change.Event{ID: "image-70-1-x-sha256:ff", Kind: change.KindImage, UpdatedAt: at(1), Source: change.SourcePoll})
	// Stored by a webhook only: not yet complete, so not reported.
	evs = append(evs, change.Event{ID: "image-7-1-hook-sha256:ee", Kind: change.KindImage, UpdatedAt: at(1), Source: change.SourceWebhook})
	if _, err := s.Upsert(ctx(t), evs...); err != nil {
		t.Fatal(err)
	}
	ids := []string{"nope", "image-7-1-hook-sha256:ee"}
	for _, e := range evs[:650] {
		ids = append(ids, e.ID)
	}
	got, err := s.Versions(ctx(t), ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 650 || !got[evs[600].ID].Equal(evs[600].UpdatedAt) {
		t.Errorf("Versions: %d ids, %v for %s", len(got), got[evs[600].ID], evs[600].ID)
	}
	if _, ok := got["nope"]; ok {
		t.Error("Versions returned an id never stored")
	}
	byPrefix, err := s.VersionsByPrefix(ctx(t), "image-7-1-")
	if err != nil {
		t.Fatal(err)
	}
	if len(byPrefix) != 234 { // i%3 == 1 for i in 1..700
		t.Errorf("VersionsByPrefix: %d ids, want 234", len(byPrefix))
	}
	for id := range byPrefix {
		if !strings.HasPrefix(id, "image-7-1-") {
			t.Errorf("VersionsByPrefix returned %s", id)
		}
	}
	if none, err := s.Versions(ctx(t), nil); err != nil || len(none) != 0 {
		t.Errorf("Versions of nothing: %v %v", none, err)
	}
}

func testDeliveries(t *testing.T, s store.Core) {
	d := store.Delivery{
		IdempotencyKey: "key-1", EventType: "Merge Request Hook", EventUUID: "ev-1", WebhookUUID: "wh-1",
		Headers: map[string]string{"X-Gitlab-Event": "Merge Request Hook"}, Body: []byte(`{"object_kind":"merge_request"}`),
		ReceivedAt: at(1),
	}
	id, dup, err := s.PutDelivery(ctx(t), d)
	if err != nil || dup || id == 0 {
		t.Fatalf("first put: %d %v %v", id, dup, err)
	}
	// GitLab's retry: same Idempotency-Key, new webhook UUID.
	retry := d
	retry.WebhookUUID, retry.ReceivedAt = "wh-2", at(2)
	id2, dup, err := s.PutDelivery(ctx(t), retry)
	if err != nil || !dup || id2 != id {
		t.Fatalf("retry: %d %v %v, want duplicate of %d", id2, dup, err, id)
	}
	other := d
	other.IdempotencyKey, other.EventType = "key-2", "Push Hook"
	id3, dup, err := s.PutDelivery(ctx(t), other)
	if err != nil || dup || id3 == id {
		t.Fatalf("second delivery: %d %v %v", id3, dup, err)
	}
	if _, _, err := s.PutDelivery(ctx(t), store.Delivery{EventType: "Push Hook", ReceivedAt: at(1)}); err == nil {
		t.Error("a delivery without idempotency key was stored")
	}
	got, err := s.Delivery(ctx(t), id)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != store.DeliveryPending || string(got.Body) != string(d.Body) || got.WebhookUUID != "wh-1" ||
		got.Headers["X-Gitlab-Event"] != "Merge Request Hook" || !got.ReceivedAt.Equal(at(1)) {
		t.Errorf("stored delivery %+v", got)
	}
	if err := s.MarkDelivery(ctx(t), id, store.DeliveryFailed, "boom"); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkDelivery(ctx(t), id, store.DeliveryProcessed, ""); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Delivery(ctx(t), id)
	if got.Status != store.DeliveryProcessed || got.Attempts != 2 || got.ProcessedAt.IsZero() || got.LastError != "" {
		t.Errorf("after marks: %+v", got)
	}
	if err := s.MarkDelivery(ctx(t), 999999, store.DeliveryProcessed, ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("mark unknown: %v", err)
	}
	if _, err := s.Delivery(ctx(t), 999999); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("get unknown: %v", err)
	}
	page, err := s.ListDeliveries(ctx(t), store.DeliveryFilter{Limit: 1})
	if err != nil || len(page.Deliveries) != 1 || page.Deliveries[0].ID != id3 || page.NextCursor == "" || page.Deliveries[0].Body != nil {
		t.Fatalf("first page: %+v %v", page, err)
	}
	page, err = s.ListDeliveries(ctx(t), store.DeliveryFilter{Limit: 1, Cursor: page.NextCursor})
	if err != nil || len(page.Deliveries) != 1 || page.Deliveries[0].ID != id || page.NextCursor != "" {
		t.Fatalf("second page: %+v %v", page, err)
	}
	page, _ = s.ListDeliveries(ctx(t), store.DeliveryFilter{Status: store.DeliveryPending})
	if len(page.Deliveries) != 1 || page.Deliveries[0].ID != id3 {
		t.Errorf("pending: %+v", page)
	}
}
