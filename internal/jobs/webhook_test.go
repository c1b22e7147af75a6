package jobs_test

import (
	"context"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/gitlab"
	"github.com/labtrail/labtrail/internal/gitlabsim"
	"github.com/labtrail/labtrail/internal/ingest"
	"github.com/labtrail/labtrail/internal/jobs"
	"github.com/labtrail/labtrail/internal/server"
	"github.com/labtrail/labtrail/internal/store"
)

// TestWebhooksThenOnePollEqualTruth: the simulator's activity reaches
// labtrail by webhook, with 10% of deliveries lost, 5% sent twice and 5%
// out of order; one poll afterwards makes the store equal GitLab exactly.
func TestWebhooksThenOnePollEqualTruth(t *testing.T) { forEachBackend(t, testWebhooksThenOnePoll) }

func testWebhooksThenOnePoll(t *testing.T, b backend) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, _, newQueue := b.open(t)

	// labtrail's HTTP side first: the simulator needs its URL.
	api := server.New(st, quiet)
	front := httptest.NewServer(api)
	defer front.Close()

	sim := gitlabsim.New(gitlabsim.Options{
		Seed: 17, Projects: 3, MRs: 30, Pipelines: 30, Token: "tok",
		WebhookURL: front.URL + "/api/v1/webhooks/gitlab", WebhookSecret: "hook-secret",
		DropRate: 0.10, DuplicateRate: 0.05, ReorderRate: 0.05,
	})
	gl := httptest.NewServer(sim)
	defer gl.Close()
	cl, err := gitlab.New(gitlab.Config{URL: gl.URL, Token: "tok", RequestsPerMinute: 1 << 20, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	poller := &ingest.Poller{GitLab: cl, Store: st, Log: quiet}
	var converted, healed atomic.Int64
	conv := &ingest.Converter{Store: st, Log: quiet, OnBatch: func(r store.ConvertResult) { converted.Add(int64(len(r.Deliveries))) }}
	q, err := newQueue(ctx, jobs.Config{Poller: poller, Interval: time.Hour, Log: quiet, HealDelay: time.Hour, Converter: conv})
	if err != nil {
		t.Fatal(err)
	}
	conv.Heal = healCounter{q, &healed}
	wh, err := ingest.NewWebhookHandler(ingest.WebhookConfig{Secrets: []string{"hook-secret"}}, st, conv, quiet)
	if err != nil {
		t.Fatal(err)
	}
	api.EnableWebhooks(wh, conv.Replay)

	// Backfill by poll, then activity by webhook only.
	if res, err := poller.SyncAll(ctx); err != nil || res.Err() != nil {
		t.Fatal(err, res.Err())
	}
	if err := q.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer q.Stop(context.Background())
	convDone := make(chan struct{})
	go func() { conv.Run(ctx); close(convDone) }()
	defer func() { cancel(); <-convDone }()
	for i := 0; i < 8; i++ {
		sim.Advance()
	}
	if err := sim.FlushWebhooks(ctx); err != nil {
		t.Fatal(err)
	}
	stats := sim.Deliveries()
	if stats.Dropped == 0 || stats.Duplicated == 0 || stats.Reordered == 0 {
		t.Fatalf("faults not exercised: %+v", stats)
	}
	// Wait until every stored delivery is converted.
	deadline := time.Now().Add(60 * time.Second)
	for {
		p, err := st.ListDeliveries(ctx, store.DeliveryFilter{Status: store.DeliveryPending, Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Deliveries) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries still pending; %d converted", converted.Load())
		}
		time.Sleep(50 * time.Millisecond)
	}
	all, _ := st.ListDeliveries(ctx, store.DeliveryFilter{Limit: store.MaxLimit})
	kept := int64(0)
	for _, d := range all.Deliveries {
		if d.Status == store.DeliveryFailed {
			t.Errorf("delivery %d (%s) failed: %s", d.ID, d.EventType, d.LastError)
		}
		kept++
	}
	if want := stats.Hooks - stats.Dropped; kept != want {
		t.Errorf("%d deliveries stored, want %d (every hook sent once, duplicates folded)", kept, want)
	}
	fromHooks := 0
	for _, k := range []change.Kind{change.KindMergeRequest, change.KindPipeline} {
		p, _ := st.List(ctx, store.Filter{Kind: k, Limit: store.MaxLimit})
		for _, e := range p.Events {
			if e.Source == change.SourceWebhook {
				fromHooks++
			}
		}
	}
	if fromHooks == 0 {
		t.Error("no merge request or pipeline came in by webhook")
	}
	if healed.Load() == 0 {
		t.Error("no delivery scheduled its project's sync for the details its payload lacks")
	}

	// One poll heals what the lost deliveries missed.
	if res, err := poller.SyncAll(ctx); err != nil || res.Err() != nil {
		t.Fatal(err, res.Err())
	}
	want := map[string]time.Time{}
	for _, e := range sim.Truth() {
		want[e.ID] = e.UpdatedAt
	}
	got := map[string]time.Time{}
	for _, k := range change.Kinds {
		f := store.Filter{Kind: k, Limit: store.MaxLimit}
		for {
			p, err := st.List(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range p.Events {
				got[e.ID] = e.UpdatedAt
			}
			if p.NextCursor == "" {
				break
			}
			f.Cursor = p.NextCursor
		}
	}
	missing, extra, stale := 0, 0, 0
	for id, u := range want {
		g, ok := got[id]
		switch {
		case !ok:
			missing++
			if missing < 5 {
				t.Errorf("missing %s", id)
			}
		case !g.Equal(u):
			stale++
			if stale < 5 {
				t.Errorf("stale %s: have %s, GitLab %s", id, g, u)
			}
		}
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			extra++
			if extra < 5 {
				t.Errorf("extra %s", id)
			}
		}
	}
	if missing+extra+stale > 0 {
		t.Errorf("after one poll: %d missing, %d extra, %d stale of %d", missing, extra, stale, len(want))
	}
}

// healCounter is the queue as the converter's Healer, counting the syncs
// scheduled.
type healCounter struct {
	q *jobs.Queue
	n *atomic.Int64
}

func (h healCounter) HealProject(ctx context.Context, id int64, path string) error {
	h.n.Add(1)
	return h.q.HealProject(ctx, id, path)
}
