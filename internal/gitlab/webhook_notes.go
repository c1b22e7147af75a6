package gitlab

import (
	"time"

	"github.com/labtrail/labtrail/internal/change"
)

type noteHook struct {
	User             *hookUser `json:"user"`
	ObjectAttributes *struct {
		ID           int64    `json:"id"`
		Note         string   `json:"note"`
		NoteableType string   `json:"noteable_type"`
		AuthorID     int64    `json:"author_id"`
		ProjectID    int64    `json:"project_id"`
		System       bool     `json:"system"`
		Internal     bool     `json:"internal"`
		Confidential bool     `json:"confidential"`
		CommitID     string   `json:"commit_id"`
		URL          string   `json:"url"`
		Action       string   `json:"action"`
		CreatedAt    hookTime `json:"created_at"`
		UpdatedAt    hookTime `json:"updated_at"`
	} `json:"object_attributes"`
	Issue        *struct{ IID int64 } `json:"issue"`
	MergeRequest *struct{ IID int64 } `json:"merge_request"`
}

func (nh *noteHook) object() (int64, error) {
	if nh.ObjectAttributes == nil || nh.ObjectAttributes.ID == 0 {
		return 0, malformed("note hook without object_attributes.id")
	}
	return nh.ObjectAttributes.ProjectID, nil
}

func (nh *noteHook) check() error {
	if _, updated := nh.times(); updated.IsZero() {
		return malformed("note %d without created_at", nh.ObjectAttributes.ID)
	}
	return nil
}

// times are the note's created_at and updated_at (created_at if it has
// none), kept to the second like the poller's notes (docs/kinds.md).
func (nh *noteHook) times() (created, updated time.Time) {
	created = seconds(nh.ObjectAttributes.CreatedAt.Time)
	return created, firstSet(seconds(nh.ObjectAttributes.UpdatedAt.Time), created)
}

// parseNote: the note, for the noteable types the poller tracks (MR,
// issue, commit); notes on snippets and others stay raw only. The author
// is `user`: for a new note GitLab builds the payload with the note's
// author as user (Notes::PostProcessService); for an edit, user is the
// editor, so unless user.id is author_id the author is left empty and the
// note is listed in NeedsDetails.
func parseNote(h *hookCtx, nh *noteHook) error {
	oa := nh.ObjectAttributes
	switch oa.NoteableType {
	case "MergeRequest", "Issue", "Commit":
	default:
		return nil
	}
	created, updated := nh.times()
	state := "comment"
	if oa.System {
		state = "system"
	}
	confidential := oa.Confidential || h.out.EventType == "Confidential Note Hook"
	attrs := map[string]any{
		"body":          excerpt(oa.Note, 500),
		"system":        oa.System,
		"noteable_type": oa.NoteableType,
		"internal":      oa.Internal || confidential,
	}
	switch {
	case oa.NoteableType == "Issue" && nh.Issue != nil && nh.Issue.IID != 0:
		attrs["noteable_iid"] = nh.Issue.IID
	case oa.NoteableType == "MergeRequest" && nh.MergeRequest != nil && nh.MergeRequest.IID != 0:
		attrs["noteable_iid"] = nh.MergeRequest.IID
	}
	if oa.CommitID != "" {
		attrs["commit_id"] = oa.CommitID
	}
	id := change.NoteID(h.p.ID, oa.ID)
	author := nh.User.username()
	if oa.Action != "" && oa.Action != "create" && nh.User != nil && nh.User.ID != oa.AuthorID {
		author = ""
		h.needs(id)
	}
	h.emit(change.Event{
		ID: id, Kind: change.KindNote, ProjectID: h.p.ID,
		Title: firstLine(oa.Note, 100), State: state, Author: author, WebURL: oa.URL,
		SHA:       oa.CommitID,
		CreatedAt: created, UpdatedAt: updated, OccurredAt: created,
		Attrs: attrs, Transitions: []change.Transition{{State: state, At: created}},
	})
	return nil
}
