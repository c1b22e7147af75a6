package gitlab

import (
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
	UserName          string       `json:"user_name"`
	UserEmail         string       `json:"user_email"`
	TotalCommitsCount int          `json:"total_commits_count"`
	Commits           []hookCommit `json:"commits"`
}

// check finds nothing: what a push lacks depends on whether it is a
// branch's or a tag's.
func (ph *pushHook) check() error { return nil }

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

// authorOf is the GitLab username of c's git author when the payload
// tells it: the pusher's (user_username), if c's author is the pusher by
// email (the pusher's public one; GitLab writes "[REDACTED]" or nothing
// without it) or by name. Otherwise "": a git name is not a username.
func (ph *pushHook) authorOf(c *hookCommit) string {
	if ph.UserUsername == "" {
		return ""
	}
	email := strings.TrimSpace(ph.UserEmail)
	if email != "" && email != "[REDACTED]" && strings.EqualFold(email, strings.TrimSpace(c.Author.Email)) {
		return ph.UserUsername
	}
	if name := strings.TrimSpace(ph.UserName); name != "" && name == strings.TrimSpace(c.Author.Name) {
		return ph.UserUsername
	}
	return ""
}

// parsePush: one commit event per pushed commit and one for the branch.
// A commit's `timestamp` is its committed date (GitLab's
// Commit#hook_attrs writes committed_date.xmlschema), the commit's
// updated_at by docs/kinds.md; the branch's is its head commit's.
func parsePush(h *hookCtx, ph *pushHook) error {
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
			Author:     ph.authorOf(&c),
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
	// A branch created at an existing commit has no commit in the
	// payload, so no committed_date for the branch's updated_at.
	h.refAt(change.KindBranch, id, branch, "active", ph.UserUsername, webURL, ph.commit(ph.After, ph.CheckoutSHA), attrs)
	return nil
}

// parseTagPush: the tag. Its updated_at is the tagged commit's committed
// date, which GitLab sends as the one entry of `commits`; checkout_sha is
// that commit, `after` the tag object for an annotated tag.
func parseTagPush(h *hookCtx, ph *pushHook) error {
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
	h.refAt(change.KindTag, id, name, "tagged", ph.UserUsername, webURL, ph.commit(ph.CheckoutSHA, ph.After), attrs)
	return nil
}

// refAt emits a branch or tag that points at commit c, dated by c's
// committed date, or lists it in NeedsDetails when the payload has no
// such commit or no date for it. Its author is the pusher's username
// (who put the ref there); c's git author is kept in the attributes.
func (h *hookCtx) refAt(kind change.Kind, id, name, state, author, webURL string, c *hookCommit, attrs map[string]any) {
	if c == nil || c.Timestamp.IsZero() {
		h.needs(id)
		return
	}
	committed := c.Timestamp.Time
	attrs["commit_sha"] = c.ID
	attrs["committed_date"] = stamp(committed)
	attrs["author_name"] = c.Author.Name
	attrs["author_email"] = c.Author.Email
	h.emit(refEvent(kind, id, h.p.ID, name, state, author, webURL, c.ID, committed, attrs))
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
