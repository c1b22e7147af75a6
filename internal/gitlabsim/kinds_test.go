package gitlabsim_test

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/gitlabsim"
)

var linkNext = regexp.MustCompile(`<([^>]+)>; rel="next"`)

// walkAll follows X-Next-Page, or a keyset Link rel="next", from first and
// returns every item, failing on a duplicate page or a non-200.
func walkAll(t testing.TB, srv *httptest.Server, first string) []map[string]any {
	t.Helper()
	var out []map[string]any
	next := first
	if !strings.HasPrefix(next, "http") {
		next = srv.URL + next
	}
	seen := map[string]bool{}
	for next != "" {
		if seen[next] {
			t.Fatalf("page %s twice", next)
		}
		seen[next] = true
		resp, body := get(t, srv, next)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", next, resp.StatusCode, body)
		}
		out = append(out, decode[[]map[string]any](t, body)...)
		cur := next
		next = ""
		if np := resp.Header.Get("X-Next-Page"); np != "" {
			u, _ := url.Parse(cur)
			q := u.Query()
			q.Set("page", np)
			u.RawQuery = q.Encode()
			next = u.String()
		} else if m := linkNext.FindStringSubmatch(resp.Header.Get("Link")); m != nil && resp.Header.Get("X-Page") == "" {
			next = m[1]
		}
	}
	return out
}

func num(v any) int64 {
	if n, ok := v.(json.Number); ok {
		i, _ := n.Int64()
		return i
	}
	return int64(v.(float64))
}

func parseTime(t testing.TB, v any) time.Time {
	t.Helper()
	tt, err := time.Parse(time.RFC3339Nano, v.(string))
	if err != nil {
		t.Fatalf("time %v: %v", v, err)
	}
	return tt
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// syncProject reads every object of project pid through the API the way
// docs/kinds.md says labtrail does, and returns id -> updated_at.
func syncProject(t *testing.T, srv *httptest.Server, pid int64) map[string]time.Time {
	t.Helper()
	got := map[string]time.Time{}
	put := func(id string, at time.Time) {
		if strings.HasPrefix(id, "note-") || strings.HasPrefix(id, "pipeline-") || strings.HasPrefix(id, "job-") || strings.HasPrefix(id, "image-") {
			// Kept to the whole second (docs/kinds.md).
			at = at.Truncate(time.Second)
		}
		if old, dup := got[id]; dup && !old.Equal(at) {
			t.Errorf("%s seen with %v and %v", id, old, at)
		}
		got[id] = at
	}
	base := fmt.Sprintf("/api/v4/projects/%d", pid)
	for _, m := range walkAll(t, srv, base+"/merge_requests?state=all&per_page=100") {
		iid := num(m["iid"])
		put(change.MergeRequestID(pid, iid), parseTime(t, m["updated_at"]))
		for _, n := range walkAll(t, srv, fmt.Sprintf("%s/merge_requests/%d/notes?per_page=100", base, iid)) {
			put(change.NoteID(pid, num(n["id"])), parseTime(t, n["updated_at"]))
		}
	}
	for _, pl := range walkAll(t, srv, base+"/pipelines?per_page=100") {
		put(change.PipelineID(pid, num(pl["id"])), parseTime(t, pl["updated_at"]))
		for _, j := range walkAll(t, srv, fmt.Sprintf("%s/pipelines/%d/jobs?per_page=100", base, num(pl["id"]))) {
			at := parseTime(t, j["created_at"])
			for _, k := range []string{"started_at", "finished_at"} {
				if j[k] != nil {
					at = later(at, parseTime(t, j[k]))
				}
			}
			put(change.JobID(pid, num(j["id"])), at)
		}
	}
	for _, c := range walkAll(t, srv, base+"/repository/commits?ref_name=main&with_stats=true&per_page=100") {
		put(change.CommitID(pid, c["id"].(string)), parseTime(t, c["committed_date"]))
	}
	for _, is := range walkAll(t, srv, base+"/issues?scope=all&state=all&per_page=100") {
		iid := num(is["iid"])
		put(change.IssueID(pid, iid), parseTime(t, is["updated_at"]))
		for _, n := range walkAll(t, srv, fmt.Sprintf("%s/issues/%d/notes?per_page=100", base, iid)) {
			put(change.NoteID(pid, num(n["id"])), parseTime(t, n["updated_at"]))
		}
	}
	for _, e := range walkAll(t, srv, base+"/events?target_type=note&per_page=100") {
		if n := e["note"].(map[string]any); n["noteable_type"] == "Commit" {
			put(change.NoteID(pid, num(n["id"])), parseTime(t, n["updated_at"]))
		}
	}
	for _, b := range walkAll(t, srv, base+"/repository/branches?per_page=100") {
		put(change.BranchID(pid, b["name"].(string)), parseTime(t, b["commit"].(map[string]any)["committed_date"]))
	}
	for _, tg := range walkAll(t, srv, base+"/repository/tags?per_page=100") {
		put(change.TagID(pid, tg["name"].(string)), parseTime(t, tg["commit"].(map[string]any)["committed_date"]))
	}
	for _, rl := range walkAll(t, srv, base+"/releases?per_page=100") {
		put(change.ReleaseID(pid, rl["tag_name"].(string)), later(parseTime(t, rl["created_at"]), parseTime(t, rl["released_at"])))
	}
	for _, d := range walkAll(t, srv, base+"/deployments?order_by=updated_at&sort=asc&per_page=100") {
		put(change.DeploymentID(pid, num(d["id"])), parseTime(t, d["updated_at"]))
	}
	for _, e := range walkAll(t, srv, base+"/environments?per_page=100") {
		put(change.EnvironmentID(pid, num(e["id"])), parseTime(t, e["updated_at"]))
	}
	for _, rp := range walkAll(t, srv, base+"/registry/repositories?per_page=100") {
		rid := num(rp["id"])
		for _, tg := range walkAll(t, srv, fmt.Sprintf("%s/registry/repositories/%d/tags?per_page=100", base, rid)) {
			name := tg["name"].(string)
			_, body := get(t, srv, fmt.Sprintf("%s/registry/repositories/%d/tags/%s", base, rid, url.PathEscape(name)))
			d := decode[map[string]any](t, body)
			put(change.ImageID(pid, rid, name, d["digest"].(string)), parseTime(t, d["created_at"]))
		}
	}
	return got
}

func truthOf(sim *gitlabsim.Sim, pid int64) map[string]time.Time {
	out := map[string]time.Time{}
	for _, e := range sim.Truth() {
		if strings.Split(e.ID, "-")[1] == fmt.Sprint(pid) {
			out[e.ID] = e.UpdatedAt
		}
	}
	return out
}

func diffTruth(t *testing.T, got, want map[string]time.Time) {
	t.Helper()
	n := 0
	for id, at := range want {
		if g, ok := got[id]; !ok {
			t.Errorf("truth has %s, the API does not", id)
			n++
		} else if !g.Equal(at) {
			t.Errorf("%s: API updated_at %v, truth %v", id, g, at)
			n++
		}
		if n > 20 {
			t.Fatal("too many differences")
		}
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			t.Errorf("the API has %s, truth does not", id)
		}
	}
}

// TestAPIEqualsTruth reads every kind through the API as labtrail does and
// requires exactly Truth's ids and updated_at, before and after activity.
func TestAPIEqualsTruth(t *testing.T) {
	sim, srv := newServer(t, gitlabsim.Options{Projects: 3, MRs: 25, Pipelines: 40, Issues: 12})
	pid := firstProjectID(t, srv)
	want := truthOf(sim, pid)
	kinds := map[change.Kind]bool{}
	for _, e := range sim.Truth() {
		kinds[e.Kind] = true
	}
	for _, k := range change.Kinds {
		if !kinds[k] {
			t.Errorf("truth has no %s", k)
		}
	}
	diffTruth(t, syncProject(t, srv, pid), want)
	for range 12 {
		sim.Advance()
	}
	diffTruth(t, syncProject(t, srv, pid), truthOf(sim, pid))
}

// TestAdvanceMovesEveryKind runs many steps: each one's changed objects are
// newer than anything of their kind in their project before the step, and
// over the run every kind changes.
func TestAdvanceMovesEveryKind(t *testing.T) {
	sim := gitlabsim.New(gitlabsim.Options{Projects: 2, MRs: 20, Pipelines: 20, Now: fixedClock})
	changed := map[change.Kind]int{}
	added := map[change.Kind]int{}
	for range 40 {
		before := map[string]time.Time{}
		newest := map[string]time.Time{}
		for _, e := range sim.Truth() {
			before[e.ID] = e.UpdatedAt
			k := string(e.Kind) + "-" + strings.Split(e.ID, "-")[1]
			newest[k] = later(newest[k], e.UpdatedAt)
		}
		sim.Advance()
		for _, e := range sim.Truth() {
			old, existed := before[e.ID]
			if existed && old.Equal(e.UpdatedAt) {
				continue
			}
			if existed && e.UpdatedAt.Before(old) {
				t.Fatalf("%s went back from %v to %v", e.ID, old, e.UpdatedAt)
			}
			changed[e.Kind]++
			if !existed {
				added[e.Kind]++
			}
			if e.Kind == change.KindJob {
				continue
			}
			k := string(e.Kind) + "-" + strings.Split(e.ID, "-")[1]
			if e.Kind == change.KindNote || e.Kind == change.KindPipeline || e.Kind == change.KindImage {
				// Kept to the second, changes made in one second
				// tie; the poller's bounds are inclusive.
				if e.UpdatedAt.Before(newest[k]) {
					t.Errorf("%s: updated_at %v before the newest %v", e.ID, e.UpdatedAt, newest[k])
				}
				continue
			}
			if !e.UpdatedAt.After(newest[k]) {
				t.Errorf("%s: updated_at %v not after the newest %v", e.ID, e.UpdatedAt, newest[k])
			}
		}
	}
	for _, k := range change.Kinds {
		if changed[k] == 0 {
			t.Errorf("no %s changed in 40 steps (changed %v)", k, changed)
		}
	}
	for _, k := range []change.Kind{change.KindMergeRequest, change.KindCommit, change.KindIssue, change.KindNote, change.KindBranch, change.KindTag, change.KindRelease, change.KindDeployment, change.KindImage} {
		if added[k] == 0 {
			t.Errorf("no new %s in 40 steps (added %v)", k, added)
		}
	}
}

func TestKindsDeterminism(t *testing.T) {
	o := gitlabsim.Options{Seed: 9, Projects: 3, MRs: 20, Pipelines: 30}
	_, s1 := newServer(t, o)
	_, s2 := newServer(t, o)
	pid := firstProjectID(t, s1)
	// An issue with notes: a closed one has at least its system note.
	closed := walkAll(t, s1, fmt.Sprintf("/api/v4/projects/%d/issues?state=closed&per_page=100", pid))
	if len(closed) == 0 {
		t.Fatal("no closed issue")
	}
	for _, path := range []string{
		"/repository/commits?with_stats=true", "/repository/branches", "/repository/tags", "/releases",
		"/issues", fmt.Sprintf("/issues/%v/notes", closed[0]["iid"]), "/merge_requests/3/notes", "/merge_requests/3/approvals", "/merge_requests/3/diffs",
		"/merge_requests/3/commits", "/events", "/deployments", "/environments", "/registry/repositories?tags=true", "/jobs",
	} {
		p := fmt.Sprintf("/api/v4/projects/%d%s", pid, path)
		_, b1 := get(t, s1, p)
		_, b2 := get(t, s2, p)
		b2 = []byte(strings.ReplaceAll(string(b2), s2.Listener.Addr().String(), s1.Listener.Addr().String()))
		if string(b1) != string(b2) || len(b1) < 10 {
			t.Errorf("%s differs between two sims with one seed (or is empty: %s)", path, b1)
		}
	}
	a := gitlabsim.New(gitlabsim.Options{Seed: 9, Projects: 2, MRs: 10, Pipelines: 10, Now: fixedClock})
	b := gitlabsim.New(gitlabsim.Options{Seed: 9, Projects: 2, MRs: 10, Pipelines: 10, Now: fixedClock})
	for range 10 {
		a.Advance()
		b.Advance()
	}
	if !reflect.DeepEqual(a.Truth(), b.Truth()) {
		t.Error("same seed and steps, different truth")
	}
}

func TestKindPaginationWalks(t *testing.T) {
	sim, srv := newServer(t, gitlabsim.Options{Projects: 1, MRs: 40, Pipelines: 50, Issues: 23})
	for range 5 {
		sim.Advance()
	}
	pid := firstProjectID(t, srv)
	base := fmt.Sprintf("/api/v4/projects/%d", pid)
	key := func(k string) func(map[string]any) string {
		return func(m map[string]any) string { return fmt.Sprint(m[k]) }
	}
	tests := []struct {
		path string
		key  func(map[string]any) string
	}{
		{"/repository/commits?per_page=7", key("id")},
		{"/repository/branches?per_page=9", key("name")},
		{"/repository/branches?per_page=9&sort=updated_desc", key("name")},
		{"/repository/tags?per_page=2&order_by=name&sort=asc", key("name")},
		{"/releases?per_page=2", key("tag_name")},
		{"/issues?per_page=5", key("iid")},
		{"/issues?per_page=5&order_by=updated_at&sort=asc", key("iid")},
		{"/merge_requests/1/notes?per_page=2", key("id")},
		{"/events?per_page=13", key("id")},
		{"/events?per_page=13&sort=asc", key("id")},
		{"/deployments?per_page=6", key("id")},
		{"/deployments?per_page=6&order_by=updated_at&sort=desc", key("id")},
		{"/environments?per_page=2", key("id")},
		{"/jobs?per_page=17", key("id")},
		{"/merge_requests/2/diffs?per_page=1", key("new_path")},
		{"/merge_requests/2/commits?per_page=1", key("id")},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			paged := walkAll(t, srv, base+tc.path)
			u, _ := url.Parse(tc.path)
			q := u.Query()
			q.Set("per_page", "100")
			whole := walkAll(t, srv, base+u.Path+"?"+q.Encode())
			seen := map[string]bool{}
			for _, it := range paged {
				k := tc.key(it)
				if seen[k] {
					t.Fatalf("duplicate %s", k)
				}
				seen[k] = true
			}
			if len(paged) != len(whole) || len(paged) == 0 {
				t.Fatalf("walked %d, one big walk %d", len(paged), len(whole))
			}
			for i := range whole {
				if tc.key(whole[i]) != tc.key(paged[i]) {
					t.Fatalf("order differs at %d", i)
				}
			}
		})
	}
	// Commits: no totals, as GitLab.
	resp, _ := get(t, srv, base+"/repository/commits?per_page=5")
	if _, ok := resp.Header["X-Total"]; ok || resp.Header.Get("X-Next-Page") != "2" || strings.Contains(resp.Header.Get("Link"), `rel="last"`) {
		t.Errorf("commit headers %v", resp.Header)
	}
}

func TestCommitsSinceUntilAndRefs(t *testing.T) {
	_, srv := newServer(t, gitlabsim.Options{Projects: 1, MRs: 40, Pipelines: 10})
	pid := firstProjectID(t, srv)
	base := fmt.Sprintf("/api/v4/projects/%d/repository/commits", pid)
	all := walkAll(t, srv, base+"?per_page=100")
	for i := 1; i < len(all); i++ {
		if parseTime(t, all[i]["committed_date"]).After(parseTime(t, all[i-1]["committed_date"])) {
			t.Fatal("commits not newest first")
		}
	}
	pivot := parseTime(t, all[len(all)/2]["committed_date"])
	count := func(f func(time.Time) bool) int {
		n := 0
		for _, c := range all {
			if f(parseTime(t, c["committed_date"])) {
				n++
			}
		}
		return n
	}
	for q, want := range map[string]int{
		"since=" + pivot.Format(time.RFC3339Nano):                                              count(func(c time.Time) bool { return !c.Before(pivot) }),
		"until=" + pivot.Format(time.RFC3339Nano):                                              count(func(c time.Time) bool { return !c.After(pivot) }),
		"since=" + pivot.Add(time.Millisecond).Format(time.RFC3339Nano):                        count(func(c time.Time) bool { return c.After(pivot) }),
		"since=" + pivot.Format(time.RFC3339Nano) + "&until=" + pivot.Format(time.RFC3339Nano): count(func(c time.Time) bool { return c.Equal(pivot) }),
	} {
		got := walkAll(t, srv, base+"?per_page=100&"+strings.ReplaceAll(q, "+", "%2B"))
		if len(got) != want {
			t.Errorf("%s: %d commits, want %d", q, len(got), want)
		}
	}
	// Merged MRs' merge_commit_sha is a commit on main with the MR's
	// rebased head as second parent; an open MR's branch has its commits
	// on top of main's.
	onMain := map[string]map[string]any{}
	for _, c := range all {
		onMain[c["id"].(string)] = c
	}
	mrs := walkAll(t, srv, fmt.Sprintf("/api/v4/projects/%d/merge_requests?per_page=100", pid))
	var merged, open int
	for _, m := range mrs {
		commits := walkAll(t, srv, fmt.Sprintf("/api/v4/projects/%d/merge_requests/%d/commits", pid, num(m["iid"])))
		if n := len(commits); n < 1 || n > 5 || commits[0]["id"] != m["sha"] {
			t.Fatalf("MR %v: %d commits, head %v, sha %v", m["iid"], n, commits[0]["id"], m["sha"])
		}
		switch m["state"] {
		case "merged":
			merged++
			mc := onMain[m["merge_commit_sha"].(string)]
			if mc == nil || mc["parent_ids"].([]any)[1] != m["sha"] {
				t.Fatalf("MR %v: merge commit %v not on main with the MR head as parent", m["iid"], m["merge_commit_sha"])
			}
			for _, c := range commits {
				if onMain[c["id"].(string)] == nil {
					t.Fatalf("MR %v: commit %v not on main", m["iid"], c["id"])
				}
			}
		case "opened":
			open++
			branch := walkAll(t, srv, fmt.Sprintf("%s?per_page=100&ref_name=%s", base, url.QueryEscape(m["source_branch"].(string))))
			if branch[0]["id"] != m["sha"] || len(branch) <= len(commits) || onMain[branch[len(commits)]["id"].(string)] == nil {
				t.Fatalf("MR %v: branch listing does not put the MR's commits on main's", m["iid"])
			}
		}
	}
	if merged == 0 || open == 0 {
		t.Fatalf("merged %d open %d", merged, open)
	}
	if resp, _ := get(t, srv, base+"?ref_name=nope"); resp.StatusCode != 404 {
		t.Errorf("unknown ref: %d", resp.StatusCode)
	}
	// A single commit, by sha.
	resp, body := get(t, srv, fmt.Sprintf("%s/%s", base, all[3]["id"]))
	if resp.StatusCode != 200 || decode[map[string]any](t, body)["id"] != all[3]["id"] {
		t.Errorf("single commit: %d %s", resp.StatusCode, body)
	}
}

func TestMRDetailsAgree(t *testing.T) {
	_, srv := newServer(t, gitlabsim.Options{Projects: 1, MRs: 30, Pipelines: 5})
	pid := firstProjectID(t, srv)
	base := fmt.Sprintf("/api/v4/projects/%d/merge_requests", pid)
	for _, m := range walkAll(t, srv, base+"?per_page=100") {
		iid := num(m["iid"])
		_, body := get(t, srv, fmt.Sprintf("%s/%d/approvals", base, iid))
		ap := decode[map[string]any](t, body)
		notes := walkAll(t, srv, fmt.Sprintf("%s/%d/notes?sort=asc", base, iid))
		var approvedNotes []string
		user := 0
		for i, n := range notes {
			if n["body"] == "approved this merge request" && n["system"] == true {
				approvedNotes = append(approvedNotes, fmt.Sprint(n["author"].(map[string]any)["id"], n["created_at"]))
			}
			if n["system"] == false {
				user++
			}
			if i > 0 && n["created_at"].(string) < notes[i-1]["created_at"].(string) {
				t.Fatal("notes sort=asc out of order")
			}
			if parseTime(t, n["updated_at"]).After(parseTime(t, m["updated_at"])) {
				t.Errorf("MR %d: note %v newer than the MR", iid, n["id"])
			}
		}
		var approvedBy []string
		for _, a := range ap["approved_by"].([]any) {
			a := a.(map[string]any)
			approvedBy = append(approvedBy, fmt.Sprint(a["user"].(map[string]any)["id"], a["approved_at"]))
		}
		if !slices.Equal(approvedBy, approvedNotes) {
			t.Errorf("MR %d: approved_by %v, system notes %v", iid, approvedBy, approvedNotes)
		}
		if m["state"] == "merged" && len(approvedBy) == 0 {
			t.Errorf("MR %d merged without approval", iid)
		}
		if num(m["user_notes_count"]) != int64(user) {
			t.Errorf("MR %d: user_notes_count %v, %d user notes", iid, m["user_notes_count"], user)
		}
		// The diff's +/- lines are the commits' additions and deletions.
		var add, del int
		for _, d := range walkAll(t, srv, fmt.Sprintf("%s/%d/diffs", base, iid)) {
			for _, l := range strings.Split(d["diff"].(string), "\n") {
				switch {
				case strings.HasPrefix(l, "+"):
					add++
				case strings.HasPrefix(l, "-"):
					del++
				}
			}
		}
		var cadd, cdel int64
		for _, c := range walkAll(t, srv, fmt.Sprintf("%s/%d/commits", base, iid)) {
			_, body := get(t, srv, fmt.Sprintf("/api/v4/projects/%d/repository/commits/%s", pid, c["id"]))
			st := decode[map[string]any](t, body)["stats"].(map[string]any)
			cadd += num(st["additions"])
			cdel += num(st["deletions"])
		}
		if int64(add) != cadd || int64(del) != cdel || add == 0 {
			t.Errorf("MR %d: diff +%d -%d, commits +%d -%d", iid, add, del, cadd, cdel)
		}
	}
}

func TestIssuesFilters(t *testing.T) {
	_, srv := newServer(t, gitlabsim.Options{Projects: 1, MRs: 5, Pipelines: 5, Issues: 80})
	pid := firstProjectID(t, srv)
	base := fmt.Sprintf("/api/v4/projects/%d/issues?per_page=100", pid)
	all := walkAll(t, srv, base+"&scope=all&state=all")
	if len(all) != 80 {
		t.Fatalf("%d issues", len(all))
	}
	by := map[string]int{}
	for _, is := range all {
		by[is["state"].(string)]++
		by[is["issue_type"].(string)]++
		if (is["state"] == "closed") != (is["closed_at"] != nil) {
			t.Errorf("issue %v: state %v closed_at %v", is["iid"], is["state"], is["closed_at"])
		}
	}
	if by["closed"] == 0 || by["opened"] == 0 || by["incident"] == 0 {
		t.Fatalf("%v", by)
	}
	for q, want := range map[string]int{
		"&state=closed": by["closed"], "&state=opened": by["opened"], "&issue_type=incident": by["incident"],
		"": len(all),
	} {
		if got := walkAll(t, srv, base+q); len(got) != want {
			t.Errorf("%s: %d, want %d", q, len(got), want)
		}
	}
	sorted := walkAll(t, srv, base+"&order_by=updated_at&sort=asc")
	pivot := parseTime(t, sorted[40]["updated_at"])
	after := walkAll(t, srv, base+"&order_by=updated_at&sort=asc&updated_after="+url.QueryEscape(pivot.Format(time.RFC3339Nano)))
	if len(after) != len(sorted)-slices.IndexFunc(sorted, func(m map[string]any) bool { return !parseTime(t, m["updated_at"]).Before(pivot) }) {
		t.Errorf("updated_after: %d", len(after))
	}
	if resp, _ := get(t, srv, base+"&state=nope"); resp.StatusCode != 400 {
		t.Errorf("bad state: %d", resp.StatusCode)
	}
}

func TestEventsFilters(t *testing.T) {
	_, srv := newServer(t, gitlabsim.Options{Projects: 1, MRs: 60, Pipelines: 5, Issues: 20})
	pid := firstProjectID(t, srv)
	base := fmt.Sprintf("/api/v4/projects/%d/events?per_page=100", pid)
	all := walkAll(t, srv, base)
	actions := map[string]int{}
	for i, e := range all {
		actions[e["action_name"].(string)]++
		if i > 0 && num(e["id"]) >= num(all[i-1]["id"]) {
			t.Fatal("events not newest first")
		}
	}
	for _, a := range []string{"opened", "accepted", "closed", "commented on", "pushed to"} {
		if actions[a] == 0 {
			t.Errorf("no %q events: %v", a, actions)
		}
	}
	notes := walkAll(t, srv, base+"&target_type=note")
	commitNotes := 0
	for _, e := range notes {
		n, ok := e["note"].(map[string]any)
		if e["action_name"] != "commented on" || !ok || e["target_type"] != "Note" {
			t.Fatalf("note event %v", e)
		}
		if n["noteable_type"] == "Commit" {
			commitNotes++
		}
	}
	if len(notes) != actions["commented on"] || commitNotes == 0 {
		t.Errorf("target_type=note: %d (commented on %d), commit notes %d", len(notes), actions["commented on"], commitNotes)
	}
	if got := walkAll(t, srv, base+"&action=pushed"); len(got) != actions["pushed to"] {
		t.Errorf("action=pushed: %d", len(got))
	}
	// after and before are dates, both exclusive.
	day := parseTime(t, all[len(all)/2]["created_at"]).Truncate(24 * time.Hour)
	var wantAfter, wantBefore int
	for _, e := range all {
		at := parseTime(t, e["created_at"])
		if !at.Before(day.AddDate(0, 0, 1)) {
			wantAfter++
		}
		if at.Before(day) {
			wantBefore++
		}
	}
	d := day.Format(time.DateOnly)
	if got := walkAll(t, srv, base+"&after="+d); len(got) != wantAfter {
		t.Errorf("after=%s: %d, want %d", d, len(got), wantAfter)
	}
	if got := walkAll(t, srv, base+"&before="+d); len(got) != wantBefore {
		t.Errorf("before=%s: %d, want %d", d, len(got), wantBefore)
	}
	if got := walkAll(t, srv, base+"&after="+d+"&before="+day.AddDate(0, 0, 1).Format(time.DateOnly)); len(got) != 0 {
		t.Errorf("after=d&before=d+1: %d, want none", len(got))
	}
}

func TestDeploymentsAndEnvironments(t *testing.T) {
	sim, srv := newServer(t, gitlabsim.Options{Projects: 1, MRs: 20, Pipelines: 120})
	pid := firstProjectID(t, srv)
	base := fmt.Sprintf("/api/v4/projects/%d/deployments?per_page=100", pid)
	for _, q := range []string{"&updated_after=2025-01-01T00:00:00Z", "&updated_after=2025-01-01T00:00:00Z&order_by=id", "&finished_after=2025-01-01T00:00:00Z&order_by=finished_at", "&order_by=ref"} {
		resp, body := get(t, srv, base+q)
		if resp.StatusCode != 400 || !strings.Contains(string(body), `"message":"400`) && !strings.Contains(string(body), "order_by") {
			t.Errorf("%s: %d %s", q, resp.StatusCode, body)
		}
	}
	all := walkAll(t, srv, base)
	statuses := map[string]int{}
	envs := map[string]int{}
	for i, d := range all {
		statuses[d["status"].(string)]++
		envs[d["environment"].(map[string]any)["name"].(string)]++
		if d["ref"] != "main" || i > 0 && num(d["id"]) <= num(all[i-1]["id"]) || num(d["iid"]) != int64(i+1) {
			t.Fatalf("deployment %v: ref %v, iid %v", d["id"], d["ref"], d["iid"])
		}
		dep := d["deployable"].(map[string]any)
		if !strings.HasPrefix(dep["name"].(string), "deploy-") || dep["pipeline"].(map[string]any)["sha"] != d["sha"] {
			t.Fatalf("deployable %v", dep)
		}
	}
	if statuses["success"] == 0 || envs["production"] == 0 || envs["staging"] == 0 {
		t.Fatalf("statuses %v envs %v", statuses, envs)
	}
	for st, n := range statuses {
		if got := walkAll(t, srv, base+"&status="+st); len(got) != n {
			t.Errorf("status=%s: %d, want %d", st, len(got), n)
		}
	}
	if got := walkAll(t, srv, base+"&environment=staging"); len(got) != envs["staging"] {
		t.Errorf("environment=staging: %d", len(got))
	}
	byUpd := walkAll(t, srv, base+"&order_by=updated_at&sort=asc")
	pivot := parseTime(t, byUpd[len(byUpd)/2]["updated_at"])
	after := walkAll(t, srv, base+"&order_by=updated_at&sort=asc&updated_after="+url.QueryEscape(pivot.Format(time.RFC3339Nano)))
	if want := len(byUpd) - len(byUpd)/2; len(after) < want || len(after) == len(byUpd) {
		t.Errorf("updated_after: %d, want %d", len(after), want)
	}
	// Deployments started by Advance run over the following steps.
	seen := map[string]bool{}
	for range 30 {
		sim.Advance()
		for _, d := range walkAll(t, srv, base+"&order_by=updated_at&sort=desc") {
			seen[d["status"].(string)] = true
		}
	}
	for _, st := range []string{"created", "running", "success"} {
		if !seen[st] {
			t.Errorf("no %s deployment while advancing (saw %v)", st, seen)
		}
	}

	envList := walkAll(t, srv, fmt.Sprintf("/api/v4/projects/%d/environments", pid))
	states := map[string]int{}
	tiers := map[string]int{}
	for _, e := range envList {
		states[e["state"].(string)]++
		tiers[e["tier"].(string)]++
		if e["tier"] == "development" && !strings.HasPrefix(e["name"].(string), "review/") {
			t.Errorf("env %v", e["name"])
		}
	}
	if tiers["production"] != 1 || tiers["staging"] != 1 || tiers["development"] == 0 || states["stopped"] == 0 {
		t.Errorf("tiers %v states %v", tiers, states)
	}
	if got := walkAll(t, srv, fmt.Sprintf("/api/v4/projects/%d/environments?states=stopped", pid)); len(got) != states["stopped"] {
		t.Errorf("states=stopped: %d", len(got))
	}
}

func TestRegistry(t *testing.T) {
	_, srv := newServer(t, gitlabsim.Options{Projects: 1, MRs: 60, Pipelines: 150})
	pid := firstProjectID(t, srv)
	base := fmt.Sprintf("/api/v4/projects/%d/registry/repositories", pid)
	_, body := get(t, srv, base)
	repos := decode[[]map[string]any](t, body)
	if len(repos) != 1 || repos[0]["tags_count"] != nil || repos[0]["tags"] != nil {
		t.Fatalf("repos %s", body)
	}
	_, body = get(t, srv, base+"?tags=true&tags_count=true")
	repo := decode[[]map[string]any](t, body)[0]
	n := num(repo["tags_count"])
	if n < 3 || int64(len(repo["tags"].([]any))) != n {
		t.Fatalf("tags_count %d, tags %d", n, len(repo["tags"].([]any)))
	}
	tagsURL := fmt.Sprintf("%s/%d/tags", base, num(repo["id"]))
	offset := walkAll(t, srv, tagsURL+"?per_page=4")
	keyset := walkAll(t, srv, tagsURL+"?per_page=4&pagination=keyset")
	if int64(len(offset)) != n || len(keyset) != len(offset) {
		t.Fatalf("offset %d keyset %d, want %d", len(offset), len(keyset), n)
	}
	for i := range offset {
		if offset[i]["name"] != keyset[i]["name"] || i > 0 && offset[i]["name"].(string) <= offset[i-1]["name"].(string) {
			t.Fatalf("tag order at %d", i)
		}
	}
	digests := map[string]bool{}
	for _, tg := range offset[:5] {
		_, body := get(t, srv, tagsURL+"/"+tg["name"].(string))
		d := decode[map[string]any](t, body)
		dg := d["digest"].(string)
		if !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(dg) || digests[dg] || num(d["total_size"]) <= 0 ||
			d["short_revision"] != d["revision"].(string)[:9] || "sha256:"+d["revision"].(string) != dg {
			t.Errorf("tag details %s", body)
		}
		digests[dg] = true
	}
	if resp, _ := get(t, srv, tagsURL+"/nope"); resp.StatusCode != 404 {
		t.Errorf("missing tag: %d", resp.StatusCode)
	}
	if resp, _ := get(t, srv, base+"/1/tags"); resp.StatusCode != 404 {
		t.Errorf("missing repository: %d", resp.StatusCode)
	}
}

func TestGroupsSubgroupsArchivedKeyset(t *testing.T) {
	_, srv := newServer(t, gitlabsim.Options{Projects: 5, Groups: 2, MRs: 2, Pipelines: 2, Archived: 1})
	paths := func(path string) []string {
		var out []string
		for _, p := range walkAll(t, srv, path) {
			out = append(out, p["path_with_namespace"].(string))
		}
		slices.Sort(out)
		return out
	}
	direct := paths("/api/v4/groups/acme/projects")
	withSub := paths("/api/v4/groups/acme/projects?include_subgroups=true")
	sub := paths("/api/v4/groups/" + url.PathEscape("acme/tools") + "/projects")
	if len(sub) != 1 || !strings.HasPrefix(sub[0], "acme/tools/") || slices.Contains(direct, sub[0]) || !slices.Contains(withSub, sub[0]) || len(withSub) != len(direct)+1 {
		t.Fatalf("direct %v, with subgroups %v, acme/tools %v", direct, withSub, sub)
	}
	_, body := get(t, srv, "/api/v4/projects/"+url.PathEscape(sub[0]))
	ns := decode[map[string]any](t, body)["namespace"].(map[string]any)
	if ns["full_path"] != "acme/tools" || ns["parent_id"] == nil {
		t.Errorf("subgroup namespace %v", ns)
	}

	all := walkAll(t, srv, "/api/v4/projects?per_page=100")
	var archived []string
	for _, p := range all {
		if p["archived"] == true {
			archived = append(archived, p["path_with_namespace"].(string))
		}
	}
	active := paths("/api/v4/projects?archived=false&membership=true")
	if len(archived) != 1 || len(active) != len(all)-1 || slices.Contains(active, archived[0]) {
		t.Fatalf("archived %v, active %v of %d", archived, active, len(all))
	}

	// Keyset pagination: Link only, ids ascending, everything once.
	resp, _ := get(t, srv, "/api/v4/projects?pagination=keyset&order_by=id&sort=asc&per_page=2")
	for _, h := range []string{"X-Total", "X-Page", "X-Next-Page", "X-Total-Pages"} {
		if _, ok := resp.Header[h]; ok {
			t.Errorf("keyset page has %s", h)
		}
	}
	if !strings.Contains(resp.Header.Get("Link"), "id_after=") {
		t.Errorf("keyset Link %q", resp.Header.Get("Link"))
	}
	for _, first := range []string{"/api/v4/projects?pagination=keyset&order_by=id&sort=asc&per_page=2", "/api/v4/groups/acme/projects?pagination=keyset&order_by=id&sort=asc&per_page=1&include_subgroups=true"} {
		got := walkAll(t, srv, first)
		var ids []int64
		for _, p := range got {
			ids = append(ids, num(p["id"]))
		}
		if !slices.IsSorted(ids) || len(slices.Compact(slices.Clone(ids))) != len(ids) {
			t.Errorf("%s: ids %v", first, ids)
		}
		if strings.HasPrefix(first, "/api/v4/projects") && len(got) != len(all) || strings.Contains(first, "groups") && len(got) != len(withSub) {
			t.Errorf("%s: %d projects", first, len(got))
		}
	}
	if resp, _ := get(t, srv, "/api/v4/projects?pagination=keyset&order_by=name"); resp.StatusCode != 405 {
		t.Errorf("keyset by name: %d", resp.StatusCode)
	}
}
