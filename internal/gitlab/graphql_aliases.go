package gitlab

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	gl "gitlab.com/gitlab-org/api/client-go/v2"
)

// Several pages in one GraphQL query. GitLab scores a connection filtered
// by iids without its per-node factor (Resolvers::BaseResolver), so one
// query can carry several aliased fields of a hundred iids each, as many
// as GitLab's complexity limit allows: the notes of seven pages of issues,
// the details of four pages of merge requests. A walk holds its pages
// until it has that many objects (heldWalk), then asks once.

// gitLabMaxComplexity is GitLab's AUTHENTICATED_MAX_COMPLEXITY.
const gitLabMaxComplexity = 250

// aliasesWithin is how many fields scoring fieldCost each fit one query
// within GitLab's limit, project (a resolver, 1 more) included.
func aliasesWithin(fieldCost int) int { return max(1, (gitLabMaxComplexity-1)/fieldCost) }

// aliasedPlan is a graphQLPlan whose queries carry several aliased fields
// of a page each: most at first, halved when GitLab refuses a query of
// several fields, before the page sizes shrink.
type aliasedPlan struct {
	graphQLPlan
	most  int
	fewer atomic.Int32 // halvings of most so far
}

func (g *aliasedPlan) aliases() int { return max(1, g.most>>g.fewer.Load()) }

// hold is how many objects a walk gathers before asking for g's details:
// what one query carries, 0 when they go by REST.
func (c *Client) hold(g *aliasedPlan) int {
	if !c.graphQLFor(&g.graphQLPlan) {
		return 0
	}
	size, _, _ := g.sizes()
	return size * g.aliases()
}

// aliasedQuery is the text of a query named name over the iids in
// $iids0…$iids<n-1>: one field alias<i>: field(iids: $iids<i>, first:
// $first) { nodes { <nodes> } } per list, then fragments. The iids only
// ever travel as variables; the text depends on n alone.
func aliasedQuery(name, alias, field, nodes string, n int, fragments ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "query %s($project: ID!, $first: Int, $nested: Int", name)
	for i := range n {
		fmt.Fprintf(&b, ", $iids%d: [String!]", i)
	}
	b.WriteString(") {\n  project(fullPath: $project) {\n")
	for i := range n {
		fmt.Fprintf(&b, "    %s%d: %s(iids: $iids%d, first: $first) { nodes { %s } }\n", alias, i, field, i, nodes)
	}
	b.WriteString("  }\n}\n")
	for _, f := range fragments {
		b.WriteString(f)
		b.WriteString("\n")
	}
	return b.String()
}

// aliasedVars are the variables of an aliasedQuery for lists.
func aliasedVars(p Project, lists [][]string, size, nested int) map[string]any {
	vars := map[string]any{"project": p.Path, "first": size, "nested": nested}
	for i, iids := range lists {
		vars["iids"+strconv.Itoa(i)] = iids
	}
	return vars
}

// aliasedAnswer is the data of an aliasedQuery: its fields by alias; nil
// when GitLab shows no such project to the token (REST will tell what is
// wrong).
type aliasedAnswer[N any] struct {
	Project map[string]*struct {
		Nodes []N `json:"nodes"`
	} `json:"project"`
}

// eachNode calls fn with every node of every field and its iid (iidOf,
// parsed); what names the objects in an error.
func (a *aliasedAnswer[N]) eachNode(what string, iidOf func(*N) string, fn func(n *N, iid int64) error) error {
	for _, field := range a.Project {
		if field == nil {
			continue
		}
		for i := range field.Nodes {
			n := &field.Nodes[i]
			iid, err := strconv.ParseInt(iidOf(n), 10, 64)
			if err != nil {
				return fmt.Errorf("gitlab: %s iid %q from GraphQL: %w", what, iidOf(n), err)
			}
			if err := fn(n, iid); err != nil {
				return err
			}
		}
	}
	return nil
}

// listsLen is the number of iids in lists.
func listsLen(lists [][]string) int {
	n := 0
	for _, iids := range lists {
		n += len(iids)
	}
	return n
}

// uniqueIIDs lists the iids of items once each, in order: an object
// updated while the walk went on comes twice, once a version.
func uniqueIIDs[T any](items []T, iid func(T) int64) []string {
	var out []string
	seen := map[int64]bool{}
	for _, it := range items {
		if n := iid(it); !seen[n] {
			seen[n] = true
			out = append(out, strconv.FormatInt(n, 10))
		}
	}
	return out
}

// aliasedBatches runs batch over iids while g's details go by GraphQL, in
// queries of up to g.aliases() lists of g's page size. A query GitLab
// refuses as too complex is asked again with fewer fields, then with
// smaller pages. It returns what graphQLFailed makes of another failure;
// what is left is for REST.
func aliasedBatches(c *Client, g *aliasedPlan, p Project, iids []string, batch func(lists [][]string, size, nested int) error) error {
	for len(iids) > 0 && c.graphQLFor(&g.graphQLPlan) {
		level, fewer := int(g.level.Load()), g.fewer.Load()
		size, nested, _ := g.sizes()
		chunk := iids[:min(len(iids), size*g.aliases())]
		var lists [][]string
		for rest := chunk; len(rest) > 0; rest = rest[min(size, len(rest)):] {
			lists = append(lists, rest[:min(size, len(rest))])
		}
		err := batch(lists, size, nested)
		if errors.Is(err, errGraphQLRefused) {
			c.log.Info("GitLab refused a GraphQL query as too complex; asking for less", "project", p.selector(), "reason", err.Error())
			if len(lists) > 1 {
				g.fewer.CompareAndSwap(fewer, fewer+1)
			} else {
				g.shrink(level)
			}
			continue
		}
		if err != nil {
			return c.graphQLFailed(&g.graphQLPlan, err)
		}
		iids = iids[len(chunk):]
	}
	return nil
}

// heldWalk walks a listing by time (walkByTime) for a kind whose objects
// are completed several pages at a time: it keeps the objects that
// changed (changedOnly) and holds its pages until it has hold() objects,
// or another page might not fit, or the walk ends; then complete converts
// them all, an []Event per object, and the held pages go to fn in walk
// order, each with its own cursor, so no page's cursor passes an object
// not yet stored, and observed when it was listed (FetchOptions.Now). A
// hold of 0 hands every page back as it comes. A walk that fails on a
// later page still hands back what it holds.
func heldWalk[T any](ctx context.Context, kind change.Kind, since time.Time, opts FetchOptions, list listFunc[T],
	key func(T) (int64, time.Time), id func(T) string, hold func() int,
	complete func([]T) ([][]change.Event, error), fn func(Page) error) error {
	var listed time.Time // just before the last listing request, by opts.Now
	stamped := func(ctx context.Context, after time.Time, page int64) ([]T, *gl.Response, error) {
		if opts.Now != nil {
			listed = opts.Now()
		}
		return list(ctx, after, page)
	}
	type heldPage struct {
		items    []T
		cursor   time.Time
		observed time.Time
	}
	var held []heldPage
	heldItems := 0
	flush := func() error {
		pages := held
		held, heldItems = nil, 0
		var all []T
		for _, pg := range pages {
			all = append(all, pg.items...)
		}
		events, err := complete(all)
		if err != nil {
			return err
		}
		for _, pg := range pages {
			var evs []change.Event
			for range pg.items {
				evs = append(evs, events[0]...)
				events = events[1:]
			}
			for i := range evs {
				if evs[i].ObservedAt.IsZero() {
					evs[i].ObservedAt = pg.observed
				}
			}
			if err := fn(Page{Kind: kind, Events: evs, Cursor: pg.cursor}); err != nil {
				return err
			}
		}
		return nil
	}
	emitFailed := false // the walk's error, if any, is emit's own
	err := walkByTime(ctx, since, stamped, key, func(items []T, cursor time.Time) error {
		items, err := changedOnly(ctx, opts, items, id, func(it T) time.Time { _, at := key(it); return at })
		if err != nil {
			emitFailed = true
			return err
		}
		held = append(held, heldPage{items: items, cursor: cursor, observed: listed})
		heldItems += len(items)
		if heldItems+perPage > hold() {
			if err := flush(); err != nil {
				emitFailed = true
				return err
			}
		}
		return nil
	})
	if emitFailed || len(held) == 0 {
		return err
	}
	ferr := flush()
	if err == nil || ferr == nil {
		return cmp.Or(err, ferr)
	}
	return errors.Join(err, ferr)
}
