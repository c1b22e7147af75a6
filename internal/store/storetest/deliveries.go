package storetest

import (
	"fmt"
	"sync"
	"testing"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/store"
)

// deliveryTests are the conformance cases of DeliveryConverter.
var deliveryTests = []struct {
	name string
	fn   func(t *testing.T, s store.Core)
}{
	{"ConvertDeliveriesBatch", testConvertBatch},
	{"ConvertDeliveriesRefusedEventFailsItsDeliveryOnly", testConvertRefusedEvent},
	{"ConvertDeliveriesBadConversionStoresNothing", testConvertBadConversion},
	{"ConvertDeliveriesByID", testConvertByID},
	{"ConvertDeliveriesBoundedBytes", testConvertBoundedBytes},
	{"ConvertDeliveriesConcurrentClaimsDisjoint", testConvertConcurrent},
}

// putPending stores n pending deliveries and returns their ids, oldest
// first.
func putPending(t *testing.T, s store.Core, prefix string, n int) []int64 {
	t.Helper()
	ids := make([]int64, n)
	for i := range ids {
		id, _, err := s.PutDelivery(ctx(t), store.Delivery{IdempotencyKey: fmt.Sprintf("%s-%d", prefix, i),
			EventType: "Merge Request Hook", Body: []byte(`{}`), ReceivedAt: at(i), Status: store.DeliveryPending})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
	}
	return ids
}

// hookMR is the merge request delivery i converts into.
func hookMR(i int64) change.Event {
	e := mr(7, i+1, 5)
	e.Source = change.SourceWebhook
	return e
}

func processAll(ds []store.Delivery) []store.Conversion {
	out := make([]store.Conversion, len(ds))
	for i, d := range ds {
		out[i] = store.Conversion{ID: d.ID, Status: store.DeliveryProcessed, Events: []change.Event{hookMR(d.ID)}}
	}
	return out
}

func mustDelivery(t *testing.T, s store.Core, id int64) store.Delivery {
	t.Helper()
	d, err := s.Delivery(ctx(t), id)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func testConvertBatch(t *testing.T, s store.Core) {
	ids := putPending(t, s, "batch", 5)
	if err := s.MarkDelivery(ctx(t), ids[1], store.DeliveryProcessed, ""); err != nil {
		t.Fatal(err)
	}
	// Oldest pending first, up to the limit; not the one already processed.
	var seen []int64
	res, err := s.ConvertDeliveries(ctx(t), store.DeliveryClaim{Limit: 3}, func(ds []store.Delivery) []store.Conversion {
		seen = nil
		for _, d := range ds {
			seen = append(seen, d.ID)
			if string(d.Body) != `{}` {
				t.Errorf("delivery %d handed over without its body", d.ID)
			}
		}
		out := processAll(ds)
		out[1] = store.Conversion{ID: ds[1].ID, Status: store.DeliveryIgnored, Reason: "not selected"}
		return out
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []int64{ids[0], ids[2], ids[3]}; fmt.Sprint(seen) != fmt.Sprint(want) || len(res.Deliveries) != 3 || !res.More {
		t.Fatalf("claimed %v (result %d), want %v", seen, len(res.Deliveries), want)
	}
	if res.Upsert.Inserted != 2 || len(res.Conversions) != 3 || res.Conversions[1].Status != store.DeliveryIgnored {
		t.Errorf("result %+v", res)
	}
	for _, c := range []struct {
		id             int64
		status, reason string
	}{{ids[0], store.DeliveryProcessed, ""}, {ids[2], store.DeliveryIgnored, "not selected"}, {ids[3], store.DeliveryProcessed, ""},
		{ids[4], store.DeliveryPending, ""}} {
		d := mustDelivery(t, s, c.id)
		final := c.status != store.DeliveryPending
		if d.Status != c.status || d.LastError != c.reason || (d.Attempts == 1) != final || d.ProcessedAt.IsZero() == final {
			t.Errorf("delivery %d: %s %q, %d attempts, processed at %s; want %s %q", c.id, d.Status, d.LastError, d.Attempts, d.ProcessedAt, c.status, c.reason)
		}
	}
	if _, _, err := s.Get(ctx(t), hookMR(ids[0]).ID); err != nil {
		t.Errorf("event of delivery %d: %v", ids[0], err)
	}
	if _, _, err := s.Get(ctx(t), hookMR(ids[2]).ID); err == nil {
		t.Error("the ignored delivery's conversion has no events, yet one was stored")
	}
	// The rest; then nothing is pending and convert is not called.
	if res, err := s.ConvertDeliveries(ctx(t), store.DeliveryClaim{Limit: 3}, processAll); err != nil || len(res.Deliveries) != 1 || res.More {
		t.Fatalf("second batch: %d deliveries, %v", len(res.Deliveries), err)
	}
	res, err = s.ConvertDeliveries(ctx(t), store.DeliveryClaim{Limit: 3}, func(ds []store.Delivery) []store.Conversion {
		t.Errorf("convert called with %d deliveries while none is pending", len(ds))
		return nil
	})
	if err != nil || len(res.Deliveries) != 0 {
		t.Errorf("empty batch: %+v %v", res, err)
	}
}

func testConvertRefusedEvent(t *testing.T, s store.Core) {
	ids := putPending(t, s, "refused", 3)
	_, err := s.ConvertDeliveries(ctx(t), store.DeliveryClaim{Limit: 10}, func(ds []store.Delivery) []store.Conversion {
		out := processAll(ds)
		bad := hookMR(ds[1].ID)
		bad.ID = "" // Validate refuses it
		out[1].Events = append(out[1].Events, bad)
		return out
	})
	if err != nil {
		t.Fatalf("a refused event failed the batch: %v", err)
	}
	for i, id := range ids {
		d := mustDelivery(t, s, id)
		_, _, gerr := s.Get(ctx(t), hookMR(id).ID)
		if i == 1 {
			if d.Status != store.DeliveryFailed || d.LastError == "" || d.Attempts != 1 || gerr == nil {
				t.Errorf("delivery with a refused event: %s %q, %d attempts, its other event stored: %v", d.Status, d.LastError, d.Attempts, gerr == nil)
			}
			continue
		}
		if d.Status != store.DeliveryProcessed || gerr != nil {
			t.Errorf("delivery %d beside it: %s, event %v", id, d.Status, gerr)
		}
	}
}

func testConvertBadConversion(t *testing.T, s store.Core) {
	ids := putPending(t, s, "bad", 2)
	for name, convert := range map[string]func([]store.Delivery) []store.Conversion{
		"one left out": func(ds []store.Delivery) []store.Conversion { return processAll(ds)[:1] },
		"status pending": func(ds []store.Delivery) []store.Conversion {
			out := processAll(ds)
			out[1].Status = store.DeliveryPending
			return out
		},
	} {
		if _, err := s.ConvertDeliveries(ctx(t), store.DeliveryClaim{Limit: 10}, convert); err == nil {
			t.Errorf("%s: no error", name)
		}
		for _, id := range ids {
			if d := mustDelivery(t, s, id); d.Status != store.DeliveryPending || d.Attempts != 0 {
				t.Errorf("%s: delivery %d %s after %d attempts, want untouched", name, id, d.Status, d.Attempts)
			}
			if _, _, err := s.Get(ctx(t), hookMR(id).ID); err == nil {
				t.Errorf("%s: an event was stored", name)
			}
		}
	}
}

func testConvertByID(t *testing.T, s store.Core) {
	ids := putPending(t, s, "byid", 3)
	if err := s.MarkDelivery(ctx(t), ids[2], store.DeliveryFailed, "boom"); err != nil {
		t.Fatal(err)
	}
	// By id, whatever the status: a replay.
	res, err := s.ConvertDeliveries(ctx(t), store.DeliveryClaim{IDs: []int64{ids[2]}}, processAll)
	if err != nil || len(res.Deliveries) != 1 || res.Deliveries[0].ID != ids[2] {
		t.Fatalf("replay: %+v %v", res, err)
	}
	d := mustDelivery(t, s, ids[2])
	if d.Status != store.DeliveryProcessed || d.LastError != "" || d.Attempts != 2 {
		t.Errorf("replayed delivery: %s %q, %d attempts; want processed after 2", d.Status, d.LastError, d.Attempts)
	}
	if d := mustDelivery(t, s, ids[0]); d.Status != store.DeliveryPending {
		t.Errorf("delivery not named was converted: %s", d.Status)
	}
	if res, err := s.ConvertDeliveries(ctx(t), store.DeliveryClaim{IDs: []int64{1 << 40}}, processAll); err != nil || len(res.Deliveries) != 0 {
		t.Errorf("unknown id: %+v %v", res, err)
	}
	if _, err := s.ConvertDeliveries(ctx(t), store.DeliveryClaim{}, processAll); err == nil {
		t.Error("a claim with neither limit nor ids was accepted")
	}
}

// testConvertConcurrent: converters draining at once (replicas) take
// disjoint deliveries: each is converted exactly once.
func testConvertConcurrent(t *testing.T, s store.Core) {
	ids := putPending(t, s, "conc", 60)
	var (
		mu   sync.Mutex
		seen = map[int64]int{}
		wg   sync.WaitGroup
	)
	for range 3 {
		wg.Go(func() {
			for {
				res, err := s.ConvertDeliveries(ctx(t), store.DeliveryClaim{Limit: 7}, processAll)
				if err != nil {
					t.Error(err)
					return
				}
				if len(res.Deliveries) == 0 {
					return
				}
				mu.Lock()
				for _, d := range res.Deliveries {
					seen[d.ID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, id := range ids {
		if d := mustDelivery(t, s, id); seen[id] != 1 || d.Attempts != 1 || d.Status != store.DeliveryProcessed {
			t.Errorf("delivery %d converted %d times, %d attempts, %s", id, seen[id], d.Attempts, d.Status)
		}
	}
}

// testConvertBoundedBytes: a claim holds at most MaxBytes of bodies, but
// always one delivery, and says more are pending.
func testConvertBoundedBytes(t *testing.T, s store.Core) {
	ids := putPending(t, s, "bytes", 4) // bodies of 2 bytes
	for _, c := range []struct {
		max  int64
		want []int64
		more bool
	}{{1, ids[:1], true}, {5, ids[1:3], true}, {100, ids[3:], false}} {
		res, err := s.ConvertDeliveries(ctx(t), store.DeliveryClaim{Limit: 10, MaxBytes: c.max}, processAll)
		if err != nil {
			t.Fatal(err)
		}
		var got []int64
		for _, d := range res.Deliveries {
			got = append(got, d.ID)
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) || res.More != c.more {
			t.Errorf("MaxBytes %d: claimed %v (more %v), want %v (more %v)", c.max, got, res.More, c.want, c.more)
		}
	}
}
