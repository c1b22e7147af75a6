package ingest_test

import (
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/gitlabsim"
	"github.com/labtrail/labtrail/internal/ingest"
)

// TestIssueBackfillReadsNotesForSeveralPages: a backfill of 1,050 issues
// (11 pages) through the poller reads their notes in two GraphQL queries
// (seven pages a query), stores what GitLab has, and still reports
// progress page by page. That the events equal REST's field for field is
// TestGraphQLAndRESTStoreTheSameEvents' (here, with timelines) and
// gitlab's TestIssueNotesSeveralPagesAQuery (1,050 issues, page by page).
func TestIssueBackfillReadsNotesForSeveralPages(t *testing.T) {
	t.Parallel()
	const issues, pages = 1050, 11
	o := gitlabsim.Options{Seed: 8, Projects: 1, MRs: 2, Pipelines: 1, Issues: issues, Now: func() time.Time { return fixedNow }}
	r, _ := newRigWith(t, o, nil)
	var fetched []int
	r.poller.Progress = func(pr ingest.Progress) {
		if pr.Kind == change.KindIssue {
			fetched = append(fetched, pr.Fetched)
		}
	}
	r.poller.Kinds = []change.Kind{change.KindIssue}
	r.sync(t)
	r.compare(t, change.KindIssue)
	st := r.sim.Stats()
	if n := st.ByPath["POST /api/graphql"]; n != 2 {
		t.Errorf("%d GraphQL requests, want 2: %v", n, st.ByPath)
	}
	if n := st.ByPath["GET /api/v4/projects/:id/issues/:issue_iid/notes"]; n != 0 {
		t.Errorf("%d REST notes requests beside GraphQL", n)
	}
	if len(fetched) != pages || fetched[len(fetched)-1] != issues {
		t.Errorf("progress reported at %v issues, want %d reports up to %d", fetched, pages, issues)
	}
	for i := 1; i < len(fetched); i++ {
		if d := fetched[i] - fetched[i-1]; d <= 0 || d > 100 {
			t.Errorf("progress went from %d to %d issues in one report", fetched[i-1], fetched[i])
		}
	}
	// The issues' notes, with every other kind's (the notes of the merge
	// requests and commits), equal GitLab's.
	r.poller.Kinds = nil
	r.sync(t)
	r.compare(t, change.Kinds...)
}
