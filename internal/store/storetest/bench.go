package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/store"
)

// realistic is a merge request shaped like one from GitLab's API: a couple
// of dozen attributes, nested objects, a description of some length, and
// the transitions a poll would report.
func realistic(i int) change.Event {
	project := int64(1 + i%20)
	iid := int64(i)
	created := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute)
	updated := created.Add(90 * time.Minute)
	kind := change.KindMergeRequest
	id := change.MergeRequestID(project, iid)
	if i%2 == 1 {
		kind, id = change.KindPipeline, change.PipelineID(project, iid)
	}
	return change.Event{
		ID:          id,
		Kind:        kind,
		ProjectID:   project,
		ProjectPath: fmt.Sprintf("acme/service-%d", project),
		Title:       fmt.Sprintf("Resolve \"Flaky retry in payment webhook handler\" (#%d)", i),
		State:       "merged",
		Author:      fmt.Sprintf("dev%d", i%37),
		WebURL:      fmt.Sprintf("https://gitlab.example.com/acme/service-%d/-/merge_requests/%d", project, iid),
		Ref:         fmt.Sprintf("feature/retry-%d", i),
		SHA:         fmt.Sprintf("%040x", i),
		CreatedAt:   created,
		UpdatedAt:   updated,
		OccurredAt:  updated,
		Source:      change.SourcePoll,
		Attrs: map[string]any{
			"iid":                           iid,
			"description":                   "Retries used the wrong backoff and doubled charges under load.\n\nCloses #123. " + fmt.Sprint(i),
			"source_branch":                 fmt.Sprintf("feature/retry-%d", i),
			"target_branch":                 "main",
			"draft":                         false,
			"merge_status":                  "can_be_merged",
			"detailed_merge_status":         "mergeable",
			"user_notes_count":              i % 13,
			"upvotes":                       i % 3,
			"downvotes":                     0,
			"labels":                        []string{"backend", "bug", "payments"},
			"milestone":                     map[string]any{"id": 42, "title": "2025.1"},
			"assignees":                     []map[string]any{{"id": 7, "username": "alice"}, {"id": 9, "username": "bob"}},
			"reviewers":                     []map[string]any{{"id": 11, "username": "carol"}},
			"merged_by":                     map[string]any{"id": 7, "username": "alice"},
			"merge_commit_sha":              fmt.Sprintf("%040x", i*7),
			"squash":                        true,
			"has_conflicts":                 false,
			"blocking_discussions_resolved": true,
			"changes_count":                 fmt.Sprint(3 + i%40),
			"time_stats":                    map[string]any{"time_estimate": 0, "total_time_spent": 3600},
			"references":                    map[string]any{"short": fmt.Sprintf("!%d", iid), "full": fmt.Sprintf("acme/service-%d!%d", project, iid)},
		},
		Transitions: []change.Transition{
			{State: "opened", At: created},
			{State: "approved", At: created.Add(60 * time.Minute)},
			{State: "merged", At: updated},
		},
	}
}

// BenchUpsert stores batches of 100 realistic events into s, a new empty
// store, and reports events/s. Every backend runs it, so their figures
// compare.
func BenchUpsert(b *testing.B, s store.Core) {
	const batch = 100
	next := 0
	events := 0
	for b.Loop() {
		es := make([]change.Event, batch)
		for j := range es {
			es[j] = realistic(next)
			next++
		}
		r, err := s.Upsert(b.Context(), es...)
		if err != nil {
			b.Fatal(err)
		}
		if r.Inserted != batch {
			b.Fatalf("inserted %d of %d", r.Inserted, batch)
		}
		events += batch
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}

// BenchList pages by kind through 50,000 events stored in s, a new empty
// store, and reports events/s.
func BenchList(b *testing.B, s store.Core) { BenchListOf(b, s, 50_000) }

// BenchListOf is BenchList over stored events (a multiple of 1,000), for
// a backend too slow to fill with 50,000 in a benchmark's time.
func BenchListOf(b *testing.B, s store.Core, stored int) {
	for i := 0; i < stored; i += 1000 {
		es := make([]change.Event, 1000)
		for j := range es {
			es[j] = realistic(i + j)
		}
		if _, err := s.Upsert(b.Context(), es...); err != nil {
			b.Fatal(err)
		}
	}
	listed := 0
	f := store.Filter{Kind: change.KindPipeline, Limit: 100}
	for b.Loop() {
		p, err := s.List(b.Context(), f)
		if err != nil {
			b.Fatal(err)
		}
		if len(p.Events) != f.Limit {
			b.Fatalf("listed %d, want %d", len(p.Events), f.Limit)
		}
		listed += len(p.Events)
		// Walk forward through the pages, as a client would, then start over.
		f.Cursor = p.NextCursor
	}
	b.ReportMetric(float64(listed)/b.Elapsed().Seconds(), "events/s")
}

// Realistic is the i-th of a series of realistic events (a merge request
// or a pipeline, a minute apart, with attributes and transitions), for
// other packages' tests and benchmarks.
func Realistic(i int) change.Event { return realistic(i) }
