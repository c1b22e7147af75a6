package gitlab

import (
	"strings"

	"github.com/labtrail/labtrail/internal/change"
)

type issueHook struct {
	User             *hookUser `json:"user"`
	ObjectAttributes *struct {
		ID             int64       `json:"id"`
		IID            int64       `json:"iid"`
		ProjectID      int64       `json:"project_id"`
		AuthorID       int64       `json:"author_id"`
		Title          string      `json:"title"`
		Description    string      `json:"description"`
		State          string      `json:"state"`
		Action         string      `json:"action"`
		URL            string      `json:"url"`
		Confidential   bool        `json:"confidential"`
		Type           string      `json:"type"`
		IssueType      string      `json:"issue_type"`
		CreatedAt      hookTime    `json:"created_at"`
		UpdatedAt      hookTime    `json:"updated_at"`
		ClosedAt       hookTime    `json:"closed_at"`
		Labels         []hookLabel `json:"labels"`
		UserNotesCount *int64      `json:"user_notes_count"`
	} `json:"object_attributes"`
	Labels    []hookLabel `json:"labels"`
	Assignees []*hookUser `json:"assignees"`
}

func (ih *issueHook) object() (int64, error) {
	if ih.ObjectAttributes == nil {
		return 0, malformed("issue hook without object_attributes")
	}
	return ih.ObjectAttributes.ProjectID, nil
}

func (ih *issueHook) check() error {
	return checkItem("issue", ih.ObjectAttributes.IID, ih.ObjectAttributes.UpdatedAt.Time)
}

// issueType maps the webhook's work item type name ("Issue", "Incident",
// "Test Case") to the REST API's issue_type ("issue", "incident",
// "test_case").
func issueType(typeName, issueType string) string {
	if issueType != "" {
		return issueType
	}
	if typeName == "" {
		return "issue"
	}
	return strings.ReplaceAll(strings.ToLower(strings.TrimSpace(typeName)), " ", "_")
}

// parseIssue: the issue (or incident, or other work item type). As for
// MRs, `user` is who acted (see actingAuthor).
func parseIssue(h *hookCtx, ih *issueHook) error {
	oa := ih.ObjectAttributes
	created, updated, closed := oa.CreatedAt.Time, oa.UpdatedAt.Time, oa.ClosedAt.Time
	attrs := map[string]any{
		"iid":          oa.IID,
		"description":  oa.Description,
		"issue_type":   issueType(oa.Type, oa.IssueType),
		"labels":       itemLabels(oa.Labels, ih.Labels),
		"assignees":    hookUsernames(ih.Assignees),
		"confidential": oa.Confidential || h.out.EventType == "Confidential Issue Hook",
		"closed_at":    stampOrNil(closed),
		"author_id":    oa.AuthorID,
		"action":       oa.Action,
	}
	if oa.UserNotesCount != nil {
		attrs["user_notes_count"] = *oa.UserNotesCount
	}
	if oa.Action == "close" {
		attrs["closed_by"] = ih.User.username()
	}
	occurred := created
	ts := []change.Transition{{State: "opened", At: created}}
	switch oa.Action {
	case "close":
		ts = append(ts, change.Transition{State: "closed", At: firstSet(closed, updated)})
	case "reopen":
		// As the poller records it from the "reopened" system note.
		ts = append(ts, change.Transition{State: "reopened", At: updated})
	default:
		if !closed.IsZero() {
			ts = append(ts, change.Transition{State: "closed", At: closed})
		}
	}
	if oa.State == "closed" {
		occurred = firstSet(closed, updated)
	}
	if oa.Action != "reopen" {
		ts = withCurrent(ts, oa.State, updated)
	}
	h.emit(change.Event{
		ID: change.IssueID(h.p.ID, oa.IID), Kind: change.KindIssue, ProjectID: h.p.ID,
		Title: oa.Title, State: oa.State, Author: actingAuthor(ih.User, oa.AuthorID), WebURL: oa.URL,
		CreatedAt: created, UpdatedAt: updated, OccurredAt: occurred,
		Attrs: attrs, Transitions: ts,
	})
	return nil
}
