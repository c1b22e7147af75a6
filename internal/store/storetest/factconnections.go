package storetest

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/store"
)

// onConnection is e as connection second stored it: its id under the
// connection's name (what ingest does for an added connection).
func onConnection(e change.Event) change.Event {
	e.ID = "second:" + e.ID
	return e
}

// Two GitLabs that both have a project 1: the facts of each are read
// apart (FactsOf), a note of one never counts as a review of the other's
// merge request, and FactsOf("") reads both.
func testFactsOfOneConnection(t *testing.T, s store.Store) {
	def, sec := s.FactsOf(store.DefaultConnection), s.FactsOf("second")
	all := s.FactsOf("")
	// A note by bob on second's !1, stored before either merge request.
	mustUpsert(t, s, onConnection(mrNote(1, 1, "bob", 5, false)))
	mustUpsert(t, s, mergedMR(1, 0, 30, nil), onConnection(mergedMR(1, 0, 40, nil)))
	firstNote := func(m store.MetricsStore) time.Time {
		mrs := mustFacts(m.MergedMergeRequests(ctx(t), store.FactFilter{ProjectIDs: []int64{1}}))(t, "merged")
		if len(mrs) != 1 {
			t.Fatalf("merged: %d merge requests, want 1", len(mrs))
		}
		return mrs[0].FirstNoteAt
	}
	if got := firstNote(def); !got.IsZero() {
		t.Fatalf("default's merge request reviewed at %v by a note of second's", got)
	}
	if got := firstNote(sec); !got.Equal(at(5)) {
		t.Fatalf("second's merge request: first note %v, want %v", got, at(5))
	}
	// A note stored after the merge requests updates its own only.
	mustUpsert(t, s, onConnection(mrNote(2, 1, "carol", 3, false)))
	if got := firstNote(def); !got.IsZero() {
		t.Fatalf("default's merge request reviewed at %v by a later note of second's", got)
	}
	if got := firstNote(sec); !got.Equal(at(3)) {
		t.Fatalf("second's merge request: first note %v, want %v", got, at(3))
	}

	secDeploy := onConnection(deployment(4, "production", "success", "main", 36))
	secDeploy2 := onConnection(deployment(5, "production", "success", "main", 38))
	pipe := kindEvent(change.KindPipeline, change.PipelineID(1, 9), 1, 3, map[string]any{"status": "success"})
	pipe.Ref, pipe.SHA = "main", "abc1234"
	issue := kindEvent(change.KindIssue, change.IssueID(1, 3), 40, 50, map[string]any{"iid": 3, "issue_type": "incident"})
	env := kindEvent(change.KindEnvironment, change.EnvironmentID(1, 7), 0, 0, map[string]any{"name": "production"})
	open := kindEvent(change.KindMergeRequest, change.MergeRequestID(1, 2), 5, 5, map[string]any{"iid": 2, "target_branch": "main"})
	mustUpsert(t, s, deployment(4, "production", "success", "main", 35), secDeploy, secDeploy2,
		pipe, onConnection(issue), env, onConnection(open),
		job(1, "unit", "failed", "aaaaaaa", "script_failure", 10),
		onConnection(job(1, "lint", "failed", "bbbbbbb", "script_failure", 11)),
		onConnection(job(2, "lint", "success", "bbbbbbb", "", 12)),
		// A mirror: one commit in both GitLabs' project 1, failed in
		// the default's and passed later in second's: not flaky.
		job(3, "e2e", "failed", "mmmmmmm", "script_failure", 13),
		onConnection(job(3, "e2e", "success", "mmmmmmm", "", 14)))

	for _, c := range []struct {
		name     string
		m        store.MetricsStore
		projects []int64
		deploys  []string
		mrs      int
		open     []string
		pipes    int
		issues   []string
		envs     []string
		jobs     []store.JobRuns
		flaky    []store.FlakyJob
	}{
		{"default", def, []int64{1}, []string{change.DeploymentID(1, 4)}, 1, nil, 1, nil,
			[]string{change.EnvironmentID(1, 7)}, []store.JobRuns{{Name: "e2e", Runs: 1, Failures: 1}, {Name: "unit", Runs: 1, Failures: 1}}, nil},
		{"default, every project", def, nil, []string{change.DeploymentID(1, 4)}, 1, nil, 1, nil,
			[]string{change.EnvironmentID(1, 7)}, []store.JobRuns{{Name: "e2e", Runs: 1, Failures: 1}, {Name: "unit", Runs: 1, Failures: 1}}, nil},
		{"second", sec, []int64{1}, []string{secDeploy.ID, secDeploy2.ID}, 1, []string{"second:" + open.ID}, 0,
			[]string{"second:" + issue.ID}, nil, []store.JobRuns{{Name: "lint", Runs: 2, Failures: 1}},
			[]store.FlakyJob{{Name: "lint", Commits: 1}}},
		{"every connection", all, nil, []string{change.DeploymentID(1, 4), secDeploy.ID, secDeploy2.ID}, 2,
			[]string{"second:" + open.ID}, 1, []string{"second:" + issue.ID}, []string{change.EnvironmentID(1, 7)},
			[]store.JobRuns{{Name: "e2e", Runs: 2, Failures: 1}, {Name: "lint", Runs: 2, Failures: 1}, {Name: "unit", Runs: 1, Failures: 1}},
			[]store.FlakyJob{{Name: "lint", Commits: 1}}},
	} {
		f := store.FactFilter{ProjectIDs: c.projects}
		var got []string
		for _, d := range mustFacts(c.m.Deployments(ctx(t), f))(t, c.name+": deployments") {
			got = append(got, d.ID)
		}
		slices.Sort(got)
		if !reflect.DeepEqual(got, c.deploys) {
			t.Errorf("%s: deployments %v, want %v", c.name, got, c.deploys)
		}
		if n := len(mustFacts(c.m.MergedChanges(ctx(t), f))(t, "changes")); n != c.mrs {
			t.Errorf("%s: %d merged changes, want %d", c.name, n, c.mrs)
		}
		if n := len(mustFacts(c.m.MergeFlow(ctx(t), f))(t, "flow")); n != c.mrs {
			t.Errorf("%s: %d in the merge flow, want %d", c.name, n, c.mrs)
		}
		got = nil
		for _, m := range mustFacts(c.m.OpenMergeRequests(ctx(t), c.projects, 10))(t, "open") {
			got = append(got, m.ID)
		}
		if !reflect.DeepEqual(got, c.open) {
			t.Errorf("%s: open merge requests %v, want %v", c.name, got, c.open)
		}
		if n := len(mustFacts(c.m.Pipelines(ctx(t), f))(t, "pipelines")); n != c.pipes {
			t.Errorf("%s: %d pipelines, want %d", c.name, n, c.pipes)
		}
		got = nil
		for _, is := range mustFacts(c.m.Issues(ctx(t), f))(t, "issues") {
			got = append(got, is.ID)
		}
		if !reflect.DeepEqual(got, c.issues) {
			t.Errorf("%s: issues %v, want %v", c.name, got, c.issues)
		}
		got = nil
		for _, e := range mustFacts(c.m.Environments(ctx(t), c.projects))(t, "environments") {
			got = append(got, e.ID)
		}
		if !reflect.DeepEqual(got, c.envs) {
			t.Errorf("%s: environments %v, want %v", c.name, got, c.envs)
		}
		_, next, err := c.m.DeploymentEdges(ctx(t), c.projects, time.Time{}, at(37), nil)
		if err != nil {
			t.Fatal(err)
		}
		wantNext := 0
		if slices.Contains(c.deploys, secDeploy2.ID) {
			wantNext = 1
		}
		if len(next) != wantNext {
			t.Errorf("%s: deployments after minute 37: %+v, want %d", c.name, next, wantNext)
		}
		// A window of whole days, which a backend may count from its
		// day table of every connection's jobs.
		day := at(0).UTC().Truncate(24 * time.Hour)
		js := mustFacts(c.m.JobStats(ctx(t), store.FactFilter{ProjectIDs: c.projects, Since: day.Add(-48 * time.Hour),
			Until: day.Add(48 * time.Hour)}))(t, "job stats")
		if !reflect.DeepEqual(js.ByName, c.jobs) || !reflect.DeepEqual(js.Flaky, c.flaky) {
			t.Errorf("%s: job stats %+v, want runs %+v, flaky %+v", c.name, js, c.jobs, c.flaky)
		}
	}

	// The related events of a pipeline are those of its connection.
	rs, ok := def.(store.RelatedStore)
	if !ok {
		return
	}
	pipes, err := rs.RefPipelines(ctx(t), 1, []string{"main"}, "", time.Time{}, time.Time{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(pipes) != 1 || pipes[0].ID != pipe.ID {
		t.Errorf("default's pipelines of main: %v", pipes)
	}
	secPipes, err := s.FactsOf("second").(store.RelatedStore).RefPipelines(ctx(t), 1, []string{"main"}, "", time.Time{}, time.Time{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(secPipes) != 0 {
		t.Errorf("second's pipelines of main: %v, want none (the pipeline is default's)", secPipes)
	}
}
