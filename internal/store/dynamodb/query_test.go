package dynamodb_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/store"
	"github.com/labtrail/labtrail/internal/store/dynamodb"
	"github.com/labtrail/labtrail/internal/store/dynamodb/dynalitetest"
)

// recorder stands between the store and dynalite and notes each call:
// its operation and, for a Query, its index and limit.
type recorder struct {
	mu    sync.Mutex
	calls []string
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.calls
	r.calls = nil
	return c
}

func record(t *testing.T) *recorder {
	target, err := url.Parse(dynalitetest.Start(t))
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(body))
		op := strings.TrimPrefix(req.Header.Get("X-Amz-Target"), "DynamoDB_20120810.")
		if op == "Query" {
			var in struct {
				IndexName string
				Limit     int
			}
			json.Unmarshal(body, &in)
			op = fmt.Sprintf("Query %s %d", in.IndexName, in.Limit)
		}
		rec.mu.Lock()
		rec.calls = append(rec.calls, op)
		rec.mu.Unlock()
		proxy.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", srv.URL)
	return rec
}

func base(i int) time.Time {
	return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Add(time.Duration(i) * time.Minute)
}

// Every listing is a Query of the index its first filter names, one per
// value, reading one item more than the page; no read of the store is
// ever a Scan.
func TestListingsQueryIndexes(t *testing.T) {
	ctx := context.Background()
	table := open(t).Table()
	rec := record(t)
	// Opened after record pointed AWS_ENDPOINT_URL_DYNAMODB at it.
	s, err := dynamodb.Open(ctx, table)
	if err != nil {
		t.Fatal(err)
	}
	var es []change.Event
	for i := range 30 {
		e := change.Event{ID: fmt.Sprintf("mr-%d-%d", 1+i%3, i), Kind: change.KindMergeRequest, ProjectID: int64(1 + i%3),
			ProjectPath: fmt.Sprintf("g/p%d", 1+i%3), State: "opened", Author: "alice", Source: change.SourcePoll,
			UpdatedAt: base(i), OccurredAt: base(i)}
		if i%2 == 1 {
			e.ID, e.Kind, e.Author = fmt.Sprintf("pipeline-%d-%d", 1+i%3, i), change.KindPipeline, "bob"
		}
		es = append(es, e)
	}
	if _, err := s.Upsert(ctx, es...); err != nil {
		t.Fatal(err)
	}
	rec.take()
	for _, c := range []struct {
		f    store.Filter
		want []string
	}{
		{store.Filter{Limit: 2}, []string{"Query all_by_time 3"}},
		{store.Filter{ProjectID: 2, Limit: 2}, []string{"Query project_by_time 3"}},
		// The kind is a FilterExpression: the first three of g/p1 hold two
		// pipelines, so the query goes on from its LastEvaluatedKey.
		{store.Filter{ProjectPaths: []string{"g/p1"}, Kind: change.KindPipeline, Limit: 2},
			[]string{"Query path_by_time 3", "Query path_by_time 3"}},
		{store.Filter{Authors: []string{"alice", "bob"}, Limit: 2}, []string{"Query author_by_time 3", "Query author_by_time 3"}},
		{store.Filter{States: []string{"opened"}, Limit: 2}, []string{"Query state_by_time 3"}},
		{store.Filter{Kinds: []change.Kind{change.KindPipeline, change.KindMergeRequest}, Limit: 2},
			[]string{"Query kind_by_time 3", "Query kind_by_time 3"}},
		{store.Filter{Connections: []string{store.DefaultConnection}, Limit: 2}, []string{"Query connection_by_time 3"}},
	} {
		p, err := s.List(ctx, c.f)
		if err != nil || len(p.Events) != 2 || p.NextCursor == "" {
			t.Fatalf("List(%+v) = %d events, next %q, %v", c.f, len(p.Events), p.NextCursor, err)
		}
		if got := rec.take(); !slices.Equal(got, c.want) {
			t.Errorf("List(%+v) called %v, want %v", c.f, got, c.want)
		}
	}
	// The filter of fewest values drives; 150 project ids are a filter of
	// two INs (at most 100 values each).
	many := make([]int64, 150)
	for i := range many {
		many[i] = int64(i + 1)
	}
	p, err := s.List(ctx, store.Filter{ProjectIDs: many, Kind: change.KindPipeline, Limit: 20})
	if err != nil || len(p.Events) != 15 {
		t.Fatalf("List by 150 projects and a kind = %d events, %v; want the 15 pipelines", len(p.Events), err)
	}
	if got := rec.take(); len(got) == 0 || got[0] != "Query kind_by_time 21" {
		t.Errorf("List by 150 projects and a kind called %v, want kind_by_time", got)
	}
	// since after the cursor's position: nothing, and no query DynamoDB
	// would refuse (BETWEEN with its bounds the wrong way round).
	first, _ := s.List(ctx, store.Filter{Limit: 1})
	p, err = s.List(ctx, store.Filter{Since: base(29).Add(time.Second), Cursor: first.NextCursor})
	if err != nil || len(p.Events) != 0 {
		t.Errorf("List since after the cursor = %d events, %v; want none", len(p.Events), err)
	}
	if got := rec.take(); len(got) != 1 {
		t.Errorf("the listing of the cursor and the empty range called %v; want the first page's query only", got)
	}

	// The other reads: no Scan either.
	s.Count(ctx, "")
	s.Count(ctx, change.KindPipeline)
	s.Versions(ctx, []string{"mr-1-0"})
	s.VersionsByPrefix(ctx, "mr-1-")
	s.ExportEvents(ctx, "", 10)
	s.ListAudit(ctx, store.AuditFilter{Job: "sync"})
	s.ListDeliveries(ctx, store.DeliveryFilter{Status: store.DeliveryPending})
	s.ListDeliveries(ctx, store.DeliveryFilter{})
	s.Projects(ctx)
	s.SyncStates(ctx)
	for _, op := range rec.take() {
		if strings.HasPrefix(op, "Scan") {
			t.Errorf("a read scanned the table: %s", op)
		}
	}
}
