package storetest

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/store"
)

// testFilters is the suite's entry for this file's cases, which share one
// store (the fixture is stored twice, which changes nothing).
func testFilters(t *testing.T, s store.Core) {
	t.Run("AnyOf", func(t *testing.T) { testListFiltersAnyOf(t, s) })
	t.Run("TimeRange", func(t *testing.T) { testListTimeRange(t, s) })
}

// expectAny is expect with the "any of" lists: each of kind, project id,
// project path, author and state matches if the event has any value of
// the field's single value and list together.
func expectAny(es []change.Event, f store.Filter) []string {
	in := func(one string, list []string, v string) bool {
		all := append([]string{one}, list...)
		all = slices.DeleteFunc(all, func(s string) bool { return s == "" })
		return len(all) == 0 || slices.Contains(all, v)
	}
	kinds := make([]string, len(f.Kinds))
	for i, k := range f.Kinds {
		kinds[i] = string(k)
	}
	projects := slices.DeleteFunc(append([]int64{f.ProjectID}, f.ProjectIDs...), func(id int64) bool { return id == 0 })
	var out []change.Event
	for _, e := range es {
		switch {
		case !in(string(f.Kind), kinds, string(e.Kind)),
			len(projects) > 0 && !slices.Contains(projects, e.ProjectID),
			!in(f.ProjectPath, f.ProjectPaths, e.ProjectPath),
			!in(f.Author, f.Authors, e.Author),
			!in(f.State, f.States, e.State),
			!f.Since.IsZero() && e.OccurredAt.Before(f.Since),
			!f.Until.IsZero() && !e.OccurredAt.Before(f.Until):
			continue
		}
		out = append(out, e)
	}
	sortNewestFirst(out)
	return ids(out)
}

// testListFiltersAnyOf: repeated values of one filter mean "any of", on
// every field, combined with the other fields and with paging.
func testListFiltersAnyOf(t *testing.T, s store.Core) {
	es := fixture()
	mustUpsert(t, s, es...)
	for _, c := range []struct {
		name string
		f    store.Filter
		n    int // how many the fixture has: guards against a vacuous match
	}{
		{"two kinds", store.Filter{Kinds: []change.Kind{change.KindPipeline, change.KindMergeRequest}}, 30},
		{"kind and kinds", store.Filter{Kind: change.KindPipeline, Kinds: []change.Kind{change.KindMergeRequest}}, 30},
		{"one kind in the list", store.Filter{Kinds: []change.Kind{change.KindPipeline}}, 15},
		{"kind repeated", store.Filter{Kind: change.KindPipeline, Kinds: []change.Kind{change.KindPipeline}}, 15},
		{"two authors", store.Filter{Authors: []string{"alice", "carol"}}, 20},
		{"author and unknown author", store.Filter{Authors: []string{"bob", "mallory"}}, 10},
		{"two states", store.Filter{States: []string{"merged", "closed"}}, 20},
		{"two project ids", store.Filter{ProjectIDs: []int64{1, 3}}, 20},
		{"project id and ids", store.Filter{ProjectID: 2, ProjectIDs: []int64{3}}, 20},
		{"two project paths", store.Filter{ProjectPaths: []string{"group/project-1", "group/project-2"}}, 20},
		{"path list and id list disagree", store.Filter{ProjectIDs: []int64{1}, ProjectPaths: []string{"group/project-2"}}, 0},
		{"any of, across fields", store.Filter{
			Kinds: []change.Kind{change.KindMergeRequest}, Authors: []string{"alice", "bob"},
			ProjectIDs: []int64{1, 2}, States: []string{"opened", "merged"}, Since: at(3), Until: at(27),
		}, -1},
		{"none match", store.Filter{Authors: []string{"mallory", "eve"}}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			want := expectAny(es, c.f)
			if c.n >= 0 && len(want) != c.n {
				t.Fatalf("fixture gives %d events for %+v, the case expects %d", len(want), c.f, c.n)
			}
			var got []string
			f := c.f
			f.Limit = 4
			for range 20 {
				p := mustList(t, s, f)
				got = append(got, ids(p.Events)...)
				if p.NextCursor == "" {
					break
				}
				f.Cursor = p.NextCursor
			}
			if !slices.Equal(got, want) {
				t.Errorf("List(%+v)\n got: %v\nwant: %v", c.f, got, want)
			}
		})
	}
}

// testListTimeRange: a filter time outside store.MinTime..MaxTime is
// refused with an error naming the range, before any query; times at the
// ends of the range are accepted.
func testListTimeRange(t *testing.T, s store.Core) {
	mustUpsert(t, s, fixture()...)
	for _, f := range []store.Filter{
		{Since: time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)},
		{Since: time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC)},
		{Until: time.Date(2263, 1, 1, 0, 0, 0, 0, time.UTC)},
		{Until: store.MaxTime.Add(time.Nanosecond)},
		{Since: store.MinTime.Add(-time.Nanosecond)},
	} {
		_, err := s.List(ctx(t), f)
		if err == nil {
			t.Errorf("List(%+v): no error", f)
			continue
		}
		if errors.Is(err, store.ErrInvalidCursor) {
			t.Errorf("List(%+v): %v, want a range error", f, err)
		}
	}
	p := mustList(t, s, store.Filter{Since: store.MinTime, Until: store.MaxTime})
	if len(p.Events) != 30 {
		t.Errorf("the whole range lists %d events, want 30", len(p.Events))
	}
	if err := store.CheckTime("x", store.MaxTime); err != nil {
		t.Errorf("CheckTime(MaxTime): %v", err)
	}
	// Upsert holds every backend to the same range: an event with a time
	// past it is refused and nothing of its call is stored.
	ok := mr(9, 9001, 1)
	bad := mr(9, 9002, 2)
	bad.CreatedAt = store.MaxTime.Add(time.Hour)
	if _, err := s.Upsert(ctx(t), ok, bad); err == nil || !strings.Contains(err.Error(), "storable range") {
		t.Errorf("Upsert of an event created after %s: %v, want a range error", store.MaxTime, err)
	}
	if _, _, err := s.Get(ctx(t), ok.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the refused call stored %s (err %v)", ok.ID, err)
	}
}
