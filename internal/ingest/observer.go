package ingest

import (
	"strings"

	"github.com/labtrail/labtrail/internal/change"
	"github.com/labtrail/labtrail/internal/gitlab"
)

// Observer is told what the ways in do as it happens, for labtrail's own
// telemetry (server.Telemetry implements it with Prometheus; ingest knows
// nothing of Prometheus). Its methods are called on the request, sync and
// conversion paths, so they must be quick and safe for concurrent use. A
// nil Observer is never called.
type Observer interface {
	// GitLabCall is one HTTP attempt to GitLab's API, retries included:
	// status is 0 when no answer came (refused, timed out), rateRemaining
	// GitLab's RateLimit-Remaining, -1 when it did not send one.
	GitLabCall(status, rateRemaining int)
	// SyncRun is one poll of one project (path_with_namespace) and kind;
	// err is nil when it succeeded. A feature disabled on the project is
	// a success, as the sync state records it.
	SyncRun(project string, kind change.Kind, err error)
	// Webhook is one webhook delivery received (result WebhookStored,
	// WebhookDuplicate, WebhookRejected, WebhookBusy or WebhookError) or
	// converted (a delivery status: processed, failed, ignored,
	// stored_raw). event is WebhookEventLabel of its X-Gitlab-Event, so
	// the values are bounded whatever a sender puts in the header.
	Webhook(event, result string)
}

// Results of receiving a webhook delivery, as Observer.Webhook reports
// them. Converting one reports the delivery's status instead.
const (
	WebhookStored    = "stored"    // 200: stored for conversion
	WebhookDuplicate = "duplicate" // 200: a retry of a delivery stored before; nothing new stored
	WebhookRejected  = "rejected"  // 4xx: refused (token, signature, address, size, body); nothing stored
	WebhookBusy      = "busy"      // 503: too many payloads in memory at once; GitLab retries
	WebhookError     = "error"     // 503: the store did not take it; GitLab retries
)

// WebhookEventOther names, in Observer.Webhook, every X-Gitlab-Event that
// is not a GitLab event type labtrail knows, an absent one included.
const WebhookEventOther = "other"

// WebhookEventLabel is event as Observer.Webhook names it: GitLab's
// X-Gitlab-Event for the types labtrail knows ("Push Hook", "Merge
// Request Hook", ...), WebhookEventOther for anything else.
func WebhookEventLabel(event string) string {
	if event = strings.TrimSpace(event); gitlab.KnownWebhookEvent(event) {
		return event
	}
	return WebhookEventOther
}
