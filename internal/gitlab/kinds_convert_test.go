package gitlab

import (
	"reflect"
	"testing"

	"github.com/labtrail/labtrail/internal/change"
	gl "gitlab.com/gitlab-org/api/client-go/v2"
)

func TestMergeRequestEventsWithDetails(t *testing.T) {
	var mrs []*gl.BasicMergeRequest
	load(t, "get_merge_requests.json", &mrs)
	var d MergeRequestDetails
	load(t, "get_merge_request_approvals.json", &d.Approvals)
	var diffs []*gl.MergeRequestDiff
	load(t, "list_merge_request_diff.json", &diffs)
	var commit gl.Commit
	load(t, "get_commit.json", &commit)
	early := ts("2019-08-01T10:00:00.750Z")
	d.Commits = []*gl.Commit{&commit, {ID: "b", AuthoredDate: &early}}
	// The diffs from client-go are one-liners; a real one has headers
	// and a removed line that itself starts with "--".
	diffs = append(diffs, &gl.MergeRequestDiff{OldPath: "a.sql", NewPath: "b.sql", RenamedFile: true,
		Diff: "--- a/a.sql\n+++ b/b.sql\n@@ -1,3 +1,3 @@\n context\n--- comment removed\n+-- comment added\n+new line\n"})
	d.Files = changedFiles(diffs)
	var notes []*gl.Note
	load(t, "docs_list_notes.json", &notes)
	// The approvals endpoint says root approves; the system notes say
	// when (to the second), for root as for tkuah.
	rootAt, approvedAt := ts("2016-06-09T01:45:21.72Z"), ts("2019-08-21T10:00:00Z")
	notes = append(notes, &gl.Note{ID: 399, Body: "approved this merge request", System: true,
		Author: gl.NoteAuthor{Username: "root"}, CreatedAt: &rootAt, NoteableType: "MergeRequest"})
	notes = append(notes, &gl.Note{ID: 400, Body: "approved this merge request", System: true,
		Author: gl.NoteAuthor{Username: "tkuah"}, CreatedAt: &approvedAt, NoteableType: "MergeRequest"})
	d.Notes = notes

	p := Project{ID: 278964, Path: "gitlab-org/gitlab-ee"}
	evs := MergeRequestEvents(p, mrs[0], d)
	if len(evs) != 5 {
		t.Fatalf("%d events", len(evs))
	}
	mr := evs[0]
	want := map[string]any{
		"approvals": []map[string]any{{"user": "root", "approved_at": "2016-06-09T01:45:21Z"}},
		"approved":  true,
		"changed_files": []map[string]any{
			{"path": "README", "additions": 0, "deletions": 0},
			{"path": "VERSION", "additions": 0, "deletions": 0},
			{"path": "b.sql", "additions": 2, "deletions": 1},
		},
		"additions": 2, "deletions": 1, "commit_count": 2, "first_commit_at": "2019-08-01T10:00:00Z",
		"user_notes_count": int64(1), "source_branch": "use-structured-logging-for-db-load-balancer",
	}
	for k, v := range want {
		if !reflect.DeepEqual(mr.Attrs[k], v) {
			t.Errorf("attribute %s = %#v, want %#v", k, mr.Attrs[k], v)
		}
	}
	wantTs := transitions("approved", "2016-06-09T01:45:21Z", "opened", "2019-08-20T10:58:54.413Z")
	if !reflect.DeepEqual(mr.Transitions, wantTs) {
		t.Errorf("transitions %v, want %v", mr.Transitions, wantTs)
	}

	// Notes keep their own noteable and get a link into the MR.
	n := evs[1]
	checkEvent(t, n, change.Event{
		ID: "note-278964-302", Kind: change.KindNote, ProjectID: 278964, ProjectPath: "gitlab-org/gitlab-ee",
		Title: "closed", State: "system", Author: "pipin", WebURL: mrs[0].WebURL + "#note_302",
		CreatedAt: ts("2013-10-02T09:22:45Z"), UpdatedAt: ts("2013-10-02T10:22:45Z"), OccurredAt: ts("2013-10-02T09:22:45Z"),
		Source: change.SourcePoll, Transitions: transitions("system", "2013-10-02T09:22:45Z"),
		Attrs: map[string]any{"body": "closed", "system": true, "noteable_type": "Issue", "noteable_iid": int64(377),
			"resolvable": false, "internal": false},
	})
	if evs[2].Attrs["internal"] != true || evs[2].Title != "Text of the comment" {
		t.Errorf("internal note %+v", evs[2])
	}

	// Without the approvals, the system notes say who and when.
	d.Approvals = nil
	mr = MergeRequestEvents(p, mrs[0], d)[0]
	if got := mr.Attrs["approvals"]; !reflect.DeepEqual(got, []map[string]any{
		{"user": "root", "approved_at": "2016-06-09T01:45:21Z"}, {"user": "tkuah", "approved_at": "2019-08-21T10:00:00Z"},
	}) || mr.Attrs["approved"] != true {
		t.Errorf("approvals from notes: %#v approved %v", got, mr.Attrs["approved"])
	}
	unapprovedAt := ts("2019-08-22T10:00:00Z")
	for _, u := range []string{"root", "tkuah"} {
		d.Notes = append(d.Notes, &gl.Note{ID: 401, Body: "unapproved this merge request", System: true,
			Author: gl.NoteAuthor{Username: u}, CreatedAt: &unapprovedAt})
	}
	if mr = MergeRequestEvents(p, mrs[0], d)[0]; mr.Attrs["approved"] != false {
		t.Errorf("withdrawn approvals still counted: %#v", mr.Attrs["approvals"])
	}
}

func TestDiffStats(t *testing.T) {
	for _, tc := range []struct {
		diff     string
		add, del int
	}{
		{"@@ -1 +1 @@\n-Title\n+README\n", 1, 1},
		{"--- a/x\n+++ b/x\n@@ -0,0 +1,2 @@\n+a\n+++b\n", 2, 0},
		{"@@ -1,2 +0,0 @@\n---x\n-y\n\\ No newline at end of file\n", 0, 2},
		{"", 0, 0},
	} {
		if a, d := diffStats(tc.diff); a != tc.add || d != tc.del {
			t.Errorf("%q: +%d -%d, want +%d -%d", tc.diff, a, d, tc.add, tc.del)
		}
	}
}

func TestCommitEventFromGitLab(t *testing.T) {
	var c gl.Commit
	load(t, "get_commit.json", &c)
	authored := ts("2019-11-04T15:38:53Z")
	committed := ts("2019-11-04T15:39:03Z")
	c.AuthoredDate, c.CommittedDate = &authored, &committed
	checkEvent(t, CommitEvent(Project{ID: 13083, Path: "gitlab-org/gitlab-ce"}, &c, "master"), change.Event{
		ID: "commit-13083-6104942438c14ec7bd21c6cd5bd995272b3faff6", Kind: change.KindCommit, ProjectID: 13083,
		ProjectPath: "gitlab-org/gitlab-ce", Title: "Sanitize for network graph", State: "committed", Author: "",
		Ref: "master", SHA: "6104942438c14ec7bd21c6cd5bd995272b3faff6",
		CreatedAt: authored, UpdatedAt: committed, OccurredAt: committed, Source: change.SourcePoll,
		Transitions: transitions("committed", "2019-11-04T15:39:03Z"),
		Attrs: map[string]any{"message": "Sanitize for network graph", "author_name": "randx",
			"author_email": "dmitriy.zaporozhets@gmail.com", "additions": int64(15), "deletions": int64(10),
			"parent_ids": []string{"ae1d9fb46aa2b07ee9836d49862ec4e2c46fbbba"}, "branch": "master",
			"authored_date": "2019-11-04T15:38:53Z", "committed_date": "2019-11-04T15:39:03Z"},
	})
}

func TestBranchEventFromGitLab(t *testing.T) {
	var bs []*gl.Branch
	load(t, "list_branches.json", &bs)
	var one gl.Branch
	load(t, "get_branch.json", &one)
	p := Project{ID: 5, Path: "my-group/my-project"}
	checkEvent(t, BranchEvent(p, bs[0]), change.Event{
		ID: "branch-5-master", Kind: change.KindBranch, ProjectID: 5, ProjectPath: "my-group/my-project",
		Title: "master", State: "active", Author: "", WebURL: "https://gitlab.example.com/my-group/my-project/-/tree/master",
		Ref: "master", SHA: "7b5c3cc8be40ee161ae89a06bba6229da1032a0c",
		CreatedAt: ts("2012-06-27T05:51:39Z"), UpdatedAt: ts("2012-06-28T03:44:20Z"), OccurredAt: ts("2012-06-28T03:44:20Z"),
		Source: change.SourcePoll, Transitions: transitions("active", "2012-06-28T03:44:20Z"),
		Attrs: map[string]any{"name": "master", "default": true, "protected": true, "merged": false,
			"commit_sha": "7b5c3cc8be40ee161ae89a06bba6229da1032a0c", "committed_date": "2012-06-28T03:44:20Z",
			"author_name": "John Smith", "author_email": "john@example.com"},
	})
	if e := BranchEvent(p, &one); e.ID != "branch-5-master" || e.UpdatedAt != ts("2012-06-28T03:44:20Z") {
		t.Errorf("single branch %+v", e)
	}
	one.Merged = true
	if e := BranchEvent(p, &one); e.State != "merged" {
		t.Errorf("merged branch state %q", e.State)
	}
}

func TestIssueEventsFromDocs(t *testing.T) {
	var is []*gl.Issue
	load(t, "docs_list_issues.json", &is)
	var notes []*gl.Note
	load(t, "docs_list_notes.json", &notes)
	p := Project{ID: 1, Path: "my-group/my-project"}
	checkEvent(t, IssueEvent(p, is[0]), change.Event{
		ID: "issue-1-6", Kind: change.KindIssue, ProjectID: 1, ProjectPath: "my-group/my-project",
		Title: "Consequatur vero maxime deserunt laboriosam est voluptas dolorem.", State: "opened", Author: "eileen.lowe",
		WebURL:    "http://gitlab.example.com/my-group/my-project/issues/6",
		CreatedAt: ts("2016-01-04T15:31:51.081Z"), UpdatedAt: ts("2016-01-04T15:31:51.081Z"), OccurredAt: ts("2016-01-04T15:31:51.081Z"),
		Source: change.SourcePoll, Transitions: transitions("opened", "2016-01-04T15:31:51.081Z"),
		Attrs: map[string]any{"iid": int64(6), "issue_type": "issue", "labels": []string{"foo", "bar"},
			"assignees": []string{"root"}, "user_notes_count": int64(1), "closed_at": nil,
			"description": "Ratione dolores corrupti mollitia soluta quia."},
	})
	// A reopened issue: GitLab cleared closed_at; the system notes keep
	// the history.
	reopened := ts("2016-01-05T10:00:00Z")
	notes = append(notes, &gl.Note{ID: 306, Body: "reopened", System: true, CreatedAt: &reopened})
	notes[0].CreatedAt = gl.Ptr(ts("2016-01-04T16:00:00Z"))
	evs := IssueEvents(p, is[0], notes)
	if len(evs) != 4 || evs[1].ID != "note-1-302" || evs[1].Kind != change.KindNote {
		t.Fatalf("events %+v", evs)
	}
	want := transitions("opened", "2016-01-04T15:31:51.081Z", "closed", "2016-01-04T16:00:00Z", "reopened", "2016-01-05T10:00:00Z")
	if !reflect.DeepEqual(evs[0].Transitions, want) {
		t.Errorf("transitions %v, want %v", evs[0].Transitions, want)
	}
	incident := "incident"
	closed := ts("2016-02-01T00:00:00Z")
	is[0].IssueType, is[0].State, is[0].ClosedAt, is[0].ClosedBy = &incident, "closed", &closed, &gl.IssueCloser{Username: "root"}
	e := IssueEvent(p, is[0])
	if e.Attrs["issue_type"] != "incident" || e.Attrs["closed_by"] != "root" || e.OccurredAt != closed ||
		!reflect.DeepEqual(e.Transitions, transitions("opened", "2016-01-04T15:31:51.081Z", "closed", "2016-02-01T00:00:00Z")) {
		t.Errorf("closed incident %+v", e)
	}
}

func TestTagEventFromDocs(t *testing.T) {
	var tags []*gl.Tag
	load(t, "docs_list_tags.json", &tags)
	checkEvent(t, TagEvent(Project{ID: 5, Path: "g/p", WebURL: "https://gitlab.example.com/g/p"}, tags[0]), change.Event{
		ID: "tag-5-v1.0.0", Kind: change.KindTag, ProjectID: 5, ProjectPath: "g/p", Title: "v1.0.0", State: "tagged",
		Author: "", WebURL: "https://gitlab.example.com/g/p/-/tags/v1.0.0", Ref: "v1.0.0",
		SHA:       "2695effb5807a22ff3d138d593fd856244e155e7",
		CreatedAt: ts("2017-07-26T09:08:53Z"), UpdatedAt: ts("2012-05-28T11:42:42Z"), OccurredAt: ts("2017-07-26T09:08:53Z"),
		Source: change.SourcePoll, Transitions: transitions("tagged", "2017-07-26T09:08:53Z"),
		Attrs: map[string]any{"name": "v1.0.0", "target": "2695effb5807a22ff3d138d593fd856244e155e7", "protected": true,
			"release": map[string]any{"tag_name": "1.0.0", "description": "Amazing release. Wow"}, "message": "",
			"author_name": "John Smith", "author_email": "john@example.com"},
	})
}

func TestReleaseEventFromDocs(t *testing.T) {
	var rs []*gl.Release
	load(t, "docs_list_releases.json", &rs)
	p := Project{ID: 24, Path: "root/awesome-app"}
	e := ReleaseEvent(p, rs[0])
	checkEvent(t, e, change.Event{
		ID: "release-24-v0.2", Kind: change.KindRelease, ProjectID: 24, ProjectPath: "root/awesome-app",
		Title: "Awesome app v0.2 beta", State: "published", Author: "root", Ref: "v0.2",
		SHA:       "079e90101242458910cccd35eab0e211dfc359c0",
		CreatedAt: ts("2019-01-03T01:56:19.539Z"), UpdatedAt: ts("2019-01-03T01:56:19.539Z"), OccurredAt: ts("2019-01-03T01:56:19.539Z"),
		Source: change.SourcePoll, Transitions: transitions("created", "2019-01-03T01:56:19.539Z", "published", "2019-01-03T01:56:19.539Z"),
		Attrs: map[string]any{"tag_name": "v0.2", "upcoming_release": false, "sources_count": 4,
			"links": []map[string]any{
				{"name": "awesome-v0.2.msi", "url": "http://192.168.10.15:3000/msi", "link_type": "other"},
				{"name": "awesome-v0.2.dmg", "url": "http://192.168.10.15:3000", "link_type": "other"},
			},
			"milestones": []string{"v1.0-rc"}, "released_at": "2019-01-03T01:56:19.539Z"},
	})
	if e := ReleaseEvent(p, rs[1]); e.WebURL != "https://gitlab.example.com/root/awesome-app/-/releases/v0.1" {
		t.Errorf("web_url %q", e.WebURL)
	}
	// Upcoming: released_at in the future is later than created_at and
	// is the updated_at the contract asks for, but nothing is published.
	future := ts("2030-01-01T00:00:00Z")
	rs[0].ReleasedAt, rs[0].UpcomingRelease = &future, true
	e = ReleaseEvent(p, rs[0])
	if e.State != "upcoming" || e.UpdatedAt != future || len(e.Transitions) != 1 {
		t.Errorf("upcoming %+v", e)
	}
}

func TestDeploymentEventFromDocs(t *testing.T) {
	var ds []*Deployment
	load(t, "docs_list_deployments.json", &ds)
	p := Project{ID: 1, Path: "root/project"}
	checkEvent(t, DeploymentEvent(p, ds[1]), change.Event{
		ID: "deployment-1-42", Kind: change.KindDeployment, ProjectID: 1, ProjectPath: "root/project",
		Title: "Deployment #2 to production", State: "success", Author: "root", Ref: "main",
		SHA:       "a91957a858320c0e17f3a0eca7cfacbff50ea29a",
		CreatedAt: ts("2016-08-11T11:32:35.444Z"), UpdatedAt: ts("2016-08-11T11:34:01.123Z"), OccurredAt: ts("2016-08-11T11:32:35.145Z"),
		Source: change.SourcePoll, Transitions: transitions("created", "2016-08-11T11:32:35.444Z", "success", "2016-08-11T11:32:35.145Z"),
		Attrs: map[string]any{"iid": int64(2), "environment": "production", "environment_id": int64(9), "status": "success",
			"finished_at": "2016-08-11T11:32:35.145Z",
			"deployable": map[string]any{"id": int64(664), "name": "deploy", "stage": "deploy", "status": "success",
				"web_url": "", "pipeline_id": int64(37)}},
	})
	e := DeploymentEvent(p, ds[0])
	if e.State != "created" || e.Attrs["finished_at"] != nil || e.OccurredAt != ts("2016-08-11T07:36:40.222Z") {
		t.Errorf("created deployment %+v", e)
	}
}

func TestEnvironmentEventFromDocs(t *testing.T) {
	var es []*gl.Environment
	load(t, "docs_list_environments.json", &es)
	checkEvent(t, EnvironmentEvent(Project{ID: 1, Path: "g/p", WebURL: "https://gitlab.example.com/g/p"}, es[0]), change.Event{
		ID: "environment-1-1", Kind: change.KindEnvironment, ProjectID: 1, ProjectPath: "g/p", Title: "review/fix-foo",
		State: "available", WebURL: "https://gitlab.example.com/g/p/-/environments/1",
		CreatedAt: ts("2019-05-25T18:55:13.252Z"), UpdatedAt: ts("2019-05-27T18:55:13.252Z"), OccurredAt: ts("2019-05-27T18:55:13.252Z"),
		Source: change.SourcePoll, Transitions: transitions("created", "2019-05-25T18:55:13.252Z", "available", "2019-05-27T18:55:13.252Z"),
		Attrs: map[string]any{"name": "review/fix-foo", "tier": "development", "state": "available",
			"external_url": "https://review-fix-foo-dfjre3.gitlab.example.com", "auto_stop_at": "2019-06-03T18:55:13.252Z"},
	})
}

func TestImageEventFromDocs(t *testing.T) {
	var rs []*gl.RegistryRepository
	load(t, "docs_list_registry_repositories.json", &rs)
	var tag gl.RegistryRepositoryTag
	load(t, "docs_get_registry_tag.json", &tag)
	digest := "sha256:c3490dcf10ffb6530c1303522a1405dfaf7daecd8f38d3d8a1bbf0e3b0e2ec44"
	checkEvent(t, ImageEvent(Project{ID: 9, Path: "group/project"}, rs[0], &tag), change.Event{
		ID: "image-9-1-v10.0.0-" + digest, Kind: change.KindImage, ProjectID: 9, ProjectPath: "group/project",
		Title: "group/project:v10.0.0", State: "pushed", Ref: "v10.0.0",
		// GitLab's 2019-01-06T16:49:51.272Z, kept to the second as GraphQL gives it.
		CreatedAt: ts("2019-01-06T16:49:51Z"), UpdatedAt: ts("2019-01-06T16:49:51Z"), OccurredAt: ts("2019-01-06T16:49:51Z"),
		Source: change.SourcePoll, Transitions: transitions("pushed", "2019-01-06T16:49:51Z"),
		Attrs: map[string]any{"repository": "group/project", "repository_id": int64(1), "tag": "v10.0.0", "digest": digest,
			"total_size": int64(350224384), "created_at": "2019-01-06T16:49:51Z", "location": "gitlab.example.com:5000/group/project:latest"},
	})
}

func TestJobEventUpdatedAtIgnoresErasure(t *testing.T) {
	var jobs []*gl.Job
	load(t, "docs_list_pipeline_jobs.json", &jobs)
	erased := ts("2020-01-01T00:00:00Z")
	jobs[0].ErasedAt = &erased
	if e := JobEvent(Project{ID: 1}, jobs[0]); e.UpdatedAt != ts("2015-12-24T17:54:24Z") || e.Attrs["name"] != "rspec:other" ||
		e.Attrs["web_url"] != "https://example.com/foo/bar/-/jobs/6" {
		t.Errorf("job %+v", e)
	}
}
