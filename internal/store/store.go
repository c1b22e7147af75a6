// Package store declares what labtrail keeps and how it is read back. Each
// backend (store/sqlite, store/postgres) implements Store and passes the
// conformance suite in store/storetest (storetest.Run).
package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/labtrail/labtrail/internal/change"
)

// ErrNotFound is returned when a requested record does not exist.
var ErrNotFound = errors.New("not found")

// ErrInvalidCursor is returned by List for a cursor it did not issue.
var ErrInvalidCursor = errors.New("invalid cursor")

// ErrTooLarge is returned for a value larger than the backend can hold
// (a webhook body beyond a DynamoDB item's 400 KB, say): the caller's
// input, not the store's failure.
var ErrTooLarge = errors.New("too large for this store")

// UpsertResult counts what an Upsert did with the events it was given.
type UpsertResult struct {
	Inserted  int // new ids
	Updated   int // stored ids whose content changed
	Unchanged int // identical to what was stored, or older than it
}

// Stored is the number of events that changed the store.
func (r UpsertResult) Stored() int { return r.Inserted + r.Updated }

// Add sums two results.
func (r UpsertResult) Add(o UpsertResult) UpsertResult {
	return UpsertResult{r.Inserted + o.Inserted, r.Updated + o.Updated, r.Unchanged + o.Unchanged}
}

// Filter selects events for List. Zero fields do not filter. Each of kind,
// project id, project path, author and state is matched against the union
// of its single field and its list: an event matches if it has any of the
// values given (kind=a&kind=b is a or b); different fields must all match.
type Filter struct {
	Kind         change.Kind
	Kinds        []change.Kind
	ProjectID    int64
	ProjectIDs   []int64
	ProjectPath  string
	ProjectPaths []string
	Author       string
	Authors      []string
	State        string
	States       []string
	Since        time.Time // occurred_at >= Since; MinTime..MaxTime
	Until        time.Time // occurred_at < Until; MinTime..MaxTime
	Limit        int       // 1..1000; 0 means 100
	Cursor       string    // opaque, from a previous Page.NextCursor

	// Connections selects the events of these GitLab connections
	// (DefaultConnection or an added one's name; ConnectionOf).
	Connections []string
}

// MaxLimit is the largest page List returns.
const MaxLimit = 1000

// DefaultLimit is the page size when a listing asks for none.
const DefaultLimit = 100

// PageLimit applies the rule every backend's listings share: 0 means
// DefaultLimit, above MaxLimit is clamped to it, negative is an error.
func PageLimit(n int) (int, error) {
	switch {
	case n < 0:
		return 0, fmt.Errorf("negative limit %d", n)
	case n == 0:
		return DefaultLimit, nil
	case n > MaxLimit:
		return MaxLimit, nil
	}
	return n, nil
}

// Page is one page of List, newest occurred_at first. NextCursor is empty on
// the last page.
type Page struct {
	Events     []change.Event
	NextCursor string
}

// Project is a GitLab project labtrail syncs.
type Project struct {
	ID             int64     `json:"id"`
	Path           string    `json:"path"` // path_with_namespace
	Name           string    `json:"name"`
	WebURL         string    `json:"web_url"`
	DefaultBranch  string    `json:"default_branch,omitempty"`
	Archived       bool      `json:"archived"`
	LastActivityAt time.Time `json:"last_activity_at"`
	// Status is ProjectActive, or why labtrail stopped syncing it.
	Status string `json:"status"`
	// StatusDetail is the error that set a non-active Status.
	StatusDetail string `json:"status_detail,omitempty"`
	// StatusAt is when Status last changed.
	StatusAt time.Time `json:"status_at"`
}

// Project statuses: a project that disappears or loses access is marked
// and left alone until it is seen again, instead of being retried forever.
const (
	ProjectActive    = "active"
	ProjectNotFound  = "not_found"
	ProjectForbidden = "forbidden"
)

// SyncState is the poller's record for one project and kind: the cursor it
// resumes from and how its last run went.
type SyncState struct {
	ProjectID   int64       `json:"project_id"`
	ProjectPath string      `json:"project_path"`
	Kind        change.Kind `json:"kind"`
	// Cursor is the newest updated_at stored so far; the next run asks
	// GitLab for objects updated on or after it. Zero means backfill.
	Cursor      time.Time `json:"cursor"`
	LastRunAt   time.Time `json:"last_run_at"`
	LastSuccess time.Time `json:"last_success_at"`
	Fetched     int       `json:"fetched"` // by the last run
	Stored      int       `json:"stored"`  // by the last run
	LastError   string    `json:"last_error,omitempty"`
}

// AuditEntry is one GitLab API call labtrail made.
type AuditEntry struct {
	ID                 int64         `json:"id"`
	Time               time.Time     `json:"time"`
	Method             string        `json:"method"`
	Path               string        `json:"path"` // path and query, secrets removed
	Status             int           `json:"status"`
	Duration           time.Duration `json:"-"`
	DurationMS         float64       `json:"duration_ms"`
	RateLimitRemaining int           `json:"rate_limit_remaining"` // -1 when GitLab did not say
	Job                string        `json:"job,omitempty"`        // the sync that made the call
	Error              string        `json:"error,omitempty"`
}

// AuditFilter selects audit entries. Zero fields do not filter.
type AuditFilter struct {
	Since      time.Time // Time >= Since
	Until      time.Time // Time < Until
	Job        string
	Status     int    // exact status; -1 selects calls that got no answer
	PathPrefix string // e.g. /api/v4/projects/42
	Limit      int    // 1..1000; 0 means 100
	Cursor     string
}

// AuditPage is one page of ListAudit, newest first.
type AuditPage struct {
	Entries    []AuditEntry
	NextCursor string
}

// Delivery statuses.
const (
	DeliveryPending   = "pending"    // stored, not yet converted
	DeliveryProcessed = "processed"  // converted into events
	DeliveryStoredRaw = "stored_raw" // a type labtrail keeps but does not convert
	DeliveryFailed    = "failed"     // conversion failed after its retries
)

// Delivery is one webhook delivery as GitLab sent it.
type Delivery struct {
	ID             int64             `json:"id"`
	IdempotencyKey string            `json:"idempotency_key"`
	EventType      string            `json:"event_type"`   // X-Gitlab-Event
	EventUUID      string            `json:"event_uuid"`   // X-Gitlab-Event-UUID (shared by one user action's hooks)
	WebhookUUID    string            `json:"webhook_uuid"` // X-Gitlab-Webhook-UUID of the stored attempt
	Headers        map[string]string `json:"headers"`      // secrets removed
	Body           []byte            `json:"-"`
	ReceivedAt     time.Time         `json:"received_at"`
	Status         string            `json:"status"`
	Attempts       int               `json:"attempts"`
	LastError      string            `json:"last_error,omitempty"`
	ProcessedAt    time.Time         `json:"processed_at"`
}

// DeliveryFilter selects deliveries. Zero fields do not filter.
type DeliveryFilter struct {
	Status string
	Limit  int // 1..1000; 0 means 100
	Cursor string
}

// DeliveryPage is one page of ListDeliveries, newest first.
type DeliveryPage struct {
	Deliveries []Delivery
	NextCursor string
}

// Store is labtrail's storage: every role below, as one backend provides
// them. Implementations are safe for concurrent use. A consumer names the
// narrowest role it needs (the server reads events, the webhook handler
// stores deliveries), so a new backend or a test double implements only what
// that consumer calls.
type Store interface {
	Core
	MetricsStore
	TokenStore
	SessionStore
	ArchiveStore
	ConnectionStore
	SecretStore
}

// Core is what syncing, webhooks and the read API need: the roles every
// backend provides, DynamoDB's included. Metrics facts, sessions, archive
// days and added connections are the server's, which runs on SQL.
type Core interface {
	EventStore
	ProjectStore
	DeliveryStore
	DeliveryConverter
	AuditStore
	PortStore
	DigestStore
	// Ping reports whether the store can serve requests.
	Ping(ctx context.Context) error
	Close() error
}

// EventStore keeps change events and their timelines.
type EventStore interface {
	// Upsert stores events by id. It is idempotent and ordered: an event
	// whose UpdatedAt is older than the stored one changes nothing, and
	// storing the same event twice changes nothing the second time. New
	// transitions are appended to each object's timeline. All events of
	// one call are stored in one transaction.
	Upsert(ctx context.Context, events ...change.Event) (UpsertResult, error)
	// Get returns one event and its timeline, oldest first.
	Get(ctx context.Context, id string) (change.Event, []change.TimelineEntry, error)
	// List returns events matching f, newest occurred_at first.
	List(ctx context.Context, f Filter) (Page, error)
	// Versions returns the stored updated_at of each of ids last stored by
	// a poll. The poller skips the details of objects it already holds;
	// one a webhook stored still lacks them, so it is left out here.
	Versions(ctx context.Context, ids []string) (map[string]time.Time, error)
	// VersionsByPrefix is Versions for every id starting with prefix.
	VersionsByPrefix(ctx context.Context, prefix string) (map[string]time.Time, error)
	// Count returns how many events of a kind are stored ("" for all).
	Count(ctx context.Context, kind change.Kind) (int, error)
}

// ProjectStore keeps the synced projects and the poller's state per
// project and kind.
type ProjectStore interface {
	// PutProjects inserts or replaces projects by id.
	PutProjects(ctx context.Context, ps ...Project) error
	// Projects lists stored projects ordered by path.
	Projects(ctx context.Context) ([]Project, error)

	// SyncState returns the state for a project and kind; a zero SyncState
	// (with ProjectID and Kind set) when none is stored.
	SyncState(ctx context.Context, projectID int64, kind change.Kind) (SyncState, error)
	// PutSyncState inserts or replaces a state.
	PutSyncState(ctx context.Context, s SyncState) error
	// SyncStates lists all states ordered by project path and kind.
	SyncStates(ctx context.Context) ([]SyncState, error)
}

// AuditStore keeps the log of GitLab API calls.
type AuditStore interface {
	// AppendAudit records GitLab API calls.
	AppendAudit(ctx context.Context, entries ...AuditEntry) error
	// ListAudit lists recorded calls, newest first.
	ListAudit(ctx context.Context, f AuditFilter) (AuditPage, error)
	// PruneAudit deletes calls recorded before t and says how many.
	PruneAudit(ctx context.Context, before time.Time) (int, error)
}

// DeliveryStore keeps webhook deliveries as GitLab sent them.
type DeliveryStore interface {
	// PutDelivery stores a delivery unless one with its IdempotencyKey is
	// stored already; it returns the stored one's id and whether it was a
	// duplicate. It returns only once the delivery is durable.
	PutDelivery(ctx context.Context, d Delivery) (id int64, duplicate bool, err error)
	// Delivery returns one delivery with its body.
	Delivery(ctx context.Context, id int64) (Delivery, error)
	// ListDeliveries lists deliveries (without bodies), newest first.
	ListDeliveries(ctx context.Context, f DeliveryFilter) (DeliveryPage, error)
	// MarkDelivery records the outcome of one processing attempt.
	MarkDelivery(ctx context.Context, id int64, status, lastError string) error
}

// PortStore reads a whole store out and writes it into another, for
// migrations between backends and backups.
type PortStore interface {
	// ExportEvents returns up to limit events (1..MaxLimit; 0 means
	// DefaultLimit) whose ids sort after `after` in byte order, in that
	// order, each with its whole timeline: a whole store is read by
	// passing the last id back. Attribute numbers come back as
	// json.Number, exactly as stored, so a copy loses no precision.
	ExportEvents(ctx context.Context, after string, limit int) ([]History, error)
	// ImportEvents stores histories as given, for copying a store: no
	// timeline entry is derived. An id not stored is inserted; a stored
	// one is replaced only by a newer UpdatedAt (the Upsert rule), and
	// timeline entries are added, in order, unless the same (state, at)
	// is stored for the event. Importing the same histories again
	// changes nothing and says so.
	ImportEvents(ctx context.Context, hs ...History) (ImportResult, error)
	// ExportAudit returns up to limit audit entries with ids above after,
	// lowest id first.
	ExportAudit(ctx context.Context, after int64, limit int) ([]AuditEntry, error)
	// ImportAudit stores entries with their ids, skipping ids already
	// stored; entries appended later get higher ids. It returns how many
	// it stored.
	ImportAudit(ctx context.Context, entries ...AuditEntry) (int, error)
	// ExportDeliveries returns up to limit deliveries with ids above
	// after, bodies included, lowest id first.
	ExportDeliveries(ctx context.Context, after int64, limit int) ([]Delivery, error)
	// ImportDeliveries stores deliveries as given (id, status, attempts
	// and all), skipping any whose id or IdempotencyKey is stored; later
	// deliveries get higher ids. It returns how many it stored.
	ImportDeliveries(ctx context.Context, ds ...Delivery) (int, error)
}

// History is one event and its whole timeline (oldest first, as Get
// returns it): the unit ExportEvents hands out and ImportEvents takes.
type History struct {
	Event    change.Event
	Timeline []change.TimelineEntry
}

// ImportResult counts what ImportEvents changed.
type ImportResult struct {
	Events   int // inserted or replaced
	Timeline int // entries added
}
