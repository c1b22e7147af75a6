package ingest_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/gitlab"
	"github.com/labtrail/labtrail/internal/gitlabsim"
	"github.com/labtrail/labtrail/internal/ingest"
)

// TestIssueBackfillReadsNotesForSeveralPages: a backfill of 1,050 issues
// (11 pages) reads their notes in two GraphQL queries (seven pages a
// query), stores what a backfill by REST alone stores, field for field,
// and still reports progress page by page.
func TestIssueBackfillReadsNotesForSeveralPages(t *testing.T) {
	t.Parallel()
	const issues, pages = 1050, 11
	o := gitlabsim.Options{Seed: 8, Projects: 1, MRs: 2, Pipelines: 1, Issues: issues, Now: func() time.Time { return fixedNow }}
	byGraphQL, _ := newRigWith(t, o, nil)
	byREST, _ := newRigWith(t, o, func(c *gitlab.Config) { c.GraphQL = gitlab.GraphQLOff })
	var fetched []int
	byGraphQL.poller.Progress = func(pr ingest.Progress) {
		if pr.Kind == change.KindIssue {
			fetched = append(fetched, pr.Fetched)
		}
	}
	host := func(r *rig) string {
		ps, err := r.client.SelectProjects(context.Background(), gitlab.Selection{})
		if err != nil || len(ps.Projects) != 1 {
			t.Fatal(err, ps.Projects)
		}
		return strings.SplitN(strings.TrimPrefix(ps.Projects[0].WebURL, "http://"), "/", 2)[0]
	}
	for _, r := range []*rig{byGraphQL, byREST} {
		r.poller.Kinds = []change.Kind{change.KindIssue}
		r.sync(t)
		r.compare(t, change.KindIssue)
	}
	st := byGraphQL.sim.Stats()
	if n := st.ByPath["POST /api/graphql"]; n != 2 {
		t.Errorf("%d GraphQL requests, want 2: %v", n, st.ByPath)
	}
	if n := st.ByPath["GET /api/v4/projects/:id/issues/:issue_iid/notes"]; n != 0 {
		t.Errorf("%d REST notes requests beside GraphQL", n)
	}
	if n := byREST.sim.Stats().ByPath["GET /api/v4/projects/:id/issues/:issue_iid/notes"]; n < issues {
		t.Errorf("REST side: %d notes requests for %d issues", n, issues)
	}
	if len(fetched) != pages || fetched[len(fetched)-1] != issues {
		t.Errorf("progress reported at %v issues, want %d reports up to %d", fetched, pages, issues)
	}
	for i := 1; i < len(fetched); i++ {
		if d := fetched[i] - fetched[i-1]; d <= 0 || d > 100 {
			t.Errorf("progress went from %d to %d issues in one report", fetched[i-1], fetched[i])
		}
	}
	// The events, not their timelines: an issue's "closed" entry from its
	// system note is at GraphQL's whole second by GraphQL, to the
	// millisecond by REST, one query a page or several pages a query.
	stored := func(r *rig) map[string]string {
		out := map[string]string{}
		for _, k := range []change.Kind{change.KindIssue, change.KindNote} {
			eachStored(t, r.store, k, func(e change.Event) {
				b, err := json.Marshal(e)
				if err != nil {
					t.Fatal(err)
				}
				out[e.ID] = strings.ReplaceAll(string(b), host(r), "gitlab.host")
			})
		}
		return out
	}
	a, b := stored(byGraphQL), stored(byREST)
	if len(a) != len(b) || len(a) <= issues {
		t.Errorf("%d events by GraphQL, %d by REST", len(a), len(b))
	}
	diffs := 0
	for id, ea := range a {
		if eb := b[id]; ea != eb {
			if diffs++; diffs <= 5 {
				t.Errorf("%s differs\n GraphQL %s\n    REST %s", id, ea, eb)
			}
		}
	}
}
