package gitlabsim_test

import (
	"bytes"
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

// jsonType names a decoded JSON value's kind. Numbers decoded with
// UseNumber (decodeJSON) are "integer" or "fraction" as written: GitLab
// writes Ruby Integers without and Floats with a decimal point (6 and
// 17.0), and a client that decodes an integer field into an int fails on
// a fraction.
func jsonType(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case json.Number:
		if strings.ContainsAny(string(x), ".eE") {
			return "fraction"
		}
		return "integer"
	case float64:
		return "integer"
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

// decodeJSON decodes body keeping each number's kind (json.Number).
func decodeJSON(t testing.TB, body []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("decode %.200s: %v", body, err)
	}
	return v
}

// objects are body's objects: the list's items, or the one object.
func objects(t testing.TB, body []byte) []map[string]any {
	t.Helper()
	switch v := decodeJSON(t, body).(type) {
	case map[string]any:
		return []map[string]any{v}
	case []any:
		out := make([]map[string]any, 0, len(v))
		for _, it := range v {
			o, ok := it.(map[string]any)
			if !ok {
				t.Fatalf("list item %v is not an object", it)
			}
			out = append(out, o)
		}
		return out
	}
	t.Fatalf("%.200s is neither an object nor a list", body)
	return nil
}

func readSample(t testing.TB, name string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return objects(t, b)
}

// kinds is what a JSON value may be, at every depth, as GitLab's samples
// show it: the kinds of its non-null values and, for objects and lists,
// what their fields and items may be.
type kinds struct {
	seen   []string
	fields map[string]*kinds
	items  *kinds
}

// kindsOf gathers the kinds of every sample.
func kindsOf[T any](samples []T) *kinds {
	k := &kinds{}
	for _, v := range samples {
		k.add(v)
	}
	return k
}

func (k *kinds) add(v any) {
	kind := jsonType(v)
	if kind == "null" {
		return
	}
	if !slices.Contains(k.seen, kind) {
		k.seen = append(k.seen, kind)
	}
	switch x := v.(type) {
	case map[string]any:
		if k.fields == nil {
			k.fields = map[string]*kinds{}
		}
		for f, fv := range x {
			if k.fields[f] == nil {
				k.fields[f] = &kinds{}
			}
			k.fields[f].add(fv)
		}
	case []any:
		if k.items == nil {
			k.items = &kinds{}
		}
		for _, it := range x {
			k.items.add(it)
		}
	}
}

// checkKinds reports every value in got, at any depth, whose kind is not
// one the samples show in the same place: an integer where GitLab writes a
// fraction or the other way round, a string for a number, an object for a
// list. Null on either side says nothing (checkShape holds which fields may
// be null), nor do fields the samples lack. Each place is reported once.
func checkKinds[T any](t *testing.T, what string, want *kinds, got []T) {
	t.Helper()
	if len(got) == 0 {
		t.Fatalf("%s: nothing to compare", what)
	}
	reported := map[string]bool{}
	var walk func(k *kinds, path string, v any)
	walk = func(k *kinds, path string, v any) {
		kind := jsonType(v)
		if kind == "null" || len(k.seen) == 0 {
			return
		}
		if !slices.Contains(k.seen, kind) {
			if !reported[path] {
				reported[path] = true
				t.Errorf("%s: %s is %s (%v), GitLab sends %v", what, path, kind, v, k.seen)
			}
			return
		}
		switch x := v.(type) {
		case map[string]any:
			for f, fv := range x {
				if sub := k.fields[f]; sub != nil {
					walk(sub, path+"."+f, fv)
				}
			}
		case []any:
			for _, it := range x {
				if k.items != nil {
					walk(k.items, path+"[]", it)
				}
			}
		}
	}
	for _, v := range got {
		walk(want, "", v)
	}
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
	return objects(t, body)
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
		_, body := get(t, srv, fmt.Sprintf("/api/v4/projects/%d/merge_requests/%d", pid, num(m["iid"])))
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
			checkKinds(t, tc.sample, kindsOf(sample), tc.got)
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
		"id": {"integer"}, "iid": {"integer"}, "project_id": {"integer"}, "status": {"string"},
		"source": {"string"}, "ref": {"string"}, "sha": {"string"}, "name": {"string", "null"},
		"web_url": {"string"}, "created_at": {"string"}, "updated_at": {"string"},
	}
	pipelineSingleDoc = merge(pipelineListDoc, shape{
		"before_sha": {"string"}, "tag": {"boolean"}, "yaml_errors": {"string", "null"}, "user": {"object"},
		"started_at": {"string", "null"}, "finished_at": {"string", "null"}, "committed_at": {"string", "null"},
		"duration": {"integer", "null"}, "queued_duration": {"integer", "null"}, "coverage": {"string", "null"},
		"detailed_status": {"object"},
	})
	detailedStatusDoc = shape{
		"icon": {"string"}, "text": {"string"}, "label": {"string"}, "group": {"string"}, "tooltip": {"string"},
		"has_details": {"boolean"}, "details_path": {"string"}, "illustration": {"object", "null"}, "favicon": {"string"},
	}
	userBasicDoc = shape{
		"id": {"integer"}, "username": {"string"}, "name": {"string"}, "state": {"string"},
		"avatar_url": {"string", "null"}, "web_url": {"string"},
	}
	jobDoc = shape{
		"commit": {"object"}, "coverage": {"fraction", "null"}, "allow_failure": {"boolean"},
		"created_at": {"string"}, "started_at": {"string", "null"}, "finished_at": {"string", "null"},
		"erased_at": {"string", "null"}, "duration": {"fraction", "null"}, "queued_duration": {"fraction", "null"},
		"artifacts_expire_at": {"string", "null"}, "tag_list": {"array"}, "id": {"integer"}, "name": {"string"},
		"pipeline": {"object"}, "ref": {"string"}, "artifacts": {"array"}, "runner": {"object", "null"},
		"stage": {"string"}, "status": {"string"}, "tag": {"boolean"}, "web_url": {"string"},
		"project": {"object"}, "user": {"object"}, "archived": {"boolean"},
	}
	jobCommitDoc = shape{
		"author_email": {"string"}, "author_name": {"string"}, "created_at": {"string"}, "id": {"string"},
		"message": {"string"}, "short_id": {"string"}, "title": {"string"},
	}
	jobPipelineDoc = shape{
		"id": {"integer"}, "project_id": {"integer"}, "ref": {"string"}, "sha": {"string"}, "status": {"string"},
	}
	projectSimpleDoc = shape{
		"id": {"integer"}, "description": {"string", "null"}, "name": {"string"}, "name_with_namespace": {"string"},
		"path": {"string"}, "path_with_namespace": {"string"}, "created_at": {"string"},
		"default_branch": {"string"}, "tag_list": {"array"}, "topics": {"array"},
		"ssh_url_to_repo": {"string"}, "http_url_to_repo": {"string"}, "web_url": {"string"},
		"readme_url": {"string", "null"}, "forks_count": {"integer"}, "avatar_url": {"string", "null"},
		"star_count": {"integer"}, "last_activity_at": {"string"}, "namespace": {"object"},
	}
	projectDoc = merge(projectSimpleDoc, shape{
		"visibility": {"string"}, "issues_enabled": {"boolean"}, "open_issues_count": {"integer"},
		"merge_requests_enabled": {"boolean"}, "jobs_enabled": {"boolean"}, "wiki_enabled": {"boolean"},
		"snippets_enabled": {"boolean"}, "can_create_merge_request_in": {"boolean"},
		"resolve_outdated_diff_discussions": {"boolean"}, "container_registry_enabled": {"boolean"},
		"creator_id": {"integer"}, "import_status": {"string"}, "archived": {"boolean"},
		"shared_runners_enabled": {"boolean"}, "ci_default_git_depth": {"integer"}, "public_jobs": {"boolean"},
		"shared_with_groups": {"array"}, "only_allow_merge_if_pipeline_succeeds": {"boolean"},
		"allow_merge_on_skipped_pipeline": {"boolean"}, "only_allow_merge_if_all_discussions_are_resolved": {"boolean"},
		"remove_source_branch_after_merge": {"boolean"}, "request_access_enabled": {"boolean"},
		"merge_method": {"string"}, "autoclose_referenced_issues": {"boolean"}, "permissions": {"object"},
		"_links": {"object"}, "updated_at": {"string"},
	})
	namespaceDoc = shape{
		"id": {"integer"}, "name": {"string"}, "path": {"string"}, "kind": {"string"}, "full_path": {"string"},
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

// docsExample pairs a response example of GitLab's API docs, copied into
// testdata/, with the simulator's answers to the same request.
type docsExample struct {
	sample string
	got    []map[string]any
}

// checkDocsExamples holds the simulator's answers to the kinds of the
// docs' examples, at every depth.
func checkDocsExamples(t *testing.T, examples []docsExample) {
	t.Helper()
	for _, ex := range examples {
		t.Run(ex.sample, func(t *testing.T) {
			checkKinds(t, ex.sample, kindsOf(readSample(t, ex.sample)), ex.got)
		})
	}
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
		_, body := get(t, srv, fmt.Sprintf("/api/v4/projects/%d/pipelines/%d", pid, num(p["id"])))
		singles = append(singles, getItems(t, body)...)
		_, body = get(t, srv, fmt.Sprintf("/api/v4/projects/%d/pipelines/%d/jobs", pid, num(p["id"])))
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
	checkDocsExamples(t, []docsExample{
		{"docs_list_project_pipelines.json", pipes},
		{"docs_get_pipeline.json", singles},
		{"docs_list_pipeline_jobs.json", jobs},
	})
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
	statsDoc       = shape{"additions": {"integer"}, "deletions": {"integer"}, "total": {"integer"}}
	tagDoc         = shape{
		"commit": {"object"}, "release": {"object", "null"}, "name": {"string"}, "target": {"string"},
		"message": {"string", "null"}, "protected": {"boolean"}, "created_at": {"string", "null"},
	}
	releaseDoc = shape{
		"name": {"string"}, "tag_name": {"string"}, "description": {"string"}, "created_at": {"string"},
		"released_at": {"string"}, "upcoming_release": {"boolean"}, "author": {"object"}, "commit": {"object"},
		"commit_path": {"string"}, "tag_path": {"string"}, "assets": {"object"}, "evidences": {"array"}, "_links": {"object"},
	}
	assetsDoc = shape{"count": {"integer"}, "sources": {"array"}, "links": {"array"}}
	issueDoc  = shape{
		"id": {"integer"}, "iid": {"integer"}, "project_id": {"integer"}, "title": {"string"}, "description": {"string", "null"},
		"state": {"string"}, "created_at": {"string"}, "updated_at": {"string"}, "closed_at": {"string", "null"},
		"closed_by": {"object", "null"}, "labels": {"array"}, "milestone": {"object", "null"}, "assignees": {"array"},
		"author": {"object"}, "type": {"string"}, "assignee": {"object", "null"}, "user_notes_count": {"integer"},
		"merge_requests_count": {"integer"}, "upvotes": {"integer"}, "downvotes": {"integer"}, "due_date": {"string", "null"},
		"confidential": {"boolean"}, "discussion_locked": {"boolean", "null"}, "issue_type": {"string"},
		"web_url": {"string"}, "time_stats": {"object"}, "task_completion_status": {"object"}, "_links": {"object"},
		"references": {"object"}, "severity": {"string"}, "moved_to_id": {"integer", "null"}, "imported": {"boolean"},
		"imported_from": {"string"}, "service_desk_reply_to": {"string", "null"}, "has_tasks": {"boolean"},
		"task_status": {"string"}, "blocking_issues_count": {"integer"},
	}
	noteDoc = shape{
		"id": {"integer"}, "type": {"string", "null"}, "body": {"string"}, "attachment": {"string", "null"},
		"author": {"object"}, "created_at": {"string"}, "updated_at": {"string"}, "system": {"boolean"},
		"noteable_id": {"integer", "null"}, "noteable_type": {"string"}, "project_id": {"integer"},
		"noteable_iid": {"integer", "null"}, "resolvable": {"boolean"}, "confidential": {"boolean"},
		"internal": {"boolean"}, "imported": {"boolean"}, "imported_from": {"string"},
	}
	eventDoc = shape{
		"id": {"integer"}, "title": {"string", "null"}, "project_id": {"integer"}, "action_name": {"string"},
		"target_id": {"integer", "null"}, "target_iid": {"integer", "null"}, "target_type": {"string", "null"},
		"author_id": {"integer"}, "target_title": {"string", "null"}, "created_at": {"string"}, "author": {"object"},
		"author_username": {"string"}, "imported": {"boolean"}, "imported_from": {"string"},
	}
	noteEventDoc = merge(eventDoc, shape{"note": {"object"}})
	pushEventDoc = merge(eventDoc, shape{"push_data": {"object"}})
	pushDataDoc  = shape{
		"commit_count": {"integer"}, "action": {"string"}, "ref_type": {"string"}, "commit_from": {"string", "null"},
		"commit_to": {"string"}, "ref": {"string"}, "commit_title": {"string"}, "ref_count": {"integer", "null"},
	}
	deploymentDoc = shape{
		"id": {"integer"}, "iid": {"integer"}, "ref": {"string"}, "sha": {"string"}, "created_at": {"string"},
		"updated_at": {"string"}, "status": {"string"}, "user": {"object"}, "environment": {"object"}, "deployable": {"object"},
	}
	environmentBasicDoc = shape{
		"id": {"integer"}, "name": {"string"}, "slug": {"string"}, "external_url": {"string", "null"},
		"created_at": {"string"}, "updated_at": {"string"},
	}
	environmentDoc = merge(environmentBasicDoc, shape{
		"description": {"string", "null"}, "state": {"string"}, "tier": {"string"}, "auto_stop_at": {"string", "null"},
		"auto_stop_setting": {"string"}, "kubernetes_namespace": {"string", "null"}, "flux_resource_path": {"string", "null"},
	})
	// docs.gitlab.com/api/environments "Get a specific environment"; its
	// last_deployment is the deployment entity without its environment.
	environmentSingleDoc = merge(environmentDoc, shape{"last_deployment": {"object", "null"}, "cluster_agent": {"object", "null"}})
	lastDeploymentDoc    = func() shape {
		d := merge(deploymentDoc, nil)
		delete(d, "environment")
		return d
	}()
	// docs.gitlab.com/api/merge_requests "Get single merge request changes".
	mrChangesDoc = shape{
		"id": {"integer"}, "iid": {"integer"}, "project_id": {"integer"}, "title": {"string"}, "state": {"string"},
		"sha": {"string"}, "changes_count": {"string"}, "head_pipeline": {"object", "null"}, "diff_refs": {"object"},
		"changes": {"array"}, "overflow": {"boolean"},
	}
	registryRepoDoc = shape{
		"id": {"integer"}, "name": {"string"}, "path": {"string"}, "project_id": {"integer"}, "location": {"string"},
		"created_at": {"string"}, "cleanup_policy_started_at": {"string", "null"}, "status": {"string", "null"},
		"tags_count": {"integer"}, "tags": {"array"},
	}
	registryTagDoc        = shape{"name": {"string"}, "path": {"string"}, "location": {"string"}}
	registryTagDetailsDoc = merge(registryTagDoc, shape{
		"revision": {"string"}, "short_revision": {"string"}, "digest": {"string"}, "created_at": {"string"}, "total_size": {"integer"},
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
	var mrApprovals, diffs, mrCommits, mrNotes, mrChanges []map[string]any
	mrs := items("/merge_requests?state=all&per_page=100")
	for _, m := range mrs[:20] {
		iid := num(m["iid"])
		mrApprovals = append(mrApprovals, items(fmt.Sprintf("/merge_requests/%d/approvals", iid))...)
		diffs = append(diffs, items(fmt.Sprintf("/merge_requests/%d/diffs", iid))...)
		mrCommits = append(mrCommits, items(fmt.Sprintf("/merge_requests/%d/commits", iid))...)
		mrNotes = append(mrNotes, items(fmt.Sprintf("/merge_requests/%d/notes", iid))...)
		mrChanges = append(mrChanges, items(fmt.Sprintf("/merge_requests/%d/changes", iid))...)
	}
	var issueNotes []map[string]any
	issues := items("/issues?per_page=100")
	for _, is := range issues[:8] {
		issueNotes = append(issueNotes, items(fmt.Sprintf("/issues/%d/notes", num(is["iid"])))...)
	}
	envs := items("/environments")
	var envSingles []map[string]any
	for _, e := range envs {
		envSingles = append(envSingles, items(fmt.Sprintf("/environments/%d", num(e["id"])))...)
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
			checkKinds(t, tc.sample, kindsOf(sample), tc.got)
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
	checkShape(t, "approved_by", want, approvedBy, nil, map[string]shape{"user": {"id": {"integer"}, "name": {"string"}, "username": {"string"}}})

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
		{"environments", environmentDoc, envs, nil},
		{"environment", environmentSingleDoc, envSingles, map[string]shape{"last_deployment": lastDeploymentDoc}},
		{"merge request changes", mrChangesDoc, mrChanges, nil},
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
	checkDocsExamples(t, []docsExample{
		{"docs_list_merge_requests.json", mrs},
		{"docs_get_merge_request_changes.json", mrChanges},
		{"docs_list_issues.json", issues},
		{"docs_list_notes.json", issueNotes},
		{"docs_list_tags.json", items("/repository/tags")},
		{"docs_list_releases.json", items("/releases")},
		{"docs_list_deployments.json", items("/deployments?per_page=100")},
		{"docs_list_environments.json", envs},
		{"docs_get_environment.json", envSingles},
		{"docs_list_registry_repositories.json", repos},
		{"docs_list_registry_tags.json", regTags},
		{"docs_get_registry_tag.json", tagDetails},
		{"docs_list_project_events.json", items("/events?per_page=100")},
	})
}
