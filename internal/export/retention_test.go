package export_test

import (
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/export"
	"github.com/labtrail/labtrail/internal/store"
	"github.com/labtrail/labtrail/internal/store/storetest"
)

func TestParseRetention(t *testing.T) {
	r, err := export.ParseRetention(" 720h, job=168h ,pipeline=24h")
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[change.Kind]time.Duration{change.KindJob: 168 * time.Hour, change.KindPipeline: 24 * time.Hour, change.KindMergeRequest: 720 * time.Hour} {
		if got := r.For(k); got != want {
			t.Errorf("%s: %v, want %v", k, got, want)
		}
	}
	if r, err := export.ParseRetention(""); err != nil || !r.Zero() {
		t.Errorf("empty: %+v, %v", r, err)
	}
	if r, _ := export.ParseRetention("job=1h"); r.For(change.KindMergeRequest) != 0 || r.For(change.KindJob) != time.Hour {
		t.Errorf("a kind alone keeps the others forever: %+v", r)
	}
	for _, bad := range []string{"30d", "-1h", "0s", "wiki=1h", "1h,2h", "job=1h,job=2h", "job=", "=1h"} {
		if _, err := export.ParseRetention(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// count is how many events of kind occurred on day d.
func countDay(t *testing.T, s store.Store, d int) int64 {
	t.Helper()
	day := day0.AddDate(0, 0, d)
	n, err := export.Write(t.Context(), discard{}, s, export.NDJSON, store.Filter{Since: day, Until: day.AddDate(0, 0, 1)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }

func TestRetentionNeverDeletesUnexportedDays(t *testing.T) {
	each(t, func(t *testing.T, open func(testing.TB) store.Store) {
		c := fakeS3(t)
		s := open(t)
		var es []change.Event
		for i := range 400 {
			es = append(es, onDay(i, (i/2)%4)) // days 0..3, 50 of each kind a day
		}
		if _, err := s.Upsert(t.Context(), es...); err != nil {
			t.Fatal(err)
		}
		now := day0.AddDate(0, 0, 4).Add(12 * time.Hour)
		keep := export.Retention{All: 24 * time.Hour} // cut at day 3
		prune := func() int {
			t.Helper()
			res, err := export.Prune(t.Context(), s, keep, 0, true, now)
			if err != nil {
				t.Fatal(err)
			}
			return res.Events[change.KindMergeRequest] + res.Events[change.KindPipeline]
		}
		a := &export.Archiver{Store: s, S3: c, Loc: export.Location{Bucket: "archive", Prefix: "p"}, Now: func() time.Time { return now }}

		if n := prune(); n != 0 {
			t.Fatalf("pruned %d events before anything was exported", n)
		}
		if _, err := a.Run(t.Context()); err != nil {
			t.Fatal(err)
		}
		// A late update makes day 1 of pipelines pending again: of them,
		// only day 0 may go; merge requests go up to the cut (days 0..2).
		late := es[3] // day 1
		late.UpdatedAt, late.Title = late.UpdatedAt.Add(72*time.Hour), "late"
		if _, err := s.Upsert(t.Context(), late); err != nil {
			t.Fatal(err)
		}
		if late.Kind != change.KindPipeline {
			t.Fatalf("late is a %s", late.Kind)
		}
		if n := prune(); n != 200 {
			t.Fatalf("pruned %d, want 150 merge requests and day 0's 50 pipelines", n)
		}
		for d, want := range []int64{0, 50, 50, 100} {
			if got := countDay(t, s, d); got != want {
				t.Errorf("day %d: %d events left, want %d", d, got, want)
			}
		}
		// Once day 1 is exported again, its pipelines and day 2's go; day
		// 3 is kept.
		if _, err := a.Run(t.Context()); err != nil {
			t.Fatal(err)
		}
		if n := prune(); n != 100 {
			t.Fatalf("pruned %d, want the pipelines of days 1 and 2", n)
		}
		if got := countDay(t, s, 3); got != 100 {
			t.Errorf("day 3: %d left", got)
		}
		// Pruning did not make a day pending: nothing is rewritten.
		if res, err := a.Run(t.Context()); err != nil || res.Objects != 0 {
			t.Fatalf("run after pruning: %+v, %v", res, err)
		}
		// An event arriving late for day 0, whose others are pruned: the
		// rewrite keeps them.
		newcomer := onDay(1000, 0) // a merge request
		if _, err := s.Upsert(t.Context(), newcomer); err != nil {
			t.Fatal(err)
		}
		res, err := a.Run(t.Context())
		if err != nil || res.Objects != 1 {
			t.Fatalf("run after a late event of a pruned day: %+v, %v", res, err)
		}
		got := lines(t, get(t, c, a.Loc.ObjectKey(change.KindMergeRequest, day0)))
		if len(got) != 51 {
			t.Errorf("the rewrite of pruned day 0 holds %d events, want its 50 merge requests and the newcomer", len(got))
		}
		if _, ok := got[newcomer.ID]; !ok {
			t.Error("the newcomer is missing")
		}
		if _, ok := got[es[0].ID]; !ok {
			t.Error("a pruned event was lost by the rewrite")
		}
		m := manifest(t, c, a.Loc, day0)
		for _, o := range m.Objects {
			if o.Kind == change.KindMergeRequest && (!o.Pruned || o.Events != 51 || !o.Rewritten) {
				t.Errorf("manifest: %+v", o)
			}
		}
	})
}

func TestRetentionWithoutS3AndDeliveryBodies(t *testing.T) {
	s := storetest.Backends()[0].Open(t)
	var es []change.Event
	for i := range 40 {
		es = append(es, onDay(i, i%4))
	}
	if _, err := s.Upsert(t.Context(), es...); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"pending", "processed"} {
		id, _, err := s.PutDelivery(t.Context(), store.Delivery{IdempotencyKey: key, EventType: "Push Hook", Body: []byte("{}"), ReceivedAt: day0})
		if err != nil {
			t.Fatal(err)
		}
		if key == "processed" {
			if err := s.MarkDelivery(t.Context(), id, store.DeliveryProcessed, ""); err != nil {
				t.Fatal(err)
			}
		}
	}
	now := day0.AddDate(0, 0, 4).Add(12 * time.Hour)
	// Pipelines kept 2 days, merge requests forever; no export: nothing waits for one.
	r, _ := export.ParseRetention("pipeline=48h")
	res, err := export.Prune(t.Context(), s, r, time.Hour, false, now)
	if err != nil {
		t.Fatal(err)
	}
	// Pipelines of days 0 and 1 (cut at the start of day 2).
	if res.Events[change.KindPipeline] != 10 || res.Events[change.KindMergeRequest] != 0 {
		t.Errorf("pruned %v", res.Events)
	}
	// A pending delivery keeps its body.
	if res.DeliveryBodies != 1 {
		t.Errorf("pruned %d bodies, want the processed one", res.DeliveryBodies)
	}
}
