package ingest_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/gitlab"
	"github.com/labtrail/labtrail/internal/ingest"
	"github.com/labtrail/labtrail/internal/store"
	"github.com/labtrail/labtrail/internal/store/storetest"
)

// mrHook is GitLab's sample Merge Request Hook with its project and
// times replaced.
func mrHook(t *testing.T, pid int64, path, created, updated string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "gitlab", "testdata", "webhooks", "merge_request.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	p := m["project"].(map[string]any)
	p["id"], p["path_with_namespace"] = pid, path
	oa := m["object_attributes"].(map[string]any)
	oa["created_at"], oa["updated_at"], oa["target_project_id"], oa["source_project_id"] = created, updated, pid, pid
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func putHook(t *testing.T, st store.Store, key, event string, body []byte, received time.Time) int64 {
	t.Helper()
	id, _, err := st.PutDelivery(context.Background(), store.Delivery{IdempotencyKey: key, EventType: event, Body: body,
		ReceivedAt: received, Status: store.DeliveryPending})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func delivery(t *testing.T, st store.Store, id int64) store.Delivery {
	t.Helper()
	d, err := st.Delivery(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestConverterOneBatchPerDeliveryOutcomes: one drain converts a batch in
// which each delivery ends with the status that says what happened to it;
// a payload that cannot be converted fails at once (one attempt, its
// reason) without holding up the others.
func TestConverterOneBatchPerDeliveryOutcomes(t *testing.T) {
	for _, be := range storetest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			st := be.Open(t)
			ctx := context.Background()
			now := time.Now().UTC().Truncate(time.Microsecond)
			ok := putHook(t, st, "ok", "Merge Request Hook", mrHook(t, 11, "acme/app", "2026-01-02T03:04:05Z", "2026-01-02T03:04:05Z"), now)
			future := putHook(t, st, "future", "Merge Request Hook", mrHook(t, 12, "acme/app2", "2999-01-01T00:00:00Z", "2999-01-01T00:00:00Z"), now)
			malformed := putHook(t, st, "malformed", "Merge Request Hook", []byte(`{"object_kind":"merge_request","object_attributes":"nope"}`), now)
			ignored := putHook(t, st, "ignored", "Merge Request Hook", mrHook(t, 13, "elsewhere/app", "2026-01-02T03:04:05Z", "2026-01-02T03:04:05Z"), now)
			joined := putHook(t, st, "joined", "Merge Request Hook", mrHook(t, 14, "acme/sub/new", "2026-01-02T03:04:05Z", "2026-01-02T03:04:05Z"), now)
			stored := putHook(t, st, "stored", "Merge Request Hook", mrHook(t, 15, "old/place", "2026-01-02T03:04:05Z", "2026-01-02T03:04:05Z"), now)
			raw := putHook(t, st, "raw", "Wiki Page Hook", []byte(`{"object_kind":"wiki_page"}`), now)
			// Project 15 is synced though its path is outside the
			// selection now (it moved): stored projects count as selected.
			if err := st.PutProjects(ctx, store.Project{ID: 15, Path: "old/place", Status: store.ProjectActive}); err != nil {
				t.Fatal(err)
			}
			batches := 0
			conv := &ingest.Converter{Store: st, Log: quiet, Selection: gitlab.Selection{Groups: []string{"acme"}},
				OnBatch: func(store.ConvertResult) { batches++ }}
			if err := conv.Drain(ctx); err != nil {
				t.Fatal(err)
			}
			if batches != 1 {
				t.Errorf("%d batches, want all in one", batches)
			}
			for _, c := range []struct {
				id     int64
				status string
				reason string
			}{
				{ok, store.DeliveryProcessed, ""}, {joined, store.DeliveryProcessed, ""}, {stored, store.DeliveryProcessed, ""},
				{future, store.DeliveryFailed, "a time in the future"},
				{malformed, store.DeliveryFailed, "object_attributes"},
				{ignored, store.DeliveryIgnored, "elsewhere/app is not synced"},
				{raw, store.DeliveryStoredRaw, ""},
			} {
				d := delivery(t, st, c.id)
				if d.Status != c.status || d.Attempts != 1 || !strings.Contains(d.LastError, c.reason) || (c.reason == "") != (d.LastError == "") {
					t.Errorf("delivery %d: %s after %d attempts (%q); want %s after 1 (%q)", c.id, d.Status, d.Attempts, d.LastError, c.status, c.reason)
				}
			}
			for pid, want := range map[int64]bool{11: true, 12: false, 13: false, 14: true, 15: true} {
				p, err := st.List(ctx, store.Filter{ProjectID: pid, Kind: change.KindMergeRequest})
				if err != nil {
					t.Fatal(err)
				}
				if got := len(p.Events) > 0; got != want {
					t.Errorf("project %d: events stored %v, want %v", pid, got, want)
				}
				for _, e := range p.Events {
					if e.Source != change.SourceWebhook {
						t.Errorf("project %d: source %s", pid, e.Source)
					}
				}
			}
		})
	}
}

// failingStore fails every batch that claims delivery bad, as a store
// error the converter cannot attribute would.
type failingStore struct {
	store.Store
	bad int64
}

var errInjected = errors.New("injected store failure")

func (f failingStore) ConvertDeliveries(ctx context.Context, claim store.DeliveryClaim,
	convert func([]store.Delivery) []store.Conversion) (store.ConvertResult, error) {
	res, err := f.Store.ConvertDeliveries(ctx, claim, func(ds []store.Delivery) []store.Conversion {
		out := convert(ds)
		for i, d := range ds {
			if d.ID == f.bad {
				out[i].Status = "injected" // refused by the store: the whole batch rolls back
			}
		}
		return out
	})
	if err != nil {
		return res, errors.Join(errInjected, err)
	}
	return res, nil
}

// TestConverterIsolatesAFailingDelivery: a batch failing with an error
// the converter cannot attribute is converted one delivery at a time: the
// others are processed at once, and the failing one is tried again on
// each drain, its attempts counted, until it is kept as failed after
// MaxConvertAttempts.
func TestConverterIsolatesAFailingDelivery(t *testing.T) {
	st := storetest.Backends()[0].Open(t)
	ctx := context.Background()
	now := time.Now().UTC()
	var ids []int64
	for i, path := range []string{"acme/a", "acme/b", "acme/c"} {
		ids = append(ids, putHook(t, st, path, "Merge Request Hook", mrHook(t, int64(21+i), path, "2026-01-02T03:04:05Z", "2026-01-02T03:04:05Z"), now))
	}
	conv := &ingest.Converter{Store: failingStore{Store: st, bad: ids[1]}, Log: quiet}
	for attempt := 1; attempt <= ingest.MaxConvertAttempts; attempt++ {
		if err := conv.Drain(ctx); !errors.Is(err, errInjected) {
			t.Fatalf("drain %d: %v, want the injected failure", attempt, err)
		}
		for _, id := range []int64{ids[0], ids[2]} {
			if d := delivery(t, st, id); d.Status != store.DeliveryProcessed || d.Attempts != 1 {
				t.Fatalf("drain %d: delivery %d beside the failing one: %s after %d attempts", attempt, id, d.Status, d.Attempts)
			}
		}
		d := delivery(t, st, ids[1])
		want := store.DeliveryPending
		if attempt == ingest.MaxConvertAttempts {
			want = store.DeliveryFailed
		}
		if d.Status != want || d.Attempts != attempt || !strings.Contains(d.LastError, "injected") {
			t.Fatalf("drain %d: failing delivery %s after %d attempts (%q), want %s after %d", attempt, d.Status, d.Attempts, d.LastError, want, attempt)
		}
	}
	if err := conv.Drain(ctx); err != nil {
		t.Errorf("after the failing delivery was given up: %v", err)
	}
}

// TestConverterWakesOnEnqueue: EnqueueDelivery never blocks, and wakes a
// running converter, which converts what is pending.
func TestConverterWakesOnEnqueue(t *testing.T) {
	st := storetest.Backends()[0].Open(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan store.ConvertResult, 16)
	conv := &ingest.Converter{Store: st, Log: quiet, Every: time.Hour, OnBatch: func(r store.ConvertResult) { done <- r }}
	for range 3 { // a full wake channel does not block
		if err := conv.EnqueueDelivery(ctx, 1); err != nil {
			t.Fatal(err)
		}
	}
	stopped := make(chan struct{})
	go func() { conv.Run(ctx); close(stopped) }()
	defer func() { cancel(); <-stopped }()
	id := putHook(t, st, "wake", "Merge Request Hook", mrHook(t, 31, "acme/w", "2026-01-02T03:04:05Z", "2026-01-02T03:04:05Z"), time.Now().UTC())
	if err := conv.EnqueueDelivery(ctx, id); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if len(r.Deliveries) != 1 || r.Deliveries[0].ID != id || r.Conversions[0].Status != store.DeliveryProcessed {
		t.Errorf("woken converter converted %+v", r.Conversions)
	}
}
