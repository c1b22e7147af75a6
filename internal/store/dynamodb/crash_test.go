package dynamodb_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/store"
	"github.com/labtrail/labtrail/internal/store/dynamodb"
	"github.com/labtrail/labtrail/internal/store/dynamodb/dynalitetest"
)

// An Upsert cut off in the middle (here: DynamoDB unreachable from its
// second write on) leaves the events it wrote whole, timeline and all, and
// the rest unwritten; the same call again completes it.
func TestUpsertCutOffLeavesWholeEvents(t *testing.T) {
	ctx := context.Background()
	table := open(t).Table()
	target, err := url.Parse(dynalitetest.Start(t))
	if err != nil {
		t.Fatal(err)
	}
	var puts atomic.Int64
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Amz-Target") == "DynamoDB_20120810.PutItem" && puts.Add(1) > 1 {
			w.Header().Set("Content-Type", "application/x-amz-json-1.0")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"__type":"com.amazon.coral.validate#ValidationException","message":"cut off"}`)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer srv.Close()
	t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", srv.URL)
	cut, err := dynamodb.Open(ctx, table)
	if err != nil {
		t.Fatal(err)
	}
	dynalitetest.Env(t)
	s, err := dynamodb.Open(ctx, table)
	if err != nil {
		t.Fatal(err)
	}

	events := make([]change.Event, 3)
	for i := range events {
		events[i] = change.Event{ID: fmt.Sprintf("pipeline-1-%d", i), Kind: change.KindPipeline, ProjectID: 1, State: "success",
			UpdatedAt: base(i), OccurredAt: base(i), Source: change.SourcePoll,
			Transitions: []change.Transition{{State: "running", At: base(i - 1)}, {State: "success", At: base(i)}}}
	}
	if _, err := cut.Upsert(ctx, events...); err == nil {
		t.Fatal("an Upsert whose writes failed succeeded")
	}
	e, tl, err := s.Get(ctx, events[0].ID)
	if err != nil || e.State != "success" || len(tl) != 2 {
		t.Fatalf("the event written before the cut: %+v, timeline %v, %v; want it whole", e, tl, err)
	}
	for _, later := range events[1:] {
		if _, _, err := s.Get(ctx, later.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s, after the cut: %v; want not written", later.ID, err)
		}
	}
	r, err := s.Upsert(ctx, events...)
	if err != nil || r.Inserted != 2 || r.Unchanged != 1 {
		t.Fatalf("the call again: %+v, %v; want the two missing inserted", r, err)
	}
}

// Two stores on one table (two Lambdas) writing versions of the same
// objects at once end with the newest of each, whatever the interleaving.
func TestTwoWritersKeepTheNewest(t *testing.T) {
	ctx := context.Background()
	a := open(t)
	b, err := dynamodb.Open(ctx, a.Table())
	if err != nil {
		t.Fatal(err)
	}
	const ids, versions = 5, 12
	var wg sync.WaitGroup
	for w, s := range []*dynamodb.Store{a, b} {
		wg.Go(func() {
			for v := range versions {
				// Each writer goes through the versions in its own order.
				if w == 1 {
					v = versions - 1 - v
				}
				var es []change.Event
				for i := range ids {
					es = append(es, change.Event{ID: fmt.Sprintf("mr-1-%d", i), Kind: change.KindMergeRequest, ProjectID: 1,
						Title: fmt.Sprintf("v%d", v), State: "opened", UpdatedAt: base(v), Source: change.SourceWebhook})
				}
				if _, err := s.Upsert(ctx, es...); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	for i := range ids {
		e, _, err := a.Get(ctx, fmt.Sprintf("mr-1-%d", i))
		if err != nil || e.Title != fmt.Sprintf("v%d", versions-1) {
			t.Errorf("mr-1-%d: %q, %v; want the newest, v%d", i, e.Title, err, versions-1)
		}
	}
}
