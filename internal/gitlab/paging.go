package gitlab

import (
	"context"
	"fmt"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	gl "gitlab.com/gitlab-org/api/client-go/v2"
)

// Page is one fetched page of objects, converted.
type Page struct {
	Kind   change.Kind
	Events []change.Event
	// Cursor is the newest updated_at among the page's objects (while
	// walking more than a page of objects updated within one second, it
	// stays at the start of that run): once the page is stored, fetching
	// again from Cursor misses nothing.
	Cursor time.Time
}

// listFunc fetches one page of objects updated at or after `after` (zero:
// no filter), ordered by updated_at ascending; page counts from 1 within
// one value of after.
type listFunc[T any] func(ctx context.Context, after time.Time, page int64) ([]T, *gl.Response, error)

// walkByTime pages through a listing by time rather than by offset.
//
// GitLab's offset pages shift when objects are updated mid-walk: an object
// moving from page 3 to the end pushes another from page 3 onto page 2,
// already read, and a cursor saved after the walk would skip it forever.
// So each request restarts from the last updated_at seen (updated_after is
// inclusive) and drops what it has already emitted.
//
// Only when a whole page lies within the one second the filter can express
// (a "tie", e.g. after a bulk edit) does restarting not help; then it
// follows X-Next-Page through that second, emitting only objects of that
// second, and walks the second again until a pass finds nothing new and no
// fewer objects than the pass before: an object updated during a pass
// leaves the second and shifts an unread one onto a page already read.
// Objects past the second wait until the bound moves past it, so Cursor
// never goes backwards. (Offset pages cannot prove a tie complete while it
// changes; repeating passes makes a miss need a fresh coincidence each
// time.)
//
// emit gets each page's new objects (none new: not called) with the newest
// updated_at among them; within a tie, the cursor stays where it was when
// the tie began.
func walkByTime[T any](ctx context.Context, since time.Time, list listFunc[T], key func(T) (int64, time.Time), emit func([]T, time.Time) error) error {
	since = since.UTC()
	bound := since
	page := int64(1)
	// seen holds the updated_at of every emitted object that the current
	// bound can still return; an object updated since shows a new time
	// and is emitted again, as it should be.
	seen := map[int64]time.Time{}
	var lastCursor time.Time
	var (
		tie       bool      // walking one second by offset
		second    time.Time // that second
		passFresh bool      // this pass over the tie emitted something
		passIDs   map[int64]bool
		lastPass  = -1 // objects of the second the previous pass saw
	)
	for {
		items, resp, err := list(ctx, bound, page)
		if err != nil {
			return err
		}
		var fresh []T
		var cursor, prev, beyond time.Time
		newInPass := false
		for i, it := range items {
			id, at := key(it)
			if i > 0 && at.Before(prev) {
				return fmt.Errorf("gitlab: listing is not ordered by updated_at (id %d at %s after %s); cannot page it by time",
					id, at.Format(time.RFC3339Nano), prev.Format(time.RFC3339Nano))
			}
			prev = at
			if at.Before(since) {
				continue // inside the filter's truncated second, but older than asked
			}
			if tie {
				if filterSecond(at).After(second) {
					if beyond.IsZero() {
						beyond = at
					}
					continue
				}
				if !passIDs[id] {
					passIDs[id] = true
					newInPass = true
				}
			}
			if s, ok := seen[id]; ok && s.Equal(at) {
				continue
			}
			seen[id] = at
			fresh = append(fresh, it)
			if at.After(cursor) {
				cursor = at
			}
		}
		if len(fresh) > 0 {
			passFresh = true
			if tie {
				// An object shifted onto a page already read is older
				// than what was read after it, but not older than what
				// was read before the tie began: the cursor stays there.
				cursor = latest(lastCursor, second, since)
			}
			cursor = latest(cursor, lastCursor)
			if err := emit(fresh, cursor); err != nil {
				return err
			}
			lastCursor = cursor
		}
		hasNext := resp != nil && resp.NextPage > page

		if !tie {
			if len(items) < perPage {
				return nil
			}
			if _, last := key(items[len(items)-1]); filterSecond(last).After(filterSecond(bound)) {
				bound, page = last, 1
				prune(seen, bound)
				continue
			}
			if !hasNext {
				return nil
			}
			tie, second, page = true, filterSecond(bound), resp.NextPage
			passFresh, lastPass = len(fresh) > 0, -1
			passIDs = map[int64]bool{}
			for _, it := range items {
				id, _ := key(it)
				passIDs[id] = true
			}
			continue
		}

		// A page that shows no object new to this pass means the server
		// is not advancing; treat it as the end of the second.
		if beyond.IsZero() && len(items) == perPage && hasNext && newInPass {
			page = resp.NextPage
			continue
		}
		if passFresh || len(passIDs) < lastPass {
			lastPass = len(passIDs)
			page, passFresh, passIDs = 1, false, map[int64]bool{}
			continue
		}
		tie = false
		if beyond.IsZero() {
			return nil
		}
		bound, page = beyond, 1
		prune(seen, bound)
	}
}

func prune(seen map[int64]time.Time, bound time.Time) {
	for id, at := range seen {
		if at.Before(filterSecond(bound)) {
			delete(seen, id)
		}
	}
}

// filterSecond is the time GitLab actually filters on: client-go sends
// updated_after as RFC 3339 without fractions, truncating to the second.
func filterSecond(t time.Time) time.Time { return t.UTC().Truncate(time.Second) }

// afterParam is updated_after for a bound, nil for none.
func afterParam(after time.Time) *time.Time {
	if after.IsZero() {
		return nil
	}
	t := filterSecond(after)
	return &t
}
