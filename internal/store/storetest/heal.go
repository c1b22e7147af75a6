package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/store"
)

// The upsert rule's authority of the poll (docs/architecture.md, "One
// history"), held for every backend.
var healTests = []struct {
	name string
	fn   func(t *testing.T, s store.Core)
}{
	{"HealForgedWebhook", testHealForgedWebhook},
	{"HealEqualTimeWebhook", testHealEqualTimeWebhook},
	{"HealWebhookSeenBeforePoll", testHealWebhookSeenBeforePoll},
	{"HealWebhookNeverBlanks", testHealWebhookNeverBlanks},
	{"HealTimelinePrecision", testHealTimelinePrecision},
	{"HealUnverified", testHealUnverified},
}

// observed is e seen by source at minute m.
func observed(e change.Event, source change.Source, m int) change.Event {
	e.Source, e.ObservedAt = source, at(m)
	return e
}

// A webhook dated 2100 with another state wins until the next poll, which
// overrules it whatever its updated_at and drops its timeline entries.
func testHealForgedWebhook(t *testing.T, s store.Core) {
	truth := mr(1, 1, 5)
	truth.Transitions = []change.Transition{{State: "opened", At: at(0)}}
	mustUpsert(t, s, observed(truth, change.SourcePoll, 6))

	forged := mr(1, 1, 5)
	forged.UpdatedAt = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
	forged.State, forged.Title, forged.OccurredAt = "closed", "forged", forged.UpdatedAt
	forged.Attrs = map[string]any{"closed_by": "mallory"}
	forged.Transitions = []change.Transition{{State: "opened", At: at(0)}, {State: "closed", At: forged.UpdatedAt}}
	wantResult(t, mustUpsert(t, s, observed(forged, change.SourceWebhook, 7)), 0, 1, 0)
	got, _ := mustGet(t, s, truth.ID)
	if got.State != "closed" || got.UpdatedAt.Year() != 2100 {
		t.Fatalf("forged webhook not stored: %+v", got)
	}

	wantResult(t, mustUpsert(t, s, observed(truth, change.SourcePoll, 8)), 0, 1, 0)
	got, tl := mustGet(t, s, truth.ID)
	want := truth
	want.Transitions = nil
	wantEvent(t, got, want)
	wantTimeline(t, truth.ID, tl, []entry{{"opened", at(0), change.SourcePoll}})
	// Healed for good: the same poll again changes nothing.
	wantResult(t, mustUpsert(t, s, observed(truth, change.SourcePoll, 9)), 0, 0, 1)
}

// A webhook with the stored updated_at and another state: the poll's
// version of that updated_at is GitLab's, so the state stays.
func testHealEqualTimeWebhook(t *testing.T, s store.Core) {
	truth := mr(1, 1, 5)
	truth.OccurredAt = at(0)
	truth.Transitions = []change.Transition{{State: "opened", At: at(0)}}
	mustUpsert(t, s, observed(truth, change.SourcePoll, 6))
	lie := mr(1, 1, 5)
	lie.State, lie.OccurredAt = "closed", at(5)
	lie.Attrs = map[string]any{"closed_by": "mallory"}
	lie.Transitions = []change.Transition{{State: "closed", At: at(5)}}
	wantResult(t, mustUpsert(t, s, observed(lie, change.SourceWebhook, 7)), 0, 0, 1)
	got, tl := mustGet(t, s, truth.ID)
	want := truth
	want.Transitions = nil
	wantEvent(t, got, want)
	wantTimeline(t, truth.ID, tl, []entry{{"opened", at(0), change.SourcePoll}})
}

// A webhook received before the poll read the object tells nothing newer,
// whatever updated_at it carries; one received after it wins by a newer
// updated_at, until a poll reads again.
func testHealWebhookSeenBeforePoll(t *testing.T, s store.Core) {
	truth := mr(1, 1, 5)
	mustUpsert(t, s, observed(truth, change.SourcePoll, 10))
	late := mr(1, 1, 6)
	late.State = "merged"
	wantResult(t, mustUpsert(t, s, observed(late, change.SourceWebhook, 9)), 0, 0, 1)
	got, _ := mustGet(t, s, truth.ID)
	wantEvent(t, got, truth)

	wantResult(t, mustUpsert(t, s, observed(late, change.SourceWebhook, 11)), 0, 1, 0)
	got, _ = mustGet(t, s, truth.ID)
	if got.State != "merged" || got.Source != change.SourceWebhook {
		t.Errorf("newer webhook received after the poll: %+v", got)
	}
	// A poll that read before that webhook arrived does not undo it.
	wantResult(t, mustUpsert(t, s, observed(truth, change.SourcePoll, 10)), 0, 0, 1)
}

// A webhook leaves what it does not carry as stored: the author, the
// attributes only the poller reads.
func testHealWebhookNeverBlanks(t *testing.T, s store.Core) {
	polled := mr(1, 1, 5)
	polled.Attrs = map[string]any{"approvals": []any{"bob"}, "additions": 3}
	mustUpsert(t, s, observed(polled, change.SourcePoll, 6))
	hook := mr(1, 1, 7)
	hook.State, hook.Author, hook.WebURL = "merged", "", ""
	hook.Attrs = map[string]any{"merged_at": "x"}
	wantResult(t, mustUpsert(t, s, observed(hook, change.SourceWebhook, 8)), 0, 1, 0)
	got, _ := mustGet(t, s, polled.ID)
	if got.Author != polled.Author || got.WebURL != polled.WebURL || got.State != "merged" {
		t.Errorf("webhook blanked fields: %+v", got)
	}
	if got.Attrs["additions"] != 3.0 || got.Attrs["merged_at"] != "x" || got.Attrs["approvals"] == nil {
		t.Errorf("attributes %v", got.Attrs)
	}
	// The next poll is GitLab's whole reading: webhook-only keys go.
	polled = mr(1, 1, 7)
	polled.State = "merged"
	polled.Attrs = map[string]any{"approvals": []any{"bob"}, "additions": 3, "merged_at": "y"}
	mustUpsert(t, s, observed(polled, change.SourcePoll, 9))
	got, _ = mustGet(t, s, polled.ID)
	if got.Attrs["merged_at"] != "y" || got.Source != change.SourcePoll {
		t.Errorf("after the poll: %+v", got)
	}
}

// A webhook's whole-second time and the poll's finer one of the same
// change make one entry, whichever arrives first.
func testHealTimelinePrecision(t *testing.T, s store.Core) {
	fine := base.Truncate(time.Second).Add(49 * time.Millisecond)
	for i, first := range []change.Source{change.SourcePoll, change.SourceWebhook} {
		e := mr(1, int64(i+1), 5)
		e.CreatedAt, e.OccurredAt = fine, fine
		e.Transitions = []change.Transition{{State: "opened", At: fine}}
		w := e
		w.Transitions = []change.Transition{{State: "opened", At: fine.Truncate(time.Second)}}
		a, b := observed(e, change.SourcePoll, 6), observed(w, change.SourceWebhook, 7)
		if first == change.SourceWebhook {
			a, b = observed(w, change.SourceWebhook, 6), observed(e, change.SourcePoll, 7)
		}
		mustUpsert(t, s, a)
		mustUpsert(t, s, b)
		_, tl := mustGet(t, s, e.ID)
		if len(tl) != 1 || tl[0].State != "opened" {
			t.Errorf("%s first: timeline %v, want one opened", first, tl)
		}
	}
}

// Unverified counts what a webhook stored that no poll has read since,
// and the earliest time to walk back to, which a forged created_at cannot
// move (GitLab never changes created_at). Both SQL backends offer it to
// the poller.
func testHealUnverified(t *testing.T, s store.Core) {
	u, ok := s.(interface {
		Unverified(ctx context.Context, projectID int64, kind change.Kind) (int, time.Time, error)
	})
	if !ok {
		t.Skip("store does not offer Unverified")
	}
	count := func(want int, wantAt time.Time) {
		t.Helper()
		n, earliest, err := u.Unverified(ctx(t), 1, change.KindMergeRequest)
		if err != nil || n != want || (want > 0 && !earliest.Equal(wantAt)) {
			t.Errorf("Unverified = %d, %v, %v; want %d, %v", n, earliest, err, want, wantAt)
		}
	}
	mustUpsert(t, s, observed(mr(1, 1, 5), change.SourcePoll, 6))
	count(0, time.Time{})
	forged := mr(1, 1, 9)
	forged.CreatedAt = at(8)
	mustUpsert(t, s, observed(forged, change.SourceWebhook, 7), observed(mr(2, 1, 5), change.SourceWebhook, 7))
	count(1, at(0))
	mustUpsert(t, s, observed(mr(1, 1, 5), change.SourcePoll, 8))
	count(0, time.Time{})
}
