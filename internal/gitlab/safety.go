package gitlab

import (
	"strings"

	"github.com/labtrail/labtrail/internal/change"
)

// What GitLab sends is checked once more where it becomes events: a
// webhook's ids must read by their kind's grammar (change.ParseID:
// positive numbers, hex shas, non-empty names), and webhook or poll alike
// only http(s) URLs, or paths from GitLab's root joined to its URL, are
// kept (change.SafeURL).

// instanceOf is the GitLab URL a project's web_url hangs off (its web_url
// less its path), or "" when that cannot be told.
func instanceOf(webURL, path string) string {
	if webURL == "" || path == "" {
		return ""
	}
	base, ok := strings.CutSuffix(strings.TrimRight(webURL, "/"), "/"+path)
	if !ok {
		return ""
	}
	return base
}

// checkHook refuses a parsed delivery whose events or detail requests
// carry a malformed id (the payload's numbers and names make them: an iid
// of -5, a project of -1, a "sha" that is a date), and keeps only safe
// URLs in its events.
func (h *hookCtx) checkHook() error {
	base := instanceOf(h.p.WebURL, h.p.Path)
	for i := range h.out.Events {
		e := &h.out.Events[i]
		if err := change.CheckEventID(*e); err != nil {
			return malformed("%s: %v", h.out.EventType, err)
		}
		e.SafeURLs(base)
	}
	for _, id := range h.out.NeedsDetails {
		if err := change.ValidID(id); err != nil {
			return malformed("%s: %v", h.out.EventType, err)
		}
	}
	return nil
}

// checkedPages wraps a Fetch callback so that each page's events keep only
// safe URLs. Their ids are not checked again: the API gives typed numbers
// and its own shas, where a webhook's body is whatever was posted.
func (c *Client) checkedPages(p Project, fn func(Page) error) func(Page) error {
	base := c.instanceURL(p)
	return func(pg Page) error {
		for i := range pg.Events {
			pg.Events[i].SafeURLs(base)
		}
		return fn(pg)
	}
}
