package storetest

import (
	"encoding/json"
	"testing"

	"github.com/labtrail/labtrail/internal/store"
)

// Cases where the backends once disagreed, each rule now written once in
// package store.

// testEqualUpdatedAtExactNumbers: an equal UpdatedAt whose attributes
// differ only past float64's precision is still an update. Hashing the
// attributes through float64 (PostgreSQL once did) made the two alike and
// dropped the new value.
func testEqualUpdatedAtExactNumbers(t *testing.T, s store.Core) {
	first := mr(1, 1, 5)
	first.Attrs = map[string]any{"pipeline_id": int64(1)<<53 + 1}
	mustUpsert(t, s, first)
	second := first
	second.Attrs = map[string]any{"pipeline_id": int64(1) << 53}
	wantResult(t, mustUpsert(t, s, second), 0, 1, 0)
	hs, err := s.ExportEvents(ctx(t), "", 10)
	if err != nil || len(hs) != 1 {
		t.Fatalf("ExportEvents: %d histories, %v", len(hs), err)
	}
	if got := hs[0].Event.Attrs["pipeline_id"]; got != json.Number("9007199254740992") {
		t.Errorf("stored pipeline_id %#v, want 9007199254740992", got)
	}
}

// testEqualUpdatedAtNumberForms: numbers a database writes in another form
// than Go (PostgreSQL's jsonb writes 1e+21 in full and 1e-7 as 0.0000001)
// are the same content when the same event comes again.
func testEqualUpdatedAtNumberForms(t *testing.T, s store.Core) {
	e := mr(1, 1, 5)
	e.Attrs = map[string]any{"big": 1e21, "small": 1e-7, "half": 0.5, "neg": -3}
	mustUpsert(t, s, e)
	wantResult(t, mustUpsert(t, s, e), 0, 0, 1)
	got, _ := mustGet(t, s, e.ID)
	wantResult(t, mustUpsert(t, s, got), 0, 0, 1)
}

// testDeliveryWithoutBodyOrHeaders: a delivery with no body and no headers
// is stored (SQLite once refused a nil body), and both read back empty,
// alike on every backend.
func testDeliveryWithoutBodyOrHeaders(t *testing.T, s store.Core) {
	id, dup, err := s.PutDelivery(ctx(t), store.Delivery{IdempotencyKey: "empty", EventType: "System Hook", ReceivedAt: at(1)})
	if err != nil || dup {
		t.Fatalf("PutDelivery: id %d duplicate %v, %v", id, dup, err)
	}
	n, err := s.ImportDeliveries(ctx(t), store.Delivery{ID: id + 1, IdempotencyKey: "empty-imported", ReceivedAt: at(2)})
	if err != nil || n != 1 {
		t.Fatalf("ImportDeliveries: %d, %v", n, err)
	}
	for _, id := range []int64{id, id + 1} {
		d, err := s.Delivery(ctx(t), id)
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Body) != 0 || len(d.Headers) != 0 || d.Status != store.DeliveryPending {
			t.Errorf("delivery %d: body %q headers %v status %q, want empty, empty, pending", id, d.Body, d.Headers, d.Status)
		}
	}
}

// testAuditPathPrefixUnicode: a path prefix is compared by characters
// (SQLite once cut the stored path at the prefix's length in bytes, so a
// prefix with a multi-byte character never matched).
func testAuditPathPrefixUnicode(t *testing.T, s store.Core) {
	es := []store.AuditEntry{
		{Time: at(1), Method: "GET", Path: "/api/v4/projects/é/merge_requests", Status: 200},
		{Time: at(2), Method: "GET", Path: "/api/v4/projects/e/merge_requests", Status: 200},
		{Time: at(3), Method: "GET", Path: "/api/v4/projects/é", Status: 200},
	}
	if err := s.AppendAudit(ctx(t), es...); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		prefix string
		want   int
	}{{"/api/v4/projects/é/", 1}, {"/api/v4/projects/é", 2}, {"/api/v4/projects/", 3}, {"/api/v4/projects/éé", 0}} {
		p, err := s.ListAudit(ctx(t), store.AuditFilter{PathPrefix: c.prefix})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Entries) != c.want {
			t.Errorf("prefix %q: %d entries, want %d", c.prefix, len(p.Entries), c.want)
		}
	}
}
