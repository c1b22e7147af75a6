package gitlab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/gitlabsim"
)

// fullVars are the variables of an aliasedQuery of n fields with a full
// hundred iids in every field, at the first level's sizes.
func fullVars(n int) map[string]any {
	lists := make([][]string, n)
	for i := range lists {
		lists[i] = make([]string, perPage)
		for j := range lists[i] {
			lists[i][j] = strconv.Itoa(i*perPage + j + 1)
		}
	}
	return aliasedVars(Project{Path: "g/p"}, lists, perPage, perPage)
}

// checkAliasesFit: query(aliases) scores within GitLab's 250 by the
// simulator's scorer, query(aliases+1) would not, one field scores
// fieldCost (plus project's 1), and the text stays under GitLab's
// MAX_QUERY_SIZE.
func checkAliasesFit(t *testing.T, query func(n int) string, operation string, fieldCost, aliases int) {
	t.Helper()
	score := func(n int) int {
		t.Helper()
		c, _, ok := gitlabsim.Analyze(query(n), operation, fullVars(n))
		if !ok {
			t.Fatalf("the query with %d fields does not validate:\n%s", n, query(n))
		}
		return c
	}
	if got := score(1); got != fieldCost+1 {
		t.Errorf("one field scores %d, want %d", got-1, fieldCost)
	}
	if aliases < 2 {
		t.Errorf("%d fields a query", aliases)
	}
	if got := score(aliases); got > gitLabMaxComplexity {
		t.Errorf("%d fields score %d, over %d", aliases, got, gitLabMaxComplexity)
	}
	if got := score(aliases + 1); got <= gitLabMaxComplexity {
		t.Errorf("%d fields score %d, within %d: more fit", aliases+1, got, gitLabMaxComplexity)
	}
	if n := len(query(aliases)); n > 10_000 {
		t.Errorf("the query is %d characters, over GitLab's MAX_QUERY_SIZE", n)
	}
}

// TestIssueNotesAliasesFit: checkAliasesFit for issue notes.
func TestIssueNotesAliasesFit(t *testing.T) {
	checkAliasesFit(t, gqlIssueNotesQuery, "labtrailIssueNotes", issueNotesFieldCost, issueNotesAliases)
}

// simIssues serves a simulated project with n issues, through wrap if not
// nil, and returns a client (mod changes its configuration) and the
// project.
func simIssues(t *testing.T, n int, mod func(*Config), wrap func(http.Handler) http.Handler) (*gitlabsim.Sim, *Client, Project) {
	t.Helper()
	return simProject(t, gitlabsim.Options{Seed: 7, MRs: 2, Issues: n}, mod, wrap)
}

// simProject serves one simulated project of o (seed, merge requests,
// issues; one pipeline), through wrap if not nil, and returns a client
// (mod changes its configuration) and the project.
func simProject(t *testing.T, o gitlabsim.Options, mod func(*Config), wrap func(http.Handler) http.Handler) (*gitlabsim.Sim, *Client, Project) {
	t.Helper()
	now := time.Date(2025, 6, 2, 9, 0, 0, 0, time.UTC)
	o.Projects, o.Pipelines, o.Token, o.RateLimit, o.Now = 1, 1, testToken, 1<<30, func() time.Time { return now }
	sim := gitlabsim.New(o)
	var h http.Handler = sim
	if wrap != nil {
		h = wrap(sim)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	mods := []func(*Config){func(c *Config) { c.GraphQL = GraphQLAuto }}
	if mod != nil {
		mods = append(mods, mod)
	}
	c := newClient(t, srv.URL, new(syncBuffer), mods...)
	list, err := c.SelectProjects(context.Background(), Selection{})
	if err != nil || len(list.Projects) != 1 {
		t.Fatalf("projects %v, %v", list.Projects, err)
	}
	return sim, c, list.Projects[0]
}

// issuePages is a backfill's pages as JSON, one string a page, with the
// simulator's address replaced.
func issuePages(t *testing.T, c *Client, p Project) []string {
	t.Helper()
	return backfillPages(t, c, p, change.KindIssue)
}

// backfillPages is a backfill of kind's pages as JSON, one string a page,
// with the simulator's address replaced.
func backfillPages(t *testing.T, c *Client, p Project, kind change.Kind) []string {
	t.Helper()
	pages, err := collect(t, c, kind, p, time.Time{}, FetchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(pages))
	for i, pg := range pages {
		b, err := json.Marshal(pg)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = strings.ReplaceAll(string(b), c.base, "http://gitlab.host")
	}
	return out
}

const restNotes = "GET /api/v4/projects/:id/issues/:issue_iid/notes"

// TestIssueNotesSeveralPagesAQuery: a backfill of 1,050 issues (11 pages)
// reads their notes in ceil(11/7) GraphQL queries and gives the same
// pages, events and cursors as REST; so does one whose queries GitLab
// refuses as too complex until they shrink, and the shrinking is kept.
func TestIssueNotesSeveralPagesAQuery(t *testing.T) {
	const issues = 1050
	pages := (issues + perPage - 1) / perPage
	restSim, rest, p := simIssues(t, issues, func(c *Config) { c.GraphQL = GraphQLOff }, nil)
	want := issuePages(t, rest, p)
	if len(want) != pages {
		t.Fatalf("%d pages by REST, want %d", len(want), pages)
	}
	if n := restSim.Stats().ByPath[restNotes]; n < issues {
		t.Fatalf("%d REST notes requests for %d issues", n, issues)
	}
	for _, tc := range []struct {
		name          string
		maxComplexity int
		graphql       func(n int64) bool // the number of GraphQL requests is right
		// aliases and level of the plan afterwards
		aliases, level int
	}{
		{name: "GitLab's limit", aliases: issueNotesAliases,
			graphql: func(n int64) bool { return n == int64((pages+issueNotesAliases-1)/issueNotesAliases) }},
		// Seven fields (232) are refused, three (100) pass: the first seven
		// pages' issues (694: a walk's page after the first re-reads its
		// last second) in 300, 300 and 94, then three pages in one query
		// and the last one alone.
		{name: "three fields allowed", maxComplexity: 150, aliases: 3,
			graphql: func(n int64) bool { return n == 1+3+1+1 }},
		// Seven and three fields refused, then one at 100, 50 and 20
		// issues; 5 issues with 10 notes each score 20: a query per 5
		// issues, or fewer at the end of a flush.
		{name: "one small field allowed", maxComplexity: 20, aliases: 1, level: len(graphQLLevels) - 1,
			graphql: func(n int64) bool { return n >= 2+3+issues/5 && n <= int64(2+3+issues/5+pages) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim, c, p := simIssues(t, issues, nil, nil)
			sim.SetGraphQLMaxComplexity(tc.maxComplexity)
			got := issuePages(t, c, p)
			st := sim.Stats()
			if n := st.ByPath["POST /api/graphql"]; !tc.graphql(n) {
				t.Errorf("%d GraphQL requests", n)
			}
			if n := st.ByPath[restNotes]; tc.level == 0 && n != 0 {
				t.Errorf("%d REST notes requests", n)
			}
			if a, l := c.issuePlan.aliases(), int(c.issuePlan.level.Load()); a != tc.aliases || l != tc.level {
				t.Errorf("plan left at %d fields, level %d; want %d, %d", a, l, tc.aliases, tc.level)
			}
			if len(got) != len(want) {
				t.Fatalf("%d pages, want %d", len(got), len(want))
			}
			for i := range want {
				if got[i] != want[i] {
					t.Errorf("page %d differs from REST's:\n%.600s\nwant\n%.600s", i+1, got[i], want[i])
				}
			}
		})
	}
}

// TestIssueNotesQueryText: n fields, i0 to i<n-1>, each with its own
// iids variable.
func TestIssueNotesQueryText(t *testing.T) {
	q := gqlIssueNotesQuery(3)
	for i := range 3 {
		for _, s := range []string{fmt.Sprintf("$iids%d: [String!]", i), fmt.Sprintf("i%d: issues(iids: $iids%d, first: $first)", i, i)} {
			if !strings.Contains(q, s) {
				t.Errorf("query lacks %q:\n%s", s, q)
			}
		}
	}
	if strings.Contains(q, "$iids3") || strings.Contains(q, "i3:") {
		t.Errorf("query has a fourth field:\n%s", q)
	}
}

// TestIssueNotesMoreThanAPage: an issue whose notes fill more than the
// page GraphQL gives (here GitLab's answer is made to say so for issue
// #5) has its notes read by REST, the others not; the pages are REST's.
func TestIssueNotesMoreThanAPage(t *testing.T) {
	const issues = 250
	_, rest, p := simIssues(t, issues, func(c *Config) { c.GraphQL = GraphQLOff }, nil)
	want := issuePages(t, rest, p)
	sim, c, p := simIssues(t, issues, nil, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/api/graphql" {
				h.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			var body map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Error(err)
			}
			data, _ := body["data"].(map[string]any)
			project, _ := data["project"].(map[string]any)
			for _, field := range project {
				for _, n := range field.(map[string]any)["nodes"].([]any) {
					if n := n.(map[string]any); n["iid"] == "5" {
						notes := n["notes"].(map[string]any)
						notes["pageInfo"] = map[string]any{"hasNextPage": true, "endCursor": "abc"}
						if nodes := notes["nodes"].([]any); len(nodes) > 0 {
							notes["nodes"] = nodes[:len(nodes)-1]
						}
					}
				}
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(body)
		})
	})
	got := issuePages(t, c, p)
	st := sim.Stats()
	if n := st.ByPath["POST /api/graphql"]; n != 1 {
		t.Errorf("%d GraphQL requests, want 1", n)
	}
	if n := st.ByPath[restNotes]; n != 1 {
		t.Errorf("%d REST notes requests, want 1 (issue #5)", n)
	}
	if !slices.Equal(got, want) {
		t.Errorf("pages differ from REST's:\n%.2000v\nwant\n%.2000v", got, want)
	}
}

// TestIssueNotesHeldPagesOnFailure: when the walk fails on a later page,
// the pages it held are still emitted, with their notes, before the
// error.
func TestIssueNotesHeldPagesOnFailure(t *testing.T) {
	const issues = 1050
	_, rest, p := simIssues(t, issues, func(c *Config) { c.GraphQL = GraphQLOff }, nil)
	want := issuePages(t, rest, p)
	var listings atomic.Int32
	sim, c, p := simIssues(t, issues, nil, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/issues") && listings.Add(1) == 4 {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = w.Write([]byte(`{"message":"401 Unauthorized"}`))
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	pages, err := collect(t, c, change.KindIssue, p, time.Time{}, FetchOptions{})
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("error %v, want %v", err, ErrUnauthorized)
	}
	if len(pages) != 3 {
		t.Fatalf("%d pages emitted, want the 3 read before the failure", len(pages))
	}
	for i, pg := range pages {
		b, _ := json.Marshal(pg)
		if got := strings.ReplaceAll(string(b), c.base, "http://gitlab.host"); got != want[i] {
			t.Errorf("page %d differs from REST's", i+1)
		}
	}
	if n := sim.Stats().ByPath["POST /api/graphql"]; n != 1 {
		t.Errorf("%d GraphQL requests, want 1", n)
	}
}

// TestIssueNotesHeldPagesObserved: a held page is handed back after later
// pages were listed, so it carries its own observation time: the caller's
// clock just before the request that listed it, not when it is handed
// back.
func TestIssueNotesHeldPagesObserved(t *testing.T) {
	const issues = 1050
	var (
		mu     sync.Mutex
		ticks  int
		listed []time.Time // when GitLab got each listing request
	)
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	now := func() time.Time { // one second further each time it is read
		mu.Lock()
		defer mu.Unlock()
		ticks++
		return base.Add(time.Duration(ticks) * time.Second)
	}
	_, c, p := simIssues(t, issues, nil, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/issues") {
				at := now()
				mu.Lock()
				listed = append(listed, at)
				mu.Unlock()
			}
			h.ServeHTTP(w, r)
		})
	})
	var observed, handedBack []time.Time
	err := c.Fetch(context.Background(), change.KindIssue, p, time.Time{}, FetchOptions{Now: now}, func(pg Page) error {
		at := pg.Events[0].ObservedAt
		for _, e := range pg.Events {
			if !e.ObservedAt.Equal(at) {
				t.Errorf("%s observed at %v, its page at %v", e.ID, e.ObservedAt, at)
			}
		}
		observed = append(observed, at)
		handedBack = append(handedBack, now())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(observed) != len(listed) || len(listed) != (issues+perPage-1)/perPage {
		t.Fatalf("%d pages, %d listing requests", len(observed), len(listed))
	}
	for k, at := range observed {
		if !at.Before(listed[k]) || k > 0 && !at.After(listed[k-1]) {
			t.Errorf("page %d observed at %v; listed at %v, the one before at %v", k+1, at, listed[k], listed[max(k-1, 0)])
		}
	}
	// The point: the second page was listed before the first was handed
	// back.
	if !observed[1].Before(handedBack[0]) {
		t.Errorf("pages were not held: page 2 observed at %v, page 1 handed back at %v", observed[1], handedBack[0])
	}
}
