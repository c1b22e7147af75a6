package gitlab

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labtrail/labtrail/internal/change"
	gl "gitlab.com/gitlab-org/api/client-go/v2"
	"golang.org/x/sync/errgroup"
)

// SyncKinds lists the kinds Fetch serves, in the order a sync should run
// them: merge requests and pipelines first, as the figures people look at
// most depend on them; jobs come with their pipelines and have no entry.
func SyncKinds() []change.Kind {
	return []change.Kind{
		change.KindMergeRequest, change.KindPipeline, change.KindCommit, change.KindIssue, change.KindNote,
		change.KindBranch, change.KindTag, change.KindRelease, change.KindDeployment, change.KindEnvironment, change.KindImage,
	}
}

// FetchOptions tune what Fetch asks for.
type FetchOptions struct {
	// Branches are the branches whose commits are fetched; empty: the
	// project's default branch.
	Branches []string
	// Known, if set, returns the updated_at the caller already stores for
	// each of ids (absent: not stored). Objects held at their listed
	// updated_at are left out: a time-paged walk re-reads the objects at
	// its boundary, and their details (approvals, diffs, jobs, notes) need
	// not be fetched again. Known is also asked, by id prefix, which
	// container image tags are stored: see KnownPrefix.
	Known func(ctx context.Context, ids []string) (map[string]time.Time, error)
	// KnownPrefix, if set, returns every stored id starting with prefix.
	// Images use it to skip the detail request of tags already stored;
	// FullSweep turns that off.
	KnownPrefix func(ctx context.Context, prefix string) (map[string]time.Time, error)
	// FullSweep re-reads the details of every container image tag, to catch
	// a tag pushed again with another digest.
	FullSweep bool
	// Now, if set, is the caller's clock. A walk that lists pages before
	// handing back earlier ones (merge requests and issues: their details
	// and notes come several pages at a time) stamps each such page's
	// events' ObservedAt with it, read just before the request that
	// listed the page: handed back later, they must not look newer than
	// they are.
	Now func() time.Time
}

// changedOnly drops the items the caller already stores at their listed
// updated_at (FetchOptions.Known).
func changedOnly[T any](ctx context.Context, opts FetchOptions, items []T, id func(T) string, updated func(T) time.Time) ([]T, error) {
	if opts.Known == nil || len(items) == 0 {
		return items, nil
	}
	ids := make([]string, len(items))
	for i, it := range items {
		ids[i] = id(it)
	}
	known, err := opts.Known(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("look up stored objects: %w", err)
	}
	out := items[:0:0]
	for i, it := range items {
		if at, ok := known[ids[i]]; ok && !at.Before(updated(it)) {
			continue
		}
		out = append(out, it)
	}
	return out, nil
}

// Fetch calls fn once per page with the events of kind in p changed on or
// after since (zero: all of them).
//
// Listings GitLab can order by update (merge requests, issues,
// deployments, and pipelines by REST) come oldest first and each
// Page.Cursor is the newest updated_at among the page's objects: storing
// the page, then saving its cursor, lets a later Fetch resume without
// gaps. Commits and commit notes come newest first from GitLab, and so do
// pipelines by GraphQL, so their pages keep Cursor at since until the last
// one, which carries the newest updated_at of the whole walk (for
// pipelines, the newest GitLab had when the walk began).
// Full listings (branch, tag, release, environment, image) ignore since
// and list everything; their cursor is the newest updated_at seen so far.
//
// Merge request pages also carry the MRs' notes (KindNote) and are enriched
// with their details (approvals, diff stats, commits); pipeline pages carry
// the pipelines' jobs (KindJob); issue pages carry the issues' notes. The
// details of merge requests and pipelines come in batches by GraphQL
// unless Config.GraphQL is off or GitLab does not allow it, by REST
// otherwise, with the same events either way (docs/kinds.md).
// KindNote itself fetches commit notes from the project's events.
//
// A feature turned off for p (issues, registry, repository, CI/CD) gives an
// error wrapping ErrFeatureDisabled; a project that is gone, ErrNotFound;
// lost access, ErrForbidden.
func (c *Client) Fetch(ctx context.Context, kind change.Kind, p Project, since time.Time, opts FetchOptions, fn func(Page) error) error {
	since = since.UTC()
	fn = c.checkedPages(p, fn)
	switch kind {
	case change.KindMergeRequest:
		return c.mergeRequests(ctx, p, since, &opts, fn)
	case change.KindPipeline:
		return c.pipelines(ctx, p, since, &opts, fn)
	case change.KindCommit:
		return c.commits(ctx, p, since, opts.Branches, fn)
	case change.KindIssue:
		return c.issues(ctx, p, since, opts, fn)
	case change.KindNote:
		return c.commitNotes(ctx, p, since, fn)
	case change.KindBranch:
		return c.branches(ctx, p, fn)
	case change.KindTag:
		return c.tags(ctx, p, fn)
	case change.KindRelease:
		return c.releases(ctx, p, fn)
	case change.KindDeployment:
		return c.deployments(ctx, p, since, fn)
	case change.KindEnvironment:
		return c.environments(ctx, p, fn)
	case change.KindImage:
		return c.images(ctx, p, opts, fn)
	case change.KindJob:
		return fmt.Errorf("gitlab: jobs are fetched with their pipelines (Fetch %s)", change.KindPipeline)
	}
	return fmt.Errorf("gitlab: cannot fetch kind %q", kind)
}

// listCall runs a request for a listing that belongs to one feature of p,
// so that a feature turned off reads as ErrFeatureDisabled.
func (c *Client) listCall(ctx context.Context, p Project, what string, fn func(...gl.RequestOptionFunc) (*gl.Response, error)) (*gl.Response, error) {
	resp, err := c.call(ctx, fmt.Sprintf("%s of %s", what, p.selector()), p.selector(), fn)
	if err != nil {
		return resp, c.feature(ctx, p, what, err)
	}
	return resp, nil
}

// getJSON is a GET of path (relative to /api/v4) with the query opt (a
// struct with url tags, or nil) into out, for endpoints whose client-go
// types lack fields labtrail needs.
func (c *Client) getJSON(path string, opt, out any) func(...gl.RequestOptionFunc) (*gl.Response, error) {
	return func(o ...gl.RequestOptionFunc) (*gl.Response, error) {
		req, err := c.gl.NewRequest(http.MethodGet, path, opt, o)
		if err != nil {
			return nil, err
		}
		return c.gl.Do(req, out)
	}
}

// walkPages follows a listing that cannot be paged by time from page 1 to
// its end: X-Next-Page, or the Link rel="next" of keyset pagination. It
// never computes pages from X-Total, which GitLab leaves out for large
// sets. A page that brings no item adds nothing and ends the walk.
func walkPages[T any](ctx context.Context, list func(ctx context.Context, page int64, extra []gl.RequestOptionFunc) ([]T, *gl.Response, error), each func([]T) error) error {
	page := int64(1)
	var extra []gl.RequestOptionFunc
	for {
		items, resp, err := list(ctx, page, extra)
		if err != nil {
			return err
		}
		if len(items) == 0 {
			return nil
		}
		if err := each(items); err != nil {
			return err
		}
		switch {
		case resp == nil:
			return nil
		case resp.NextLink != "":
			extra = []gl.RequestOptionFunc{gl.WithKeysetPaginationParameters(resp.NextLink)}
		case resp.NextPage > page:
			page = resp.NextPage
		default:
			return nil
		}
	}
}

// all collects every item of a listing; for the small sub-listings of one
// object (an MR's notes, a pipeline's jobs).
func all[T any](ctx context.Context, list func(ctx context.Context, page int64, extra []gl.RequestOptionFunc) ([]T, *gl.Response, error)) ([]T, error) {
	var out []T
	err := walkPages(ctx, list, func(items []T) error {
		out = append(out, items...)
		return nil
	})
	return out, err
}

// forEach runs fn for 0..n-1 on at most c.workers goroutines. The first
// error cancels the rest and is returned. Callers write results by index,
// so the output order does not depend on timing.
func (c *Client) forEach(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.workers)
	// gctx ends before ctx only when an item failed; then the rest are
	// not started (the group already holds the error to return).
	failed := func() bool { return gctx.Err() != nil && ctx.Err() == nil }
	for i := range n {
		if failed() {
			break
		}
		g.Go(func() error {
			if failed() {
				return nil
			}
			return fn(gctx, i)
		})
	}
	return g.Wait()
}

// optional tells whether a detail request's failure only means the detail
// is not there: the object went away since it was listed (404) or the
// token's user may not see that part (403). The object is still emitted,
// with what is known.
func optional(err error) bool {
	var e *apiError
	if !errors.As(err, &e) {
		return false
	}
	return (e.status == http.StatusNotFound) || (e.status == http.StatusForbidden && !e.scope)
}

// heldPages emits pages for listings that arrive newest first: each page
// goes out only when the next one has arrived, with Cursor at since, and
// the last one, at flush, carries the newest time of the whole walk. So a
// cursor saved mid-walk never passes an object not emitted yet.
type heldPages struct {
	kind   change.Kind
	since  time.Time
	fn     func(Page) error
	held   []change.Event
	newest time.Time
}

func (h *heldPages) add(events []change.Event, newest time.Time) error {
	if len(events) == 0 {
		return nil
	}
	h.newest = latest(h.newest, newest)
	if h.held != nil {
		if err := h.fn(Page{Kind: h.kind, Events: h.held, Cursor: h.since}); err != nil {
			return err
		}
	}
	h.held = events
	return nil
}

func (h *heldPages) flush() error {
	if h.held == nil {
		return nil
	}
	events := h.held
	h.held = nil
	return h.fn(Page{Kind: h.kind, Events: events, Cursor: latest(h.newest, h.since)})
}

// fullListing emits the pages of a listing that ignores since, with the
// newest updated_at seen so far as cursor so that it never goes back.
type fullListing struct {
	kind   change.Kind
	fn     func(Page) error
	cursor time.Time
}

func (f *fullListing) emit(events []change.Event) error {
	if len(events) == 0 {
		return nil
	}
	for _, e := range events {
		if e.Kind == f.kind {
			f.cursor = latest(f.cursor, e.UpdatedAt)
		}
	}
	return f.fn(Page{Kind: f.kind, Events: events, Cursor: f.cursor})
}

// excerpt cuts s to at most n runes, marking a cut with "…".
func excerpt(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// firstLine is the first non-empty line of s, shortened for a title.
func firstLine(s string, n int) string {
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			return excerpt(l, n)
		}
	}
	return ""
}

func stampOrNil(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return stamp(t)
}
