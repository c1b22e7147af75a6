package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/gitlab"
	"github.com/labtrail/labtrail/internal/gitlabsim"
	"github.com/labtrail/labtrail/internal/ingest"
	"github.com/labtrail/labtrail/internal/store"
	"github.com/labtrail/labtrail/internal/store/sqlite"
)

// graphQLLog records the GraphQL requests a client sends.
type graphQLLog struct {
	next http.RoundTripper
	mu   sync.Mutex
	vars []map[string]any
}

func (g *graphQLLog) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Path, "/api/graphql") && r.Body != nil {
		b, _ := io.ReadAll(r.Body)
		_ = r.Body.Close()
		r.Body = io.NopCloser(bytes.NewReader(b))
		var body struct {
			Variables map[string]any `json:"variables"`
		}
		_ = json.Unmarshal(b, &body)
		g.mu.Lock()
		g.vars = append(g.vars, body.Variables)
		g.mu.Unlock()
	}
	return g.next.RoundTrip(r)
}

func (g *graphQLLog) take() []map[string]any {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := g.vars
	g.vars = nil
	return out
}

// newRigWith is newRig with the client's configuration changed by mod and
// its GraphQL requests logged.
func newRigWith(t testing.TB, o gitlabsim.Options, mod func(*gitlab.Config)) (*rig, *graphQLLog) {
	t.Helper()
	o.Token = "tok"
	if o.RateLimit == 0 {
		o.RateLimit = 1 << 30
	}
	sim := gitlabsim.New(o)
	ts := httptest.NewServer(sim)
	t.Cleanup(ts.Close)
	log := &graphQLLog{next: http.DefaultTransport}
	cfg := gitlab.Config{URL: ts.URL, Token: "tok", RequestsPerMinute: 1 << 20, Logger: quiet,
		HTTPClient: &http.Client{Transport: log}}
	if mod != nil {
		mod(&cfg)
	}
	cl, err := gitlab.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "l.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	// The poller's clock is the simulator's, so that its activity gating
	// sees the simulated activity as recent.
	return &rig{sim: sim, client: cl, store: st, poller: &ingest.Poller{GitLab: cl, Store: st, Log: quiet, Now: o.Now}}, log
}

func (r *rig) sync(t testing.TB) {
	t.Helper()
	res, err := r.poller.SyncAll(context.Background())
	if err != nil || res.Err() != nil {
		t.Fatal(err, res.Err())
	}
}

// restDetails counts the requests to the per-object REST endpoints that
// GraphQL replaces: a merge request's details, a pipeline's detail and
// all its jobs. (A pipeline's failed jobs, for the failure reasons
// GraphQL lacks, are counted apart.)
func restDetails(st gitlabsim.Stats) int64 {
	var n int64
	for path, c := range st.ByPath {
		if strings.Contains(path, "/merge_requests/:merge_request_iid/") || strings.HasSuffix(path, "/pipelines/:pipeline_id") {
			n += c
		}
	}
	return n + jobsOfPipelines(st)
}

func jobsOfPipelines(st gitlabsim.Stats) int64 {
	return st.ByPath["GET /api/v4/projects/:id/pipelines/:pipeline_id/jobs"]
}

var fixedNow = time.Date(2025, 6, 2, 9, 0, 0, 0, time.UTC)

// TestSyncEqualsTruthWithAndWithoutGraphQL syncs a world and three steps of
// activity by GraphQL, from a GitLab without GraphQL, with labtrail set to
// REST, and from a GitLab that refuses labtrail's queries as too complex:
// every time the store equals the truth.
func TestSyncEqualsTruthWithAndWithoutGraphQL(t *testing.T) {
	world := gitlabsim.Options{Seed: 5, Projects: 2, MRs: 30, Pipelines: 30, Issues: 4}
	for _, tc := range []struct {
		name string
		sim  func(*gitlabsim.Options)
		cfg  func(*gitlab.Config)
		// GraphQL requests in the first sync at most, and whether REST
		// details are used.
		graphql func(n int64) bool
		rest    bool
	}{
		{name: "GraphQL", graphql: func(n int64) bool { return n > 0 }},
		{name: "GitLab without GraphQL", sim: func(o *gitlabsim.Options) { o.NoGraphQL = true },
			graphql: func(n int64) bool { return n == 1 }, rest: true},
		{name: "labtrail set to REST", cfg: func(c *gitlab.Config) { c.GraphQL = gitlab.GraphQLOff },
			graphql: func(n int64) bool { return n == 0 }, rest: true},
		// Every page size refused once per query kind, then REST; a
		// query of several fields is refused with fewer fields first
		// (merge requests: 30 at a size of 20 are two fields, then one:
		// 6 queries); the issue notes of the last size (5 issues, 10
		// notes) pass, one query per project, and so do the container
		// image tags (20 a page score 16), one query per project.
		{name: "queries refused as too complex", sim: func(o *gitlabsim.Options) { o.GraphQLMaxComplexity = 20 },
			graphql: func(n int64) bool { return n == 6+4+3+2+2 }, rest: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := world
			o.Now = func() time.Time { return fixedNow }
			if tc.sim != nil {
				tc.sim(&o)
			}
			r, _ := newRigWith(t, o, tc.cfg)
			r.sync(t)
			st := r.sim.Stats()
			if n := st.ByPath["POST /api/graphql"]; !tc.graphql(n) {
				t.Errorf("%d GraphQL requests", n)
			}
			if n := restDetails(st); (n > 0) != tc.rest {
				t.Errorf("%d REST detail requests; REST expected: %v", n, tc.rest)
			}
			r.compare(t, change.Kinds...)
			for range 3 {
				r.sim.Advance()
			}
			r.sync(t)
			r.compare(t, change.Kinds...)
			t.Logf("%d requests: %v", r.sim.Stats().Requests, r.sim.Stats().ByPath)
		})
	}
}

// storedEvents reads every stored event with its timeline, as JSON with
// the simulator's address replaced, by id.
func storedEvents(t *testing.T, r *rig, host string) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	for _, k := range []change.Kind{change.KindMergeRequest, change.KindIssue, change.KindNote, change.KindPipeline, change.KindJob, change.KindImage} {
		f := store.Filter{Kind: k, Limit: store.MaxLimit}
		for {
			p, err := r.store.List(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range p.Events {
				_, tl, err := r.store.Get(ctx, e.ID)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := json.Marshal(struct {
					Event    change.Event
					Timeline []change.TimelineEntry
				}{e, tl})
				out[e.ID] = strings.ReplaceAll(string(b), host, "gitlab.host")
			}
			if p.NextCursor == "" {
				break
			}
			f.Cursor = p.NextCursor
		}
	}
	return out
}

// TestGraphQLAndRESTStoreTheSameEvents syncs one world twice, by GraphQL
// and from a GitLab without it, and compares every stored event and its
// timeline field for field: what labtrail keeps does not depend on the
// API it came by.
func TestGraphQLAndRESTStoreTheSameEvents(t *testing.T) {
	t.Parallel()
	o := gitlabsim.Options{Seed: 11, Projects: 1, MRs: 40, Pipelines: 60, Issues: 40,
		Now: func() time.Time { return fixedNow }}
	byGraphQL, _ := newRigWith(t, o, nil)
	o.NoGraphQL = true
	byREST, _ := newRigWith(t, o, nil)
	// The kinds whose details come by GraphQL, with their notes and jobs,
	// and container image tags with their digests and sizes.
	for _, r := range []*rig{byGraphQL, byREST} {
		r.poller.Kinds = []change.Kind{change.KindMergeRequest, change.KindIssue, change.KindPipeline, change.KindImage}
	}
	hostOf := func(r *rig) string {
		ps, err := r.client.SelectProjects(context.Background(), gitlab.Selection{})
		if err != nil || len(ps.Projects) == 0 {
			t.Fatal(err)
		}
		u := ps.Projects[0].WebURL
		return strings.SplitN(strings.TrimPrefix(u, "http://"), "/", 2)[0]
	}
	for round := range 2 {
		byGraphQL.sync(t)
		byREST.sync(t)
		// (A changed pipeline that failed has its failed jobs read by
		// REST, for the failure reasons GraphQL lacks.)
		if st := byGraphQL.sim.Stats(); st.ByPath["POST /api/graphql"] == 0 || restDetails(st)-jobsOfPipelines(st) != 0 {
			t.Fatalf("round %d: the GraphQL side did not use GraphQL: %v", round, byGraphQL.sim.Stats().ByPath)
		}
		a, b := storedEvents(t, byGraphQL, hostOf(byGraphQL)), storedEvents(t, byREST, hostOf(byREST))
		if n := byGraphQL.sim.Stats().ByPath["GET /api/v4/projects/:id/registry/repositories/:repository_id/tags/:tag_name"]; round == 0 && n != 0 {
			t.Errorf("round 0: %d REST requests for a tag's details beside GraphQL", n)
		}
		images := 0
		for id := range a {
			if strings.HasPrefix(id, "image-") {
				images++
			}
		}
		if images == 0 {
			t.Errorf("round %d: no container image stored to compare", round)
		}
		if len(a) != len(b) || len(a) == 0 {
			t.Errorf("round %d: %d events by GraphQL, %d by REST", round, len(a), len(b))
		}
		diffs := 0
		for id, ea := range a {
			if eb := b[id]; ea != eb {
				if diffs++; diffs <= 5 {
					t.Errorf("round %d: %s differs\n GraphQL %s\n    REST %s", round, id, ea, eb)
				}
			}
		}
		if diffs > 0 {
			t.Fatalf("round %d: %d events differ", round, diffs)
		}
		for range 2 {
			byGraphQL.sim.Advance()
			byREST.sim.Advance()
		}
	}
}

// fetcher fetches kinds of one project straight through the client, with
// what it fetched kept in memory as the store would keep it: request
// counts need no database.
type fetcher struct {
	t       *testing.T
	client  *gitlab.Client
	project gitlab.Project
	stored  map[string]time.Time
	failed  map[string]bool // failed jobs
	cursors map[change.Kind]time.Time
}

func newFetcher(t *testing.T, r *rig) *fetcher {
	ps, err := r.client.SelectProjects(context.Background(), gitlab.Selection{})
	if err != nil || len(ps.Projects) != 1 {
		t.Fatal(err, ps.Projects)
	}
	return &fetcher{t: t, client: r.client, project: ps.Projects[0], stored: map[string]time.Time{}, failed: map[string]bool{},
		cursors: map[change.Kind]time.Time{}}
}

func (f *fetcher) fetch(k change.Kind) {
	f.t.Helper()
	known := func(_ context.Context, ids []string) (map[string]time.Time, error) {
		out := map[string]time.Time{}
		for _, id := range ids {
			if at, ok := f.stored[id]; ok {
				out[id] = at
			}
		}
		return out, nil
	}
	err := f.client.Fetch(context.Background(), k, f.project, f.cursors[k], gitlab.FetchOptions{Known: known}, func(p gitlab.Page) error {
		for _, e := range p.Events {
			if at, ok := f.stored[e.ID]; !ok || !e.UpdatedAt.Before(at) {
				f.stored[e.ID] = e.UpdatedAt
				f.failed[e.ID] = e.Kind == change.KindJob && e.State == "failed"
			}
		}
		f.cursors[k] = p.Cursor
		return nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
}

// equalsTruth checks the fetched objects of kinds against the truth.
func (f *fetcher) equalsTruth(sim *gitlabsim.Sim, kinds ...change.Kind) {
	f.t.Helper()
	n := 0
	for _, e := range sim.Truth() {
		if !slices.Contains(kinds, e.Kind) {
			continue
		}
		n++
		if at, ok := f.stored[e.ID]; !ok || !at.Equal(e.UpdatedAt) {
			f.t.Errorf("%s: fetched %v (%v), GitLab has %v", e.ID, at, ok, e.UpdatedAt)
		}
	}
	if n == 0 {
		f.t.Error("nothing to compare")
	}
}

// TestGraphQLRequestCounts backfills one project of 2,000 merge requests
// and 1,000 pipelines and counts what it costs; then a sync with nothing
// changed, then one after a step of activity, which fetches the details of
// the changed merge requests only.
func TestGraphQLRequestCounts(t *testing.T) {
	t.Parallel()
	const mrs, pipelines = 2000, 1000
	r, log := newRigWith(t, gitlabsim.Options{Seed: 3, Projects: 1, MRs: mrs, Pipelines: pipelines, Issues: -1,
		Now: func() time.Time { return fixedNow }}, nil)
	f := newFetcher(t, r)
	cost := func(k change.Kind) int64 {
		r.sim.ResetStats()
		f.fetch(k)
		st := r.sim.Stats()
		if restDetails(st) != 0 {
			// In a backfill, failure reasons come from the project's
			// failed jobs, not pipeline by pipeline.
			t.Errorf("%s: REST details asked: %v", k, st.ByPath)
		}
		return st.Requests
	}

	mrCost := cost(change.KindMergeRequest)
	if perMR := float64(mrCost) / mrs; perMR > 0.05 {
		t.Errorf("merge requests: %d requests, %.3f per merge request; want at most 0.05", mrCost, perMR)
	}
	plCost := cost(change.KindPipeline)
	failed := 0
	for _, f := range f.failed {
		if f {
			failed++
		}
	}
	// The least the data needs: a page per 100 pipelines (with their
	// jobs), and the failure reasons GraphQL lacks, 100 failed jobs a page.
	minimum := math.Ceil(pipelines/100.0) + math.Ceil(float64(failed)/100)
	if float64(plCost) > 1.1*minimum {
		t.Errorf("pipelines: %d requests; the data needs %.0f, allowed 10%% more: %v", plCost, minimum, r.sim.Stats().ByPath)
	}
	t.Logf("backfill: %d requests for %d merge requests (%.4f each), %d for %d pipelines with %d failed jobs (minimum %.0f): %v",
		mrCost, mrs, float64(mrCost)/mrs, plCost, pipelines, failed, minimum, r.sim.Stats().ByPath)
	f.equalsTruth(r.sim, change.KindMergeRequest, change.KindPipeline, change.KindJob)

	// Nothing changed: listings only.
	r.sim.ResetStats()
	log.take()
	f.fetch(change.KindMergeRequest)
	f.fetch(change.KindPipeline)
	if st := r.sim.Stats(); st.ByPath["POST /api/graphql"] != 0 || restDetails(st) != 0 || st.Requests != 2 {
		t.Errorf("fetch without changes: %v", st.ByPath)
	}

	// After a step, details for the changed objects only.
	before := map[string]time.Time{}
	for _, e := range r.sim.Truth() {
		before[e.ID] = e.UpdatedAt
	}
	r.sim.Advance()
	var changed []string
	changedPipelines := int64(0)
	for _, e := range r.sim.Truth() {
		if old, ok := before[e.ID]; !ok || !old.Equal(e.UpdatedAt) {
			switch e.Kind {
			case change.KindMergeRequest:
				changed = append(changed, e.ID[strings.LastIndexByte(e.ID, '-')+1:])
			case change.KindPipeline:
				changedPipelines++
			}
		}
	}
	r.sim.ResetStats()
	f.fetch(change.KindMergeRequest)
	f.fetch(change.KindPipeline)
	var asked []string
	for _, v := range log.take() {
		for name, list := range v {
			if iids, ok := list.([]any); ok && strings.HasPrefix(name, "iids") {
				for _, iid := range iids {
					asked = append(asked, fmt.Sprint(iid))
				}
			}
		}
	}
	slices.Sort(changed)
	slices.Sort(asked)
	if len(changed) == 0 || !slices.Equal(asked, changed) {
		t.Errorf("details asked for merge requests %v; changed: %v", asked, changed)
	}
	// One query for the changed merge requests, one for the changed
	// pipelines, and the failed jobs of a changed pipeline that failed.
	if st := r.sim.Stats(); restDetails(st)-jobsOfPipelines(st) != 0 || jobsOfPipelines(st) > changedPipelines ||
		st.ByPath["POST /api/graphql"] != 2 {
		t.Errorf("fetch after a step (%d pipelines changed): %v", changedPipelines, st.ByPath)
	}
	f.equalsTruth(r.sim, change.KindMergeRequest, change.KindPipeline, change.KindJob)
}
