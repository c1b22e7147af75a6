package gitlab

import (
	"encoding/json"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/change"
	gl "gitlab.com/gitlab-org/api/client-go/v2"
)

func load(t *testing.T, name string, v any) {
	t.Helper()
	raw, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

func transitions(pairs ...string) []change.Transition {
	var out []change.Transition
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, change.Transition{State: pairs[i], At: ts(pairs[i+1])})
	}
	return out
}

func checkEvent(t *testing.T, got, want change.Event) {
	t.Helper()
	wantAttrs, gotAttrs := want.Attrs, got.Attrs
	want.Attrs, got.Attrs = nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("event\n got %+v\nwant %+v", got, want)
	}
	for k, v := range wantAttrs {
		if !reflect.DeepEqual(gotAttrs[k], v) {
			t.Errorf("%s: attribute %s = %#v, want %#v", want.ID, k, gotAttrs[k], v)
		}
	}
	if err := got.Validate(); err != nil {
		t.Error(err)
	}
	for _, tm := range []time.Time{got.CreatedAt, got.UpdatedAt, got.OccurredAt} {
		if tm.Location() != time.UTC {
			t.Errorf("%s: time %s not in UTC", want.ID, tm)
		}
	}
}

func TestMergeRequestEventFromGitLabListing(t *testing.T) {
	// Recorded from gitlab.com: open MRs, one a draft by title only.
	var mrs []*gl.BasicMergeRequest
	load(t, "get_merge_requests.json", &mrs)
	if len(mrs) != 3 {
		t.Fatalf("%d MRs", len(mrs))
	}
	p := Project{ID: 278964, Path: "gitlab-org/gitlab-ee"}
	checkEvent(t, MergeRequestEvent(p, mrs[0]), change.Event{
		ID: "mr-278964-15442", Kind: change.KindMergeRequest, ProjectID: 278964, ProjectPath: "gitlab-org/gitlab-ee",
		Title: "Draft: Use structured logging for DB load balancer", State: "opened", Author: "hfyngvason",
		WebURL: "https://gitlab.com/gitlab-org/gitlab-ee/merge_requests/15442",
		Ref:    "use-structured-logging-for-db-load-balancer", SHA: "2fc4e8b972ff3208ec63b6143e34ad67ff343ad7",
		CreatedAt: ts("2019-08-20T10:58:54.413Z"), UpdatedAt: ts("2019-08-20T12:01:49.849Z"), OccurredAt: ts("2019-08-20T10:58:54.413Z"),
		Source:      change.SourcePoll,
		Transitions: transitions("opened", "2019-08-20T10:58:54.413Z"),
		Attrs: map[string]any{
			"iid": int64(15442), "description": "## What does this MR do?", "source_branch": "use-structured-logging-for-db-load-balancer",
			"target_branch": "master", "draft": true, "assignees": []string{"hfyngvason"}, "reviewers": []string{"tkuah"},
			"labels":           []string{"backend", "backstage", "database", "database::review pending", "group::autodevops and kubernetes"},
			"merge_commit_sha": "", "user_notes_count": int64(1),
		},
	})
	if e := MergeRequestEvent(p, mrs[0]); e.Attrs["merged_by"] != nil || e.Attrs["closed_at"] != nil {
		t.Errorf("open MR has merge/close attributes: %v", e.Attrs)
	}
}

func TestMergeRequestEventFromSingleMR(t *testing.T) {
	var mr gl.MergeRequest
	load(t, "get_merge_request.json", &mr)
	e := MergeRequestEvent(Project{ID: 278964, Path: "gitlab-org/gitlab-ee"}, &mr.BasicMergeRequest)
	if e.ID != "mr-278964-14656" || e.Title != "Add deletion support for designs" || e.Attrs["draft"] != true ||
		e.Attrs["user_notes_count"] != int64(245) || !reflect.DeepEqual(e.Attrs["reviewers"], []string{"tkuah"}) ||
		e.Attrs["source_branch"] != "delete-designs-v2" || e.UpdatedAt != ts("2019-08-20T09:09:56.690Z") {
		t.Errorf("got %+v", e)
	}
}

func TestMergeRequestEventMergedFromDocs(t *testing.T) {
	// GitLab's docs example: merged, with only the deprecated merged_by.
	var mrs []*gl.BasicMergeRequest
	load(t, "docs_list_merge_requests.json", &mrs)
	checkEvent(t, MergeRequestEvent(Project{Path: "my-group/my-project"}, mrs[0]), change.Event{
		ID: "mr-3-1", Kind: change.KindMergeRequest, ProjectID: 3, ProjectPath: "my-group/my-project",
		Title: "test1", State: "merged", Author: "admin",
		WebURL: "http://gitlab.example.com/my-group/my-project/merge_requests/1", Ref: "test1",
		SHA:       "8888888888888888888888888888888888888888",
		CreatedAt: ts("2017-04-29T08:46:00Z"), UpdatedAt: ts("2017-04-29T08:46:00Z"), OccurredAt: ts("2018-09-07T11:16:17.520Z"),
		Source:      change.SourcePoll,
		Transitions: transitions("opened", "2017-04-29T08:46:00Z", "merged", "2018-09-07T11:16:17.520Z"),
		Attrs: map[string]any{
			"merged_by": "DouweM", "merged_at": "2018-09-07T11:16:17.52Z", "assignees": []string{"axel.block"},
			"reviewers": []string{}, "labels": []string{"Community contribution", "Manage"}, "draft": false,
			"target_branch": "master", "iid": int64(1),
		},
	})
}

func TestMergeRequestTransitions(t *testing.T) {
	at := func(s string) *time.Time { v := ts(s); return &v }
	for _, tc := range []struct {
		name     string
		mr       gl.BasicMergeRequest
		want     []change.Transition
		occurred time.Time
	}{
		{
			name: "closed",
			mr:   gl.BasicMergeRequest{State: "closed", CreatedAt: at("2024-01-01T10:00:00Z"), UpdatedAt: at("2024-01-03T10:00:00Z"), ClosedAt: at("2024-01-02T10:00:00Z")},
			want: transitions("opened", "2024-01-01T10:00:00Z", "closed", "2024-01-02T10:00:00Z"), occurred: ts("2024-01-02T10:00:00Z"),
		},
		{
			name: "reopened",
			mr:   gl.BasicMergeRequest{State: "opened", CreatedAt: at("2024-01-01T10:00:00Z"), UpdatedAt: at("2024-01-03T10:00:00Z"), ClosedAt: at("2024-01-02T10:00:00Z")},
			want: transitions("opened", "2024-01-01T10:00:00Z", "closed", "2024-01-02T10:00:00Z", "opened", "2024-01-03T10:00:00Z"),
			// The reopening time is not in the listing.
			occurred: ts("2024-01-01T10:00:00Z"),
		},
		{
			name: "locked",
			mr:   gl.BasicMergeRequest{State: "locked", CreatedAt: at("2024-01-01T10:00:00Z"), UpdatedAt: at("2024-01-03T10:00:00+02:00")},
			want: transitions("opened", "2024-01-01T10:00:00Z", "locked", "2024-01-03T08:00:00Z"), occurred: ts("2024-01-03T08:00:00Z"),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := MergeRequestEvent(Project{ID: 1}, &tc.mr)
			if !reflect.DeepEqual(e.Transitions, tc.want) || !e.OccurredAt.Equal(tc.occurred) {
				t.Errorf("transitions %v occurred %s, want %v %s", e.Transitions, e.OccurredAt, tc.want, tc.occurred)
			}
		})
	}
}

func TestPipelineEventFromDocsListing(t *testing.T) {
	var pls []*gl.PipelineInfo
	load(t, "docs_list_project_pipelines.json", &pls)
	p := Project{ID: 1, Path: "foo/bar"}
	checkEvent(t, PipelineEvent(p, pls[0]), change.Event{
		ID: "pipeline-1-47", Kind: change.KindPipeline, ProjectID: 1, ProjectPath: "foo/bar",
		Title: "Build pipeline", State: "pending", WebURL: "https://example.com/foo/bar/pipelines/47",
		Ref: "new-pipeline", SHA: "a91957a858320c0e17f3a0eca7cfacbff50ea29a",
		// Pipeline times are kept to the second (docs/kinds.md).
		CreatedAt: ts("2016-08-11T11:28:34Z"), UpdatedAt: ts("2016-08-11T11:32:35Z"), OccurredAt: ts("2016-08-11T11:28:34Z"),
		Source:      change.SourcePoll,
		Transitions: transitions("created", "2016-08-11T11:28:34Z", "pending", "2016-08-11T11:32:35Z"),
		Attrs:       map[string]any{"iid": int64(12), "source": "push", "status": "pending"},
	})

	unnamed := *pls[1]
	unnamed.Name, unnamed.Status = "", "failed"
	e := PipelineEvent(p, &unnamed)
	if e.Title != "Pipeline #13 on new-pipeline" {
		t.Errorf("title %q", e.Title)
	}
	// The listing has no finished_at: the final status dates from
	// updated_at.
	if want := transitions("created", "2016-08-12T10:06:04Z", "failed", "2016-08-12T10:09:56Z"); !reflect.DeepEqual(e.Transitions, want) || e.OccurredAt != ts("2016-08-12T10:09:56Z") {
		t.Errorf("transitions %v occurred %s", e.Transitions, e.OccurredAt)
	}
}

func TestPipelineDetailEventFromDocs(t *testing.T) {
	var pl gl.Pipeline
	load(t, "docs_get_pipeline.json", &pl)
	checkEvent(t, PipelineDetailEvent(Project{Path: "test-group/test-project"}, &pl), change.Event{
		ID: "pipeline-21-287", Kind: change.KindPipeline, ProjectID: 21, ProjectPath: "test-group/test-project",
		Title: "Build pipeline", State: "success", Author: "root",
		WebURL: "http://127.0.0.1:3000/test-group/test-project/-/pipelines/287",
		Ref:    "main", SHA: "50f0acb76a40e34a4ff304f7347dcc6587da8a14",
		// Pipeline times are kept to the second (docs/kinds.md).
		CreatedAt: ts("2022-09-21T01:05:07Z"), UpdatedAt: ts("2022-09-21T01:05:50Z"), OccurredAt: ts("2022-09-21T01:05:50Z"),
		Source: change.SourcePoll,
		Transitions: transitions("created", "2022-09-21T01:05:07Z", "running", "2022-09-21T01:05:14Z",
			"success", "2022-09-21T01:05:50Z"),
		Attrs: map[string]any{"iid": int64(144), "source": "push", "status": "success", "duration": int64(34), "queued_duration": int64(6)},
	})
}

func TestJobEventFromDocs(t *testing.T) {
	var jobs []*gl.Job
	load(t, "docs_list_pipeline_jobs.json", &jobs)
	checkEvent(t, JobEvent(Project{ID: 1, Path: "foo/bar"}, jobs[0]), change.Event{
		ID: "job-1-6", Kind: change.KindJob, ProjectID: 1, ProjectPath: "foo/bar",
		Title: "rspec:other", State: "failed", Author: "root", WebURL: "https://example.com/foo/bar/-/jobs/6",
		Ref: "main", SHA: "0ff3ae198f8601a285adcf5c0fff204ee6fba5fd",
		// Job times are kept to the second, durations in whole seconds
		// (docs/kinds.md).
		CreatedAt: ts("2015-12-24T15:51:21Z"), UpdatedAt: ts("2015-12-24T17:54:24Z"), OccurredAt: ts("2015-12-24T17:54:24Z"),
		Source: change.SourcePoll,
		Transitions: transitions("created", "2015-12-24T15:51:21Z", "running", "2015-12-24T17:54:24Z",
			"failed", "2015-12-24T17:54:24Z"),
		Attrs: map[string]any{
			"stage": "test", "status": "failed", "failure_reason": "stuck_or_timeout_failure", "duration": int64(0),
			"queued_duration": 0.023, "pipeline_id": int64(6), "started_at": "2015-12-24T17:54:24Z",
			"finished_at": "2015-12-24T17:54:24Z",
		},
	})
	fj := FailedJobs(jobs)
	if len(fj) != 2 || fj[1]["name"] != "teaspoon" || fj[1]["failure_reason"] != "script_failure" || fj[1]["duration"] != int64(0) {
		t.Errorf("failed jobs %v", fj)
	}
}
