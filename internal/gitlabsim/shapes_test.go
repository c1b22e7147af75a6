package gitlabsim_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/labtrail/labtrail/internal/gitlabsim"
)

// The simulator's JSON must match GitLab's, field for field. Where the
// official client ships a real GitLab payload (copied into testdata/ from
// gitlab.com/gitlab-org/api/client-go/v2@v2.64.0/testdata) the test compares
// against it; for the rest it compares against the field lists of GitLab's
// API docs, written out below.

// jsonType names a decoded JSON value's type.
func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "boolean"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	}
	return fmt.Sprintf("%T", v)
}

// shape is, per field, the set of JSON types a field may have.
type shape map[string][]string

// shapeOf collects the field types seen across sample objects.
func shapeOf(items []map[string]any) shape {
	s := shape{}
	for _, it := range items {
		for k, v := range it {
			if t := jsonType(v); !slices.Contains(s[k], t) {
				s[k] = append(s[k], t)
			}
		}
	}
	return s
}

// checkShape reports fields of want missing from any of got's items, or
// present with another type. A field GitLab's sample only shows as null
// says nothing of its type, so any type passes; nullable names fields that
// GitLab documents as sometimes null although the sample shows a value.
// Objects are compared one level down, with "field.sub" names.
func checkShape(t *testing.T, what string, want shape, got []map[string]any, nullable map[string]bool, nested map[string]shape) {
	t.Helper()
	if len(got) == 0 {
		t.Fatalf("%s: nothing to compare", what)
	}
	names := make([]string, 0, len(want))
	for k := range want {
		names = append(names, k)
	}
	sort.Strings(names)
	for i, it := range got {
		for _, k := range names {
			types := want[k]
			v, ok := it[k]
			if !ok {
				t.Errorf("%s[%d]: field %q missing", what, i, k)
				continue
			}
			tt := jsonType(v)
			switch {
			case slices.Equal(types, []string{"null"}):
			case slices.Contains(types, tt):
			case tt == "null" && nullable[k]:
			default:
				t.Errorf("%s[%d]: field %q is %s (%v), GitLab sends %v", what, i, k, tt, v, types)
			}
			if sub, ok := nested[k]; ok && tt == "object" {
				var subNullable = map[string]bool{}
				for n := range nullable {
					if p, ok := strings.CutPrefix(n, k+"."); ok {
						subNullable[p] = true
					}
				}
				checkShape(t, what+"."+k, sub, []map[string]any{v.(map[string]any)}, subNullable, nil)
			}
		}
	}
}

func readSample(t *testing.T, name string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var list []map[string]any
	if err := json.Unmarshal(b, &list); err == nil {
		return list
	}
	var one map[string]any
	if err := json.Unmarshal(b, &one); err != nil {
		t.Fatal(err)
	}
	return []map[string]any{one}
}

// nestedShapes gives the one-level-down shapes of object fields in samples.
func nestedShapes(items []map[string]any) map[string]shape {
	byField := map[string][]map[string]any{}
	for _, it := range items {
		for k, v := range it {
			if o, ok := v.(map[string]any); ok {
				byField[k] = append(byField[k], o)
			}
		}
	}
	out := map[string]shape{}
	for k, objs := range byField {
		out[k] = shapeOf(objs)
	}
	return out
}

func getItems(t *testing.T, body []byte) []map[string]any {
	t.Helper()
	var list []map[string]any
	if err := json.Unmarshal(body, &list); err == nil {
		return list
	}
	return []map[string]any{decode[map[string]any](t, body)}
}

// GitLab writes record times in UTC with Z, and dates of git objects
// (commits) with the committer's offset, +00:00 here.
var gitlabTime = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)$`)

// checkTimes requires every *_at field that is a string to be formatted as
// GitLab formats timestamps.
func checkTimes(t *testing.T, what string, v any) {
	t.Helper()
	switch x := v.(type) {
	case map[string]any:
		for k, sub := range x {
			if s, ok := sub.(string); ok && strings.HasSuffix(k, "_at") && k != "expires_at" && !gitlabTime.MatchString(s) {
				t.Errorf("%s.%s = %q, not GitLab's timestamp format", what, k, s)
			}
			checkTimes(t, what+"."+k, sub)
		}
	case []any:
		for _, sub := range x {
			checkTimes(t, what, sub)
		}
	}
}

func TestShapesMatchGitLabSamples(t *testing.T) {
	_, srv := newServer(t, gitlabsim.Options{Projects: 1, MRs: 60, Pipelines: 120})
	pid := firstProjectID(t, srv)

	_, body := get(t, srv, fmt.Sprintf("/api/v4/projects/%d/merge_requests?state=all&per_page=100", pid))
	mrs := getItems(t, body)
	states := map[string]bool{}
	for _, m := range mrs {
		states[m["state"].(string)] = true
	}
	if !states["opened"] || !states["merged"] || !states["closed"] {
		t.Fatalf("want every MR state to compare, got %v", states)
	}

	var singles []map[string]any
	for _, m := range mrs[:20] {
		_, body := get(t, srv, fmt.Sprintf("/api/v4/projects/%d/merge_requests/%.0f", pid, m["iid"]))
		singles = append(singles, getItems(t, body)...)
	}
	_, userBody := get(t, srv, "/api/v4/user")
	_, tokenBody := get(t, srv, "/api/v4/personal_access_tokens/self")

	// Fields GitLab's docs show as null in some answers although the
	// sample happens to carry a value.
	mrNullable := map[string]bool{
		"approvals_before_merge": true, // docs: "approvals_before_merge": null
		"assignee":               true, // null when unassigned
		"milestone":              true,
	}
	singleNullable := map[string]bool{
		"approvals_before_merge": true, "assignee": true, "milestone": true,
		// No pipeline yet: pipeline, head_pipeline and the build times are null.
		"pipeline": true, "head_pipeline": true, "latest_build_started_at": true, "latest_build_finished_at": true,
		// Pipelines without coverage or not yet finished.
		"head_pipeline.coverage": true, "head_pipeline.started_at": true, "head_pipeline.finished_at": true,
		"head_pipeline.duration": true,
	}

	tests := []struct {
		sample   string
		got      []map[string]any
		nullable map[string]bool
	}{
		{"get_merge_requests.json", mrs, mrNullable},
		{"get_merge_request.json", singles, singleNullable},
		{"get_user.json", getItems(t, userBody), nil},
		{"list_personal_access_tokens_single.json", getItems(t, tokenBody), nil},
	}
	for _, tc := range tests {
		t.Run(tc.sample, func(t *testing.T) {
			sample := readSample(t, tc.sample)
			checkShape(t, tc.sample, shapeOf(sample), tc.got, tc.nullable, nestedShapes(sample))
			for i, it := range tc.got {
				checkTimes(t, fmt.Sprintf("%s[%d]", tc.sample, i), it)
			}
		})
	}
}

// Field lists from GitLab's docs for endpoints the client module has no
// sample of: docs.gitlab.com/api/pipelines (list project pipelines, get a
// single pipeline), /api/jobs (list pipeline jobs), /api/projects (list
// projects, simple=true), /api/version and /api/metadata.
var (
	pipelineListDoc = shape{
		"id": {"number"}, "iid": {"number"}, "project_id": {"number"}, "status": {"string"},
		"source": {"string"}, "ref": {"string"}, "sha": {"string"}, "name": {"string", "null"},
		"web_url": {"string"}, "created_at": {"string"}, "updated_at": {"string"},
	}
	pipelineSingleDoc = merge(pipelineListDoc, shape{
		"before_sha": {"string"}, "tag": {"boolean"}, "yaml_errors": {"string", "null"}, "user": {"object"},
		"started_at": {"string", "null"}, "finished_at": {"string", "null"}, "committed_at": {"string", "null"},
		"duration": {"number", "null"}, "queued_duration": {"number", "null"}, "coverage": {"string", "null"},
		"detailed_status": {"object"},
	})
	detailedStatusDoc = shape{
		"icon": {"string"}, "text": {"string"}, "label": {"string"}, "group": {"string"}, "tooltip": {"string"},
		"has_details": {"boolean"}, "details_path": {"string"}, "illustration": {"object", "null"}, "favicon": {"string"},
	}
	userBasicDoc = shape{
		"id": {"number"}, "username": {"string"}, "name": {"string"}, "state": {"string"},
		"avatar_url": {"string", "null"}, "web_url": {"string"},
	}
	jobDoc = shape{
		"commit": {"object"}, "coverage": {"number", "null"}, "allow_failure": {"boolean"},
		"created_at": {"string"}, "started_at": {"string", "null"}, "finished_at": {"string", "null"},
		"erased_at": {"string", "null"}, "duration": {"number", "null"}, "queued_duration": {"number", "null"},
		"artifacts_expire_at": {"string", "null"}, "tag_list": {"array"}, "id": {"number"}, "name": {"string"},
		"pipeline": {"object"}, "ref": {"string"}, "artifacts": {"array"}, "runner": {"object", "null"},
		"stage": {"string"}, "status": {"string"}, "tag": {"boolean"}, "web_url": {"string"},
		"project": {"object"}, "user": {"object"}, "archived": {"boolean"},
	}
	jobCommitDoc = shape{
		"author_email": {"string"}, "author_name": {"string"}, "created_at": {"string"}, "id": {"string"},
		"message": {"string"}, "short_id": {"string"}, "title": {"string"},
	}
	jobPipelineDoc = shape{
		"id": {"number"}, "project_id": {"number"}, "ref": {"string"}, "sha": {"string"}, "status": {"string"},
	}
	projectSimpleDoc = shape{
		"id": {"number"}, "description": {"string", "null"}, "name": {"string"}, "name_with_namespace": {"string"},
		"path": {"string"}, "path_with_namespace": {"string"}, "created_at": {"string"},
		"default_branch": {"string"}, "tag_list": {"array"}, "topics": {"array"},
		"ssh_url_to_repo": {"string"}, "http_url_to_repo": {"string"}, "web_url": {"string"},
		"readme_url": {"string", "null"}, "forks_count": {"number"}, "avatar_url": {"string", "null"},
		"star_count": {"number"}, "last_activity_at": {"string"}, "namespace": {"object"},
	}
	projectDoc = merge(projectSimpleDoc, shape{
		"visibility": {"string"}, "issues_enabled": {"boolean"}, "open_issues_count": {"number"},
		"merge_requests_enabled": {"boolean"}, "jobs_enabled": {"boolean"}, "wiki_enabled": {"boolean"},
		"snippets_enabled": {"boolean"}, "can_create_merge_request_in": {"boolean"},
		"resolve_outdated_diff_discussions": {"boolean"}, "container_registry_enabled": {"boolean"},
		"creator_id": {"number"}, "import_status": {"string"}, "archived": {"boolean"},
		"shared_runners_enabled": {"boolean"}, "ci_default_git_depth": {"number"}, "public_jobs": {"boolean"},
		"shared_with_groups": {"array"}, "only_allow_merge_if_pipeline_succeeds": {"boolean"},
		"allow_merge_on_skipped_pipeline": {"boolean"}, "only_allow_merge_if_all_discussions_are_resolved": {"boolean"},
		"remove_source_branch_after_merge": {"boolean"}, "request_access_enabled": {"boolean"},
		"merge_method": {"string"}, "autoclose_referenced_issues": {"boolean"}, "permissions": {"object"},
		"_links": {"object"}, "updated_at": {"string"},
	})
	namespaceDoc = shape{
		"id": {"number"}, "name": {"string"}, "path": {"string"}, "kind": {"string"}, "full_path": {"string"},
	}
	versionDoc  = shape{"version": {"string"}, "revision": {"string"}}
	metadataDoc = shape{"version": {"string"}, "revision": {"string"}, "kas": {"object"}, "enterprise": {"boolean"}}
	kasDoc      = shape{
		"enabled": {"boolean"}, "externalUrl": {"string", "null"}, "externalK8sProxyUrl": {"string", "null"},
		"version": {"string", "null"},
	}
)

func merge(a, b shape) shape {
	out := shape{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

func TestShapesMatchGitLabDocs(t *testing.T) {
	_, srv := newServer(t, gitlabsim.Options{Projects: 3, MRs: 10, Pipelines: 150})
	pid := firstProjectID(t, srv)

	_, body := get(t, srv, fmt.Sprintf("/api/v4/projects/%d/pipelines?per_page=100", pid))
	pipes := getItems(t, body)
	var singles, jobs []map[string]any
	seen := map[string]bool{}
	for _, p := range pipes {
		st := p["status"].(string)
		if seen[st] {
			continue
		}
		seen[st] = true
		_, body := get(t, srv, fmt.Sprintf("/api/v4/projects/%d/pipelines/%.0f", pid, p["id"]))
		singles = append(singles, getItems(t, body)...)
		_, body = get(t, srv, fmt.Sprintf("/api/v4/projects/%d/pipelines/%.0f/jobs", pid, p["id"]))
		jobs = append(jobs, getItems(t, body)...)
	}
	for _, st := range []string{"success", "failed", "running"} {
		if !seen[st] {
			t.Errorf("no %s pipeline to compare (saw %v)", st, seen)
		}
	}
	_, body = get(t, srv, "/api/v4/projects")
	projects := getItems(t, body)
	_, body = get(t, srv, fmt.Sprintf("/api/v4/projects/%d", pid))
	projects = append(projects, getItems(t, body)...)
	_, body = get(t, srv, "/api/v4/projects?simple=true")
	simple := getItems(t, body)
	_, versionBody := get(t, srv, "/api/v4/version")
	_, metadataBody := get(t, srv, "/api/v4/metadata")

	tests := []struct {
		what   string
		want   shape
		got    []map[string]any
		nested map[string]shape
	}{
		{"pipelines list", pipelineListDoc, pipes, nil},
		{"single pipeline", pipelineSingleDoc, singles, map[string]shape{"user": userBasicDoc, "detailed_status": detailedStatusDoc}},
		{"pipeline jobs", jobDoc, jobs, map[string]shape{"commit": jobCommitDoc, "pipeline": jobPipelineDoc, "user": userBasicDoc}},
		{"projects", projectDoc, projects, map[string]shape{"namespace": namespaceDoc}},
		{"projects simple", projectSimpleDoc, simple, map[string]shape{"namespace": namespaceDoc}},
		{"version", versionDoc, getItems(t, versionBody), nil},
		{"metadata", metadataDoc, getItems(t, metadataBody), map[string]shape{"kas": kasDoc}},
	}
	for _, tc := range tests {
		t.Run(tc.what, func(t *testing.T) {
			checkShape(t, tc.what, tc.want, tc.got, nil, tc.nested)
			for i, it := range tc.got {
				checkTimes(t, fmt.Sprintf("%s[%d]", tc.what, i), it)
			}
		})
	}
	// failure_reason appears on failed jobs only, as in the docs' examples.
	for _, j := range jobs {
		_, has := j["failure_reason"]
		if has != (j["status"] == "failed") {
			t.Errorf("job %v (%v): failure_reason present = %v", j["id"], j["status"], has)
		}
	}
}

// Field lists from GitLab's docs for the other kinds: docs.gitlab.com/api/
// commits (list repository commits), /tags, /releases, /issues, /notes,
// /events, /deployments, /environments and /container_registry.
var (
	commitDoc = shape{
		"id": {"string"}, "short_id": {"string"}, "created_at": {"string"}, "parent_ids": {"array"},
		"title": {"string"}, "message": {"string"}, "author_name": {"string"}, "author_email": {"string"},
		"authored_date": {"string"}, "committer_name": {"string"}, "committer_email": {"string"},
		"committed_date": {"string"}, "trailers": {"object"}, "extended_trailers": {"object"}, "web_url": {"string"},
	}
	commitStatsDoc = merge(commitDoc, shape{"stats": {"object"}})
	statsDoc       = shape{"additions": {"number"}, "deletions": {"number"}, "total": {"number"}}
	tagDoc         = shape{
		"commit": {"object"}, "release": {"object", "null"}, "name": {"string"}, "target": {"string"},
		"message": {"string", "null"}, "protected": {"boolean"}, "created_at": {"string", "null"},
	}
	releaseDoc = shape{
		"name": {"string"}, "tag_name": {"string"}, "description": {"string"}, "created_at": {"string"},
		"released_at": {"string"}, "upcoming_release": {"boolean"}, "author": {"object"}, "commit": {"object"},
		"commit_path": {"string"}, "tag_path": {"string"}, "assets": {"object"}, "evidences": {"array"}, "_links": {"object"},
	}
	assetsDoc = shape{"count": {"number"}, "sources": {"array"}, "links": {"array"}}
	issueDoc  = shape{
		"id": {"number"}, "iid": {"number"}, "project_id": {"number"}, "title": {"string"}, "description": {"string", "null"},
		"state": {"string"}, "created_at": {"string"}, "updated_at": {"string"}, "closed_at": {"string", "null"},
		"closed_by": {"object", "null"}, "labels": {"array"}, "milestone": {"object", "null"}, "assignees": {"array"},
		"author": {"object"}, "type": {"string"}, "assignee": {"object", "null"}, "user_notes_count": {"number"},
		"merge_requests_count": {"number"}, "upvotes": {"number"}, "downvotes": {"number"}, "due_date": {"string", "null"},
		"confidential": {"boolean"}, "discussion_locked": {"boolean", "null"}, "issue_type": {"string"},
		"web_url": {"string"}, "time_stats": {"object"}, "task_completion_status": {"object"}, "_links": {"object"},
		"references": {"object"}, "severity": {"string"}, "moved_to_id": {"number", "null"}, "imported": {"boolean"},
		"imported_from": {"string"}, "service_desk_reply_to": {"string", "null"}, "has_tasks": {"boolean"},
		"task_status": {"string"}, "blocking_issues_count": {"number"},
	}
	noteDoc = shape{
		"id": {"number"}, "type": {"string", "null"}, "body": {"string"}, "attachment": {"string", "null"},
		"author": {"object"}, "created_at": {"string"}, "updated_at": {"string"}, "system": {"boolean"},
		"noteable_id": {"number", "null"}, "noteable_type": {"string"}, "project_id": {"number"},
		"noteable_iid": {"number", "null"}, "resolvable": {"boolean"}, "confidential": {"boolean"},
		"internal": {"boolean"}, "imported": {"boolean"}, "imported_from": {"string"},
	}
	eventDoc = shape{
		"id": {"number"}, "title": {"string", "null"}, "project_id": {"number"}, "action_name": {"string"},
		"target_id": {"number", "null"}, "target_iid": {"number", "null"}, "target_type": {"string", "null"},
		"author_id": {"number"}, "target_title": {"string", "null"}, "created_at": {"string"}, "author": {"object"},
		"author_username": {"string"}, "imported": {"boolean"}, "imported_from": {"string"},
	}
	noteEventDoc = merge(eventDoc, shape{"note": {"object"}})
	pushEventDoc = merge(eventDoc, shape{"push_data": {"object"}})
	pushDataDoc  = shape{
		"commit_count": {"number"}, "action": {"string"}, "ref_type": {"string"}, "commit_from": {"string", "null"},
		"commit_to": {"string"}, "ref": {"string"}, "commit_title": {"string"}, "ref_count": {"number", "null"},
	}
	deploymentDoc = shape{
		"id": {"number"}, "iid": {"number"}, "ref": {"string"}, "sha": {"string"}, "created_at": {"string"},
		"updated_at": {"string"}, "status": {"string"}, "user": {"object"}, "environment": {"object"}, "deployable": {"object"},
	}
	environmentBasicDoc = shape{
		"id": {"number"}, "name": {"string"}, "slug": {"string"}, "external_url": {"string", "null"},
		"created_at": {"string"}, "updated_at": {"string"},
	}
	environmentDoc = merge(environmentBasicDoc, shape{
		"description": {"string", "null"}, "state": {"string"}, "tier": {"string"}, "auto_stop_at": {"string", "null"},
		"auto_stop_setting": {"string"}, "kubernetes_namespace": {"string", "null"}, "flux_resource_path": {"string", "null"},
	})
	registryRepoDoc = shape{
		"id": {"number"}, "name": {"string"}, "path": {"string"}, "project_id": {"number"}, "location": {"string"},
		"created_at": {"string"}, "cleanup_policy_started_at": {"string", "null"}, "status": {"string", "null"},
		"tags_count": {"number"}, "tags": {"array"},
	}
	registryTagDoc        = shape{"name": {"string"}, "path": {"string"}, "location": {"string"}}
	registryTagDetailsDoc = merge(registryTagDoc, shape{
		"revision": {"string"}, "short_revision": {"string"}, "digest": {"string"}, "created_at": {"string"}, "total_size": {"number"},
	})
)

var gitDate = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$`)

// checkGitDates requires commit dates in GitLab's offset form, anywhere
// in v.
func checkGitDates(t *testing.T, what string, v any) {
	t.Helper()
	switch x := v.(type) {
	case map[string]any:
		_, isCommit := x["committed_date"]
		for k, sub := range x {
			if s, ok := sub.(string); ok && (k == "authored_date" || k == "committed_date" || isCommit && k == "created_at") && !gitDate.MatchString(s) {
				t.Errorf("%s.%s = %q, not a git date with offset", what, k, s)
			}
			checkGitDates(t, what+"."+k, sub)
		}
	case []any:
		for _, sub := range x {
			checkGitDates(t, what, sub)
		}
	}
}

func TestKindShapes(t *testing.T) {
	sim, srv := newServer(t, gitlabsim.Options{Projects: 2, MRs: 30, Pipelines: 60, Issues: 15})
	for range 6 {
		sim.Advance()
	}
	pid := firstProjectID(t, srv)
	base := fmt.Sprintf("/api/v4/projects/%d", pid)
	items := func(path string) []map[string]any {
		t.Helper()
		resp, body := get(t, srv, base+path)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, body)
		}
		return getItems(t, body)
	}
	pipes := items("/pipelines?per_page=100&ref=main")
	commit := items("/repository/commits/" + pipes[0]["sha"].(string))
	branches := items("/repository/branches?per_page=100")
	branch := items("/repository/branches/main")
	var mrApprovals, diffs, mrCommits, mrNotes []map[string]any
	for _, m := range items("/merge_requests?state=all&per_page=20") {
		iid := num(m["iid"])
		mrApprovals = append(mrApprovals, items(fmt.Sprintf("/merge_requests/%d/approvals", iid))...)
		diffs = append(diffs, items(fmt.Sprintf("/merge_requests/%d/diffs", iid))...)
		mrCommits = append(mrCommits, items(fmt.Sprintf("/merge_requests/%d/commits", iid))...)
		mrNotes = append(mrNotes, items(fmt.Sprintf("/merge_requests/%d/notes", iid))...)
	}
	var issueNotes []map[string]any
	issues := items("/issues?per_page=100")
	for _, is := range issues[:8] {
		issueNotes = append(issueNotes, items(fmt.Sprintf("/issues/%d/notes", num(is["iid"])))...)
	}
	repos := items("/registry/repositories?tags=true&tags_count=true")
	tagsPath := fmt.Sprintf("/registry/repositories/%d/tags", num(repos[0]["id"]))
	regTags := items(tagsPath + "?per_page=100")
	tagDetails := items(tagsPath + "/" + regTags[0]["name"].(string))

	samples := []struct {
		sample   string
		got      []map[string]any
		nullable map[string]bool
	}{
		{"get_commit.json", commit, map[string]bool{"last_pipeline": true, "status": true}},
		{"list_branches.json", branches, nil},
		{"get_branch.json", branch, nil},
		{"get_merge_request_approvals.json", mrApprovals, nil},
		{"list_merge_request_diff.json", diffs, nil},
	}
	for _, tc := range samples {
		t.Run(tc.sample, func(t *testing.T) {
			sample := readSample(t, tc.sample)
			checkShape(t, tc.sample, shapeOf(sample), tc.got, tc.nullable, nestedShapes(sample))
			for i, it := range tc.got {
				checkTimes(t, fmt.Sprintf("%s[%d]", tc.sample, i), it)
				checkGitDates(t, fmt.Sprintf("%s[%d]", tc.sample, i), it)
			}
		})
	}
	// approved_by's items, one level further down than checkShape goes.
	want := shapeOf(func() []map[string]any {
		var out []map[string]any
		for _, a := range readSample(t, "get_merge_request_approvals.json")[0]["approved_by"].([]any) {
			out = append(out, a.(map[string]any))
		}
		return out
	}())
	var approvedBy []map[string]any
	for _, a := range mrApprovals {
		for _, x := range a["approved_by"].([]any) {
			approvedBy = append(approvedBy, x.(map[string]any))
		}
	}
	checkShape(t, "approved_by", want, approvedBy, nil, map[string]shape{"user": {"id": {"number"}, "name": {"string"}, "username": {"string"}}})

	var noteEvents, pushEvents []map[string]any
	for _, e := range items("/events?per_page=100") {
		switch {
		case e["note"] != nil:
			noteEvents = append(noteEvents, e)
		case e["push_data"] != nil:
			pushEvents = append(pushEvents, e)
		}
	}
	docs := []struct {
		what   string
		want   shape
		got    []map[string]any
		nested map[string]shape
	}{
		{"commits", commitStatsDoc, items("/repository/commits?with_stats=true&per_page=50"), map[string]shape{"stats": statsDoc}},
		{"merge request commits", commitDoc, mrCommits, nil},
		{"tags", tagDoc, items("/repository/tags"), map[string]shape{"commit": commitDoc}},
		{"releases", releaseDoc, items("/releases"), map[string]shape{"commit": commitDoc, "author": userBasicDoc, "assets": assetsDoc}},
		{"issues", issueDoc, issues, map[string]shape{"author": userBasicDoc}},
		{"merge request notes", noteDoc, mrNotes, map[string]shape{"author": userBasicDoc}},
		{"issue notes", noteDoc, issueNotes, map[string]shape{"author": userBasicDoc}},
		{"note events", noteEventDoc, noteEvents, map[string]shape{"note": noteDoc, "author": userBasicDoc}},
		{"push events", pushEventDoc, pushEvents, map[string]shape{"push_data": pushDataDoc}},
		{"deployments", deploymentDoc, items("/deployments?per_page=100"), map[string]shape{"environment": environmentBasicDoc, "deployable": jobDoc, "user": userBasicDoc}},
		{"environments", environmentDoc, items("/environments"), nil},
		{"registry repositories", registryRepoDoc, repos, nil},
		{"registry tags", registryTagDoc, regTags, nil},
		{"registry tag details", registryTagDetailsDoc, tagDetails, nil},
		{"project jobs", jobDoc, items("/jobs?per_page=50"), map[string]shape{"commit": jobCommitDoc, "pipeline": jobPipelineDoc}},
	}
	for _, tc := range docs {
		t.Run(tc.what, func(t *testing.T) {
			checkShape(t, tc.what, tc.want, tc.got, nil, tc.nested)
			for i, it := range tc.got {
				checkTimes(t, fmt.Sprintf("%s[%d]", tc.what, i), it)
				checkGitDates(t, fmt.Sprintf("%s[%d]", tc.what, i), it)
			}
		})
	}
}
