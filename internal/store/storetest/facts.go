package storetest

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/store"
)

// The facts the metrics read (store.MetricsStore), derived from each event
// as it is written, held for every backend.
var factTests = []struct {
	name string
	fn   func(t *testing.T, s store.Store)
}{
	{"FactsOfEachKind", testFactsOfEachKind},
	{"FactsFirstNoteEitherOrder", testFactsFirstNote},
	{"FactsMergeFlow", testFactsMergeFlow},
	{"FactsFollowTheStoredVersion", testFactsFollowStored},
	{"FactsWindowsAndProjects", testFactsWindows},
	{"FactsJobStats", testFactsJobStats},
	{"FactsJobStatsAcrossDays", testFactsJobStatsAcrossDays},
	{"FactsIncidentLabels", testFactsIncidentLabels},
	{"FactsEnvironmentFilter", testFactsEnvironmentFilter},
	{"FactsFollowImport", testFactsFollowImport},
	{"FactsOfOneConnection", testFactsOfOneConnection},
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// kindEvent is an event of kind with id, project 1, created at minute
// created and updated at minute u.
func kindEvent(kind change.Kind, id string, created, u int, attrs map[string]any) change.Event {
	return change.Event{ID: id, Kind: kind, ProjectID: 1, ProjectPath: "group/project-1", Title: id, State: "opened",
		Author: "alice", CreatedAt: at(created), UpdatedAt: at(u), OccurredAt: at(u), Source: change.SourcePoll,
		ObservedAt: at(u), Attrs: attrs}
}

func mergedMR(iid int64, created, merged int, attrs map[string]any) change.Event {
	e := kindEvent(change.KindMergeRequest, change.MergeRequestID(1, iid), created, merged, map[string]any{
		"iid": iid, "target_branch": "main", "merged_at": stamp(at(merged)),
	})
	e.State = "merged"
	for k, v := range attrs {
		e.Attrs[k] = v
	}
	return e
}

func mrNote(id, iid int64, author string, created int, system bool) change.Event {
	e := kindEvent(change.KindNote, change.NoteID(1, id), created, created, map[string]any{
		"system": system, "noteable_type": "MergeRequest", "noteable_iid": iid,
	})
	e.Author = author
	return e
}

func deployment(id int64, env, status, ref string, finished int) change.Event {
	e := kindEvent(change.KindDeployment, change.DeploymentID(1, id), finished-1, finished, map[string]any{
		"iid": id, "environment": env, "status": status, "finished_at": stamp(at(finished)),
	})
	e.State, e.Ref, e.SHA = status, ref, "abc1234"
	return e
}

func job(id int64, name, status, sha, reason string, created int) change.Event {
	e := kindEvent(change.KindJob, change.JobID(1, id), created, created+1, map[string]any{
		"name": name, "stage": "test", "status": status, "failure_reason": reason, "pipeline_id": id * 10,
	})
	e.State, e.SHA = status, sha
	return e
}

// mustFacts is what a MetricsStore method returned, for a test to check
// once it knows it got no error: mustFacts(s.Issues(...))(t, "issues").
func mustFacts[T any](v T, err error) func(t *testing.T, what string) T {
	return func(t *testing.T, what string) T {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
}

func testFactsOfEachKind(t *testing.T, s store.Store) {
	merged := mergedMR(1, 0, 30, map[string]any{
		"first_commit_at": stamp(at(-60)),
		"approvals": []any{
			map[string]any{"user": "bob", "approved_at": stamp(at(20))},
			map[string]any{"user": "carol", "approved_at": stamp(at(10))},
		},
		"additions": 12, "deletions": 3,
		"changed_files": []any{map[string]any{"path": "a.go"}, map[string]any{"path": "b.go"}},
	})
	open := kindEvent(change.KindMergeRequest, change.MergeRequestID(1, 2), 5, 5, map[string]any{"iid": 2, "target_branch": "main"})
	env := kindEvent(change.KindEnvironment, change.EnvironmentID(1, 7), 0, 0, map[string]any{"name": "production", "tier": "production"})
	inc := kindEvent(change.KindIssue, change.IssueID(1, 3), 40, 50, map[string]any{
		"iid": 3, "issue_type": "incident", "labels": []any{"sev1"}, "closed_at": stamp(at(50)),
	})
	inc.State = "closed"
	dur := 95.0
	pipe := kindEvent(change.KindPipeline, change.PipelineID(1, 9), 1, 3, map[string]any{"status": "success", "duration": dur, "queued_duration": 4})
	pipe.Ref, pipe.SHA = "main", "abc1234"
	running := kindEvent(change.KindPipeline, change.PipelineID(1, 10), 2, 3, map[string]any{"status": "running", "duration": nil})
	mustUpsert(t, s, merged, open, env, inc, pipe, running,
		deployment(4, "production", "success", "main", 35), deployment(5, "production", "failed", "main", 36))

	mrs := mustFacts(s.MergedMergeRequests(ctx(t), store.FactFilter{}))(t, "merged")
	want := []store.MergeRequestFact{{ID: merged.ID, ProjectID: 1, ProjectPath: "group/project-1", IID: 1,
		Author: "alice", State: "merged", TargetBranch: "main", CreatedAt: at(0), MergedAt: at(30), FirstCommitAt: at(-60),
		FirstApprovalAt: at(10), Additions: 12, Deletions: 3, Files: 2}}
	if !reflect.DeepEqual(mrs, want) {
		t.Fatalf("merged merge requests:\n got %+v\nwant %+v", mrs, want)
	}
	opened := mustFacts(s.OpenMergeRequests(ctx(t), nil, 10))(t, "open")
	if len(opened) != 1 || opened[0].ID != open.ID || !opened[0].MergedAt.IsZero() || !opened[0].CreatedAt.Equal(at(5)) {
		t.Fatalf("open merge requests: %+v", opened)
	}
	envs := mustFacts(s.Environments(ctx(t), []int64{1}))(t, "environments")
	if want := []store.EnvironmentFact{{ID: env.ID, ProjectID: 1, Name: "production", Tier: "production"}}; !reflect.DeepEqual(envs, want) {
		t.Fatalf("environments: %+v", envs)
	}
	issues := mustFacts(s.Issues(ctx(t), store.FactFilter{}))(t, "issues")
	wantIssue := []store.IssueFact{{ID: inc.ID, ProjectID: 1, IssueType: "incident", Labels: []string{"sev1"},
		CreatedAt: at(40), ClosedAt: at(50)}}
	if !reflect.DeepEqual(issues, wantIssue) {
		t.Fatalf("issues:\n got %+v\nwant %+v", issues, wantIssue)
	}
	deps := mustFacts(s.Deployments(ctx(t), store.FactFilter{}))(t, "deployments")
	if len(deps) != 1 || deps[0].ID != change.DeploymentID(1, 4) || deps[0].Environment != "production" ||
		deps[0].Ref != "main" || deps[0].SHA != "abc1234" || !deps[0].FinishedAt.Equal(at(35)) {
		t.Fatalf("successful deployments: %+v", deps)
	}
	pipes := mustFacts(s.Pipelines(ctx(t), store.FactFilter{}))(t, "pipelines")
	if len(pipes) != 2 || pipes[0].Duration == nil || *pipes[0].Duration != 95 || *pipes[0].QueuedDuration != 4 ||
		pipes[0].Ref != "main" || pipes[0].Status != "success" || pipes[1].Duration != nil || pipes[1].Status != "running" {
		t.Fatalf("pipelines: %+v", pipes)
	}
}

// The first review note is kept whichever of the note and its merge
// request is stored first; the author's own and system notes do not count.
func testFactsFirstNote(t *testing.T, s store.Store) {
	mustUpsert(t, s, mrNote(1, 1, "bob", 25, false), mrNote(2, 1, "alice", 5, false), mrNote(3, 1, "carol", 6, true))
	mustUpsert(t, s, mergedMR(1, 0, 30, nil))
	first := func() time.Time {
		t.Helper()
		mrs := mustFacts(s.MergedMergeRequests(ctx(t), store.FactFilter{}))(t, "merged")
		if len(mrs) != 1 {
			t.Fatalf("merged: %+v", mrs)
		}
		return mrs[0].FirstNoteAt
	}
	if got := first(); !got.Equal(at(25)) {
		t.Fatalf("first note before the MR was stored: %v, want %v", got, at(25))
	}
	mustUpsert(t, s, mrNote(4, 1, "dave", 15, false))
	if got := first(); !got.Equal(at(15)) {
		t.Fatalf("an earlier note after the MR: %v, want %v", got, at(15))
	}
	mustUpsert(t, s, mrNote(5, 1, "erin", 20, false), mrNote(6, 2, "erin", 1, false))
	if got := first(); !got.Equal(at(15)) {
		t.Fatalf("a later note, or one on another MR, moved it: %v", got)
	}
}

// Facts are those of the version the store keeps: an older version does not
// change them, a webhook that lacks attributes does not blank them.
func testFactsFollowStored(t *testing.T, s store.Store) {
	poll := mergedMR(1, 0, 30, map[string]any{"approvals": []any{map[string]any{"user": "bob", "approved_at": stamp(at(10))}}})
	mustUpsert(t, s, poll)
	hook := mergedMR(1, 0, 31, nil)
	hook.Source, hook.ObservedAt, hook.Author = change.SourceWebhook, at(40), "bob"
	mustUpsert(t, s, hook)
	old := mergedMR(1, 0, 20, nil)
	old.Attrs["target_branch"] = "stale"
	mustUpsert(t, s, old)
	mrs := mustFacts(s.MergedMergeRequests(ctx(t), store.FactFilter{}))(t, "merged")
	if len(mrs) != 1 || mrs[0].Author != "bob" || !mrs[0].FirstApprovalAt.Equal(at(10)) || mrs[0].TargetBranch != "main" {
		t.Fatalf("facts after a webhook and an older version: %+v", mrs)
	}
}

func testFactsWindows(t *testing.T, s store.Store) {
	other := deployment(9, "production", "success", "main", 20)
	other.ID, other.ProjectID = change.DeploymentID(2, 9), 2
	mustUpsert(t, s, deployment(1, "production", "success", "main", 10), deployment(2, "production", "success", "main", 20),
		deployment(3, "staging", "success", "main", 25), deployment(4, "production", "success", "main", 30), other)
	ids := func(ds []store.DeploymentFact) []string {
		var out []string
		for _, d := range ds {
			out = append(out, d.ID)
		}
		return out
	}
	got := ids(mustFacts(s.Deployments(ctx(t), store.FactFilter{ProjectIDs: []int64{1}, Since: at(20), Until: at(30)}))(t, "deployments"))
	if want := []string{change.DeploymentID(1, 2), change.DeploymentID(1, 3)}; !reflect.DeepEqual(got, want) {
		t.Fatalf("since inclusive, until exclusive, project 1: %v, want %v", got, want)
	}
	got = ids(mustFacts(s.Deployments(ctx(t), store.FactFilter{Since: at(20), Until: at(21)}))(t, "deployments"))
	if len(got) != 2 {
		t.Fatalf("every project: %v", got)
	}
	prev, next, err := s.DeploymentEdges(ctx(t), []int64{1}, at(20), at(26), nil)
	if err != nil {
		t.Fatal(err)
	}
	type edge struct {
		env string
		at  time.Time
	}
	var p, n []edge
	for _, d := range prev {
		p = append(p, edge{d.Environment, d.FinishedAt})
	}
	for _, d := range next {
		n = append(n, edge{d.Environment, d.FinishedAt})
	}
	if want := []edge{{"production", at(10)}}; !reflect.DeepEqual(p, want) {
		t.Fatalf("previous deployments: %v, want %v", p, want)
	}
	if want := []edge{{"production", at(30)}}; !reflect.DeepEqual(n, want) {
		t.Fatalf("next deployments: %v, want %v", n, want)
	}
}

func testFactsJobStats(t *testing.T, s store.Store) {
	mustUpsert(t, s,
		job(1, "unit", "failed", "aaaaaaa", "script_failure", 10),
		job(2, "unit", "success", "aaaaaaa", "", 12), // the retry that passed: flaky
		job(3, "unit", "success", "bbbbbbb", "", 14),
		job(4, "lint", "failed", "bbbbbbb", "runner_system_failure", 16),
		job(5, "lint", "failed", "ccccccc", "script_failure", 18),
		job(6, "lint", "success", "ccccccc", "", 17),              // passed before it failed: not flaky
		job(7, "unit", "failed", "ddddddd", "script_failure", 99), // outside the window
	)
	got := mustFacts(s.JobStats(ctx(t), store.FactFilter{Since: at(0), Until: at(60)}))(t, "job stats")
	want := store.JobStats{
		ByName: []store.JobRuns{{Name: "lint", Runs: 3, Failures: 2}, {Name: "unit", Runs: 3, Failures: 1}},
		Failures: []store.JobFailures{{Stage: "test", Reason: "runner_system_failure", Count: 1},
			{Stage: "test", Reason: "script_failure", Count: 2}},
		Flaky: []store.FlakyJob{{Name: "unit", Commits: 1}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("job stats:\n got %+v\nwant %+v", got, want)
	}
}

// A store filled by ImportEvents (a copy between backends) has the facts
// of what it imported.
func testFactsFollowImport(t *testing.T, s store.Store) {
	e := mergedMR(1, 0, 30, map[string]any{"additions": 1})
	attrs, err := store.ExactAttrs(mustJSON(t, e.Attrs))
	if err != nil {
		t.Fatal(err)
	}
	e.Attrs = attrs
	if _, err := s.ImportEvents(ctx(t), store.History{Event: e}, store.History{Event: mrNote(1, 1, "bob", 10, false)}); err != nil {
		t.Fatal(err)
	}
	mrs := mustFacts(s.MergedMergeRequests(ctx(t), store.FactFilter{}))(t, "merged")
	if len(mrs) != 1 || mrs[0].Additions != 1 || !mrs[0].FirstNoteAt.Equal(at(10)) {
		t.Fatalf("facts of imported events: %+v", mrs)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FactsRebuilt checks that a store whose facts are from an older rule, or
// lost, derives them again from its events when opened: s is a store,
// forget runs SQL on its database, reopen opens it again.
func FactsRebuilt(t *testing.T, s store.Store, forget func(sql string), reopen func() store.Store) {
	mustUpsert(t, s, mrNote(1, 1, "bob", 12, false),
		mergedMR(1, 0, 30, map[string]any{"approvals": []any{map[string]any{"user": "bob", "approved_at": stamp(at(10))}}}),
		deployment(4, "production", "success", "main", 35))
	want := mustFacts(s.MergedMergeRequests(ctx(t), store.FactFilter{}))(t, "merged")
	if len(want) != 1 || !want[0].FirstNoteAt.Equal(at(12)) {
		t.Fatalf("facts before: %+v", want)
	}
	forget(`UPDATE fact_version SET version = 0`)
	for _, table := range store.FactTables {
		forget(`DELETE FROM ` + table)
	}
	s = reopen()
	got := mustFacts(s.MergedMergeRequests(ctx(t), store.FactFilter{}))(t, "merged")
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("facts derived again:\n got %+v\nwant %+v", got, want)
	}
	if deps := mustFacts(s.Deployments(ctx(t), store.FactFilter{}))(t, "deployments"); len(deps) != 1 {
		t.Fatalf("deployments derived again: %+v", deps)
	}
}

// testFactsMergeFlow: MergeFlow and MergedChanges are MergedMergeRequests
// narrowed, in the same order and under the same filters: the first review
// the earlier of the first approval and the first note (for each
// combination of them), a change's start its first commit or else its
// creation.
func testFactsMergeFlow(t *testing.T, s store.Store) {
	approved := func(m int) map[string]any {
		return map[string]any{"approvals": []any{map[string]any{"user": "bob", "approved_at": stamp(at(m))}}}
	}
	other := mergedMR(6, 3, 40, map[string]any{"additions": 1, "deletions": 2})
	other.ProjectID, other.ProjectPath, other.ID = 2, "group/project-2", change.MergeRequestID(2, 6)
	mustUpsert(t, s,
		mergedMR(1, 0, 30, map[string]any{"additions": 12, "deletions": 3, "first_commit_at": stamp(at(-5))}), // no review
		mergedMR(2, 0, 31, approved(10)),                        // an approval only
		mergedMR(3, 0, 32, nil), mrNote(1, 3, "bob", 12, false), // a note only
		mergedMR(4, 0, 33, approved(20)), mrNote(2, 4, "carol", 14, false), // the note first
		mergedMR(5, 0, 33, approved(8)), mrNote(3, 5, "carol", 14, false), // the approval first
		mergedMR(7, 0, 50, approved(60)), // reviewed after the merge: the metric's rule, not the store's
		other)
	for _, f := range []store.FactFilter{{}, {Since: at(31), Until: at(40)}, {ProjectIDs: []int64{2}}, {Until: at(33)}} {
		mrs := mustFacts(s.MergedMergeRequests(ctx(t), f))(t, "merged")
		var want []store.MergeFlowFact
		for _, m := range mrs {
			review := m.FirstApprovalAt
			if review.IsZero() || (!m.FirstNoteAt.IsZero() && m.FirstNoteAt.Before(review)) {
				review = m.FirstNoteAt
			}
			want = append(want, store.MergeFlowFact{ProjectID: m.ProjectID, ProjectPath: m.ProjectPath, Author: m.Author,
				TargetBranch: m.TargetBranch, CreatedAt: m.CreatedAt, MergedAt: m.MergedAt, FirstCommitAt: m.FirstCommitAt,
				FirstReviewAt: review, Lines: m.Additions + m.Deletions, Files: m.Files})
		}
		got := mustFacts(s.MergeFlow(ctx(t), f))(t, "merge flow")
		if len(mrs) == 0 || !reflect.DeepEqual(got, want) {
			t.Fatalf("merge flow of %+v:\n got %+v\nwant %+v", f, got, want)
		}
		var wantChanges []store.ChangeFact
		for _, m := range mrs {
			started := m.FirstCommitAt
			if started.IsZero() {
				started = m.CreatedAt
			}
			wantChanges = append(wantChanges, store.ChangeFact{ID: m.ID, ProjectID: m.ProjectID, TargetBranch: m.TargetBranch,
				MergedAt: m.MergedAt, StartedAt: started})
		}
		if got := mustFacts(s.MergedChanges(ctx(t), f))(t, "merged changes"); !reflect.DeepEqual(got, wantChanges) {
			t.Fatalf("merged changes of %+v:\n got %+v\nwant %+v", f, got, wantChanges)
		}
	}
	// The reviews, spelled out.
	got := mustFacts(s.MergeFlow(ctx(t), store.FactFilter{ProjectIDs: []int64{1}}))(t, "merge flow")
	wantReview := []time.Time{{}, at(10), at(12), at(14), at(8), at(60)}
	if len(got) != len(wantReview) {
		t.Fatalf("merge flow: %+v", got)
	}
	for i, m := range got {
		if !m.FirstReviewAt.Equal(wantReview[i]) {
			t.Errorf("merge request %d: first review %v, want %v", i, m.FirstReviewAt, wantReview[i])
		}
	}
	if got[0].Lines != 15 || !got[0].FirstCommitAt.Equal(at(-5)) {
		t.Errorf("lines %d, first commit %v; want 15, %v", got[0].Lines, got[0].FirstCommitAt, at(-5))
	}
}

// testFactsJobStatsAcrossDays counts the jobs of windows over several
// days, with edges on and between midnights, over every project and over
// some, after runs were rewritten (their status, name, stage, reason and
// creation time changed), and checks each count against the runs as the
// test wrote them last. A backend that counts whole days apart
// (fact_job_days) must count exactly what fact_jobs holds.
func testFactsJobStatsAcrossDays(t *testing.T, s store.Store) {
	type run struct {
		project          int64
		name, stage      string
		status, reason   string
		sha              string
		created, updated time.Time
	}
	day0 := base.UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	runs := map[int64]*run{}
	r := rand.New(rand.NewPCG(3, 14))
	event := func(id int64, x *run) change.Event {
		e := kindEvent(change.KindJob, change.JobID(x.project, id), 0, 0, map[string]any{
			"name": x.name, "stage": x.stage, "status": x.status, "failure_reason": x.reason, "pipeline_id": id,
		})
		e.ProjectID, e.ProjectPath = x.project, fmt.Sprintf("group/project-%d", x.project)
		e.CreatedAt, e.UpdatedAt, e.OccurredAt, e.ObservedAt = x.created, x.updated, x.updated, x.updated
		e.State, e.SHA = x.status, x.sha
		return e
	}
	pick := func(xs ...string) string { return xs[r.IntN(len(xs))] }
	newRun := func(updated time.Time) *run {
		status := pick("success", "success", "failed", "canceled")
		reason := ""
		if status == "failed" {
			reason = pick("script_failure", "runner_system_failure", "")
		}
		return &run{project: int64(1 + r.IntN(3)), name: pick("unit", "lint", "e2e", "build"), stage: pick("test", "build"),
			status: status, reason: reason, sha: pick("aaaaaaa", "bbbbbbb", "ccccccc"),
			created: day0.Add(time.Duration(r.IntN(6*24*60)) * time.Minute), updated: updated}
	}
	var batch []change.Event
	for id := int64(1); id <= 400; id++ {
		x := newRun(at(1))
		runs[id] = x
		batch = append(batch, event(id, x))
	}
	mustUpsert(t, s, batch...)
	// Rewrite a quarter of the runs, each to another run.
	batch = batch[:0]
	for id := int64(1); id <= 400; id += 4 {
		x := newRun(at(2))
		x.project = runs[id].project // the id names the project
		runs[id] = x
		batch = append(batch, event(id, x))
	}
	mustUpsert(t, s, batch...)

	windows := [][2]time.Time{
		{day0, day0.Add(6 * 24 * time.Hour)},                                             // whole days
		{day0.Add(90 * time.Minute), day0.Add(5*24*time.Hour + 7*time.Minute)},           // partial days at both edges
		{day0.Add(-time.Hour), day0.Add(24 * time.Hour)},                                 // one whole day and an edge before it
		{day0.Add(2*24*time.Hour + time.Minute), day0.Add(3*24*time.Hour - time.Minute)}, // within a day
		{day0.Add(24 * time.Hour), day0.Add(24*time.Hour + 1)},
	}
	for _, w := range windows {
		for _, projects := range [][]int64{nil, {2}, {1, 3}} {
			want := store.JobStats{}
			byName := map[string]*store.JobRuns{}
			failures := map[[2]string]int{}
			in := func(p int64) bool { return len(projects) == 0 || slices.Contains(projects, p) }
			for _, x := range runs {
				if !in(x.project) || x.created.Before(w[0]) || !x.created.Before(w[1]) {
					continue
				}
				jr := byName[x.name]
				if jr == nil {
					jr = &store.JobRuns{Name: x.name}
					byName[x.name] = jr
				}
				jr.Runs++
				if x.status == "failed" {
					jr.Failures++
					failures[[2]string{x.stage, x.reason}]++
				}
			}
			for _, jr := range byName {
				if jr.Failures > 0 {
					want.ByName = append(want.ByName, *jr)
				}
			}
			slices.SortFunc(want.ByName, func(a, b store.JobRuns) int { return strings.Compare(a.Name, b.Name) })
			for k, n := range failures {
				want.Failures = append(want.Failures, store.JobFailures{Stage: k[0], Reason: k[1], Count: n})
			}
			slices.SortFunc(want.Failures, func(a, b store.JobFailures) int {
				return cmp.Or(strings.Compare(a.Stage, b.Stage), strings.Compare(a.Reason, b.Reason))
			})
			// Flaky: the (project, sha, name) of a failed run in the window
			// with a successful run of the same after it, at any time.
			flaky := map[string]map[string]bool{}
			for _, x := range runs {
				if !in(x.project) || x.status != "failed" || x.created.Before(w[0]) || !x.created.Before(w[1]) {
					continue
				}
				for _, y := range runs {
					if y.project == x.project && y.sha == x.sha && y.name == x.name && y.status == "success" && y.created.After(x.created) {
						if flaky[x.name] == nil {
							flaky[x.name] = map[string]bool{}
						}
						flaky[x.name][fmt.Sprint(x.project, x.sha)] = true
					}
				}
			}
			for name, commits := range flaky {
				want.Flaky = append(want.Flaky, store.FlakyJob{Name: name, Commits: len(commits)})
			}
			slices.SortFunc(want.Flaky, func(a, b store.FlakyJob) int { return strings.Compare(a.Name, b.Name) })
			got := mustFacts(s.JobStats(ctx(t), store.FactFilter{ProjectIDs: projects, Since: w[0], Until: w[1]}))(t, "job stats")
			if len(got.ByName) == 0 && len(want.ByName) == 0 && len(got.Failures) == 0 && len(want.Failures) == 0 &&
				len(got.Flaky) == 0 && len(want.Flaky) == 0 {
				continue
			}
			if !reflect.DeepEqual(got.ByName, want.ByName) || !reflect.DeepEqual(got.Failures, want.Failures) ||
				!reflect.DeepEqual(got.Flaky, want.Flaky) {
				t.Fatalf("job stats of %v..%v over %v:\n got %+v %+v %+v\nwant %+v %+v %+v", w[0], w[1], projects,
					got.ByName, got.Failures, got.Flaky, want.ByName, want.Failures, want.Flaky)
			}
			if w == windows[0] && projects == nil && len(want.Flaky) == 0 {
				t.Fatal("no flaky job in the whole world: the flaky count is not checked")
			}
		}
	}
}

// testFactsIncidentLabels: with IncidentLabels, Issues keeps every
// incident (by type, or by a label in any case, among others, with the
// characters LIKE and JSON treat apart) and leaves out what cannot be one.
func testFactsIncidentLabels(t *testing.T, s store.Store) {
	issue := func(iid int64, typ string, labels ...string) change.Event {
		ls := []any{}
		for _, l := range labels {
			ls = append(ls, l)
		}
		return kindEvent(change.KindIssue, change.IssueID(1, iid), int(iid), int(iid), map[string]any{
			"iid": iid, "issue_type": typ, "labels": ls})
	}
	mustUpsert(t, s,
		issue(1, "incident"),
		issue(2, "issue", "bug", "SEV_1"),
		issue(3, "issue", "bug"),
		issue(4, "issue", " Sev-2% "),
		issue(5, "issue", "sevX1"), // the _ of SEV_1 matches any character only in LIKE
		issue(6, "issue", "a&b"),   // JSON writes & as \u0026
		issue(7, "issue"),
	)
	ids := func(labels []string) []string {
		t.Helper()
		var out []string
		for _, is := range mustFacts(s.Issues(ctx(t), store.FactFilter{IncidentLabels: labels}))(t, "issues") {
			out = append(out, is.ID)
		}
		return out
	}
	for _, c := range []struct {
		labels []string
		want   []string
	}{
		{nil, []string{"issue-1-1", "issue-1-2", "issue-1-3", "issue-1-4", "issue-1-5", "issue-1-6", "issue-1-7"}},
		{[]string{}, []string{"issue-1-1"}},
		{[]string{"sev_1"}, []string{"issue-1-1", "issue-1-2"}},
		{[]string{"Sev-2%", "nothing"}, []string{"issue-1-1", "issue-1-4"}},
		{[]string{"a&b"}, []string{"issue-1-1", "issue-1-2", "issue-1-3", "issue-1-4", "issue-1-5", "issue-1-6"}},
	} {
		if got := ids(c.labels); !reflect.DeepEqual(got, c.want) {
			t.Errorf("issues with incident labels %q: %v, want %v", c.labels, got, c.want)
		}
	}
}

// testFactsEnvironmentFilter: with Environments, Deployments and
// DeploymentEdges keep every deployment to an environment named or
// matching a glob (path.Match), whatever characters the names hold, and
// leave out the environments matched by neither.
func testFactsEnvironmentFilter(t *testing.T, s store.Store) {
	names := []string{"production", "staging", "prod-eu", "prod-us/east", "prod_x", "prod%1", "Production",
		"review/feat-1", "prodé", "pröd", "p[1]", "qa"}
	var es []change.Event
	for i, n := range names {
		es = append(es, deployment(int64(i+1), n, "success", "main", 10+i))
	}
	mustUpsert(t, s, es...)
	for _, f := range []store.EnvFilter{
		{Names: []string{"production"}},
		{Names: []string{"production", "qa"}, Patterns: []string{"prod-*"}},
		{Patterns: []string{"prod?1", "pr[oö]d", "p\\[1]", "review/*"}},
		{Patterns: []string{"prod_x"}},
		{Patterns: []string{"*"}},
		{Patterns: []string{"[^a-z]roduction"}},
		{},
	} {
		got := map[string]bool{}
		for _, d := range mustFacts(s.Deployments(ctx(t), store.FactFilter{Environments: &f}))(t, "deployments") {
			got[d.Environment] = true
		}
		prev, _, err := s.DeploymentEdges(ctx(t), nil, at(100), time.Time{}, &f)
		if err != nil {
			t.Fatal(err)
		}
		edges := map[string]bool{}
		for _, d := range prev {
			edges[d.Environment] = true
		}
		for _, n := range names {
			want := slices.Contains(f.Names, n)
			for _, p := range f.Patterns {
				if ok, _ := path.Match(p, n); ok {
					want = true
				}
			}
			if want && (!got[n] || !edges[n]) {
				t.Errorf("filter %+v: deployments to %q left out (deployments %v, edges %v)", f, n, got[n], edges[n])
			}
		}
		if len(f.Names) == 0 && len(f.Patterns) == 0 && (len(got) > 0 || len(edges) > 0) {
			t.Errorf("an empty filter kept %v and %v", got, edges)
		}
		if len(f.Names) == 1 && len(f.Patterns) == 0 && len(got) != 1 {
			t.Errorf("filter %+v kept %v", f, got)
		}
	}
}
