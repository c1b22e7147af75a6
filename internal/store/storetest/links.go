package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/store"
)

// Deployments reported to labtrail's API (source api) and GitLab's own
// deployment of the same job, or of the same sha within minutes, are
// linked and counted once by the facts, whichever was stored first.
var linkTests = []struct {
	name string
	fn   func(t *testing.T, s store.Store)
}{
	{"LinkReportThenGitLab", func(t *testing.T, s store.Store) { testLinkByJob(t, s, true) }},
	{"LinkGitLabThenReport", func(t *testing.T, s store.Store) { testLinkByJob(t, s, false) }},
	{"LinkBySHAWithinWindow", testLinkBySHA},
}

// reported is a reported deployment of project 1 to env that finished at
// minute finished.
func reported(env, status, sha string, jobID int64, finished int) change.Event {
	started, done := at(finished-2), at(finished)
	r := change.DeploymentReport{Project: "1", Environment: env, Ref: "main", SHA: sha, Status: status,
		StartedAt: &started, FinishedAt: &done, JobID: jobID, URL: "https://app.example.com"}
	if err := r.Check(); err != nil {
		panic(err)
	}
	d, _ := r.Events(1, "group/project-1", at(finished))
	return d
}

// gitlabDeployment is GitLab's deployment id of job jobID (0: none).
func gitlabDeployment(id int64, env, sha string, jobID int64, finished int) change.Event {
	e := deployment(id, env, "success", "main", finished)
	e.SHA = sha
	if jobID != 0 {
		e.Attrs["deployable"] = map[string]any{"id": jobID, "web_url": "https://gitlab.example.com/job"}
	}
	return e
}

func deploymentIDs(t *testing.T, s store.Store) []string {
	t.Helper()
	ds := mustFacts(s.Deployments(ctx(t), store.FactFilter{}))(t, "deployments")
	ids := []string{}
	for _, d := range ds {
		ids = append(ids, d.ID)
	}
	return ids
}

func linked(t *testing.T, s store.Store, id string) []string {
	t.Helper()
	ls, ok := s.(store.LinkedStore)
	if !ok {
		t.Skip("the store does not implement LinkedStore")
	}
	es, err := ls.LinkedDeployments(ctx(t), id)
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{}
	for _, e := range es {
		ids = append(ids, e.ID)
	}
	return ids
}

func upsert(t *testing.T, s store.Store, es ...change.Event) {
	t.Helper()
	for _, e := range es {
		if _, err := s.Upsert(ctx(t), e); err != nil {
			t.Fatal(err)
		}
	}
}

func testLinkByJob(t *testing.T, s store.Store, reportFirst bool) {
	rep := reported("production", "success", "abc1234", 77, 30)
	gl := gitlabDeployment(5, "production", "abc1234", 77, 29)
	other := reported("staging", "success", "abc1234", 78, 30) // another job, another environment
	if reportFirst {
		upsert(t, s, rep, other, gl)
	} else {
		upsert(t, s, gl, rep, other)
	}
	if got, want := deploymentIDs(t, s), []string{gl.ID, other.ID}; !slices.Equal(got, want) {
		t.Errorf("deployments counted: %v, want %v (the report of GitLab's job once, as GitLab's)", got, want)
	}
	if got := linked(t, s, rep.ID); !slices.Equal(got, []string{gl.ID}) {
		t.Errorf("linked to the report: %v, want GitLab's %s", got, gl.ID)
	}
	if got := linked(t, s, gl.ID); !slices.Equal(got, []string{rep.ID}) {
		t.Errorf("linked to GitLab's: %v, want the report %s", got, rep.ID)
	}
	if got := linked(t, s, other.ID); len(got) != 0 {
		t.Errorf("linked to an unrelated report: %v", got)
	}
	// The edges read the same rows: the report finished a minute after
	// GitLab's deployment, and must not stand for the environment's last.
	prev, _, err := s.DeploymentEdges(ctx(t), nil, at(60), time.Time{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range prev {
		if p.Environment == "production" && !p.FinishedAt.Equal(at(29)) {
			t.Errorf("production's last deployment before minute 60 finished at %v, want GitLab's %v", p.FinishedAt, at(29))
		}
	}
	// A newer report of the same job stays linked.
	newer := reported("production", "success", "abc1234", 77, 31)
	upsert(t, s, newer)
	if got := deploymentIDs(t, s); len(got) != 2 {
		t.Errorf("after a newer report: %v, want 2 deployments", got)
	}
}

func testLinkBySHA(t *testing.T, s store.Store) {
	gl := gitlabDeployment(6, "production", "def5678", 90, 100)
	near := reported("production", "success", "def5678", 0, 100+int(store.LinkWindow/time.Minute)-1)
	far := reported("production", "success", "def5678", 91, 100+3*int(store.LinkWindow/time.Minute))
	otherSHA := reported("production", "success", "0123abc", 0, 101)
	upsert(t, s, near, far, otherSHA, gl)
	if got, want := deploymentIDs(t, s), []string{gl.ID, otherSHA.ID, far.ID}; !slices.Equal(got, want) {
		t.Errorf("deployments counted: %v, want %v (the report of the same sha within the window once)", got, want)
	}
	if got := linked(t, s, gl.ID); !slices.Equal(got, []string{near.ID}) {
		t.Errorf("linked to GitLab's: %v, want %s", got, near.ID)
	}
}
