package change

import (
	"testing"
	"time"
)

func TestStableIDs(t *testing.T) {
	tests := []struct{ got, want string }{
		{MergeRequestID(3, 12), "mr-3-12"},
		{PipelineID(3, 99), "pipeline-3-99"},
		{JobID(3, 7), "job-3-7"},
		{CommitID(3, "abc123"), "commit-3-abc123"},
		{IssueID(3, 4), "issue-3-4"},
		{NoteID(3, 5), "note-3-5"},
		{BranchID(3, "feature/x"), "branch-3-feature/x"},
		{TagID(3, "v1.0.0"), "tag-3-v1.0.0"},
		{ReleaseID(3, "v1.0.0"), "release-3-v1.0.0"},
		{DeploymentID(3, 8), "deployment-3-8"},
		{EnvironmentID(3, 9), "environment-3-9"},
		{ImageID(3, 2, "latest", "sha256:ab"), "image-3-2-latest-sha256:ab"},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("got %s, want %s", tc.got, tc.want)
		}
	}
}

func TestParseKind(t *testing.T) {
	for _, k := range Kinds {
		if got, err := ParseKind(string(k)); err != nil || got != k {
			t.Errorf("ParseKind(%s) = %s, %v", k, got, err)
		}
	}
	if _, err := ParseKind("wiki"); err == nil {
		t.Error("ParseKind(wiki) accepted")
	}
}

func TestSortedTransitions(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	e := Event{Transitions: []Transition{
		{State: "merged", At: t0.Add(3 * time.Hour)},
		{State: "opened", At: t0},
		{State: "opened", At: t0.Add(time.Hour)}, // still open: not a change
		{State: "closed"},                        // no time: dropped
		{State: "", At: t0},                      // no state: dropped
	}}
	got := e.SortedTransitions()
	if len(got) != 2 || got[0].State != "opened" || !got[0].At.Equal(t0) || got[1].State != "merged" {
		t.Errorf("SortedTransitions = %+v", got)
	}
}

func TestValidate(t *testing.T) {
	ok := Event{ID: "mr-1-1", Kind: KindMergeRequest, UpdatedAt: time.Now(), Source: SourcePoll}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(*Event){
		"no id":      func(e *Event) { e.ID = "" },
		"bad kind":   func(e *Event) { e.Kind = "wiki" },
		"no updated": func(e *Event) { e.UpdatedAt = time.Time{} },
		"bad source": func(e *Event) { e.Source = "carrier pigeon" },
	} {
		e := ok
		mutate(&e)
		if e.Validate() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
