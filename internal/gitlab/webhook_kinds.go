package gitlab

import (
	"fmt"
	"math"
	"net/url"
	"strings"
	"time"

	"github.com/labtrail/labtrail/internal/change"
)

// zeroSHA is what a push names as `after` when it deletes the ref.
const zeroSHA = "0000000000000000000000000000000000000000"

type hookCommit struct {
	ID        string   `json:"id"`
	Message   string   `json:"message"`
	Title     string   `json:"title"`
	Timestamp hookTime `json:"timestamp"`
	URL       string   `json:"url"`
	Author    struct {
		Name  string `json:"name"`
		Email string `json:"email"`
	} `json:"author"`
}

type pushHook struct {
	Before            string       `json:"before"`
	After             string       `json:"after"`
	Ref               string       `json:"ref"`
	RefProtected      *bool        `json:"ref_protected"`
	CheckoutSHA       string       `json:"checkout_sha"`
	Message           string       `json:"message"`
	UserUsername      string       `json:"user_username"`
	TotalCommitsCount int          `json:"total_commits_count"`
	Commits           []hookCommit `json:"commits"`
}

func (ph *pushHook) commit(shas ...string) *hookCommit {
	for _, sha := range shas {
		for i := range ph.Commits {
			if sha != "" && ph.Commits[i].ID == sha {
				return &ph.Commits[i]
			}
		}
	}
	return nil
}

func deletedRef(after string) bool { return after == zeroSHA }

// parsePush: one commit event per pushed commit and one for the branch.
// A commit's `timestamp` is its committed date (GitLab's
// Commit#hook_attrs writes committed_date.xmlschema), the commit's
// updated_at by docs/kinds.md; the branch's is its head commit's.
func parsePush(h *hookCtx) error {
	if err := h.requireProject(); err != nil {
		return err
	}
	var ph pushHook
	if err := h.decode(&ph); err != nil {
		return err
	}
	if ph.Ref == "" {
		return malformed("push without ref")
	}
	branch := strings.TrimPrefix(ph.Ref, "refs/heads/")
	pid := h.p.ID
	for _, c := range ph.Commits {
		if c.ID == "" {
			return malformed("push with a commit without id")
		}
		committed := c.Timestamp.Time
		if committed.IsZero() {
			h.needs(change.CommitID(pid, c.ID))
			continue
		}
		title := c.Title
		if title == "" {
			title = firstLine(c.Message, 100)
		}
		h.emit(change.Event{
			ID:         change.CommitID(pid, c.ID),
			Kind:       change.KindCommit,
			ProjectID:  pid,
			Title:      title,
			State:      "committed",
			Author:     c.Author.Name,
			WebURL:     c.URL,
			Ref:        branch,
			SHA:        c.ID,
			CreatedAt:  committed,
			UpdatedAt:  committed,
			OccurredAt: committed,
			Attrs: map[string]any{
				"message":        c.Message,
				"author_name":    c.Author.Name,
				"author_email":   c.Author.Email,
				"committed_date": stamp(committed),
				"branch":         branch,
			},
			Transitions: []change.Transition{{State: "committed", At: committed}},
		})
	}

	id := change.BranchID(pid, branch)
	webURL := ""
	if h.p.WebURL != "" {
		webURL = h.p.WebURL + "/-/tree/" + branch
	}
	attrs := map[string]any{"name": branch}
	if h.p.DefaultBranch != "" {
		attrs["default"] = branch == h.p.DefaultBranch
	}
	if ph.RefProtected != nil {
		attrs["protected"] = *ph.RefProtected
	}
	if deletedRef(ph.After) {
		now := webhookNow().UTC()
		attrs["commit_sha"] = ph.Before
		h.emit(refEvent(change.KindBranch, id, pid, branch, "deleted", ph.UserUsername, webURL, ph.Before, now, attrs))
		return nil
	}
	if ph.TotalCommitsCount > len(ph.Commits) {
		// GitLab sends at most 20 commits per push.
		h.needs(id)
	}
	head := ph.commit(ph.After, ph.CheckoutSHA)
	if head == nil || head.Timestamp.IsZero() {
		// A branch created at an existing commit: the payload has no
		// commit, so no committed_date for the branch's updated_at.
		h.needs(id)
		return nil
	}
	committed := head.Timestamp.Time
	attrs["commit_sha"] = head.ID
	attrs["committed_date"] = stamp(committed)
	h.emit(refEvent(change.KindBranch, id, pid, branch, "active", head.Author.Name, webURL, head.ID, committed, attrs))
	return nil
}

// parseTagPush: the tag. Its updated_at is the tagged commit's committed
// date, which GitLab sends as the one entry of `commits`; checkout_sha is
// that commit, `after` the tag object for an annotated tag.
func parseTagPush(h *hookCtx) error {
	if err := h.requireProject(); err != nil {
		return err
	}
	var ph pushHook
	if err := h.decode(&ph); err != nil {
		return err
	}
	if ph.Ref == "" {
		return malformed("tag push without ref")
	}
	name := strings.TrimPrefix(ph.Ref, "refs/tags/")
	pid := h.p.ID
	id := change.TagID(pid, name)
	webURL := ""
	if h.p.WebURL != "" {
		webURL = h.p.WebURL + "/-/tags/" + url.PathEscape(name)
	}
	attrs := map[string]any{"name": name, "target": ph.After}
	if ph.Message != "" {
		attrs["message"] = ph.Message
	}
	if deletedRef(ph.After) {
		now := webhookNow().UTC()
		attrs["target"] = ph.Before
		h.emit(refEvent(change.KindTag, id, pid, name, "deleted", ph.UserUsername, webURL, "", now, attrs))
		return nil
	}
	c := ph.commit(ph.CheckoutSHA, ph.After)
	if c == nil || c.Timestamp.IsZero() {
		h.needs(id)
		return nil
	}
	committed := c.Timestamp.Time
	attrs["commit_sha"] = c.ID
	attrs["committed_date"] = stamp(committed)
	h.emit(refEvent(change.KindTag, id, pid, name, "tagged", c.Author.Name, webURL, c.ID, committed, attrs))
	return nil
}

// refEvent is a branch or tag as a push hook leaves it: in state since t.
// A deleted ref keeps no creation time.
func refEvent(kind change.Kind, id string, pid int64, name, state, author, webURL, sha string, t time.Time, attrs map[string]any) change.Event {
	ev := change.Event{
		ID: id, Kind: kind, ProjectID: pid, Title: name, State: state,
		Author: author, WebURL: webURL, Ref: name, SHA: sha,
		UpdatedAt: t, OccurredAt: t, Attrs: attrs,
		Transitions: []change.Transition{{State: state, At: t}},
	}
	if state != "deleted" {
		ev.CreatedAt = t
	}
	return ev
}

type mrHook struct {
	User             *hookUser `json:"user"`
	ObjectAttributes *struct {
		ID              int64       `json:"id"`
		IID             int64       `json:"iid"`
		TargetProjectID int64       `json:"target_project_id"`
		AuthorID        int64       `json:"author_id"`
		Title           string      `json:"title"`
		Description     string      `json:"description"`
		State           string      `json:"state"`
		Action          string      `json:"action"`
		URL             string      `json:"url"`
		SourceBranch    string      `json:"source_branch"`
		TargetBranch    string      `json:"target_branch"`
		MergeCommitSHA  string      `json:"merge_commit_sha"`
		Draft           bool        `json:"draft"`
		WorkInProgress  bool        `json:"work_in_progress"`
		CreatedAt       hookTime    `json:"created_at"`
		UpdatedAt       hookTime    `json:"updated_at"`
		Labels          []hookLabel `json:"labels"`
		LastCommit      *struct {
			ID string `json:"id"`
		} `json:"last_commit"`
	} `json:"object_attributes"`
	Labels    []hookLabel `json:"labels"`
	Assignees []*hookUser `json:"assignees"`
	Reviewers []*hookUser `json:"reviewers"`
}

// mrActionStates are the transitions a merge request action records, at
// the MR's updated_at (the payload has no merged_at or closed_at).
var mrActionStates = map[string]string{
	"open":     "opened",
	"reopen":   "opened",
	"approval": "approved", // one approval among several required
	"approved": "approved", // the MR is now fully approved
	"merge":    "merged",
	"close":    "closed",
}

// parseMergeRequest: the MR, always with NeedsDetails (approvals, diffs,
// commits and notes come from the poller). `user` is whoever acted, not
// necessarily the author: the author's username is set only when they
// are the same person (object_attributes.author_id == user.id).
func parseMergeRequest(h *hookCtx) error {
	var mh mrHook
	if err := h.decode(&mh); err != nil {
		return err
	}
	oa := mh.ObjectAttributes
	if oa == nil {
		return malformed("merge request hook without object_attributes")
	}
	if h.p.ID == 0 {
		h.p.ID = oa.TargetProjectID
	}
	if err := h.requireProject(); err != nil {
		return err
	}
	if oa.IID == 0 {
		return malformed("merge request without iid")
	}
	created, updated := oa.CreatedAt.Time, oa.UpdatedAt.Time
	if updated.IsZero() {
		return malformed("merge request without updated_at")
	}
	labels := oa.Labels
	if labels == nil {
		labels = mh.Labels
	}
	attrs := map[string]any{
		"iid":              oa.IID,
		"description":      oa.Description,
		"source_branch":    oa.SourceBranch,
		"target_branch":    oa.TargetBranch,
		"draft":            oa.Draft || oa.WorkInProgress || draftTitle(oa.Title),
		"labels":           labelTitles(labels),
		"assignees":        hookUsernames(mh.Assignees),
		"reviewers":        hookUsernames(mh.Reviewers),
		"merge_commit_sha": oa.MergeCommitSHA,
		"author_id":        oa.AuthorID,
		"action":           oa.Action,
	}
	author := ""
	if mh.User != nil && mh.User.ID != 0 && mh.User.ID == oa.AuthorID {
		author = mh.User.Username
	}
	switch oa.Action {
	case "merge":
		attrs["merged_by"] = mh.User.username()
	case "close":
		attrs["closed_by"] = mh.User.username()
	}
	occurred := created
	switch oa.State {
	case "merged", "closed", "locked":
		occurred = updated
	}
	ts := []change.Transition{{State: "opened", At: created}}
	s, ok := mrActionStates[oa.Action]
	approval := s == "approved"
	if ok && oa.Action != "open" && !approval {
		ts = append(ts, change.Transition{State: s, At: updated})
	}
	ts = withCurrent(ts, oa.State, updated)
	if approval {
		// Approval is no state of the MR: as the poller does, it is added
		// after the current state is settled.
		ts = append(ts, change.Transition{State: s, At: updated})
	}
	sha := ""
	if oa.LastCommit != nil {
		sha = oa.LastCommit.ID
	}
	id := change.MergeRequestID(h.p.ID, oa.IID)
	h.emit(change.Event{
		ID: id, Kind: change.KindMergeRequest, ProjectID: h.p.ID,
		Title: oa.Title, State: oa.State, Author: author, WebURL: oa.URL,
		Ref: oa.SourceBranch, SHA: sha,
		CreatedAt: created, UpdatedAt: updated, OccurredAt: occurred,
		Attrs: attrs, Transitions: ts,
	})
	h.needs(id)
	return nil
}

type hookBuild struct {
	ID             int64     `json:"id"`
	Stage          string    `json:"stage"`
	Name           string    `json:"name"`
	Status         string    `json:"status"`
	CreatedAt      hookTime  `json:"created_at"`
	StartedAt      hookTime  `json:"started_at"`
	FinishedAt     hookTime  `json:"finished_at"`
	Duration       *float64  `json:"duration"`
	QueuedDuration *float64  `json:"queued_duration"`
	AllowFailure   bool      `json:"allow_failure"`
	FailureReason  *string   `json:"failure_reason"`
	User           *hookUser `json:"user"`
}

type pipelineHook struct {
	User             *hookUser `json:"user"`
	ObjectAttributes *struct {
		ID             int64    `json:"id"`
		IID            int64    `json:"iid"`
		Name           string   `json:"name"`
		Ref            string   `json:"ref"`
		Tag            bool     `json:"tag"`
		SHA            string   `json:"sha"`
		Source         string   `json:"source"`
		Status         string   `json:"status"`
		DetailedStatus string   `json:"detailed_status"`
		Stages         []string `json:"stages"`
		CreatedAt      hookTime `json:"created_at"`
		FinishedAt     hookTime `json:"finished_at"`
		Duration       *float64 `json:"duration"`
		QueuedDuration *float64 `json:"queued_duration"`
		URL            string   `json:"url"`
	} `json:"object_attributes"`
	Builds []hookBuild `json:"builds"`
}

func floatOr0(f *float64) float64 {
	if f == nil || math.IsNaN(*f) || math.IsInf(*f, 0) {
		return 0
	}
	return *f
}

func strOr0(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// parsePipeline: the pipeline and one job event per build. The payload
// has no updated_at; the latest time it shows (created, finished, and
// every job's created/started/finished) stands in. GitLab touches a
// pipeline's updated_at at each of those moments, so the stand-in is at
// most the real one and the poller's version, when it comes, wins.
func parsePipeline(h *hookCtx) error {
	if err := h.requireProject(); err != nil {
		return err
	}
	var ph pipelineHook
	if err := h.decode(&ph); err != nil {
		return err
	}
	oa := ph.ObjectAttributes
	if oa == nil || oa.ID == 0 {
		return malformed("pipeline hook without object_attributes.id")
	}
	pid := h.p.ID
	created, finished := oa.CreatedAt.Time, oa.FinishedAt.Time
	updated := latest(created, finished)
	for _, b := range ph.Builds {
		updated = latest(updated, b.CreatedAt.Time, b.StartedAt.Time, b.FinishedAt.Time)
	}
	if updated.IsZero() {
		return malformed("pipeline %d without any timestamp", oa.ID)
	}
	webURL := oa.URL
	if webURL == "" && h.p.WebURL != "" {
		webURL = fmt.Sprintf("%s/-/pipelines/%d", h.p.WebURL, oa.ID)
	}
	ev := pipelineEvent(h.p, pipelineFields{
		id: oa.ID, iid: oa.IID, projectID: pid, status: oa.Status, source: oa.Source,
		ref: oa.Ref, sha: oa.SHA, name: oa.Name, webURL: webURL,
		created: created, updated: updated, finished: finished,
	})
	if ph.User != nil {
		ev.Author = ph.User.Username
		ev.Attrs["user"] = ph.User.Username
	}
	ev.Attrs["duration"] = int64(math.Round(floatOr0(oa.Duration)))
	ev.Attrs["queued_duration"] = int64(math.Round(floatOr0(oa.QueuedDuration)))
	ev.Attrs["detailed_status"] = oa.DetailedStatus
	ev.Attrs["tag"] = oa.Tag
	if oa.Stages != nil {
		ev.Attrs["stages"] = oa.Stages
	}

	jobs := make([]change.Event, 0, len(ph.Builds))
	failed := []map[string]any{}
	for _, b := range ph.Builds {
		if b.ID == 0 {
			return malformed("pipeline %d with a build without id", oa.ID)
		}
		je := h.jobEvent(jobFields{
			id: b.ID, name: b.Name, stage: b.Stage, status: b.Status,
			failureReason: strOr0(b.FailureReason), duration: floatOr0(b.Duration),
			queued: floatOr0(b.QueuedDuration), pipelineID: oa.ID, allowFailure: b.AllowFailure,
			created: b.CreatedAt.Time, started: b.StartedAt.Time, finished: b.FinishedAt.Time,
			ref: oa.Ref, sha: oa.SHA, user: b.User.username(),
		})
		if je.UpdatedAt.IsZero() {
			je.UpdatedAt, je.OccurredAt = updated, updated
		}
		jobs = append(jobs, je)
		if b.Status == "failed" {
			failed = append(failed, map[string]any{
				"name": b.Name, "stage": b.Stage, "status": b.Status,
				"failure_reason": strOr0(b.FailureReason), "duration": wholeSeconds(floatOr0(b.Duration)),
				"web_url": je.WebURL, "allow_failure": b.AllowFailure,
			})
		}
	}
	if oa.Status == "failed" {
		ev.Attrs["failed_jobs"] = failed
	}
	h.emit(ev)
	for _, je := range jobs {
		h.emit(je)
	}
	if oa.Status == "failed" {
		h.needs(ev.ID)
	}
	return nil
}

type jobFields struct {
	id, pipelineID             int64
	name, stage, status        string
	failureReason, ref, sha    string
	user                       string
	duration, queued           float64
	allowFailure               bool
	created, started, finished time.Time
}

// jobEvent builds a job's event as JobEvent does from the REST listing.
func (h *hookCtx) jobEvent(f jobFields) change.Event {
	// Kept to the second, with whole-second durations, like the poller's
	// jobs (docs/kinds.md).
	f.created, f.started, f.finished = seconds(f.created), seconds(f.started), seconds(f.finished)
	updated := latest(f.created, f.started, f.finished)
	final := finalStatus(f.status)
	occurred := firstSet(f.started, f.created)
	if final {
		occurred = firstSet(f.finished, updated)
	}
	ts := []change.Transition{{State: "created", At: f.created}}
	if !f.started.IsZero() {
		ts = append(ts, change.Transition{State: "running", At: f.started})
	}
	if final {
		ts = append(ts, change.Transition{State: f.status, At: firstSet(f.finished, updated)})
	} else {
		ts = withCurrent(ts, f.status, updated)
	}
	webURL := ""
	if h.p.WebURL != "" {
		webURL = fmt.Sprintf("%s/-/jobs/%d", h.p.WebURL, f.id)
	}
	attrs := map[string]any{
		"name":            f.name,
		"web_url":         webURL,
		"stage":           f.stage,
		"status":          f.status,
		"failure_reason":  f.failureReason,
		"duration":        wholeSeconds(f.duration),
		"queued_duration": f.queued,
		"pipeline_id":     f.pipelineID,
		"allow_failure":   f.allowFailure,
	}
	if !f.started.IsZero() {
		attrs["started_at"] = stamp(f.started)
	}
	if !f.finished.IsZero() {
		attrs["finished_at"] = stamp(f.finished)
	}
	return change.Event{
		ID: change.JobID(h.p.ID, f.id), Kind: change.KindJob, ProjectID: h.p.ID,
		Title: f.name, State: f.status, Author: f.user, WebURL: webURL,
		Ref: f.ref, SHA: f.sha,
		CreatedAt: f.created, UpdatedAt: updated, OccurredAt: occurred,
		Attrs: attrs, Transitions: ts, Source: change.SourceWebhook,
	}
}

type jobHook struct {
	Ref                 string    `json:"ref"`
	SHA                 string    `json:"sha"`
	BuildID             int64     `json:"build_id"`
	BuildName           string    `json:"build_name"`
	BuildStage          string    `json:"build_stage"`
	BuildStatus         string    `json:"build_status"`
	BuildCreatedAt      hookTime  `json:"build_created_at"`
	BuildStartedAt      hookTime  `json:"build_started_at"`
	BuildFinishedAt     hookTime  `json:"build_finished_at"`
	BuildCreatedAtISO   hookTime  `json:"build_created_at_iso"`
	BuildStartedAtISO   hookTime  `json:"build_started_at_iso"`
	BuildFinishedAtISO  hookTime  `json:"build_finished_at_iso"`
	BuildDuration       *float64  `json:"build_duration"`
	BuildQueuedDuration *float64  `json:"build_queued_duration"`
	BuildAllowFailure   bool      `json:"build_allow_failure"`
	BuildFailureReason  *string   `json:"build_failure_reason"`
	PipelineID          int64     `json:"pipeline_id"`
	User                *hookUser `json:"user"`
}

// parseJob: the job. The *_iso times (GitLab 15.x+) carry the same
// instants as the older fields; they are preferred where present.
func parseJob(h *hookCtx) error {
	if err := h.requireProject(); err != nil {
		return err
	}
	var jh jobHook
	if err := h.decode(&jh); err != nil {
		return err
	}
	if jh.BuildID == 0 {
		return malformed("job hook without build_id")
	}
	je := h.jobEvent(jobFields{
		id: jh.BuildID, name: jh.BuildName, stage: jh.BuildStage, status: jh.BuildStatus,
		failureReason: strOr0(jh.BuildFailureReason), duration: floatOr0(jh.BuildDuration),
		queued: floatOr0(jh.BuildQueuedDuration), pipelineID: jh.PipelineID,
		allowFailure: jh.BuildAllowFailure,
		created:      firstSet(jh.BuildCreatedAtISO.Time, jh.BuildCreatedAt.Time),
		started:      firstSet(jh.BuildStartedAtISO.Time, jh.BuildStartedAt.Time),
		finished:     firstSet(jh.BuildFinishedAtISO.Time, jh.BuildFinishedAt.Time),
		ref:          jh.Ref, sha: jh.SHA, user: jh.User.username(),
	})
	if je.UpdatedAt.IsZero() {
		h.needs(je.ID)
		return nil
	}
	h.emit(je)
	return nil
}

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
// MRs, `user` is who acted; the author is set only when that is them.
func parseIssue(h *hookCtx) error {
	var ih issueHook
	if err := h.decode(&ih); err != nil {
		return err
	}
	oa := ih.ObjectAttributes
	if oa == nil {
		return malformed("issue hook without object_attributes")
	}
	if h.p.ID == 0 {
		h.p.ID = oa.ProjectID
	}
	if err := h.requireProject(); err != nil {
		return err
	}
	if oa.IID == 0 {
		return malformed("issue without iid")
	}
	created, updated, closed := oa.CreatedAt.Time, oa.UpdatedAt.Time, oa.ClosedAt.Time
	if updated.IsZero() {
		return malformed("issue without updated_at")
	}
	labels := oa.Labels
	if labels == nil {
		labels = ih.Labels
	}
	confidential := oa.Confidential || h.out.EventType == "Confidential Issue Hook"
	attrs := map[string]any{
		"iid":          oa.IID,
		"description":  oa.Description,
		"issue_type":   issueType(oa.Type, oa.IssueType),
		"labels":       labelTitles(labels),
		"assignees":    hookUsernames(ih.Assignees),
		"confidential": confidential,
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
	author := ""
	if ih.User != nil && ih.User.ID != 0 && ih.User.ID == oa.AuthorID {
		author = ih.User.Username
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
		Title: oa.Title, State: oa.State, Author: author, WebURL: oa.URL,
		CreatedAt: created, UpdatedAt: updated, OccurredAt: occurred,
		Attrs: attrs, Transitions: ts,
	})
	return nil
}

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

// parseNote: the note, for the noteable types the poller tracks (MR,
// issue, commit); notes on snippets and others stay raw only. The author
// is `user`: for a new note GitLab builds the payload with the note's
// author as user (Notes::PostProcessService); for an edit, user is the
// editor, so unless user.id is author_id the author is left empty and the
// note is listed in NeedsDetails.
func parseNote(h *hookCtx) error {
	var nh noteHook
	if err := h.decode(&nh); err != nil {
		return err
	}
	oa := nh.ObjectAttributes
	if oa == nil || oa.ID == 0 {
		return malformed("note hook without object_attributes.id")
	}
	if h.p.ID == 0 {
		h.p.ID = oa.ProjectID
	}
	if err := h.requireProject(); err != nil {
		return err
	}
	// Kept to the second, like the poller's notes (docs/kinds.md).
	created := seconds(oa.CreatedAt.Time)
	updated := firstSet(seconds(oa.UpdatedAt.Time), created)
	if updated.IsZero() {
		return malformed("note %d without created_at", oa.ID)
	}
	switch oa.NoteableType {
	case "MergeRequest", "Issue", "Commit":
	default:
		return nil
	}
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

type releaseHook struct {
	CreatedAt   hookTime `json:"created_at"`
	ReleasedAt  hookTime `json:"released_at"`
	Description string   `json:"description"`
	Name        string   `json:"name"`
	Tag         string   `json:"tag"`
	URL         string   `json:"url"`
	Action      string   `json:"action"`
	Assets      struct {
		Links []struct {
			Name     string `json:"name"`
			URL      string `json:"url"`
			LinkType string `json:"link_type"`
		} `json:"links"`
		Sources []struct{} `json:"sources"`
	} `json:"assets"`
	Commit *struct {
		ID string `json:"id"`
	} `json:"commit"`
}

// parseRelease: the release; updated_at is the later of created_at and
// released_at, as for the poller. A deleted release keeps no time of its
// deletion in the payload; it is dated when parsed, so that it wins over
// the release's last state.
func parseRelease(h *hookCtx) error {
	if err := h.requireProject(); err != nil {
		return err
	}
	var rh releaseHook
	if err := h.decode(&rh); err != nil {
		return err
	}
	if rh.Tag == "" {
		return malformed("release without tag")
	}
	created, released := rh.CreatedAt.Time, rh.ReleasedAt.Time
	updated := latest(created, released)
	if updated.IsZero() {
		return malformed("release %s without created_at", rh.Tag)
	}
	now := webhookNow().UTC()
	upcoming := released.After(now)
	state := "published"
	if upcoming {
		state = "upcoming"
	}
	links := make([]map[string]any, 0, len(rh.Assets.Links))
	for _, l := range rh.Assets.Links {
		links = append(links, map[string]any{"name": l.Name, "url": l.URL, "link_type": l.LinkType})
	}
	ts := []change.Transition{{State: "created", At: created}}
	occurred := created
	if !upcoming && !released.IsZero() {
		ts = append(ts, change.Transition{State: "published", At: released})
		occurred = released
	}
	if rh.Action == "delete" {
		state, updated, occurred = "deleted", now, now
		ts = append(ts, change.Transition{State: "deleted", At: now})
	}
	sha := ""
	if rh.Commit != nil {
		sha = rh.Commit.ID
	}
	h.emit(change.Event{
		ID: change.ReleaseID(h.p.ID, rh.Tag), Kind: change.KindRelease, ProjectID: h.p.ID,
		Title: firstNonEmpty(rh.Name, rh.Tag), State: state, WebURL: rh.URL,
		Ref: rh.Tag, SHA: sha,
		CreatedAt: created, UpdatedAt: updated, OccurredAt: occurred,
		Attrs: map[string]any{
			"name": rh.Name, "tag_name": rh.Tag, "description": rh.Description,
			"released_at": stampOrNil(released), "created_at": stampOrNil(created),
			"upcoming_release": upcoming, "links": links,
			"sources_count": len(rh.Assets.Sources), "action": rh.Action,
		},
		Transitions: ts,
	})
	return nil
}

type deploymentHook struct {
	Status                 string    `json:"status"`
	StatusChangedAt        hookTime  `json:"status_changed_at"`
	DeploymentID           int64     `json:"deployment_id"`
	DeployableID           int64     `json:"deployable_id"`
	DeployableURL          string    `json:"deployable_url"`
	Environment            string    `json:"environment"`
	EnvironmentSlug        string    `json:"environment_slug"`
	EnvironmentExternalURL string    `json:"environment_external_url"`
	ShortSHA               string    `json:"short_sha"`
	User                   *hookUser `json:"user"`
	CommitURL              string    `json:"commit_url"`
	CommitTitle            string    `json:"commit_title"`
	Ref                    string    `json:"ref"`
}

// parseDeployment: the deployment. status_changed_at (GitLab 14.0+) is
// when GitLab moved the deployment to status, the moment its updated_at
// is also set, so it stands in for updated_at. The payload lacks the
// deployment's iid, created_at and environment id, so the deployment is
// always listed in NeedsDetails.
func parseDeployment(h *hookCtx) error {
	if err := h.requireProject(); err != nil {
		return err
	}
	var dh deploymentHook
	if err := h.decode(&dh); err != nil {
		return err
	}
	if dh.DeploymentID == 0 {
		return malformed("deployment hook without deployment_id")
	}
	id := change.DeploymentID(h.p.ID, dh.DeploymentID)
	h.needs(id)
	at := dh.StatusChangedAt.Time
	if at.IsZero() {
		// GitLab before 14.0: no time at all.
		return nil
	}
	sha := ""
	if i := strings.LastIndex(dh.CommitURL, "/commit/"); i >= 0 {
		sha = dh.CommitURL[i+len("/commit/"):]
	}
	final := finalStatus(dh.Status)
	attrs := map[string]any{
		"environment":              dh.Environment,
		"environment_slug":         dh.EnvironmentSlug,
		"environment_external_url": dh.EnvironmentExternalURL,
		"status":                   dh.Status,
		"status_changed_at":        stamp(at),
		"short_sha":                dh.ShortSHA,
		"commit_title":             dh.CommitTitle,
	}
	if final {
		attrs["finished_at"] = stamp(at)
	}
	if dh.DeployableID != 0 {
		attrs["deployable"] = map[string]any{"id": dh.DeployableID, "web_url": dh.DeployableURL}
	}
	var created time.Time
	if dh.Status == "created" {
		created = at
	}
	h.emit(change.Event{
		ID: id, Kind: change.KindDeployment, ProjectID: h.p.ID,
		Title: "Deployment to " + dh.Environment, State: dh.Status,
		Author: dh.User.username(), WebURL: dh.DeployableURL, Ref: dh.Ref, SHA: sha,
		CreatedAt: created, UpdatedAt: at, OccurredAt: at,
		Attrs: attrs, Transitions: []change.Transition{{State: dh.Status, At: at}},
	})
	return nil
}
