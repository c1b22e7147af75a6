package gitlab

import (
	"github.com/labtrail/labtrail/internal/change"
)

type mrHook struct {
	User             *hookUser `json:"user"`
	ObjectAttributes *struct {
		ID              int64    `json:"id"`
		IID             int64    `json:"iid"`
		TargetProjectID int64    `json:"target_project_id"`
		AuthorID        int64    `json:"author_id"`
		Title           string   `json:"title"`
		Description     string   `json:"description"`
		State           string   `json:"state"`
		Action          string   `json:"action"`
		URL             string   `json:"url"`
		SourceBranch    string   `json:"source_branch"`
		TargetBranch    string   `json:"target_branch"`
		MergeCommitSHA  string   `json:"merge_commit_sha"`
		Draft           bool     `json:"draft"`
		WorkInProgress  bool     `json:"work_in_progress"`
		CreatedAt       hookTime `json:"created_at"`
		UpdatedAt       hookTime `json:"updated_at"`
		// merged_at is in payloads of recent GitLab versions only (older
		// ones lack it); closed_at where the payload has it.
		MergedAt   hookTime    `json:"merged_at"`
		ClosedAt   hookTime    `json:"closed_at"`
		Labels     []hookLabel `json:"labels"`
		LastCommit *struct {
			ID string `json:"id"`
		} `json:"last_commit"`
	} `json:"object_attributes"`
	Labels    []hookLabel `json:"labels"`
	Assignees []*hookUser `json:"assignees"`
	Reviewers []*hookUser `json:"reviewers"`
}

func (mh *mrHook) object() (int64, error) {
	if mh.ObjectAttributes == nil {
		return 0, malformed("merge request hook without object_attributes")
	}
	return mh.ObjectAttributes.TargetProjectID, nil
}

func (mh *mrHook) check() error {
	return checkItem("merge request", mh.ObjectAttributes.IID, mh.ObjectAttributes.UpdatedAt.Time)
}

// mrActionStates are the transitions a merge request action records, at
// merged_at or closed_at where the payload has them, else at the MR's
// updated_at. An approval is not among them: the payload does not say
// when it was given (updated_at is the MR's, and the hook may be built
// after later changes), so its timeline entry comes from the poller, which
// reads each approval's time from GitLab; the MR's NeedsDetails schedules
// that. Recording it here too gave every approved MR a second "approved"
// entry at another time.
var mrActionStates = map[string]string{
	"open":   "opened",
	"reopen": "opened",
	"merge":  "merged",
	"close":  "closed",
}

// parseMergeRequest: the MR, always with NeedsDetails (approvals, diffs,
// commits and notes come from the poller). `user` is whoever acted, not
// necessarily the author (see actingAuthor); what the payload lacks (the
// author then, approvals, diff stats) the store keeps as it was.
func parseMergeRequest(h *hookCtx, mh *mrHook) error {
	oa := mh.ObjectAttributes
	created, updated := oa.CreatedAt.Time, oa.UpdatedAt.Time
	merged, closed := oa.MergedAt.Time, oa.ClosedAt.Time
	attrs := map[string]any{
		"iid":              oa.IID,
		"description":      oa.Description,
		"source_branch":    oa.SourceBranch,
		"target_branch":    oa.TargetBranch,
		"draft":            oa.Draft || oa.WorkInProgress || draftTitle(oa.Title),
		"labels":           itemLabels(oa.Labels, mh.Labels),
		"assignees":        hookUsernames(mh.Assignees),
		"reviewers":        hookUsernames(mh.Reviewers),
		"merge_commit_sha": oa.MergeCommitSHA,
		"author_id":        oa.AuthorID,
		"action":           oa.Action,
	}
	switch oa.Action {
	case "merge":
		attrs["merged_by"] = mh.User.username()
	case "close":
		attrs["closed_by"] = mh.User.username()
	}
	if oa.State == "merged" && !merged.IsZero() {
		attrs["merged_at"] = stamp(merged)
	}
	if oa.State == "closed" && !closed.IsZero() {
		attrs["closed_at"] = stamp(closed)
	}
	occurred := created
	switch oa.State {
	case "merged":
		occurred = firstSet(merged, updated)
	case "closed":
		occurred = firstSet(closed, updated)
	case "locked":
		occurred = updated
	}
	ts := []change.Transition{{State: "opened", At: created}}
	switch s, ok := mrActionStates[oa.Action]; {
	case oa.Action == "merge":
		ts = append(ts, change.Transition{State: s, At: firstSet(merged, updated)})
	case oa.Action == "close":
		ts = append(ts, change.Transition{State: s, At: firstSet(closed, updated)})
	case ok && oa.Action != "open":
		ts = append(ts, change.Transition{State: s, At: updated})
	case oa.State == "merged" && !merged.IsZero():
		// A later change to a merged MR: the merge, as the poller has it.
		ts = append(ts, change.Transition{State: "merged", At: merged})
	}
	ts = withCurrent(ts, oa.State, occurred)
	sha := ""
	if oa.LastCommit != nil {
		sha = oa.LastCommit.ID
	}
	id := change.MergeRequestID(h.p.ID, oa.IID)
	h.emit(change.Event{
		ID: id, Kind: change.KindMergeRequest, ProjectID: h.p.ID,
		Title: oa.Title, State: oa.State, Author: actingAuthor(mh.User, oa.AuthorID), WebURL: oa.URL,
		Ref: oa.SourceBranch, SHA: sha,
		CreatedAt: created, UpdatedAt: updated, OccurredAt: occurred,
		Attrs: attrs, Transitions: ts,
	})
	h.needs(id)
	return nil
}
