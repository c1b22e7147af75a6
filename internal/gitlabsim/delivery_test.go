package gitlabsim_test

import (
	"fmt"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/gitlabsim"
)

// delivery is what a client reading the simulator's API finds for
// delivery metrics: DORA's four keys, merge-request flow and pipeline
// health.
type delivery struct {
	projects, withEnvs             int
	prodDeploys, prodFailed        int // production deployments: finished ok, failed
	shipsNone, shipsSeveral        int // successful production deployments shipping no or ≥2 merged MRs
	shipsMost                      int // the most MRs one deployment shipped
	shippedBeforeMerge             int // MRs a deployment finished before their merge (must be none)
	mrsMain, mrsOther              int // merge requests by target branch
	mergedOther                    int // merged into another branch than main (none: nothing is merged there)
	commitAfterOpen                int // MRs whose first commit is not before they were opened (must be none)
	incidents, incidentsAfter      int // incidents; of them opened 15 min to 9 h after a production deployment
	incidentsClosed, incidentsOpen int
	issues                         int // ordinary issues
	reviewedByOthers               int // merged MRs with a comment by another user before the merge
	approvedByOthers               int // merged MRs approved by another user
	approvedByAuthor               int // (must be none)
	flaky                          int // failed pipelines whose failed job passed on the same sha in a later pipeline
	reasons, stages                map[string]int
}

func (d delivery) String() string {
	return fmt.Sprintf("%d projects (%d with production and staging); production deployments: %d succeeded (%d shipped no MR, %d several, at most %d), %d failed; "+
		"MRs: %d to main, %d to another branch; incidents: %d (%d after a production deployment, %d closed, %d open), %d other issues; "+
		"merged MRs reviewed by others: %d, approved by others: %d; flaky failures: %d; failed jobs by reason %v, by stage %v",
		d.projects, d.withEnvs, d.prodDeploys, d.shipsNone, d.shipsSeveral, d.shipsMost, d.prodFailed,
		d.mrsMain, d.mrsOther, d.incidents, d.incidentsAfter, d.incidentsClosed, d.incidentsOpen, d.issues,
		d.reviewedByOthers, d.approvedByOthers, d.flaky, d.reasons, d.stages)
}

func str(v any) string { s, _ := v.(string); return s }

func username(v any) string {
	m, _ := v.(map[string]any)
	return str(m["username"])
}

// readDelivery reads every project of srv through GitLab's REST API.
func readDelivery(t testing.TB, srv *httptest.Server) delivery {
	t.Helper()
	d := delivery{reasons: map[string]int{}, stages: map[string]int{}}
	for _, pr := range walkAll(t, srv, "/api/v4/projects?per_page=100") {
		d.projects++
		api := fmt.Sprintf("/api/v4/projects/%d", num(pr["id"]))
		tiers := map[string]string{}
		for _, e := range walkAll(t, srv, api+"/environments?per_page=100") {
			tiers[str(e["name"])] = str(e["tier"])
		}
		if tiers["production"] == "production" && tiers["staging"] == "staging" {
			d.withEnvs++
		}

		committed := map[string]time.Time{}
		for _, c := range walkAll(t, srv, api+"/repository/commits?per_page=100") {
			committed[str(c["id"])] = parseTime(t, c["committed_date"])
		}
		var merged []time.Time // merged_at of MRs into main
		for _, m := range walkAll(t, srv, api+"/merge_requests?state=all&per_page=100") {
			iid := num(m["iid"])
			created := parseTime(t, m["created_at"])
			if str(m["target_branch"]) != "main" {
				d.mrsOther++
				if m["state"] == "merged" {
					d.mergedOther++
				}
				continue
			}
			d.mrsMain++
			commits := walkAll(t, srv, fmt.Sprintf("%s/merge_requests/%d/commits?per_page=100", api, iid))
			for _, c := range commits {
				if !parseTime(t, c["authored_date"]).Before(created) {
					d.commitAfterOpen++
					break
				}
			}
			if m["state"] != "merged" {
				continue
			}
			at := parseTime(t, m["merged_at"])
			merged = append(merged, at)
			author := username(m["author"])
			for _, n := range walkAll(t, srv, fmt.Sprintf("%s/merge_requests/%d/notes?per_page=100", api, iid)) {
				if n["system"] == false && username(n["author"]) != author && parseTime(t, n["created_at"]).Before(at) {
					d.reviewedByOthers++
					break
				}
			}
			_, body := get(t, srv, fmt.Sprintf("%s/merge_requests/%d/approvals", api, iid))
			others := false
			for _, a := range decode[map[string]any](t, body)["approved_by"].([]any) {
				if u := username(a.(map[string]any)["user"]); u == author {
					d.approvedByAuthor++
				} else {
					others = true
				}
			}
			if others {
				d.approvedByOthers++
			}
		}

		// Production deployments in the order they finished; each ships
		// the MRs merged into main after the previous one's commit, up to
		// its own (main is linear: a deployment's commit is the merge
		// commit at main's head when its pipeline started).
		type deploy struct {
			sha      string
			finished time.Time
		}
		var ok, done []deploy
		for _, dp := range walkAll(t, srv, api+"/deployments?per_page=100") {
			env, _ := dp["environment"].(map[string]any)
			job, _ := dp["deployable"].(map[string]any)
			if str(env["name"]) != "production" || dp["ref"] != "main" {
				continue
			}
			switch dp["status"] {
			case "success":
				ok = append(ok, deploy{str(dp["sha"]), parseTime(t, job["finished_at"])})
			case "failed":
				if job["status"] != "failed" {
					t.Errorf("failed deployment %v: its job is %v", dp["id"], job["status"])
				}
				d.prodFailed++
			default:
				continue
			}
			done = append(done, deploy{str(dp["sha"]), parseTime(t, job["finished_at"])})
		}
		slices.SortFunc(ok, func(a, b deploy) int { return a.finished.Compare(b.finished) })
		d.prodDeploys += len(ok)
		var prev time.Time
		for i, dp := range ok {
			at, found := committed[dp.sha]
			if !found {
				t.Fatalf("deployment of %s: not a commit of main", dp.sha)
			}
			n := 0
			for _, m := range merged {
				if m.After(prev) && !m.After(at) {
					n++
					if !dp.finished.After(m) {
						d.shippedBeforeMerge++
					}
				}
			}
			switch {
			case i > 0 && n == 0:
				d.shipsNone++
			case n >= 2:
				d.shipsSeveral++
			}
			d.shipsMost = max(d.shipsMost, n)
			prev = later(prev, at)
		}

		for _, is := range walkAll(t, srv, api+"/issues?scope=all&state=all&per_page=100") {
			if is["issue_type"] != "incident" {
				d.issues++
				continue
			}
			d.incidents++
			if is["closed_at"] != nil {
				d.incidentsClosed++
			} else {
				d.incidentsOpen++
			}
			opened := parseTime(t, is["created_at"])
			for _, dp := range done {
				if since := opened.Sub(dp.finished); since >= 15*time.Minute && since <= 9*time.Hour {
					d.incidentsAfter++
					break
				}
			}
		}

		// A flaky job: failed in one pipeline, passed in a later one on
		// the same sha and ref.
		pipes := walkAll(t, srv, api+"/pipelines?per_page=100&sort=asc")
		for i, pl := range pipes {
			if pl["status"] != "failed" {
				continue
			}
			for _, again := range pipes[i+1:] {
				if again["sha"] != pl["sha"] || again["ref"] != pl["ref"] || again["status"] != "success" {
					continue
				}
				jobs := func(p map[string]any) map[string]string {
					out := map[string]string{}
					for _, j := range walkAll(t, srv, fmt.Sprintf("%s/pipelines/%d/jobs?per_page=100", api, num(p["id"]))) {
						out[str(j["name"])] = str(j["status"])
					}
					return out
				}
				passed := jobs(again)
				for name, st := range jobs(pl) {
					if st == "failed" && passed[name] == "success" {
						d.flaky++
						break
					}
				}
				break
			}
		}
		for _, j := range walkAll(t, srv, api+"/jobs?scope[]=failed&per_page=100") {
			d.reasons[str(j["failure_reason"])]++
			d.stages[str(j["stage"])]++
		}
	}
	return d
}

// TestDeliveryData checks that a built world gives every delivery metric
// something to measure, as a client sees it.
func TestDeliveryData(t *testing.T) {
	_, srv := newServer(t, gitlabsim.Options{Seed: 3, Projects: 3, MRs: 120, Pipelines: 120})
	d := readDelivery(t, srv)
	t.Log(d)
	checks := []struct {
		what string
		ok   bool
	}{
		{"every project has production and staging environments of those tiers", d.withEnvs == d.projects},
		{"production deployments succeed", d.prodDeploys > 0},
		{"some production deployment ships several merged MRs", d.shipsSeveral > 0 && d.shipsMost >= 2},
		{"some production deployment ships none", d.shipsNone > 0},
		{"deployments finish after the merges they ship", d.shippedBeforeMerge == 0},
		{"some production deployments fail", d.prodFailed > 0},
		{"MRs mostly target main, some another branch", d.mrsOther > 0 && d.mrsMain > 5*d.mrsOther},
		{"nothing is merged into another branch", d.mergedOther == 0},
		{"MR commits are authored before the MR is opened", d.commitAfterOpen == 0},
		{"incidents follow production deployments", d.incidentsAfter > 0},
		{"most incidents are closed, some never", d.incidentsClosed > d.incidentsOpen && d.incidentsOpen > 0},
		{"ordinary issues stay", d.issues > d.incidents},
		{"merged MRs are reviewed by others before the merge", d.reviewedByOthers > 0},
		{"merged MRs are approved by others, never by their author", d.approvedByOthers > 0 && d.approvedByAuthor == 0},
		{"a job fails, then passes on the same sha", d.flaky > 0},
		{"failures have three or more reasons", len(d.reasons) >= 3},
		{"failures happen in two or more stages", len(d.stages) >= 2},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s: %v", c.what, d)
		}
	}
}

// TestDeliveryDataGrows checks that Advance keeps producing it: failed
// deployments, incidents after production deployments and reruns of
// failed pipelines appear as time goes on.
func TestDeliveryDataGrows(t *testing.T) {
	clock := epoch
	sim, srv := newServer(t, gitlabsim.Options{Seed: 5, Projects: 1, MRs: 20, Pipelines: 20, Now: func() time.Time { return clock }})
	before := readDelivery(t, srv)
	for range 200 {
		clock = clock.Add(10 * time.Minute)
		sim.Advance()
	}
	after := readDelivery(t, srv)
	t.Logf("before: %v\nafter: %v", before, after)
	if after.prodFailed <= before.prodFailed || after.incidents <= before.incidents || after.incidentsAfter <= before.incidentsAfter ||
		after.flaky <= before.flaky || after.shipsSeveral <= before.shipsSeveral || after.mrsOther <= before.mrsOther {
		t.Errorf("Advance added no failed deployment, incident, flaky failure, multi-MR deployment or MR to another branch")
	}
	if after.shippedBeforeMerge != 0 || after.mergedOther != 0 || after.commitAfterOpen != 0 || after.approvedByAuthor != 0 {
		t.Errorf("broken: %+v", after)
	}
}
