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
	w := &timeWalk[T]{key: key, since: since.UTC(), bound: since.UTC(), page: 1, seen: map[int64]time.Time{}}
	for {
		items, resp, err := list(ctx, w.bound, w.page)
		if err != nil {
			return err
		}
		pg, err := w.read(items)
		if err != nil {
			return err
		}
		if len(pg.fresh) > 0 {
			cursor := w.cursor(pg.newest)
			if err := emit(pg.fresh, cursor); err != nil {
				return err
			}
			w.lastCursor = cursor
		}
		next := int64(0)
		if resp != nil && resp.NextPage > w.page {
			next = resp.NextPage
		}
		more := false
		if w.tie {
			more = w.nextInTie(items, next, pg)
		} else {
			more = w.nextByTime(items, next, pg)
		}
		if !more {
			return nil
		}
	}
}

// timeWalk is where a walkByTime stands.
type timeWalk[T any] struct {
	key   func(T) (int64, time.Time)
	since time.Time
	bound time.Time // the updated_after of the next request
	page  int64
	// seen holds the updated_at of every emitted object that the current
	// bound can still return; an object updated since shows a new time
	// and is emitted again, as it should be.
	seen       map[int64]time.Time
	lastCursor time.Time

	tie       bool      // walking one second by offset
	second    time.Time // that second
	passFresh bool      // this pass over the tie emitted something
	passIDs   map[int64]bool
	lastPass  int // objects of the second the previous pass saw
}

// walkPage is what one page brought.
type walkPage[T any] struct {
	fresh  []T       // objects not emitted before, in their versions
	newest time.Time // the newest updated_at among fresh
	// beyond is the first object past the tie's second, zero if none.
	beyond    time.Time
	newInPass bool // an object of the tie this pass had not seen
}

// read sorts a page's objects into fresh ones and the rest, and refuses a
// listing that is not in updated_at order.
func (w *timeWalk[T]) read(items []T) (walkPage[T], error) {
	var pg walkPage[T]
	var prev time.Time
	for i, it := range items {
		id, at := w.key(it)
		if i > 0 && at.Before(prev) {
			return pg, fmt.Errorf("gitlab: listing is not ordered by updated_at (id %d at %s after %s); cannot page it by time",
				id, at.Format(time.RFC3339Nano), prev.Format(time.RFC3339Nano))
		}
		prev = at
		if at.Before(w.since) {
			continue // inside the filter's truncated second, but older than asked
		}
		if w.tie {
			if filterSecond(at).After(w.second) {
				if pg.beyond.IsZero() {
					pg.beyond = at
				}
				continue
			}
			if !w.passIDs[id] {
				w.passIDs[id] = true
				pg.newInPass = true
			}
		}
		if s, ok := w.seen[id]; ok && s.Equal(at) {
			continue
		}
		w.seen[id] = at
		pg.fresh = append(pg.fresh, it)
		if at.After(pg.newest) {
			pg.newest = at
		}
	}
	return pg, nil
}

// cursor is the Cursor of a page whose fresh objects' newest updated_at
// is newest.
func (w *timeWalk[T]) cursor(newest time.Time) time.Time {
	w.passFresh = true
	if w.tie {
		// An object shifted onto a page already read is older than what
		// was read after it, but not older than what was read before the
		// tie began: the cursor stays there.
		newest = latest(w.lastCursor, w.second, w.since)
	}
	return latest(newest, w.lastCursor)
}

// nextByTime sets up the request after a page read outside a tie, next
// being the page GitLab names as next (0: none); false means the walk is
// over.
func (w *timeWalk[T]) nextByTime(items []T, next int64, pg walkPage[T]) bool {
	if len(items) < perPage {
		return false
	}
	if _, last := w.key(items[len(items)-1]); filterSecond(last).After(filterSecond(w.bound)) {
		w.restart(last)
		return true
	}
	if next == 0 {
		return false
	}
	// A whole page within one second: walk that second by offset.
	w.tie, w.second, w.page = true, filterSecond(w.bound), next
	w.passFresh, w.lastPass = len(pg.fresh) > 0, -1
	w.passIDs = map[int64]bool{}
	for _, it := range items {
		id, _ := w.key(it)
		w.passIDs[id] = true
	}
	return true
}

// nextInTie sets up the request after a page of the tie: its next page,
// another pass over it, or the time past it.
func (w *timeWalk[T]) nextInTie(items []T, next int64, pg walkPage[T]) bool {
	// A page that shows no object new to this pass means the server is
	// not advancing; treat it as the end of the second.
	if pg.beyond.IsZero() && len(items) == perPage && next != 0 && pg.newInPass {
		w.page = next
		return true
	}
	if w.passFresh || len(w.passIDs) < w.lastPass {
		w.lastPass = len(w.passIDs)
		w.page, w.passFresh, w.passIDs = 1, false, map[int64]bool{}
		return true
	}
	w.tie = false
	if pg.beyond.IsZero() {
		return false
	}
	w.restart(pg.beyond)
	return true
}

// restart makes the next request the first page from bound.
func (w *timeWalk[T]) restart(bound time.Time) {
	w.bound, w.page = bound, 1
	prune(w.seen, bound)
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
