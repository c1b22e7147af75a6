package change

import (
	"strings"
	"testing"
	"time"
)

func TestParseIDAcceptsWhatConstructorsWrite(t *testing.T) {
	sha40 := strings.Repeat("0123456789", 4)
	for _, c := range []struct {
		id   string
		kind Kind
		pid  int64
	}{
		{MergeRequestID(3, 12), KindMergeRequest, 3},
		{PipelineID(3, 99), KindPipeline, 3},
		{JobID(3, 7), KindJob, 3},
		{CommitID(3, "abc1234"), KindCommit, 3},
		{CommitID(3, sha40), KindCommit, 3},
		{CommitID(3, sha40+sha40[:24]), KindCommit, 3}, // SHA-256 repositories
		{IssueID(3, 4), KindIssue, 3},
		{NoteID(3, 5), KindNote, 3},
		{BranchID(3, "feature/x-1"), KindBranch, 3},
		{BranchID(3, "ünïcode"), KindBranch, 3},
		{TagID(3, "v1.0.0-rc-1"), KindTag, 3},
		{ReleaseID(3, "v1.0.0"), KindRelease, 3},
		{DeploymentID(3, 8), KindDeployment, 3},
		{EnvironmentID(3, 9), KindEnvironment, 3},
		{ImageID(3, 2, "latest", "sha256:"+sha40+sha40[:24]), KindImage, 3},
		{ImageID(9223372036854775807, 2, "v1-rc-2", "sha256:ab"), KindImage, 9223372036854775807},
	} {
		got, err := ParseID(c.id)
		if err != nil || got.Kind != c.kind || got.ProjectID != c.pid {
			t.Errorf("ParseID(%q) = %+v, %v; want %s of project %d", c.id, got, err, c.kind, c.pid)
		}
	}
}

func TestParseIDRefusesMalformed(t *testing.T) {
	for _, c := range []struct{ id, msg string }{
		{"mr-1--5", `not a positive number`},
		{"mr-1-0", `iid`},
		{"mr-1-05", `not a positive number`},
		{"mr-1-+5", `not a positive number`},
		{"mr-1-", `not a positive number`},
		{"mr-1", `not a positive number`},
		{"mr-1-5-6", `not a positive number`},
		{"mr-1-99999999999999999999", `not a positive number`},
		{"job--1-5", `project id "" is not a positive number`},
		{"pipeline-x-5", `project id "x"`},
		{"commit-15-1970-01-01T00:00:00+14:00", `not 7 to 64 lowercase hex digits`},
		{"commit-15-abc", `not 7 to 64 lowercase hex digits`},
		{"commit-15-ABCDEF1", `lowercase hex`},
		{"commit-15-" + strings.Repeat("a", 65), `7 to 64`},
		{"branch-3-", `empty branch name`},
		{"tag-3-", `empty tag name`},
		{"release-3-", `empty release name`},
		{"branch-3-a\nb", `control character`},
		{"tag-3-\xff", `UTF-8`},
		{"image-3-0-latest-sha256:ab", `repository id "0"`},
		{"image-3-2-latest", `no tag and digest`},
		{"image-3-2--sha256:ab", `empty image tag`},
		{"image-3-2-latest-sha256:", `digest`},
		{"image-3-2-latest-sha256:zz", `digest`},
		{"image-3-2-latest-ab", `digest`},
		{"wiki-3-1", `unknown kind prefix "wiki"`},
		{"merge_request-3-1", `unknown kind prefix`},
		{"", `unknown kind prefix`},
	} {
		_, err := ParseID(c.id)
		if err == nil {
			t.Errorf("ParseID(%q) accepted", c.id)
			continue
		}
		if !strings.Contains(err.Error(), c.msg) || !strings.Contains(err.Error(), "id ") {
			t.Errorf("ParseID(%q): %v, want it to say %q", c.id, err, c.msg)
		}
		if ValidID(c.id) == nil {
			t.Errorf("ValidID(%q) accepted", c.id)
		}
	}
}

func TestCheckEventID(t *testing.T) {
	ok := Event{ID: "mr-1-1", Kind: KindMergeRequest, ProjectID: 1, UpdatedAt: time.Now(), Source: SourcePoll}
	if err := CheckEventID(ok); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		mutate func(*Event)
		msg    string
	}{
		"bad iid":       {func(e *Event) { e.ID = "mr-1--5" }, `iid "-5"`},
		"kind mismatch": {func(e *Event) { e.Kind = KindIssue }, `id "mr-1-1" is of kind merge_request, the event of kind issue`},
		"project":       {func(e *Event) { e.ProjectID = 2 }, `id "mr-1-1" is of project 1, the event of project 2`},
	} {
		e := ok
		c.mutate(&e)
		err := CheckEventID(e)
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: %v, want %q", name, err, c.msg)
		}
	}
}
